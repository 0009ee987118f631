"""Capture files: read pcapng and classic pcap, write pcapng. The one codec of the tree.

    for cf in iter_capture("x.pcapng"):      # or a binary file object; pcap (usec/nsec) too
        cf.ts_ns, cf.frame, cf.outgoing, cf.meta
    f.write(pcapng_header(comment="...") + pcapng_packet(t_ns, frame, outgoing, meta))

Why an own codec (and not python-pcapng or dpkt): every block has to be framed and checked
before anything decodes it anyway (a hostile length field must never drive an allocation, and a
cut file must be reported where it was cut, after every intact packet), and after that the
packet blocks are three `struct` calls. python-pcapng costs ~0.1 ms per block and its option
decoders raised OSError on fuzzed files; dpkt reads classic pcap but not the direction flags and
comments our recordings carry. Only four block types matter here (section, interface, enhanced
and simple packet); every other block is skipped by its length.

Reading. The first four bytes pick the format: a pcapng Section Header (either byte order), or a
classic pcap header a1b2c3d4 (microsecond) / a1b23c4d (nanosecond), either byte order. Every
pcapng block is checked before it is decoded: length >= 12 (28 for a section header), a
multiple of 4, at most `max_block` bytes (default 1 MiB), no longer than what the file holds,
both length fields equal; every option lies inside its block; classic records are at most
`max_block` bytes. Damage raises `CaptureFormatError` after every packet before it was yielded;
a file that simply ends early raises its subclass `CaptureTruncated`, which says at which byte
offset and after how many intact packets. Only Ethernet (link type 1) is accepted, checked when
the first packet of another link type is reached.

Per-packet metadata: an Enhanced Packet Block's `opt_comment` holding the virtio_net_hdr as JSON
(fixtures/captures/README.md: ``{"dir", "flags", "gso_type", "hdr_len", "gso_size",
"csum_start", "csum_offset"}``) becomes `CapturedFrame.meta`; `epb_flags` bits 0-1 give the
direction (1 inbound = received by the card, 2 outbound = sent by it). Timestamps become integer
nanoseconds since the epoch (if_tsresol, if_tsoffset honoured).

Writing: little-endian, one Section Header (shb_userappl, optional opt_comment), one Ethernet
Interface Description (snaplen 262144, if_tsresol 9: nanoseconds), then Enhanced Packet Blocks
with epb_flags and the JSON metadata comment. tshark reads them without a warning (tested).
"""
from __future__ import annotations

import io
import json
import os
import struct
from typing import IO, TYPE_CHECKING, Callable, Iterator, NamedTuple, Optional, Union

from .base import CaptureFormatError, PacketMeta

if TYPE_CHECKING:
    from lance.buffers import BytesLike

#: What the reader takes: a path or a binary file object open for reading.
CaptureSource = Union[str, "os.PathLike[str]", IO[bytes]]

__all__ = ["CapturedFrame", "CaptureTruncated", "iter_capture", "pcapng_header", "pcapng_packet",
           "meta_from_comment", "meta_to_comment", "DEFAULT_MAX_BLOCK", "SNAPLEN",
           "LINKTYPE_ETHERNET"]

SHB_TYPE, IDB_TYPE, OPB_TYPE, SPB_TYPE, EPB_TYPE = 0x0A0D0D0A, 1, 2, 3, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAP_USEC_MAGIC, PCAP_NSEC_MAGIC = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1
DEFAULT_MAX_BLOCK = 1 << 20
SNAPLEN = 262144
EPB_INBOUND, EPB_OUTBOUND = 1, 2
TS_MAX_NS = (1 << 64) - 1
OPT_END, OPT_COMMENT, OPT_EPB_FLAGS = 0, 1, 2
OPT_IF_NAME, OPT_SHB_USERAPPL, OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 2, 4, 9, 14


