#!/usr/bin/env python3
"""Campaign 1, hostile guest: random and adversarial guest behaviour over the whole A2065 board.

    python3 -m tools.campaign_guest --steps 100000 --seed 1            # CI size (~1-2 min)
    python3 -m tools.campaign_guest --steps 10000000 --seed 7 --report out.json
    python3 -m tools.campaign_guest --seed 7 --episode 1234 --verbose  # replay one failing episode

A seeded random driver of the same rules as the hypothesis state machine in
tests/test_robust_guest.py (both call `World.act(kind, chooser)`): the rules pick their values
through a *chooser* (`RandomChooser` here, `DrawChooser` over hypothesis's `data.draw` in the
test), so a finding of either is a plain sequence of the same actions.

Episodes: every `--episode-steps` steps a fresh board (random timing, variant, starting state),
seeded by (seed, episode), so any failure is reproduced by `--seed S --episode E`.

Rules (weights in ACTIONS): bus accesses of every width at every offset (configured, unconfigured
= autoconfig window, shut up), autoconfig writes, bus reset, CSR writes in any order (RAP then
RDP, any CSR0 bit combination: INIT while running, STOP mid-frame, TDMD, W1C), adversarial init
blocks (rings overlapping the init block and their own buffers, rings at the 32 KB wrap, rings of
1..128 entries, any MODE: loopback, DTCR, COLL, PROM, DRX/DTX), adversarial descriptors (buffers
crossing the wrap, BCNT 0 (=4096) and 4095 (=1), buffers over the descriptors themselves, chains
that loop round the ring, OWN without STP), frame arrivals (0..1600+ bytes, with or without FCS,
to us / broadcast / multicast / anyone), time steps (0 ns .. 1 s), STOP in the middle of a frame
in flight, snapshot round trips (board.snapshot -> to_bytes -> from_bytes -> restore).

Invariants (checked after every step; `InvariantError` names the first broken one):
  * no exception escapes the model (the board is strict, so chip exceptions are not swallowed);
  * every RAM access stays inside the 32 KB RAM: the RAM is a `GuardedRam` (bytearray subclass
    that refuses any index or slice outside [0, 32768) and any resize) -- this covers the chip's
    hot receive path, which slices the RAM directly, and the board's bus handlers; in half the
    episodes the DMA port is additionally a `CountingDma` (generic paths, every transfer counted);
  * every walk is bounded: DMA operations per step <= WALK_BOUND * (polls in the step + 2);
    single transfers <= 32 KB; frames handed to `transmit` <= 32 KB + FCS;
  * the IRQ line equals CSR0.INTR && INEA, and the host saw alternating edges only;
  * counters add up: offered == delivered + filtered + missed + dropped + in flight; offered ==
    our offers + looped-back frames; tx_errors == lcar + rtry + buff; none negative;
  * nothing grows without bound: RAM stays 32768 bytes, at most one frame in flight per direction.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from a2065 import A2065  # noqa: E402
from a2065 import snapshot as snapmod  # noqa: E402
from lance.dma import RamDma  # noqa: E402

RAM_SIZE = 0x8000
MAX_TRANSFER = 32768 + 2       # BSWP=0 reads a byte pair around a 32 KB gather at most
MAX_TX_FRAME = 32768 + 4       # MAX_GATHER + FCS
#: DMA operations one TX poll or one received frame may cost, at most: a poll handles up to
#: 2*TLEN frames, each walking up to TLEN descriptors (read, data read, write) plus the status
#: writes; a receive walks up to RLEN descriptors. With 128-entry rings (the maximum):
WALK_BOUND = 2 * 128 * (3 * 128 + 8) + 3 * 128 + 8

# CSR0 bits
INIT, STRT, STOP, TDMD, TXON, RXON, INEA, INTR = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80
IDON, TINT, RINT, MERR, MISS, CERR, BABL, ERR = 0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000
# MODE bits
M_DRX, M_DTX, M_LOOP, M_DTCR, M_COLL, M_DRTY, M_INTL, M_PROM = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x8000

HOT_OFFSETS = (0x0000, 0x0002, 0x0048, 0x004A, 0x004C, 0x004E, 0x0040, 0x0044, 0x3FFE, 0x4000,
               0x4001, 0x4002, 0x4003, 0x4004, 0x7FFE, 0x7FFF, 0x8000, 0x8001, 0xFFFC, 0xFFFD,
               0xFFFE, 0xFFFF, 0x10000, 0x14000, 0x14002, 0x1FFFF)
HOT_VALUES = (0, 1, 2, 3, 4, 8, 0x40, 0x41, 0x42, 0x43, 0x44, 0x48, 0x4A, 0x7F00, 0x7F58, 0x8000,
              0xE900, 0xE9, 0xFF00, 0xFFFF, 0x0001_0000, 0x8000_0000, 0xFFFF_FFFF, 0x7F00_0043)
CSR0_VALUES = (INIT, STRT, STOP, TDMD, INEA, INIT | INEA, STRT | INEA, INIT | STRT | INEA,
               INIT | STRT, STOP | INIT | STRT, INEA | TDMD, 0x7F00, 0x7F00 | INEA, 0xFFFF,
               IDON | INEA, TINT | RINT | INEA, MISS | BABL | CERR | MERR | INEA, 0)
MODE_BITS = (0, 0, 0, M_PROM, M_LOOP, M_LOOP | M_INTL, M_LOOP | M_DTCR, M_LOOP | M_INTL | M_COLL,
             M_LOOP | M_INTL | M_COLL | M_DRTY, M_DRX, M_DTX, M_DRX | M_DTX, M_LOOP | M_DTCR | M_INTL)
BCNT_RAW = (0, 0x000, 0xFFF, 0x001, 0xF000, 0xFA12, 0xFC18, 0xFFC0, 0xF800, 0xFDB0, 0x0800)
TIME_STEPS = (0, 1, 800, 9_600, 51_200, 100_000, 1_200_000, 1_600_000, 1_600_001, 5_000_000,
              20_000_000)

ACTIONS = (
    # (name, weight)
    ("bus_read", 10), ("bus_write", 10), ("csr", 14), ("init_block", 4), ("descriptor", 14),
    ("ring", 4), ("frame", 16), ("time", 14), ("stop_mid_frame", 2), ("init_running", 2),
    ("tdmd", 4), ("autoconfig", 2), ("bus_reset", 1), ("snapshot", 1), ("driver_open", 1),
)


class InvariantError(AssertionError):
    """An invariant broke; the message names it (the runner adds seed, episode and step)."""


# ---------------------------------------------------------------------------------------------
# Guards

def _bad(k, size):
    if isinstance(k, slice):
        start, stop, step = k.start, k.stop, k.step
        if step not in (None, 1):
            return f"stepped slice {k}"
        start = 0 if start is None else start
        stop = size if stop is None else stop
        return None if 0 <= start <= stop <= size else f"slice [{start}:{stop}]"
    return None if 0 <= k < size else f"index {k}"


class GuardedRam(bytearray):
    """The board's 32 KB as a bytearray that refuses any access outside [0, 32768) (negative
    indices included: Python would wrap them, a bus address never does) and any resize."""

    def __getitem__(self, k):
        why = _bad(k, RAM_SIZE)
        if why:
            raise InvariantError(f"RAM read outside the 32 KB: {why}")
        return bytearray.__getitem__(self, k)

    def __setitem__(self, k, v):
        why = _bad(k, RAM_SIZE)
        if why:
            raise InvariantError(f"RAM write outside the 32 KB: {why}")
        if isinstance(k, slice):
            start = 0 if k.start is None else k.start
            stop = RAM_SIZE if k.stop is None else k.stop
            if len(v) != stop - start:
                raise InvariantError(f"RAM write would resize it: [{start}:{stop}] <- {len(v)} bytes")
        bytearray.__setitem__(self, k, v)

    def __delitem__(self, k):
        raise InvariantError("RAM delete")

    def extend(self, *a):  # pragma: no cover - would be a finding
        raise InvariantError("RAM extend")

    def append(self, *a):  # pragma: no cover
        raise InvariantError("RAM append")


class CountingDma:
    """A DmaPort around RamDma: counts operations and bytes, refuses over-long transfers."""

    def __init__(self, ram):
        self.inner = RamDma(ram, 0x7FFF)
        self.ops = 0
        self.bytes = 0

    def read16(self, addr):
        self.ops += 1
        v = self.inner.read16(addr)
        if not 0 <= v <= 0xFFFF:
            raise InvariantError(f"read16 gave {v}")
        return v

    def write16(self, addr, value):
        self.ops += 1
        if not 0 <= value <= 0xFFFF:
            raise InvariantError(f"chip wrote word {value:#x}")
        self.inner.write16(addr, value)

    def read_desc(self, addr):
        self.ops += 1
        return self.inner.read_desc(addr)

    def read(self, addr, length):
        self.ops += 1
        if not 0 <= length <= MAX_TRANSFER:
            raise InvariantError(f"DMA read of {length} bytes")
        self.bytes += length
        data = self.inner.read(addr, length)
        if len(data) != length:
            raise InvariantError(f"DMA read of {length} bytes gave {len(data)}")
        return data

    def write(self, addr, data):
        self.ops += 1
        n = len(data)
        if not 0 <= n <= MAX_TRANSFER:
            raise InvariantError(f"DMA write of {n} bytes")
        self.bytes += n
        self.inner.write(addr, data)


# ---------------------------------------------------------------------------------------------
# Choosers: the rules ask these for values

class RandomChooser:
    """Values from a seeded random.Random."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def int(self, lo, hi):
        return self.r.randint(lo, hi)

    def choice(self, seq):
        return seq[self.r.randrange(len(seq))]

    def bool(self, p=0.5):
        return self.r.random() < p

    def bytes(self, n):
        return self.r.getrandbits(8 * n).to_bytes(n, "little") if n else b""


