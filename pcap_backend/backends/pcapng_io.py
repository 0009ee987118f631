"""Capture replay (a Backend that plays a capture into the card) and pcapng recorder (a tee).

Both sit on the one capture codec, `pcap_backend.capfile` (pcapng and classic pcap reading,
pcapng writing, every block checked before it is decoded; see there for the format details).
The recorder writes nanosecond timestamps; `ts_offset_ns` maps the caller's clock (emulated time)
onto real-world time, so a recording carries the source capture's dates (replay) or the wall
clock (live).
"""
from __future__ import annotations

import errno as _errno
import io
import os
import time
from typing import IO, TYPE_CHECKING, Any, Generator, Iterable, Optional, Union, cast

from ..base import Backend, CaptureFormatError, Packet, PacketMeta
from ..capfile import (DEFAULT_MAX_BLOCK, SNAPLEN, CapturedFrame, CaptureSource, iter_capture,
                       pcapng_header, pcapng_packet)

if TYPE_CHECKING:
    from lance.buffers import BytesLike

# a packet waiting in a replay: (arrival_ns, None for asap; frame; metadata)
_Pending = tuple[Optional[int], bytes, Optional[PacketMeta]]

__all__ = ["CaptureReplay", "PcapngReplay", "PcapngRecorder", "PcapngTee", "iter_pcapng"]

iter_pcapng = iter_capture  # the name the older tests and tools import