class CaptureTruncated(CaptureFormatError):
    """The file ends inside a block or record: everything before `offset` was read intact."""

    def __init__(self, message: str, offset: int, packets: int) -> None:
        super().__init__(f"truncated capture: {message}; cut at byte offset {offset:,}, after "
                         f"{packets:,} intact packet{'s' if packets != 1 else ''}")
        self.offset = offset
        self.packets = packets


class CapturedFrame(NamedTuple):
    """One packet as read from a file."""
    ts_ns: int                      # ns since the epoch (as the file says)
    frame: bytes
    outgoing: Optional[bool]        # True: sent by the capturing side; None: not recorded
    meta: Optional[PacketMeta]      # virtio_net_hdr from the JSON comment, if any


# ---------------------------------------------------------------------------------------------
# metadata comment

_META_KEYS = ("flags", "gso_type", "gso_size", "csum_start", "csum_offset")


def meta_from_comment(comment: object) -> Optional[PacketMeta]:
    """The fixture format's JSON virtio_net_hdr -> PacketMeta (None if absent or not that format)."""
    if not isinstance(comment, str) or not comment.startswith("{"):
        return None
    try:
        m = json.loads(comment)
    except ValueError:
        return None
    if not isinstance(m, dict) or not all(isinstance(m.get(k), int) for k in _META_KEYS):
        return None
    hdr = struct.pack("<BBHHHH", m["flags"] & 0xFF, m["gso_type"] & 0xFF, 0,
                      m["gso_size"] & 0xFFFF, m["csum_start"] & 0xFFFF, m["csum_offset"] & 0xFFFF)
    return PacketMeta.from_vnet_hdr(hdr)


