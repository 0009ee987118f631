"""The real Linux driver in the end-to-end rig: backend <-> Bridge <-> A2065 <-> 68000 running
a2065.c <-> TAP in the guest namespace (the guest kernel's TCP/IP as the upper layers).

Frames the driver hands to ``netif_rx`` are written to the TAP; frames the guest kernel sends on
the TAP go to the driver's ``ndo_start_xmit`` through the transmit slots (read from the TAP only
while a small pending queue has room, so a stopped queue pushes back into the TAP's own).

Time: emulated ns = base + time.monotonic_ns(). The loop runs the 68000 towards "now" in steps no
longer than ``step_ns`` and never past the bridge's next delivery, so the card receives every
frame at its own time; in ``wire`` timing the chip paces 10 Mb/s. If the host falls behind by
more than ``max_lag_ns`` (0.5 s) the emulated clock gives up the difference (counted in ``slipped_ns``)
rather than running ever further behind.

machine68k keeps one CPU per process: ``python -m a2065.drivers.linux.live`` runs the whole rig
experiment (namespaces, card, endpoints) in its own process and prints one JSON document;
``run_rig_scenario`` starts it and parses the result.
"""
from __future__ import annotations

import collections
import json
import select
import sys
import time

from ..child import run_module
from .runner import PAL_HZ, LinuxMachine


class LinuxLive:
    """One LinuxMachine (one card) between a live backend and a guest TAP."""

    def __init__(self, machine: LinuxMachine, backend, guest, *, policy: str = "segment",
                 multicast=None, mcast_interval: float = 0.2, pending_frames: int = 64,
                 step_ns: int = 1_000_000, max_lag_ns: int = 500_000_000):
        from pcap_backend.bridge import Bridge

        self.m = machine
        self.card = machine.cards[0]
        self.backend = backend
        self.guest = guest
        self.bridge = Bridge(backend, self.card.lance, policy=policy, delivery="lossless",
                             timing=self.card.lance.timing, mac=self.card.mac)
        machine.sink = self._to_guest
        self.multicast = multicast
        self.mcast_interval_ns = int(mcast_interval * 1e9)
        self._mcast_state = None
        self._mcast_next = 0
        self.pending = collections.deque()
        self.pending_frames = pending_frames
        self.step_ns = step_ns
        self.max_lag_ns = max_lag_ns
        self.slipped_ns = 0
        self.loops = 0
        self.cpu_ns = 0
        self.wall_ns = 0
        self.to_guest = self.to_guest_bytes = self.to_guest_failed = 0
        self.from_guest = self.from_guest_bytes = 0
        self.multicast_updates = 0
        self.error = None

    def _to_guest(self, dev: int, frame: bytes) -> None:
        if self.guest.send(frame, self.m.host.now_ns()):
            self.to_guest += 1
            self.to_guest_bytes += len(frame)
        else:
            self.to_guest_failed += 1

    def _pump_guest(self, now: int) -> bool:
        moved = False
        m = self.m
        while self.pending and m.tx_space():
            m.queue(self.pending.popleft())
            moved = True
        room = self.pending_frames - len(self.pending)
        if room > 0:
            for p in self.guest.poll(now, room):
                self.pending.append(p[1])
                self.from_guest += 1
                self.from_guest_bytes += len(p[1])
                moved = True
            while self.pending and m.tx_space():
                m.queue(self.pending.popleft())
        return moved

    def _sync_multicast(self, wall: int) -> None:
        if self.multicast is None or wall < self._mcast_next:
            return
        self._mcast_next = wall + self.mcast_interval_ns
        state = self.multicast.read()
        if state != self._mcast_state:
            self._mcast_state = state
            macs, allmulti, promisc = state
            flags = (0x200 if allmulti else 0) | (0x100 if promisc else 0)
            self.m.set_rx_mode(0, list(macs)[:self.m._get("mc_max")], flags)
            self.multicast_updates += 1

    def run(self, *, stop, duration: float | None = None) -> "LinuxLive":
        m, host, bridge = self.m, self.m.host, self.bridge
        mono = time.monotonic_ns
        fds = [f for f in (self.backend.fileno(), self.guest.fileno()) if f is not None]
        start = mono()
        cpu0 = time.thread_time_ns()
        base = host.now_ns() - start
        end = None if duration is None else start + int(duration * 1e9)
        try:
            while not stop():
                wall = mono()
                if end is not None and wall >= end:
                    break
                target = base + wall
                now = host.now_ns()
                if target - now > self.max_lag_ns:
                    slip = target - now - self.max_lag_ns
                    base -= slip
                    target -= slip
                    self.slipped_ns += slip
                if now < target:
                    t_end = min(target, now + self.step_ns)
                    dl = bridge.next_deadline()
                    if dl is not None and now < dl < t_end:
                        t_end = dl
                    m.tick()
                    host.run_ns(max(1, t_end - now))
                    m._check()
                now = host.now_ns()
                bridge.service(now)
                m.collect()
                moved = self._pump_guest(now)
                self._sync_multicast(wall)
                self.loops += 1
                if host.now_ns() < base + mono() or moved:
                    continue
                dl = bridge.next_deadline()
                wait = 1_000_000 if dl is None else max(20_000, min(1_000_000, dl - host.now_ns()))
                select.select(fds, [], [], wait / 1e9)
        except Exception as e:  # noqa: BLE001 - reported in stats, re-raised
            self.error = f"{type(e).__name__}: {e}"
            raise
        finally:
            self.cpu_ns += time.thread_time_ns() - cpu0
            self.wall_ns += mono() - start
        return self

    def stats(self) -> dict:
        h = self.m.hi()
        c = self.card.lance.counters
        return {"bridge": self.bridge.stats(), "chip": dict(vars(c)),
                "chip_balanced": bool(self.card.lance.counters_balanced()),
                "driver": self.m.stats(0), "hostif": h,
                "guest": {"to_guest": self.to_guest, "to_guest_bytes": self.to_guest_bytes,
                          "to_guest_failed": self.to_guest_failed, "from_guest": self.from_guest,
                          "from_guest_bytes": self.from_guest_bytes,
                          "multicast_updates": self.multicast_updates},
                "loops": self.loops, "slipped_ns": self.slipped_ns, "cpu_hz": self.m.cpu_hz,
                "loop_cpu_s": self.cpu_ns / 1e9, "loop_wall_s": self.wall_ns / 1e9,
                "emulated_s": self.m.host.now_ns() / 1e9, "error": self.error}


