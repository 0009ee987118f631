"""VDE: emulated cards in separate processes and a kernel TAP on one vde_switch (issue 9).

Every test starts its own vde_switch (control directory in a private temp dir).

The full segment (root; fixture `three_kernels`): three namespaces, three real Linux TCP/IP
stacks on one switch. Namespaces g1 and g2 each hold a guest TAP whose kernel is the machine
behind an emulated card; each card runs in its own process (`python tests/test_usermode_vde.py
card SWITCH TAP SERIAL`, started inside its namespace): `Vde` backend <-> `a2065.runners.live.LiveBridge`
(fast timing) <-> TAP, with distinct serials 0x000A01 / 0x000B02, so distinct MACs. Namespace k
holds the TAP of `vde_plug2tap`. Every pair (card1-card2, card1-tap, card2-tap) resolves the other
by ARP, pings both ways, and carries a TCP stream (a2065.rig tcp-send/tcp-recv, SHA-256 at both
ends and against the deterministic stream). Then, with a TCP stream in flight, the switch is
killed: both card processes report the link down with the typed `PeerGone` and keep running,
their failed transmits are counted (tx_failed peer_gone = the chip's LCAR); the switch is
restarted, the TAP re-plugged (vde_plug2tap exits with its switch), both cards rejoin by
themselves, every pair pings again and the stream that was in flight completes intact.

Without root: card A in this process and card B, a responder without a TCP stack (`python
tests/test_usermode_vde.py responder SWITCH IP MAC`: card + Python driver answering ARP and ICMP
echo), ARP and ping each other; killing the switch is a counted link-down with a typed error, the
same backend object rejoins (same fileno) when the switch is back; a missing switch or
libvdeplug is a typed error naming what to install.

Found here: vde_switch takes frames on a UNIX datagram socket whose queue holds
net.unix.max_dgram_qlen (10 by default) frames; a card that outpaces the switch gets EAGAIN. The
backend keeps such frames in a bounded output queue (256 frames) and sends them when the socket
is writable again, so the traffic test requires that no transmit failed at all.

Debian packages: vde2 (vde_switch, vde_plug2tap), libvdeplug2, iproute2.
"""
from __future__ import annotations

import collections
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

import pytest  # noqa: E402

from test_usermode_rig import CardPump  # noqa: E402

from pcap_backend.base import BackendUnavailable  # noqa: E402
from a2065.rig.events import EventChild  # noqa: E402
from a2065.rig.guest import start_switch, stop_switch as stop  # noqa: E402
from conftest import library_loads, require_package, requires_package, which  # noqa: E402

MAC_A = bytes.fromhex("008010000a0a")
MAC_B = bytes.fromhex("008010000b0b")
IP_A, IP_B, IP_K = "10.77.0.10", "10.77.0.11", "10.77.0.1"


pytestmark = [
    requires_package("vde2", which("vde_switch"), "vde_switch"),
    requires_package("libvdeplug2", library_loads("vde", "load_libvdeplug")),
]


def responder_frames(frame: bytes, mac: bytes, ip: str):
    """The replies a minimal IPv4 host gives: ARP reply, ICMP echo reply."""
    from test_usermode_rig import _csum
    ipb = socket.inet_aton(ip)
    if len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01" \
            and frame[38:42] == ipb:
        return [frame[6:12] + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2)
                + mac + ipb + frame[22:28] + frame[28:32]]
    if len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[23] == 1 and frame[30:34] == ipb:
        ihl = (frame[14] & 0xF) * 4
        tot = struct.unpack_from("!H", frame, 16)[0]
        icmp = bytearray(frame[14 + ihl:14 + tot])
        if icmp[0] != 8:
            return []
        icmp[0] = 0
        icmp[2:4] = b"\0\0"
        icmp[2:4] = struct.pack("!H", _csum(bytes(icmp)))
        iph = bytearray(frame[14:14 + ihl])
        iph[12:16], iph[16:20] = frame[30:34], frame[26:30]
        iph[8] = 64
        iph[10:12] = b"\0\0"
        iph[10:12] = struct.pack("!H", _csum(bytes(iph)))
        return [frame[6:12] + mac + b"\x08\x00" + bytes(iph) + bytes(icmp)]
    return []


def run_responder(switch: str, ip: str, mac: bytes, seconds: float = 60.0) -> None:
    from pcap_backend.backends.vde import Vde
    b = Vde(switch, description="a2065-card-B", reconnect=True)
    pump = None

    def on_guest(f):
        for r in responder_frames(f, mac, ip):
            pump.guest_send(r)

    pump = CardPump(b, on_guest, mac=mac)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and os.getppid() != 1:
        pump.pump(0.005)
    b.close()


