"""Shared helpers for the bridge tests: a scriptable chip double, a list backend, frame builders.

The chip double implements exactly the part of the Am7990 contract the bridge uses
(docs/architecture.md: receive, rx_ready, rx_idle_at, now, transmit callback, mode), so the
bridge's own rules are tested without the full chip; test_bridge_chip.py runs against the real one.
"""
from __future__ import annotations

import enum
import struct

from packets import inet_checksum as _csum
from pcap_backend.base import Backend, Packet

try:  # the real enum when lance has landed; the bridge only looks at member names
    from lance import RxStatus
except Exception:  # pragma: no cover
    class RxStatus(enum.Enum):
        ACCEPTED = 0
        FILTERED = 1
        MISSED = 2
        RX_OFF = 3
        BUSY = 4
        TOO_LONG = 5
        RUNT = 6

CARD_MAC = bytes.fromhex("00800f123456")
PEER_MAC = bytes.fromhex("020000000002")
BCAST = b"\xff" * 6


def wire_time_ns(frame_len: int) -> int:
    """10 Mb/s: preamble 8 B + frame (padded to 60) + FCS 4 B at 800 ns/byte, + 9.6 us gap."""
    return (8 + max(frame_len, 60) + 4) * 800 + 9600


class ChipDouble:
    def __init__(self, timing="fast", descriptors=1 << 30, mac=CARD_MAC, promiscuous=False):
        self.timing = timing
        self.now = 0
        self.free = descriptors
        self.got = []            # (t_ns, frame) accepted
        self.busy_until = 0
        self.rx_on = True
        self.mode = 0
        self.padr = mac
        self.promiscuous = promiscuous
        self.transmit = None     # the bridge installs its callback here

    def advance_to(self, t):
        assert t >= self.now
        self.now = t

    def rx_ready(self, length):
        return self.rx_on and self.free > 0 and self.now >= self.busy_until

    def rx_idle_at(self):
        return self.busy_until

    def receive(self, frame, *, has_fcs=False):
        if not self.rx_on:
            return RxStatus.RX_OFF
        if self.now < self.busy_until:
            return RxStatus.BUSY
        if len(frame) + 4 > 1518:
            return RxStatus.TOO_LONG
        if not self.promiscuous and frame[:6] not in (self.padr, BCAST):
            return RxStatus.FILTERED
        if self.free <= 0:
            return RxStatus.MISSED
        self.free -= 1
        self.got.append((self.now, bytes(frame)))
        if self.timing == "wire":
            self.busy_until = self.now + wire_time_ns(len(frame))
        return RxStatus.ACCEPTED

    def send(self, frame_without_fcs, t_ns):
        """What the chip does on a transmit: append an FCS and call the callback."""
        import zlib
        fcs = zlib.crc32(frame_without_fcs).to_bytes(4, "little")
        return self.transmit(frame_without_fcs + fcs, t_ns)


class ListBackend(Backend):
    """Packets handed out in order once their arrival time has come; records sends."""

    name = "list"

    def __init__(self, packets=(), accept_tx=True):
        super().__init__()
        self.pending = list(packets)
        self.pending.reverse()
        self.sent = []
        self.accept_tx = accept_tx

    def add(self, arrival_ns, frame, meta=None):
        self.pending.insert(0, Packet(arrival_ns, frame, meta))

    def send(self, frame, t_ns):
        if not self.accept_tx:
            return self._tx_fail("full")
        self.sent.append((t_ns, bytes(frame)))
        self._tx_ok(frame)
        return True

    def poll(self, now_ns, limit=64):
        out = []
        while self.pending and len(out) < limit and self.pending[-1].arrival_ns <= now_ns:
            p = self.pending.pop()
            self._rx(p.frame)
            out.append(p)
        return out

    def next_deadline(self):
        return self.pending[-1].arrival_ns if self.pending else None


def ipv4_tcp(payload: bytes, *, dst_mac=CARD_MAC, src_mac=PEER_MAC, src="10.0.0.2", dst="10.0.0.1",
             sport=5001, dport=40000, seq=1000, flags=0x18, options=b"", ident=7,
             good_csum=True) -> bytes:
    """An Ethernet/IPv4/TCP frame with valid IP header checksum and (optionally) TCP checksum."""
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)
    thl = 20 + len(options)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (thl // 4) << 4, flags, 65535, 0, 0)
    tcp += options
    total = 20 + thl + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    seg = tcp + payload
    if good_csum:
        pseudo = s + d + struct.pack("!BBH", 0, 6, len(seg))
        c = _csum(pseudo + seg)
        seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return dst_mac + src_mac + b"\x08\x00" + ip + seg


def tcp_checksum_ok(frame: bytes) -> bool:
    ihl = (frame[14] & 0xF) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    s, d = frame[26:30], frame[30:34]
    seg = frame[14 + ihl:14 + total]
    pseudo = s + d + struct.pack("!BBH", 0, 6, len(seg))
    return _csum(pseudo + seg) == 0


def tcp_payload(frame: bytes):
    """(seq, payload) of an IPv4/IPv6 TCP frame (no VLAN)."""
    et = struct.unpack_from("!H", frame, 12)[0]
    if et == 0x0800:
        ihl = (frame[14] & 0xF) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        l4, end = 14 + ihl, 14 + total
    else:
        plen = struct.unpack_from("!H", frame, 18)[0]
        l4, end = 54, 54 + plen
    seq = struct.unpack_from("!I", frame, l4 + 4)[0]
    doff = (frame[l4 + 12] >> 4) * 4
    return seq, frame[l4 + doff:end]


def is_tcp(frame: bytes) -> bool:
    et = struct.unpack_from("!H", frame, 12)[0]
    if et == 0x0800:
        return frame[23] == 6
    return et == 0x86DD and frame[20] == 6


def reassemble(frames) -> bytes:
    """Concatenate TCP payloads in sequence order from the SYN's ISN (or the lowest seq)."""
    segs = {}
    for f in frames:
        if not is_tcp(f):
            continue
        seq, data = tcp_payload(f)
        if data:
            segs.setdefault(seq, data)
    if not segs:
        return b""
    seq = min(segs)
    out = bytearray()
    while seq in segs:
        data = segs.pop(seq)
        out += data
        seq = (seq + len(data)) & 0xFFFFFFFF
    return bytes(out)


def check_invariant(bridge):
    s = bridge.stats()
    assert s["frames_in"] == s["delivered"] + s["queued"] + s["dropped_total"], s
    return s
