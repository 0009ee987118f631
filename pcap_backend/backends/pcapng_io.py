"""pcapng replay (a Backend that plays a capture into the card) and recorder (a tee that writes one).

Reading goes through python-pcapng's FileScanner (Enhanced Packet Blocks through a `struct` fast
path by default, see `iter_pcapng`), but every block is framed and checked here first
(`_GuardedStream`): block length ≥ 12, a multiple of 4, at most `max_block` bytes (default 1 MiB;
an EPB with snaplen 262144 is far below) and no longer than what the file still holds, both length
fields equal. So a hostile length field never drives an allocation, and a file cut anywhere —
even right after a block type, where python-pcapng alone would see a clean end — is reported as
`CaptureFormatError` after every packet before the damage has been delivered.

Per-packet metadata: an Enhanced Packet Block's `opt_comment` holding the virtio_net_hdr as JSON
(the format of fixtures/captures/README.md: ``{"dir", "flags", "gso_type", "hdr_len", "gso_size",
"csum_start", "csum_offset"}``) becomes `Packet.meta`; `epb_flags` bits 0-1 give the direction
(1 inbound, 2 outbound). The recorder writes the same format, so record → replay keeps metadata.

Recorder files: little-endian, one Section Header, one Interface Description (link type 1,
snaplen 262144, if_tsresol 9: nanosecond emulated timestamps), Enhanced Packet Blocks with
epb_flags (1 = received by the card, 2 = sent by the card). Encoded here with `struct` (a
hot path); python-pcapng and tshark read them back in the tests.
"""
from __future__ import annotations

import errno as _errno
import io
import json
import os
import struct
from typing import Callable, Iterable, Optional

from ..base import Backend, CaptureFormatError, Packet, PacketMeta

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
SPB_TYPE = 0x00000003
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_ETHERNET = 1
DEFAULT_MAX_BLOCK = 1 << 20
EPB_INBOUND, EPB_OUTBOUND = 1, 2
SNAPLEN = 262144


# ---------------------------------------------------------------------------------------------
# Reading


class _GuardedStream(io.RawIOBase):
    """A read-only stream that hands python-pcapng one checked block at a time."""

    def __init__(self, f, size: Optional[int], max_block: int):
        self.f = f
        self.size = size  # total bytes, or None when unknown (then reads are capped by max_block)
        self.max_block = max_block
        self.pos = 0  # logical offset of the next byte served
        self.block = b""
        self.boff = 0
        self.endian = "<"
        self.block_start = 0

    def readable(self):
        return True

    def tell(self):
        return self.pos

    def _fail(self, why: str):
        raise CaptureFormatError(f"{why} (block at byte offset {self.block_start})")

    def _load_block(self) -> bool:
        """Read and check the next whole block; False at a clean end of file."""
        self.block_start = self.pos
        head = self.f.read(8)
        if not head:
            return False
        if len(head) < 8:
            self._fail(f"file truncated inside a block header ({len(head)} of 8 bytes)")
        btype_le = struct.unpack_from("<I", head)[0]
        if btype_le == SHB_TYPE:  # symmetric magic: the byte order follows
            bom = self.f.read(4)
            if len(bom) < 4:
                self._fail("file truncated inside a section header")
            if bom == struct.pack("<I", BYTE_ORDER_MAGIC):
                self.endian = "<"
            elif bom == struct.pack(">I", BYTE_ORDER_MAGIC):
                self.endian = ">"
            else:
                self._fail(f"bad byte-order magic {bom.hex()}")
            head += bom
            minimum = 28
        else:
            minimum = 12
        length = struct.unpack_from(self.endian + "I", head, 4)[0]
        if length < minimum or length % 4:
            self._fail(f"invalid block length {length}")
        if length > self.max_block:
            self._fail(f"block length {length} exceeds the limit of {self.max_block} bytes")
        if self.size is not None and self.block_start + length > self.size:
            self._fail(f"file truncated: block of {length} bytes but only "
                       f"{self.size - self.block_start} left")
        rest = self.f.read(length - len(head))
        if len(rest) < length - len(head):
            self._fail(f"file truncated inside a block of {length} bytes")
        block = head + rest
        if struct.unpack_from(self.endian + "I", block, length - 4)[0] != length:
            self._fail("the block's two length fields differ")
        self.block, self.boff = block, 0
        return True

    def skip_block(self) -> None:
        """Mark the current block consumed (decoded by the fast path, not by python-pcapng)."""
        self.pos += len(self.block) - self.boff
        self.boff = len(self.block)

    def read(self, n=-1):
        """Serve bytes of the current block only (the scanner loop loads blocks explicitly)."""
        if n is None or n < 0:
            n = len(self.block) - self.boff
        out = self.block[self.boff:self.boff + n]
        self.boff += len(out)
        self.pos += len(out)
        return out