# ---------------------------------------------------------------------------- the rig experiment

def rig_experiment(a: dict) -> dict:
    """Build the rig, boot the driver on its card, run the transfers in ``a["transfers"]``
    (each {"dir": "to_guest"|"to_server", "ipv6": bool, "bytes": n, "port": p}), return results."""
    import threading

    from a2065.rig import Rig
    from a2065.runners.live import GuestMulticast
    from pcap_backend.netns import in_netns

    out = {"transfers": []}
    cpu_hz = int(a.get("cpu_hz", PAL_HZ))
    timing = a.get("timing", "wire")
    with Rig() as rig:
        m = LinuxMachine(serials=[a.get("serial", 0x00123456)], timing=timing, cpu_hz=cpu_hz)
        card = m.cards[0]
        be = rig.open_backend("afpacket")
        tap = rig.open_guest_tap(card.mac)
        with in_netns(rig.ns_guest):
            mc = GuestMulticast(tap.ifname)
        m.boot()
        if m.open(0) != 0:
            raise RuntimeError(f"open failed\n{m.log()}")
        live = LinuxLive(m, be, tap, multicast=mc)
        stop = threading.Event()
        failure = []

        def loop():
            try:
                live.run(stop=stop.is_set)
            except BaseException as e:  # noqa: BLE001
                failure.append(e)

        th = threading.Thread(target=loop, name="a2065-linux-card", daemon=True)
        th.start()
        try:
            for t in a.get("transfers", []):
                to_guest = t.get("dir", "to_guest") == "to_guest"
                ipv6 = bool(t.get("ipv6"))
                if to_guest:
                    rx_ns, tx_ns, dst = "guest", "server", rig.guest_ip6 if ipv6 else rig.guest_ip
                else:
                    rx_ns, tx_ns, dst = "server", "guest", rig.server_ip6 if ipv6 else rig.server_ip
                port = int(t.get("port", 5001))
                max_s = float(t.get("max_seconds", 90))
                rx = rig.spawn(rx_ns, "tcp-recv", "--bind", "::" if ipv6 else "0.0.0.0",
                               "--port", port, "--max-seconds", max_s)
                tx = rig.spawn(tx_ns, "tcp-send", "--to", dst, "--port", port,
                               "--bytes", int(t["bytes"]))
                got = Rig.result(rx, timeout=max_s + 30)
                sent = Rig.result(tx, timeout=max_s + 30)
                got.pop("samples", None)
                out["transfers"].append({**t, "got": got, "sent": sent})
                if failure:
                    break
        finally:
            stop.set()
            th.join(15)
            out["stats"] = live.stats()
            out["log"] = m.log()
            live.bridge.close()
            mc.close()
    if failure:
        raise failure[0]
    return out


def run_rig_scenario(args: dict, *, timeout: float = 900) -> dict:
    """One rig experiment (rig_experiment) in a fresh interpreter; its JSON result."""
    return run_module("a2065.drivers.linux.live", stdin=json.dumps(args), timeout=timeout,
                      what="rig experiment")


def main() -> int:
    args = json.loads(sys.stdin.read() or "{}")
    out = rig_experiment(args)
    sys.stdout.write(json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