class CardA:
    def __init__(self, switch):
        from pcap_backend.backends.vde import Vde
        self.backend = Vde(switch, description="a2065-card-A", reconnect_interval=0.2)
        self.got = collections.deque()
        self.pump = CardPump(self.backend, self.got.append, mac=MAC_A)

    def exchange(self, frame, pred, timeout=5.0, resend=0.5):
        end = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < end:
            if time.monotonic() - last > resend:
                self.pump.guest_send(frame)
                last = time.monotonic()
            self.pump.pump(0.005)
            while self.got:
                f = self.got.popleft()
                if pred(f):
                    return f
        return None

    def arp_ping(self, ip):
        from netns import arp_request, icmp_echo, is_arp_reply, is_echo_reply
        r = self.exchange(arp_request(MAC_A, IP_A, ip), lambda f: is_arp_reply(f, ip, MAC_A))
        assert r is not None, f"no ARP reply from {ip}: {self.backend.stats()}"
        peer = r[22:28]
        e = self.exchange(icmp_echo(MAC_A, peer, IP_A, ip), lambda f: is_echo_reply(f, ip))
        assert e is not None, f"no echo reply from {ip}: {self.backend.stats()}"
        return peer


def kernel_ping(ns, ip, card=None, timeout=5.0) -> bool:
    """a2065.rig's kernel_ping; `card` (a CardA) is pumped meanwhile and answers for IP_A."""
    from a2065.rig.core import kernel_ping as rig_kernel_ping

    def pump():
        card.pump.pump(0.005)
        while card.got:
            for f in responder_frames(card.got.popleft(), MAC_A, IP_A):
                card.pump.guest_send(f)
    return rig_kernel_ping(ns, ip, timeout=timeout, while_waiting=pump if card else None)


