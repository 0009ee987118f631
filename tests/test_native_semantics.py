"""Semantic properties of native.segment(), checked by an independent decoder.

The frames are built here from raw struct packing (not tests/packets.py, not the oracle), the output
is decoded with dpkt, and every checksum is recomputed here with a plain RFC 1071 sum. So a shared
mistake between the C core and its oracle still shows up. The rules are those of native/SPEC.md and
docs/architecture.md: payload preserved, sequence numbers contiguous, IPv4 identification + i,
CWR on the first segment only, FIN/PSH on the last only, every frame within 1514 B + 4 per VLAN tag
(before FCS), FCS == zlib.crc32, UDP GSO trains split into datagrams, IPv4 UDP fragmented as a router
with MTU 1500 would.
"""
from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import assume, given, strategies as st

import native

from netcheck import ETH_MAX, Decoded, l4_checksum_ok, ones_sum, pad60, pseudo_sum

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
SRC4, DST4 = bytes([192, 168, 206, 1]), bytes([192, 168, 206, 2])
SRC6 = bytes.fromhex("fd00a2060000000000000000000000a1")
DST6 = bytes.fromhex("fd00a2060000000000000000000000b2")
MAC_D, MAC_S = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


# --------------------------------------------------------------------------- builders (raw struct)

def fill_l4_checksum(family, src, dst, proto, l4: bytearray, off: int, state: str, rng) -> None:
    """Write the L4 checksum field at `off` as a host would leave it: correct, partial or garbage."""
    l4[off:off + 2] = b"\0\0"
    ps = pseudo_sum(family, src, dst, proto, len(l4))
    if state == "correct":
        c = (~ones_sum(bytes(l4), ps)) & 0xFFFF
        if proto == 17 and c == 0:
            c = 0xFFFF
    elif state == "partial":
        c = ps  # what checksum offload leaves: the folded pseudo-header sum
    else:
        c = rng.randrange(0x10000)
    l4[off:off + 2] = struct.pack("!H", c)



def l2(ntags: int, ethertype: int) -> bytes:
    """Ethernet header with 0, 1 (802.1Q) or 2 (802.1ad outer + 802.1Q inner) VLAN tags."""
    out = MAC_D + MAC_S
    for i, tpid in enumerate({0: [], 1: [0x8100], 2: [0x88A8, 0x8100]}[ntags]):
        out += struct.pack("!HH", tpid, 100 + i)
    return out + struct.pack("!H", ethertype)


def ipv4_header(proto: int, payload_len: int, ip_id: int, options: bytes, df: bool = True,
                mf: bool = False) -> bytes:
    ihl = 5 + len(options) // 4
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0)
    total = ihl * 4 + payload_len
    total = total if total <= 0xFFFF else 0  # BIG TCP: total length 0, the capture says how long
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ip_id, flags,
                              64, proto, 0, SRC4, DST4) + options)
    h[10:12] = struct.pack("!H", (~ones_sum(bytes(h))) & 0xFFFF)
    return bytes(h)


def ipv6_header(proto: int, payload_len: int, exthdrs: list[int]) -> tuple[bytes, bytes]:
    """Fixed header plus extension headers (8 bytes each, PadN-filled) of the given types."""
    chain = b""
    types = list(exthdrs) + [proto]
    for i, t in enumerate(exthdrs):
        chain += struct.pack("!BB", types[i + 1], 0) + b"\x01\x04\0\0\0\0"
    first = types[0]
    plen = len(chain) + payload_len
    plen = plen if plen <= 0xFFFF else 0  # BIG TCP: payload length 0 (no jumbo option)
    fixed = struct.pack("!IHBB16s16s", 0x60000000, plen, first, 64, SRC6, DST6)
    return fixed, chain


def tcp_header(seq: int, flags: int, options: bytes) -> bytearray:
    doff = 5 + len(options) // 4
    return bytearray(struct.pack("!HHIIBBHHH", 40000, 5001, seq, 12345, doff << 4, flags, 65535, 0, 0)
                     + options)


