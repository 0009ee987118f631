"""Live bridging: host interface <-> backend <-> Bridge <-> A2065 <-> Linux-style driver <-> TAP.

The loop behind ``a2065 bridge`` (its one command line: a2065/cli/main.py) and the end-to-end rig
(``a2065.rig``)::

    backend (AF_PACKET | pcap | TAP | VDE on --iface)     guest TAP (the emulated machine's stack)
        | poll / send                                       ^ write        | read
        v                                                   |              v
    Bridge (segment | drop-legacy) -> Am7990 on the board -> LinuxA2065Driver (rings, IRQ, reap)

`LiveBridge` is a `MultiCard` loop with one `Card` (a2065.runners.multi): time (``wire`` events
at their own emulated times, ``fast`` at once), guest transmit push-back, the guest multicast
list mirrored into LADRF, recordings flushed every 0.5 s and stopping are that loop's, described
there. What LiveBridge adds: the one card's names at the top (``lb.runner``, ``lb.bridge``,
``lb.driver``, ...), one flat ``stats()``, throughput samples, and writes to the guest TAP from a
writer thread in ``fast`` timing by default. `run_bridge` opens everything for ``a2065 bridge``.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Optional

from a2065.runners.guest import GuestCounters, GuestMulticast, open_guest_tap
from a2065.runners.multi import Card, MultiCard

__all__ = ["LiveBridge", "GuestMulticast", "GuestCounters", "open_guest_tap", "run_bridge",
           "summary_rows"]


class LiveBridge(MultiCard):
    """One card between a live `backend` and a `guest` backend (normally a TAP).

    Keyword arguments go to `Card` and on to `a2065.runners.replay.Runner` (mac, serial,
    delivery, recorder, queue bounds, ...). `multicast`: a `GuestMulticast` to mirror, or None.
    `threaded_writes` defaults to on in ``fast`` timing."""

    def __init__(self, backend, guest, *, policy: str = "segment", timing: str = "wire",
                 threaded_writes: Optional[bool] = None, flush_interval: float = 0.5,
                 **card_kw):
        super().__init__(timing=timing, flush_interval=flush_interval)
        if threaded_writes is None:
            threaded_writes = timing == "fast"
        self.card: Card = self.add(backend, guest, policy=policy, threaded_writes=threaded_writes,
                                   **card_kw)
        self.policy = policy
        self._samples: list = []

    # the one card's parts, as the rig, the benches and the tests name them
    runner = property(lambda self: self.card.runner)
    driver = property(lambda self: self.card.driver)
    bridge = property(lambda self: self.card.bridge)
    board = property(lambda self: self.card.board)
    backend = property(lambda self: self.card.backend)
    guest = property(lambda self: self.card.guest)
    multicast = property(lambda self: self.card.multicast)
    recorder = property(lambda self: self.card.recorder)
    pending = property(lambda self: self.card.pending)
    gc = property(lambda self: self.card.counters)
    catchup_steps = property(lambda self: self.card.catchup_steps)

    def sync_multicast_now(self) -> None:
        self.card.sync_multicast_now()

    def run(self, duration: Optional[float] = None, *, stop=None, handle_signals: bool = False,
            max_sleep_ns: int = 2_000_000, sample_interval: Optional[float] = None,
            on_sample: Optional[Callable[[dict], None]] = None) -> "LiveBridge":
        """Run until `duration` seconds passed, `stop()` (callable or Event) is true, `self.stop()`
        was called, or SIGINT/SIGTERM (with handle_signals, main thread only). With
        `sample_interval` (s), a `sample()` is kept (`samples`) and passed to `on_sample` that
        often."""
        self.max_sleep_ns = max_sleep_ns
        on_turn = None
        if sample_interval:
            sample_ns = int(sample_interval * 1e9)
            next_sample = [time.monotonic_ns() + sample_ns]

            def on_turn(loop, wall):
                if wall >= next_sample[0]:
                    next_sample[0] += sample_ns
                    s = self.sample(wall)
                    self._samples.append(s)
                    if on_sample is not None:
                        on_sample(s)
        super().run(duration, stop=stop, handle_signals=handle_signals, on_turn=on_turn)
        return self

    def sample(self, wall: Optional[int] = None) -> dict:
        b = self.bridge
        return {"t_ns": wall if wall is not None else time.monotonic_ns(),
                "delivered_bytes": b.delivered_bytes, "to_guest_bytes": self.gc.to_guest_bytes,
                "transmitted_bytes": b.transmitted_bytes}

    @property
    def samples(self) -> list:
        return list(self._samples)

    def stats(self) -> dict:
        """The card's counters and the loop's in one flat dict."""
        return {**self.card.stats(), **self.loop_stats(), "policy": self.policy}


# ---------------------------------------------------------------------------------------------
# opening things (the `a2065 bridge` command)

def run_bridge(*, iface: Optional[str] = None, backend="afpacket", timing: str = "wire",
               policy: str = "segment", record: Optional[str] = None, guest_tap: str = "a2065g%d",
               guest_netns: Optional[str] = None, netns: Optional[str] = None, mac=None,
               duration: Optional[float] = None, handle_signals: bool = True, forwards=(),
               on_ready: Optional[Callable[["LiveBridge"], None]] = None) -> dict:
    """Open everything, bridge until stopped, close everything; return the final counters.
    `backend` is a registry name (`pcap_backend.backends.REGISTRY`; opened on `iface`, in `netns`
    if given, with `forwards`) or an already opened Backend object, which is closed at the end too.
    The recording (`record`) carries wall-clock timestamps and is flushed at least every 0.5 s;
    if it cannot be written the run stops and ``st["record_error"]`` says why.
    Raises pcap_backend BackendError subclasses (NoSuchInterface, PermissionDenied, ...) with
    messages that say what to do, and ValueError for arguments the registry refuses."""
    from a2065 import A2065
    interrupted = []
    old_handlers = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        # installed before anything opens: a Ctrl-C while setting up stops cleanly too
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, lambda *_: interrupted.append(True))
    b = None
    tap = mc = rec = lb = None
    try:
        if isinstance(backend, str):
            from pcap_backend.backends import open_backend
            b = open_backend(backend, iface, forwards=forwards, open_in_netns=netns)
            kind = backend
        else:
            b = backend
            kind = getattr(b, "name", type(b).__name__)
        card_mac = bytes(mac) if mac is not None else A2065().mac
        tap, mc = open_guest_tap(guest_tap, card_mac, guest_netns)
        if record:
            from pcap_backend.backends.pcapng_io import PcapngTee
            rec = PcapngTee(record, comment=f"a2065 bridge on {iface or kind} ({kind}, {policy}, {timing})")
        lb = LiveBridge(b, tap, policy=policy, timing=timing, multicast=mc, mac=card_mac,
                        recorder=rec)
        if rec is not None:  # emulated ns -> wall-clock ns since the epoch
            rec.ts_offset_ns = time.time_ns() - lb.runner.now
        if on_ready is not None:
            on_ready(lb)
        lb.run(duration, stop=lambda: bool(interrupted))
        lb.interrupted = bool(interrupted)
        if rec is not None:
            rec.flush()
        st = lb.stats()
        st["guest_tap"] = tap.ifname
        st["iface"] = iface
        st["backend_kind"] = kind
        st["record"] = record
        st["record_error"] = rec.write_error if rec is not None else None
        return st
    finally:
        if lb is not None:
            lb.close()
        elif rec is not None:
            rec.close()
        if mc is not None and lb is None:
            mc.close()
        if tap is not None:
            tap.close()
        if b is not None:
            b.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)


def summary_rows(st: dict) -> list:
    b = st["bridge"]
    g = st["guest"]
    drops = ", ".join(f"{k} {v:,}" for k, v in sorted(b["dropped"].items(), key=lambda kv: -kv[1])) or "none"
    return [
        ["seconds", f"{st.get('seconds', 0):.2f}"],
        ["received / super-packets", f"{b['received']:,} / {b['super_packets']:,}"],
        ["segments made", f"{b['segments_made']:,}"],
        ["delivered to the card", f"{b['delivered']:,} ({b['delivered_bytes']:,} B)"],
        ["dropped", drops],
        ["driver received / to guest", f"{st['driver']['rx_frames']:,} / {g['to_guest']:,}"],
        ["guest sent / transmitted", f"{g['from_guest']:,} / {b['transmitted']:,}"],
        ["tx failed", f"{b['tx_failed']:,}"],
        ["chip filtered / missed", f"{st['chip'].get('rx_filtered', 0):,} / {st['chip'].get('rx_missed', 0):,}"],
        ["multicast", ", ".join(st["driver"]["multicast"]) or "none"],
    ]
