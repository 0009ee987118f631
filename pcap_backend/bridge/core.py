"""Bridge: a `Backend` joined to the chip (a `ChipPort`, e.g. ``card.lance``).

Receive path (data flows down, see docs/architecture.md); each step is one module::

    backend.poll() -> Packet(arrival_ns, frame, meta)
      -> own_frames.OwnFrames   source MAC == card MAC dropped (unless external loopback)
      -> policy.ReceivePolicy   segment | drop-legacy; MSS learning (policy.MssTable);
                                super-packets cut by policy.Segmentation (native.Segmenter pool)
      -> queue.FrameQueue       frame limit + byte budget, tail drop; backpressure on the poll
      -> delivery.Delivery      lossless | hardware, wire timing -> chip.receive(frame)
      (counters.Counters: every part counts into one object; the recorder tee sees what is
      delivered and what is sent)

Transmit path: the chip's ``transmit(frame_with_fcs, t_ns)`` callback is ``Bridge.transmit``: a
frame whose FCS the guest supplied (MODE.DTCR) and got wrong is dropped as a host NIC drops it
(``tx_bad_fcs``); otherwise the FCS is stripped, an MSS option in a SYN/SYN-ACK learned, and the
frame handed to ``backend.send(frame, t_ns)`` at the emulated completion time the chip gives;
False (link down, full) is counted and returned to the chip, which reports TMD3.LCAR.

Accounting invariant (checked by the tests)::

    frames_in = delivered + queued + sum(dropped.values())

Logger ``a2065.bridge``; every condition is logged once (first occurrence), never per frame.
"""
from __future__ import annotations

import logging
import zlib
from typing import TYPE_CHECKING, Any, Optional

from ..base import Backend, ChipPort, FrameRecorder, PacketMeta, chip_port_missing
from .counters import COUNTER_NAMES, Counters
from .delivery import DELIVERIES, Delivery
from .own_frames import OwnFrames
from .policy import (ETH_MAX, LEGACY_QUEUE_FRAMES, POLICIES, FlowKey, MssTable, ReceivePolicy,
                     SegmentFunction)
from .queue import FrameQueue

if TYPE_CHECKING:
    from lance.buffers import BytesLike

__all__ = ["Bridge", "TIMINGS"]

log = logging.getLogger("a2065.bridge")

TIMINGS = ("fast", "wire")
FCS_LEN = 4
MODE_DTCR = 0x0008        # MODE.DTCR: the guest supplies the FCS (lance/csr.py; Am7990 CSR15)
CRC_RESIDUE = 0x2144DF1C  # CRC-32 over a frame and its correct FCS (IEEE 802.3)