@pytest.fixture
def segment():
    """A test-started vde_switch and card B (the responder) in a child process; no root needed."""
    tmp = tempfile.mkdtemp(prefix="a2065-vde-")
    sw = os.path.join(tmp, "switch")
    procs = []
    try:
        switch = start_switch(sw)
        procs.append(switch)
        b = subprocess.Popen([sys.executable, os.path.abspath(__file__), "responder", sw, IP_B,
                              MAC_B.hex()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        procs.append(b)
        assert b.stdout.readline().strip() == "ready", b.stderr.read()
        yield {"switch_dir": sw, "tmp": tmp, "switch": switch, "card_b": b, "procs": procs}
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_card_reaches_a_card_in_another_process_through_the_switch_with_arp_and_ping(segment):
    a = CardA(segment["switch_dir"])
    try:
        assert a.arp_ping(IP_B) == MAC_B
        st = a.backend.stats()
        assert st["link_up"] and st["tx_frames"] >= 2 and st["rx_frames"] >= 2
    finally:
        a.backend.close()


def test_killing_the_switch_mid_run_is_a_counted_link_down_and_the_card_rejoins(segment):
    from netns import arp_request
    from pcap_backend.backends.usermode import PeerGone
    a = CardA(segment["switch_dir"])
    try:
        assert a.arp_ping(IP_B) == MAC_B
        fd = a.backend.fileno()
        stop(segment["switch"])
        end = time.monotonic() + 5
        while a.backend.link_up and time.monotonic() < end:
            a.pump.guest_send(arp_request(MAC_A, IP_A, IP_B))
            a.pump.pump(0.01)
        assert not a.backend.link_up
        assert isinstance(a.backend.error, PeerGone)
        st = a.backend.stats()
        assert st["tx_failed"].get("peer_gone", 0) + (st["error"] is not None) >= 1
        # the chip saw the failed transmits as loss of carrier
        for _ in range(20):
            a.pump.guest_send(arp_request(MAC_A, IP_A, IP_B))
            a.pump.pump(0.01)
        assert a.backend.stats()["tx_failed"].get("peer_gone", 0) >= 1
        assert a.pump.runner.stats()["bridge"]["tx_failed"] >= 1
        segment["switch"] = start_switch(segment["switch_dir"])
        segment["procs"].append(segment["switch"])
        end = time.monotonic() + 10
        while not a.backend.link_up and time.monotonic() < end:
            a.pump.pump(0.05)
        assert a.backend.link_up and a.backend.reconnects == 1
        assert a.backend.fileno() == fd  # a host loop that took the fd once keeps working
        assert a.arp_ping(IP_B) == MAC_B  # card B rejoined by itself too
    finally:
        a.backend.close()


# ---------------------------------------------------------------------------------------------
# The full segment: three kernels on one switch (root)
#
#   namespace g1 (kernel)          namespace g2 (kernel)          namespace k (kernel)
#   TAP, MAC of serial 0x000A01    TAP, MAC of serial 0x000B02    TAP of vde_plug2tap
#   10.77.0.21                     10.77.0.22                     10.77.0.1
#      | a2065.runners.live.LiveBridge        | a2065.runners.live.LiveBridge        |
#   card process 1 (Vde)           card process 2 (Vde)           |
#      +------------------------- vde_switch (test's temp dir) -------+

CARD1_SERIAL, CARD2_SERIAL = 0x000A01, 0x000B02
IP_1, IP_2 = "10.77.0.21", "10.77.0.22"
TAP_K_MAC = "02:a2:06:5e:00:01"  # locally administered; fixed so it survives a re-plug
ROOT = os.path.dirname(HERE)


def card_mac(serial: int) -> bytes:
    from a2065.board import A2065
    return A2065(serial=serial).mac


def run_card(switch: str, tap_name: str, serial: int, seconds: float = 180.0) -> None:
    """One emulated card in this process (`python tests/test_usermode_vde.py card SWITCH TAP
    SERIAL`, started inside its guest namespace): Vde backend <-> a2065.runners.live.LiveBridge (fast
    timing) <-> a TAP with the card's MAC whose kernel is the guest. Prints one JSON line per
    event: ready, link_down (the backend's typed error), link_up, and final (all counters) after
    SIGTERM."""
    import ctypes
    import json
    import signal
    from a2065.runners.live import LiveBridge, open_guest_tap
    from pcap_backend.backends.vde import Vde
    from pcap_backend.base import BackendError
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the test

    def say(**doc):
        print(json.dumps(doc, default=str), flush=True)

    mac = card_mac(serial)
    b = Vde(switch, description=f"a2065-card-{serial:06x}", reconnect_interval=0.2)
    tap, mc = open_guest_tap(tap_name, mac)
    lb = LiveBridge(b, tap, timing="fast", multicast=mc, mac=mac, serial=serial)
    state = {"up": b.link_up, "downs": 0}

    def watch() -> bool:  # called by the loop once per turn: report link transitions
        up = b.link_up
        if up != state["up"]:
            state["up"] = up
            if up:
                say(event="link_up", reconnects=b.reconnects)
            else:
                state["downs"] += 1
                e = b.error
                say(event="link_down", error_type=type(e).__name__,
                    backend_error=isinstance(e, BackendError), message=str(e),
                    link_downs=state["downs"])
        return False

    say(event="ready", mac=mac.hex(":"), tap=tap.ifname, pid=os.getpid())
    try:
        lb.run(seconds, stop=watch, handle_signals=True)
        st = lb.stats()
    finally:
        lb.close()
        tap.close()
        b.close()
    st["link_downs"] = state["downs"]
    say(event="final", stats=st)


class CardProcess(EventChild):
    """A `run_card` child inside namespace `ns`, reporting JSON events."""

    def __init__(self, ns: str, switch: str, tap: str, serial: int, tmp: str):
        self.ns, self.tap, self.serial, self.mac = ns, tap, serial, card_mac(serial)
        super().__init__(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                          "card", switch, tap, hex(serial)],
                         os.path.join(tmp, f"card-{serial:06x}.stderr"), f"card {serial:06x}")


def plug_tap(ns: str, switch_dir: str, tap: str) -> subprocess.Popen:
    """vde_plug2tap with its TAP in `ns`: the TAP gets TAP_K_MAC and IP_K and comes up. The plug
    (and with it the TAP) goes away when the switch does, so a restarted switch is plugged anew."""
    from netns import run
    plug = subprocess.Popen(["ip", "netns", "exec", ns, "vde_plug2tap", "-s", switch_dir, tap],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if run(["ip", "link", "show", tap], ns=ns, check=False).returncode == 0:
                break
            if plug.poll() is not None:
                raise RuntimeError(f"vde_plug2tap exited: {plug.stderr.read()!r}")
            time.sleep(0.02)
        run(["ip", "link", "set", tap, "address", TAP_K_MAC], ns=ns)
        run(["ip", "addr", "add", f"{IP_K}/24", "dev", tap], ns=ns)
        run(["ip", "link", "set", tap, "up"], ns=ns)
    except BaseException:
        stop(plug)
        raise
    return plug


@pytest.fixture
def three_kernels():
    """Switch; namespace k with the vde_plug2tap TAP; namespaces g1, g2, each with a card
    process whose guest TAP carries 10.77.0.21 / .22. Everything is killed and removed after."""
    import types
    from netns import netns, run, unique
    require_package("vde2", which("vde_plug2tap"), "vde_plug2tap")
    tmp = tempfile.mkdtemp(prefix="a2065-vde3-")
    sw = os.path.join(tmp, "switch")
    procs: list = []
    cards: list = []
    try:
        with netns("a2vk") as ns_k, netns("a2v1") as ns_1, netns("a2v2") as ns_2:
            for ns in (ns_k, ns_1, ns_2):
                for scope in ("all", "default"):
                    run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"], ns=ns,
                        check=False)
                run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=ns)
            procs.append(start_switch(sw))
            tap_k = unique("a2vk")
            procs.append(plug_tap(ns_k, sw, tap_k))
            for ns, serial in ((ns_1, CARD1_SERIAL), (ns_2, CARD2_SERIAL)):
                cards.append(CardProcess(ns, sw, unique("a2vg"), serial, tmp))
            for c, ip in zip(cards, (IP_1, IP_2)):
                ready = c.wait_event("ready", 30)
                assert ready["mac"] == c.mac.hex(":") and ready["tap"] == c.tap
                run(["ip", "addr", "add", f"{ip}/24", "dev", c.tap], ns=c.ns)
            seg = types.SimpleNamespace(
                tmp=tmp, switch_dir=sw, procs=procs, ns_k=ns_k, tap_k=tap_k, cards=cards,
                # name -> (namespace, address, MAC)
                nodes={"card1": (ns_1, IP_1, card_mac(CARD1_SERIAL)),
                       "card2": (ns_2, IP_2, card_mac(CARD2_SERIAL)),
                       "tap": (ns_k, IP_K, bytes.fromhex(TAP_K_MAC.replace(":", "")))})
            seg.switch = procs[0]
            try:
                yield seg
            finally:  # before the namespaces go: stop the cards while their TAPs exist
                for c in cards:
                    c.kill()
    finally:
        for c in cards:
            c.kill()
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


