"""Pure-Python twin of the C core (native/src/a2065net.c): the reference for native/SPEC.md.

Readable first, not fast. Every rule carries the SPEC step it implements (``# SPEC 6``). The
differential tests (tests/test_native_differential.py) compare this module with the C core byte for
byte and error code for error code.
"""
from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from lance.buffers import BytesLike

from .errors import (
    ERR_ARG, ArgError, EthertypeError, ExtHeaderError, FragmentError, IpHeaderError, MssError,
    OutSpaceError, ProtocolError, TableSpaceError, TcpHeaderError, TruncatedError, UdpHeaderError,
    UdpNoSegError, UrgError, VlanError,
)

CSUM_NONE = 0  # leave L4 checksums of pass-through frames as they are
CSUM_PARTIAL = 1  # the host left the L4 checksum partial (offload): complete it
CSUM_DETECT = 2  # complete it where the field holds only the pseudo-header sum

ETH_HLEN = 14
ETH_MAX = 1514  # largest untagged frame without FCS; +4 per VLAN tag
ETH_MIN = 60  # smallest frame a transmitter puts on the wire (without FCS): shorter is padded
FRAME_LIMIT = 1 << 20  # longest input frame accepted (SPEC Inputs)
MAX_EXTHDRS = 8  # SPEC 4
FRAG_MTU = 1500  # SPEC 7: IPv4 fragmentation as a router with this MTU

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options
IPV6_FRAG = 44

TCP_FIN, TCP_PSH, TCP_URG, TCP_CWR = 0x01, 0x08, 0x20, 0x80
IP_DF, IP_MF, IP_OFFMASK = 0x4000, 0x2000, 0x1FFF

_u16 = struct.Struct("!H")
_u32 = struct.Struct("!I")


# --- RFC 1071 checksum -----------------------------------------------------------------------


def _fold(x: int) -> int:
    """End-around-carry fold of a non-negative sum to 16 bits: 0 only for 0, else 1..0xFFFF.

    Folding keeps the value modulo 0xFFFF (2^16 = 1 mod 0xFFFF), so this equals the loop
    ``while x >> 16: x = (x & 0xFFFF) + (x >> 16)``.
    """
    return 0 if x == 0 else (x - 1) % 0xFFFF + 1


def sum16(data: BytesLike) -> int:
    """Folded ones'-complement sum of big-endian 16-bit words (odd tail byte padded with 0).

    ``int.from_bytes`` of the data is congruent to the sum of its words modulo 0xFFFF, and it is 0
    exactly when every word is 0, so folding it gives the same result as adding word by word.
    """
    data = bytes(data)
    if len(data) & 1:
        data += b"\0"
    return _fold(int.from_bytes(data, "big"))


def checksum(data: BytesLike, initial: int = 0) -> int:
    """RFC 1071 Internet checksum: ~fold(sum16(data) + initial) & 0xFFFF."""
    if not 0 <= initial <= 0xFFFFFFFF:
        raise ArgError("initial must fit 32 bits")
    return ~_fold(sum16(data) + initial) & 0xFFFF


# --- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), equal to zlib.crc32 ---------------


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32(data: BytesLike, crc: int = 0) -> int:
    """Byte-at-a-time table CRC-32 (Sarwate); equals ``zlib.crc32(data, crc)``."""
    if not 0 <= crc <= 0xFFFFFFFF:
        raise ArgError("crc must fit 32 bits")
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def fcs(data: BytesLike) -> bytes:
    """Ethernet frame check sequence as it follows the frame on the wire."""
    return zlib.crc32(data).to_bytes(4, "little")


# --- segment() -------------------------------------------------------------------------------


class _Ip:
    """What the L2/L3 walk found (offsets count from the frame start)."""

    __slots__ = ("version", "l3", "ip_len", "ip_end", "l4", "proto", "max_frame", "fits")
    version: int
    l3: int
    ip_len: int
    ip_end: int
    l4: int
    proto: int
    max_frame: int
    fits: bool


def _pseudo_sum(frame: Union[bytes, bytearray], ip: _Ip, l4_len: int) -> int:
    """Folded sum of the TCP/UDP pseudo-header (IPv6: addresses of the fixed header)."""
    l3 = ip.l3
    if ip.version == 4:
        ph = frame[l3 + 12:l3 + 20] + bytes((0, ip.proto)) + _u16.pack(l4_len & 0xFFFF)
    else:
        ph = frame[l3 + 8:l3 + 40] + _u32.pack(l4_len) + bytes((0, 0, 0, ip.proto))
    return sum16(ph)


