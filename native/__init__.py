"""The one Python API of the native core (docs/architecture.md, native/SPEC.md).

    native.IMPLEMENTATION                 "c" (the cffi extension) or "python" (the oracle)
    native.checksum(data, initial=0)      RFC 1071: ~fold(sum16(data) + initial) & 0xFFFF
    native.crc32(data, crc=0)             == zlib.crc32(data, crc)
    native.fcs(data)                      crc32(data).to_bytes(4, "little")
    native.fcs_frames(buf, table, n=None) batch FCS: frame i at buf[table[2i]:][:table[2i+1]] gets
                                          its FCS written right after it; one C call for all n
    native.segment(frame, *, gso_size=0, mss=0, csum=CSUM_NONE, csum_start=0, csum_offset=0,
                   append_fcs=False) -> list[bytes]
    native.Segmenter                      zero-copy hot path: preallocated out buffer and table
    native.segment_into(frame, out, table, ...) -> int   (offset, length) pairs written to table

``A2065_NATIVE=python`` forces the oracle. ``A2065_NATIVE_LIB=/path/_native....so`` loads that
build of the extension instead of the installed one (tools/build_asan.sh uses it for a sanitizer
build). Without the extension the import still works: IMPLEMENTATION is "python" and a warning is
logged.

Thread safety: the C functions are pure over caller buffers. ``segment()`` keeps one preallocated
``Segmenter`` per thread (threading.local); a ``Segmenter`` object itself is not thread-safe.
"""
from __future__ import annotations

import array
import importlib.util
import logging
import os
import threading
import zlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import oracle
from .errors import (  # noqa: F401  (re-exported)
    ERR_ARG, ERR_ETHERTYPE, ERR_EXTHDR, ERR_FRAGMENT, ERR_IPHDR, ERR_MSS, ERR_OUT_SPACE,
    ERR_PROTO, ERR_TABLE_SPACE, ERR_TCPHDR, ERR_TRUNCATED, ERR_UDP_NOSEG, ERR_UDPHDR, ERR_URG,
    ERR_VLAN, ERRORS, ArgError, EthertypeError, ExtHeaderError, FragmentError, IpHeaderError,
    MssError, OutSpaceError, ProtocolError, SegmentError, TableSpaceError, TcpHeaderError,
    TruncatedError, UdpHeaderError, UdpNoSegError, UrgError, VlanError, error_for,
)
if TYPE_CHECKING:
    from lance.buffers import BytesLike

#: A buffer the C core writes into: a bytearray, a writable memoryview or array.array.
WritableBuffer = Union[bytearray, memoryview, "array.array[int]"]

from .oracle import CSUM_DETECT, CSUM_NONE, CSUM_PARTIAL, ETH_MAX, ETH_MIN, FRAME_LIMIT  # noqa: F401

__all__ = [
    "IMPLEMENTATION", "checksum", "crc32", "fcs", "fcs_frames", "segment", "segment_into", "Segmenter",
    "impl_info", "lance_paths", "LANCE_TX_OUT", "CSUM_NONE", "CSUM_PARTIAL", "CSUM_DETECT",
    "SegmentError", "ERRORS",
] + [cls.__name__ for cls in ERRORS.values()]

log = logging.getLogger("a2065.native")

#: segment() grows its per-thread buffers up to this many output bytes, then raises OutSpaceError
#: (only absurd inputs, e.g. a 1 MB frame cut at mss=1, get there).
SEGMENT_OUT_LIMIT = 1 << 28
_OUT_START = 1 << 18  # 256 KB: a 64 KB super-packet at any MSS >= 536 with FCS fits
_TABLE_START = 512


