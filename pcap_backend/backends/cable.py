"""VirtualCable: an in-memory, deterministic Ethernet cable joining two backends' ends.

Timing (integer ns of emulated time). A frame sent at t_ns starts on the wire at
``start = max(t_ns, sender idle time)`` and arrives at the far end at
``start + serialisation + delay_ns`` where serialisation covers preamble+SFD (8 bytes), the frame
padded to 60 bytes, and the 4-byte FCS: ``ceil((8 + max(len, 60) + 4) * 8 * 1e9 / bit_rate)``.
The sender is then busy for a further inter-frame gap of 96 bit times. With ``bit_rate=None`` a
frame arrives at ``t_ns + delay_ns`` (no serialisation, no gap). Arrivals never go backwards: a
cable delivers in the order frames were sent.

Loss is seeded (one `random.Random` per direction), so a run is reproducible from its seed. Lost
frames were transmitted (send returns True) and are counted as ``tx_lost`` at the sender. Each
direction holds at most ``queue_frames`` frames not yet polled; further frames are dropped and
counted at the receiver as ``rx_dropped["queue_full"]``. ``cable.set_link(False)`` unplugs it:
both ends report link down, sends fail (``tx_failed["link_down"]``) and frames in flight are
dropped (``rx_dropped["link_down"]``).
"""
from __future__ import annotations

import collections
import random
from typing import Any, Optional

from ..base import Backend, Packet

PREAMBLE_BYTES = 8
FCS_BYTES = 4
MIN_FRAME_WITHOUT_FCS = 60  # a sender pads a frame to this before its FCS
GAP_BITS = 96


def serialisation_ns_ceil(frame_len: int, bit_rate: int) -> int:
    """Nanoseconds, rounded up, to serialise a frame of `frame_len` bytes without FCS at
    `bit_rate`: preamble + SFD, the frame padded to 60 bytes, and the FCS the sender appends."""
    bits = (PREAMBLE_BYTES + max(frame_len, MIN_FRAME_WITHOUT_FCS) + FCS_BYTES) * 8
    return -(-bits * 1_000_000_000 // bit_rate)


class CableEnd(Backend):
    name = "cable"

    def __init__(self, cable: "VirtualCable", side: str, seed: int) -> None:
        super().__init__(f"cable.{side}")
        self.cable = cable
        self.side = side
        self.peer: Optional[CableEnd] = None
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.rng = random.Random(seed)
        self.tx_idle_at = 0
        self.last_arrival = 0
        self.tx_lost = 0
        self.rx_dropped: dict[str, int] = {}

    @property
    def link_up(self) -> bool:
        return self.cable.up and not self.closed and self.peer is not None and not self.peer.closed

    def send(self, frame: bytes, t_ns: int) -> bool:
        if not self.link_up:
            return self._tx_fail("link_down")
        frame = bytes(frame)
        c = self.cable
        start = max(t_ns, self.tx_idle_at)
        if c.bit_rate:
            ser = serialisation_ns_ceil(len(frame), c.bit_rate)
            self.tx_idle_at = start + ser + -(-GAP_BITS * 1_000_000_000 // c.bit_rate)
        else:
            ser = 0
            self.tx_idle_at = start
        arrival = max(start + ser + c.delay_ns, self.last_arrival)
        self.last_arrival = arrival
        self._tx_ok(frame)
        if c.loss and self.rng.random() < c.loss:
            self.tx_lost += 1
            return True
        self.peer._arrive(arrival, frame)  # type: ignore[union-attr]  # link_up saw the peer
        return True

    def _arrive(self, arrival: int, frame: bytes) -> None:
        if len(self.queue) >= self.cable.queue_frames:
            self._drop("queue_full")
            return
        self.queue.append((arrival, frame))

    def _drop(self, reason: str, n: int = 1) -> None:
        self.rx_dropped[reason] = self.rx_dropped.get(reason, 0) + n
        self.conditions.hit("rx:" + reason, "%s: dropping received frames: %s", self.name, reason)

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        q = self.queue
        while q and len(out) < limit and q[0][0] <= now_ns:
            arrival, frame = q.popleft()
            self._rx(frame)
            out.append(Packet(arrival, frame, None))
        if not q and "rx:queue_full" in self.conditions.active:
            self.conditions.clear("rx:queue_full")
        return out

    def next_deadline(self) -> Optional[int]:
        """Arrival time of the next frame waiting at this end, or None."""
        return self.queue[0][0] if self.queue else None

    def set_link(self, up: bool) -> None:
        self.cable.set_link(up)

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(
            tx_lost=self.tx_lost,
            rx_dropped=dict(self.rx_dropped),
            rx_queued=len(self.queue),
        )
        return s


class VirtualCable:
    """Two `CableEnd`s; create with `VirtualCable.pair(...)`."""

    def __init__(self, bit_rate: Optional[int] = 10_000_000, delay_ns: int = 0, loss: float = 0.0,
                 seed: int = 0, queue_frames: int = 1024) -> None:
        if bit_rate is not None and bit_rate <= 0:
            raise ValueError("bit_rate must be positive or None")
        if delay_ns < 0:
            raise ValueError("delay_ns must be >= 0")
        if not 0.0 <= loss <= 1.0:
            raise ValueError("loss must be within [0, 1]")
        if queue_frames < 1:
            raise ValueError("queue_frames must be >= 1")
        self.bit_rate = bit_rate
        self.delay_ns = int(delay_ns)
        self.loss = float(loss)
        self.queue_frames = queue_frames
        self.up = True
        self.a = CableEnd(self, "a", seed * 2 + 1)
        self.b = CableEnd(self, "b", seed * 2 + 2)
        self.a.peer, self.b.peer = self.b, self.a

    @classmethod
    def pair(cls, bit_rate: Optional[int] = 10_000_000, delay_ns: int = 0, loss: float = 0.0,
             seed: int = 0, queue_frames: int = 1024) -> tuple[CableEnd, CableEnd]:
        c = cls(bit_rate, delay_ns, loss, seed, queue_frames)
        return c.a, c.b

    def set_link(self, up: bool) -> None:
        up = bool(up)
        if up == self.up:
            return
        self.up = up
        for end in (self.a, self.b):
            if up:
                end.conditions.clear_all(["tx:link_down", "rx:link_down"])
            elif end.queue:
                end._drop("link_down", len(end.queue))
                end.queue.clear()