class Bridge:
    """Joins a `Backend` to a chip (see the module docstring).

    backend:      pcap_backend Backend (poll/send, optional next_deadline())
    chip:         a `pcap_backend.base.ChipPort`: ``card.lance`` (lance.Am7990), not the board
    policy:       "segment" (default) or "drop-legacy"
    delivery:     "lossless" (default) or "hardware"
    timing:       "fast" or "wire"; default: the chip's own timing
    queue_frames, queue_bytes: the receive queue's bounds (drop-legacy caps frames at 10)
    mac:          the card's MAC (6 bytes) for the own-frame filter; default: the chip's PADR
                  once INIT loaded one, else the source MAC of the first frame the card sends
    recorder:     optional tee, ``record(t_ns, frame, outgoing)`` (e.g. `PcapngTee`, any
                  `PcapngRecorder`, or any object with record/close): frames delivered to the card
                  (after segmentation) and frames the card sent
    backpressure: poll the backend only while the queue has room for a super-packet
                  (default on for segment, off for drop-legacy, which tail-drops like the old
                  bridges); a replay backend then loses nothing, a live one buffers in the kernel
    attach:       install `self.transmit` as the chip's transmit callback
    segment:      a segment() function replacing native's (tests); disables the Segmenter pool

    Counters (`COUNTER_NAMES`, ``dropped``) are read-only attributes and keys of `stats()`.
    """

    def __init__(self, backend: Backend, chip: ChipPort, *, policy: str = "segment",
                 delivery: str = "lossless", timing: Optional[str] = None,
                 queue_frames: int = 1024, queue_bytes: int = 2 * 1024 * 1024,
                 mac: Optional[BytesLike] = None, recorder: Optional[FrameRecorder] = None,
                 backpressure: Optional[bool] = None, mss_table_size: int = 256,
                 poll_limit: int = 64, csum_detect: bool = True, attach: bool = True,
                 segment: Optional[SegmentFunction] = None) -> None:
        self.chip = chip  # a ChipPort, else TypeError (naming card.lance for a board)
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if delivery not in DELIVERIES:
            raise ValueError(f"delivery must be one of {', '.join(DELIVERIES)}, not {delivery!r}")
        if timing is None:
            timing = chip.timing if chip.timing in TIMINGS else "fast"
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
        if queue_frames < 1 or queue_bytes < ETH_MAX:
            raise ValueError("queue_frames must be >= 1 and queue_bytes >= 1514")
        self.backend = backend
        self.policy = policy
        self.delivery = delivery
        self.timing = timing
        self.legacy = policy == "drop-legacy"
        if self.legacy:
            queue_frames = min(queue_frames, LEGACY_QUEUE_FRAMES)
        self.backpressure = (not self.legacy) if backpressure is None else bool(backpressure)
        self.poll_limit = max(1, poll_limit)
        self.now = 0
        self._logged: set[str] = set()
        self.counters = c = Counters()
        self.mss = MssTable(mss_table_size, c)
        self.own = OwnFrames(chip, mac)
        # pool: enough Segmenter buffers for the super-packets the byte budget can hold
        self.rx_policy = ReceivePolicy(policy, c, self.mss, csum_detect=csum_detect,
                                       segment=segment, once=self._once,
                                       pool_size=min(64, 2 + queue_bytes // 65536))
        self.queue = FrameQueue(queue_frames, queue_bytes, c)
        self.deliverer = Delivery(chip, self.queue, c, lossless=delivery == "lossless",
                                  wire=timing == "wire", once=self._once)
        self.recorder = recorder
        if attach:
            self.attach()

    # -- wiring ------------------------------------------------------------------------------
    @property
    def chip(self) -> ChipPort:
        """The ChipPort the bridge feeds. Assigning another (a card restored from a snapshot)
        rewires every part; the caller installs the transmit callback on it (or calls attach)."""
        return self._chip

    @chip.setter
    def chip(self, chip: object) -> None:
        if not isinstance(chip, ChipPort):
            if hasattr(chip, "lance"):
                raise TypeError(f"Bridge needs the chip, not the board: pass "
                                f"Bridge(backend, card.lance) (got {type(chip).__name__})")
            missing = chip_port_missing(chip)
            raise TypeError(f"Bridge needs a ChipPort: a {type(chip).__name__} has no "
                            f"{', '.join(missing) or 'compatible members'}; pass the card's chip, "
                            f"Bridge(backend, card.lance)")
        self._chip = chip
        if hasattr(self, "deliverer"):
            self.deliverer.chip = chip
            self.own.chip = chip

    @property
    def recorder(self) -> Optional[FrameRecorder]:
        return self._recorder

    @recorder.setter
    def recorder(self, rec: Optional[FrameRecorder]) -> None:
        self._recorder = rec
        self.deliverer.recorder = rec

    @property
    def queue_frames(self) -> int:
        return self.queue.limit_frames

    @property
    def queue_bytes(self) -> int:
        return self.queue.limit_bytes

    def attach(self) -> None:
        """Make `self.transmit` the chip's transmit callback."""
        self.chip.transmit = self.transmit

    def close(self) -> None:
        """Drop what is queued (counted as "closed") and close the recorder; the backend is the
        caller's to close."""
        n = self.queue.clear()
        if n:
            self.counters.drop("closed", n)
        if self.recorder is not None and hasattr(self.recorder, "close"):
            self.recorder.close()

    # -- helpers -----------------------------------------------------------------------------
    def _once(self, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, msg + " (logged once)", *args)

    def learned_mss(self, key: FlowKey) -> Optional[int]:
        """The MSS learned for a flow key (src ip, dst ip, sport, dport of the limited frames)."""
        return self.mss.get(key)

    # -- transmit ----------------------------------------------------------------------------
    def transmit(self, frame_with_fcs: BytesLike, t_ns: int) -> bool:
        """The chip's transmit callback: check a guest-supplied FCS, strip it, learn an MSS from
        a SYN, send, tee."""
        c = self.counters
        if self.chip.mode & MODE_DTCR and zlib.crc32(frame_with_fcs) != CRC_RESIDUE:
            # The guest appended the FCS itself (DTCR) and it is wrong: the host's NIC would
            # drop the frame on receipt. It did leave the card, so the chip sees success.
            c.tx_bad_fcs += 1
            self._once("tx-bad-fcs", "dropping frames the guest sent with DTCR and a wrong FCS "
                       "(a host NIC drops them)", level=logging.INFO)
            return True
        frame = bytes(frame_with_fcs[:-FCS_LEN]) if len(frame_with_fcs) > FCS_LEN else b""
        self.own.learn_from_transmit(frame)
        if len(frame) >= 54 and frame[12:14] != b"\x08\x06":
            self.mss.learn(frame)
        if self.recorder is not None:
            self.recorder.record(t_ns, frame, True)
        try:
            ok = bool(self.backend.send(frame, t_ns))
        except OSError as e:  # a backend should return False; be safe, the chip sees LCAR
            self._once("tx-oserror", "backend %s raised on send: %s", getattr(self.backend, "name", "?"), e)
            ok = False
        if ok:
            c.transmitted += 1
            c.transmitted_bytes += len(frame)
        else:
            c.tx_failed += 1
            self._once("tx-refused", "backend %s refused a transmitted frame (link down or full); "
                       "the chip reports LCAR", getattr(self.backend, "name", "?"))
        return ok

    # -- receive -----------------------------------------------------------------------------
    def ingest(self, frame: BytesLike, meta: Optional[PacketMeta] = None) -> int:
        """Run one received frame through the filter and the policy into the queue.

        Returns the number of frames queued. Public so benches and tests can feed frames
        without a backend; `service()` calls it for each polled packet.
        """
        c = self.counters
        c.received += 1
        c.received_bytes += len(frame)
        if self.own.is_own(frame):
            c.reject("own_frame")
            self._once("own", "dropping frames whose source is the card's own MAC (the backend "
                       "reflects our transmissions)", level=logging.INFO)
            return 0
        frames = self.rx_policy.frames_for(frame, meta)
        if not frames:
            return 0
        taken = self.queue.offer(frames)
        if taken < len(frames):
            self._once("queue", "receive queue full (%d frames / %d bytes): tail drop",
                       self.queue.limit_frames, self.queue.limit_bytes)
        return taken

    def _room(self) -> int:
        """How many packets one poll may fetch (backpressure; see FrameQueue.polls_that_fit)."""
        return self.queue.polls_that_fit(self.poll_limit)

    def _deliver(self) -> int:
        return self.deliverer.deliver(self.now)

    def service(self, now_ns: int) -> int:
        """Pull what the backend has by `now_ns`, run it through the policy, and deliver what the
        chip can take now. The chip must already be advanced to `now_ns`. Returns frames
        delivered."""
        self.now = now_ns
        backend = self.backend
        deliver = self.deliverer.deliver
        delivered = deliver(now_ns)
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
            delivered += deliver(now_ns)
            if len(pkts) < limit:
                break
        return delivered

    def next_deadline(self) -> Optional[int]:
        """Absolute emulated time at which `service()` has work, or None.

        A lossless queue waiting for the driver to return a descriptor has no deadline: the
        runner calls `service()` after the driver runs.
        """
        t = self.deliverer.deadline(self.now)
        nd = getattr(self.backend, "next_deadline", None)
        if nd is not None and (not self.backpressure or self._room() > 0):
            b = nd()
            if b is not None and (t is None or b < t):
                t = b
        return t

    @property
    def queued(self) -> int:
        return len(self.queue.frames)

    @property
    def queued_bytes(self) -> int:
        return self.queue.nbytes

    def stats(self) -> dict[str, Any]:
        """Every counter, plain data (JSON-ready)."""
        c = self.counters
        d = c.dropped
        out: dict[str, Any] = {"policy": self.policy, "delivery": self.delivery, "timing": self.timing}
        out.update({name: getattr(c, name) for name in COUNTER_NAMES})
        out.update({
            "queued": len(self.queue.frames),
            "queued_bytes": self.queue.nbytes,
            "queue_limit_frames": self.queue.limit_frames,
            "queue_limit_bytes": self.queue.limit_bytes,
            "dropped": dict(d),
            "dropped_total": sum(d.values()),
            "queue_drops": d.get("queue_full", 0),
            "filtered": d.get("filtered", 0),
            "missed": d.get("missed", 0),
            "own_frames_dropped": d.get("own_frame", 0),
            "segment_failures": {k: v for k, v in d.items() if k.endswith("Error")},
            "mss_flows": len(self.mss),
            "segments_copied": self.rx_policy.seg.copied,
        })
        return out


def _counter(name: str) -> property:
    return property(lambda self: getattr(self.counters, name),
                    doc=f"counter {name!r} (read-only; also in stats())")


for _name in COUNTER_NAMES + ("dropped",):
    setattr(Bridge, _name, _counter(_name))
del _name