PAIRS = (("card1", "card2"), ("card1", "tap"), ("card2", "tap"))


def neighbour_mac(ns: str, ip: str):
    """The link-layer address the kernel of `ns` resolved `ip` to (ARP), or None."""
    import json
    from netns import run
    for n in json.loads(run(["ip", "-j", "neigh", "show", "to", ip], ns=ns).stdout or "[]"):
        if n.get("lladdr"):
            return bytes.fromhex(n["lladdr"].replace(":", ""))
    return None


def spawn_tool(procs: list, ns: str, *args) -> subprocess.Popen:
    from a2065.rig.core import spawn_tool as rig_spawn_tool
    return rig_spawn_tool(procs, ns, *args)


def tcp_streams(seg, flows, *, nbytes=0, duration=0.0, seed_base=70):
    """Start one a2065.rig TCP stream per (sender, receiver) flow, all at once: a receiver in the
    receiver's namespace, then a sender connecting to its address. Returns [(flow, seed, recv
    process, send process)]; `stream_results` waits for them."""
    started = []
    for i, (src, dst) in enumerate(flows):
        port = 5100 + i
        ns_d, ip_d, _ = seg.nodes[dst]
        rx = spawn_tool(seg.procs, ns_d, "tcp-recv", "--bind", ip_d, "--port", port)
        args = ["--bytes", nbytes] if nbytes else ["--duration", duration]
        tx = spawn_tool(seg.procs, seg.nodes[src][0], "tcp-send", "--to", ip_d, "--port", port,
                        "--seed", seed_base + i, *args)
        started.append(((src, dst), seed_base + i, rx, tx))
    return started


def stream_results(started, timeout=180.0):
    """Wait for every stream; check both ends: the receiver got EOF and exactly the bytes the
    sender counted, and both SHA-256 digests equal that of the deterministic stream."""
    import hashlib
    from a2065.rig import Rig, stream_bytes
    out = {}
    for flow, seed, rx, tx in started:
        sent, got = Rig.result(tx, timeout), Rig.result(rx, timeout)
        expect = hashlib.sha256(stream_bytes(seed, sent["bytes"])).hexdigest()
        assert sent["bytes"] > 0 and got["eof"], (flow, sent, got)
        assert got["bytes"] == sent["bytes"], (flow, sent["bytes"], got["bytes"])
        assert sent["sha256"] == expect and got["sha256"] == expect, flow
        assert sent["peer_closed"], flow
        out[flow] = sent
    return out