# ---------------------------------------------------------------------------------------------

def _frame(ch, padr: bytes, size: int) -> bytes:
    kind = ch.int(0, 5)
    if kind == 0:
        dst = padr
    elif kind == 1:
        dst = b"\xff" * 6
    elif kind == 2:
        dst = bytes((0x01, 0x00, 0x5E, 0, 0, ch.int(0, 255)))
    elif kind == 3:
        dst = ch.bytes(6)
    else:
        dst = padr
    body = dst + b"\x02\x00\x00\x00\x00\x07" + ch.bytes(2)
    if size > len(body):
        fill = bytes(range(256)) * (size // 256 + 1)
        body += fill[: size - len(body)]
    return body[:size]


class World:
    """One board under a hostile guest, its guards and the running bookkeeping."""

    def __init__(self, ch, *, counting: bool, timing: str, variant: str = "commodore"):
        self.ch = ch
        self.edges: list[bool] = []
        self.sent = 0
        self.tx_results = (True, True, True, False, None)
        self.board = A2065(strict=True, timing=timing, variant=variant,
                           serial=ch.int(0, 0xFFFFFFFF), irq=self._irq,
                           transmit=self._transmit)
        self._install_guards(counting)
        self.now = 0
        self.offers = 0                # frames we offered through chip.receive
        self.steps = 0
        self.max_ops_step = 0
        self.max_transfer = 0
        self.frames_seen = 0
        self.iadr = 0x0000             # LANCE address of our last init block (RAM offset)

    # wiring -----------------------------------------------------------------------------------
    def _install_guards(self, counting: bool) -> None:
        b = self.board
        g = GuardedRam(b.ram)
        b.ram = g
        self.ram = g
        self.counting = counting
        if counting:
            self.dma = CountingDma(g)
        else:
            self.dma = RamDma(g, 0x7FFF)  # exactly RamDma: the chip's hot receive path is on
        b.dma = self.dma if not counting else self.dma.inner
        b.lance.dma = self.dma

    def _irq(self, level):
        if self.edges and self.edges[-1] == bool(level):
            raise InvariantError(f"repeated IRQ edge {level}")
        self.edges.append(bool(level))
        if len(self.edges) > 64:
            del self.edges[:-2]

    def _transmit(self, frame, t):
        self.sent += 1
        if len(frame) > MAX_TX_FRAME:
            raise InvariantError(f"transmit of {len(frame)} bytes")
        if t < 0:
            raise InvariantError(f"transmit at negative time {t}")
        return self.ch.choice(self.tx_results)

    # helpers ----------------------------------------------------------------------------------
    @property
    def chip(self):
        return self.board.lance

    def csr(self, reg, value):
        b = self.board
        b.write16(0x4002, reg, now=self.now)
        b.write16(0x4000, value, now=self.now)

    def ensure_configured(self):
        b = self.board
        if not b.configured and not b.shut_up:
            b.write16(0x48, 0xE900)

    def w16(self, lance_addr, v):
        a = lance_addr & 0x7FFF
        self.ram[a] = (v >> 8) & 0xFF
        self.ram[(a + 1) & 0x7FFF] = v & 0xFF

    def ring_addr(self, ch, size):
        """An adversarial ring/buffer base (LANCE address; the board decodes 15 bits)."""
        k = ch.int(0, 7)
        if k == 0:
            return self.iadr + ch.choice((0, 8, 16))          # over the init block
        if k == 1:
            return 0x8000 - ch.choice((8, 16, 64))            # at the 32 KB wrap
        if k == 2:
            return 0xFF0000 | ch.int(0, 0xFFFF)               # high address bits (aliases)
        if k == 3:
            return 0
        return ch.int(0, 0xFFFFFF) if ch.bool(0.3) else ch.int(0, 0x7FFF)

    # the rules --------------------------------------------------------------------------------
    def act(self, kind: str) -> None:
        getattr(self, "a_" + kind)(self.ch)

    def a_bus_read(self, ch):
        width = ch.choice((8, 16, 32))
        off = ch.choice(HOT_OFFSETS) if ch.bool(0.5) else ch.int(0, 0x1FFFF)
        v = getattr(self.board, f"read{width}")(off, now=self.now)
        if not 0 <= v < (1 << width):
            raise InvariantError(f"read{width}({off:#x}) = {v:#x}")

    def a_bus_write(self, ch):
        width = ch.choice((8, 16, 32))
        off = ch.choice(HOT_OFFSETS) if ch.bool(0.5) else ch.int(0, 0x1FFFF)
        v = ch.choice(HOT_VALUES) if ch.bool(0.5) else ch.int(0, 0xFFFFFFFF)
        getattr(self.board, f"write{width}")(off, v, now=self.now)

    def a_csr(self, ch):
        self.ensure_configured()
        reg = ch.choice((0, 0, 0, 1, 2, 3))
        if reg == 0:
            v = ch.choice(CSR0_VALUES) if ch.bool(0.7) else ch.int(0, 0xFFFF)
        elif reg == 1:
            v = self.iadr & 0xFFFF if ch.bool(0.6) else ch.int(0, 0xFFFF)
        elif reg == 2:
            v = ch.int(0, 0xFFFF) if ch.bool(0.3) else 0
        else:
            v = ch.choice((0, 4, 2, 1, 7, 0xFFFF))
        self.csr(reg, v)

    def a_init_block(self, ch):
        """Write an adversarial init block into RAM and point IADR at it (needs STOP)."""
        self.ensure_configured()
        iadr = ch.choice((0x0000, 0x7FE8, 0x7FF0, 0x0100)) if ch.bool(0.4) else ch.int(0, 0x7FFF) & ~1
        self.iadr = iadr
        mode = ch.choice(MODE_BITS) if ch.bool(0.8) else ch.int(0, 0xFFFF)
        padr = self.board.mac if ch.bool(0.7) else ch.bytes(6)
        ladrf = ch.choice((0, (1 << 64) - 1)) if ch.bool(0.7) else ch.int(0, (1 << 64) - 1)
        rlog, tlog = ch.int(0, 7), ch.int(0, 7)
        rdra = self.ring_addr(ch, 8 << rlog)
        tdra = self.ring_addr(ch, 8 << tlog)
        words = (mode, padr[0] | padr[1] << 8, padr[2] | padr[3] << 8, padr[4] | padr[5] << 8,
                 ladrf & 0xFFFF, (ladrf >> 16) & 0xFFFF, (ladrf >> 32) & 0xFFFF, ladrf >> 48,
                 rdra & 0xFFFF, rlog << 13 | (rdra >> 16) & 0xFF | (ch.int(0, 0x1F) << 8 if ch.bool(0.1) else 0),
                 tdra & 0xFFFF, tlog << 13 | (tdra >> 16) & 0xFF)
        for i, w in enumerate(words):
            self.w16(iadr + 2 * i, w)
        if ch.bool(0.8):
            self.csr(0, STOP)
            self.csr(1, iadr & 0xFFFE)
            self.csr(2, 0 if ch.bool(0.8) else ch.int(0, 0xFF))
            self.csr(3, ch.choice((4, 4, 0, 7)))
            self.csr(0, ch.choice((INIT, INIT | INEA, INIT | STRT | INEA, INIT | STRT)))

    def _desc_words(self, ch, ring_is_rx):
        buf = self.ring_addr(ch, 0) if ch.bool(0.6) else ch.int(0, 0x7FFF)
        w0 = buf & 0xFFFF
        own = 0x8000 if ch.bool(0.8) else 0
        flags = ch.choice((0x0300, 0x0200, 0x0100, 0x0000, 0x0300, 0x4300, 0x7F00)) if not ring_is_rx else ch.choice((0, 0, 0x7F00))
        w1 = own | flags | ((buf >> 16) & 0xFF)
        w2 = ch.choice(BCNT_RAW) if ch.bool(0.7) else ch.int(0, 0xFFFF)
        w3 = ch.int(0, 0xFFFF) if ch.bool(0.3) else 0
        return w0, w1, w2, w3

    def a_descriptor(self, ch):
        """Set one descriptor of the chip's current RX or TX ring (or any 8-aligned RAM spot)."""
        rx = ch.bool()
        base, n, idx = self.chip.rx_ring if rx else self.chip.tx_ring
        i = idx if ch.bool(0.5) else ch.int(0, n - 1)
        a = (base + 8 * i) if ch.bool(0.9) else ch.int(0, 0x7FFF) & ~7
        for k, w in enumerate(self._desc_words(ch, rx)):
            self.w16(a + 2 * k, w)

    def a_ring(self, ch):
        """Fill a whole ring with one pattern: driver-like, one looping chain, all OWN|STP
        without ENP (a chain around the ring back to itself), buffers over the ring itself."""
        rx = ch.bool()
        base, n, _ = self.chip.rx_ring if rx else self.chip.tx_ring
        pattern = ch.int(0, 4)
        blen = ch.choice((0, 0xFFF, 1536, 64, 1, 4096))
        for i in range(n):
            if pattern == 0:     # driver-like: separate buffers after the ring
                buf = (base + 8 * n + i * 1536) & 0x7FFF
                flags = 0x0300
            elif pattern == 1:   # every buffer is the ring itself
                buf = base
                flags = 0x0300
            elif pattern == 2:   # one chain looping round the ring (never an ENP)
                buf = (0x4000 + i * 64) & 0x7FFF
                flags = 0x0200 if i == 0 else 0
            elif pattern == 3:   # all start-of-packet, no end: STP-chains that loop
                buf = (0x7F00 + i * 32) & 0xFFFF
                flags = 0x0200
            else:
                buf = ch.int(0, 0xFFFFFF)
                flags = ch.choice((0x0300, 0x0200, 0x0100, 0))
            w2 = (-blen) & 0xFFFF if blen not in (0, 0xFFF) else (0xF000 | blen)
            if rx:
                flags = 0
            words = (buf & 0xFFFF, 0x8000 | flags | ((buf >> 16) & 0xFF), w2, 0)
            for k, w in enumerate(words):
                self.w16(base + 8 * i + 2 * k, w)

    def a_frame(self, ch):
        size = ch.choice((0, 1, 13, 14, 59, 60, 63, 64, 65, 1514, 1515, 1518, 1519, 1600, 4096,
                          65535)) if ch.bool(0.3) else ch.int(0, 1600)
        has_fcs = ch.bool(0.2)
        frame = _frame(ch, self.chip.padr, size)
        if has_fcs and size >= 4 and ch.bool(0.7):
            frame = frame[:-4] + zlib.crc32(frame[:-4]).to_bytes(4, "little")
        self.offers += 1
        self.frames_seen += 1
        st = self.chip.receive(frame, has_fcs=has_fcs)
        if st is None:
            raise InvariantError("receive returned None")

    def a_time(self, ch):
        dt = ch.choice(TIME_STEPS) if ch.bool(0.8) else ch.int(0, 50_000_000)
        if ch.bool(0.01):
            dt = 1_000_000_000
        self.now += dt
        if ch.bool(0.5):
            self.board.advance_to(self.now)
        else:
            # a host that steps deadline by deadline
            for _ in range(64):
                d = self.board.next_deadline()
                if d is None or d > self.now:
                    break
                if d < self.board.now:
                    raise InvariantError(f"deadline {d} before now {self.board.now}")
                self.board.advance_to(d)
            self.board.advance_to(self.now)

    def a_stop_mid_frame(self, ch):
        """Offer a frame (wire timing: it is then in flight) or start a TX, then STOP or INIT."""
        self.ensure_configured()
        self.a_frame(ch)
        if ch.bool():
            self.csr(0, TDMD | INEA)
        if ch.bool():
            self.now += ch.choice((0, 800, 40_000))
            self.board.advance_to(self.now)
        self.csr(0, ch.choice((STOP, STOP | INIT | STRT, INIT)))

    def a_init_running(self, ch):
        self.ensure_configured()
        self.csr(0, ch.choice((INIT, INIT | STRT, INIT | INEA | STRT, STRT, STRT | INEA)))

    def a_tdmd(self, ch):
        self.ensure_configured()
        self.csr(0, TDMD | (INEA if ch.bool(0.7) else 0))

    def a_autoconfig(self, ch):
        """Autoconfig-window writes (they reach the autoconfig logic only while unconfigured)."""
        b = self.board
        off = ch.choice((0x48, 0x4A, 0x4C, 0x4E, 0x49, 0x4B, 0x00, 0x44))
        v = ch.choice((0xE9, 0xE900, 0x20, 0x0, 0xFF, 0xFFFF)) if ch.bool(0.7) else ch.int(0, 0xFFFF)
        if ch.bool():
            b.write8(off, v & 0xFF, now=self.now)
        else:
            b.write16(off, v, now=self.now)

    def a_bus_reset(self, ch):
        self.board.reset()

    def a_driver_open(self, ch):
        """A well-behaved Linux driver brings the card up (so rings hold real frames)."""
        from a2065.drivers import LinuxA2065Driver
        self.ensure_configured()
        if not self.board.configured:
            return
        drv = LinuxA2065Driver(self.board, now=self.now)
        drv.open()
        self.now = max(self.now, self.board.now)
        self.iadr = 0

    def a_snapshot(self, ch):
        """board.snapshot -> bytes -> restore into the same board: state unchanged."""
        before = self.board.snapshot()
        data = snapmod.to_bytes(before)
        self.board.restore(snapmod.from_bytes(data))
        after = self.board.snapshot()
        if snapmod.to_bytes(after) != data:
            raise InvariantError("snapshot round trip changed the state")
        if type(self.board.ram) is not GuardedRam or self.board.lance.dma is not self.dma:
            raise InvariantError("restore replaced the RAM or the DMA port")

    # invariants -------------------------------------------------------------------------------
    def check(self, ops_before: int, polls_before: int) -> None:
        b = self.board
        chip = b.lance
        c = chip.counters
        if b.ram is not self.ram or len(self.ram) != RAM_SIZE:
            raise InvariantError(f"RAM replaced or resized ({len(b.ram)} bytes)")
        if chip.dma is not self.dma:
            raise InvariantError("DMA port replaced")
        csr0 = chip.csr0
        want = bool(csr0 & INTR) and bool(csr0 & INEA)
        if chip.irq_asserted != want or b.irq_asserted != want:
            raise InvariantError(f"IRQ line {b.irq_asserted}/{chip.irq_asserted} but CSR0={csr0:#06x}")
        if self.edges and self.edges[-1] != b.irq_asserted:
            raise InvariantError("last IRQ edge seen by the host differs from the line")
        if not chip.counters_balanced():
            raise InvariantError(f"RX counters do not add up: {c}")
        if c.rx_offered != self.offers + c.tx_loopback:
            raise InvariantError(f"offered {c.rx_offered} != ours {self.offers} + loopback {c.tx_loopback}")
        if c.tx_errors != c.tx_lcar + c.tx_rtry + c.tx_buff:
            raise InvariantError(f"tx_errors {c.tx_errors} != lcar+rtry+buff ({c})")
        if c.rx_in_flight not in (0, 1):
            raise InvariantError(f"rx_in_flight {c.rx_in_flight}")
        for name, v in vars(c).items():
            if v < 0:
                raise InvariantError(f"counter {name} negative: {v}")
        d = chip.next_deadline()
        if d is not None and d < chip.now:  # an event in the past that advance_to did not run
            raise InvariantError(f"deadline {d} is before now {chip.now}")
        if self.counting:
            ops = self.dma.ops - ops_before
            polls = c.polls - polls_before
            if ops > WALK_BOUND * (polls + 2 + 2 * (c.tx_loopback > 0)):
                raise InvariantError(f"{ops} DMA operations in one step ({polls} polls): unbounded walk?")
            if ops > self.max_ops_step:
                self.max_ops_step = ops


def new_world(seed: int, episode: int):
    rng = random.Random(f"a2065-guest/{seed}/{episode}")
    ch = RandomChooser(rng)
    w = World(ch, counting=ch.bool(), timing=ch.choice(("fast", "wire")),
              variant=ch.choice(("commodore", "ameristar")))
    start = ch.int(0, 3)
    if start >= 1:
        w.ensure_configured()
    if start == 2:
        w.a_driver_open(ch)
    elif start == 3:
        w.ram[:] = GuardedRam(ch.bytes(RAM_SIZE))  # garbage everywhere, then INIT on it
        w.csr(0, STOP)
        w.csr(1, 0)
        w.csr(2, 0)
        w.csr(0, INIT | STRT | INEA)
    return w


_NAMES = [a for a, _ in ACTIONS]
_WEIGHTS = [wt for _, wt in ACTIONS]


def run_episode(seed: int, episode: int, steps: int, *, trace=None) -> dict:
    """Run one episode; raises InvariantError (or any escaping exception) with context."""
    w = new_world(seed, episode)
    rng = w.ch.r
    kinds = rng.choices(_NAMES, weights=_WEIGHTS, k=steps)
    for i, kind in enumerate(kinds):
        ops0 = w.dma.ops if w.counting else 0
        polls0 = w.chip.counters.polls
        if trace:
            trace(f"step {i}: {kind} now={w.now} csr0={w.chip.csr0:#06x}")
        try:
            w.act(kind)
            w.check(ops0, polls0)
        except BaseException as e:  # noqa: BLE001 - re-raised with where it happened
            if isinstance(e, KeyboardInterrupt):
                raise
            raise CampaignFailure(seed, episode, i, kind, e) from e
        w.steps += 1
    c = w.chip.counters
    return {"steps": w.steps, "max_ops_step": w.max_ops_step, "rx_offered": c.rx_offered,
            "rx_delivered": c.rx_delivered, "tx_frames": c.tx_frames, "sent": w.sent,
            "polls": c.polls, "dma_bytes": w.dma.bytes if w.counting else 0,
            "timing": w.chip.timing, "counting": w.counting}


class CampaignFailure(Exception):
    def __init__(self, seed, episode, step, kind, exc):
        self.seed, self.episode, self.step, self.kind, self.exc = seed, episode, step, kind, exc
        super().__init__(f"seed {seed} episode {episode} step {step} ({kind}): "
                         f"{type(exc).__name__}: {exc}  -- replay: python3 -m tools.campaign_guest "
                         f"--seed {seed} --episode {episode} --verbose")


def rss_kb() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:  # pragma: no cover
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(seed: int, steps: int, *, episode_steps: int = 2000, first_episode: int = 0,
        progress=None, keep_going: bool = False) -> dict:
    """Run `steps` steps in episodes of `episode_steps`; returns the figures."""
    t0 = time.monotonic()
    totals = {"steps": 0, "episodes": 0, "max_ops_step": 0, "rx_offered": 0, "rx_delivered": 0,
              "tx_frames": 0, "sent": 0, "polls": 0, "dma_bytes": 0, "failures": []}
    rss = []
    ep = first_episode
    while totals["steps"] < steps:
        n = min(episode_steps, steps - totals["steps"])
        try:
            r = run_episode(seed, ep, n)
        except CampaignFailure as f:
            totals["failures"].append(str(f))
            print(f"FAIL {f}", file=sys.stderr, flush=True)
            if not keep_going:
                raise
            r = {"steps": f.step}
        for k in ("steps", "rx_offered", "rx_delivered", "tx_frames", "sent", "polls", "dma_bytes"):
            totals[k] += r.get(k, 0)
        totals["max_ops_step"] = max(totals["max_ops_step"], r.get("max_ops_step", 0))
        totals["episodes"] += 1
        ep += 1
        if totals["episodes"] % 50 == 0:
            rss.append(rss_kb())
            if progress:
                progress(totals, time.monotonic() - t0)
    totals["seconds"] = round(time.monotonic() - t0, 1)
    totals["steps_per_second"] = int(totals["steps"] / max(totals["seconds"], 1e-9))
    totals["rss_kb_first_last"] = [rss[0], rss[-1]] if rss else [rss_kb(), rss_kb()]
    totals["seed"] = seed
    return totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--episode-steps", type=int, default=2000)
    ap.add_argument("--first-episode", type=int, default=0)
    ap.add_argument("--episode", type=int, help="replay just this episode (with --verbose: trace)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--keep-going", action="store_true", help="record failures and continue")
    ap.add_argument("--report", help="write the figures as JSON here")
    a = ap.parse_args(argv)
    if a.episode is not None:
        tr = (lambda s: print(s, file=sys.stderr)) if a.verbose else None
        try:
            r = run_episode(a.seed, a.episode, a.episode_steps, trace=tr)
        except CampaignFailure as f:
            print(f"FAIL {f}", file=sys.stderr)
            raise f.exc
        print(json.dumps(r))
        return 0

    def progress(t, secs):
        print(f"[guest] {t['steps']:,} steps, {t['episodes']} episodes, {secs:.0f} s, "
              f"{t['steps'] / max(secs, 1e-9):.0f} steps/s, rss {rss_kb()} kB, "
              f"failures {len(t['failures'])}", file=sys.stderr, flush=True)

    try:
        r = run(a.seed, a.steps, episode_steps=a.episode_steps, first_episode=a.first_episode,
                progress=progress, keep_going=a.keep_going)
    except CampaignFailure as f:
        print(f"FAIL {f}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=1))
    if a.report:
        Path(a.report).write_text(json.dumps(r, indent=1) + "\n")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