def _load_extension() -> tuple[Optional[ModuleType], Optional[str]]:
    if os.environ.get("A2065_NATIVE", "").lower() == "python":
        return None, "forced by A2065_NATIVE=python"
    path = os.environ.get("A2065_NATIVE_LIB")
    if path:  # an explicitly requested build must load, or the caller is testing the wrong thing
        spec = importlib.util.spec_from_file_location("native._native", path)
        if spec is None:
            raise ImportError(f"A2065_NATIVE_LIB={path!r} is not a loadable extension")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)  # type: ignore[union-attr]  # a file spec has a loader
        return mod, None
    try:
        from . import _native as mod  # type: ignore[attr-defined,no-redef]  # built by cffi
    except ImportError as exc:
        return None, str(exc)
    return mod, None


_ext, _why = _load_extension()
IMPLEMENTATION = "python" if _ext is None else "c"
if _ext is None and not os.environ.get("A2065_NATIVE", "").lower() == "python":
    log.warning("native C core not available (%s); using the pure-Python oracle", _why)


def _u32(name: str, v: int) -> int:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ArgError(f"{name} out of range")
    return v


if _ext is not None:
    ffi, lib = _ext.ffi, _ext.lib
    _from_buffer = ffi.from_buffer
    _c_checksum = lib.a2065_checksum
    _c_crc32 = lib.a2065_crc32
    _c_segment = lib.a2065_segment
    # an extension built from an older a2065net.c lacks it (fcs_frames then raises ArgError)
    _c_fcs_frames = getattr(lib, "a2065_fcs_frames", None)

    def _cbuf(data: BytesLike) -> tuple[Any, int]:
        """(pointer-compatible object, length): bytes go straight in, other buffers by from_buffer."""
        if type(data) is bytes:
            return data, len(data)
        if isinstance(data, memoryview) and data.itemsize != 1:
            data = data.cast("B")
        return _from_buffer(data), len(data)

    # The wrappers call C first and check ranges only when cffi refuses a value (OverflowError):
    # the common call (bytes, in-range int) pays no Python-level checks.
    def checksum(data: BytesLike, initial: int = 0) -> int:
        """RFC 1071 Internet checksum: ~fold(sum16(data) + initial) & 0xFFFF."""
        try:
            if type(data) is bytes:
                return _c_checksum(data, len(data), initial)
            p, n = _cbuf(data)
            return _c_checksum(p, n, initial)
        except OverflowError:
            raise ArgError("initial must fit 32 bits") from None

    def crc32(data: BytesLike, crc: int = 0) -> int:
        """CRC-32 as ``zlib.crc32(data, crc)``."""
        try:
            if type(data) is bytes:
                return _c_crc32(data, len(data), crc)
            p, n = _cbuf(data)
            return _c_crc32(p, n, crc)
        except OverflowError:
            raise ArgError("crc must fit 32 bits") from None

    def fcs(data: BytesLike) -> bytes:
        """Ethernet FCS as it follows the frame on the wire: crc32 little-endian."""
        if type(data) is bytes:
            return _c_crc32(data, len(data), 0).to_bytes(4, "little")
        p, n = _cbuf(data)
        return _c_crc32(p, n, 0).to_bytes(4, "little")

    def fcs_frames(buf: WritableBuffer, table: BytesLike, n: Optional[int] = None) -> int:
        """Batch FCS in one C call: for each of the first n (offset, length) pairs of ``table``
        (a buffer of uint32, e.g. ``Segmenter.table`` or ``array.array("I")``; default: all),
        write crc32(buf[offset:offset+length]) little-endian at buf[offset+length:+4].
        ``buf`` must be writable. Returns n; ArgError if an FCS would end past ``buf`` (checked
        before anything is written)."""
        bp = _from_buffer(buf, require_writable=True)
        tmv = memoryview(table)
        if tmv.itemsize != 4:
            tmv = tmv.cast("B").cast("I")
        pairs = len(tmv) // 2
        if n is None:
            n = pairs
        elif not 0 <= n <= pairs:
            raise ArgError("n exceeds the table's pairs")
        if _c_fcs_frames is None:
            raise ArgError("this build of the extension has no a2065_fcs_frames: rebuild it "
                           "(python3 setup.py build_ext --inplace)")
        r = _c_fcs_frames(bp, len(bp), ffi.cast("uint32_t *", _from_buffer(tmv)), n)
        if r < 0:
            raise error_for(r)
        return r

    def impl_info() -> dict[str, str]:
        """Which code paths the C core chose at load time, e.g. {"checksum": "avx2", "crc32": "pclmul"}."""
        s = ffi.string(lib.a2065_impl_info()).decode()
        return dict(kv.split("=", 1) for kv in s.split())

    def _set_impl(checksum_wide: bool, crc_clmul: bool) -> bool:
        """Tests only: choose the AVX2 checksum / carry-less CRC paths (False: portable). crc_clmul:
        False slice-by-8, True the widest carry-less path (VPCLMULQDQ 256-bit where the CPU has
        it), 2 the 128-bit PCLMULQDQ path. True if possible."""
        return lib.a2065_set_impl(int(checksum_wide), int(crc_clmul)) == 0

