"""Live backends (AF_PACKET, libpcap, TAP) against real kernels in namespaces the tests create.

Every test builds its own namespaces/devices through tests/netns.py and removes them afterwards.
"""
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from netns import (arp_request, icmp_echo, in_netns, is_arp_reply, is_echo_reply, link_info,
                   netns, run, offloads, run_in_ns, set_offloads, tcp_bulk, veth_namespaces)
from pcap_backend import BackendUnavailable, NoSuchInterface, PermissionDenied
from pcap_backend.backends.afpacket import AfPacket
from pcap_backend.backends.pcap import Pcap, load_libpcap
from pcap_backend.backends.tap import Tap
from pcap_backend.base import GSO_TCPV4

from conftest import library_loads, requires_package, which

needs_libpcap = requires_package("libpcap0.8", library_loads("pcap", "load_libpcap"))
needs_ethtool = requires_package("ethtool", which("ethtool"), "reads and sets the veths' offloads")

ROOT = Path(__file__).resolve().parent.parent
CARD_MAC = bytes.fromhex("02a206050009")
CARD_IP = "10.206.5.9"


class Collector:
    """Poll a backend in a thread (select on its fd) until stopped; keep every Packet."""

    def __init__(self, backend, keep=lambda p: True):
        self.b, self.keep, self.packets = backend, keep, []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        fd = self.b.fileno()
        while not self.stop.is_set():
            select.select([fd], [], [], 0.05)
            for p in self.b.poll(time.monotonic_ns(), limit=256):
                if self.keep(p):
                    self.packets.append(p)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(10)


def wait_for(backend, pred, tries=200):
    """Poll (select with a short timeout, bounded tries) until a packet satisfies pred."""
    seen = []
    for _ in range(tries):
        select.select([backend.fileno()], [], [], 0.02)
        for p in backend.poll(0):
            seen.append(p)
            if pred(p.frame):
                return p, seen
    return None, seen


def _is_tcp_payload_frame(p):
    return len(p.frame) > 1514


@pytest.mark.root
@needs_ethtool
def test_afpacket_on_the_receiving_end_sees_tcp_super_packets_with_gso_size_and_partial_checksum():
    with veth_namespaces() as t:
        sender = offloads(t.ns_a, t.dev_a)
        assert sender["tcp-segmentation-offload"] and sender["generic-segmentation-offload"]
        with in_netns(t.ns_b):
            be = AfPacket(t.dev_b)
        with be, Collector(be, _is_tcp_payload_frame) as c:
            got = tcp_bulk(t, 8 << 20)
        assert len(got) == 8 << 20
        big = c.packets
        assert big, f"no super-packets seen; stats {be.stats()}"
        assert max(len(p.frame) for p in big) <= 65536 + 14 + 60 + 60
        m = big[0].meta
        assert m.gso_type == GSO_TCPV4
        assert m.gso_size == 1448  # MSS 1460 minus 12 bytes of TCP timestamps
        assert m.csum_partial and m.csum_start == 34 and m.csum_offset == 16
        for p in big:
            assert p.meta.gso_size > 0 and len(p.frame) - 66 > p.meta.gso_size
        s = be.stats()
        assert s["rx_frames"] >= len(big) and s["kernel_drops"] is not None


@pytest.mark.root
def test_afpacket_without_vnet_headers_still_marks_super_packets_from_auxdata_status():
    with veth_namespaces() as t:
        with in_netns(t.ns_b):
            be = AfPacket(t.dev_b, vnet_hdr=False)
        with be, Collector(be, _is_tcp_payload_frame) as c:
            tcp_bulk(t, 4 << 20)
        assert c.packets
        m = c.packets[0].meta
        assert m.gso_type == GSO_TCPV4 and m.gso_size == 0 and m.csum_partial  # size unknown here


@pytest.mark.root
@needs_libpcap
def test_live_pcap_on_the_receiving_end_sees_super_packets_over_the_wire_maximum():
    with veth_namespaces() as t:
        with in_netns(t.ns_b):
            be = Pcap(t.dev_b)
        with be, Collector(be, _is_tcp_payload_frame) as c:
            tcp_bulk(t, 8 << 20)
        assert c.packets, f"no super-packets seen; stats {be.stats()}"
        assert all(p.meta is None for p in c.packets)
        assert 1514 < max(len(p.frame) for p in c.packets) <= 65536 + 14 + 120
        assert be.stats()["kernel_drops"] is not None


