"""Many cards in one process: one event loop serving N emulated cards (issue 13).

Each card is a `Card`: its own board + Am7990 + bridge + Linux-style driver (an
`a2065.runners.replay.Runner`), its own network backend (a `Vde` plug, a TAP, ...) and its own
guest backend (normally a TAP whose namespace's kernel is the emulated machine). Nothing is
shared between cards but the loop: no module state, so any number of `MultiCard` loops (one per
thread) can run in a process::

    loop = MultiCard(timing="fast")
    for i in range(8):
        loop.add(Vde("vxvde://239.7.0.1"), guest_tap_i, serial=0x10 + i)
    loop.run(duration=60)            # or stop=event / loop.stop() / SIGTERM (handle_signals)

From a shell: ``python -m a2065.runners.multi --url vxvde://239.1.2.3 --card a2065m0 --card
a2065m1,0x000102,guestns`` (one guest TAP per card, each in a namespace if given).

The loop waits on one epoll set holding every card's backend fd and guest fd (each tagged with
its card), so a turn steps only the cards that have input, a due deadline, a multicast list to
re-read or frames waiting for their driver's transmit ring; an idle card costs one deadline
lookup per turn. The cost grows with the work, not with N.

Time is as in `a2065.runners.live`: emulated ns = the card's time at start + wall ns since start.
In ``wire`` timing every due event of a card runs at its own emulated time (catch-up, bounded per
turn); ``fast`` completes events at once. Guest frames are read from the guest backend only while
the card's transmit ring (plus ``pending_frames``) has room, so a busy card pushes back into the
guest kernel's queue. Frames the driver receives are written to the guest backend synchronously
in the loop's thread.
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

__all__ = ["Card", "MultiCard", "CardCounters", "parse_card", "main"]

log = logging.getLogger("a2065.runners.multi")

#: bounded work per card per turn (guest batches moved, wire events caught up)
GUEST_ROUNDS = 4
CATCHUP_EVENTS = 4096


@dataclasses.dataclass
class CardCounters:
    to_guest: int = 0            # frames the driver received and the guest backend took
    to_guest_bytes: int = 0
    to_guest_failed: int = 0     # guest backend refused (TAP down or full)
    from_guest: int = 0          # frames read from the guest backend
    from_guest_bytes: int = 0
    sent: int = 0                # handed to driver.send
    pending_high: int = 0
    turns: int = 0               # loop turns in which this card was serviced
    multicast_updates: int = 0


class Card:
    """One emulated card of a `MultiCard` loop. Keyword arguments go to `Runner` (policy, mac,
    serial, delivery, bridge bounds, ...). `multicast`: an `a2065.runners.live.GuestMulticast`
    to mirror into the driver every `mcast_interval` seconds, or None."""

    def __init__(self, backend, guest, *, timing: str = "fast", multicast=None,
                 mcast_interval: float = 0.2, pending_frames: int = 64, guest_batch: int = 64,
                 name: Optional[str] = None, **runner_kw):
        from a2065.runners.replay import Runner
        self.backend = backend
        self.guest = guest
        self.timing = timing
        self.counters = CardCounters()
        self.runner = Runner(backend, timing=timing, on_receive=self._to_guest, **runner_kw)
        self.driver = self.runner.driver
        self.bridge = self.runner.bridge
        self.board = self.runner.board
        self.name = name or self.driver.mac.hex(":")
        self.multicast = multicast
        self.mcast_interval_ns = int(mcast_interval * 1e9)
        self._mcast_state = None
        self._mcast_next = 0
        self.pending: "collections.deque[bytes]" = collections.deque()
        self.pending_frames = pending_frames
        self.guest_batch = guest_batch
        self.base_ns = 0             # emulated = base_ns + wall ns (set when the loop starts)

    # -- guest side --------------------------------------------------------------------------
    def _to_guest(self, frame: bytes, t_ns: int) -> None:
        c = self.counters
        if self.guest.send(frame, t_ns):
            c.to_guest += 1
            c.to_guest_bytes += len(frame)
        else:
            c.to_guest_failed += 1

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
        if self.multicast is None or wall < self._mcast_next:
            return
        self._mcast_next = wall + self.mcast_interval_ns
        state = self.multicast.read()
        if state != self._mcast_state:
            self._mcast_state = state
            macs, allmulti, promisc = state
            self.driver.set_multicast(macs, allmulti=allmulti, promisc=promisc)
            self.counters.multicast_updates += 1

    @property
    def multicast_due_ns(self) -> int:
        """Wall ns at which the guest's multicast list is read again."""
        return self._mcast_next

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
        r.step(now)
        self.pump_guest(now)
        r.step(now)
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
        st["guest"] = dataclasses.asdict(self.counters)
        st["guest"]["pending"] = len(self.pending)
        st["guest_backend"] = self.guest.stats() if hasattr(self.guest, "stats") else {}
        chip = self.board.lance
        c = chip.counters
        st["chip"] = dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(vars(c))
        st["chip"]["balanced"] = bool(chip.counters_balanced())
        return st

    def close(self) -> None:
        self.bridge.close()
        if self.multicast is not None:
            self.multicast.close()


