"""End to end (issue 7): real kernels on both sides of the emulated card.

server namespace (TSO/GSO on) -- veth -- wire namespace (AF_PACKET or pcap backend) -- Bridge --
A2065 + Am7990 -- LinuxA2065Driver -- TAP in the guest namespace (the guest's kernel TCP/IP).

Every test builds its own rig (`a2065.rig.Rig`) and removes it, also on failure. Transfers are
a few seconds long; goodput figures live in bench/e2e.py and BENCHMARKS.md, not here.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from a2065.rig import Rig, stream_bytes
from a2065.drivers import ladrf_bit
from conftest import library_loads, requires_package, which

pytestmark = pytest.mark.root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tcp(rig, *, to_guest=True, ipv6=False, nbytes=1_500_000, port=5001, max_seconds=60.0):
    """One TCP transfer through the card; returns (receiver result, sender result)."""
    if to_guest:
        rx_ns, tx_ns, dst = "guest", "server", (rig.guest_ip6 if ipv6 else rig.guest_ip)
    else:
        rx_ns, tx_ns, dst = "server", "guest", (rig.server_ip6 if ipv6 else rig.server_ip)
    rx = rig.spawn(rx_ns, "tcp-recv", "--bind", "::" if ipv6 else "0.0.0.0", "--port", port,
                   "--max-seconds", max_seconds)
    tx = rig.spawn(tx_ns, "tcp-send", "--to", dst, "--port", port, "--bytes", nbytes)
    got = Rig.result(rx, timeout=max_seconds + 30)
    sent = Rig.result(tx, timeout=max_seconds + 30)
    return got, sent


def _assert_counters_consistent(st):
    b = st["bridge"]
    assert b["frames_in"] == b["delivered"] + b["queued"] + b["dropped_total"], b
    assert st["chip"]["balanced"], st["chip"]
    assert b["segment_failures"] == {}, b
    # lossless delivery: everything the chip took reached the driver and the TAP
    assert st["chip"]["rx_missed"] == 0
    assert st["driver"]["rx_frames"] == b["delivered"]
    assert st["guest"]["to_guest"] + st["guest"]["to_guest_failed"] == st["driver"]["rx_frames"]
    assert st["guest"]["to_guest_failed"] == 0
    assert st["error"] is None


def _assert_stream_intact(got, sent, nbytes):
    assert sent["bytes"] == nbytes
    assert got["eof"], "the receiver never saw the end of the stream"
    assert got["bytes"] == nbytes
    assert got["sha256"] == sent["sha256"]
    assert sent["peer_closed"]


@requires_package("ethtool", which("ethtool"), "reads the server's offloads")
def test_server_to_guest_tcp_over_ipv4_in_wire_timing_arrives_byte_for_byte_from_super_packets():
    with Rig() as rig:
        assert rig.server_offload_state()["tcp-segmentation-offload"], "sender must keep TSO on"
        with rig.card(timing="wire", policy="segment") as lb:
            got, sent = _tcp(rig, nbytes=1_500_000)
        st = lb.stats()
    _assert_stream_intact(got, sent, 1_500_000)
    _assert_counters_consistent(st)
    assert st["bridge"]["super_packets"] > 0, "the host kernel sent no super-packets"
    assert st["bridge"]["segments_made"] > st["bridge"]["segmented"]
    assert st["backend"]["kernel_drops"] == 0


def test_server_to_guest_tcp_over_ipv6_in_wire_timing_arrives_byte_for_byte():
    with Rig() as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            got, sent = _tcp(rig, ipv6=True, nbytes=1_200_000, port=5003)
        st = lb.stats()
    _assert_stream_intact(got, sent, 1_200_000)
    _assert_counters_consistent(st)
    assert st["bridge"]["super_packets"] > 0
    # IPv6 neighbour discovery needed the guest's solicited-node group in LADRF
    assert any(m.startswith("33:33:ff") for m in st["driver"]["multicast"])


def test_guest_to_server_tcp_in_wire_timing_arrives_byte_for_byte():
    with Rig() as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            got, sent = _tcp(rig, to_guest=False, nbytes=1_200_000, port=5004)
        st = lb.stats()
    _assert_stream_intact(got, sent, 1_200_000)
    _assert_counters_consistent(st)
    # the guest's data left through the chip's transmitter and the backend
    assert st["driver"]["tx_frames"] >= 1_200_000 // 1448
    assert st["driver"]["tx_frames"] <= st["guest"]["sent"]
    assert st["bridge"]["transmitted"] >= st["driver"]["tx_frames"]
    assert st["bridge"]["tx_failed"] == 0


def test_guest_to_server_tcp_over_ipv6_in_wire_timing_arrives_byte_for_byte():
    with Rig() as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            got, sent = _tcp(rig, to_guest=False, ipv6=True, nbytes=1_000_000, port=5008)
        st = lb.stats()
    _assert_stream_intact(got, sent, 1_000_000)
    _assert_counters_consistent(st)
    assert st["bridge"]["tx_failed"] == 0


def test_fast_timing_moves_a_larger_transfer_intact():
    with Rig() as rig:
        with rig.card(timing="fast", policy="segment") as lb:
            got, sent = _tcp(rig, nbytes=24_000_000, port=5005)
        st = lb.stats()
    _assert_stream_intact(got, sent, 24_000_000)
    _assert_counters_consistent(st)
    assert st["bridge"]["super_packets"] > 0


@requires_package("libpcap0.8", library_loads("pcap", "load_libpcap"))
def test_pcap_backend_carries_the_stream_without_kernel_metadata():
    with Rig() as rig:
        with rig.card(timing="wire", policy="segment", backend="pcap") as lb:
            got, sent = _tcp(rig, nbytes=800_000, port=5006)
        st = lb.stats()
    _assert_stream_intact(got, sent, 800_000)
    _assert_counters_consistent(st)
    assert st["bridge"]["super_packets"] > 0


def test_drop_legacy_loses_the_super_packets_and_only_an_intact_prefix_arrives():
    with Rig() as rig:
        with rig.card(timing="wire", policy="drop-legacy") as lb:
            rx = rig.spawn("guest", "tcp-recv", "--port", 5007, "--max-seconds", 3)
            tx = rig.spawn("server", "tcp-send", "--to", rig.guest_ip, "--port", 5007,
                           "--bytes", 4_000_000, "--linger", 1)
            got = Rig.result(rx, timeout=40)
            tx.kill()
        st = lb.stats()
    b = st["bridge"]
    assert b["dropped"].get("legacy_oversize", 0) > 0
    assert b["frames_in"] == b["delivered"] + b["queued"] + b["dropped_total"]
    assert got["bytes"] < 4_000_000, "drop-legacy delivered the whole stream"
    import hashlib
    assert got["sha256"] == hashlib.sha256(stream_bytes(2065, got["bytes"])).hexdigest()


def _snmp_udp(rig):
    out = rig.run("guest", ["cat", "/proc/net/snmp"]).stdout.splitlines()
    rows = [l.split() for l in out if l.startswith("Udp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


def _veth_drops(rig):
    info = json.loads(rig.run("wire", ["ip", "-s", "-j", "link", "show", rig.wire_dev]).stdout)[0]
    return info["stats64"]["rx"]["dropped"]


def test_udp_at_5_mbps_arrives_complete_in_wire_timing():
    with Rig(ipv6=False) as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            rx = rig.spawn("guest", "udp-recv", "--port", 5010, "--max-seconds", 20, "--idle", 1.5)
            tx = rig.spawn("server", "udp-send", "--to", rig.guest_ip, "--port", 5010,
                           "--count", 900, "--size", 1400, "--rate-bps", 5_000_000)
            sent = Rig.result(tx, timeout=30)
            got = Rig.result(rx, timeout=40)
        st = lb.stats()
    assert sent["sent"] == 900
    assert got["received"] == 900 and got["bad"] == 0 and got["duplicates"] == 0
    _assert_counters_consistent(st)


def test_udp_offered_beyond_10_mbps_is_dropped_where_counted_and_the_counters_add_up():
    with Rig(ipv6=False) as rig:
        # a small socket buffer, like a NIC ring: the overload has to go somewhere visible
        with rig.card(timing="wire", policy="segment", backend_kw={"rcvbuf": 256 << 10},
                      queue_frames=256) as lb:
            warm = rig.spawn("guest", "udp-recv", "--port", 5011, "--max-seconds", 5, "--idle", 0.5)
            rig.spawn("server", "udp-send", "--to", rig.guest_ip, "--port", 5011, "--count", 5,
                      "--rate-bps", 1_000_000)
            assert Rig.result(warm, timeout=20)["received"] == 5  # ARP resolved, path up
            time.sleep(0.3)
            be = lb.backend
            k0, b0, s0, v0 = be.stats()["kernel_drops"], dict(lb.bridge.stats()), _snmp_udp(rig), _veth_drops(rig)
            rx = rig.spawn("guest", "udp-recv", "--port", 5012, "--max-seconds", 30, "--idle", 2.0)
            tx = rig.spawn("server", "udp-send", "--to", rig.guest_ip, "--port", 5012,
                           "--count", 4000, "--size", 1400, "--rate-bps", 20_000_000)
            sent = Rig.result(tx, timeout=30)
            got = Rig.result(rx, timeout=60)
            rig.wait_for(lambda: lb.bridge.queued == 0, 10)
            k1, b1, s1, v1 = be.stats()["kernel_drops"], dict(lb.bridge.stats()), _snmp_udp(rig), _veth_drops(rig)
        st = lb.stats()
    assert got["bad"] == 0 and got["duplicates"] == 0
    kernel = k1 - k0
    bridge_drops = b1["dropped_total"] - b0["dropped_total"]
    guest_drops = s1["InErrors"] - s0["InErrors"]  # includes RcvbufErrors
    veth = v1 - v0
    lost = sent["sent"] - got["received"]
    assert lost > 0, "20 Mb/s into a 10 Mb/s card lost nothing: the test did not overload it"
    assert kernel + bridge_drops + veth > 0
    # every datagram the server sent is either received or counted as dropped somewhere
    assert lost == kernel + bridge_drops + veth + guest_drops, \
        dict(lost=lost, kernel=kernel, bridge=bridge_drops, veth=veth, guest=guest_drops)
    # and what the bridge took in was delivered, queued or dropped
    assert b1["frames_in"] - b0["frames_in"] == (b1["delivered"] - b0["delivered"]) + bridge_drops
    _assert_counters_consistent(st)


def _unjoined_group(joined_bits):
    """An IPv4 multicast group whose MAC hashes to a LADRF bit no joined address uses."""
    for last in range(2, 250):
        ip = f"239.65.2.{last}"
        mac = bytes([0x01, 0x00, 0x5E, 0x41, 0x02, last])
        if ladrf_bit(mac) not in joined_bits:
            return ip, mac
    raise AssertionError("no unjoined group found")


def test_guest_joins_a_multicast_group_receives_it_and_the_chip_filters_groups_it_did_not_join():
    with Rig(ipv6=False) as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            group, group_mac = "239.65.1.1", bytes.fromhex("01005e410101")
            rx = rig.spawn("guest", "udp-recv", "--group", group, "--bind", rig.guest_ip,
                           "--port", 5020, "--max-seconds", 20, "--idle", 2)
            # the guest kernel joined: the live loop learns the list and the driver programs LADRF
            assert group_mac in rig.guest_maddr()
            assert rig.wait_for(lambda: group_mac.hex(":") in lb.stats()["driver"]["multicast"], 5)
            time.sleep(0.1)
            joined_bits = {ladrf_bit(bytes.fromhex(m.replace(":", "")))
                           for m in lb.stats()["driver"]["multicast"]}
            other, _ = _unjoined_group(joined_bits)
            f0 = lb.board.lance.counters.rx_filtered
            other_rx = rig.spawn("guest", "udp-recv", "--bind", "0.0.0.0", "--port", 5021,
                                 "--max-seconds", 6, "--idle", 2)
            t1 = rig.spawn("server", "udp-send", "--to", other, "--port", 5021, "--count", 50,
                           "--rate-bps", 2_000_000, "--group-if", rig.server_ip)
            t2 = rig.spawn("server", "udp-send", "--to", group, "--port", 5020, "--count", 200,
                           "--rate-bps", 2_000_000, "--group-if", rig.server_ip)
            assert Rig.result(t1)["sent"] == 50 and Rig.result(t2)["sent"] == 200
            got = Rig.result(rx, timeout=40)
            got_other = Rig.result(other_rx, timeout=40)
            filtered = lb.board.lance.counters.rx_filtered - f0
        st = lb.stats()
    assert got["received"] == 200 and got["bad"] == 0
    assert got_other["received"] == 0
    assert filtered == 50, "the chip should filter exactly the unjoined group's datagrams"
    assert st["bridge"]["dropped"].get("filtered", 0) >= 50
    _assert_counters_consistent(st)


def test_broadcast_reaches_the_guest():
    with Rig(ipv6=False) as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            rx = rig.spawn("guest", "udp-recv", "--bind", "0.0.0.0", "--port", 5022,
                           "--max-seconds", 10, "--idle", 1.5)
            # no SO_BROADCAST in udp-send: use the subnet broadcast via a tiny inline sender
            rig.run("server", [sys.executable, "-c",
                               "import socket;s=socket.socket(2,2);s.setsockopt(1,6,1);"
                               "import a2065.rig.core as r\n"
                               "for i in range(20): s.sendto(r._dgram(7,i,600),('10.65.0.255',5022))"],
                    check=True)
            got = Rig.result(rx, timeout=20)
        st = lb.stats()
    assert got["received"] == 20 and got["bad"] == 0
    _assert_counters_consistent(st)


@requires_package("tshark", which("tshark"))
def test_pcapng_recording_of_a_run_opens_in_tshark_clean_with_the_tcp_stream_intact(tmp_path):
    from pcap_backend.bridge import PcapngTee
    path = tmp_path / "run.pcapng"
    rec = PcapngTee(path, comment="e2e recording test")
    with Rig(ipv6=False) as rig:
        with rig.card(timing="wire", policy="segment", recorder=rec) as lb:
            got, sent = _tcp(rig, nbytes=400_000, port=5030)
        st = lb.stats()
    _assert_stream_intact(got, sent, 400_000)
    _assert_counters_consistent(st)
    base = ["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE"]
    bad = subprocess.run(base + ["-Y", "_ws.malformed || _ws.expert.severity >= error || "
                                 "ip.checksum.status == 0 || tcp.checksum.status == 0 || "
                                 "udp.checksum.status == 0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 0, bad.stderr
    assert bad.stdout.strip() == "", bad.stdout[:2000]
    count = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.len"],
                           capture_output=True, text=True, timeout=120)
    lens = [int(x) for x in count.stdout.split()]
    assert len(lens) == st["bridge"]["delivered"] + st["bridge"]["transmitted"]
    assert max(lens) <= 1514
    follow = subprocess.run(["tshark", "-r", str(path), "-q", "-z", "follow,tcp,raw,0"],
                            capture_output=True, text=True, timeout=120)
    data = bytearray()
    in_body = False
    for line in follow.stdout.splitlines():
        if line.startswith("Node 1:"):
            in_body = True
            continue
        if not in_body or line.startswith("=") or not line.strip():
            continue
        if line.startswith("\t"):
            continue  # the other direction (the guest's ACK-only side)
        data += bytes.fromhex(line.strip())
    import hashlib
    assert len(data) == 400_000
    assert hashlib.sha256(bytes(data)).hexdigest() == sent["sha256"]


def _bridge_subprocess(rig, argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_live_bridge_command_carries_traffic_and_stops_on_sigint_with_final_counters():
    with Rig(ipv6=False) as rig:
        p = _bridge_subprocess(rig, [sys.executable, "-m", "a2065", "bridge", "--netns", rig.ns_wire,
                                     "--iface", rig.wire_dev, "--guest-netns", rig.ns_guest,
                                     "--guest-tap", rig.tap_name, "--json"])
        try:
            assert rig.wait_for(lambda: p.poll() is not None or rig.run(
                "guest", ["ip", "link", "show", rig.tap_name], check=False).returncode == 0, 15)
            assert p.poll() is None, p.stderr.read()
            rig.configure_guest()
            got, sent = _tcp(rig, nbytes=300_000, port=5040)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    _assert_stream_intact(got, sent, 300_000)
    assert p.returncode == 0, err
    st = json.loads(out)
    assert st["interrupted"] is True
    assert st["bridge"]["delivered"] > 300_000 // 1514
    assert st["guest"]["to_guest"] == st["driver"]["rx_frames"]
    assert st["chip"]["balanced"]


def test_a2065_bridge_subcommand_stops_on_sigint_with_exit_0_and_final_counters():
    with Rig(ipv6=False) as rig:
        p = _bridge_subprocess(rig, ["ip", "netns", "exec", rig.ns_wire, sys.executable, "-m",
                                     "a2065", "bridge", "--iface", rig.wire_dev, "--guest-tap",
                                     rig.tap_name, "--json"])
        try:
            time.sleep(2.5)
            assert p.poll() is None, p.stderr.read()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert p.returncode == 0, err
    st = json.loads(out)
    assert "bridge" in st and "delivered" in st["bridge"]


@pytest.mark.slow
def test_twenty_second_wire_transfers_both_ways_and_over_ipv6_stay_intact():
    with Rig() as rig:
        with rig.card(timing="wire", policy="segment") as lb:
            for kw, port in ((dict(), 5061), (dict(ipv6=True), 5062), (dict(to_guest=False), 5063)):
                got, sent = _tcp(rig, nbytes=23_000_000, port=port, max_seconds=90, **kw)
                _assert_stream_intact(got, sent, 23_000_000)
        st = lb.stats()
    _assert_counters_consistent(st)
