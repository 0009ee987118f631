"""Many cards in one process (issue 13): `a2065.runners.multi.MultiCard`, one event loop serving
N cards, each with its own backend (a plug of one test-started vde_switch) and its own guest.

The guests here are `ScriptedGuest`s: a minimal IPv4 host in Python (ARP and ICMP echo, as a
guest kernel would answer them) that also asks each other guest's address by ARP and pings it.
Every frame crosses the emulated chip twice (guest -> card -> switch -> card -> guest). No root
needed; the kernels-behind-TAPs version of this is tests/test_vde_distributed.py.

Debian packages: vde2 (vde_switch), libvdeplug2.
"""
from __future__ import annotations

import collections
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

import pytest  # noqa: E402

from test_usermode_vde import pytestmark, responder_frames, start_switch, stop  # noqa: E402,F401

from pcap_backend.base import Backend, Packet  # noqa: E402



def guest_ip(i: int) -> str:
    return f"10.79.0.{10 + i}"


class ScriptedGuest(Backend):
    """The machine behind one card: answers ARP and ICMP echo for its address, and on `ask(ip)`
    sends ARP requests, then one echo request, until the echo reply comes back. `reached` holds
    the addresses that answered (with the MAC they answered from)."""

    name = "guest"

    def __init__(self, mac: bytes, ip: str):
        super().__init__(f"guest.{ip}")
        self.mac, self.ip = mac, ip
        self.out: collections.deque = collections.deque()
        self.asking: dict = {}          # ip -> MAC once ARP answered (None before)
        self.reached: dict = {}         # ip -> MAC once the echo came back
        self.frames_in = 0
        self.pings_left = 0             # after the first echo reply: this many more, one by one
        self.echoes = 0

    def ask(self, ip: str) -> None:
        from netns import arp_request
        self.asking[ip] = None
        self.out.append(arp_request(self.mac, self.ip, ip))

    def retry(self) -> None:
        from netns import arp_request, icmp_echo
        for ip, mac in self.asking.items():
            if ip in self.reached:
                continue
            self.out.append(arp_request(self.mac, self.ip, ip) if mac is None
                            else icmp_echo(self.mac, mac, self.ip, ip))

    # -- what the card's driver hands up ---------------------------------------------------
    def send(self, frame: bytes, t_ns: int) -> bool:
        from netns import icmp_echo, is_arp_reply, is_echo_reply
        self.frames_in += 1
        self.out.extend(responder_frames(frame, self.mac, self.ip))
        for ip, mac in list(self.asking.items()):
            if mac is None and is_arp_reply(frame, ip, self.mac):
                self.asking[ip] = bytes(frame[22:28])
                self.out.append(icmp_echo(self.mac, self.asking[ip], self.ip, ip))
            elif mac is not None and is_echo_reply(frame, ip):
                self.reached[ip] = mac
                self.echoes += 1
                if self.pings_left > 0:
                    self.pings_left -= 1
                    self.out.append(icmp_echo(self.mac, mac, self.ip, ip, seq=self.echoes + 1))
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list:
        out = []
        while self.out and len(out) < limit:
            out.append(Packet(now_ns, self.out.popleft(), None))
        return out

    @property
    def link_up(self) -> bool:
        return True

    def fileno(self):
        return None


@pytest.fixture
def switch():
    tmp = tempfile.mkdtemp(prefix="a2065-multi-")
    sw = os.path.join(tmp, "switch")
    p = start_switch(sw)
    try:
        yield sw
    finally:
        stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def build(loop, sw: str, n: int, first: int = 0):
    from a2065 import A2065
    from pcap_backend.backends.vde import Vde
    out = []
    for i in range(first, first + n):
        serial = 0x7A0000 + i
        mac = A2065(serial=serial).mac
        g = ScriptedGuest(mac, guest_ip(i))
        card = loop.add(Vde(sw, description=f"multi-{i}"), g, serial=serial, mac=mac)
        out.append((card, g))
    return out


