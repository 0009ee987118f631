"""The bridge's receive queue: frames waiting for the chip, bounded by a frame count and a byte
budget, tail drop beyond them; and the backpressure rule that says how much one poll may fetch."""
from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from lance.buffers import BytesLike

from .counters import Counters

__all__ = ["FrameQueue", "ETH_MIN", "SUPER_PACKET_ROOM", "SUPER_PACKET_FRAMES"]

ETH_MIN = 60              # shortest frame without FCS on the wire; shorter ones are padded
# What one polled packet may add to the queue (backpressure): a 64 KB super-packet grows by one
# set of headers per segment (45 x 66 B at MSS 1448) and splits into up to ~125 frames at the
# smallest gso_size seen from real senders (524, host-side reference).
SUPER_PACKET_ROOM = 80 * 1024
SUPER_PACKET_FRAMES = 128

_PAD = bytes(ETH_MIN)


class FrameQueue:
    """FIFO of frames (bytes-like) with ``limit_frames`` and ``limit_bytes``.

    `offer` takes the leading frames of a batch that fit, in order, and tail-drops the rest
    (counted ``queue_full``): whatever room the queue has is used, a super-packet is never
    refused whole because its last segments do not fit.
    """

    def __init__(self, limit_frames: int, limit_bytes: int, counters: Counters) -> None:
        self.limit_frames = limit_frames
        self.limit_bytes = limit_bytes
        self.frames: collections.deque[BytesLike] = collections.deque()
        self.nbytes = 0
        self._c = counters

    def __len__(self) -> int:
        return len(self.frames)

    def offer(self, frames: Sequence[BytesLike]) -> int:
        """Queue the frames of one received packet (frames shorter than 60 bytes padded);
        returns how many were taken. Counts frames_in, padding, tail drops and high marks."""
        c = self._c
        q = self.frames
        qf, qb = self.limit_frames, self.limit_bytes
        k = len(frames)
        c.frames_in += k
        taken = 0
        if k == 1:
            f = frames[0]
            if len(f) < ETH_MIN:
                f = bytes(f) + _PAD[len(f):]
                c.padded += 1
            if len(q) < qf and self.nbytes + len(f) <= qb:
                q.append(f)
                self.nbytes += len(f)
                taken = 1
        else:
            if qf - len(q) >= k:
                total = sum(map(len, frames))
                if self.nbytes + total <= qb:
                    q.extend(frames)
                    self.nbytes += total
                    taken = k
            if taken == 0:
                for f in frames:  # bounded by the batch
                    if len(q) < qf and self.nbytes + len(f) <= qb:
                        q.append(f)
                        self.nbytes += len(f)
                        taken += 1
                    else:
                        break
        if taken < k:
            c.drop("queue_full", k - taken)
        if len(q) > c.queue_high_frames:
            c.queue_high_frames = len(q)
        if self.nbytes > c.queue_high_bytes:
            c.queue_high_bytes = self.nbytes
        return taken

    def polls_that_fit(self, poll_limit: int) -> int:
        """How many packets one poll may fetch without overrunning the queue (backpressure):
        each may be a super-packet of up to SUPER_PACKET_FRAMES / SUPER_PACKET_ROOM."""
        free_frames = self.limit_frames - len(self.frames)
        free_bytes = self.limit_bytes - self.nbytes
        n = min(free_frames // SUPER_PACKET_FRAMES, free_bytes // SUPER_PACKET_ROOM)
        if n <= 0:
            return 0 if self.frames else 1  # an empty queue always takes one (tail drop beyond)
        return min(poll_limit, n)

    def clear(self) -> int:
        """Empty the queue; returns how many frames it held (the caller counts them)."""
        n = len(self.frames)
        self.frames.clear()
        self.nbytes = 0
        return n
