"""Independent checks of wire frames: RFC 1071 arithmetic written here and a dpkt-based decoder.

Shared by tests/test_native_semantics.py and tests/test_native_fixture.py. Nothing here imports
native, so a mistake shared by the C core and its oracle cannot hide in the checker.
"""
from __future__ import annotations

import struct
import zlib

import dpkt

ETH_MAX = 1514
ETH_MIN = 60  # frames shorter than this leave padded with zeros (the oracle's rule; SPEC 9)


def ones_sum(data: bytes, initial: int = 0) -> int:
    """16-bit one's-complement sum (RFC 1071), folded, not complemented."""
    if len(data) & 1:
        data += b"\0"
    s = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_sum(family: int, src: bytes, dst: bytes, proto: int, length: int) -> int:
    if family == 4:
        # (a 16-bit field: only a BIG TCP input frame is longer, and its sum is never checked)
        return ones_sum(src + dst + struct.pack("!BBH", 0, proto, length & 0xFFFF))
    return ones_sum(src + dst + struct.pack("!IxxxB", length, proto))


def l4_checksum_ok(family: int, src: bytes, dst: bytes, proto: int, l4: bytes) -> bool:
    return ones_sum(l4, pseudo_sum(family, src, dst, proto, len(l4))) == 0xFFFF


class Decoded:
    """One output frame decoded with dpkt; L3/L4 byte ranges located from the IP lengths."""

    def __init__(self, frame: bytes, *, has_fcs: bool):
        self.raw = frame
        if has_fcs:
            body, fcs = frame[:-4], frame[-4:]
            assert fcs == zlib.crc32(body).to_bytes(4, "little"), "FCS is not zlib.crc32 of the frame"
        else:
            body = frame
        self.body = body
        eth = dpkt.ethernet.Ethernet(body)
        self.ntags = len(getattr(eth, "vlan_tags", []) or [])
        self.l3_off = 14 + 4 * self.ntags
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            self.family = 4
            self.ip = ip
            ihl = ip.hl * 4
            l3 = body[self.l3_off:self.l3_off + ip.len]
            assert len(l3) == ip.len, "IPv4 total length beyond the frame"
            assert ones_sum(l3[:ihl]) == 0xFFFF, "IPv4 header checksum invalid"
            self.ip_hdr = l3[:ihl]
            self.l4 = l3[ihl:]
            self.proto = ip.p
            self.src, self.dst = ip.src, ip.dst
            self.frag_field = struct.unpack_from("!H", l3, 6)[0]  # flags + fragment offset
            self.frag = bool(self.frag_field & 0x2000) or (self.frag_field & 0x1FFF) != 0
        elif isinstance(ip, dpkt.ip6.IP6):
            self.family = 6
            self.ip = ip
            l3 = body[self.l3_off:self.l3_off + 40 + ip.plen]
            assert len(l3) == 40 + ip.plen, "IPv6 payload length beyond the frame"
            # walk the extension headers ourselves (types 0 and 60 only, as built above)
            nh, off = ip.nxt, 40
            while nh in (0, 43, 60):
                nh, hl = l3[off], (l3[off + 1] + 1) * 8
                off += hl
            self.ip_hdr = l3[:off]
            self.l4 = l3[off:]
            self.proto = nh
            self.src, self.dst = ip.src, ip.dst
            self.frag = False
        else:
            raise AssertionError(f"output frame is not IP: {body[:40].hex()}")
        end = self.l3_off + len(l3)
        # the only bytes allowed after the IP packet: zero padding up to the 60-byte minimum
        assert len(body) == max(end, ETH_MIN), "output frame carries bytes past the IP packet"
        assert body[end:] == b"\0" * (len(body) - end), "padding is not zero"

    def checksum_ok(self) -> bool:
        return l4_checksum_ok(self.family, self.src, self.dst, self.proto, self.l4)

    @property
    def tcp(self):
        return dpkt.tcp.TCP(self.l4)

    def tcp_payload(self) -> bytes:
        return self.l4[(self.l4[12] >> 4) * 4:]


def pad60(frame: bytes) -> bytes:
    return frame + b"\0" * (ETH_MIN - len(frame)) if len(frame) < ETH_MIN else frame