@pytest.mark.root
@pytest.mark.parametrize("kind", ["afpacket", pytest.param("pcap", marks=needs_libpcap)])
def test_an_arp_request_and_a_ping_injected_through_a_live_backend_are_answered_by_the_other_namespace(kind):
    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a) if kind == "afpacket" else Pcap(t.dev_a)
        with be:
            assert be.link_up
            assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), 0)
            reply, seen = wait_for(be, lambda f: is_arp_reply(f, t.ip_b, CARD_MAC))
            assert reply is not None, [p.frame[:42].hex() for p in seen]
            assert reply.frame[6:12] == t.mac_b
            assert be.send(icmp_echo(CARD_MAC, t.mac_b, CARD_IP, t.ip_b, seq=7), 1)
            echo, seen = wait_for(be, lambda f: is_echo_reply(f, t.ip_b))
            assert echo is not None
            # the card never receives its own transmissions back
            assert not any(p.frame[6:12] == CARD_MAC for p in seen)
            s = be.stats()
            assert s["tx_frames"] == 2 and s["tx_failed"] == {}


@pytest.mark.root
def test_afpacket_sends_fail_and_are_counted_while_the_link_is_down_and_resume_when_it_is_up():
    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a)
        with be:
            run(["ip", "link", "set", t.dev_a, "down"], ns=t.ns_a)
            assert not be.link_up
            for i in range(5):
                assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), i) is False
            assert be.stats()["tx_failed"] == {"link_down": 5}
            run(["ip", "link", "set", t.dev_a, "up"], ns=t.ns_a)
            for _ in range(100):
                if be.link_up:
                    break
                time.sleep(0.02)
            assert be.link_up
            assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), 10)
            assert not be.conditions.active


@pytest.mark.root
def test_the_kernel_in_a_namespace_pings_through_a_tap_and_the_test_answers():
    with netns() as ns:
        with in_netns(ns):
            tap = Tap(f"a2t{os.getpid() % 100000}")
            run(["sysctl", "-qw", f"net.ipv6.conf.{tap.ifname}.disable_ipv6=1"], ns=ns, check=False)
            run(["ip", "addr", "add", "10.206.7.1/24", "dev", tap.ifname], ns=ns)
            run(["ip", "link", "set", tap.ifname, "up"], ns=ns)
            icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        with tap, icmp:
            assert tap.link_up
            ping = icmp_echo(b"\0" * 6, b"\0" * 6, "0.0.0.0", "0.0.0.0", ident=0x4242, seq=3)[34:]
            icmp.sendto(ping, ("10.206.7.2", 0))
            # the kernel asks who has the card's address first
            req, _ = wait_for(tap, lambda f: f[12:14] == b"\x08\x06" and f[38:42] == socket.inet_aton("10.206.7.2"))
            assert req is not None
            tap_mac = req.frame[6:12]
            arp_reply = (tap_mac + CARD_MAC + b"\x08\x06" + bytes.fromhex("0001080006040002") + CARD_MAC
                         + socket.inet_aton("10.206.7.2") + tap_mac + socket.inet_aton("10.206.7.1"))
            assert tap.send(arp_reply, 0)
            echo, _ = wait_for(tap, lambda f: f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 8)
            assert echo is not None
            f = echo.frame
            # answer: swap addresses, type 0; the ICMP checksum grows by 8 << 8
            ihl = (f[14] & 15) * 4
            icmp_part = bytearray(f[14 + ihl:])
            icmp_part[0] = 0
            c = int.from_bytes(icmp_part[2:4], "big") + 0x0800
            icmp_part[2:4] = ((c & 0xFFFF) + (c >> 16)).to_bytes(2, "big")
            ip = bytearray(f[14:14 + ihl])
            ip[12:16], ip[16:20] = f[30:34], f[26:30]
            reply = tap_mac + CARD_MAC + b"\x08\x00" + bytes(ip) + bytes(icmp_part)
            assert tap.send(reply, 1)
            icmp.settimeout(5)
            data, addr = icmp.recvfrom(2048)
            assert addr[0] == "10.206.7.2" and data[20] == 0 and data[24:26] == b"\x42\x42"
            assert tap.stats()["tx_frames"] == 2 and tap.stats()["rx_frames"] >= 2


