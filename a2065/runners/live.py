"""Live bridging: host interface <-> backend <-> Bridge <-> A2065 <-> Linux-style driver <-> TAP.

The loop behind ``a2065 bridge`` (its one command line: a2065/cli/main.py) and the end-to-end rig
(``a2065.rig``)::

    backend (AF_PACKET | pcap | TAP on --iface)          guest TAP (the emulated machine's stack)
        | poll / send                                       ^ write        | read
        v                                                   |              v
    Bridge (segment | drop-legacy) -> Am7990 on the board -> LinuxA2065Driver (rings, IRQ, reap)

Time. Emulated ns = the board's time at start + (time.monotonic_ns() - start). In ``wire``
timing the chip paces every frame at 10 Mb/s; the loop runs every card and bridge event *at its
own emulated time* (catching up deadline by deadline, never skipping), so a late wake-up of this
process delays delivery to the TAP a little but never stretches the wire: 10 Mb/s holds in real
time as long as the host keeps up on average. ``fast`` timing completes events at once and the
loop runs as fast as the host allows.

Guest side. Frames the driver receives are written to the TAP; frames the guest's kernel sends
are read from the TAP only while the driver's transmit ring (or a small pending queue in front of
it) has room, so a busy card pushes back into the TAP's own queue, as a stopped netdev queue
would. The guest kernel's link-layer multicast list (and ALLMULTI/PROMISC flags) is read from
``/proc/net/dev_mcast`` of the TAP's namespace every ``mcast_interval`` and handed to
``driver.set_multicast``: the driver programs LADRF exactly as Linux a2065.c does (full re-init).

Stopping. ``stop`` (a callable or threading.Event), ``duration``, or SIGINT/SIGTERM when run from
the main thread with ``handle_signals=True``: the loop finishes the step it is in and returns;
`stats()` then holds the final counters.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import select
import signal
import socket
import threading
import time
from typing import Callable, Optional

__all__ = ["LiveBridge", "GuestMulticast", "open_guest_tap", "run_bridge"]

log = logging.getLogger("a2065.runners.live")

PROC_MCAST = "/proc/thread-self/net/dev_mcast"


class GuestMulticast:
    """Reads the multicast list of one interface from ``dev_mcast`` of the namespace in which it
    is created (the file keeps that namespace once opened), plus the IFF flags via a socket
    opened in the same namespace."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self._fd = os.open(PROC_MCAST, os.O_RDONLY)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def read(self):
        """(sorted list of 6-byte MACs, allmulti, promisc)."""
        from pcap_backend.netns import IFF_ALLMULTI, IFF_PROMISC, link_flags
        data = b""
        while True:
            chunk = os.pread(self._fd, 65536, len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                break
        macs = []
        for line in data.decode("ascii", "replace").splitlines():
            parts = line.split()
            # "idx name refcount global hexaddr"
            if len(parts) >= 5 and parts[1] == self.ifname and len(parts[4]) == 12:
                try:
                    macs.append(bytes.fromhex(parts[4]))
                except ValueError:
                    continue
        try:
            flags = link_flags(self._sock, self.ifname)
        except OSError:
            flags = 0
        return sorted(set(macs)), bool(flags & IFF_ALLMULTI), bool(flags & IFF_PROMISC)

    def close(self):
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._sock.close()


@dataclasses.dataclass
class GuestCounters:
    to_guest: int = 0            # frames the driver received and the TAP took
    to_guest_bytes: int = 0
    to_guest_failed: int = 0     # TAP write refused (down, full)
    from_guest: int = 0          # frames read from the TAP
    from_guest_bytes: int = 0
    sent: int = 0                # handed to driver.send
    pending_high: int = 0
    multicast_updates: int = 0
    write_queue_full: int = 0    # fast timing: writer thread behind by write_queue_frames


class LiveBridge:
    """One card between a live `backend` and a `guest` backend (normally a TAP).

    Keyword arguments go to `a2065.runners.replay.Runner` (policy, timing, delivery, mac, serial,
    recorder, queue bounds, ...). `multicast`: a `GuestMulticast` to mirror, or None.
    """

    def __init__(self, backend, guest, *, policy: str = "segment", timing: str = "wire",
                 multicast: Optional[GuestMulticast] = None, mcast_interval: float = 0.2,
                 pending_frames: int = 64, guest_batch: int = 64,
                 threaded_writes: Optional[bool] = None, write_queue_frames: int = 8192,
                 flush_interval: float = 0.5, **runner_kw):
        from a2065.runners.replay import Runner
        self.recorder = runner_kw.get("recorder")
        self.flush_interval_ns = int(flush_interval * 1e9)
        self.backend = backend
        self.guest = guest
        self.timing = timing
        self.policy = policy
        self.gc = GuestCounters()
        self.runner = Runner(backend, policy=policy, timing=timing, on_receive=self._to_guest,
                             **runner_kw)
        self.driver = self.runner.driver
        self.bridge = self.runner.bridge
        self.board = self.runner.board
        self.multicast = multicast
        self.mcast_interval_ns = int(mcast_interval * 1e9)
        self._mcast_state = None
        self._mcast_next = 0
        self.pending: "collections.deque[bytes]" = collections.deque()
        self.pending_frames = pending_frames
        self.guest_batch = guest_batch
        self.loops = 0
        self.catchup_steps = 0
        self.sleeps = 0
        self.cpu_ns = 0
        self.sleep_ns = 0
        self.started_ns = None
        self.stopped_ns = None
        self.interrupted = False
        self.error: Optional[str] = None
        self._stop_flag = False
        self._samples: list = []
        # fast timing: TAP writes (the guest kernel's whole receive path runs inside write(2))
        # go to a writer thread, so that kernel work overlaps the card's Python work
        self.threaded_writes = (timing == "fast") if threaded_writes is None else threaded_writes
        self._wq: "collections.deque[tuple]" = collections.deque()
        self._wq_cap = write_queue_frames
        self._wev = threading.Event()
        self._writer: Optional[threading.Thread] = None
        self._writer_stop = False
        if self.threaded_writes:
            self._writer = threading.Thread(target=self._write_loop, name="a2065-guest-writer",
                                            daemon=True)
            self._writer.start()

    # -- guest side --------------------------------------------------------------------------
    def _to_guest(self, frame: bytes, t_ns: int) -> None:
        if self._writer is not None:
            if len(self._wq) < self._wq_cap:
                self._wq.append((frame, t_ns))
            else:
                self.gc.to_guest_failed += 1
                self.gc.write_queue_full += 1
            return
        if self.guest.send(frame, t_ns):
            self.gc.to_guest += 1
            self.gc.to_guest_bytes += len(frame)
        else:
            self.gc.to_guest_failed += 1

    def _write_loop(self) -> None:
        q, ev, send, gc = self._wq, self._wev, self.guest.send, self.gc
        while not self._writer_stop:
            ev.wait(0.05)
            ev.clear()
            while q:
                frame, t = q.popleft()
                if send(frame, t):
                    gc.to_guest += 1
                    gc.to_guest_bytes += len(frame)
                else:
                    gc.to_guest_failed += 1

    def _stop_writer(self) -> None:
        if self._writer is not None:
            deadline = time.monotonic() + 2.0
            while self._wq and time.monotonic() < deadline:
                self._wev.set()
                time.sleep(0.001)
            self._writer_stop = True
            self._wev.set()
            self._writer.join(2.0)
            self._writer = None

    def _pump_guest(self, now: int) -> bool:
        """Move guest frames into the driver's TX ring while it has room. True if any moved."""
        drv = self.driver
        pend = self.pending
        moved = False
        gc = self.gc
        for _ in range(4):
            while pend and drv.is_open and drv.tx_buffs_avail() > 0:
                if not drv.send(pend[0]):
                    break
                pend.popleft()
                gc.sent += 1
                moved = True
            room = self.pending_frames - len(pend)
            if room <= 0:
                break
            pkts = self.guest.poll(now, min(room, self.guest_batch))
            if not pkts:
                break
            for p in pkts:
                pend.append(p[1])
                gc.from_guest += 1
                gc.from_guest_bytes += len(p[1])
            moved = True
            if len(pend) > gc.pending_high:
                gc.pending_high = len(pend)
        return moved

    def _sync_multicast(self, wall: int) -> None:
        if self.multicast is None or wall < self._mcast_next:
            return
        self._mcast_next = wall + self.mcast_interval_ns
        state = self.multicast.read()
        if state != self._mcast_state:
            self._mcast_state = state
            macs, allmulti, promisc = state
            log.info("guest multicast list: %s%s%s", ", ".join(m.hex(":") for m in macs) or "none",
                     " allmulti" if allmulti else "", " promisc" if promisc else "")
            self.driver.set_multicast(macs, allmulti=allmulti, promisc=promisc)
            self.gc.multicast_updates += 1

    def sync_multicast_now(self) -> None:
        self._mcast_next = 0
        self._sync_multicast(time.monotonic_ns())

    # -- the loop ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop_flag = True

    def _progress(self) -> int:
        b = self.bridge
        return b.received + b.delivered + self.gc.sent + b.transmitted

    def run(self, duration: Optional[float] = None, *, stop=None, handle_signals: bool = False,
            max_sleep_ns: int = 2_000_000, sample_interval: Optional[float] = None,
            on_sample: Optional[Callable[[dict], None]] = None) -> "LiveBridge":
        """Run until `duration` seconds passed, `stop()` (callable or Event) is true, `self.stop()`
        was called, or SIGINT/SIGTERM (with handle_signals, main thread only)."""
        if isinstance(stop, threading.Event):
            stop = stop.is_set
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum, frame):
                self.interrupted = True
                self._stop_flag = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, on_signal)
        r = self.runner
        step = r.step
        next_deadline = r.next_deadline
        pump = self._pump_guest
        mono = time.monotonic_ns
        fds = [f for f in (self.backend.fileno(), self.guest.fileno()) if f is not None]
        wire = self.timing == "wire"
        start = mono()
        self.started_ns = start
        cpu0 = time.thread_time_ns()
        base = r.now - start  # emulated = base + wall
        end = None if duration is None else start + int(duration * 1e9)
        sample_ns = int(sample_interval * 1e9) if sample_interval else None
        next_sample = start + sample_ns if sample_ns else None
        self._sync_multicast(start)
        next_flush = start + self.flush_interval_ns
        try:
            while not self._stop_flag:
                wall = mono()
                if end is not None and wall >= end:
                    break
                if wall >= next_flush and self.recorder is not None:
                    # a killed run keeps what it saw; a recording that cannot be written stops
                    # the run (the caller reports recorder.write_error)
                    next_flush = wall + self.flush_interval_ns
                    self.recorder.flush()
                    if getattr(self.recorder, "write_error", None):
                        log.error("recording failed: %s", self.recorder.write_error)
                        break
                if stop is not None and stop():
                    break
                before = self._progress()
                now = base + wall
                if wire:
                    # every due event at its own emulated time (the wire never stretches)
                    for _ in range(4096):  # ~2 events per frame: up to ~2.5 s of wire
                        t = next_deadline()
                        if t is None or t > now or t <= r.now:
                            break
                        step(t)
                        pump(t)
                        self.catchup_steps += 1
                step(now)
                pump(now)
                step(now)
                if self._wq:
                    self._wev.set()
                self._sync_multicast(wall)
                self.loops += 1
                if next_sample is not None and wall >= next_sample:
                    next_sample += sample_ns
                    s = self.sample(wall)
                    self._samples.append(s)
                    if on_sample is not None:
                        on_sample(s)
                if self._progress() != before:
                    continue  # work moved: look again at once
                t = next_deadline()
                emu_now = base + mono()
                wait = max_sleep_ns if t is None else min(max_sleep_ns, t - emu_now)
                if self.pending and not wire:
                    wait = min(wait, 50_000)
                if wait <= 0:
                    wait = 20_000  # a deadline at "now" that moved nothing: do not spin
                if wait > 0:
                    self.sleeps += 1
                    t0 = mono()
                    try:
                        select.select(fds, [], [], wait / 1e9)
                    except InterruptedError:  # pragma: no cover - py3.5+ retries itself
                        pass
                    self.sleep_ns += mono() - t0
        except Exception as e:  # noqa: BLE001 - report, let the caller print final counters
            self.error = f"{type(e).__name__}: {e}"
            log.error("live bridge stopped: %s", self.error)
            raise
        finally:
            self.stopped_ns = mono()
            self.cpu_ns += time.thread_time_ns() - cpu0
            for sig, h in old.items():
                signal.signal(sig, h)
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
        st = self.runner.stats()
        chip = self.board.lance
        c = chip.counters
        st["chip"] = dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(vars(c))
        st["chip"]["balanced"] = bool(chip.counters_balanced())
        d = self.driver.counters
        st["driver"].update({"tx_bytes": d.tx_bytes, "tx_busy": d.tx_busy,
                             "tx_errors": dict(d.tx_errors), "interrupts": d.interrupts,
                             "resets": d.resets, "timeouts": d.timeouts,
                             "multicast": [m.hex(":") for m in self.driver.multicast]})
        st["guest"] = dataclasses.asdict(self.gc)
        st["guest"]["pending"] = len(self.pending)
        st["guest_backend"] = self.guest.stats() if hasattr(self.guest, "stats") else {}
        st["timing"] = self.timing
        st["policy"] = self.policy
        st["loops"] = self.loops
        st["catchup_steps"] = self.catchup_steps
        st["sleeps"] = self.sleeps
        st["cpu_seconds"] = self.cpu_ns / 1e9
        st["sleep_seconds"] = self.sleep_ns / 1e9
        if self.started_ns is not None:
            st["seconds"] = ((self.stopped_ns or time.monotonic_ns()) - self.started_ns) / 1e9
        st["interrupted"] = self.interrupted
        st["error"] = self.error
        return st

    def close(self) -> None:
        self._stop_writer()
        self.bridge.close()
        if self.multicast is not None:
            self.multicast.close()