else:
    ffi = lib = None

    def checksum(data: BytesLike, initial: int = 0) -> int:
        """RFC 1071 Internet checksum: ~fold(sum16(data) + initial) & 0xFFFF."""
        return oracle.checksum(data, initial)

    def crc32(data: BytesLike, crc: int = 0) -> int:
        """CRC-32 as ``zlib.crc32(data, crc)`` (the fallback uses zlib itself: same function)."""
        if not 0 <= crc <= 0xFFFFFFFF:
            raise ArgError("crc must fit 32 bits")
        return zlib.crc32(data, crc)

    def fcs(data: BytesLike) -> bytes:
        """Ethernet FCS as it follows the frame on the wire: crc32 little-endian."""
        return crc32(data).to_bytes(4, "little")

    def fcs_frames(buf: WritableBuffer, table: BytesLike, n: Optional[int] = None) -> int:
        """Batch FCS (see the C version): zlib per frame."""
        mv = memoryview(buf).cast("B")
        if mv.readonly:
            raise ArgError("buf is read-only")
        tmv = memoryview(table)
        if tmv.itemsize != 4:
            tmv = tmv.cast("B").cast("I")
        pairs = len(tmv) // 2
        if n is None:
            n = pairs
        elif not 0 <= n <= pairs:
            raise ArgError("n exceeds the table's pairs")
        t = tmv[:2 * n].tolist()
        if any(o + ln + 4 > len(mv) for o, ln in zip(t[0::2], t[1::2])):
            raise ArgError("an FCS would end past buf")
        for o, ln in zip(t[0::2], t[1::2]):
            mv[o + ln:o + ln + 4] = zlib.crc32(mv[o:o + ln]).to_bytes(4, "little")
        return n

    def impl_info() -> dict[str, str]:
        return {"checksum": "python", "crc32": "zlib"}

    def _set_impl(checksum_wide: bool, crc_clmul: bool) -> bool:
        return False


#: Room the transmit path's ``out`` buffer needs: one 4096-byte buffer and its FCS.
LANCE_TX_OUT = 4096 + 4


def lance_paths(ram: bytearray, out: bytearray) -> tuple[Any, Any, Callable[..., int],
                                                        Callable[..., int]]:
    """The Am7990 model's per-frame paths over ``ram`` (the board RAM, a power-of-two size) and
    ``out`` (a transmit buffer of at least ``LANCE_TX_OUT`` bytes), as
    ``(ram_handle, out_handle, rx_store, tx_take)`` with ``rx_store(ram_handle, size, desc, frame,
    n)`` and ``tx_take(ram_handle, size, desc, add_fcs, out_handle, out_cap)`` (native/SPEC.md,
    "LANCE descriptor paths"). With the C core and a plain ``bytearray`` RAM: the C functions and
    pointers made once here (cffi's from_buffer: while the handles live, neither buffer can be
    resized, as a bus RAM never is; ``frame`` must be ``bytes``). Otherwise (no C core, or a
    bytearray subclass that watches its accesses): the oracle's twins over the buffers
    themselves."""
    if lib is not None and type(ram) is bytearray and type(out) is bytearray:
        return (_from_buffer(ram, require_writable=True), _from_buffer(out, require_writable=True),
                lib.a2065_lance_rx_store, lib.a2065_lance_tx_take)
    return ram, out, oracle.lance_rx_store, oracle.lance_tx_take