def run_until_reached(loop, guests, timeout: float = 20.0, *, others=()) -> None:
    """Run `loop` until its `guests` have reached every address they ask for, and so have the
    `others` (guests served by another loop in another thread: only read here, so a loop that
    finishes first keeps answering them), or until `timeout`."""
    state = {"next": time.monotonic() + 0.3, "end": time.monotonic() + timeout}

    def done() -> bool:
        if all(set(g.asking) <= set(g.reached) and g.pings_left == 0
               for g in (*guests, *others)):
            return True
        if time.monotonic() > state["next"]:
            state["next"] = time.monotonic() + 0.3
            for g in guests:
                g.retry()
        return time.monotonic() > state["end"]
    loop.run(stop=done)


def close_all(loop):
    loop.close()
    for c in loop.cards:
        c.backend.close()


def test_one_loop_serving_four_cards_carries_arp_and_ping_between_every_pair_of_their_guests(switch):
    from a2065.runners.multi import MultiCard
    loop = MultiCard(timing="fast")
    try:
        pairs = build(loop, switch, 4)
        guests = [g for _, g in pairs]
        for g in guests:
            for h in guests:
                if h is not g:
                    g.ask(h.ip)
        run_until_reached(loop, guests)
        for g in guests:
            assert g.reached == {h.ip: h.mac for h in guests if h is not g}, g.ip
        # four distinct cards: distinct MACs, each with its own backend, every frame of a guest
        # went out through its own card's chip
        assert len({c.driver.mac for c, _ in pairs}) == 4
        assert len({id(c.backend) for c, _ in pairs}) == 4
        for card, g in pairs:
            st = card.stats()
            assert st["chip"]["balanced"], st["chip"]
            assert st["guest"]["from_guest"] == st["guest"]["sent"] >= 6
            assert st["bridge"]["transmitted"] == st["guest"]["sent"]
            assert st["guest"]["to_guest"] == g.frames_in == st["driver"]["rx_frames"] >= 6
            assert st["backend"]["tx_failed"] == {}
    finally:
        close_all(loop)


def test_cards_without_traffic_are_not_stepped_every_turn(switch):
    """Eight cards, traffic only between the guests of cards 0 and 1 (ARP, then 300 pings one
    after the other): the loop steps an idle card only at its own deadlines, not every turn."""
    from a2065.runners.multi import MultiCard
    loop = MultiCard(timing="fast")
    try:
        pairs = build(loop, switch, 8)
        (c0, g0), (c1, g1) = pairs[0], pairs[1]
        g0.pings_left = 300
        g0.ask(g1.ip)
        run_until_reached(loop, [g0, g1], timeout=60)
        assert g0.reached == {g1.ip: g1.mac} and g0.echoes >= 300
        busy = min(c0.counters.turns, c1.counters.turns)
        assert busy >= 300
        # the broadcast ARP request reached every card (to their guests), the unicast echoes
        # only cards 0 and 1: an idle card is stepped for its own deadlines only (its chip's
        # transmit-ring poll, every 1.6 ms by the Am7990 datasheet), not once per loop turn
        seconds = (loop.stopped_ns - loop.started_ns) / 1e9
        for c, _ in pairs[2:]:
            assert c.counters.turns <= seconds / 1.6e-3 * 1.25 + 10, \
                (c.counters.turns, seconds, busy, loop.loops)
            assert c.counters.from_guest == 0 and c.counters.to_guest <= 2, c.counters
    finally:
        close_all(loop)


