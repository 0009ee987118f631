"""Receive policy: what one host frame becomes before the queue.

    segment      super-packets (> 1514 B, or smaller ones the host marked GSO) are cut into wire
                 frames by native.segment with the best segment size known:
                   the kernel's gso_size (virtio-net header, AUXDATA) always wins; else
                   the MSS the guest advertised for that flow (`MssTable`), minus the TCP options
                   and IP options each segment carries (RFC 879, RFC 6691); else
                   the largest segment that fits a 1514-byte frame.
                 Frames that fit are passed on, a partial checksum completed.
    drop-legacy  frames over 1600 bytes dropped, at most 10 queued (the pcap bridges this project
                 replaces)

Super-packets are cut by `Segmentation`: one C call into a pooled, preallocated native.Segmenter,
the frames handed on as read-only memoryviews into its buffer (no copy, no allocation per
super-packet beyond one view per frame); a pooled Segmenter is reused once no view of its last
output is alive.
"""
from __future__ import annotations

import collections
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .. import headers
from ..base import PacketMeta
from .counters import Counters, LogOnce

if TYPE_CHECKING:
    from lance.buffers import BytesLike

__all__ = ["ReceivePolicy", "MssTable", "Segmentation", "POLICIES", "ETH_MAX", "LEGACY_MAX",
           "LEGACY_QUEUE_FRAMES", "FlowKey", "SegmentFunction"]

#: A TCP flow as its frames carry it: (src ip, dst ip, sport, dport).
FlowKey = tuple[bytes, bytes, int, int]
#: native.segment's signature: ``segment(frame, *, gso_size, mss, csum, csum_start,
#: csum_offset)`` -> the wire frames.
SegmentFunction = Callable[..., Sequence["BytesLike"]]

POLICIES = ("segment", "drop-legacy")
ETH_MAX = 1514            # largest frame without FCS the chip takes (1518 with FCS)
LEGACY_MAX = 1600         # the old bridges' size limit
LEGACY_QUEUE_FRAMES = 10  # the old bridges' queue

# native.CSUM_* (native/SPEC.md)
CSUM_NONE, CSUM_PARTIAL, CSUM_DETECT = 0, 1, 2

try:
    import native
    from native.errors import OutSpaceError, TableSpaceError
except ImportError:  # pragma: no cover - native is part of this package
    native = None  # type: ignore[assignment]

    class OutSpaceError(ValueError):  # type: ignore[no-redef]
        pass

    class TableSpaceError(ValueError):  # type: ignore[no-redef]
        pass


class MssError(ValueError):
    """The learned MSS leaves no room for payload after the segment's TCP and IP options."""


# ---------------------------------------------------------------------------------------------

class MssTable:
    """The MSS each side of a TCP connection advertised, per flow and direction (bounded, LRU).

    RFC 879: an MSS option in a SYN or SYN-ACK says how large a segment its sender will take;
    RFC 6691: that number counts the TCP payload only, so a sender that adds TCP options (the 12
    bytes of timestamps) or IP options cuts that much less payload. Entries are keyed by the flow
    the limit applies to, as its frames carry it: (src ip, dst ip, sport, dport) of the frames
    travelling *towards* the SYN's sender.
    """

    def __init__(self, size: int, counters: Counters) -> None:
        if size < 1:
            raise ValueError("mss_table_size must be >= 1")
        self._t: collections.OrderedDict[FlowKey, int] = collections.OrderedDict()
        self.size = size
        self._c = counters

    def __len__(self) -> int:
        return len(self._t)

    def get(self, key: FlowKey) -> Optional[int]:
        return self._t.get(key)

    def learn(self, frame: BytesLike) -> bool:
        """Learn from a SYN or SYN-ACK carrying an MSS option; False for any other frame."""
        s = syn_mss(frame)
        if s is None:
            return False
        key, mss = s
        t = self._t
        if key in t:
            t.move_to_end(key)
        t[key] = mss
        self._c.mss_learned += 1
        if len(t) > self.size:
            t.popitem(last=False)
        return True

    def payload_limit(self, frame: BytesLike) -> Optional[int]:
        """Largest TCP payload a segment of `frame`'s flow may carry: the learned MSS minus the
        segment's TCP options and IP options (RFC 6691), <= 0 when the options leave no room;
        None when nothing was learned for the flow or the frame is not TCP."""
        h = headers.walk(frame)
        t = headers.tcp(frame, h)
        if t is None or h is None:  # h is never None when t is not (for the type checker)
            return None
        mss = self._t.get((h.src, h.dst, t.sport, t.dport))
        if not mss:
            return None
        self._c.mss_used += 1
        return mss - t.options_len - h.ip_options


