"""Delivery: queued frames to the chip.

    lossless  offer a frame only when ``chip.rx_ready(len)``: nothing is ever MISSed; the queue
              waits for the driver to hand descriptors back
    hardware  offer at once; no owned descriptor -> MISS, as the chip on a real wire does
    wire timing (either mode): never before ``chip.rx_idle_at()`` (10 Mb/s on emulated time)
"""
from __future__ import annotations

import logging
from typing import Optional

from ..base import ChipPort, FrameRecorder
from .counters import Counters, LogOnce
from .queue import FrameQueue

__all__ = ["Delivery", "DELIVERIES"]

log = logging.getLogger("a2065.bridge")

DELIVERIES = ("lossless", "hardware")

# chip RxStatus names -> drop reasons
_REASONS = {"FILTERED": "filtered", "MISSED": "missed", "RX_OFF": "rx_off",
            "TOO_LONG": "too_long", "RUNT": "runt"}


class Delivery:
    def __init__(self, chip: ChipPort, queue: FrameQueue, counters: Counters, *, lossless: bool,
                 wire: bool, once: LogOnce) -> None:
        self.chip = chip
        self.queue = queue
        self.lossless = lossless
        self.wire = wire
        self.recorder: Optional[FrameRecorder] = None
        self._c = counters
        self._once = once
        self._status_names: dict[object, str] = {}

    def _status_name(self, st: object) -> str:
        name = self._status_names.get(st)
        if name is None:
            name = getattr(st, "name", None) or str(st).rsplit(".", 1)[-1]
            self._status_names[st] = name
        return name

    def deliver(self, now: int) -> int:
        """Offer queued frames to the chip while it can take them (hot path: locals only).
        Returns frames accepted."""
        q = self.queue.frames
        if not q:
            return 0
        chip = self.chip
        receive = chip.receive
        ready = chip.rx_ready if self.lossless else None
        idle_at = chip.rx_idle_at if self.wire else None
        names = self._status_names
        rec = self.recorder
        c = self._c
        n = 0
        nbytes = 0
        while q:  # bounded by the queue's frame limit
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
                    rec.record(chip.now, f, False)
                continue
            if name == "BUSY":
                c.busy_retries += 1
                break
            q.popleft()
            self.queue.nbytes -= len(f)
            reason = _REASONS.get(name, name.lower())
            c.drop(reason)
            if reason == "missed":
                self._once("miss", "hardware delivery: frames MISSed (no receive descriptor "
                           "owned by the chip)", level=logging.INFO)
            elif reason != "filtered":
                self._once("chip:" + reason, "chip refused a frame: %s", name)
        if n:
            c.delivered += n
            c.delivered_bytes += nbytes
            self.queue.nbytes -= nbytes
        return n

    def deadline(self, now: int) -> Optional[int]:
        """When `deliver` has work: ``now``, the chip's idle time (wire), or None (empty, or
        lossless and waiting for the driver to return a descriptor)."""
        q = self.queue.frames
        if not q:
            return None
        chip = self.chip
        if self.wire:
            idle = chip.rx_idle_at()
            if idle > now:
                return idle
        if not self.lossless or chip.rx_ready(len(q[0])):
            return now
        return None