def _ts_to_ns(units: int, tsresol) -> int:
    """Timestamp units → ns per if_tsresol (absent: 10^-6; bit 7 set: 2^-n)."""
    if tsresol is None:
        return units * 1000
    if isinstance(tsresol, (bytes, bytearray)):
        tsresol = tsresol[0] if tsresol else 6
    if not isinstance(tsresol, int):
        raise CaptureFormatError(f"bad if_tsresol {tsresol!r}")
    if tsresol & 0x80:
        exp = tsresol & 0x7F
        if exp > 64:
            raise CaptureFormatError(f"if_tsresol 2^-{exp} is not supported")
        return (units * 1_000_000_000) >> exp
    if tsresol > 30:
        raise CaptureFormatError(f"if_tsresol 10^-{tsresol} is not supported")
    if tsresol >= 9:
        return units // 10 ** (tsresol - 9)
    return units * 10 ** (9 - tsresol)


_META_KEYS = ("flags", "gso_type", "gso_size", "csum_start", "csum_offset")


def meta_from_comment(comment) -> Optional[PacketMeta]:
    """The fixture format's JSON virtio_net_hdr → PacketMeta (None if absent or not that format)."""
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
    d = {"dir": "out" if outgoing else "in"}
    j = meta.to_json()
    d.update(flags=j["flags"], gso_type=j["gso_type"], hdr_len=0, gso_size=j["gso_size"],
             csum_start=j["csum_start"], csum_offset=j["csum_offset"])
    return json.dumps(d, separators=(",", ":"))


class CapturedFrame(tuple):
    """(ts_ns, frame, outgoing or None, meta or None) as read from a file."""

    __slots__ = ()

    def __new__(cls, ts_ns, frame, outgoing, meta):
        return tuple.__new__(cls, (ts_ns, frame, outgoing, meta))

    ts_ns = property(lambda s: s[0])
    frame = property(lambda s: s[1])
    outgoing = property(lambda s: s[2])
    meta = property(lambda s: s[3])


def iter_pcapng(f, *, max_block: int = DEFAULT_MAX_BLOCK, fast: bool = True,
                on_section: Optional[Callable[[Optional[str]], None]] = None) -> Iterable[CapturedFrame]:
    """Yield every packet of a pcapng stream in order; raise CaptureFormatError where it breaks.

    `f` is a binary file object (or a path). Wrong link types raise CaptureFormatError when the
    first packet on such an interface is reached (every earlier packet has been yielded).
    fast=True decodes Enhanced Packet Blocks with `struct` (python-pcapng builds an object with
    decoded options per block, ~0.1 ms each); every other block, and every EPB with fast=False,
    goes through python-pcapng. Both give the same result (tested on the fixtures).
    on_section: called with each Section Header's first opt_comment (None without one) as the
    section is reached, before its packets."""
    own = False
    if isinstance(f, (str, os.PathLike)):
        f, own = open(f, "rb"), True
    try:
        size = None
        try:
            size = os.fstat(f.fileno()).st_size - f.tell()
        except (OSError, AttributeError, io.UnsupportedOperation):
            if isinstance(f, io.BytesIO):
                size = len(f.getbuffer()) - f.tell()
        yield from _scan(_GuardedStream(f, size, max_block), fast, on_section)
    finally:
        if own:
            f.close()


_LIBRARY_ERRORS = (struct.error, ValueError, IndexError, KeyError, TypeError, AttributeError,
                   OverflowError, EOFError, RecursionError, MemoryError, RuntimeError, UnicodeError)