class CaptureReplay(Backend):
    """Replay a capture (a pcapng/pcap path or binary file, or a list of frames already read) as
    the network the card sees.

    timing="recorded": the first packet arrives at start_ns, the others at their recorded offsets
    from it (never earlier than the packet before). timing="asap" (or as_fast=True): every packet
    is available at once (arrival = the poll time, not before start_ns), as fast as the card
    takes frames. directions: None (all), or a set of "in"/"out"/None: replay only packets with
    that epb_flags direction (None = no direction recorded); others are skipped and counted.
    send(): accepted and counted, or forwarded to `peer` (a Backend) when given.
    strict=True: a damaged file raises CaptureFormatError from poll() once, after every packet
    before the damage was returned; later polls return []. strict=False: the error is only
    logged and kept in `.error` / stats. Either way nothing already read is lost.
    """

    name = "replay"

    def __init__(self, source: Union[CaptureSource, Iterable[CapturedFrame]], *,
                 timing: str = "recorded", start_ns: int = 0, peer: Optional[Backend] = None,
                 directions: Optional[Iterable[Optional[str]]] = None, strict: bool = True,
                 max_block: int = DEFAULT_MAX_BLOCK, as_fast: bool = False,
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        if as_fast:
            timing = "asap"
        if timing not in ("recorded", "asap"):
            raise ValueError("timing must be 'recorded' or 'asap'")
        self.path = source
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
        self._next: Optional[_Pending] = None  # (arrival_ns or None, frame, meta)
        self.done = False
        self._file: Optional[IO[bytes]] = None
        self._it: Iterable[CapturedFrame]
        if isinstance(source, (str, os.PathLike)):
            self._file = open(source, "rb")  # a missing file raises here, at construction
            self._it = iter_capture(self._file, max_block=max_block)
        elif hasattr(source, "read"):
            self._it = iter_capture(cast("IO[bytes]", source), max_block=max_block)  # has read()
        else:
            self._it = iter(source)
        self._gen = self._packets(self._it)
        self._advance()

    def _packets(self, frames: Iterable[CapturedFrame]) -> Generator[_Pending, None, None]:
        """(arrival_ns or None for asap, frame, meta) from captured frames, in order; a damaged
        file ends the stream with `self.error` set."""
        directions, recorded, start = self.directions, self.timing == "recorded", self.start_ns
        first: Optional[int] = None
        last = start  # set again with the first packet
        try:
            for ts_ns, frame, outgoing, meta in frames:
                if directions is not None and outgoing not in directions:
                    self.rx_skipped += 1
                    continue
                if not recorded:
                    yield None, frame, meta
                    continue
                if first is None:
                    first, last = ts_ns, start
                last = max(start + ts_ns - first, last)
                yield last, frame, meta
        except CaptureFormatError as e:
            self.error = e
            self.log.warning("%s: %s", self.name, e)

    def _advance(self) -> None:
        """Load the next deliverable packet into self._next (None when done)."""
        self._next = next(self._gen, None)
        if self._next is None:
            self.done = True

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        p = self._next
        gen = self._gen
        nbytes = 0
        while p is not None and len(out) < limit:
            arrival, frame, meta = p
            if arrival is None:
                if now_ns < self.start_ns:
                    break
                arrival = now_ns
            elif arrival > now_ns:
                break
            out.append(Packet(arrival, frame, meta))
            nbytes += len(frame)
            p = next(gen, None)
        self._next = p
        if p is None:
            self.done = True
        self.rx_frames += len(out)
        self.rx_bytes += nbytes
        if not out and p is None and self.error is not None and self.strict \
                and not self._error_raised:
            self._error_raised = True
            raise self.error
        return out

    def next_deadline(self) -> Optional[int]:
        """Arrival time of the next packet (start_ns or later for asap), or None when done."""
        if self._next is None:
            return None
        return self._next[0] if self._next[0] is not None else self.start_ns

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

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(rx_skipped=self.rx_skipped, done=self.done and self._next is None,
                 format_error=str(self.error) if self.error else None)
        return s

    def close(self) -> None:
        if not self.closed:
            self._gen.close()
            if hasattr(self._it, "close"):
                self._it.close()
            if self._file is not None:
                self._file.close()
        super().close()


PcapngReplay = CaptureReplay  # the older name: it reads classic pcap too


class PcapngRecorder(Backend):
    """A tee around any backend (or a plain sink with `inner=None`) writing both directions.

    Received packets are recorded at their arrival_ns (epb_flags 1), frames the card sends at
    their t_ns (epb_flags 2) if the inner backend accepted them (or always, without one); metadata
    goes into opt_comment as JSON. `record(t_ns, frame, outgoing, meta=None)` records directly
    (the Bridge's tee interface).

    Timestamps: the file gets ``t_ns + ts_offset_ns`` (set `ts_offset_ns` to map emulated time
    onto real-world time: the source capture's first timestamp for a replay, the wall clock for
    a live run).

    Flush policy: blocks collect in memory and are written at the end of every poll() that
    recorded something, whenever `flush_bytes` are pending, when a record() comes
    `flush_interval` seconds (monotonic) after the last write, at flush() and close();
    flush="packet" writes each block at once. Write errors (a full disk: ENOSPC, EIO, ...) are
    counted (record_errors, record_dropped frames), logged once per condition, kept as a one-line
    text in `write_error` (the first one), and never break traffic; the file is cut back to the
    last complete block if it is seekable, and recording resumes by itself when writes succeed
    again (a caller that must not lose frames stops when `write_error` is set).
    """

    name = "pcapng.recorder"

    def __init__(self, path_or_file: Union[str, os.PathLike[str], IO[bytes]],
                 inner: Optional[Backend] = None, *, flush: str = "poll",
                 flush_bytes: int = 256 * 1024, snaplen: int = SNAPLEN,
                 if_name: str = "a2065", name: Optional[str] = None,
                 application: str = "a2065 pcap_backend", comment: Optional[str] = None,
                 ts_offset_ns: int = 0, flush_interval: Optional[float] = None) -> None:
        super().__init__(name)
        if flush not in ("poll", "packet"):
            raise ValueError("flush must be 'poll' or 'packet'")
        self.inner = inner
        self.flush_policy = flush
        self.flush_bytes = flush_bytes
        self.snaplen = snaplen
        if isinstance(path_or_file, (str, os.PathLike)):
            self.f: IO[bytes] = open(path_or_file, "wb", buffering=0)
            self._own = True
        else:
            self.f = path_or_file
            self._own = False
        self.ts_offset_ns = int(ts_offset_ns)
        self.flush_interval_ns = None if flush_interval is None else int(flush_interval * 1e9)
        self._last_write_ns = time.monotonic_ns()
        self.write_error: Optional[str] = None
        self._header = pcapng_header(if_name=if_name, application=application, snaplen=snaplen,
                                   comment=comment)
        self._header_written = False
        self._pending = bytearray()
        self._pending_frames = 0
        try:
            self._good: Optional[int] = self.f.tell()
        except (OSError, AttributeError, io.UnsupportedOperation):
            self._good = None
        self.recorded_frames = 0
        self.recorded_bytes = 0
        self.record_errors = 0
        self.record_dropped = 0
        self.flush()

    # -- recording -----------------------------------------------------------------------------
    def record(self, t_ns: int, frame: BytesLike, outgoing: bool,
               meta: Optional[PacketMeta] = None) -> None:
        if self.closed:
            return
        self._pending += pcapng_packet(t_ns + self.ts_offset_ns, frame, outgoing, meta, self.snaplen)
        self._pending_frames += 1
        if self.flush_policy == "packet" or len(self._pending) >= self.flush_bytes or (
                self.flush_interval_ns is not None
                and time.monotonic_ns() - self._last_write_ns >= self.flush_interval_ns):
            self.flush()

    def flush(self) -> bool:
        """Write pending blocks; False (counted, logged once) if the file refused them."""
        if not self._pending and self._header_written:
            return True
        self._last_write_ns = time.monotonic_ns()
        data = bytes(self._pending) if self._header_written else self._header + bytes(self._pending)
        frames = self._pending_frames
        try:
            view = memoryview(data)
            while view:
                n: Optional[int] = self.f.write(view)  # None: a raw non-blocking file
                if n is None:  # a non-blocking raw file that took nothing
                    raise OSError(_errno.EAGAIN, "write would block")
                view = view[n:]
            if hasattr(self.f, "flush"):
                self.f.flush()
        except (OSError, ValueError) as e:
            self.record_errors += 1
            self.record_dropped += frames
            code = _errno.errorcode.get(getattr(e, "errno", None) or 0, type(e).__name__)
            if self.write_error is None:
                self.write_error = f"{code}: {getattr(e, 'strerror', None) or e}"
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

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
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

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(recorded_frames=self.recorded_frames, recorded_bytes=self.recorded_bytes,
                 record_errors=self.record_errors, record_dropped=self.record_dropped,
                 record_pending=self._pending_frames, write_error=self.write_error)
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
                    if self.write_error is None:
                        self.write_error = f"closing the file: {e.strerror or e}"
                    self.log.warning("%s: closing the file: %s", self.name, e)
            if self.inner is not None:
                self.inner.close()


class PcapngTee(PcapngRecorder):
    """The Bridge's recorder tee: a `PcapngRecorder` without an inner backend, with the SHB
    comment the CLI puts there, `shb_userappl` "a2065", and `frames`/`bytes` counting every frame
    handed to `record()` (frame bytes, not file bytes). Blocks are written whenever `flush_bytes`
    (8 KiB, one stdio buffer) are pending, when a frame comes `flush_interval` (0.5 s) after the
    last write, and at flush()/close(); a context manager."""

    name = "pcapng.tee"

    def __init__(self, path: Union[str, os.PathLike[str]], *, if_name: str = "a2065", comment: Optional[str] = None,
                 flush_bytes: int = 8192, ts_offset_ns: int = 0, flush_interval: float = 0.5) -> None:
        self.path = str(path)
        self.frames = 0
        self.bytes = 0
        super().__init__(self.path, None, flush_bytes=flush_bytes, if_name=if_name,
                         application="a2065", comment=comment, ts_offset_ns=ts_offset_ns,
                         flush_interval=flush_interval)

    def record(self, t_ns: int, frame: BytesLike, outgoing: bool,
               meta: Optional[PacketMeta] = None) -> None:
        if self.closed:
            return
        self.frames += 1
        self.bytes += len(frame)
        super().record(t_ns, frame, outgoing, meta)