def _l4_csum_offset(proto: int) -> int:
    return 16 if proto == IPPROTO_TCP else 6


def _fresh_l4_checksum(buf: bytearray, ip: _Ip, l4: int, end: int) -> None:
    """Zero the TCP/UDP checksum field of buf[l4:end] and store the correct checksum."""
    pos = l4 + _l4_csum_offset(ip.proto)
    buf[pos:pos + 2] = b"\0\0"
    c = ~_fold(_pseudo_sum(buf, ip, end - l4) + sum16(buf[l4:end])) & 0xFFFF
    if c == 0 and ip.proto == IPPROTO_UDP:
        c = 0xFFFF  # UDP: a computed 0 is sent as all ones (0 means "no checksum")
    buf[pos:pos + 2] = _u16.pack(c)


def _complete(frame: bytes, ip: _Ip, csum: int, csum_start: int, csum_offset: int) -> bytes:
    """SPEC 8: checksum completion of a frame that is passed through (padding kept)."""
    buf = bytearray(frame)
    if ip.proto in (IPPROTO_TCP, IPPROTO_UDP):
        pos = ip.l4 + _l4_csum_offset(ip.proto)
        if csum == CSUM_PARTIAL:
            _fresh_l4_checksum(buf, ip, ip.l4, ip.ip_end)
        elif csum == CSUM_DETECT:
            pseudo = _pseudo_sum(buf, ip, ip.ip_end - ip.l4)
            field = _u16.unpack_from(buf, pos)[0]
            correct = _fold(pseudo + sum16(buf[ip.l4:ip.ip_end])) == 0xFFFF
            if field == pseudo and not correct:
                _fresh_l4_checksum(buf, ip, ip.l4, ip.ip_end)
    elif csum == CSUM_PARTIAL:
        # Other protocols: the virtio rule. The field holds the host's seed (pseudo-header sum or
        # 0); sum from csum_start to the end of the IP packet including it, store complemented.
        pos = csum_start + csum_offset
        if pos + 2 <= ip.ip_end:
            c = ~sum16(buf[csum_start:ip.ip_end]) & 0xFFFF
            buf[pos:pos + 2] = _u16.pack(c)
    return bytes(buf)


def _walk(frame: bytes) -> Union[_Ip, list[bytes]]:
    """SPEC 1-4: returns an _Ip, or a list of frames for an early pass-through."""
    n = len(frame)
    if n < ETH_HLEN:
        raise TruncatedError("shorter than an Ethernet header")
    off = 12  # ethertype / TPID position
    ntags = 0
    et = _u16.unpack_from(frame, off)[0]
    while et in VLAN_TPIDS:  # bounded: returns at the third tag
        if ntags == 2:
            if n > ETH_MAX + 8:
                raise VlanError()
            return [frame]
        if n < off + 2 + 4:
            raise TruncatedError("VLAN tag")
        ntags += 1
        off += 4
        et = _u16.unpack_from(frame, off)[0]
    ip = _Ip()
    ip.l3 = l3 = off + 2
    ip.max_frame = ETH_MAX + 4 * ntags
    ip.fits = n <= ip.max_frame
    cap = n - l3  # captured L3 length
    if et == ETH_P_IP:
        if cap < 20:
            raise TruncatedError("IPv4 header")
        vihl = frame[l3]
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20:
            raise IpHeaderError("IPv4 version/IHL")
        if cap < ihl:
            raise TruncatedError("IPv4 options")
        total = _u16.unpack_from(frame, l3 + 2)[0]
        if total == 0 and cap > 65535:
            ip_len = cap  # BIG TCP: total length 0, the capture gives the length
        elif total < ihl:
            raise IpHeaderError("IPv4 total length")
        else:
            ip_len = total
        if cap < ip_len:
            raise TruncatedError("IPv4 total length beyond capture")
        if _u16.unpack_from(frame, l3 + 6)[0] & (IP_MF | IP_OFFMASK):
            if ip.fits:
                return [frame]
            raise FragmentError("IPv4 fragment")
        ip.version, ip.proto, ip.l4 = 4, frame[l3 + 9], l3 + ihl
    elif et == ETH_P_IPV6:
        if cap < 40:
            raise TruncatedError("IPv6 header")
        if frame[l3] >> 4 != 6:
            raise IpHeaderError("IPv6 version")
        plen = _u16.unpack_from(frame, l3 + 4)[0]
        ip_len = cap if plen == 0 and cap > 65575 else 40 + plen
        if cap < ip_len:
            raise TruncatedError("IPv6 payload length beyond capture")
        nh = frame[l3 + 6]
        hoff = 40
        count = 0
        while nh in IPV6_EXT:  # bounded by MAX_EXTHDRS
            count += 1
            if count > MAX_EXTHDRS:
                raise ExtHeaderError()
            if hoff + 2 > ip_len:
                raise TruncatedError("IPv6 extension header")
            hlen = (frame[l3 + hoff + 1] + 1) * 8
            if hoff + hlen > ip_len:
                raise TruncatedError("IPv6 extension header")
            nh = frame[l3 + hoff]
            hoff += hlen
        if nh == IPV6_FRAG:
            if ip.fits:
                return [frame]
            raise FragmentError("IPv6 fragment")
        ip.version, ip.proto, ip.l4 = 6, nh, l3 + hoff
    else:
        if ip.fits:
            return [frame]
        raise EthertypeError(hex(et))
    ip.ip_len = ip_len
    ip.ip_end = l3 + ip_len
    return ip