def meta_to_comment(meta: PacketMeta, outgoing: bool) -> str:
    j = meta.to_json()
    return json.dumps({"dir": "out" if outgoing else "in", "flags": j["flags"],
                       "gso_type": j["gso_type"], "hdr_len": 0, "gso_size": j["gso_size"],
                       "csum_start": j["csum_start"], "csum_offset": j["csum_offset"]},
                      separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# reading

def ns_from_tsresol_units(units: int, tsresol: Optional[int]) -> int:
    """Timestamp units -> ns per if_tsresol (None: 10^-6; bit 7 set: 2^-n), rounding down."""
    if tsresol is None:
        return units * 1000
    if tsresol & 0x80:
        exp = tsresol & 0x7F
        if exp > 64:
            raise CaptureFormatError(f"if_tsresol 2^-{exp} is not supported")
        return (units * 1_000_000_000) >> exp
    if tsresol > 30:
        raise CaptureFormatError(f"if_tsresol 10^-{tsresol} is not supported")
    if tsresol >= 9:
        divisor: int = 10 ** (tsresol - 9)  # exponent >= 0: an int
        return units // divisor
    factor: int = 10 ** (9 - tsresol)
    return units * factor


class _Interface(NamedTuple):
    link_type: int
    tsresol: Optional[int]
    tsoffset_ns: int
    snaplen: int


def _options(block: bytes, start: int, e: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of each option from `start` to the block's trailing length field."""
    end = len(block) - 4
    o = start
    while o + 4 <= end:
        code, olen = struct.unpack_from(e + "HH", block, o)
        if code == OPT_END:
            return
        if o + 4 + olen > end:
            raise CaptureFormatError("an option runs past the end of its block")
        yield code, block[o + 4:o + 4 + olen]
        o += 4 + olen + (-olen % 4)


#: Interface Description options whose value has one fixed length (pcapng spec, section 4.2:
#: if_IPv4addr 8, if_IPv6addr 17, if_MACaddr 6, if_EUIaddr 8, if_speed 8, if_tsresol 1,
#: if_fcslen 1, if_tsoffset 8, if_txspeed 8, if_rxspeed 8). A value of another length is a
#: malformed block: refused, not skipped (a fuzzed short if_IPv4addr once crashed a reader).
IDB_OPTION_LENGTHS = {4: 8, 5: 17, 6: 6, 7: 8, 8: 8, 9: 1, 13: 1, 14: 8, 16: 8, 17: 8}


def _check_idb_option(code: int, value: bytes) -> None:
    want = IDB_OPTION_LENGTHS.get(code)
    if want is not None and len(value) != want:
        raise CaptureFormatError(f"interface description option {code} is {len(value)} bytes "
                                 f"long; the pcapng format gives it {want}")


def _check_link(iface_id: int, link_type: int) -> None:
    if link_type != LINKTYPE_ETHERNET:
        raise CaptureFormatError(
            f"interface {iface_id} has link type {link_type}, not Ethernet (1): "
            f"only Ethernet captures can be replayed into the card")


class _Reader:
    """Position bookkeeping shared by both formats: where we are, how many packets so far."""

    def __init__(self, f: IO[bytes], size: Optional[int], max_block: int) -> None:
        self.f, self.size, self.max_block = f, size, max_block
        self.pos = 0
        self.packets = 0

    def read_exact(self, n: int, what: str, start: int) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            raise CaptureTruncated(f"the file ends inside {what}", start, self.packets)
        self.pos += n
        return data


def _pcapng(r: _Reader, head: bytes,
            on_section: Optional[Callable[[Optional[str]], None]]) -> Iterator[CapturedFrame]:
    e = "<"
    ifaces: list[_Interface] = []
    last_ts = 0
    while True:
        start = r.pos - len(head)
        if not head:
            return
        if len(head) < 8:
            raise CaptureTruncated("the file ends inside a block header", start, r.packets)
        btype = struct.unpack_from("<I", head)[0]
        minimum = 12
        if btype == SHB_TYPE:  # a symmetric magic: the byte order follows
            bom = r.read_exact(4, "a section header", start)
            if bom == struct.pack("<I", BYTE_ORDER_MAGIC):
                e = "<"
            elif bom == struct.pack(">I", BYTE_ORDER_MAGIC):
                e = ">"
            else:
                raise CaptureFormatError(f"bad byte-order magic {bom.hex()} (block at byte offset {start})")
            head += bom
            minimum = 28
        else:
            btype = struct.unpack_from(e + "I", head)[0]
        length = struct.unpack_from(e + "I", head, 4)[0]
        where = f"block at byte offset {start}"
        if length < minimum or length % 4:
            raise CaptureFormatError(f"invalid block length {length} ({where})")
        if length > r.max_block:
            raise CaptureFormatError(f"block length {length} exceeds the limit of {r.max_block} "
                                     f"bytes ({where})")
        if r.size is not None and start + length > r.size:
            raise CaptureTruncated(f"a block of {length} bytes at byte offset {start} runs past "
                                   f"the end of the file", start, r.packets)
        block = head + r.read_exact(length - len(head), f"a block of {length} bytes", start)
        if struct.unpack_from(e + "I", block, length - 4)[0] != length:
            raise CaptureFormatError(f"the block's two length fields differ ({where})")
        if btype == SHB_TYPE:
            major = struct.unpack_from(e + "H", block, 12)[0]
            if major != 1:
                raise CaptureFormatError(f"pcapng version {major} is not supported ({where})")
            ifaces = []
            if on_section is not None:
                shb_comment = next((v for c, v in _options(block, 24, e) if c == OPT_COMMENT), None)
                on_section(shb_comment.decode("utf-8", "replace") if shb_comment is not None else None)
        elif btype == IDB_TYPE:
            if length < 20:
                raise CaptureFormatError(f"interface description too short ({where})")
            link, _, snaplen = struct.unpack_from(e + "HHI", block, 8)
            tsresol, tsoffset = None, 0
            for code, v in _options(block, 16, e):
                _check_idb_option(code, v)
                if code == OPT_IF_TSRESOL:
                    tsresol = v[0]
                elif code == OPT_IF_TSOFFSET and len(v) == 8:
                    tsoffset = struct.unpack(e + "q", v)[0] * 1_000_000_000
            if tsresol is not None:
                ns_from_tsresol_units(0, tsresol)  # refuse unsupported resolutions here
            ifaces.append(_Interface(link, tsresol, tsoffset, snaplen))
        elif btype in (EPB_TYPE, OPB_TYPE):
            if length < 32:
                raise CaptureFormatError(f"packet block too short ({where})")
            if btype == EPB_TYPE:
                iface_id, th, tl, caplen = struct.unpack_from(e + "IIII", block, 8)
            else:  # the obsolete Packet Block: 16-bit interface id and drop count
                iface_id, _, th, tl, caplen = struct.unpack_from(e + "HHIII", block, 8)
            if iface_id >= len(ifaces):
                raise CaptureFormatError(f"packet on undeclared interface {iface_id} ({where})")
            iface = ifaces[iface_id]
            _check_link(iface_id, iface.link_type)
            if 28 + caplen > length - 4:
                raise CaptureFormatError(f"captured length {caplen} exceeds its block ({where})")
            outgoing: Optional[bool] = None
            comment: Optional[str] = None
            for code, v in _options(block, 28 + caplen + (-caplen % 4), e):
                if code == OPT_EPB_FLAGS and len(v) == 4 and btype == EPB_TYPE:
                    outgoing = {EPB_INBOUND: False, EPB_OUTBOUND: True}.get(
                        struct.unpack(e + "I", v)[0] & 3)
                elif code == OPT_COMMENT and comment is None:
                    comment = v.decode("utf-8", "replace")
            last_ts = ns_from_tsresol_units((th << 32) | tl, iface.tsresol) + iface.tsoffset_ns
            r.packets += 1
            yield CapturedFrame(last_ts, block[28:28 + caplen], outgoing, meta_from_comment(comment))
        elif btype == SPB_TYPE:
            if not ifaces:
                raise CaptureFormatError(f"simple packet block without interface 0 ({where})")
            _check_link(0, ifaces[0].link_type)
            origlen = struct.unpack_from(e + "I", block, 8)[0]
            caplen = min(origlen, length - 16, ifaces[0].snaplen or origlen)
            r.packets += 1
            yield CapturedFrame(last_ts, block[12:12 + caplen], None, None)
        head = r.f.read(8)
        r.pos += len(head)


def _pcap(r: _Reader, head: bytes) -> Iterator[CapturedFrame]:
    hdr = head + r.read_exact(16, "the pcap file header", 0)
    for e in ("<", ">"):
        magic = struct.unpack_from(e + "I", hdr)[0]
        if magic in (PCAP_USEC_MAGIC, PCAP_NSEC_MAGIC):
            break
    scale = 1000 if magic == PCAP_USEC_MAGIC else 1
    major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(e + "HHiIII", hdr, 4)
    if major != 2:
        raise CaptureFormatError(f"pcap version {major} is not supported")
    link = network & 0xFFFF
    while True:
        start = r.pos
        rec = r.f.read(16)
        r.pos += len(rec)
        if not rec:
            return
        if len(rec) < 16:
            raise CaptureTruncated("the file ends inside a record header", start, r.packets)
        sec, frac, caplen, _origlen = struct.unpack(e + "IIII", rec)
        if caplen > r.max_block:
            raise CaptureFormatError(f"record at byte offset {start} claims {caplen} captured "
                                     f"bytes, over the limit of {r.max_block}")
        if r.size is not None and start + 16 + caplen > r.size:
            raise CaptureTruncated(f"a record of {caplen} bytes at byte offset {start} runs past "
                                   f"the end of the file", start, r.packets)
        data = r.read_exact(caplen, f"a record of {caplen} bytes", start)
        _check_link(0, link)
        r.packets += 1
        yield CapturedFrame(sec * 1_000_000_000 + frac * scale, data, None, None)


def iter_capture(f: CaptureSource, *, max_block: int = DEFAULT_MAX_BLOCK,
                 on_section: Optional[Callable[[Optional[str]], None]] = None) -> Iterator[CapturedFrame]:
    """Yield every packet of a pcapng or classic pcap stream in order; raise CaptureFormatError
    (CaptureTruncated for a file that ends early) where it breaks, after every packet before.

    `f`: a path or a binary file object. on_section: called with each pcapng Section Header's
    first opt_comment (None without one) as the section is reached, before its packets."""
    own = isinstance(f, (str, os.PathLike))
    fo: IO[bytes] = open(f, "rb") if isinstance(f, (str, os.PathLike)) else f
    try:
        r = _Reader(fo, _remaining(fo), max_block)
        head = fo.read(8)
        r.pos = len(head)
        if not head:
            raise CaptureFormatError("the file is empty")
        if len(head) >= 4 and struct.unpack_from("<I", head)[0] == SHB_TYPE:
            yield from _pcapng(r, head, on_section)
            return
        if len(head) >= 4 and {struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]} \
                & {PCAP_USEC_MAGIC, PCAP_NSEC_MAGIC}:
            if len(head) < 8:
                raise CaptureTruncated("the file ends inside the pcap file header", 0, 0)
            yield from _pcap(r, head)
            return
        if len(head) < 4 and any(m.startswith(head) for m in _MAGICS):
            raise CaptureTruncated("the file ends inside its first header", 0, 0)
        raise CaptureFormatError(f"not a pcapng or pcap file (it starts with {head[:4].hex()})")
    finally:
        if own:
            fo.close()


_MAGICS = [struct.pack(e + "I", m) for e in "<>" for m in (SHB_TYPE, PCAP_USEC_MAGIC, PCAP_NSEC_MAGIC)]


def _remaining(f: IO[bytes]) -> Optional[int]:
    """Bytes left in `f` from its position, or None when it cannot tell (a pipe)."""
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        if isinstance(f, io.BytesIO):
            return len(f.getbuffer()) - f.tell()
        return None


# ---------------------------------------------------------------------------------------------
# writing

def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_header(if_name: str = "a2065", application: str = "a2065 pcap_backend",
                  snaplen: int = SNAPLEN, comment: Optional[str] = None) -> bytes:
    """SHB (shb_userappl, and opt_comment if given) + one Ethernet IDB with if_tsresol 9 (ns)."""
    shb_opts = _opt(OPT_SHB_USERAPPL, application.encode())
    if comment:
        shb_opts = _opt(OPT_COMMENT, comment.encode()) + shb_opts
    shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + shb_opts + _opt(OPT_END, b"")
    idb = (struct.pack("<HHI", LINKTYPE_ETHERNET, 0, snaplen) + _opt(OPT_IF_NAME, if_name.encode())
           + _opt(OPT_IF_TSRESOL, b"\x09") + _opt(OPT_END, b""))
    return _block(SHB_TYPE, shb) + _block(IDB_TYPE, idb)


def pcapng_packet(t_ns: int, frame: BytesLike, outgoing: Optional[bool], meta: Optional[PacketMeta] = None,
                  snaplen: int = SNAPLEN, comment: Optional[str] = None) -> bytes:
    """One Enhanced Packet Block on interface 0 with a nanosecond timestamp, clamped to what 64
    bits of nanoseconds hold (negative -> 0, past the year 2554 -> 2^64 - 1)."""
    t_ns = min(max(0, int(t_ns)), TS_MAX_NS)
    cap = frame[:snaplen]
    body = [struct.pack("<IIIII", 0, (t_ns >> 32) & 0xFFFFFFFF, t_ns & 0xFFFFFFFF, len(cap), len(frame)),
            bytes(cap), b"\0" * (-len(cap) % 4)]
    opts = []
    if outgoing is not None:
        opts.append(_opt(OPT_EPB_FLAGS, struct.pack("<I", EPB_OUTBOUND if outgoing else EPB_INBOUND)))
    if comment is None and meta is not None:
        comment = meta_to_comment(meta, bool(outgoing))
    if comment is not None:
        opts.append(_opt(OPT_COMMENT, comment.encode()))
    if opts:
        body += opts + [_opt(OPT_END, b"")]
    return _block(EPB_TYPE, b"".join(body))
