"""Runner: board + bridge + Python driver in one loop, on emulated or live time.

    runner = Runner(backend, policy="segment", timing="wire", mac=guest_mac)
    runner.run()                 # event-driven: jump emulated time from deadline to deadline
    runner.run_live(seconds)     # live: drive advance_to from time.monotonic_ns()

Time is integer ns of emulated time. ``run`` never reads a clock: it jumps to the next deadline
(board events, bridge queue, backend arrivals), so replays and tests are deterministic in both
``fast`` and ``wire`` timing; in ``wire`` timing the chip itself paces frames at 10 Mb/s, so
emulated goodput is what the real card would see. ``run_live`` maps time.monotonic_ns() onto
emulated time for live backends, so 10 Mb/s holds in real time.

Also here: ``read_capture`` (a whole capture in memory, with its section comment's SHA-256),
and ``StreamCollector``, which reassembles the TCP byte stream the guest received so it can be
checked against a recorded SHA-256. The replay backend itself is
`pcap_backend.backends.pcapng_io.CaptureReplay` (re-exported here).
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from typing import Callable, Optional

from pcap_backend import headers
from pcap_backend.backends.pcapng_io import CaptureReplay
from pcap_backend.base import CaptureFormatError
from pcap_backend.bridge import Bridge

__all__ = ["Runner", "CaptureReplay", "StreamCollector", "read_capture", "Capture"]

log = logging.getLogger("a2065.runners.replay")

TIMINGS = ("fast", "wire")


# ---------------------------------------------------------------------------------------------
# Capture reading

class Capture:
    """A capture file read into memory: packets, the section comment, a recorded SHA-256, and
    the error that ended reading early (None when the whole file was read)."""

    def __init__(self, path, packets, comment: str = "", error: Optional[CaptureFormatError] = None):
        self.path = str(path)
        self.packets = packets  # list of CapturedFrame (ts_ns, frame, outgoing|None, meta|None)
        self.comment = comment
        self.error = error
        m = re.search(r"sha256[^0-9a-f]*([0-9a-f]{64})", comment or "", re.I)
        self.sha256 = m.group(1).lower() if m else None

    def direction(self, which: str = "auto"):
        """Packets of one direction: "out" (epb_flags outbound), "in", "all", or "auto": the
        direction that carries more bytes (the data direction of a bulk transfer)."""
        if which == "all":
            return list(self.packets)
        if which == "auto":
            size = Counter()
            for p in self.packets:
                size[p[2]] += len(p[1])
            if set(size) <= {None}:
                return list(self.packets)
            which = "out" if size[True] >= size[False] else "in"
        want = which == "out"
        return [p for p in self.packets if p[2] is want]

    @staticmethod
    def guest_mac(packets) -> Optional[bytes]:
        """The unicast destination most frames go to: the guest's MAC in a replay."""
        c = Counter(p[1][:6] for p in packets if len(p[1]) >= 14 and not p[1][0] & 1)
        return c.most_common(1)[0][0] if c else None


def read_capture(path) -> Capture:
    """Read a pcapng or classic pcap (Ethernet) file through `pcap_backend.capfile`. Damage after
    at least one intact packet is kept in `Capture.error` (the packets before it are kept);
    an unreadable file, or one without a single intact packet, raises CaptureFormatError."""
    from pcap_backend.capfile import iter_capture
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaptureFormatError(f"cannot read {path}: {e.strerror or e}") from e
    packets = []
    comments = []

    def on_section(c):
        if c:
            comments.append(c)

    error = None
    with f:
        try:
            for cf in iter_capture(f, on_section=on_section):
                packets.append(cf)
        except CaptureFormatError as e:
            if not packets:
                raise CaptureFormatError(f"{path} is not a readable capture: {e}; "
                                         "check it with `tshark -r FILE`") from e
            error = e
        except OSError as e:
            raise CaptureFormatError(f"cannot read {path}: {e.strerror or e}") from e
    if not packets:
        raise CaptureFormatError(f"{path} holds no packets")
    return Capture(path, packets, comments[-1] if comments else "", error)


# ---------------------------------------------------------------------------------------------

