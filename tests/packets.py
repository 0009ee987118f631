"""Small frame builders for tests (independent of native/: checksums computed here from scratch).

    tcp_frame(b"x" * 3000, version=4, vlans=[(0x8100, 5)], tcp_options=ts_option(1, 2))
    udp_frame(b"y" * 100, version=6, ext_headers=[(0, b"\\x01\\x04\\0\\0\\0\\0")], csum="partial")

``csum``: "ok" (correct L4 checksum), "partial" (the pseudo-header sum, not complemented, as a host
with checksum offload leaves it), "zero", or an int stored as is.
"""
from __future__ import annotations

import struct

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")
IP4_SRC, IP4_DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
IP6_SRC = bytes.fromhex("fd000000000000000000000000000001")
IP6_DST = bytes.fromhex("fd000000000000000000000000000002")

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
IP_DF, IP_MF = 0x4000, 0x2000


def ones_sum(data: bytes) -> int:
    """Folded ones'-complement sum of big-endian words (plain integer sum, carries folded at the
    end: the same value as folding after every word)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum; the one the tests' frame builders share."""
    return ~ones_sum(data) & 0xFFFF


def pseudo_header(version: int, src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if version == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length & 0xFFFF)
    return src + dst + struct.pack("!IxxxB", length, proto)


def eth(payload: bytes, ethertype: int, vlans=(), dst=DST_MAC, src=SRC_MAC) -> bytes:
    """Ethernet II header with 0..n VLAN tags given as (tpid, tci)."""
    tags = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in vlans)
    return dst + src + tags + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, proto: int, *, ident=0x1234, flags=IP_DF, frag_offset=0, ttl=64,
         options=b"", total_length=None, src=IP4_SRC, dst=IP4_DST, tos=0) -> bytes:
    assert len(options) % 4 == 0 and len(options) <= 40
    ihl = 5 + len(options) // 4
    tot = ihl * 4 + len(payload) if total_length is None else total_length
    if tot > 0xFFFF:
        tot = 0  # BIG TCP: over 64 KB the length field is 0
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, tot, ident, flags | frag_offset, ttl, proto,
                      0, src, dst) + options
    hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
    return hdr + payload


