"""One event loop serving N emulated cards (issue 13); `LiveBridge` (a2065.runners.live) is its
one-card form, behind ``a2065 bridge`` and the end-to-end rig.

Each card is a `Card`: its own board + Am7990 + bridge + Linux-style driver (an
`a2065.runners.replay.Runner`), its own network backend (a `Vde` plug, AF_PACKET, a TAP, ...)
and its own guest backend (normally a TAP whose namespace's kernel is the emulated machine).
Nothing is shared between cards but the loop: no module state, so any number of `MultiCard`
loops (one per thread) can run in a process::

    loop = MultiCard(timing="fast")
    for i in range(8):
        loop.add(Vde("vxvde://239.7.0.1"), guest_tap_i, serial=0x10 + i)
    loop.run(duration=60)            # or stop=event / loop.stop() / SIGTERM (handle_signals)

From a shell: ``python -m a2065.runners.multi --url vxvde://239.1.2.3 --card a2065m0 --card
a2065m1,0x000102,guestns`` (one guest TAP per card, each in a namespace if given).

Waiting. The loop waits on one epoll set holding every card's backend fd and guest fd (each
tagged with its card), so a turn services only the cards that have input, a due deadline, a
housekeeping time (every ``mcast_interval``), frames waiting for their driver's transmit ring, or
moved frames in the turn before (looked at again at once); an idle card costs one deadline
lookup per turn. The cost grows with the work, not with N. A running chip always has a deadline
(its transmit-ring poll, every 1.6 ms), so a side without a descriptor (a scripted guest) is
still looked at that often.

Time. Emulated ns = the card's time at start + (time.monotonic_ns() - start). In ``wire`` timing
the chip paces every frame at 10 Mb/s and a card runs every due event *at its own emulated time*
(catching up deadline by deadline, never skipping, up to ``CATCHUP_EVENTS`` per turn), so a late
wake-up delays delivery to the guest a little but never stretches the wire: 10 Mb/s holds in
real time as long as the host keeps up on average. ``fast`` timing completes events at once and
the loop runs as fast as the host allows.

Guest side. Frames the driver receives are written to the guest backend; frames the guest's
kernel sends are read from it only while the driver's transmit ring (plus ``pending_frames``)
has room, so a busy card pushes back into the TAP's own queue, as a stopped netdev queue would.
With ``threaded_writes`` a writer thread of the card does the writes (the guest kernel's whole
receive path runs inside write(2)), so that kernel work overlaps the card's Python work. The
guest kernel's link-layer multicast list (and ALLMULTI/PROMISC flags, a `GuestMulticast`) is
re-read every ``mcast_interval`` and handed to ``driver.set_multicast``: the driver programs
LADRF exactly as Linux a2065.c does (full re-init). The same housekeeping turn polls the card's
backend, which is where a backend reconnects or reopens (Vde, AF_PACKET, pcap) while the guest is
quiet.

Recordings. A card's recorder (``recorder=``, a `PcapngTee`) is flushed every
``flush_interval`` (0.5 s), so a killed run keeps what it saw; one that cannot be written stops
the loop (the caller reports ``recorder.write_error``).

Stopping. ``stop`` (a callable or threading.Event), ``duration``, `stop()`, or SIGINT/SIGTERM
when run from the main thread with ``handle_signals=True``: the loop finishes the turn it is in
and returns; `stats()` then holds the final counters.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import select
import signal
import threading
import time
from typing import Callable, Optional

from a2065.runners.guest import GuestCounters

__all__ = ["Card", "MultiCard", "parse_card", "main", "GUEST_ROUNDS", "CATCHUP_EVENTS"]

log = logging.getLogger("a2065.runners.multi")

#: bounded work per card per turn (guest batches moved, wire events caught up: ~2 events per
#: frame, so ~2.5 s of wire)
GUEST_ROUNDS = 4
CATCHUP_EVENTS = 4096
#: a turn that moved nothing while a deadline is already due sleeps this long (do not spin)
DUE_IDLE_NS = 20_000
#: fast timing: a card with guest frames waiting for ring room is looked at again this soon
PENDING_RECHECK_NS = 50_000


class Card:
    """One emulated card: a `Runner` between `backend` and the guest backend `guest`.

    Keyword arguments go to `Runner` (mac, serial, delivery, recorder, bridge bounds, ...).
    `multicast`: a `GuestMulticast` to mirror into the driver every `mcast_interval` seconds, or
    None. `threaded_writes`: write frames to the guest from a thread of the card (bounded by
    `write_queue_frames`; overflow counted in ``guest.write_queue_full``)."""

    def __init__(self, backend, guest, *, timing: str = "fast", policy: str = "segment",
                 multicast=None, mcast_interval: float = 0.2, pending_frames: int = 64,
                 guest_batch: int = 64, threaded_writes: bool = False,
                 write_queue_frames: int = 8192, name: Optional[str] = None, **runner_kw):
        from a2065.runners.replay import Runner
        self.backend = backend
        self.guest = guest
        self.timing = timing
        self.policy = policy
        self.recorder = runner_kw.get("recorder")
        self.counters = GuestCounters()
        self.runner = Runner(backend, policy=policy, timing=timing, on_receive=self._to_guest,
                             **runner_kw)
        self.driver = self.runner.driver
        self.bridge = self.runner.bridge
        self.board = self.runner.board
        self.name = name or self.driver.mac.hex(":")
        self.multicast = multicast
        self.mcast_interval_ns = int(mcast_interval * 1e9)
        self._mcast_state = None
        self.next_housekeeping_ns = 0  # wall ns of the next multicast re-read and backend poll
        self.pending: "collections.deque[bytes]" = collections.deque()
        self.pending_frames = pending_frames
        self.guest_batch = guest_batch
        self.catchup_steps = 0
        self.base_ns = 0             # emulated = base_ns + wall ns (set when the loop starts)
        self._wq: "collections.deque[tuple]" = collections.deque()
        self._wq_cap = write_queue_frames
        self._wev = threading.Event()
        self._writer: Optional[threading.Thread] = None
        self._writer_stop = False
        if threaded_writes:
            self._writer = threading.Thread(target=self._write_loop, name="a2065-guest-writer",
                                            daemon=True)
            self._writer.start()

    # -- guest side --------------------------------------------------------------------------
    def _to_guest(self, frame: bytes, t_ns: int) -> None:
        c = self.counters
        if self._writer is not None:
            if len(self._wq) < self._wq_cap:
                self._wq.append((frame, t_ns))
            else:
                c.to_guest_failed += 1
                c.write_queue_full += 1
            return
        if self.guest.send(frame, t_ns):
            c.to_guest += 1
            c.to_guest_bytes += len(frame)
        else:
            c.to_guest_failed += 1

    def _write_loop(self) -> None:
        q, ev, send, c = self._wq, self._wev, self.guest.send, self.counters
        while not self._writer_stop:
            ev.wait(0.05)
            ev.clear()
            while q:
                frame, t = q.popleft()
                if send(frame, t):
                    c.to_guest += 1
                    c.to_guest_bytes += len(frame)
                else:
                    c.to_guest_failed += 1

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

    def pump_guest(self, now: int) -> bool:
        """Move guest frames into the driver's transmit ring while it has room (bounded rounds).
        True if any frame moved."""
        drv, pend, c = self.driver, self.pending, self.counters
        moved = False
        for _ in range(GUEST_ROUNDS):
            while pend and drv.is_open and drv.tx_buffs_avail() > 0:
                if not drv.send(pend[0]):
                    break
                pend.popleft()
                c.sent += 1
                moved = True
            room = self.pending_frames - len(pend)
            if room <= 0:
                break
            pkts = self.guest.poll(now, min(room, self.guest_batch))
            if not pkts:
                break
            for p in pkts:
                pend.append(p[1])
                c.from_guest += 1
                c.from_guest_bytes += len(p[1])
            moved = True
            if len(pend) > c.pending_high:
                c.pending_high = len(pend)
        return moved

    def sync_multicast(self, wall: int) -> None:
        """At the housekeeping time: hand a changed guest multicast list to the driver."""
        if wall < self.next_housekeeping_ns:
            return
        self.next_housekeeping_ns = wall + self.mcast_interval_ns
        if self.multicast is None:
            return
        state = self.multicast.read()
        if state != self._mcast_state:
            self._mcast_state = state
            macs, allmulti, promisc = state
            log.info("%s: guest multicast list: %s%s%s", self.name,
                     ", ".join(m.hex(":") for m in macs) or "none",
                     " allmulti" if allmulti else "", " promisc" if promisc else "")
            self.driver.set_multicast(macs, allmulti=allmulti, promisc=promisc)
            self.counters.multicast_updates += 1

    def sync_multicast_now(self) -> None:
        self.next_housekeeping_ns = 0
        self.sync_multicast(time.monotonic_ns())

    # -- one turn ----------------------------------------------------------------------------
    def progress(self) -> int:
        b = self.bridge
        return b.received + b.delivered + self.counters.sent + b.transmitted

    def service(self, wall: int) -> bool:
        """One turn of this card at wall time `wall` (ns). True if any frame moved."""
        r = self.runner
        before = self.progress()
        now = self.base_ns + wall
        if self.timing == "wire":
            for _ in range(CATCHUP_EVENTS):  # every due event at its own emulated time
                t = r.next_deadline()
                if t is None or t > now or t <= r.now:
                    break
                r.step(t)
                self.pump_guest(t)
                self.catchup_steps += 1
        r.step(now)
        self.pump_guest(now)
        r.step(now)
        if self._wq:
            self._wev.set()
        self.sync_multicast(wall)
        self.counters.turns += 1
        return self.progress() != before

    def next_wall_deadline(self) -> Optional[int]:
        """Wall ns of this card's next emulated deadline (None: only input wakes it)."""
        t = self.runner.next_deadline()
        return None if t is None else t - self.base_ns

    def frames(self) -> int:
        """Frames this card moved: received from the network + transmitted to it."""
        b = self.bridge
        return b.delivered + b.transmitted

    def stats(self) -> dict:
        st = self.runner.stats()
        st["name"] = self.name
        chip = self.board.lance
        c = chip.counters
        st["chip"] = dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(vars(c))
        st["chip"]["balanced"] = bool(chip.counters_balanced())
        d = self.driver.counters
        st["driver"].update({"tx_bytes": d.tx_bytes, "tx_busy": d.tx_busy,
                             "tx_errors": dict(d.tx_errors), "interrupts": d.interrupts,
                             "resets": d.resets, "timeouts": d.timeouts,
                             "multicast": [m.hex(":") for m in self.driver.multicast]})
        st["guest"] = dataclasses.asdict(self.counters)
        st["guest"]["pending"] = len(self.pending)
        st["guest_backend"] = self.guest.stats() if hasattr(self.guest, "stats") else {}
        st["timing"] = self.timing
        st["policy"] = self.policy
        st["catchup_steps"] = self.catchup_steps
        return st

    def close(self) -> None:
        self._stop_writer()
        self.bridge.close()
        if self.multicast is not None:
            self.multicast.close()