def tcp_flow(frame: BytesLike) -> Optional[tuple[bytes, bytes, int, int, int]]:
    """(src_ip, dst_ip, sport, dport, tcp_offset) of an IPv4/IPv6 TCP frame, or None."""
    h = headers.walk(frame)
    t = headers.tcp(frame, h)
    if t is None or h is None:
        return None
    return h.src, h.dst, t.sport, t.dport, h.l4


def syn_mss(frame: BytesLike) -> Optional[tuple[FlowKey, int]]:
    """(flow key, advertised MSS) if `frame` is a TCP SYN (or SYN-ACK) with an MSS option.

    The key is the flow the MSS limits, as its frames carry it: (SYN's dst ip, SYN's src ip,
    SYN's dport, SYN's sport). For a SYN the card sends, that is the flow of the frames it
    receives: (remote ip, guest ip, remote port, guest port).
    """
    h = headers.walk(frame)
    t = headers.tcp(frame, h)
    if t is None or h is None or not t.flags & headers.TCP_SYN:
        return None
    mss = headers.tcp_mss_option(frame, t)
    if mss is None:
        return None
    return (h.dst, h.src, t.dport, t.sport), mss


# ---------------------------------------------------------------------------------------------

class Segmentation:
    """native.segment() of super-packets; the frames as a sequence of bytes-like objects.

    Hot path (the C core built, no caller-supplied function): a pool of native.Segmenter objects,
    each with its own output buffer. A super-packet is cut by the pool's oldest Segmenter if no
    view of its previous output is still alive (its buffer's CPython reference count is back to
    the count it had when idle), else by a new one while the pool is below `pool_size`, else by
    the shared one with its frames copied out once (`take`). Frames are read-only memoryviews into
    the buffer: the queue and the chip (which copies what it keeps) hold them, nothing else.
    """

    # 128 KB: a 64 KB super-packet cut at any segment size >= ~200 bytes fits with its headers
    OUT_CAP = 128 * 1024
    TABLE_CAP = 512

    def __init__(self, segment: Optional[SegmentFunction] = None, pool_size: int = 16) -> None:
        self.segment: SegmentFunction = segment or _segment_function()
        self._pool: collections.deque[list[Any]] = collections.deque()
        self._pool_size = pool_size if segment is None and _has_segmenter() else 0
        # set whenever the pool is (split() reads it only then)
        self._shared: Any = native.Segmenter() if self._pool_size else None
        self.copied = 0  # super-packets cut by the shared Segmenter (pool exhausted or too small)

    def _new(self) -> list[Any]:
        seg = native.Segmenter(self.OUT_CAP, self.TABLE_CAP)
        idle = sys.getrefcount(seg.out)
        return [seg, idle]

    def split(self, frame: BytesLike, gso: int, mss: int, csum: int, cs: int,
              co: int) -> Sequence[BytesLike]:
        if self._pool_size:
            pool = self._pool
            entry = None
            if pool and sys.getrefcount(pool[0][0].out) == pool[0][1]:
                entry = pool.popleft()
            elif len(pool) < self._pool_size:
                entry = self._new()
            if entry is not None:
                pool.append(entry)
                seg = entry[0]
                try:
                    n = seg.run(frame, gso_size=gso, mss=mss, csum=csum, csum_start=cs,
                                csum_offset=co)
                except (OutSpaceError, TableSpaceError):
                    pass  # larger than a pooled buffer: the shared Segmenter grows its own
                else:
                    root = memoryview(seg.out).toreadonly()
                    it = iter(seg.table[:2 * n])
                    return [root[o:o + ln] for o, ln in zip(it, it)]
            shared = self._shared
            try:
                self.copied += 1
                copied: list[memoryview] = shared.take(shared.run(frame, gso_size=gso, mss=mss,
                                                             csum=csum, csum_start=cs,
                                                             csum_offset=co))
                return copied
            except (OutSpaceError, TableSpaceError):
                pass  # more than the preallocated buffers hold: segment() grows its own
        return self.segment(frame, gso_size=gso, mss=mss, csum=csum, csum_start=cs,
                            csum_offset=co)


def _has_segmenter() -> bool:
    """The C core's Segmenter, and reference counts to tell when a pooled one is free
    (CPython)."""
    return (native is not None and getattr(native, "IMPLEMENTATION", "python") == "c"
            and hasattr(native, "Segmenter") and hasattr(sys, "getrefcount"))


def _segment_function() -> SegmentFunction:
    """native.segment (C core when built), else the pure-Python oracle."""
    seg = getattr(native, "segment", None) if native is not None else None
    if seg is not None:
        found: SegmentFunction = seg
        return found
    from native import oracle  # pragma: no cover - native is part of this package
    return oracle.segment


