"""The one Ethernet/VLAN/IP/TCP/UDP header walker (pcap_backend/headers.py) and its users."""
from __future__ import annotations

import hashlib
import struct

from hypothesis import given, settings, strategies as st

from bridge_helpers import CARD_MAC, PEER_MAC, ipv4_tcp
from a2065.runners.replay import StreamCollector
from pcap_backend import headers


def tag(frame: bytes, *tpids: int, vid: int = 5) -> bytes:
    """Insert VLAN tags (outermost first) after the MAC addresses."""
    tags = b"".join(struct.pack("!HH", t, vid) for t in tpids)
    return frame[:12] + tags + frame[12:]


def ipv6_tcp(payload: bytes, *, seq=1, flags=0x18, options=b"", ext=b"", nh_first=6) -> bytes:
    thl = 20 + len(options)
    tcp = struct.pack("!HHIIBBHHH", 5001, 40000, seq, 0, (thl // 4) << 4, flags, 65535, 0, 0)
    body = ext + tcp + options + payload
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(body), nh_first if ext else 6, 64,
                     bytes(15) + b"\x02", bytes(15) + b"\x01")
    return CARD_MAC + PEER_MAC + b"\x86\xdd" + ip + body


def test_walk_finds_ipv4_tcp_behind_zero_one_and_two_vlan_tags():
    f = ipv4_tcp(b"abc", options=b"\x01\x01\x08\x0a" + bytes(8))
    for tpids, l3 in (((), 14), ((0x8100,), 18), ((0x88A8, 0x8100), 22)):
        g = tag(f, *tpids)
        h = headers.walk(g)
        assert (h.vlan_tags, h.ethertype, h.l3, h.version, h.proto) == (len(tpids), 0x0800, l3, 4, 6)
        assert h.src == bytes([10, 0, 0, 2]) and h.dst == bytes([10, 0, 0, 1])
        t = headers.tcp(g, h)
        assert (t.sport, t.dport, t.seq, t.header_len, t.options_len) == (5001, 40000, 1000, 32, 12)
        assert g[t.data:t.end] == b"abc"


def test_walk_stops_at_a_third_vlan_tag():
    assert headers.walk(tag(ipv4_tcp(b"x"), 0x88A8, 0x8100, 0x8100)) is None


def test_walk_counts_ipv6_extension_headers_as_ip_options_and_flags_fragments():
    hop = bytes([6, 0]) + bytes(6)                     # hop-by-hop, 8 bytes, next: TCP
    h = headers.walk(ipv6_tcp(b"data", ext=hop, nh_first=0))
    assert (h.proto, h.l4 - h.l3, h.ip_options, h.fragment) == (6, 48, 8, False)
    frag = bytes([6, 0, 0, 1]) + bytes(4)              # fragment header: next TCP
    h = headers.walk(ipv6_tcp(b"data", ext=frag, nh_first=44))
    assert h.fragment and h.proto == 44 and headers.tcp(ipv6_tcp(b"data", ext=frag, nh_first=44), h) is None


def test_walk_gives_up_after_eight_ipv6_extension_headers():
    dst_opts = bytes([60, 0]) + bytes(6)
    many = dst_opts * 9
    f = ipv6_tcp(b"", ext=many, nh_first=60)
    assert headers.walk(f) is None


def test_ipv4_fragments_and_options_are_reported():
    f = bytearray(ipv4_tcp(b"x" * 10))
    f[20] |= 0x20                                      # MF
    h = headers.walk(bytes(f))
    assert h.fragment and headers.tcp(bytes(f), h) is None


def test_truncated_or_lying_lengths_give_none():
    f = ipv4_tcp(b"y" * 100)
    assert headers.walk(f[:-1]) is None                # total length past the frame
    assert headers.walk(f[:20]) is None
    bad = bytearray(f)
    bad[14] = 0x44                                     # IHL 4 (16 bytes)
    assert headers.walk(bytes(bad)) is None
    bad = bytearray(f)
    bad[46] = 0x40                                     # TCP data offset 16 (64 bytes) past the end
    assert headers.tcp(bytes(bad), headers.walk(bytes(bad))) is None


def test_mss_option_is_found_after_nops_and_not_past_end_of_options():
    f = ipv4_tcp(b"", flags=0x02, options=b"\x01\x01\x04\x02\x02\x04\x02\x18")
    assert headers.tcp_mss_option(f, headers.tcp(f, headers.walk(f))) == 536
    f = ipv4_tcp(b"", flags=0x02, options=b"\x00\x00\x00\x00\x02\x04\x02\x18")
    assert headers.tcp_mss_option(f, headers.tcp(f, headers.walk(f))) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_walk_to_a_result_or_none_without_raising(data):
    for frame in (data, CARD_MAC + PEER_MAC + b"\x08\x00" + data, CARD_MAC + PEER_MAC + b"\x86\xdd" + data,
                  CARD_MAC + PEER_MAC + b"\x81\x00\x00\x01\x08\x00" + data):
        h = headers.walk(frame)
        if h is not None:
            assert h.l3 <= h.l4 <= h.end <= len(frame)
            t = headers.tcp(frame, h)
            if t is not None:
                assert h.l4 + 20 <= t.data <= t.end == h.end
                headers.tcp_mss_option(frame, t)
            u = headers.udp(frame, h)
            assert u is None or u.data <= u.end


def test_the_stream_collector_reassembles_a_vlan_tagged_tcp_stream():
    data = bytes(range(256)) * 12
    sc = StreamCollector()
    for i in range(0, len(data), 1000):
        sc.add(tag(ipv4_tcp(data[i:i + 1000], seq=1000 + i)), i)
    assert sc.stream() == data
    assert hashlib.sha256(sc.stream()).digest() == hashlib.sha256(data).digest()


def test_the_stream_collector_reads_vlan_tagged_udp_datagrams():
    s, d = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1])
    frames = []
    for i in range(3):
        payload = bytes([i]) * 100
        udp = struct.pack("!HHHH", 5000, 6000, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, s, d)
        frames.append(tag(CARD_MAC + PEER_MAC + b"\x08\x00" + ip + udp, 0x8100))
    sc = StreamCollector()
    for i, f in enumerate(frames):
        sc.add(f, i)
    assert sc.stream() == bytes([0]) * 100 + bytes([1]) * 100 + bytes([2]) * 100


def test_the_cli_demo_counts_icmp_echo_replies_through_the_walker_tagged_or_not():
    from a2065.cli.main import _is_icmp_echo_reply
    s, d = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])

    def icmp(kind):
        body = bytes([kind, 0, 0, 0, 0x20, 0x65, 0, 1]) + bytes(56)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, 1, 0, s, d)
        return PEER_MAC + CARD_MAC + b"\x08\x00" + ip + body

    assert _is_icmp_echo_reply(icmp(0)) and _is_icmp_echo_reply(tag(icmp(0), 0x8100))
    assert not _is_icmp_echo_reply(icmp(8)) and not _is_icmp_echo_reply(icmp(0)[:30])
