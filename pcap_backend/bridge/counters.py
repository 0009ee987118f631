"""The bridge's counters: one object every part of the bridge counts into.

Accounting invariant (checked by the tests)::

    frames_in = delivered + queued + sum(dropped.values())

where ``frames_in`` counts every received frame once, except a successfully segmented
super-packet, which counts as the number of segments it was turned into. A frame refused before
the queue (own frame, legacy oversize, a segmentation error) is `reject`ed: it counts in
``frames_in`` and under its reason. A queued frame that leaves the queue other than by delivery
(the chip refused it, tail drop, close) is `drop`ped: counted under its reason only.
"""
from __future__ import annotations

from typing import Protocol

__all__ = ["Counters", "COUNTER_NAMES", "LogOnce"]

COUNTER_NAMES = (
    "received", "received_bytes", "super_packets", "segmented", "segments_made",
    "csum_completed", "frames_in", "delivered", "delivered_bytes", "queue_high_frames",
    "queue_high_bytes", "padded", "busy_retries", "transmitted", "transmitted_bytes", "tx_failed",
    "tx_bad_fcs", "mss_learned", "mss_used",
)


class LogOnce(Protocol):
    """The bridge's ``once(key, message, *args, level=...)``: log a condition the first time
    ``key`` occurs, never per frame."""

    def __call__(self, key: str, msg: str, *args: object, level: int = ...) -> None: ...


class Counters:
    """Plain integer counters (names in COUNTER_NAMES) and ``dropped``: reason -> frames."""

    __slots__ = COUNTER_NAMES + ("dropped",)

    # the names of COUNTER_NAMES, declared for type checkers (set to 0 in __init__)
    received: int
    received_bytes: int
    super_packets: int
    segmented: int
    segments_made: int
    csum_completed: int
    frames_in: int
    delivered: int
    delivered_bytes: int
    queue_high_frames: int
    queue_high_bytes: int
    padded: int
    busy_retries: int
    transmitted: int
    transmitted_bytes: int
    tx_failed: int
    tx_bad_fcs: int
    mss_learned: int
    mss_used: int

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        self.dropped: dict[str, int] = {}

    def reject(self, reason: str) -> None:
        """One received frame refused before the queue."""
        self.frames_in += 1
        d = self.dropped
        d[reason] = d.get(reason, 0) + 1

    def drop(self, reason: str, n: int = 1) -> None:
        """`n` frames that had been counted in frames_in dropped (queue or chip)."""
        d = self.dropped
        d[reason] = d.get(reason, 0) + n