def _scan(stream: _GuardedStream, fast: bool, on_section=None):
    import pcapng
    from pcapng import blocks
    from pcapng.exceptions import PcapngException

    # OSError too: the block is already in memory, so an OSError here can only come from
    # python-pcapng decoding an option (e.g. socket.inet_ntoa on a short IPv4 address).
    errors = (PcapngException, OSError) + _LIBRARY_ERRORS
    scanner = pcapng.FileScanner(stream)
    last_ts = 0
    ifaces: dict = {}  # interface id -> (link_type, if_tsresol), for the fast path
    section = None
    while True:
        if not stream._load_block():
            return
        btype = struct.unpack_from(stream.endian + "I", stream.block)[0]
        try:
            if fast and btype == EPB_TYPE and section is not None \
                    and scanner.current_section is section:
                cf = _fast_epb(stream.block, stream.endian, section, ifaces)
                stream.skip_block()
                last_ts = cf.ts_ns
                yield cf
                continue
            block = next(iter(scanner))  # parses exactly the loaded block
            if stream.boff != len(stream.block):
                raise CaptureFormatError("block contents do not match its length")
            if isinstance(block, blocks.SectionHeader):
                section, ifaces = block, {}
                if on_section is not None:
                    c = block.options.get("opt_comment") if "opt_comment" in block.options else None
                    on_section((c[0] if c else None) if isinstance(c, list) else c)
            elif isinstance(block, blocks.EnhancedPacket):
                iface = block.interface
                _check_link(block.interface_id, iface.link_type)
                units = (block.timestamp_high << 32) | block.timestamp_low
                ts = _ts_to_ns(units, iface.options.get("if_tsresol"))
                outgoing = None
                if "epb_flags" in block.options:
                    outgoing = {1: False, 2: True}.get(int(block.options["epb_flags"]) & 3)
                meta = meta_from_comment(block.options.get("opt_comment"))
                data = bytes(block.packet_data)
                last_ts = ts
                yield CapturedFrame(ts, data, outgoing, meta)
            elif isinstance(block, blocks.SimplePacket):
                iface = block.section.interfaces.get(0) if block.section else None
                if iface is None:
                    raise CaptureFormatError("simple packet block without interface 0")
                _check_link(0, iface.link_type)
                yield CapturedFrame(last_ts, bytes(block.packet_data), None, None)
        except CaptureFormatError:
            raise
        except StopIteration as e:
            raise CaptureFormatError(f"block at byte offset {stream.block_start} could not be "
                                     "parsed") from e
        except errors as e:
            raise CaptureFormatError(f"corrupt pcapng block at byte offset {stream.block_start}: "
                                     f"{type(e).__name__}: {e}") from e


def _check_link(iface_id: int, link_type: int) -> None:
    if link_type != LINKTYPE_ETHERNET:
        raise CaptureFormatError(
            f"interface {iface_id} has link type {link_type}, not Ethernet (1): "
            f"only Ethernet captures can be replayed into the card")


def _fast_epb(block: bytes, e: str, section, ifaces: dict) -> CapturedFrame:
    end = len(block) - 4
    if end < 28:
        raise CaptureFormatError("enhanced packet block too short")
    iface_id, th, tl, caplen, _origlen = struct.unpack_from(e + "IIIII", block, 8)
    info = ifaces.get(iface_id)
    if info is None:
        idb = section.interfaces.get(iface_id)
        if idb is None:
            raise CaptureFormatError(f"packet on undeclared interface {iface_id}")
        info = ifaces[iface_id] = (idb.link_type, idb.options.get("if_tsresol"))
    _check_link(iface_id, info[0])
    if 28 + caplen > end:
        raise CaptureFormatError(f"captured length {caplen} exceeds its block")
    data = block[28:28 + caplen]
    o = 28 + caplen + (-caplen % 4)
    outgoing = None
    comment = None
    while o + 4 <= end:
        code, olen = struct.unpack_from(e + "HH", block, o)
        if code == 0:
            break
        if o + 4 + olen > end:
            raise CaptureFormatError("option runs past the end of its block")
        if code == 2 and olen == 4:
            outgoing = {1: False, 2: True}.get(struct.unpack_from(e + "I", block, o + 4)[0] & 3)
        elif code == 1 and comment is None:
            comment = block[o + 4:o + 4 + olen].decode("utf-8", "replace")
        o += 4 + olen + (-olen % 4)
    ts = _ts_to_ns((th << 32) | tl, info[1])
    return CapturedFrame(ts, data, outgoing, meta_from_comment(comment))