class StreamCollector:
    """Reassembles the TCP byte streams (per flow) of the frames a guest received."""

    def __init__(self):
        self.flows: dict = {}
        self.frames = 0
        self.bytes = 0
        self.first_ns = None
        self.first_len = 0
        self.last_ns = None
        self.last_any_ns = None
        self.udp: dict = {}

    def add(self, frame: bytes, t_ns: int) -> None:
        self.frames += 1
        self.bytes += len(frame)
        self.last_any_ns = t_ns
        h = headers.walk(frame)  # VLAN-tagged frames too (up to two tags)
        if h is None:
            return
        if h.proto == headers.IPPROTO_UDP:
            u = headers.udp(frame, h)
            if u is not None:
                self._udp(h.src + h.dst + frame[h.l4:h.l4 + 4], frame[u.data:u.end], t_ns)
            return
        t = headers.tcp(frame, h)
        if t is None:
            return
        fl = self.flows.setdefault((h.src, h.dst, t.sport, t.dport),
                                   {"isn": None, "segs": {}, "bytes": 0})
        if t.flags & headers.TCP_SYN:
            fl["isn"] = (t.seq + 1) & 0xFFFFFFFF
        data = frame[t.data:t.end]
        if data:
            fl["segs"].setdefault(t.seq, data)
            fl["bytes"] += len(data)
            if self.first_ns is None:
                self.first_ns = t_ns
                self.first_len = len(data)
            self.last_ns = t_ns

    def _udp(self, key, data, t_ns):
        if data:
            self.udp.setdefault(key, []).append(data)
            if self.first_ns is None:
                self.first_ns = t_ns
                self.first_len = len(data)
            self.last_ns = t_ns

    def stream(self) -> bytes:
        """The longest in-order byte stream of the TCP flow that carried the most data; with no
        TCP data, the datagram payloads of the busiest UDP flow concatenated in arrival order."""
        if not any(f["bytes"] for f in self.flows.values()):
            if self.udp:
                return b"".join(max(self.udp.values(), key=lambda v: sum(map(len, v))))
            return b""
        fl = max(self.flows.values(), key=lambda f: f["bytes"])
        segs = fl["segs"]
        if not segs:
            return b""
        seq = fl["isn"] if fl["isn"] is not None else min(segs)
        out = bytearray()
        for _ in range(len(segs) + 1):
            data = segs.get(seq)
            if data is None:
                # tolerate overlap: a segment starting before seq that extends past it
                break
            out += data
            seq = (seq + len(data)) & 0xFFFFFFFF
        return bytes(out)

    def goodput_Bps(self, stream_len: int) -> int:
        """In-order stream bytes per emulated second, from the first data frame to the last frame
        the guest received (the first frame's payload arrived before the interval starts, so it
        is not counted)."""
        end = max(self.last_ns or 0, self.last_any_ns or 0)
        if self.first_ns is None or end <= self.first_ns:
            return 0
        return max(0, stream_len - self.first_len) * 1_000_000_000 // (end - self.first_ns)

    def sha256(self) -> str:
        return hashlib.sha256(self.stream()).hexdigest()

    @property
    def kind(self) -> Optional[str]:
        """"TCP" when `stream()` is a TCP byte stream, "UDP" when it is datagram payloads, None
        when the guest received no data."""
        if any(f["bytes"] for f in self.flows.values()):
            return "TCP"
        return "UDP" if self.udp else None


# ---------------------------------------------------------------------------------------------

