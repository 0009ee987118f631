"""Bridge: backend <-> Am7990. Receive policy, bounded queue, delivery mode, MSS learning, tee.

Receive path (data flows down, see docs/architecture.md)::

    backend.poll() -> Packet(arrival_ns, frame, meta)
      -> own-frame filter (source MAC == card MAC, unless the chip is in external loopback)
      -> policy:  segment      native.segment() with the best metadata we have (super-packets:
                               one C call into a preallocated native.Segmenter, each frame copied
                               out once for the queue, as a view into one bytes copy):
                                 meta.gso_size / checksum state (virtio-net header, AUXDATA),
                                 else the MSS the guest advertised in a SYN it transmitted,
                                 else the largest segment that fits a 1514-byte frame
                  drop-legacy  frames over 1600 bytes dropped, at most 10 frames queued
                               (the pcap bridges this project replaces)
      -> bounded queue (frame limit + byte budget, tail drop)
      -> chip.receive(frame)   lossless: only when chip.rx_ready(len) (nothing is ever MISSed)
                               hardware: at once; no owned descriptor -> MISS, as the chip does
                               wire timing: never before chip.rx_idle_at() (10 Mb/s)

Transmit path: the chip's ``transmit(frame_with_fcs, t_ns)`` callback is ``Bridge.transmit``:
the FCS is stripped and the frame handed to ``backend.send(frame, t_ns)`` at the emulated
completion time the chip gives; False (link down, full) is counted and returned to the chip,
which reports TMD3.LCAR as hardware would.

Accounting invariant (checked by the tests)::

    frames_in = delivered + queued + sum(dropped.values())

where ``frames_in`` counts every received frame once, except a successfully segmented
super-packet, which counts as the number of segments it was turned into.

Logger ``a2065.bridge``; every condition is logged once (first occurrence), never per frame.
"""
from __future__ import annotations

import collections
import logging
import struct
from typing import Optional

from .backends.pcapng_io import PcapngTee  # noqa: F401  (the recorder tee; kept importable here)

__all__ = ["Bridge", "PcapngTee", "POLICIES", "DELIVERIES", "TIMINGS", "ETH_MAX", "LEGACY_MAX",
           "LEGACY_QUEUE_FRAMES"]

log = logging.getLogger("a2065.bridge")

POLICIES = ("segment", "drop-legacy")
DELIVERIES = ("lossless", "hardware")
TIMINGS = ("fast", "wire")

ETH_MAX = 1514            # largest frame without FCS the chip takes (1518 with FCS)
ETH_MIN = 60              # shortest frame without FCS on the wire; shorter ones are padded
LEGACY_MAX = 1600         # the old bridges' size limit
LEGACY_QUEUE_FRAMES = 10  # the old bridges' queue
FCS_LEN = 4
# What one polled packet may add to the queue (backpressure): a 64 KB super-packet grows by one
# set of headers per segment (45 x 66 B at MSS 1448) and splits into up to ~125 frames at the
# smallest gso_size seen from real senders (524, host-side reference).
SUPER_PACKET_ROOM = 80 * 1024
SUPER_PACKET_FRAMES = 128

# native.CSUM_* (native/SPEC.md)
CSUM_NONE, CSUM_PARTIAL, CSUM_DETECT = 0, 1, 2

# MODE register bits (lance/csr.py MODE.LOOP / MODE.INTL)
_MODE_LOOP = 0x0004
_MODE_INTL = 0x0040

_PAD = bytes(ETH_MIN)

try:
    from native.errors import OutSpaceError, TableSpaceError
except ImportError:  # pragma: no cover - native is part of this package
    class OutSpaceError(ValueError):
        pass

    class TableSpaceError(ValueError):
        pass
_U16 = struct.Struct("!H")
_TCP_SYN = 0x02