class PcapngReplay(Backend):
    """Replay a pcapng capture as the network the card sees.

    timing="recorded": the first packet arrives at start_ns, the others at their recorded offsets
    from it (never earlier than the packet before). timing="asap": every packet is available at
    once (arrival = the poll time, not before start_ns), as fast as the card takes frames.
    directions: None (all), or a set of "in"/"out"/None: replay only packets with that epb_flags
    direction (None = no direction recorded); others are skipped and counted.
    send(): accepted and counted, or forwarded to `peer` (a Backend) when given.
    strict=True: a damaged file raises CaptureFormatError from poll() once, after every packet
    before the damage was returned; later polls return []. strict=False: the error is only
    logged and kept in `.error` / stats. Either way nothing already read is lost.
    """

    name = "pcapng.replay"

    def __init__(self, path, *, timing: str = "recorded", start_ns: int = 0, peer: Optional[Backend] = None,
                 directions=None, strict: bool = True, max_block: int = DEFAULT_MAX_BLOCK,
                 fast: bool = True, name: Optional[str] = None):
        super().__init__(name)
        if timing not in ("recorded", "asap"):
            raise ValueError("timing must be 'recorded' or 'asap'")
        self.path = path
        self.timing = timing
        self.start_ns = int(start_ns)
        self.peer = peer
        self.strict = strict
        self.directions = None if directions is None else {
            {"in": False, "out": True, None: None}[d] for d in directions}
        self.error: Optional[CaptureFormatError] = None
        self._error_raised = False
        self.rx_skipped = 0
        self.tx_accepted = 0
        self._first_ts: Optional[int] = None
        self._last_arrival = self.start_ns
        self._next: Optional[Packet] = None
        self.done = False
        if isinstance(path, (str, os.PathLike)):
            self._file = open(path, "rb")  # a missing file raises here, at construction
        else:
            self._file = path
        self._it = iter_pcapng(self._file, max_block=max_block, fast=fast)
        self._advance()

    def _advance(self) -> None:
        """Load the next deliverable packet into self._next (or finish / record the error)."""
        self._next = None
        while not self.done:
            try:
                cf = next(self._it)
            except StopIteration:
                self.done = True
                return
            except CaptureFormatError as e:
                self.done = True
                self.error = e
                self.log.warning("%s: %s", self.name, e)
                return
            if self.directions is not None and cf.outgoing not in self.directions:
                self.rx_skipped += 1
                continue
            if self._first_ts is None:
                self._first_ts = cf.ts_ns
            if self.timing == "recorded":
                arrival = max(self.start_ns + (cf.ts_ns - self._first_ts), self._last_arrival)
                self._last_arrival = arrival
            else:
                arrival = None
            self._next = Packet(arrival, cf.frame, cf.meta)
            return

    def poll(self, now_ns: int, limit: int = 64) -> list:
        out = []
        while self._next is not None and len(out) < limit:
            p = self._next
            if p.arrival_ns is None:
                if now_ns < self.start_ns:
                    break
                p = p._replace(arrival_ns=now_ns)
            elif p.arrival_ns > now_ns:
                break
            self._rx(p.frame)
            out.append(p)
            self._advance()
        if not out and self._next is None and self.error is not None and self.strict \
                and not self._error_raised:
            self._error_raised = True
            raise self.error
        return out

    def next_deadline(self) -> Optional[int]:
        """Arrival time of the next packet (start_ns or later for asap), or None when done."""
        if self._next is None:
            return None
        return self._next.arrival_ns if self._next.arrival_ns is not None else self.start_ns

    @property
    def exhausted(self) -> bool:
        return self._next is None

    @property
    def link_up(self) -> bool:
        return not self.closed

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if self.peer is not None:
            ok = self.peer.send(frame, t_ns)
            if not ok:
                return self._tx_fail("peer_refused")
        self._tx_ok(frame)
        return True

    def stats(self) -> dict:
        s = super().stats()
        s.update(rx_skipped=self.rx_skipped, done=self.done and self._next is None,
                 format_error=str(self.error) if self.error else None)
        return s

    def close(self) -> None:
        if not self.closed:
            self._it.close()
            if self._file is not self.path:
                self._file.close()
        super().close()