TCP_OPTS = {0: b"", 12: b"\x01\x01\x08\x0a" + b"\x00\x01\x02\x03\x04\x05\x06\x07",
            20: b"\x01\x01\x08\x0a" + bytes(range(8)) + b"\x01\x01\x04\x02\x01\x01\x01\x00"}
RA = b"\x94\x04\x00\x00"     # router alert: copy bit set
NOPS = b"\x01\x01\x01\x01"   # four NOPs: copy bit clear


def build_tcp(family, ntags, ip_opts, ext, tcp_opts, payload, flags, seq, ip_id, csum_state, rng):
    th = tcp_header(seq, flags, tcp_opts)
    seg = th + payload
    if family == 4:
        fill_l4_checksum(4, SRC4, DST4, 6, seg, 16, csum_state, rng)
        return l2(ntags, 0x0800) + ipv4_header(6, len(seg), ip_id, ip_opts) + bytes(seg)
    fill_l4_checksum(6, SRC6, DST6, 6, seg, 16, csum_state, rng)
    fixed, chain = ipv6_header(6, len(seg), ext)
    return l2(ntags, 0x86DD) + fixed + chain + bytes(seg)


def build_udp(family, ntags, ip_opts, ext, payload, ip_id, csum_state, rng, df=True):
    u = bytearray(struct.pack("!HHHH", 40001, 5001, 8 + len(payload), 0) + payload)
    if family == 4:
        fill_l4_checksum(4, SRC4, DST4, 17, u, 6, csum_state, rng)
        return l2(ntags, 0x0800) + ipv4_header(17, len(u), ip_id, ip_opts, df=df) + bytes(u)
    fill_l4_checksum(6, SRC6, DST6, 17, u, 6, csum_state, rng)
    fixed, chain = ipv6_header(17, len(u), ext)
    return l2(ntags, 0x86DD) + fixed + chain + bytes(u)


def max_frame(ntags: int) -> int:
    return ETH_MAX + 4 * ntags


def effective_seg(gso_size: int, mss: int, fit: int) -> int:
    if gso_size:
        return min(gso_size, fit)
    if mss:
        return min(mss, fit)
    return fit


# --------------------------------------------------------------------------- strategies

families = st.sampled_from([4, 6])
ntags_st = st.integers(0, 2)
ip_opts_st = st.lists(st.sampled_from([RA, NOPS]), max_size=3).map(b"".join)
ext_st = st.sampled_from([[], [60], [0], [0, 60]])
tcp_opts_st = st.sampled_from([0, 12, 20]).map(TCP_OPTS.get)
flag_st = st.sets(st.sampled_from([FIN, PSH, CWR, ECE])).map(lambda s: ACK | sum(s))
size_st = st.one_of(st.integers(0, 3000), st.integers(0, 63000))
segsize_st = st.one_of(st.just(0), st.integers(64, 1600))
csum_state_st = st.sampled_from(["correct", "partial", "garbage"])


def csum_mode(state: str, pick: int) -> int:
    if state == "partial":
        return native.CSUM_PARTIAL if pick else native.CSUM_DETECT
    return (native.CSUM_NONE, native.CSUM_DETECT)[pick]


# --------------------------------------------------------------------------- TCP

@given(family=families, ntags=ntags_st, ip_opts=ip_opts_st, ext=ext_st, tcp_opts=tcp_opts_st,
       n=size_st, flags=flag_st, seq=st.integers(0, 2**32 - 1), ip_id=st.integers(0, 0xFFFF),
       gso_size=segsize_st, mss=segsize_st, state=csum_state_st, pick=st.integers(0, 1),
       fcs=st.booleans(), seed=st.integers(0, 2**32))
