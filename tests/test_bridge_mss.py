"""MSS learning (RFC 879, RFC 6691) against real-kernel captures without metadata.

fixtures/captures/tcp{4,6}_mss536_{ts,nots}_{libpcap,afpacket}.pcapng: the guest's role advertised
MSS 536; the kernel cut its TSO super-packets at gso_size 524 with TCP timestamps (536 - 12 bytes
of options) and 536 without (recorded in the same run, see the README). The bridge gets no
metadata and must cut the same segments from the MSS it learned alone.
"""
from __future__ import annotations

import hashlib
import json
import struct

import pytest

from bridge_helpers import CARD_MAC, PEER_MAC, ChipDouble, ListBackend, check_invariant, ipv4_tcp
from a2065.runners.replay import read_capture
from fixture_capture import CAPTURE_DIR
from pcap_backend import headers
from pcap_backend.base import Packet, PacketMeta
from pcap_backend.bridge import Bridge

MSS = 536            # what the guest advertised
TIMESTAMPS_LEN = 12  # TCP timestamps option (10) padded with two NOPs (RFC 7323 appendix A)
SHA_128K = "6dab8c8baa947a464a06963b98a909efdd8396a79c71a71964c42acb68a8d6ed"

CAPS = {  # file -> payload bytes of every full segment the kernel cut
    "tcp4_mss536_ts_libpcap.pcapng": 524,
    "tcp4_mss536_nots_afpacket.pcapng": 536,
    "tcp6_mss536_ts_afpacket.pcapng": 524,
    "tcp6_mss536_nots_libpcap.pcapng": 536,
}


def _tag(frame: bytes) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, 42) + frame[12:]


def _replay(name, *, vlan=False):
    """Every frame of the capture in order: the guest's (outgoing) through the chip's transmit
    path, the host's as metadata-free received packets. Returns (bridge, chip, capture)."""
    return _replay_path(CAPTURE_DIR / name, vlan=vlan)


def _replay_path(path, *, vlan=False):
    cap = read_capture(path)
    guest_mac = next(p[1][6:12] for p in cap.packets if p[2])
    chip = ChipDouble(mac=guest_mac)
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    t0 = cap.packets[0][0]
    for ts, frame, outgoing, meta in cap.packets:
        assert meta is None  # no kernel metadata in these files
        t = ts - t0
        if vlan:
            frame = _tag(frame)
        chip.advance_to(max(chip.now, t))
        if outgoing:
            chip.send(frame, chip.now)
        else:
            backend.add(chip.now, frame)
            bridge.service(chip.now)
    return bridge, chip, cap


def _segments(frames):
    out = []
    for f in frames:
        t = headers.tcp(f, headers.walk(f))
        if t is not None and t.payload_len:
            out.append((t.seq, bytes(f[t.data:t.end]), t.options_len))
    return out


def _stream(segs):
    d = {}
    for seq, data, _ in segs:
        d.setdefault(seq, data)
    seq, out = min(d), bytearray()
    while seq in d:
        data = d.pop(seq)
        out += data
        seq = (seq + len(data)) & 0xFFFFFFFF
    return bytes(out)


def test_the_captures_record_the_kernels_segment_sizes_and_no_metadata():
    for name, seg in CAPS.items():
        cap = read_capture(CAPTURE_DIR / name)
        info = json.loads(cap.comment)
        assert info["mss"] == MSS and info["kernel_gso_sizes"] == [seg]
        assert seg == MSS - (TIMESTAMPS_LEN if info["timestamps"] == "on" else 0)
        assert cap.sha256 == SHA_128K
        assert sum(1 for p in cap.packets if len(p[1]) > 1514) == info["kernel_super_packets"] > 10


@pytest.mark.parametrize("name", sorted(CAPS))
def test_segments_cut_from_the_learned_mss_match_the_kernels_segment_sizes(name):
    bridge, chip, cap = _replay(name)
    segs = _segments(f for _, f in chip.got)
    want = CAPS[name]
    sizes = [len(d) for _, d, _ in segs]
    assert max(sizes) == want
    # every segment: payload + TCP options <= the advertised MSS (RFC 6691)
    assert all(len(d) + opts <= MSS for _, d, opts in segs)
    # the kernel cut only full segments except where the sender's write ended
    assert sizes.count(want) >= 0.9 * len(sizes)
    assert hashlib.sha256(_stream(segs)).hexdigest() == SHA_128K
    s = check_invariant(bridge)
    assert s["mss_learned"] >= 1 and s["mss_used"] >= s["segmented"] == s["super_packets"] > 10
    assert set(s["dropped"]) <= {"filtered"}  # the host's multicast (ND, MLD), not joined


def test_every_super_packet_is_cut_exactly_where_the_kernel_would_cut_it():
    name = "tcp4_mss536_ts_libpcap.pcapng"
    bridge, chip, cap = _replay(name)
    got = {seq: len(d) for seq, d, _ in _segments(f for _, f in chip.got)}
    for _ts, frame, outgoing, _ in cap.packets:
        if outgoing or len(frame) <= 1514:
            continue
        t = headers.tcp(frame, headers.walk(frame))
        n, seq = t.payload_len, t.seq
        while n > 0:  # the kernel's cut: gso_size 524 from the start of the super-packet
            assert got[seq] == min(524, n)
            seq, n = (seq + 524) & 0xFFFFFFFF, n - 524