@pytest.mark.root
@needs_libpcap
def test_unknown_interfaces_give_no_such_interface_for_every_live_backend():
    with netns() as ns, in_netns(ns):
        for make in (lambda: AfPacket("a2nosuch0"), lambda: Pcap("a2nosuch0"),
                     lambda: Tap("a2nosuch0", create=False)):
            with pytest.raises(NoSuchInterface) as ei:
                make()
            assert "a2nosuch0" in str(ei.value)


def test_a_missing_libpcap_is_a_typed_error_that_names_the_debian_package():
    with pytest.raises(BackendUnavailable) as ei:
        Pcap("lo", library="libpcap-missing.so.99")
    assert "libpcap0.8" in str(ei.value) and "apt-get install" in str(ei.value)


def _try_unprivileged():
    """In a forked child that dropped to nobody (setuid clears every capability)."""
    load_libpcap()  # the library loads fine unprivileged; opening a handle does not
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    out = []
    for make in (lambda: AfPacket("lo"), lambda: Pcap("lo"), lambda: Tap("a2unpriv0")):
        try:
            make().close()
            out.append("OPENED")
        except PermissionDenied as e:
            out.append("CAP_NET" in str(e))
    return out


@pytest.mark.root
@needs_libpcap
def test_without_privileges_each_live_backend_raises_permission_denied_naming_the_capability():
    with netns() as ns:
        assert run_in_ns(ns, _try_unprivileged) == [True, True, True]


@pytest.mark.root
@pytest.mark.parametrize("kind", ["afpacket", pytest.param("pcap", marks=needs_libpcap)])
def test_removing_the_interface_mid_run_is_counted_and_never_raises(kind):
    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a) if kind == "afpacket" else Pcap(t.dev_a)
        with be:
            assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), 0)
            run(["ip", "link", "del", t.dev_a], ns=t.ns_a)
            assert not be.link_up
            for i in range(20):
                assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), i) is False
                be.poll(i)
            s = be.stats()
            assert s["tx_frames"] == 1 and s["tx_failed_total"] == 20
            assert len(be.conditions.active) >= 1  # logged once per condition, not per frame


@pytest.mark.root
@pytest.mark.parametrize("noticed_by", ["send", "poll"])
@pytest.mark.parametrize("kind", ["afpacket", pytest.param("pcap", marks=needs_libpcap)])
def test_an_interface_deleted_under_traffic_and_recreated_by_name_carries_frames_again_through_the_same_backend(
        kind, noticed_by, caplog):
    import logging

    from netns import recreate_veth

    arp = arp_request(CARD_MAC, CARD_IP, t_ip := "10.206.5.2")
    is_reply = lambda f: is_arp_reply(f, t_ip, CARD_MAC)  # noqa: E731
    with veth_namespaces(ip_b=t_ip) as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a) if kind == "afpacket" else Pcap(t.dev_a)
        with be, caplog.at_level(logging.INFO, logger="a2065.backend"):
            fd = be.fileno()
            assert be.send(arp, 0)
            assert wait_for(be, is_reply)[0] is not None
            run(["ip", "link", "del", t.dev_a], ns=t.ns_a)
            if noticed_by == "poll":  # a host that only receives notices too
                for i in range(3):
                    be.poll(i)
                assert be.stats()["link_lost"] == 1 and not be.link_up
            for i in range(10):
                assert be.send(arp, i) is False
                be.poll(i)
            s = be.stats()
            assert s["link_lost"] == 1 and s["reopens"] == 0 and not be.link_up
            assert s["tx_frames"] == 1 and s["tx_failed_total"] == 10
            recreate_veth(t)  # same names, new ifindex, new MACs
            reply, sent, refused = None, 0, 10
            for i in range(1000):  # bounded: the name is looked up again every 0.5 s
                if be.send(arp, 100 + i):
                    sent += 1
                    reply = wait_for(be, is_reply, tries=50)[0]
                    if reply is not None:
                        break
                else:
                    refused += 1
                    be.poll(i)
                    time.sleep(0.01)
            assert reply is not None, be.stats()
            assert reply.frame[6:12] == bytes.fromhex(
                link_info(t.ns_b, t.dev_b)["address"].replace(":", ""))  # the new peer answered
            assert be.fileno() == fd  # a host's select loop keeps its descriptor
            assert be.link_up
            s = be.stats()
            assert s["link_lost"] == 1 and s["reopens"] == 1
            assert s["tx_frames"] == 1 + sent and s["tx_failed_total"] == refused
            assert set(s["tx_failed"]) <= {"no_device", "link_down"}
            assert not be.conditions.active
        msgs = [r.getMessage() for r in caplog.records]
        assert len([m for m in msgs if "reopening it by name" in m]) == 1  # once, not per frame
        assert len([m for m in msgs if "link:gone cleared" in m]) == 1
        assert len([m for m in msgs if "is back" in m]) == 1