def test_tcp_super_packet_becomes_wire_frames_that_carry_the_same_stream(
        family, ntags, ip_opts, ext, tcp_opts, n, flags, seq, ip_id, gso_size, mss, state, pick,
        fcs, seed):
    rng = random.Random(seed)
    payload = rng.randbytes(n)
    frame = build_tcp(family, ntags, ip_opts, ext, tcp_opts, payload, flags, seq, ip_id, state, rng)
    l3_len = len(frame) - (14 + 4 * ntags)
    assume(family == 6 or l3_len <= 0xFFFF)
    hdr_len = len(frame) - n
    fit = max_frame(ntags) - hdr_len
    seg = effective_seg(gso_size, mss, fit)
    mode = csum_mode(state, pick)

    out = native.segment(frame, gso_size=gso_size, mss=mss, csum=mode, append_fcs=fcs)

    fits = len(frame) <= max_frame(ntags) and n <= seg
    decoded = [Decoded(f, has_fcs=fcs) for f in out]
    for d in decoded:
        assert len(d.body) <= max_frame(d.ntags), "frame over 1514 B + 4 per tag"
        assert d.ntags == ntags, "VLAN tags were not kept"
        assert d.proto == 6
    if fits:
        assert len(out) == 1, "a frame that fits must pass through as one frame"
        body = decoded[0].body
        frame = pad60(frame)
        # unchanged except the TCP checksum field
        cso = hdr_len - len(tcp_opts) - 20 + 16
        assert body[:cso] == frame[:cso] and body[cso + 2:] == frame[cso + 2:]
        if state != "garbage":
            assert decoded[0].checksum_ok(), "pass-through must carry a valid (completed) checksum"
        else:
            assert body == frame, "a frame that fits keeps a checksum the mode does not complete"
        return

    expected_frames = max(1, -(-n // seg))
    assert len(out) == expected_frames
    stream = b""
    for i, d in enumerate(decoded):
        t = d.tcp
        assert d.checksum_ok(), f"segment {i}: TCP checksum invalid"
        assert t.seq == (seq + i * seg) % 2**32, "sequence numbers are not contiguous"
        piece = d.tcp_payload()
        assert len(piece) == (seg if i < len(decoded) - 1 else n - seg * (len(decoded) - 1))
        stream += piece
        first, last = i == 0, i == len(decoded) - 1
        expect = flags & ~(CWR if not first else 0) & ~((FIN | PSH) if not last else 0)
        assert t.flags == expect, f"segment {i}: flags {t.flags:#x}, expected {expect:#x}"
        assert d.l4[20:(d.l4[12] >> 4) * 4] == tcp_opts, "TCP options not copied"
        if family == 4:
            assert d.ip.id == (ip_id + i) & 0xFFFF, "IPv4 identification is not original + i"
            assert d.ip_hdr[20:] == ip_opts, "IPv4 options not copied"
        else:
            assert d.ip_hdr[40:] == frame[14 + 4 * ntags + 40: 14 + 4 * ntags + len(d.ip_hdr)], \
                "IPv6 extension headers not copied"
    assert stream == payload, "concatenated TCP payloads differ from the original"


# --------------------------------------------------------------------------- UDP GSO

@given(family=families, ntags=ntags_st, ip_opts=ip_opts_st, ext=ext_st,
       n=st.integers(1, 60000), gso=st.integers(64, 1600), ip_id=st.integers(0, 0xFFFF),
       state=csum_state_st, pick=st.integers(0, 1), fcs=st.booleans(), seed=st.integers(0, 2**32))
def test_udp_gso_train_becomes_datagrams_that_concatenate_to_the_original(
        family, ntags, ip_opts, ext, n, gso, ip_id, state, pick, fcs, seed):
    rng = random.Random(seed)
    payload = rng.randbytes(n)
    frame = build_udp(family, ntags, ip_opts, ext, payload, ip_id, state, rng)
    hdr_len = len(frame) - n
    assume(len(frame) > max_frame(ntags))  # a train that must be split
    seg = min(gso, max_frame(ntags) - hdr_len)

    out = native.segment(frame, gso_size=gso, csum=csum_mode(state, pick), append_fcs=fcs)

    assert len(out) == -(-n // seg)
    data = b""
    for i, f in enumerate(out):
        d = Decoded(f, has_fcs=fcs)
        assert len(d.body) <= max_frame(ntags)
        assert d.proto == 17 and d.ntags == ntags
        ulen = struct.unpack_from("!H", d.l4, 4)[0]
        assert ulen == len(d.l4), "UDP length does not match the datagram"
        assert struct.unpack_from("!H", d.l4, 6)[0] != 0, "a computed 0 must be sent as 0xFFFF"
        assert d.checksum_ok(), f"datagram {i}: UDP checksum invalid"
        assert len(d.l4) - 8 == (seg if i < len(out) - 1 else n - seg * (len(out) - 1))
        if family == 4:
            assert d.ip.id == (ip_id + i) & 0xFFFF
            assert not d.frag
        data += d.l4[8:]
    assert data == payload


# --------------------------------------------------------------------------- IPv4 fragmentation

def _split_options(opts: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(opts):
        t = opts[i]
        if t in (0, 1):
            out.append(opts[i:i + 1])
            i += 1
        else:
            out.append(opts[i:i + opts[i + 1]])
            i += opts[i + 1]
    return out


@given(ntags=ntags_st, ip_opts=ip_opts_st, n=st.integers(1500, 20000), ip_id=st.integers(0, 0xFFFF),
       state=csum_state_st, fcs=st.booleans(), seed=st.integers(0, 2**32))
def test_oversized_ipv4_udp_without_gso_is_fragmented_and_reassembles(
        ntags, ip_opts, n, ip_id, state, fcs, seed):
    rng = random.Random(seed)
    payload = rng.randbytes(n)
    frame = build_udp(4, ntags, ip_opts, [], payload, ip_id, state, rng, df=False)
    assume(len(frame) > max_frame(ntags))
    l3_off = 14 + 4 * ntags
    ihl = 20 + len(ip_opts)
    mode = native.CSUM_PARTIAL if state == "partial" else native.CSUM_NONE

    out = native.segment(frame, csum=mode, append_fcs=fcs)

    per = (1500 - ihl) & ~7
    later_opts = b"".join(o for o in _split_options(ip_opts) if o[0] & 0x80)
    later_opts += b"\0" * (-len(later_opts) % 4)
    pieces = {}
    for i, f in enumerate(out):
        d = Decoded(f, has_fcs=fcs)
        assert len(d.body) <= max_frame(ntags)
        assert d.ip.id == ip_id, "fragments must share the identification"
        off = (d.frag_field & 0x1FFF) * 8
        mf = bool(d.frag_field & 0x2000)
        assert mf == (i < len(out) - 1), "MF on all fragments but the last"
        assert d.ip_hdr[20:] == (ip_opts if i == 0 else later_opts), "option copy rules"
        if i < len(out) - 1:
            assert len(d.l4) == per, "every fragment but the last carries (1500 - ihl*4) & ~7 bytes"
        pieces[off] = d.l4
    whole = b"".join(pieces[k] for k in sorted(pieces))
    offs = sorted(pieces)
    assert offs[0] == 0 and all(offs[i] + len(pieces[offs[i]]) == offs[i + 1] for i in range(len(offs) - 1))
    original_l4 = frame[l3_off + ihl:]
    assert whole[8:] == original_l4[8:] and whole[:6] == original_l4[:6], "reassembly differs"
    if state != "garbage":
        assert l4_checksum_ok(4, SRC4, DST4, 17, whole), "reassembled UDP checksum invalid"


# --------------------------------------------------------------------------- fixed examples

def test_a_65226_byte_ipv4_super_packet_with_timestamps_becomes_45_full_segments():
    rng = random.Random(1)
    payload = rng.randbytes(45 * 1448)
    frame = build_tcp(4, 0, b"", [], TCP_OPTS[12], payload, ACK | PSH, 1000, 7, "partial", rng)
    assert len(frame) == 65226
    out = native.segment(frame, gso_size=1448, csum=native.CSUM_PARTIAL, append_fcs=True)
    assert len(out) == 45
    assert all(len(f) == 1514 + 4 for f in out)
    assert b"".join(Decoded(f, has_fcs=True).tcp_payload() for f in out) == payload


def test_a_626_byte_frame_holding_two_segments_is_split_at_gso_size():
    rng = random.Random(2)
    payload = rng.randbytes(2 * 280)
    frame = build_tcp(4, 0, b"", [], b"", payload, ACK, 5, 7, "partial", rng)
    out = native.segment(frame, gso_size=280, csum=native.CSUM_PARTIAL)
    assert [len(Decoded(f, has_fcs=False).tcp_payload()) for f in out] == [280, 280]


def test_urgent_data_that_would_have_to_be_split_is_refused_not_delivered_broken():
    rng = random.Random(3)
    frame = build_tcp(4, 0, b"", [], b"", rng.randbytes(5000), ACK | URG, 5, 7, "correct", rng)
    with pytest.raises(native.SegmentError):
        native.segment(frame)


def test_a_frame_whose_ip_length_exceeds_the_captured_bytes_is_refused():
    rng = random.Random(4)
    frame = build_tcp(4, 0, b"", [], b"", rng.randbytes(3000), ACK, 5, 7, "correct", rng)
    with pytest.raises(native.SegmentError):
        native.segment(frame[:-1])


def test_fcs_equals_zlib_crc32_little_endian():
    for data in (b"", b"\x00" * 60, bytes(range(256)) * 6):
        assert native.fcs(data) == zlib.crc32(data).to_bytes(4, "little")
        assert native.crc32(data) == zlib.crc32(data)


@pytest.mark.parametrize("family", [4, 6])
def test_a_big_tcp_super_packet_with_zero_ip_length_is_segmented_by_its_captured_length(family):
    rng = random.Random(5)
    payload = rng.randbytes(70000)  # more than a 16-bit IP length can say
    frame = build_tcp(family, 0, b"", [], TCP_OPTS[12], payload, ACK | PSH, 9, 1, "partial", rng)
    assert frame[16:18 if family == 4 else 20][-2:] == b"\0\0"  # the IP length field says 0
    out = native.segment(frame, gso_size=1448, csum=native.CSUM_PARTIAL)
    decoded = [Decoded(f, has_fcs=False) for f in out]
    assert all(len(d.body) <= ETH_MAX and d.checksum_ok() for d in decoded)
    assert b"".join(d.tcp_payload() for d in decoded) == payload
    seg = min(1448, ETH_MAX - (len(frame) - len(payload)))  # IPv6 + timestamps: 1428 fits
    assert len(out) == -(-70000 // seg)


@pytest.mark.parametrize("family", [4, 6])
def test_a_partial_icmp_checksum_is_completed_from_csum_start_and_csum_offset(family):
    # virtio rule: the field holds the host's seed (0 for ICMPv4, the pseudo-header sum for
    # ICMPv6); sum from csum_start to the end of the IP packet and store it complemented there
    rng = random.Random(6)
    body = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + rng.randbytes(200))
    if family == 4:
        frame = l2(0, 0x0800) + ipv4_header(1, len(body), 3, b"") + bytes(body)
    else:
        body[0] = 128  # ICMPv6 echo request
        body[2:4] = struct.pack("!H", pseudo_sum(6, SRC6, DST6, 58, len(body)))
        fixed, chain = ipv6_header(58, len(body), [])
        frame = l2(0, 0x86DD) + fixed + bytes(body)
    l4_off = len(frame) - len(body)
    out = native.segment(frame, csum=native.CSUM_PARTIAL, csum_start=l4_off, csum_offset=2)
    assert len(out) == 1
    d = Decoded(out[0], has_fcs=False)
    assert d.proto == (1 if family == 4 else 58)
    if family == 4:
        assert ones_sum(d.l4) == 0xFFFF, "ICMPv4 checksum not completed"
    else:
        assert d.checksum_ok(), "ICMPv6 checksum (with pseudo-header) not completed"
    assert out[0][:l4_off + 2] == frame[:l4_off + 2] and out[0][l4_off + 4:] == frame[l4_off + 4:]