# ---------------------------------------------------------------------------------------------

class ReceivePolicy:
    """One received frame (after the own-frame filter) -> the frames to queue.

    `frames_for` returns a sequence of frames (possibly one, unchanged) or () when the frame is
    refused (counted in `counters` under its reason, logged once).
    """

    def __init__(self, policy: str, counters: Counters, mss: MssTable, *, csum_detect: bool,
                 segment: Optional[SegmentFunction] = None, pool_size: int = 16,
                 once: LogOnce) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy = policy
        self.legacy = policy == "drop-legacy"
        self.csum_detect = csum_detect
        self.mss = mss
        self.seg = Segmentation(segment, pool_size)
        self._c = counters
        self._once = once

    def frames_for(self, frame: BytesLike, meta: Optional[PacketMeta]) -> Sequence[BytesLike]:
        n = len(frame)
        if self.legacy:
            if n > LEGACY_MAX:
                self._c.reject("legacy_oversize")
                self._once("legacy", "drop-legacy: dropping frames over %d bytes, as the old "
                           "bridges did", LEGACY_MAX, level=logging.INFO)
                return ()
            return self._complete_only(frame, meta)
        if n > ETH_MAX:
            return self._cut(frame, meta)
        # a frame that fits the wire
        if meta is not None:
            if meta.gso_type and meta.gso_size:
                # a small super-packet (e.g. two 524-byte segments in a 626-byte frame)
                return self._cut(frame, meta)
            if meta.csum_partial:
                return self._complete_only(frame, meta)
            return (frame,)
        if len(self.mss) and n > 54:
            return self._cut(frame, None, small=True)
        if self.csum_detect:
            return self._complete_only(frame, None)
        return (frame,)

    def _cut(self, frame: BytesLike, meta: Optional[PacketMeta],
             small: bool = False) -> Sequence[BytesLike]:
        """A super-packet (or a frame that may exceed the learned MSS, `small`) into frames."""
        c = self._c
        gso = 0
        csum = CSUM_DETECT if self.csum_detect else CSUM_NONE
        cs = co = 0
        if meta is not None:
            gso = meta.gso_size if meta.gso_type else 0
            if meta.csum_partial:
                csum, cs, co = CSUM_PARTIAL, meta.csum_start, meta.csum_offset
            elif not self.csum_detect or meta.csum_valid:
                csum = CSUM_NONE
        if not small:
            c.super_packets += 1
        try:
            limit = self.mss.payload_limit(frame) if not gso and len(self.mss) else None
            if small:
                if limit is None or not _payload_exceeds(frame, max(0, limit)):
                    return (self._complete_only(frame, None) if self.csum_detect else (frame,))
                c.super_packets += 1
            if limit is not None and limit <= 0:
                raise MssError("the learned MSS leaves no payload after the segment's options")
            frames = self.seg.split(frame, gso, limit or 0, csum, cs, co)
        except ValueError as e:  # native.SegmentError and subclasses, MssError
            c.reject(type(e).__name__)
            self._once("seg:" + type(e).__name__, "cannot segment a %d-byte frame, dropping: %s",
                       len(frame), e)
            return ()
        c.segmented += 1
        c.segments_made += len(frames)
        return frames

    def _complete_only(self, frame: BytesLike,
                       meta: Optional[PacketMeta]) -> Sequence[BytesLike]:
        """Pass a frame through unchanged except for a partial L4 checksum, which is completed
        (segment() with no segment size: a frame that fits is passed through, SPEC step 5/8)."""
        if meta is not None:
            if not meta.csum_partial:
                return (frame,)
            csum, cs, co = CSUM_PARTIAL, meta.csum_start, meta.csum_offset
        elif self.csum_detect and len(frame) >= 34:
            et = (frame[12] << 8) | frame[13]
            if et not in (headers.ETH_P_IP, headers.ETH_P_IPV6) and et not in headers.VLAN_TPIDS:
                return (frame,)
            csum, cs, co = CSUM_DETECT, 0, 0
        else:
            return (frame,)
        if len(frame) > ETH_MAX:  # legacy 1515..1600: handed on as the old bridges did
            return (frame,)
        try:
            out = self.seg.segment(frame, csum=csum, csum_start=cs, csum_offset=co)
        except ValueError:
            return (frame,)  # not ours to judge: the chip/guest sees it as the host gave it
        if len(out) == 1:
            if out[0] != frame:
                self._c.csum_completed += 1
            return out
        return (frame,)


def _payload_exceeds(frame: BytesLike, limit: int) -> bool:
    t = headers.tcp(frame, headers.walk(frame))
    return t is not None and t.payload_len > limit
