"""The bridge between a host `Backend` and the chip; one module per responsibility:

    core.py        Bridge: wiring, transmit path, service loop, stats
    own_frames.py  own-frame filter
    policy.py      receive policy (segment | drop-legacy), MSS learning, segmentation
    queue.py       bounded receive queue (frames + byte budget), backpressure
    delivery.py    delivery to the chip (lossless | hardware, wire timing)
    counters.py    the counters and the accounting invariant
"""
from ..backends.pcapng_io import PcapngTee
from .core import TIMINGS, Bridge
from .counters import COUNTER_NAMES
from .delivery import DELIVERIES
from .policy import (ETH_MAX, LEGACY_MAX, LEGACY_QUEUE_FRAMES, POLICIES, MssError, syn_mss,
                     tcp_flow)

__all__ = ["Bridge", "PcapngTee", "POLICIES", "DELIVERIES", "TIMINGS", "ETH_MAX", "LEGACY_MAX",
           "LEGACY_QUEUE_FRAMES", "COUNTER_NAMES", "MssError", "syn_mss", "tcp_flow"]