def ping_all(seg, timeout=10.0):
    """Every kernel pings every other (both directions of the three pairs)."""
    for a, b in PAIRS:
        for src, dst in ((a, b), (b, a)):
            assert kernel_ping(seg.nodes[src][0], seg.nodes[dst][1], timeout=timeout), \
                f"{src} -> {dst}: no echo reply; {[c.stderr() for c in seg.cards]}"


def check_card_counters(st: dict, serial: int) -> None:
    """The loop ended cleanly, nothing was lost on the way in, and every transmit the backend
    refused is one the chip reported as loss of carrier (LCAR)."""
    assert st["error"] is None, st["error"]
    failed = st["backend"]["tx_failed"]
    assert st["bridge"]["tx_failed"] == sum(failed.values()) == st["chip"]["tx_lcar"], \
        (serial, failed, st["bridge"]["tx_failed"], st["chip"]["tx_lcar"])
    assert st["chip"]["balanced"], st["chip"]
    assert st["chip"]["rx_missed"] == 0 and st["bridge"]["missed"] == 0, st["bridge"]
    assert st["guest"]["to_guest_failed"] == 0, st["guest"]
    assert st["backend"]["rx_errors"] == {}, st["backend"]
    assert st["driver"]["rx_frames"] == st["bridge"]["delivered"], (serial, st["driver"],
                                                                    st["bridge"])


@pytest.mark.root
@pytest.mark.parametrize("nbytes", [4_000_000, pytest.param(64_000_000, marks=pytest.mark.slow)])
def test_guest_kernels_behind_two_card_processes_and_a_kernel_tap_arp_ping_and_move_tcp_intact(
        three_kernels, nbytes):
    """Three kernels on one vde_switch: two guests, each behind an emulated card in its own
    process (distinct serials, so distinct MACs), and a vde_plug2tap TAP. Every pair resolves the
    other by ARP (to the card's MAC / the TAP's), pings both ways, and carries a TCP stream intact
    (SHA-256 at both ends): card1 -> card2, card2 -> tap, tap -> card1, all at once."""
    seg = three_kernels
    assert seg.nodes["card1"][2] != seg.nodes["card2"][2]
    ping_all(seg)
    for a, b in PAIRS:
        for src, dst in ((a, b), (b, a)):
            assert neighbour_mac(seg.nodes[src][0], seg.nodes[dst][1]) == seg.nodes[dst][2], \
                (src, dst)
    flows = [("card1", "card2"), ("card2", "tap"), ("tap", "card1")]
    moved = stream_results(tcp_streams(seg, flows, nbytes=nbytes))
    assert {f: r["bytes"] for f, r in moved.items()} == {f: nbytes for f in flows}
    for c in seg.cards:
        st = c.finish()
        check_card_counters(st, c.serial)
        assert st["link_downs"] == 0 and st["backend"]["reconnects"] == 0
        # a switch that falls behind (EAGAIN on its datagram socket) costs no frame: the
        # backend's bounded output queue holds them until the socket is writable again
        assert st["backend"]["tx_failed"] == {}, st["backend"]["tx_failed"]
        assert st["backend"]["tx_queued"] == 0, st["backend"]
        # each card carried one stream out and one in
        assert st["bridge"]["delivered_bytes"] > nbytes and st["bridge"]["transmitted_bytes"] > nbytes