def _make_segmenter():
    """A native.Segmenter when the C core is built (the zero-copy hot path), else None."""
    try:
        import native
    except ImportError:  # pragma: no cover - native is part of this package
        return None
    if getattr(native, "IMPLEMENTATION", "python") != "c" or not hasattr(native, "Segmenter"):
        return None
    seg = native.Segmenter()
    if not hasattr(seg, "take"):  # pragma: no cover - an older native core
        return None
    return seg


def _segment_function():
    """native.segment (C core when built), else the pure-Python oracle."""
    try:
        import native
        seg = getattr(native, "segment", None)
        if seg is not None:
            return seg
    except ImportError:  # pragma: no cover - native is part of this package
        pass
    from native import oracle
    return oracle.segment


# ---------------------------------------------------------------------------------------------
# TCP flow parsing (MSS learning). Only used on frames the card transmits (SYNs) and on received
# frames that carry no gso_size, so it stays off the super-packet hot path when metadata exists.

def _l3(frame: bytes):
    """(ethertype, l3 offset) after up to two VLAN tags, or (None, 0)."""
    n = len(frame)
    if n < 14:
        return None, 0
    off = 12
    et = (frame[12] << 8) | frame[13]
    tags = 0
    while et in (0x8100, 0x88A8) and tags < 2:
        off += 4
        if n < off + 2:
            return None, 0
        et = (frame[off] << 8) | frame[off + 1]
        tags += 1
    return et, off + 2


def tcp_flow(frame: bytes):
    """(src_ip, dst_ip, sport, dport, tcp_offset) of an IPv4/IPv6 TCP frame, or None."""
    et, l3 = _l3(frame)
    n = len(frame)
    if et == 0x0800:
        if n < l3 + 20 or frame[l3] >> 4 != 4:
            return None
        ihl = (frame[l3] & 0x0F) * 4
        if frame[l3 + 9] != 6 or ihl < 20 or (frame[l3 + 6] & 0x1F) or frame[l3 + 7]:
            return None  # not TCP, or a fragment
        src, dst = frame[l3 + 12:l3 + 16], frame[l3 + 16:l3 + 20]
        l4 = l3 + ihl
    elif et == 0x86DD:
        if n < l3 + 40 or frame[l3] >> 4 != 6:
            return None
        nh = frame[l3 + 6]
        src, dst = frame[l3 + 8:l3 + 24], frame[l3 + 24:l3 + 40]
        l4 = l3 + 40
        for _ in range(8):  # bounded walk over hop-by-hop / routing / destination options
            if nh not in (0, 43, 60):
                break
            if n < l4 + 2:
                return None
            nh, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
        if nh != 6:
            return None
    else:
        return None
    if n < l4 + 20:
        return None
    return src, dst, (frame[l4] << 8) | frame[l4 + 1], (frame[l4 + 2] << 8) | frame[l4 + 3], l4