def test_two_loops_in_two_threads_share_no_state_and_their_cards_reach_each_other(switch):
    """No module-level state: two MultiCard loops, one per thread, two cards each, all on one
    switch; every guest reaches every other, across the loops too."""
    from a2065.runners.multi import MultiCard
    loops = [MultiCard(timing="fast"), MultiCard(timing="fast")]
    try:
        sets = [build(loops[0], switch, 2, 0), build(loops[1], switch, 2, 2)]
        guests = [g for s in sets for _, g in s]
        for g in guests:
            for h in guests:
                if h is not g:
                    g.ask(h.ip)
        errors = []

        def worker(loop, mine):
            try:
                run_until_reached(loop, mine, others=[g for g in guests if g not in mine])
            except BaseException as e:  # noqa: BLE001 - surfaced below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(lp, [g for _, g in s]))
                   for lp, s in zip(loops, sets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        for g in guests:
            assert set(g.reached) == {h.ip for h in guests if h is not g}, g.ip
        assert {c.runner.board is d.runner.board for c in loops[0].cards
                for d in loops[1].cards} == {False}
    finally:
        for lp in loops:
            close_all(lp)


def test_a_loop_stops_on_its_event_and_reports_cpu_and_frames(switch):
    from a2065.runners.multi import MultiCard
    loop = MultiCard(timing="fast")
    try:
        build(loop, switch, 2)
        ev = threading.Event()
        threading.Timer(0.3, ev.set).start()
        t0 = time.monotonic()
        loop.run(stop=ev)
        assert 0.25 < time.monotonic() - t0 < 5
        st = loop.stats()
        assert st["error"] is None and len(st["cards"]) == 2 and st["loops"] >= 1
        assert 0 < st["cpu_seconds"] <= st["seconds"] + 0.05
    finally:
        close_all(loop)



def test_card_specs_name_tap_serial_namespace_and_url():
    from a2065.runners.multi import parse_card
    assert parse_card("t0", "/tmp/sw") == {"tap": "t0", "serial": None, "netns": None,
                                           "url": "/tmp/sw"}
    assert parse_card("t1,0x0102,ns1", "vxvde://239.1.2.3") == \
        {"tap": "t1", "serial": 0x102, "netns": "ns1", "url": "vxvde://239.1.2.3"}
    assert parse_card("t2,,,cmd://ssh h vde_plug a,b", None)["url"] == "cmd://ssh h vde_plug a,b"
    with pytest.raises(ValueError, match="no URL"):
        parse_card("t3", None)
    with pytest.raises(ValueError, match="TAP"):
        parse_card(",1", "/tmp/sw")


@pytest.mark.root
def test_the_command_runs_two_cards_whose_guest_kernels_ping_each_other(switch, tmp_path):
    """``python -m a2065.runners.multi --url SWITCH --card TAP,SERIAL,NETNS`` twice: one process,
    two cards, each guest TAP in its own namespace with its card's MAC; the two guest kernels
    ping each other through the cards and the switch; SIGTERM ends it with both cards' counters."""
    import json
    import signal
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, TAP)")
    from netns import netns, run, unique
    from test_usermode_vde import card_mac, kernel_ping
    root = os.path.dirname(HERE)
    with netns("a2m1") as n1, netns("a2m2") as n2:
        taps = [unique("a2mt"), unique("a2mt")]
        p = subprocess.Popen(
            [sys.executable, "-m", "a2065.runners.multi", "--url", switch, "--timing", "fast",
             "--json", "--card", f"{taps[0]},0x7b0001,{n1}", "--card", f"{taps[1]},0x7b0002,{n2}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
            env=dict(os.environ, PYTHONPATH=root))
        try:
            for ns, tap, ip in ((n1, taps[0], "10.79.1.1"), (n2, taps[1], "10.79.1.2")):
                for _ in range(300):
                    if run(["ip", "link", "show", tap], ns=ns, check=False).returncode == 0:
                        break
                    assert p.poll() is None, p.stderr.read()
                    time.sleep(0.02)
                run(["ip", "addr", "add", f"{ip}/24", "dev", tap], ns=ns)
                run(["ip", "link", "set", tap, "up"], ns=ns)
            assert kernel_ping(n1, "10.79.1.2", timeout=10)
            assert kernel_ping(n2, "10.79.1.1", timeout=10)
            from test_usermode_vde import neighbour_mac
            assert neighbour_mac(n1, "10.79.1.2") == card_mac(0x7B0002)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        assert p.returncode == 0, err
        st = json.loads(out.strip().splitlines()[-1])
        assert st["interrupted"] and st["error"] is None and len(st["cards"]) == 2
        for c in st["cards"]:
            assert c["chip"]["balanced"] and c["bridge"]["transmitted"] >= 2
            assert c["driver"]["rx_frames"] >= 2 and c["backend"]["tx_failed"] == {}