class MultiCard:
    """One event loop for many `Card`s (see the module docstring)."""

    def __init__(self, *, timing: str = "fast", max_sleep_ns: int = 2_000_000):
        self.timing = timing
        self.max_sleep_ns = max_sleep_ns
        self.cards: list = []
        self.loops = 0
        self.sleeps = 0
        self.cpu_ns = 0
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

    def run(self, duration: Optional[float] = None, *, stop=None, handle_signals: bool = False,
            on_turn: Optional[Callable[["MultiCard"], None]] = None) -> "MultiCard":
        """Serve every card until `duration` seconds passed, `stop()` (callable or Event) is
        true, `self.stop()` was called, or SIGINT/SIGTERM (handle_signals, main thread only).
        `on_turn(self)` runs once per turn (e.g. to watch link state)."""
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
        start = mono()
        self.started_ns = start
        cpu0 = time.thread_time_ns()
        for c in cards:
            c.base_ns = c.runner.now - start
        end = None if duration is None else start + int(duration * 1e9)
        due = set(range(len(cards)))      # cards to service this turn
        try:
            while not self._stop_flag:
                wall = mono()
                if end is not None and wall >= end:
                    break
                if stop is not None and stop():
                    break
                busy = set()
                for i in due:
                    if cards[i].service(wall):
                        busy.add(i)
                self.loops += 1
                if on_turn is not None:
                    on_turn(self)
                # who needs a turn next: cards that moved frames (look again at once), cards
                # with guest frames waiting for ring room, cards whose deadline is due
                nxt = set(busy)
                wait = self.max_sleep_ns
                now = mono()
                for i, c in enumerate(cards):
                    if c.multicast is not None and now >= c.multicast_due_ns:
                        nxt.add(i)
                    if c.pending:
                        nxt.add(i)
                        wait = min(wait, 50_000)
                    t = c.next_wall_deadline()
                    if t is not None:
                        if t <= now:
                            nxt.add(i)
                        else:
                            wait = min(wait, t - now)
                if busy:
                    wait = 0
                elif nxt and wait <= 0:
                    wait = 20_000   # a deadline at "now" that moved nothing: do not spin
                self.sleeps += wait > 0
                for fd, _ev in ep.poll(wait / 1e9 if wait > 0 else 0):
                    nxt.add(owner[fd])
                due = nxt
        except Exception as e:  # noqa: BLE001 - report, let the caller print final counters
            self.error = f"{type(e).__name__}: {e}"
            log.error("multi-card loop stopped: %s", self.error)
            raise
        finally:
            self.stopped_ns = mono()
            self.cpu_ns += time.thread_time_ns() - cpu0
            ep.close()
            for sig, h in old.items():
                signal.signal(sig, h)
        return self

    def stats(self) -> dict:
        st = {"cards": [c.stats() for c in self.cards], "loops": self.loops,
              "sleeps": self.sleeps, "cpu_seconds": self.cpu_ns / 1e9,
              "frames": self.frames(), "interrupted": self.interrupted, "error": self.error,
              "timing": self.timing}
        if self.started_ns is not None:
            st["seconds"] = ((self.stopped_ns or time.monotonic_ns()) - self.started_ns) / 1e9
        return st

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
    from a2065.runners.live import open_guest_tap
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