class _Refusing:
    """Wraps a socket; sends fail with `err` while `failing` is set."""

    def __init__(self, sock, err):
        self.sock, self.err, self.failing = sock, err, True

    def sendmsg(self, *a):
        if self.failing:
            raise OSError(self.err, os.strerror(self.err))
        return self.sock.sendmsg(*a)

    def __getattr__(self, k):
        return getattr(self.sock, k)


@pytest.mark.root
@pytest.mark.parametrize("err,reason", [(11, "eagain"), (105, "enobufs")])
def test_eagain_and_enobufs_on_inject_are_counted_logged_once_and_sending_resumes(err, reason, caplog):
    import logging

    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a)
        with be:
            real = be.sock
            be.sock = _Refusing(real, err)
            with caplog.at_level(logging.INFO, logger="a2065.backend"):
                for i in range(30):
                    assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), i) is False
                be.sock.failing = False
                assert be.send(arp_request(CARD_MAC, CARD_IP, t.ip_b), 31)
            be.sock = real
            assert be.stats()["tx_failed"] == {reason: 30}
            msgs = [r.getMessage() for r in caplog.records]
            assert len([m for m in msgs if "transmit failing" in m]) == 1
            assert len([m for m in msgs if "cleared" in m]) == 1
            assert not be.conditions.active


@pytest.mark.root
def test_a_tap_with_vnet_headers_delivers_metadata_and_accepts_header_prefixed_sends():
    with netns() as ns:
        with in_netns(ns):
            tap = Tap(f"a2v{os.getpid() % 100000}", vnet_hdr=True, offload=True)
            run(["sysctl", "-qw", f"net.ipv6.conf.{tap.ifname}.disable_ipv6=1"], ns=ns, check=False)
            run(["ip", "addr", "add", "10.206.8.1/24", "dev", tap.ifname], ns=ns)
            run(["ip", "link", "set", tap.ifname, "up"], ns=ns)
        with tap:
            assert tap.send(arp_request(CARD_MAC, "10.206.8.2", "10.206.8.1"), 0)
            reply, seen = wait_for(tap, lambda f: is_arp_reply(f, "10.206.8.1", CARD_MAC))
            assert reply is not None, [p.frame.hex() for p in seen]
            assert reply.meta is not None and reply.meta.gso_type == 0 and reply.meta.gso_size == 0


@pytest.mark.root
def test_a_tap_that_is_administratively_down_refuses_sends_as_link_down_until_it_is_up():
    with netns() as ns:
        with in_netns(ns):
            tap = Tap(f"a2d{os.getpid() % 100000}")
        with tap:
            assert not tap.link_up
            assert tap.send(bytes(60), 0) is False
            run(["ip", "link", "set", tap.ifname, "up"], ns=ns)
            assert tap.link_up
            assert tap.send(bytes(60), 1)
            assert tap.stats()["tx_failed"] == {"link_down": 1} and tap.stats()["tx_frames"] == 1


@pytest.mark.root
def test_a_tap_made_persistent_beforehand_can_be_attached_to_by_name():
    name = f"a2p{os.getpid() % 100000}"
    with netns() as ns:
        run(["ip", "tuntap", "add", name, "mode", "tap"], ns=ns)
        with in_netns(ns):
            tap = Tap(name, create=False)
        with tap:
            assert tap.ifname == name and tap.fileno() is not None
        assert name in run(["ip", "link", "show"], ns=ns).stdout  # persistent: still there


@pytest.mark.root
@needs_ethtool
def test_the_netns_helpers_set_offloads_and_clean_up_their_namespaces():
    with veth_namespaces() as t:
        set_offloads(t.ns_a, t.dev_a, tso=False, gso=False)
        o = offloads(t.ns_a, t.dev_a)
        assert not o["tcp-segmentation-offload"] and not o["generic-segmentation-offload"]
        names = (t.ns_a, t.ns_b)
    listed = run(["ip", "netns", "list"]).stdout
    assert not any(n in listed for n in names)