def ext_header(nh_placeholder: int, body: bytes) -> bytes:
    """Raw extension header body (without next-header/length): padded to 8n-2 bytes."""
    body = body + b"\0" * (-(len(body) + 2) % 8)
    return bytes((nh_placeholder, (len(body) + 2) // 8 - 1)) + body


def ipv6(payload: bytes, nh: int, *, ext_headers=(), payload_length=None, src=IP6_SRC,
         dst=IP6_DST, hop_limit=64, flow=0) -> bytes:
    """ext_headers: [(type, body)]: type 0/43/60/44, body without the 2 leading bytes."""
    chain = b""
    types = [t for t, _ in ext_headers] + [nh]
    for (t, body), nxt in zip(ext_headers, types[1:]):
        chain += ext_header(nxt, body)
    first = types[0]
    plen = len(chain) + len(payload) if payload_length is None else payload_length
    if plen > 0xFFFF:
        plen = 0  # BIG TCP (jumbo): over 64 KB the length field is 0
    return struct.pack("!IHBB16s16s", 0x60000000 | flow, plen, first, hop_limit, src, dst) + chain + payload


def _l4_csum(version, src, dst, proto, seg: bytes, pos: int, mode, udp=False) -> bytes:
    if mode == "zero":
        c = 0
    elif mode == "partial":
        c = ones_sum(pseudo_header(version, src, dst, proto, len(seg)))
    elif mode == "ok":
        c = inet_checksum(pseudo_header(version, src, dst, proto, len(seg)) + seg)
        if udp and c == 0:
            c = 0xFFFF
    else:
        c = int(mode)
    return seg[:pos] + struct.pack("!H", c) + seg[pos + 2:]


def tcp_segment(payload: bytes, *, sport=40000, dport=80, seq=1000, ack=1, flags=ACK | PSH,
                window=65535, urg=0, options=b"") -> bytes:
    """TCP header (checksum 0) + payload."""
    assert len(options) % 4 == 0
    doff = 5 + len(options) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, urg) + options + payload


def udp_datagram(payload: bytes, *, sport=5000, dport=6000, length=None) -> bytes:
    ln = 8 + len(payload) if length is None else length
    ln &= 0xFFFF if ln <= 0xFFFF else 0
    return struct.pack("!HHHH", sport, dport, ln, 0) + payload


def ts_option(tsval=1, tsecr=0) -> bytes:
    """NOP NOP timestamps (12 bytes)."""
    return struct.pack("!BBBBII", 1, 1, 8, 10, tsval, tsecr)


def _ip_wrap(l4: bytes, proto: int, version: int, csum_pos: int, csum, udp, ip_kw, vlans,
             ext_headers, ipv6_kw=None):
    if version == 4:
        l4 = _l4_csum(4, ip_kw.get("src", IP4_SRC), ip_kw.get("dst", IP4_DST), proto, l4,
                      csum_pos, csum, udp)
        return eth(ipv4(l4, proto, **ip_kw), 0x0800, vlans)
    kw = dict(ipv6_kw or {})
    l4 = _l4_csum(6, kw.get("src", IP6_SRC), kw.get("dst", IP6_DST), proto, l4, csum_pos, csum, udp)
    return eth(ipv6(l4, proto, ext_headers=ext_headers, **kw), 0x86DD, vlans)


def tcp_frame(payload: bytes = b"", *, version=4, vlans=(), csum="ok", ip_options=b"",
              ext_headers=(), ip=None, ipv6_kw=None, tcp_options=b"", **tcp_kw) -> bytes:
    """Ethernet + IPv4/IPv6 + TCP frame. ``ip``: extra ipv4() keywords; ``ipv6_kw``: ipv6() ones;
    other keywords go to tcp_segment() (sport, dport, seq, ack, flags, window, urg)."""
    seg = tcp_segment(payload, options=tcp_options, **tcp_kw)
    ip_kw = dict(ip or {})
    if ip_options:
        ip_kw["options"] = ip_options
    return _ip_wrap(seg, 6, version, 16, csum, False, ip_kw, vlans, ext_headers, ipv6_kw)


def udp_frame(payload: bytes = b"", *, version=4, vlans=(), csum="ok", ip_options=b"",
              ext_headers=(), ip=None, ipv6_kw=None, **udp_kw) -> bytes:
    dg = udp_datagram(payload, **udp_kw)
    ip_kw = dict(ip or {})
    if ip_options:
        ip_kw["options"] = ip_options
    return _ip_wrap(dg, 17, version, 6, csum, True, ip_kw, vlans, ext_headers, ipv6_kw)


def l4_checksum_ok(frame: bytes, l3: int = 14) -> bool:
    """True when the TCP/UDP checksum of an untagged or tagged IPv4/IPv6 frame (no IPv6
    extension headers) verifies. ``l3``: offset of the IP header."""
    v = frame[l3] >> 4
    if v == 4:
        ihl = (frame[l3] & 15) * 4
        tot = struct.unpack_from("!H", frame, l3 + 2)[0]
        proto = frame[l3 + 9]
        seg = frame[l3 + ihl:l3 + tot]
        ph = pseudo_header(4, frame[l3 + 12:l3 + 16], frame[l3 + 16:l3 + 20], proto, len(seg))
    else:
        plen = struct.unpack_from("!H", frame, l3 + 4)[0]
        proto = frame[l3 + 6]
        seg = frame[l3 + 40:l3 + 40 + plen]
        ph = pseudo_header(6, frame[l3 + 8:l3 + 24], frame[l3 + 24:l3 + 40], proto, len(seg))
    return ones_sum(ph + seg) == 0xFFFF


def ipv4_header_ok(frame: bytes, l3: int = 14) -> bool:
    ihl = (frame[l3] & 15) * 4
    return ones_sum(frame[l3:l3 + ihl]) == 0xFFFF