@pytest.mark.root
def test_killing_the_switch_under_traffic_is_a_typed_link_down_in_both_card_processes_and_all_recover(
        three_kernels):
    """With a TCP stream card1 -> card2 in flight, the switch is killed (SIGKILL): both card
    processes report the link down with the backend's typed error (PeerGone, a BackendError) and
    keep running; pings across the dead switch go unanswered, the cards count those transmits as
    failed (tx_failed peer_gone, the chip's LCAR). The switch is restarted and the TAP re-plugged:
    both cards rejoin by themselves (one reconnect each), every pair pings again, and the stream
    that was in flight completes intact."""
    from netns import run
    seg = three_kernels
    ping_all(seg)
    started = tcp_streams(seg, [("card1", "card2")], duration=3.0)
    time.sleep(0.3)  # let the stream get going
    killed_ns = time.monotonic_ns()
    stop(seg.switch)
    for c in seg.cards:
        ev = c.wait_event("link_down")
        assert ev["error_type"] == "PeerGone" and ev["backend_error"], ev
        assert "is gone" in ev["message"] and seg.switch_dir in ev["message"], ev
    # both loops survive the outage and the guests' transmits fail as loss of carrier
    for c, dst in ((seg.cards[0], IP_2), (seg.cards[1], IP_1)):
        assert not kernel_ping(c.ns, dst, timeout=1.0), "an echo crossed a dead switch"
        assert c.alive(), c.stderr()
    assert run(["ip", "link", "show", seg.tap_k], ns=seg.ns_k, check=False).returncode != 0, \
        "vde_plug2tap outlived the switch"

    seg.switch = start_switch(seg.switch_dir)
    seg.procs.append(seg.switch)
    seg.procs.append(plug_tap(seg.ns_k, seg.switch_dir, seg.tap_k))
    for c in seg.cards:
        assert c.wait_event("link_up")["reconnects"] == 1
    ping_all(seg)
    sent = stream_results(started)[("card1", "card2")]
    # the sender was still writing when the switch died (CLOCK_MONOTONIC is system-wide)
    assert sent["start_ns"] < killed_ns < sent["sent_ns"], (sent, killed_ns)
    for c in seg.cards:
        st = c.finish()
        check_card_counters(st, c.serial)
        be = st["backend"]
        assert st["link_downs"] == 1 and be["reconnects"] == 1 and be["error"] is None, be
        assert be["link_up"], be
        assert be["tx_failed"].get("peer_gone", 0) >= 1, be["tx_failed"]
        assert set(be["tx_failed"]) <= {"peer_gone", "eagain"}, be["tx_failed"]


def test_joining_a_switch_that_is_not_there_is_peer_unreachable_naming_vde_switch():
    from pcap_backend.backends.usermode import PeerUnreachable
    from pcap_backend.backends.vde import Vde
    with pytest.raises(PeerUnreachable, match="vde_switch"):
        Vde(os.path.join(tempfile.gettempdir(), f"no-switch-{os.getpid()}"))


class _BusySwitchLib:
    """libvdeplug stand-in whose switch refuses every send with EAGAIN while `busy`."""

    def __init__(self, real_ffi):
        self.ffi, self.busy, self.sent = real_ffi, True, []

    def vde_send(self, conn, frame, n, flags):
        import errno as _errno
        if self.busy:
            self.ffi.errno = _errno.EAGAIN
            return -1
        self.sent.append(bytes(frame[:n]))
        return n


def test_a_switch_that_is_not_reading_costs_no_frame_they_wait_in_order_in_a_bounded_queue(segment):
    from pcap_backend.backends.vde import Vde
    be = Vde(segment["switch_dir"], out_queue=4)
    real_lib = be.lib
    try:
        fake = _BusySwitchLib(be.ffi)
        be.lib = type("L", (), {"vde_send": fake.vde_send, "vde_recv": real_lib.vde_recv})()
        frames = [bytes([i]) * 60 for i in range(6)]
        accepted = [be.send(f, 0) for f in frames]
        # four frames wait for the switch; the fifth and sixth find the queue full and are
        # refused and counted, as a failed transmit the chip reports
        assert accepted == [True, True, True, True, False, False]
        assert be.stats()["tx_queued"] == 4 and be.tx_failed == {"eagain": 2}
        assert fake.sent == []
        fake.busy = False                 # the switch reads again: the next poll drains in order
        be.poll(0)
        assert fake.sent == frames[:4] and be.stats()["tx_queued"] == 0
        assert be.tx_frames == 4 and be.stats()["tx_deferred"] == 4
        assert be.send(frames[5], 0) and fake.sent[-1] == frames[5]
    finally:
        be.lib = real_lib
        be.close()


def test_missing_libvdeplug_names_the_debian_package():
    from pcap_backend.backends.vde import Vde
    with pytest.raises(BackendUnavailable, match="libvdeplug2"):
        Vde("/tmp/x", library=("libvdeplug-not-here.so.2",))


if __name__ == "__main__" and sys.argv[1:2] == ["responder"]:
    run_responder(sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4]))
elif __name__ == "__main__" and sys.argv[1:2] == ["card"]:
    run_card(sys.argv[2], sys.argv[3], int(sys.argv[4], 16))