# ---------------------------------------------------------------------------------------------
# Writing


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def file_header(if_name: str = "a2065", application: str = "a2065 pcap_backend",
                snaplen: int = SNAPLEN, comment: Optional[str] = None) -> bytes:
    """SHB (shb_userappl, and opt_comment if given) + one Ethernet IDB with if_tsresol 9 (ns)."""
    shb_opts = _opt(4, application.encode())
    if comment:
        shb_opts = _opt(1, comment.encode()) + shb_opts
    shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + shb_opts + _opt(0, b"")
    idb = (struct.pack("<HHI", LINKTYPE_ETHERNET, 0, snaplen) + _opt(2, if_name.encode())
           + _opt(9, b"\x09") + _opt(0, b""))
    return _block(SHB_TYPE, shb) + _block(IDB_TYPE, idb)


def epb(t_ns: int, frame: bytes, outgoing: Optional[bool], meta: Optional[PacketMeta] = None,
        snaplen: int = SNAPLEN, comment: Optional[str] = None) -> bytes:
    """One Enhanced Packet Block on interface 0 with a nanosecond timestamp."""
    t_ns = max(0, int(t_ns))
    cap = frame[:snaplen]
    body = [struct.pack("<IIIII", 0, (t_ns >> 32) & 0xFFFFFFFF, t_ns & 0xFFFFFFFF, len(cap), len(frame)),
            bytes(cap), b"\0" * (-len(cap) % 4)]
    opts = []
    if outgoing is not None:
        opts.append(_opt(2, struct.pack("<I", EPB_OUTBOUND if outgoing else EPB_INBOUND)))
    if comment is None and meta is not None:
        comment = meta_to_comment(meta, bool(outgoing))
    if comment is not None:
        opts.append(_opt(1, comment.encode()))
    if opts:
        body += opts + [_opt(0, b"")]
    return _block(EPB_TYPE, b"".join(body))


