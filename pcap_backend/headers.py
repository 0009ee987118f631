"""Ethernet / VLAN / IPv4 / IPv6 / TCP / UDP header walking: the one place these headers are read.

Every tool that looks inside a host frame uses this module (dpkt-style: each header parsed once,
in one small function): the bridge (flow keys, MSS learning, RFC 6691 payload limits), the replay
runner's stream collector, and the command line. The C core (`native/`) and its pure-Python oracle
walk headers on their own on purpose: the oracle is the C core's independent test oracle, see
docs/architecture.md.

    h = walk(frame)          # Headers, or None: not IPv4/IPv6, truncated or malformed
    t = tcp(frame, h)        # Tcp, or None: not an unfragmented TCP segment with a whole header
    u = udp(frame, h)        # Udp, or None
    tcp_mss_option(frame, t) # the MSS option's value, or None

Rules (all bounded, all total: any bytes give a result or None, never an exception):

- Up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88A8); a third tag is not walked (None).
- IPv4: version 4, IHL >= 5, total length >= IHL; the packet ends at total length (BIG TCP: total
  length 0 on a frame whose IP part is over 65,535 bytes ends at the frame's end). A packet whose
  end lies past the frame (a cut capture) is None. Fragments are reported (`fragment`), not walked
  into: `tcp()` / `udp()` give None for them.
- IPv6: version 6; the payload length gives the end (0 on a frame over 65,575 bytes: BIG TCP, the
  frame's end); at most 8 extension headers are walked (hop-by-hop 0, routing 43, destination
  options 60); a fragment header (44) ends the walk with `fragment` set; anything else is the
  upper-layer protocol.
- The payload of an IPv4 header's options and IPv6 extension headers is counted in `ip_options`
  (what RFC 6691 makes a sender take off the MSS besides the TCP options).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    from lance.buffers import BytesLike

__all__ = ["Headers", "Tcp", "Udp", "walk", "tcp", "udp", "tcp_mss_option", "ETH_P_IP",
           "ETH_P_IPV6", "ETH_P_ARP", "VLAN_TPIDS", "MAX_VLAN_TAGS", "MAX_IPV6_EXT_HEADERS",
           "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_ICMP", "TCP_SYN", "TCP_ACK", "TCP_FIN",
           "TCP_RST", "TCP_OPT_MSS"]

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)   # 802.1Q, 802.1ad
MAX_VLAN_TAGS = 2               # the most a wire frame may carry here (1514 + 4 per tag)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17
_IPV6_WALKED = (0, 43, 60)      # hop-by-hop, routing, destination options
_IPV6_FRAGMENT = 44
MAX_IPV6_EXT_HEADERS = 8
_IP_MF_OFFSET = 0x3FFF          # IPv4 flags MF + fragment offset
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
TCP_OPT_END, TCP_OPT_NOP, TCP_OPT_MSS = 0, 1, 2

_TCP = struct.Struct("!HHIxxxxBB")   # sport, dport, seq, (ack), data offset, flags
_UDP = struct.Struct("!HH")
_IP4 = struct.Struct("!BxHxxHxB")    # version/IHL, total length, flags/fragment offset, protocol
# The results are built with tuple.__new__ (what NamedTuple.__new__ does after binding its
# arguments): the same objects, without the Python-level constructor on the per-frame path.
_new = tuple.__new__


class Headers(NamedTuple):
    """Where the headers of one Ethernet frame are (offsets from the frame's first byte)."""

    vlan_tags: int     # 0..2
    ethertype: int     # after the tags: ETH_P_IP or ETH_P_IPV6
    l3: int            # IP header
    version: int       # 4 or 6
    src: bytes         # IP source address (4 or 16 bytes)
    dst: bytes         # IP destination address
    proto: int         # upper-layer protocol (after IPv6 extension headers)
    l4: int            # upper-layer header
    end: int           # end of the IP packet (by its length field; <= len(frame))
    ip_options: int    # bytes of IPv4 options or IPv6 extension headers
    fragment: bool     # an IPv4 fragment (MF or offset) or an IPv6 fragment header


class Tcp(NamedTuple):
    sport: int
    dport: int
    seq: int
    flags: int
    header_len: int    # data offset * 4 (20..60)
    data: int          # offset of the payload in the frame
    end: int           # end of the payload (the IP packet's end)

    @property
    def options_len(self) -> int:
        return self.header_len - 20

    @property
    def payload_len(self) -> int:
        return self.end - self.data


class Udp(NamedTuple):
    sport: int
    dport: int
    data: int          # offset of the payload
    end: int           # end of the payload (the IP packet's end)


def walk(frame: BytesLike) -> Optional[Headers]:
    """The Ethernet, VLAN and IP headers of `frame`, or None (see the module's rules)."""
    n = len(frame)
    if n < ETH_HLEN:
        return None
    off = 12
    et = (frame[12] << 8) | frame[13]
    tags = 0
    while et in VLAN_TPIDS:  # bounded: at most MAX_VLAN_TAGS tags
        if tags == MAX_VLAN_TAGS:
            return None
        off += 4
        if n < off + 2:
            return None
        et = (frame[off] << 8) | frame[off + 1]
        tags += 1
    l3 = off + 2
    cap = n - l3
    if et == ETH_P_IP:
        if cap < 20:
            return None
        vihl, total, frag, proto = _IP4.unpack_from(frame, l3)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or cap < ihl:
            return None
        if total == 0 and cap > 65535:
            total = cap  # BIG TCP
        elif total < ihl or total > cap:
            return None
        return _new(Headers, (tags, et, l3, 4, frame[l3 + 12:l3 + 16], frame[l3 + 16:l3 + 20],
                              proto, l3 + ihl, l3 + total, ihl - 20, bool(frag & _IP_MF_OFFSET)))
    if et == ETH_P_IPV6:
        if cap < 40 or frame[l3] >> 4 != 6:
            return None
        plen = (frame[l3 + 4] << 8) | frame[l3 + 5]
        ip_len = cap if plen == 0 and cap > 65575 else 40 + plen
        if ip_len > cap:
            return None
        end = l3 + ip_len
        nh = frame[l3 + 6]
        l4 = l3 + 40
        for _ in range(MAX_IPV6_EXT_HEADERS):  # bounded walk over extension headers
            if nh not in _IPV6_WALKED:
                break
            if l4 + 2 > end:
                return None
            nh, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
            if l4 > end:
                return None
        else:
            if nh in _IPV6_WALKED:
                return None  # more extension headers than we walk
        return _new(Headers, (tags, et, l3, 6, frame[l3 + 8:l3 + 24], frame[l3 + 24:l3 + 40], nh,
                              l4, end, l4 - l3 - 40, nh == _IPV6_FRAGMENT))
    return None


def tcp(frame: BytesLike, h: Optional[Headers]) -> Optional[Tcp]:
    """The TCP header of a walked frame, or None (not TCP, a fragment, or a header cut short)."""
    if h is None or h.proto != IPPROTO_TCP or h.fragment:
        return None
    l4, end = h.l4, h.end
    if l4 + 20 > end:
        return None
    sport, dport, seq, off, flags = _TCP.unpack_from(frame, l4)
    thl = (off >> 4) * 4
    if thl < 20 or l4 + thl > end:
        return None
    return _new(Tcp, (sport, dport, seq, flags, thl, l4 + thl, end))


def udp(frame: BytesLike, h: Optional[Headers]) -> Optional[Udp]:
    """The UDP header of a walked frame, or None (not UDP, a fragment, or no whole header)."""
    if h is None or h.proto != IPPROTO_UDP or h.fragment or h.l4 + 8 > h.end:
        return None
    sport, dport = _UDP.unpack_from(frame, h.l4)
    return _new(Udp, (sport, dport, h.l4 + 8, h.end))


def tcp_mss_option(frame: BytesLike, t: Optional[Tcp]) -> Optional[int]:
    """The value of the MSS option (kind 2, length 4) in a TCP header, or None. The walk stops at
    End of Options, at a length below 2 and at the header's end (RFC 9293 3.1)."""
    if t is None:
        return None
    i = t.data - t.header_len + 20
    end = t.data
    while i < end:  # bounded: every step advances by >= 1
        kind = frame[i]
        if kind == TCP_OPT_END:
            return None
        if kind == TCP_OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            return None
        olen = frame[i + 1]
        if olen < 2:
            return None
        if kind == TCP_OPT_MSS and olen == 4 and i + 4 <= end:
            return (frame[i + 2] << 8) | frame[i + 3]

        i += olen
    return None