def _set_ip_length(buf: bytearray, ip: _Ip, l3_total: int, i: int) -> None:
    """Per-segment IP fields: IPv4 total length, ID + i, header checksum; IPv6 payload length."""
    l3 = ip.l3
    if ip.version == 4:
        ihl = (buf[l3] & 15) * 4
        ident = (_u16.unpack_from(buf, l3 + 4)[0] + i) & 0xFFFF
        struct.pack_into("!HH", buf, l3 + 2, l3_total, ident)
        buf[l3 + 10:l3 + 12] = b"\0\0"
        _u16.pack_into(buf, l3 + 10, checksum(buf[l3:l3 + ihl]))
    else:
        _u16.pack_into(buf, l3 + 4, l3_total - 40)


def _tcp_segments(frame: bytes, ip: _Ip, gso_size: int, mss: int, csum: int, cs: int,
                  co: int) -> list[bytes]:
    """SPEC 6."""
    l4, ip_end = ip.l4, ip.ip_end
    if ip_end - l4 < 20:
        raise TcpHeaderError("TCP header past the IP packet")
    thl = (frame[l4 + 12] >> 4) * 4
    if thl < 20 or l4 + thl > ip_end:
        raise TcpHeaderError("TCP data offset")
    data = l4 + thl
    payload = ip_end - data
    fit = ip.max_frame - data
    if gso_size:
        seg = min(gso_size, fit)
    elif mss:
        seg = min(mss, fit)
    else:
        seg = fit
    if seg <= 0:
        raise MssError()
    if payload <= seg and ip.fits:
        return [_complete(frame, ip, csum, cs, co)]
    nseg = max(1, -(-payload // seg))
    flags = frame[l4 + 13]
    if nseg > 1 and flags & TCP_URG:
        raise UrgError()
    seq = _u32.unpack_from(frame, l4 + 4)[0]
    head = frame[:data]
    out = []
    for i in range(nseg):
        piece = frame[data + i * seg:min(data + (i + 1) * seg, ip_end)]
        buf = bytearray(head)
        buf += piece
        _set_ip_length(buf, ip, (l4 - ip.l3) + thl + len(piece), i)
        f = flags
        if i > 0:
            f &= ~TCP_CWR  # CWR only on the first segment
        if i < nseg - 1:
            f &= ~(TCP_FIN | TCP_PSH)  # FIN and PSH only on the last
        _u32.pack_into(buf, l4 + 4, (seq + i * seg) & 0xFFFFFFFF)
        buf[l4 + 13] = f
        _fresh_l4_checksum(buf, ip, l4, len(buf))
        out.append(bytes(buf))
    return out


def _copied_options(opts: bytes) -> bytes:
    """IPv4 options for a later fragment: those with the copy bit, EOL-padded to 4 bytes.

    The walk stops at EOL or at the first malformed option (length < 2 or past the header).
    """
    kept = bytearray()
    i = 0
    while i < len(opts):  # bounded: i grows every round
        t = opts[i]
        if t == 0:
            break
        if t == 1:
            i += 1
            continue
        if i + 1 >= len(opts):
            break
        ln = opts[i + 1]
        if ln < 2 or i + ln > len(opts):
            break
        if t & 0x80:
            kept += opts[i:i + ln]
        i += ln
    kept += b"\0" * (-len(kept) % 4)
    return bytes(kept)


def _ipv4_fragments(frame: bytes, ip: _Ip) -> list[bytes]:
    """SPEC 7: fragment as a router with MTU 1500 would (frame's checksum already completed)."""
    l3, ip_end = ip.l3, ip.ip_end
    ihl = (frame[l3] & 15) * 4
    fs = (FRAG_MTU - ihl) & ~7
    body = frame[l3 + ihl:ip_end]
    nfrag = max(1, -(-len(body) // fs))
    flags = _u16.unpack_from(frame, l3 + 6)[0]
    fixed = bytearray(frame[l3:l3 + 20])
    later_opts = _copied_options(frame[l3 + 20:l3 + ihl])
    out = []
    for i in range(nfrag):
        piece = body[i * fs:(i + 1) * fs]
        opts = frame[l3 + 20:l3 + ihl] if i == 0 else later_opts
        hdr = bytearray(fixed) + opts
        hdr[0] = 0x40 | (len(hdr) // 4)
        mf = IP_MF if i < nfrag - 1 else flags & IP_MF
        fo = (flags & ~(IP_MF | IP_OFFMASK) & 0xFFFF) | mf | ((i * fs) >> 3)
        struct.pack_into("!H", hdr, 2, len(hdr) + len(piece))
        struct.pack_into("!H", hdr, 6, fo)
        hdr[10:12] = b"\0\0"
        _u16.pack_into(hdr, 10, checksum(hdr))
        out.append(frame[:l3] + bytes(hdr) + piece)
    return out


def _udp_segments(frame: bytes, ip: _Ip, gso_size: int, csum: int, cs: int,
                  co: int) -> list[bytes]:
    """SPEC 7."""
    l4, ip_end = ip.l4, ip.ip_end
    if ip_end - l4 < 8:
        raise UdpHeaderError()
    data = l4 + 8
    payload = ip_end - data
    if gso_size:
        seg = min(gso_size, ip.max_frame - data)
        if seg <= 0:
            raise MssError()
        if payload <= seg and ip.fits:
            return [_complete(frame, ip, csum, cs, co)]
        nseg = max(1, -(-payload // seg))
        head = frame[:data]
        out = []
        for i in range(nseg):
            piece = frame[data + i * seg:min(data + (i + 1) * seg, ip_end)]
            buf = bytearray(head)
            buf += piece
            _set_ip_length(buf, ip, (l4 - ip.l3) + 8 + len(piece), i)
            _u16.pack_into(buf, l4 + 4, 8 + len(piece))
            _fresh_l4_checksum(buf, ip, l4, len(buf))
            out.append(bytes(buf))
        return out
    if ip.fits:
        return [_complete(frame, ip, csum, cs, co)]
    if ip.version == 4 and not _u16.unpack_from(frame, ip.l3 + 6)[0] & IP_DF:
        return _ipv4_fragments(_complete(frame, ip, csum, cs, co), ip)
    raise UdpNoSegError()


def _frames(frame: bytes, gso_size: int, mss: int, csum: int, csum_start: int,
            csum_offset: int) -> list[bytes]:
    ip = _walk(frame)
    if isinstance(ip, list):
        return ip  # pass-through decided on L2/L3 alone: unchanged
    if ip.proto == IPPROTO_TCP:
        return _tcp_segments(frame, ip, gso_size, mss, csum, csum_start, csum_offset)
    if ip.proto == IPPROTO_UDP:
        return _udp_segments(frame, ip, gso_size, csum, csum_start, csum_offset)
    if ip.fits:
        return [_complete(frame, ip, csum, csum_start, csum_offset)]
    raise ProtocolError(f"IP protocol {ip.proto}")


def _check_args(frame_len: int, gso_size: int, mss: int, csum: int, csum_start: int,
                csum_offset: int) -> None:
    if frame_len > FRAME_LIMIT:
        raise ArgError("frame longer than 2^20 bytes")
    if csum not in (CSUM_NONE, CSUM_PARTIAL, CSUM_DETECT):
        raise ArgError(f"unknown csum mode {csum}")
    for name, v in (("gso_size", gso_size), ("mss", mss), ("csum_start", csum_start),
                    ("csum_offset", csum_offset)):
        if not 0 <= v <= 0xFFFFFFFF:
            raise ArgError(f"{name} out of range")


def segment(frame: BytesLike, *, gso_size: int = 0, mss: int = 0, csum: int = CSUM_NONE,
            csum_start: int = 0, csum_offset: int = 0, append_fcs: bool = False,
            out_cap: Optional[int] = None, table_cap: Optional[int] = None) -> list[bytes]:
    """SPEC: turn one captured frame into the wire frames it stands for.

    ``out_cap``/``table_cap`` model the C caller's buffers (None: unlimited).
    """
    whole = bytes(frame)
    _check_args(len(whole), gso_size, mss, csum, csum_start, csum_offset)
    frames = _frames(whole, gso_size, mss, csum, csum_start, csum_offset)
    out = []
    used = 0
    for i, f in enumerate(frames):  # SPEC 9
        if len(f) < ETH_MIN:
            f += b"\0" * (ETH_MIN - len(f))  # a transmitter pads short frames
        if append_fcs:
            f += fcs(f)
        if table_cap is not None and i >= table_cap:
            raise TableSpaceError()
        if out_cap is not None and used + len(f) > out_cap:
            raise OutSpaceError()
        used += len(f)
        out.append(f)
    return out


# --- LANCE descriptor paths (SPEC "LANCE descriptor paths") ---------------------------------

_LANCE_OWN = 0x8000
_LANCE_STP_ENP = 0x0300
_LANCE_FCS = 4
_W3 = struct.Struct(">3H")


def _lance_ram_ok(ram: Optional[bytearray], size: int) -> bool:
    return ram is not None and 8 <= size <= 1 << 24 and size & (size - 1) == 0


def _lance_bcnt(w2: int) -> int:
    """BCNT: the two's complement of word 2's low 12 bits; 0 means 4096."""
    return (-w2) & 0xFFF or 4096


def lance_rx_store(ram: bytearray, size: int, desc: int, frame: Optional[BytesLike], n: int) -> int:
    """Store a received frame and its FCS through the RMD at ``desc`` (SPEC): n + 4, or 0 (nothing
    written: not owned, does not fit), or ERR_ARG. ``ram``: a writable buffer of ``size`` bytes."""
    if not _lance_ram_ok(ram, size) or frame is None or len(frame) < n:
        return ERR_ARG
    a = desc & (size - 1)
    if a > size - 8:
        return 0
    w0, w1, w2 = _W3.unpack_from(ram, a)
    if not w1 & _LANCE_OWN:
        return 0
    if n > 4096 - _LANCE_FCS or n + _LANCE_FCS > _lance_bcnt(w2):
        return 0
    b = (((w1 & 0xFF) << 16) | w0) & (size - 1)
    if b + n + _LANCE_FCS > size:
        return 0
    ram[b:b + n] = frame[:n]
    ram[b + n:b + n + _LANCE_FCS] = zlib.crc32(frame[:n]).to_bytes(4, "little")
    _W3.pack_into(ram, a + 2, (w1 & 0xFF) | _LANCE_STP_ENP, w2, n + _LANCE_FCS)
    return n + _LANCE_FCS


def lance_tx_take(ram: bytearray, size: int, desc: int, add_fcs: bool, out: Optional[bytearray],
                  out_cap: int) -> int:
    """Copy the frame of the single-buffer TMD at ``desc`` into ``out`` (SPEC), with its FCS if
    ``add_fcs``: TMD2 << 32 | TMD1 << 16 | length, or 0 (not owned, not STP|ENP, wraps), or
    ERR_ARG. Writes nothing to ``ram``."""
    if not _lance_ram_ok(ram, size) or out is None or out_cap < 4096 + _LANCE_FCS:
        return ERR_ARG
    a = desc & (size - 1)
    if a > size - 8:
        return 0
    w0, w1, w2 = _W3.unpack_from(ram, a)
    if not w1 & _LANCE_OWN or w1 & _LANCE_STP_ENP != _LANCE_STP_ENP:
        return 0
    n = _lance_bcnt(w2)
    b = (((w1 & 0xFF) << 16) | w0) & (size - 1)
    if b + n > size:
        return 0
    out[:n] = ram[b:b + n]
    if add_fcs:
        out[n:n + _LANCE_FCS] = zlib.crc32(memoryview(out)[:n]).to_bytes(4, "little")
        n += _LANCE_FCS
    taken: int = w2 << 32 | w1 << 16 | n
    return taken