class MultiCard:
    """One event loop for many `Card`s (see the module docstring)."""

    def __init__(self, *, timing: str = "fast", max_sleep_ns: int = 2_000_000,
                 flush_interval: float = 0.5):
        self.timing = timing
        self.max_sleep_ns = max_sleep_ns
        self.flush_interval_ns = int(flush_interval * 1e9)
        self.cards: list = []
        self.loops = 0
        self.sleeps = 0
        self.cpu_ns = 0
        self.sleep_ns = 0
        self.started_ns: Optional[int] = None
        self.stopped_ns: Optional[int] = None
        self.interrupted = False
        self.error: Optional[str] = None
        self._stop_flag = False

    def add(self, backend, guest, **card_kw) -> Card:
        """A new card on `backend` with guest `guest` (both owned by the caller); returns it."""
        card_kw.setdefault("timing", self.timing)
        card = Card(backend, guest, **card_kw)
        self.cards.append(card)
        return card

    def stop(self) -> None:
        self._stop_flag = True

    def frames(self) -> int:
        return sum(c.frames() for c in self.cards)

    def _flush_recordings(self) -> bool:
        """Flush every card's recording; False if one cannot be written (logged)."""
        ok = True
        for c in self.cards:
            rec = c.recorder
            if rec is not None:
                rec.flush()
                if getattr(rec, "write_error", None):
                    log.error("%s: recording failed: %s", c.name, rec.write_error)
                    ok = False
        return ok

    def _next_turn(self, busy: set) -> tuple:
        """(cards to service next, ns to wait for input before that turn, the cards whose
        deadline comes first and the wall ns of it: they are due when the wait times out)."""
        if busy and len(busy) == len(self.cards):
            return busy, 0, set(), None  # every card moved frames: all look again at once
        nxt = set(busy)
        wait = self.max_sleep_ns
        now = time.monotonic_ns()
        first, first_t = set(), None
        for i, c in enumerate(self.cards):
            if now >= c.next_housekeeping_ns:
                nxt.add(i)
            if c.pending:
                nxt.add(i)
                if c.timing != "wire":
                    wait = min(wait, PENDING_RECHECK_NS)
            t = c.next_wall_deadline()
            if t is None:
                continue
            if t <= now:
                nxt.add(i)
                wait = min(wait, DUE_IDLE_NS)  # due, and its turn moved nothing: no spin
            elif first_t is None or t < first_t:
                first, first_t = {i}, t
            elif t == first_t:
                first.add(i)
        if first_t is not None:
            wait = min(wait, first_t - now)
        if busy:
            wait = 0  # work moved: look again at once
        return nxt, wait, first, first_t

    def run(self, duration: Optional[float] = None, *, stop=None, handle_signals: bool = False,
            on_turn: Optional[Callable[["MultiCard", int], None]] = None) -> "MultiCard":
        """Serve every card until `duration` seconds passed, `stop()` (callable or Event) is
        true, `self.stop()` was called, a recording cannot be written, or SIGINT/SIGTERM
        (handle_signals, main thread only). `on_turn(self, wall_ns)` runs once per turn."""
        if isinstance(stop, threading.Event):
            stop = stop.is_set
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum, frame):
                self.interrupted = True
                self._stop_flag = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, on_signal)
        mono = time.monotonic_ns
        cards = self.cards
        ep = select.epoll()
        owner: dict = {}
        for i, c in enumerate(cards):
            for f in (c.backend.fileno(), c.guest.fileno()):
                if f is not None and f not in owner:
                    ep.register(f, select.EPOLLIN)
                    owner[f] = i
        everyone = set(range(len(cards)))
        start = mono()
        self.started_ns = start
        cpu0 = time.thread_time_ns()
        for c in cards:
            c.base_ns = c.runner.now - start
        end = None if duration is None else start + int(duration * 1e9)
        next_flush = start + self.flush_interval_ns
        due = set(everyone)               # cards to service this turn
        try:
            while not self._stop_flag:
                wall = mono()
                if end is not None and wall >= end:
                    break
                if wall >= next_flush:
                    next_flush = wall + self.flush_interval_ns
                    if not self._flush_recordings():
                        break
                if stop is not None and stop():
                    break
                busy = set()
                for i in due:
                    if cards[i].service(wall):
                        busy.add(i)
                self.loops += 1
                if on_turn is not None:
                    on_turn(self, wall)
                due, wait, first, first_t = self._next_turn(busy)
                if wait == 0 and due == everyone:
                    continue  # every card is looked at again anyway: no need to ask epoll
                if wait > 0:
                    self.sleeps += 1
                    t0 = mono()
                    events = ep.poll(wait / 1e9)
                    t1 = mono()
                    self.sleep_ns += t1 - t0
                    if first_t is not None and t1 >= first_t:
                        due |= first  # woken by their deadline: their turn is now
                else:
                    events = ep.poll(0)
                for fd, _ev in events:
                    due.add(owner[fd])
        except Exception as e:  # noqa: BLE001 - report, let the caller print final counters
            self.error = f"{type(e).__name__}: {e}"
            log.error("card loop stopped: %s", self.error)
            raise
        finally:
            self.stopped_ns = mono()
            self.cpu_ns += time.thread_time_ns() - cpu0
            ep.close()
            for sig, h in old.items():
                signal.signal(sig, h)
        return self

    def loop_stats(self) -> dict:
        """The loop's own counters (no card's)."""
        st = {"loops": self.loops, "sleeps": self.sleeps, "cpu_seconds": self.cpu_ns / 1e9,
              "sleep_seconds": self.sleep_ns / 1e9, "frames": self.frames(),
              "interrupted": self.interrupted, "error": self.error, "timing": self.timing}
        if self.started_ns is not None:
            st["seconds"] = ((self.stopped_ns or time.monotonic_ns()) - self.started_ns) / 1e9
        return st

    def stats(self) -> dict:
        return {"cards": [c.stats() for c in self.cards], **self.loop_stats()}

    def close(self) -> None:
        for c in self.cards:
            c.close()


