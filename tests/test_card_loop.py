"""The one real-time card loop (`a2065.runners.multi.MultiCard`; `LiveBridge` is its one-card
form): when it services a card, and what it does for every card's recording. In-memory backends
only (no switch, no namespace, no root): a wire that takes what the card sends and a guest that
sends one ARP request."""
from __future__ import annotations

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

from netns import arp_request  # noqa: E402

from pcap_backend.base import Backend, Packet  # noqa: E402


class MemoryWire(Backend):
    """The network side: keeps what the card transmits, never receives, has no descriptor."""

    name = "memory-wire"

    def __init__(self):
        super().__init__("wire")
        self.sent: list = []

    def send(self, frame: bytes, t_ns: int) -> bool:
        self.sent.append(bytes(frame))
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list:
        return []

    @property
    def link_up(self) -> bool:
        return True

    def fileno(self):
        return None


class OneFrameGuest(MemoryWire):
    """The guest side: hands the card `frames` once, then stays quiet."""

    name = "one-frame-guest"

    def __init__(self, frames=()):
        super().__init__()
        self.out = list(frames)

    def poll(self, now_ns: int, limit: int = 64) -> list:
        out, self.out = [Packet(now_ns, f, None) for f in self.out[:limit]], self.out[limit:]
        return out


def test_an_idle_card_woken_by_its_own_deadline_is_serviced_in_the_turn_it_wakes():
    """An idle card in wire timing has only its chip's deadlines (the transmit-ring poll, every
    1.6 ms by the Am7990 datasheet). The loop sleeps until the next one and services the card in
    the turn that wakes: about one turn per deadline, not a wake-up that finds nothing due and a
    second turn for the card."""
    from a2065.runners.multi import MultiCard
    loop = MultiCard(timing="wire")
    card = loop.add(MemoryWire(), OneFrameGuest())
    try:
        loop.run(0.4)
    finally:
        loop.close()
    assert loop.loops >= 0.4 / 1.6e-3 * 0.5, loop.loops  # it did sleep deadline to deadline
    assert loop.loops <= 0.4 / 1.6e-3 * 1.5 + 10, loop.loops
    assert card.counters.turns >= 0.9 * loop.loops, (card.counters.turns, loop.loops)


def test_every_cards_recording_reaches_the_file_within_the_flush_interval_while_the_loop_runs(
        tmp_path):
    """Two cards, each with its own pcapng recording; each guest sends one ARP request, then
    nothing. The recorder itself writes only when a frame comes 0.5 s after its last write, so
    it is the loop's flush (every 0.5 s) that puts each card's frame on disk while the loop is
    still running: a killed process keeps what its cards saw."""
    from a2065 import A2065
    from a2065.runners.multi import MultiCard
    from pcap_backend.backends.pcapng_io import PcapngTee
    loop = MultiCard(timing="fast")
    frames, paths, recs = [], [], []
    for i in range(2):
        mac = A2065(serial=0x7B0000 + i).mac
        frames.append(arp_request(mac, f"10.81.0.{10 + i}", "10.81.0.1"))
        paths.append(tmp_path / f"card{i}.pcapng")
        recs.append(PcapngTee(paths[-1]))
        loop.add(MemoryWire(), OneFrameGuest([frames[-1]]), mac=mac, serial=0x7B0000 + i,
                 recorder=recs[-1])
    stop = threading.Event()
    th = threading.Thread(target=loop.run, kwargs={"stop": stop}, daemon=True)
    th.start()
    try:
        on_disk = [False, False]
        end = time.monotonic() + 3.0
        while not all(on_disk) and time.monotonic() < end:
            time.sleep(0.05)
            on_disk = [f in p.read_bytes() for f, p in zip(frames, paths)]
        assert th.is_alive(), loop.error
        assert on_disk == [True, True]
        assert [c.backend.sent[0][:len(f)] for c, f in zip(loop.cards, frames)] == frames
    finally:
        stop.set()
        th.join(5)
        loop.close()
        for r in recs:
            r.close()
    assert loop.error is None


def test_a_live_bridge_is_the_loop_with_one_card_and_reports_both_in_one_dict():
    """`LiveBridge` names its one card's parts at the top and flattens the card's counters and
    the loop's into one `stats()`, as `a2065 bridge --json` prints them."""
    from a2065.runners.live import LiveBridge
    from a2065.runners.multi import MultiCard
    mac = bytes.fromhex("008010123456")
    guest = OneFrameGuest([arp_request(mac, "10.81.0.2", "10.81.0.1")])
    lb = LiveBridge(MemoryWire(), guest, timing="fast", mac=mac)
    try:
        assert isinstance(lb, MultiCard) and lb.cards == [lb.card]
        assert lb.card._writer is not None  # fast timing: the guest TAP is written from a thread
        lb.run(0.2)
        st = lb.stats()
    finally:
        lb.close()
    assert (lb.runner, lb.bridge, lb.driver, lb.guest) == \
        (lb.card.runner, lb.card.bridge, lb.card.driver, guest)
    assert st["guest"]["from_guest"] == st["guest"]["sent"] == st["bridge"]["transmitted"] == 1
    assert lb.backend.sent[0][:42] == arp_request(mac, "10.81.0.2", "10.81.0.1")
    assert st["policy"] == "segment" and st["timing"] == "fast" and st["loops"] == lb.loops >= 1
    assert st["chip"]["balanced"] and st["interrupted"] is False and st["error"] is None
    assert 0.15 < st["seconds"] < 1.0 and st["cpu_seconds"] > 0