# ---------------------------------------------------------------------------------------------
# opening things (the `a2065 bridge` command)

def open_guest_tap(name: str, mac: bytes, netns: Optional[str] = None, *, up: bool = True):
    """Create (or attach to) the guest's TAP in `netns`, give it the card's MAC so the chip's
    PADR filter passes the guest's traffic, bring it up. Returns (tap, GuestMulticast).

    A TAP that already has the card's MAC and is up is left alone, so a TAP pre-made for an
    unprivileged user (SECURITY.md) needs no capability; if it has another MAC and this process
    may not change it, PermissionDenied says which command fixes it."""
    from pcap_backend.backends.tap import Tap
    from pcap_backend.base import PermissionDenied
    from pcap_backend.netns import IFF_UP, in_netns, link_flags, link_mac, set_link_mac
    with in_netns(netns):
        tap = Tap(name)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                have, flags = link_mac(s, tap.ifname), link_flags(s, tap.ifname)
            if have != bytes(mac) or (up and not flags & IFF_UP):
                try:
                    set_link_mac(tap.ifname, mac, up=up)
                except PermissionError as e:
                    raise PermissionDenied(
                        f"guest TAP {tap.ifname} has MAC {have.hex(':')}, the card "
                        f"{bytes(mac).hex(':')}, and changing it needs CAP_NET_ADMIN: run "
                        f"`sudo ip link set {tap.ifname} address {bytes(mac).hex(':')} up` once, "
                        f"or pass --mac {have.hex(':')}") from e
            mc = GuestMulticast(tap.ifname)
        except BaseException:
            tap.close()
            raise
    return tap, mc


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