@pytest.mark.parametrize("name", ["tcp6_mss536_ts_afpacket.pcapng", "tcp4_mss536_nots_afpacket.pcapng"])
def test_vlan_tagged_flows_learn_and_use_the_mss_the_same_way(name):
    bridge, chip, _ = _replay(name, vlan=True)
    segs = _segments(f for _, f in chip.got)
    assert max(len(d) for _, d, _ in segs) == CAPS[name]
    assert all(f[12:14] == b"\x81\x00" for _, f in chip.got if len(f) > 100)
    assert hashlib.sha256(_stream(segs)).hexdigest() == SHA_128K


def test_the_mss_is_learned_from_a_syn_ack_the_guest_sends_and_keyed_by_the_direction_it_limits():
    chip = ChipDouble()
    bridge = Bridge(ListBackend(), chip)
    synack = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                      sport=80, dport=33000, flags=0x12, options=b"\x02\x04\x02\x18")
    chip.send(synack, 0)
    assert bridge.learned_mss((bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), 33000, 80)) == MSS
    assert bridge.learned_mss((bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 80, 33000)) is None


def test_tcp_options_of_the_segments_come_off_the_learned_mss():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x02\x18")
    chip.send(syn, 0)
    ts_opt = b"\x01\x01\x08\x0a" + bytes(8)
    backend.add(0, ipv4_tcp(bytes(5000), seq=1, options=ts_opt))
    bridge.service(0)
    sizes = [len(d) for _, d, _ in _segments(f for _, f in chip.got)]
    assert sizes == [524] * 9 + [5000 - 9 * 524]


def test_a_small_frame_over_the_learned_mss_is_cut_too():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x02\x18")
    chip.send(syn, 0)
    backend.add(0, ipv4_tcp(bytes(1000), seq=1, options=b"\x01\x01\x08\x0a" + bytes(8)))
    backend.add(0, ipv4_tcp(bytes(524), seq=1001, options=b"\x01\x01\x08\x0a" + bytes(8)))
    bridge.service(0)
    assert [len(d) for _, d, _ in _segments(f for _, f in chip.got)] == [524, 476, 524]


def test_the_kernels_gso_size_wins_over_a_learned_mss():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x02\x18")
    chip.send(syn, 0)
    backend.add(0, ipv4_tcp(bytes(3000), seq=1), PacketMeta(1, 1000, False, 0, 0, True))
    bridge.service(0)
    assert [len(d) for _, d, _ in _segments(f for _, f in chip.got)] == [1000, 1000, 1000]
    assert bridge.stats()["mss_used"] == 0


def test_options_that_leave_no_payload_under_the_learned_mss_drop_the_frame_with_a_reason():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x00\x0c")  # MSS 12
    chip.send(syn, 0)
    backend.add(0, ipv4_tcp(bytes(3000), seq=1, options=b"\x01\x01\x08\x0a" + bytes(8)))
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["dropped"] == {"MssError": 1} and chip.got == []


def test_frames_without_metadata_or_learned_mss_still_fill_the_wire():
    chip = ChipDouble()
    bridge = Bridge(ListBackend([Packet(0, ipv4_tcp(bytes(3000), seq=1), None)]), chip)
    bridge.service(0)
    assert [len(d) for _, d, _ in _segments(f for _, f in chip.got)] == [1460, 1460, 80]


def test_pure_acks_pass_even_when_the_learned_mss_leaves_no_room_for_payload():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x00\x0c")  # MSS 12
    chip.send(syn, 0)
    ack = ipv4_tcp(b"", seq=1, flags=0x10, options=b"\x01\x01\x08\x0a" + bytes(8))
    backend.add(0, ack)
    bridge.service(0)
    assert [f[:len(ack)] for _, f in chip.got] == [ack]
    assert check_invariant(bridge)["dropped_total"] == 0


@pytest.mark.root
@pytest.mark.parametrize("capture,timestamps,seg", [("afpacket", "on", 524), ("libpcap", "off", 536)])
def test_the_capture_tool_records_small_mss_connections_without_metadata(capture, timestamps, seg,
                                                                          tmp_path):
    """tools/make_tcp_capture.py in its own namespaces: the kernel cuts at MSS - options, the
    capture holds whole super-packets and no virtio-net metadata, and the bridge cuts the same."""
    import subprocess
    import sys
    from conftest import library_loads, require_package
    from fixture_capture import ROOT
    if capture == "libpcap":
        require_package("libpcap0.8", library_loads("pcap", "load_libpcap"))
    out = tmp_path / "small.pcapng"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_tcp_capture.py"), "--family", "4",
                        "--mss", "536", "--timestamps", timestamps, "--capture", capture,
                        "--capture-side", "receiver", "--size", "65536", "--out", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["kernel_gso_sizes"] == [seg] and report["capture_drops"] == 0
    assert report["receiver"]["sha256"] == report["stream_sha256"]
    cap = read_capture(out)
    assert all(meta is None for _, _, _, meta in cap.packets)
    assert sum(1 for p in cap.packets if len(p[1]) > 1514) == report["kernel_super_packets"] > 0
    bridge, chip, _ = _replay_path(out)
    assert max(len(d) for _, d, _ in _segments(f for _, f in chip.got)) == seg