class PcapngRecorder(Backend):
    """A tee around any backend (or a plain sink with `inner=None`) writing both directions.

    Received packets are recorded at their arrival_ns (epb_flags 1), frames the card sends at
    their t_ns (epb_flags 2) if the inner backend accepted them (or always, without one); metadata
    goes into opt_comment as JSON. `record(t_ns, frame, outgoing, meta=None)` records directly
    (the Bridge's tee interface).

    Flush policy: blocks collect in memory and are written at the end of every poll() that
    recorded something, whenever `flush_bytes` are pending, at flush() and close();
    flush="packet" writes each block at once. Write errors (a full disk: ENOSPC, EIO, ...) are
    counted (record_errors, record_dropped frames), logged once per condition, and never break
    traffic; the file is cut back to the last complete block if it is seekable, and recording
    resumes by itself when writes succeed again.
    """

    name = "pcapng.recorder"

    def __init__(self, path_or_file, inner: Optional[Backend] = None, *, flush: str = "poll",
                 flush_bytes: int = 256 * 1024, snaplen: int = SNAPLEN,
                 if_name: str = "a2065", name: Optional[str] = None,
                 application: str = "a2065 pcap_backend", comment: Optional[str] = None):
        super().__init__(name)
        if flush not in ("poll", "packet"):
            raise ValueError("flush must be 'poll' or 'packet'")
        self.inner = inner
        self.flush_policy = flush
        self.flush_bytes = flush_bytes
        self.snaplen = snaplen
        if isinstance(path_or_file, (str, os.PathLike)):
            self.f = open(path_or_file, "wb", buffering=0)
            self._own = True
        else:
            self.f = path_or_file
            self._own = False
        self._header = file_header(if_name=if_name, application=application, snaplen=snaplen,
                                   comment=comment)
        self._header_written = False
        self._pending = bytearray()
        self._pending_frames = 0
        try:
            self._good = self.f.tell()
        except (OSError, AttributeError, io.UnsupportedOperation):
            self._good = None
        self.recorded_frames = 0
        self.recorded_bytes = 0
        self.record_errors = 0
        self.record_dropped = 0
        self.flush()

    # -- recording -----------------------------------------------------------------------------
    def record(self, t_ns: int, frame: bytes, outgoing: bool, meta: Optional[PacketMeta] = None) -> None:
        if self.closed:
            return
        self._pending += epb(t_ns, frame, outgoing, meta, self.snaplen)
        self._pending_frames += 1
        if self.flush_policy == "packet" or len(self._pending) >= self.flush_bytes:
            self.flush()

    def flush(self) -> bool:
        """Write pending blocks; False (counted, logged once) if the file refused them."""
        if not self._pending and self._header_written:
            return True
        data = bytes(self._pending) if self._header_written else self._header + bytes(self._pending)
        frames = self._pending_frames
        try:
            view = memoryview(data)
            while view:
                n = self.f.write(view)
                if n is None:  # a non-blocking raw file that took nothing
                    raise OSError(_errno.EAGAIN, "write would block")
                view = view[n:]
            if hasattr(self.f, "flush"):
                self.f.flush()
        except (OSError, ValueError) as e:
            self.record_errors += 1
            self.record_dropped += frames
            code = _errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
            self.conditions.hit("record:error", "%s: recorder cannot write (%s: %s): frames are "
                                "counted as record_dropped, traffic continues", self.name, code, e)
            self._rewind()
            self._pending.clear()  # dropped (counted above): memory stays bounded
            self._pending_frames = 0
            return False
        if self._good is not None:
            self._good += len(data)
        self._header_written = True
        self.recorded_frames += frames
        self.recorded_bytes += len(data)
        self._pending.clear()
        self._pending_frames = 0
        self.conditions.clear("record:error")
        return True

    def _rewind(self) -> None:
        """Cut a partly written block off so the file stays readable up to the last good block."""
        if self._good is None:
            return
        try:
            self.f.seek(self._good)
            self.f.truncate(self._good)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    # -- Backend -------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return (not self.closed) and (self.inner.link_up if self.inner is not None else True)

    def fileno(self) -> Optional[int]:
        return self.inner.fileno() if self.inner is not None else None

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.inner is not None:
            if not self.inner.send(frame, t_ns):
                return self._tx_fail("inner_refused")
        self._tx_ok(frame)
        self.record(t_ns, frame, True)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list:
        if self.inner is None:
            return []
        pkts = self.inner.poll(now_ns, limit)
        for p in pkts:
            self._rx(p.frame)
            self.record(p.arrival_ns, p.frame, False, p.meta)
        if self._pending:
            self.flush()
        return pkts

    def next_deadline(self) -> Optional[int]:
        nd = getattr(self.inner, "next_deadline", None)
        return nd() if nd is not None else None

    def stats(self) -> dict:
        s = super().stats()
        s.update(recorded_frames=self.recorded_frames, recorded_bytes=self.recorded_bytes,
                 record_errors=self.record_errors, record_dropped=self.record_dropped,
                 record_pending=self._pending_frames)
        if self.inner is not None:
            s["inner"] = self.inner.stats()
            s["kernel_drops"] = s["inner"].get("kernel_drops")
        return s

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            super().close()
            if self._own:
                try:
                    self.f.close()
                except OSError as e:
                    self.record_errors += 1
                    self.log.warning("%s: closing the file: %s", self.name, e)
            if self.inner is not None:
                self.inner.close()


class PcapngTee(PcapngRecorder):
    """The Bridge's recorder tee: a `PcapngRecorder` without an inner backend, with the SHB
    comment the CLI puts there, `shb_userappl` "a2065", and `frames`/`bytes` counting every frame
    handed to `record()` (frame bytes, not file bytes). Blocks are written whenever `flush_bytes`
    (8 KiB, one stdio buffer) are pending and at close(); a context manager."""

    name = "pcapng.tee"

    def __init__(self, path, *, if_name: str = "a2065", comment: Optional[str] = None,
                 flush_bytes: int = 8192):
        self.path = str(path)
        self.frames = 0
        self.bytes = 0
        super().__init__(self.path, None, flush_bytes=flush_bytes, if_name=if_name,
                         application="a2065", comment=comment)

    def record(self, t_ns: int, frame: bytes, outgoing: bool, meta: Optional[PacketMeta] = None) -> None:
        if self.closed:
            return
        self.frames += 1
        self.bytes += len(frame)
        super().record(t_ns, frame, outgoing, meta)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
