"""VDE: emulated cards in separate processes and a kernel TAP on one vde_switch (issue 9).

The test starts its own vde_switch (control directory in a private temp dir), a second card in a
child process (`python tests/test_usermode_vde.py responder SWITCH IP`: card + Python driver that
answers ARP and ICMP echo for IP), and `vde_plug2tap` with its TAP in a fresh namespace whose
kernel has an address on the segment. Card A (this process) ARPs and pings both, the kernel
pings both cards, and a guest namespace's kernel behind card A (the rig) takes a TCP stream from
the TAP's kernel intact and pings card B. Killing the switch mid-run is a counted link-down with a
typed error, and the cards rejoin when the switch is back. Reduced from the issue: TCP runs
between the two kernels (one behind card A, one on the TAP); card B has no TCP stack (a responder
that answers ARP and ping), so it is reached by ARP and ping only.

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

MAC_A = bytes.fromhex("008010000a0a")
MAC_B = bytes.fromhex("008010000b0b")
IP_A, IP_B, IP_K = "10.77.0.10", "10.77.0.11", "10.77.0.1"


def _vde_missing():
    if shutil.which("vde_switch") is None:
        return "needs vde_switch (Debian package vde2)"
    try:
        from pcap_backend.backends.vde import load_libvdeplug
        load_libvdeplug()
    except BackendUnavailable as e:
        return str(e)
    return None


VDE_MISSING = _vde_missing()
pytestmark = pytest.mark.skipif(VDE_MISSING is not None, reason=VDE_MISSING or "")


def start_switch(sock_dir: str) -> subprocess.Popen:
    p = subprocess.Popen(["vde_switch", "-s", sock_dir], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(os.path.join(sock_dir, "ctl")):
            return p
        if p.poll() is not None:
            raise RuntimeError(f"vde_switch exited with {p.returncode}")
        time.sleep(0.02)
    p.kill()
    raise RuntimeError("vde_switch did not create its control socket")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(5)


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
    """The namespace's kernel sends ICMP echo requests to ip (an ICMP datagram socket) until one
    is answered; `card` (a CardA) is pumped meanwhile and answers for IP_A."""
    from netns import in_netns, run
    run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=ns)
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    try:
        s.setblocking(False)
        end, last, seq = time.monotonic() + timeout, 0.0, 0
        while time.monotonic() < end:
            if time.monotonic() - last > 0.5:
                seq += 1
                s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, seq) + b"a2065-vde", (ip, 0))
                last = time.monotonic()
            try:
                d, addr = s.recvfrom(2048)
                if addr[0] == ip and d[0] == 0:
                    return True
            except BlockingIOError:
                pass
            if card is not None:
                card.pump.pump(0.005)
                while card.got:
                    for f in responder_frames(card.got.popleft(), MAC_A, IP_A):
                        card.pump.guest_send(f)
            else:
                time.sleep(0.005)
        return False
    finally:
        s.close()


@pytest.fixture
def segment():
    from netns import netns, run, unique
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
        seg = {"switch_dir": sw, "tmp": tmp, "switch": switch, "card_b": b, "procs": procs}
        if os.geteuid() == 0 and shutil.which("vde_plug2tap"):
            with netns("a2uv") as ns:
                tap = unique("a2vt")
                plug = subprocess.Popen(["ip", "netns", "exec", ns, "vde_plug2tap", "-s", sw, tap],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                procs.append(plug)
                for _ in range(100):
                    if run(["ip", "link", "show", tap], ns=ns, check=False).returncode == 0:
                        break
                    time.sleep(0.05)
                run(["sysctl", "-qw", f"net.ipv6.conf.{tap}.disable_ipv6=1"], ns=ns, check=False)
                run(["ip", "addr", "add", f"{IP_K}/24", "dev", tap], ns=ns)
                run(["ip", "link", "set", tap, "up"], ns=ns)
                seg.update(ns=ns, tap=tap, plug=plug)
                yield seg
        else:
            yield seg
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


@pytest.mark.root
def test_a_kernel_tap_plugged_with_vde_plug2tap_pings_both_cards_and_they_ping_it(segment):
    from netns import run
    if "ns" not in segment:
        pytest.skip("needs vde_plug2tap (Debian package vde2)")
    a = CardA(segment["switch_dir"])
    try:
        kmac = a.arp_ping(IP_K)  # card A -> kernel
        assert len(kmac) == 6 and kmac != MAC_B
        # kernel -> card B (another process), and -> card A (pumped here meanwhile)
        for ip in (IP_B, IP_A):
            assert kernel_ping(segment["ns"], ip, a), f"kernel got no echo reply from {ip}"
    finally:
        a.backend.close()


@pytest.mark.root
def test_a_guest_kernel_behind_a_card_moves_tcp_intact_to_the_kernel_tap_and_pings_the_other_card(
        segment):
    """The card in this process carries a guest namespace's kernel (the rig's TAP) onto the
    switch: a 4 MB TCP stream from the vde_plug2tap kernel arrives intact (SHA-256), and the guest
    kernel pings card B in the other process."""
    from netns import run
    from test_usermode_rig import GuestRig, recv_all, sha_stream, tcp_server
    from pcap_backend.backends.vde import Vde
    if "ns" not in segment:
        pytest.skip("needs vde_plug2tap (Debian package vde2)")
    with GuestRig(lambda ns: Vde(segment["switch_dir"], description="a2065-card-A")) as rig:
        run(["ip", "addr", "add", "10.77.0.20/24", "dev", rig.tap], ns=rig.guest_ns)
        assert kernel_ping(rig.guest_ns, IP_B, timeout=10), "guest kernel: no echo from card B"
        data, sha = sha_stream(4_000_000, seed=77)
        srv = rig.socket_in(segment["ns"], socket.AF_INET, socket.SOCK_STREAM)
        srv.bind((IP_K, 0))
        srv.listen(1)
        th, res = tcp_server(srv, send=data)
        cli = rig.socket_in(rig.guest_ns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            cli.settimeout(60)
            cli.connect((IP_K, srv.getsockname()[1]))
            n, got = recv_all(cli)
        finally:
            cli.close()
            th.join(10)
        rig.check()
        assert n == len(data) and got == sha, res
        assert rig.pump.runner.stats()["bridge"]["missed"] == 0


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


def test_joining_a_switch_that_is_not_there_is_peer_unreachable_naming_vde_switch():
    from pcap_backend.backends.usermode import PeerUnreachable
    from pcap_backend.backends.vde import Vde
    with pytest.raises(PeerUnreachable, match="vde_switch"):
        Vde(os.path.join(tempfile.gettempdir(), f"no-switch-{os.getpid()}"))


def test_missing_libvdeplug_names_the_debian_package():
    from pcap_backend.backends.vde import Vde
    with pytest.raises(BackendUnavailable, match="libvdeplug2"):
        Vde("/tmp/x", library=("libvdeplug-not-here.so.2",))


if __name__ == "__main__" and sys.argv[1:2] == ["responder"]:
    run_responder(sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4]))