# ---------------------------------------------------------------------------------------------
# python -m a2065.runners.multi

def parse_card(spec: str, url: Optional[str]) -> dict:
    """``TAP[,SERIAL[,NETNS[,URL]]]`` -> {tap, serial, netns, url} (ValueError on a bad one)."""
    parts = spec.split(",", 3)
    tap = parts[0]
    if not tap:
        raise ValueError(f"--card {spec!r}: the guest TAP name comes first")
    serial = int(parts[1], 0) if len(parts) > 1 and parts[1] else None
    netns = parts[2] if len(parts) > 2 and parts[2] else None
    card_url = parts[3] if len(parts) > 3 and parts[3] else url
    if not card_url:
        raise ValueError(f"--card {spec!r}: no URL (give --url or a fourth field)")
    return {"tap": tap, "serial": serial, "netns": netns, "url": card_url}


def main(argv=None) -> int:
    """Many cards in one process, each a plug of a VDE network with a guest TAP of its own."""
    import argparse
    import json
    import sys
    p = argparse.ArgumentParser(
        prog="python -m a2065.runners.multi", description=main.__doc__,
        epilog="example: python -m a2065.runners.multi --url vxvde://239.1.2.3 "
               "--card a2065m0 --card a2065m1,0x000102,guestns1")
    p.add_argument("--url", help="libvdeplug URL every card joins unless its --card names one "
                   "(/tmp/sw, vde:///tmp/sw, vxvde://239.1.2.3, cmd://ssh host vde_plug, ...)")
    p.add_argument("--card", action="append", required=True, metavar="TAP[,SERIAL[,NETNS[,URL]]]",
                   help="one card: its guest TAP (created in NETNS if given) and board serial "
                   "(default: 0x00A000 + its index), so its MAC; repeat for more cards")
    p.add_argument("--timing", choices=("wire", "fast"), default="wire")
    p.add_argument("--duration", type=float)
    p.add_argument("--json", action="store_true", help="print the final counters as JSON")
    a = p.parse_args(argv)
    from a2065 import A2065
    from a2065.runners.guest import open_guest_tap
    from pcap_backend.backends.vde import Vde
    from pcap_backend.base import BackendError
    try:
        specs = [parse_card(s, a.url) for s in a.card]
    except ValueError as e:
        p.error(str(e))
    loop = MultiCard(timing=a.timing)
    opened: list = []
    try:
        for i, sp in enumerate(specs):
            serial = sp["serial"] if sp["serial"] is not None else 0x00A000 + i
            mac = A2065(serial=serial).mac
            be = Vde(sp["url"], description=f"a2065-{serial:06x}")
            opened.append(be)
            tap, mc = open_guest_tap(sp["tap"], mac, sp["netns"])
            opened.append(tap)
            loop.add(be, tap, serial=serial, mac=mac, multicast=mc, name=tap.ifname)
            print(f"card {i}: {sp['url']} <-> A2065 {mac.hex(':')} <-> TAP {tap.ifname}"
                  + (f" in {sp['netns']}" if sp["netns"] else ""), file=sys.stderr, flush=True)
        print(f"{len(loop.cards)} cards, {a.timing} timing; Ctrl-C stops", file=sys.stderr,
              flush=True)
        loop.run(a.duration, handle_signals=True)
        st = loop.stats()
    except (BackendError, ValueError, OSError) as e:
        print(f"python -m a2065.runners.multi: error: {e}", file=sys.stderr)
        return 1
    finally:
        loop.close()
        for h in reversed(opened):
            h.close()
    if a.json:
        print(json.dumps(st, default=str))
    else:
        for c in st["cards"]:
            b = c["bridge"]
            print(f"{c['name']:16} delivered {b['delivered']:,} transmitted {b['transmitted']:,} "
                  f"tx failed {b['tx_failed']:,}")
        print(f"loop: {st['loops']:,} turns, {st['cpu_seconds']:.2f} CPU s, {st['frames']:,} frames")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