def syn_mss(frame: bytes):
    """(rx flow key, advertised MSS) if `frame` is a TCP SYN (or SYN-ACK) with an MSS option.

    The key is the flow as the *received* frames of that connection carry it:
    (remote ip, guest ip, remote port, guest port).
    """
    f = tcp_flow(frame)
    if f is None:
        return None
    src, dst, sport, dport, l4 = f
    if not frame[l4 + 13] & _TCP_SYN:
        return None
    end = min(l4 + (frame[l4 + 12] >> 4) * 4, len(frame))
    i = l4 + 20
    while i < end:  # bounded by the TCP header length
        kind = frame[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            break
        olen = frame[i + 1]
        if olen < 2:
            break
        if kind == 2 and olen == 4 and i + 4 <= end:
            mss = (frame[i + 2] << 8) | frame[i + 3]
            return (dst, src, dport, sport), mss
        i += olen
    return None


# ---------------------------------------------------------------------------------------------

def _check_chip(chip) -> None:
    """A TypeError that says what to pass when ``chip`` is not the card's chip (issue 16)."""
    if hasattr(chip, "lance") and not hasattr(chip, "receive"):
        raise TypeError(f"Bridge(backend, chip) takes the card's LANCE chip, not the "
                        f"{type(chip).__name__} board: pass Bridge(backend, card.lance)")
    missing = [n for n in ("receive", "rx_ready", "rx_idle_at") if not callable(getattr(chip, n, None))]
    if missing:
        raise TypeError(f"Bridge(backend, chip): {type(chip).__name__} has no {', '.join(missing)}; "
                        "pass the card's chip (card.lance, a lance.Am7990)")


class Bridge:
    """Joins a `Backend` to an `Am7990` (see the module docstring).

    backend:      pcap_backend Backend (poll/send, optional next_deadline())
    chip:         lance.Am7990 or anything with receive/rx_ready/rx_idle_at/now
    policy:       "segment" (default) or "drop-legacy"
    delivery:     "lossless" (default) or "hardware"
    timing:       "fast" or "wire"; default: the chip's own timing attribute, else "fast"
    queue_frames, queue_bytes: the receive queue's bounds (drop-legacy caps frames at 10)
    mac:          the card's MAC (6 bytes) for the own-frame filter; default: the chip's PADR
                  when it exposes one, else the source MAC of the first frame the card sends
    recorder:     optional tee, ``record(t_ns, frame, outgoing)`` (e.g. `PcapngTee`, any
                  `PcapngRecorder`, or any object with record/close): frames delivered to the card
                  (after segmentation) and frames the card sent
    backpressure: poll the backend only while the queue has room for a super-packet
                  (default on for segment, off for drop-legacy, which tail-drops like the old
                  bridges); a replay backend then loses nothing, a live one buffers in the kernel
    attach:       install `self.transmit` as the chip's transmit callback
    """

    def __init__(self, backend, chip, *, policy: str = "segment", delivery: str = "lossless",
                 timing: Optional[str] = None, queue_frames: int = 1024,
                 queue_bytes: int = 2 * 1024 * 1024, mac: Optional[bytes] = None, recorder=None,
                 backpressure: Optional[bool] = None, mss_table_size: int = 256,
                 poll_limit: int = 64, csum_detect: bool = True, attach: bool = True,
                 segment=None):
        _check_chip(chip)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERIES)}, not {delivery!r}")
        if timing is None:
            timing = getattr(chip, "timing", "fast")
            timing = timing if timing in TIMINGS else "fast"
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
        if queue_frames < 1 or queue_bytes < ETH_MAX:
            raise ValueError("queue_frames must be >= 1 and queue_bytes >= 1514")
        if mss_table_size < 1:
            raise ValueError("mss_table_size must be >= 1")
        self.backend = backend
        self.chip = chip
        self.policy = policy
        self.delivery = delivery
        self.timing = timing
        self.legacy = policy == "drop-legacy"
        if self.legacy:
            queue_frames = min(queue_frames, LEGACY_QUEUE_FRAMES)
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        self.backpressure = (not self.legacy) if backpressure is None else bool(backpressure)
        self.poll_limit = max(1, poll_limit)
        self.csum_detect = csum_detect
        self.recorder = recorder
        self._segment = segment or _segment_function()
        # Super-packet hot path: one C call into a preallocated Segmenter, then each frame copied
        # out once (one bytes copy of the output, a memoryview per frame into it) for the queue.
        # A caller-supplied `segment` function replaces it.
        self._segmenter = _make_segmenter() if segment is None else None
        self._mac = bytes(mac) if mac is not None else None
        self._mss: "collections.OrderedDict" = collections.OrderedDict()
        self._mss_cap = mss_table_size
        self._q: "collections.deque[bytes]" = collections.deque()
        self._qb = 0
        self.now = 0
        self._logged: set = set()
        self._wire = timing == "wire"
        self._lossless = delivery == "lossless"
        self._status_names: dict = {}
        # counters
        self.received = 0
        self.received_bytes = 0
        self.super_packets = 0
        self.segmented = 0
        self.segments_made = 0
        self.csum_completed = 0
        self.frames_in = 0
        self.delivered = 0
        self.delivered_bytes = 0
        self.dropped: dict = {}
        self.queue_high_frames = 0
        self.queue_high_bytes = 0
        self.padded = 0
        self.busy_retries = 0
        self.transmitted = 0
        self.transmitted_bytes = 0
        self.tx_failed = 0
        self.mss_learned = 0
        self.mss_used = 0
        if attach:
            self.attach()

    # -- wiring ------------------------------------------------------------------------------
    def attach(self) -> None:
        """Make `self.transmit` the chip's transmit callback (where the chip lets us)."""
        chip = self.chip
        for name in ("transmit", "_transmit", "on_transmit"):
            if hasattr(chip, name) and not callable(getattr(type(chip), name, None)):
                setattr(chip, name, self.transmit)
                return
        setter = getattr(chip, "set_transmit", None)
        if callable(setter):
            setter(self.transmit)

    def close(self) -> None:
        """Drop what is queued (counted as "closed") and close the recorder; the backend is the
        caller's to close."""
        if self._q:
            self._drop("closed", len(self._q))
            self._q.clear()
            self._qb = 0
        if self.recorder is not None and hasattr(self.recorder, "close"):
            self.recorder.close()

    # -- helpers -----------------------------------------------------------------------------
    def _once(self, key: str, msg: str, *args, level=logging.WARNING) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg + " (logged once)", *args)

    def _drop(self, reason: str, n: int = 1) -> None:
        d = self.dropped
        d[reason] = d.get(reason, 0) + n

    def _card_mac(self):
        if self._mac is not None:
            return self._mac
        chip = self.chip
        for name in ("padr", "mac"):
            v = getattr(chip, name, None)
            if isinstance(v, (bytes, bytearray)) and len(v) == 6 and any(v):
                return bytes(v)
        return None

    def _external_loopback(self) -> bool:
        chip = self.chip
        v = getattr(chip, "external_loopback", None)
        if v is not None:
            return bool(v() if callable(v) else v)
        mode = getattr(chip, "mode", None)
        if isinstance(mode, int):
            return bool(mode & _MODE_LOOP) and not mode & _MODE_INTL
        return False

    def learned_mss(self, key) -> Optional[int]:
        return self._mss.get(key)

    # -- transmit ----------------------------------------------------------------------------
    def transmit(self, frame_with_fcs: bytes, t_ns: int) -> bool:
        """The chip's transmit callback: strip the FCS, learn MSS from SYNs, send, tee."""
        frame = bytes(frame_with_fcs[:-FCS_LEN]) if len(frame_with_fcs) > FCS_LEN else b""
        if self._mac is None and len(frame) >= 12 and self._card_mac() is None:
            self._mac = frame[6:12]
        if len(frame) >= 54 and frame[12:14] != b"\x08\x06":
            s = syn_mss(frame)
            if s is not None:
                key, mss = s
                table = self._mss
                if key in table:
                    table.move_to_end(key)
                table[key] = mss
                self.mss_learned += 1
                if len(table) > self._mss_cap:
                    table.popitem(last=False)
        if self.recorder is not None:
            self.recorder.record(t_ns, frame, True)
        try:
            ok = bool(self.backend.send(frame, t_ns))
        except OSError as e:  # a backend should return False; be safe, the chip sees LCAR
            self._once("tx-oserror", "backend %s raised on send: %s", getattr(self.backend, "name", "?"), e)
            ok = False
        if ok:
            self.transmitted += 1
            self.transmitted_bytes += len(frame)
        else:
            self.tx_failed += 1
            self._once("tx-refused", "backend %s refused a transmitted frame (link down or full); "
                       "the chip reports LCAR", getattr(self.backend, "name", "?"))
        return ok

    # -- receive -----------------------------------------------------------------------------
    def ingest(self, frame: bytes, meta=None) -> int:
        """Run one received frame through the filter and the policy into the queue.

        Returns the number of frames queued. Public so benches and tests can feed frames
        without a backend; `service()` calls it for each polled packet.
        """
        n = len(frame)
        self.received += 1
        self.received_bytes += n
        mac = self._mac if self._mac is not None else self._card_mac()
        if mac is not None and frame[6:12] == mac and not self._external_loopback():
            self.frames_in += 1
            self._drop("own_frame")
            self._once("own", "dropping frames whose source is the card's own MAC (the backend "
                       "reflects our transmissions)", level=logging.INFO)
            return 0
        if self.legacy:
            if n > LEGACY_MAX:
                self.frames_in += 1
                self._drop("legacy_oversize")
                self._once("legacy", "drop-legacy: dropping frames over %d bytes, as the old "
                           "bridges did", LEGACY_MAX, level=logging.INFO)
                return 0
            frames = self._complete_only(frame, meta)
            return self._enqueue(frames)
        if n > ETH_MAX:
            self.super_packets += 1
            gso = 0
            mss = 0
            csum = CSUM_DETECT if self.csum_detect else CSUM_NONE
            cs = co = 0
            if meta is not None:
                gso = meta.gso_size if meta.gso_type else 0
                if meta.csum_partial:
                    csum, cs, co = CSUM_PARTIAL, meta.csum_start, meta.csum_offset
                elif not self.csum_detect or meta.csum_valid:
                    csum = CSUM_NONE
            if not gso and self._mss:
                mss = self._flow_mss(frame)
            try:
                frames = self._split(frame, gso, mss, csum, cs, co)
            except ValueError as e:  # native.SegmentError and subclasses
                self.frames_in += 1
                reason = type(e).__name__
                self._drop(reason)
                self._once("seg:" + reason, "cannot segment a %d-byte frame, dropping: %s", n, e)
                return 0
            self.segmented += 1
            self.segments_made += len(frames)
            return self._enqueue(frames)
        # a frame that fits the wire
        if meta is not None:
            if meta.gso_type and meta.gso_size:
                # a small super-packet (e.g. two 524-byte segments in a 626-byte frame)
                return self._small_super(frame, meta)
            if meta.csum_partial:
                return self._enqueue(self._complete_only(frame, meta))
            return self._enqueue((frame,))
        if self._mss:
            mss = self._flow_mss(frame)
            if mss and n > 54 + mss:
                return self._small_super(frame, None, mss)
        if self.csum_detect:
            return self._enqueue(self._complete_only(frame, None))
        return self._enqueue((frame,))

    def _small_super(self, frame, meta, mss: int = 0) -> int:
        self.super_packets += 1
        gso = meta.gso_size if meta is not None else 0
        csum, cs, co = CSUM_DETECT if self.csum_detect else CSUM_NONE, 0, 0
        if meta is not None and meta.csum_partial:
            csum, cs, co = CSUM_PARTIAL, meta.csum_start, meta.csum_offset
        try:
            frames = self._split(frame, gso, mss, csum, cs, co)
        except ValueError as e:
            self.frames_in += 1
            self._drop(type(e).__name__)
            self._once("seg:" + type(e).__name__, "cannot segment a %d-byte frame, dropping: %s",
                       len(frame), e)
            return 0
        self.segmented += 1
        self.segments_made += len(frames)
        return self._enqueue(frames)

    def _split(self, frame, gso, mss, csum, cs, co):
        """segment() of a super-packet: the frames as a sequence of bytes-like objects."""
        seg = self._segmenter
        if seg is not None:
            try:
                return seg.take(seg.run(frame, gso_size=gso, mss=mss, csum=csum, csum_start=cs,
                                        csum_offset=co))
            except (OutSpaceError, TableSpaceError):
                pass  # more than the preallocated buffers hold: segment() grows its own
        return self._segment(frame, gso_size=gso, mss=mss, csum=csum, csum_start=cs,
                             csum_offset=co)

    def _complete_only(self, frame, meta):
        """Pass a frame through unchanged except for a partial L4 checksum, which is completed
        (segment() with no segment size: a frame that fits is passed through, SPEC step 5/8)."""
        if meta is not None:
            if not meta.csum_partial:
                return (frame,)
            csum, cs, co = CSUM_PARTIAL, meta.csum_start, meta.csum_offset
        elif self.csum_detect and len(frame) >= 34:
            et = (frame[12] << 8) | frame[13]
            if et not in (0x0800, 0x86DD, 0x8100, 0x88A8):
                return (frame,)
            csum, cs, co = CSUM_DETECT, 0, 0
        else:
            return (frame,)
        if len(frame) > ETH_MAX:  # legacy 1515..1600: handed on as the old bridges did
            return (frame,)
        try:
            out = self._segment(frame, csum=csum, csum_start=cs, csum_offset=co)
        except ValueError:
            return (frame,)  # not ours to judge: the chip/guest sees it as the host gave it
        if len(out) == 1:
            if out[0] != frame:
                self.csum_completed += 1
            return out
        return (frame,)

    def _flow_mss(self, frame) -> int:
        f = tcp_flow(frame)
        if f is None:
            return 0
        mss = self._mss.get(f[:4])
        if mss:
            self.mss_used += 1
            return mss
        return 0

    def _enqueue(self, frames) -> int:
        q = self._q
        qf, qb = self.queue_frames, self.queue_bytes
        k = len(frames)
        self.frames_in += k
        taken = 0
        if k == 1:
            f = frames[0]
            if len(f) < ETH_MIN:
                f = bytes(f) + _PAD[len(f):]
                self.padded += 1
            if len(q) < qf and self._qb + len(f) <= qb:
                q.append(f)
                self._qb += len(f)
                taken = 1
        else:
            room = qf - len(q)
            if room >= k:
                total = sum(map(len, frames))
                if self._qb + total <= qb:
                    q.extend(frames)
                    self._qb += total
                    taken = k
            if taken == 0:
                for f in frames:
                    if len(q) < qf and self._qb + len(f) <= qb:
                        q.append(f)
                        self._qb += len(f)
                        taken += 1
                    else:
                        break
        if taken < k:
            self._drop("queue_full", k - taken)
            self._once("queue", "receive queue full (%d frames / %d bytes): tail drop",
                       self.queue_frames, self.queue_bytes)
        if len(q) > self.queue_high_frames:
            self.queue_high_frames = len(q)
        if self._qb > self.queue_high_bytes:
            self.queue_high_bytes = self._qb
        return taken

    def _room(self) -> int:
        """How many packets one poll may fetch without overrunning the queue (backpressure)."""
        free_frames = self.queue_frames - len(self._q)
        free_bytes = self.queue_bytes - self._qb
        n = min(free_frames // SUPER_PACKET_FRAMES, free_bytes // SUPER_PACKET_ROOM)
        if n <= 0:
            return 0 if self._q else 1  # an empty queue always takes one (tail drop beyond)
        return min(self.poll_limit, n)

    def service(self, now_ns: int) -> int:
        """Pull what the backend has by `now_ns`, run it through the policy, and deliver what the
        chip can take now. The chip must already be advanced to `now_ns`. Returns frames
        delivered."""
        self.now = now_ns
        backend = self.backend
        delivered = self._deliver()
        for _ in range(64):  # bounded per call; the runner calls again at once if more waits
            limit = self._room() if self.backpressure else self.poll_limit
            if limit <= 0:
                break
            pkts = backend.poll(now_ns, limit)
            if not pkts:
                break
            ingest = self.ingest
            for p in pkts:
                ingest(p[1], p[2] if len(p) > 2 else None)
            delivered += self._deliver()
            if len(pkts) < limit:
                break
        return delivered

    def _status_name(self, st) -> str:
        name = self._status_names.get(st)
        if name is None:
            name = getattr(st, "name", None) or str(st).rsplit(".", 1)[-1]
            self._status_names[st] = name
        return name

    _REASONS = {"FILTERED": "filtered", "MISSED": "missed", "RX_OFF": "rx_off",
                "TOO_LONG": "too_long", "RUNT": "runt"}

    def _deliver(self) -> int:
        """Offer queued frames to the chip while it can take them (hot path: locals only)."""
        q = self._q
        if not q:
            return 0
        chip = self.chip
        receive = chip.receive
        ready = chip.rx_ready if self._lossless else None
        idle_at = chip.rx_idle_at if self._wire else None
        names = self._status_names
        rec = self.recorder
        now = self.now
        n = 0
        nbytes = 0
        while q:
            if idle_at is not None and idle_at() > now:
                break
            f = q[0]
            if ready is not None and not ready(len(f)):
                break
            st = receive(f)
            name = names.get(st)
            if name is None:
                name = self._status_name(st)
            if name == "ACCEPTED":
                q.popleft()
                n += 1
                nbytes += len(f)
                if rec is not None:
                    rec.record(getattr(chip, "now", now), f, False)
                continue
            if name == "BUSY":
                self.busy_retries += 1
                break
            q.popleft()
            self._qb -= len(f)
            reason = self._REASONS.get(name, name.lower())
            self._drop(reason)
            if reason == "missed":
                self._once("miss", "hardware delivery: frames MISSed (no receive descriptor "
                           "owned by the chip)", level=logging.INFO)
            elif reason != "filtered":
                self._once("chip:" + reason, "chip refused a frame: %s", name)
        if n:
            self.delivered += n
            self.delivered_bytes += nbytes
            self._qb -= nbytes
        return n

    def next_deadline(self) -> Optional[int]:
        """Absolute emulated time at which `service()` has work, or None.

        A lossless queue waiting for the driver to return a descriptor has no deadline: the
        runner calls `service()` after the driver runs.
        """
        t = None
        if self._q:
            chip = self.chip
            if self._wire:
                idle = chip.rx_idle_at()
                if idle > self.now:
                    t = idle
            if t is None and (not self._lossless or chip.rx_ready(len(self._q[0]))):
                t = self.now
        nd = getattr(self.backend, "next_deadline", None)
        if nd is not None and (not self.backpressure or self._room() > 0):
            b = nd()
            if b is not None and (t is None or b < t):
                t = b
        return t

    @property
    def queued(self) -> int:
        return len(self._q)

    @property
    def queued_bytes(self) -> int:
        return self._qb

    def stats(self) -> dict:
        """Every counter, plain data (JSON-ready)."""
        d = self.dropped
        return {
            "policy": self.policy,
            "delivery": self.delivery,
            "timing": self.timing,
            "received": self.received,
            "received_bytes": self.received_bytes,
            "super_packets": self.super_packets,
            "segmented": self.segmented,
            "segments_made": self.segments_made,
            "csum_completed": self.csum_completed,
            "frames_in": self.frames_in,
            "delivered": self.delivered,
            "delivered_bytes": self.delivered_bytes,
            "queued": len(self._q),
            "queued_bytes": self._qb,
            "queue_limit_frames": self.queue_frames,
            "queue_limit_bytes": self.queue_bytes,
            "queue_high_frames": self.queue_high_frames,
            "queue_high_bytes": self.queue_high_bytes,
            "dropped": dict(d),
            "dropped_total": sum(d.values()),
            "queue_drops": d.get("queue_full", 0),
            "filtered": d.get("filtered", 0),
            "missed": d.get("missed", 0),
            "own_frames_dropped": d.get("own_frame", 0),
            "segment_failures": {k: v for k, v in d.items() if k.endswith("Error")},
            "padded": self.padded,
            "busy_retries": self.busy_retries,
            "transmitted": self.transmitted,
            "transmitted_bytes": self.transmitted_bytes,
            "tx_failed": self.tx_failed,
            "mss_learned": self.mss_learned,
            "mss_flows": len(self._mss),
            "mss_used": self.mss_used,
        }