class Runner:
    """Board (A2065 + Am7990) + Bridge + LinuxA2065Driver, one loop.

    backend: any pcap_backend Backend. ``on_receive(frame, t_ns)`` sees every frame the driver
    hands up. ``bridge_kwargs`` go to `Bridge` (queue bounds, recorder, ...).
    """

    def __init__(self, backend, *, policy: str = "segment", delivery: str = "lossless",
                 timing: str = "fast", mac=None, serial: int = 0x00123456,
                 on_receive: Optional[Callable[[bytes, int], None]] = None, promisc: bool = False,
                 multicast=(), driver_factory=None, **bridge_kwargs):
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
        from a2065 import A2065
        from a2065.drivers import LinuxA2065Driver
        self.timing = timing
        self.backend = backend
        self.board = A2065(serial=serial, timing=timing)
        self.chip = self.board.lance
        self.on_receive = on_receive
        factory = driver_factory or LinuxA2065Driver
        self.driver = factory(self.board, mac if mac is not None else self.board.mac,
                              on_receive=self._received, promisc=promisc, multicast=multicast,
                              received_maxlen=0, fast_copy=True, now=0)
        self.bridge = Bridge(backend, self.chip, policy=policy, delivery=delivery, timing=timing,
                             mac=self.driver.mac, **bridge_kwargs)
        self.now = 0
        self.steps = 0
        self.stalled = False
        self.driver.open()
        self.now = max(self.now, self.board.now)

    def _received(self, frame: bytes) -> None:
        if self.on_receive is not None:
            self.on_receive(frame, self.now)

    # -- one step at one time -------------------------------------------------------------------
    def step(self, now: int) -> None:
        """Catch everything up to emulated time `now` and let each part react once."""
        if now < self.now:
            now = self.now
        self.now = now
        self.board.advance_to(now)
        self.bridge.service(now)
        self.driver.service(now)
        self.bridge.service(now)
        self.driver.service(now)
        self.steps += 1

    def next_deadline(self) -> Optional[int]:
        t = None
        for d in (self.board.next_deadline(), self.bridge.next_deadline()):
            if d is not None and (t is None or d < t):
                t = d
        return t

    def idle(self) -> bool:
        """Nothing left to receive: the backend has nothing scheduled and the queue is empty."""
        nd = getattr(self.backend, "next_deadline", None)
        return self.bridge.queued == 0 and (nd is None or nd() is None)

    def run(self, *, until_ns: Optional[int] = None, max_steps: int = 10_000_000,
            progress: Optional[Callable[["Runner"], None]] = None,
            stop: Optional[Callable[[], bool]] = None) -> "Runner":
        """Event-driven emulated time: step, jump to the next deadline, repeat; stop when idle
        (or at `until_ns`, or when `stop()` is true; both callbacks run every 256 steps).
        Deterministic; reads no clock."""
        self.step(self.now)
        same = 0
        for i in range(max_steps):
            if until_ns is None and self.idle():
                break
            t = self.next_deadline()
            if t is not None and t <= self.now:
                same += 1
                if same > 4:  # nothing moves at this instant: take the next strictly later event
                    later = [d for d in (self.board.next_deadline(),) if d is not None and d > self.now]
                    nd = getattr(self.backend, "next_deadline", None)
                    b = nd() if nd is not None else None
                    if b is not None and b > self.now and self.bridge._room() > 0:
                        later.append(b)
                    t = min(later) if later else None
                    same = 0
            else:
                same = 0
            if t is None:
                if until_ns is None:
                    self.stalled = not self.idle()
                    break
                t = until_ns
            if until_ns is not None and t > until_ns:
                self.step(until_ns)
                break
            self.step(t)
            if not i & 255:
                if progress is not None:
                    progress(self)
                if stop is not None and stop():
                    break
        return self

    def run_live(self, seconds: Optional[float] = None, *, stop: Optional[Callable[[], bool]] = None,
                 max_sleep_ns: int = 1_000_000, on_step: Optional[Callable[["Runner"], None]] = None,
                 extra_fds=()) -> "Runner":
        """Live time: emulated ns = monotonic ns since start (plus where the board already is).
        Sleeps until the next deadline or a descriptor (the backend's, `extra_fds`) is readable,
        at most max_sleep_ns. `on_step(runner)` runs after every step (e.g. to pump a guest TAP)."""
        import select
        start = time.monotonic_ns()
        base = self.now
        fds = [f for f in ([self.backend.fileno()] if hasattr(self.backend, "fileno") else [])
               if f is not None] + [f for f in extra_fds if f is not None]
        end = None if seconds is None else start + int(seconds * 1e9)
        while True:
            wall = time.monotonic_ns()
            if (end is not None and wall >= end) or (stop is not None and stop()):
                break
            target = base + wall - start
            # Catch up: events due since the last step run at their own emulated times, so a
            # late wake-up does not stretch the 10 Mb/s frame slots of frames already queued.
            for _ in range(10_000):
                t = self.next_deadline()
                if t is None or t >= target or t <= self.now:
                    break
                self.step(t)
            self.step(target)
            if on_step is not None:
                on_step(self)
            t = self.next_deadline()
            wait = max_sleep_ns if t is None else max(0, min(max_sleep_ns, t - (base + time.monotonic_ns() - start)))
            if wait:
                if fds:
                    select.select(fds, [], [], wait / 1e9)
                else:
                    time.sleep(wait / 1e9)
        return self

    def stats(self) -> dict:
        d = self.driver.counters
        return {
            "now_ns": self.now,
            "steps": self.steps,
            "bridge": self.bridge.stats(),
            "driver": {"rx_frames": d.rx_frames, "rx_bytes": d.rx_bytes,
                       "rx_errors": dict(getattr(d, "rx_errors", {})),
                       "tx_frames": getattr(d, "tx_frames", 0)},
            "backend": self.backend.stats() if hasattr(self.backend, "stats") else {},
        }