class Segmenter:
    """Preallocated output buffer + (offset, length) table for the bridge's hot path.

    ``n = s.run(frame, gso_size=..., ...)`` makes one C call and returns the frame count (or raises
    the SegmentError subclass); the frames are then ``s.out[s.table[2*i]:][:s.table[2*i+1]]``, or
    use ``s.views(n)`` (no copy, valid until the next run()), ``s.take(n)`` (one copy, views that
    outlive run()) or ``s.frames(n)`` (bytes). Buffers are reused until the next run(). Not
    thread-safe.
    """

    def __init__(self, out_cap: int = _OUT_START, table_cap: int = _TABLE_START) -> None:
        self._alloc(out_cap, table_cap)

    def _alloc(self, out_cap: int, table_cap: int) -> None:
        self.out_cap = out_cap
        self.table_cap = table_cap
        self.out = bytearray(out_cap)
        self._mv = memoryview(self.out)
        if lib is not None:
            self._out_c = ffi.from_buffer(self.out)
            self._table_c = ffi.new("uint32_t[]", 2 * table_cap)
            self.table = memoryview(ffi.buffer(self._table_c)).cast("I")
        else:
            import array

            self.table = memoryview(array.array("I", bytes(8 * table_cap))).cast("B").cast("I")

    def run(self, frame: BytesLike, *, gso_size: int = 0, mss: int = 0, csum: int = CSUM_NONE,
            csum_start: int = 0, csum_offset: int = 0, append_fcs: bool = False) -> int:
        if lib is not None:
            if type(frame) is bytes:
                p, n = frame, len(frame)
            else:
                p, n = _cbuf(frame)
            try:  # cffi range-checks the uint32 arguments; no Python-level checks on the hot path
                r = _c_segment(p, n, gso_size, mss, csum, csum_start, csum_offset,
                               1 if append_fcs else 0, self._out_c, self.out_cap, self._table_c,
                               self.table_cap)
            except OverflowError:
                raise ArgError("gso_size/mss/csum/csum_start/csum_offset out of range") from None
            if r < 0:
                raise error_for(r)
            return r
        frames = oracle.segment(frame, gso_size=gso_size, mss=mss, csum=csum,
                                csum_start=csum_start, csum_offset=csum_offset,
                                append_fcs=append_fcs, out_cap=self.out_cap,
                                table_cap=self.table_cap)
        off = 0
        for i, f in enumerate(frames):
            self.out[off:off + len(f)] = f
            self.table[2 * i] = off
            self.table[2 * i + 1] = len(f)
            off += len(f)
        return len(frames)

    def views(self, n: int) -> list[memoryview]:
        """memoryviews into the out buffer (valid until the next run())."""
        it = iter(self.table[:2 * n])
        mv = self._mv
        return [mv[o:o + ln] for o, ln in zip(it, it)]

    def take(self, n: int) -> list[memoryview]:
        """The n frames copied out once, for a queue: one ``bytes`` copy of the used region and
        a read-only memoryview per frame into it. Unlike views(), they stay valid after the next
        run(); the copy lives as long as any of its views (the bridge's hot path)."""
        if n == 0:
            return []
        t = self.table
        blob = memoryview(bytes(self._mv[:t[2 * n - 2] + t[2 * n - 1]]))
        it = iter(t[:2 * n])
        return [blob[o:o + ln] for o, ln in zip(it, it)]

    def frames(self, n: int) -> list[bytes]:
        """The n frames as bytes (one copy of the used region, then slices: fewer allocations)."""
        if n == 0:
            return []
        t = self.table[:2 * n].tolist()
        blob = bytes(self._mv[:t[-2] + t[-1]])
        return [blob[o:o + ln] for o, ln in zip(t[0::2], t[1::2])]


_tls = threading.local()


def _segmenter() -> Segmenter:
    s = getattr(_tls, "seg", None)
    if s is None:
        s = _tls.seg = Segmenter()
    return s


def segment(frame: BytesLike, *, gso_size: int = 0, mss: int = 0, csum: int = CSUM_NONE,
            csum_start: int = 0, csum_offset: int = 0, append_fcs: bool = False) -> list[bytes]:
    """native/SPEC.md: the wire frames a captured (super-)frame stands for, or a SegmentError."""
    if lib is None:
        return oracle.segment(frame, gso_size=gso_size, mss=mss, csum=csum, csum_start=csum_start,
                              csum_offset=csum_offset, append_fcs=append_fcs)
    s = _segmenter()
    while True:  # bounded: buffers double up to SEGMENT_OUT_LIMIT
        try:
            n = s.run(frame, gso_size=gso_size, mss=mss, csum=csum, csum_start=csum_start,
                      csum_offset=csum_offset, append_fcs=append_fcs)
            return s.frames(n)
        except (OutSpaceError, TableSpaceError) as exc:
            if isinstance(exc, OutSpaceError):
                if s.out_cap >= SEGMENT_OUT_LIMIT:
                    raise
                s._alloc(s.out_cap * 2, s.table_cap)
            else:
                if s.table_cap * 8 >= SEGMENT_OUT_LIMIT:
                    raise
                s._alloc(s.out_cap, s.table_cap * 4)


def segment_into(frame: BytesLike, out: WritableBuffer, table: WritableBuffer, *, gso_size: int = 0,
                 mss: int = 0, csum: int = CSUM_NONE, csum_start: int = 0, csum_offset: int = 0,
                 append_fcs: bool = False) -> int:
    """segment() into caller buffers: ``out`` (writable bytes-like) and ``table`` (writable buffer of
    uint32 (offset, length) pairs, e.g. ``array.array("I", ...)``). Returns the frame count.

    Makes ffi.from_buffer per call; a long-lived ``Segmenter`` avoids even that.
    """
    tmv = memoryview(table)
    if tmv.readonly:
        raise ArgError("table is read-only")
    if tmv.format not in ("I", "L") or tmv.itemsize != 4:
        tmv = tmv.cast("B").cast("I")
    table_cap = len(tmv) // 2
    omv = memoryview(out)
    if omv.readonly:
        raise ArgError("out is read-only")
    omv = omv.cast("B") if omv.itemsize != 1 else omv
    if lib is not None:
        p, n = _cbuf(frame)
        for name, v in (("gso_size", gso_size), ("mss", mss), ("csum_start", csum_start),
                        ("csum_offset", csum_offset)):
            _u32(name, v)
        r = _c_segment(p, n, gso_size, mss, csum, csum_start, csum_offset,
                       1 if append_fcs else 0, _from_buffer(omv, require_writable=True), len(omv),
                       ffi.cast("uint32_t *", _from_buffer(tmv, require_writable=True)), table_cap)
        if r < 0:
            raise error_for(r)
        return r
    frames = oracle.segment(frame, gso_size=gso_size, mss=mss, csum=csum, csum_start=csum_start,
                            csum_offset=csum_offset, append_fcs=append_fcs, out_cap=len(omv),
                            table_cap=table_cap)
    off = 0
    for i, f in enumerate(frames):
        omv[off:off + len(f)] = f
        tmv[2 * i] = off
        tmv[2 * i + 1] = len(f)
        off += len(f)
    return len(frames)
