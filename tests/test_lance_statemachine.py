"""A hypothesis state machine driving the card the way the two drivers do, mixed with frame
arrivals, time steps, re-opens, STOP mid-frame and INIT while running.

The chip's DMA port is wrapped so every write the chip makes is checked when it happens:

* it writes only descriptors it owns (OWN=1 in RAM at that moment), only word 1 (RMD1/TMD1)
  and word 3 (MCNT/TMD3), never sets OWN and never changes HADR;
* frame data goes only into the buffer of a receive descriptor it owns, never into the rings or
  the init block;
* when it closes a frame (ENP) MCNT equals the bytes it stored for that frame (FCS included),
  and a single-buffer frame carries a correct FCS.

After every step: the IRQ line equals CSR0.INTR && INEA and the board's irq callback saw edges
only; offered == delivered + filtered + missed + dropped (+ in flight) with the chip's counters
and with our own count of offers; the filter decision matches the reference's rules applied to
the init block the chip loaded; every frame the driver handed up is one that was accepted, in
order; and the Linux driver never meets a chained descriptor (DriverHang).

Default run is bounded by the ``ci`` profile; HYPOTHESIS_PROFILE=thorough runs more and longer.
"""
from __future__ import annotations

import os
import zlib

from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from a2065 import A2065
from a2065.drivers import C0, DriverHang, LinuxA2065Driver, NetBSDLeDriver, ladrf_bit
from lance import Am7990, RamDma

from test_driver_linux import BCAST, OTHER, STRANGER, frame, padded

_RESIDUE = 0x2144DF1C
GROUPS = [bytes.fromhex(h) for h in ("01005e000001", "01005e0000fb", "333300000001",
                                     "01005e7f1234", "0180c2000000")]
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
STEPS = 120 if THOROUGH else 40


def swap_pairs(data: bytes, n: int) -> bytes:
    """The first n bytes software reads when a frame ``data`` was stored with BSWP=0: frame
    byte i sits at address (buffer + i) ^ 1 (ref: section 1 "Byte order")."""
    return bytes(data[k ^ 1] for k in range(n))


def stored_frame(ram, buf: int, n: int, bswp: bool) -> bytes:
    """The n frame bytes the chip stored at ``buf`` (undoing BSWP=0's pair swap)."""
    if bswp:
        return bytes(ram[buf:buf + n])
    span = bytes(ram[buf:buf + n + 2])
    return bytes(span[k ^ 1] for k in range(n))


class CheckingDma:
    """RamDma that checks every chip write against what the chip owns at that moment."""

    def __init__(self, ram):
        self.inner = RamDma(ram, 0x7FFF)
        self.ram = ram
        self.chip = None
        self.violations: list[str] = []
        self.frame_bytes = 0         # data bytes stored for the frame being received
        self.closed_frames = 0

    # reads pass through
    def read16(self, addr):
        return self.inner.read16(addr)

    def read_desc(self, addr):
        return self.inner.read_desc(addr)

    def read(self, addr, n):
        return self.inner.read(addr, n)

    def _rings(self):
        c = self.chip
        for kind, (base, n, _idx) in (("rx", c.rx_ring), ("tx", c.tx_ring)):
            yield kind, base & 0x7FFF, n

    def _desc_of(self, a):
        for kind, base, n in self._rings():
            if base <= a < base + 8 * n:
                return kind, base + ((a - base) & ~7), ((a - base) & 7) >> 1
        return None

    def _word(self, a):
        return (self.ram[a & 0x7FFF] << 8) | self.ram[(a + 1) & 0x7FFF]

    def write16(self, addr, value):
        a = addr & 0x7FFF
        hit = self._desc_of(a)
        if hit is None:
            self.violations.append(f"word write {value:#06x} at {a:#06x} outside the rings")
        else:
            kind, d, word = hit
            w1 = self._word(d + 2)
            if not w1 & 0x8000:
                self.violations.append(f"{kind} descriptor {d:#06x} word {word} written while "
                                       f"not owned (RMD1/TMD1={w1:#06x}, new {value:#06x})")
            if word in (0, 2):
                self.violations.append(f"{kind} descriptor {d:#06x}: chip wrote word {word}")
            if word == 1:
                if value & 0x8000 and not w1 & 0x8000:
                    self.violations.append(f"{kind} descriptor {d:#06x}: chip set OWN")
                if (value & 0xFF) != (w1 & 0xFF):
                    self.violations.append(f"{kind} descriptor {d:#06x}: HADR changed")
                if kind == "rx" and value & 0x0500:   # ENP or BUFF closes the frame
                    self._close_rx(d, value)
        self.inner.write16(addr, value)

    def _close_rx(self, d, w1):
        if w1 & 0x0100:  # ENP: MCNT is in word 3, written before word 1
            mcnt = self._word(d + 6) & 0xFFF
            # with BSWP=0 the chip stores whole words: an odd frame writes one byte more
            # (its old value kept), so the span may be MCNT + 1
            slack = (0,) if self.chip.csr3 & 4 else (0, 1)
            if self.frame_bytes - mcnt not in slack:
                self.violations.append(f"MCNT {mcnt} != {self.frame_bytes} bytes stored")
            if w1 & 0x0300 == 0x0300 and not w1 & 0x4000:
                buf = ((w1 & 0xFF) << 16 | self._word(d)) & 0x7FFF
                bswp = bool(self.chip.csr3 & 4)
                if zlib.crc32(stored_frame(self.ram, buf, mcnt, bswp)) != _RESIDUE:
                    self.violations.append(f"frame at {buf:#06x} stored with a bad FCS")
        self.frame_bytes = 0
        self.closed_frames += 1

    def write(self, addr, data):
        a = addr & 0x7FFF
        n = len(data)
        ok = False
        base, entries, _ = self.chip.rx_ring
        for i in range(entries):
            d = (base + 8 * i) & 0x7FFF
            w0, w1, w2 = self._word(d), self._word(d + 2), self._word(d + 4)
            buf = (((w1 & 0xFF) << 16) | w0) & 0x7FFF
            blen = (-w2) & 0xFFF or 4096
            if w1 & 0x8000 and buf <= a and a + n <= buf + blen:
                ok = True
                break
        if not ok:
            self.violations.append(f"data write of {n} bytes at {a:#06x} outside an owned "
                                   f"receive buffer")
        iadr = self.chip.iadr & 0x7FFF
        if a < iadr + 24 and iadr < a + n:
            self.violations.append("data write over the init block")
        self.frame_bytes += n
        self.inner.write(addr, data)


def _make_board(timing, edges, wire, checking=True):
    dmas = []

    def factory(ram, *, irq, transmit, timing):
        dma = CheckingDma(ram)
        chip = Am7990(dma, irq=irq, transmit=transmit, timing=timing)
        dma.chip = chip
        dmas.append(dma)
        return chip

    def on_irq(level):
        edges.append(bool(level))

    def on_tx(data, t):
        wire.append(bytes(data))
        return True

    if not checking:   # the board's own RamDma: the chip's fast paths run; checked by RAM diffs
        return A2065(timing=timing, irq=on_irq, transmit=on_tx, strict=True), None
    board = A2065(timing=timing, irq=on_irq, transmit=on_tx, strict=True, chip_factory=factory)
    return board, dmas[0]


def ram_diff_violations(chip, before: bytes, after: bytes) -> list:
    """What a chip-only action changed, checked against what the chip owned before it.

    Used where the chip runs on the board's plain RamDma (its hot paths), so writes cannot be
    intercepted: descriptors changed must have been owned, words 0/2 and HADR unchanged, OWN never
    set; changed data bytes must lie in buffers of receive descriptors owned before."""
    out = []
    if len(after) != len(before):
        return [f"board RAM changed size: {len(before)} -> {len(after)} bytes"]
    if after == before:
        return out
    w = lambda m, a: (m[a & 0x7FFF] << 8) | m[(a + 1) & 0x7FFF]
    claimed = set()
    for kind, (base, n, _i) in (("rx", chip.rx_ring), ("tx", chip.tx_ring)):
        for i in range(n):
            d = (base + 8 * i) & 0x7FFF
            claimed.update(range(d, d + 8))
            if before[d:d + 8] == after[d:d + 8]:
                if kind == "rx" and w(before, d + 2) & 0x8000:
                    buf = ((w(before, d + 2) & 0xFF) << 16 | w(before, d)) & 0x7FFF
                    claimed.update(range(buf, buf + ((-w(before, d + 4)) & 0xFFF or 4096)))
                continue
            b1, a1 = w(before, d + 2), w(after, d + 2)
            if not b1 & 0x8000:
                out.append(f"{kind} descriptor {i} changed while not owned")
            if w(before, d) != w(after, d) or w(before, d + 4) != w(after, d + 4):
                out.append(f"{kind} descriptor {i}: word 0 or 2 changed")
            if (b1 & 0xFF) != (a1 & 0xFF) or (a1 & 0x8000 and not b1 & 0x8000):
                out.append(f"{kind} descriptor {i}: HADR changed or OWN set")
            if kind == "rx" and b1 & 0x8000:
                buf = ((b1 & 0xFF) << 16 | w(before, d)) & 0x7FFF
                claimed.update(range(buf, buf + ((-w(before, d + 4)) & 0xFFF or 4096)))
                if not a1 & 0x8000 and a1 & 0x0300 == 0x0300 and not a1 & 0x4000:
                    mcnt = w(after, d + 6) & 0xFFF
                    if zlib.crc32(stored_frame(after, buf, mcnt, bool(chip.csr3 & 4))) != _RESIDUE:
                        out.append(f"rx descriptor {i}: MCNT {mcnt} does not end at a good FCS")
    changed = [k for k in range(len(after)) if after[k] != before[k] and k not in claimed]
    if changed:
        out.append(f"chip changed {len(changed)} bytes outside owned descriptors/buffers, "
                   f"first at {changed[0]:#06x}")
    return out


class CardMachine(RuleBasedStateMachine):
    driver_cls = LinuxA2065Driver
    timing = "fast"
    checking = True   # False: the board's plain RamDma (chip hot paths), checked by RAM diffs

    @initialize(promisc=st.booleans(), groups=st.sets(st.sampled_from(GROUPS), max_size=3),
                rx_log2=st.sampled_from([4, 4, 2, 1]), tx_log2=st.sampled_from([2, 2, 1]))
    def bring_up(self, promisc, groups, rx_log2, tx_log2):
        self.edges: list = []
        self.wire: list = []
        self.board, self.dma = _make_board(self.timing, self.edges, self.wire, self.checking)
        self.diff_violations: list = []
        self.t = 1_000_000_000
        self.board.advance_to(self.t)
        self.drv = self.driver_cls(self.board, promisc=promisc, multicast=sorted(groups),
                                   now=self.t, rx_ring_log2=rx_log2, tx_ring_log2=tx_log2)
        self.drv.open()
        self.offered = 0
        self.accepted: list[bytes] = []   # frames the chip took (padded), in order
        self.delivered_seen = 0
        self.chip_stopped_behind_driver = False

    @property
    def chip(self):
        return self.board.lance

    # -- what the chip should accept, from the init block it loaded (reference section 6) ---
    def _expect_accept(self, dst: bytes) -> bool:
        c = self.chip
        if c.mode & 0x8000:
            return True
        if not dst[0] & 1:
            return dst == c.padr
        if dst == BCAST:
            return True
        return bool((c.ladrf >> ladrf_bit(dst)) & 1)

    # -- frame arrivals ---------------------------------------------------------------------
    @rule(kind=st.sampled_from(["unicast", "broadcast", "group", "other_group", "stranger"]),
          length=st.one_of(st.integers(0, 1600), st.sampled_from([0, 13, 14, 59, 60, 1514, 1515])),
          group=st.sampled_from(GROUPS), seed=st.integers(0, 255),
          fcs=st.sampled_from(["chip", "chip", "good", "bad"]))
    def arrive(self, kind, length, group, seed, fcs):
        """A frame from the wire: without FCS (the chip pads and appends one), or carrying a
        good or a bad FCS (has_fcs=True)."""
        dst = {"unicast": self.board.mac, "broadcast": BCAST, "group": group,
               "other_group": bytes.fromhex("01000c0000aa"), "stranger": STRANGER}[kind]
        f = frame(dst, max(length, 0), seed=seed) if length >= 14 else (dst + OTHER)[:length]
        has_fcs = fcs != "chip"
        if has_fcs:
            f = f + (zlib.crc32(f).to_bytes(4, "little") if fcs == "good" else b"\xba\xd0\xfc\x5e")
        before = self.chip.counters.rx_delivered
        res = self._chip_only(lambda: self.chip.receive(f, has_fcs=has_fcs)).name
        self.offered += 1
        head = (padded(f) if not has_fcs else f)[:6]
        if res == "FILTERED":
            assert not self._expect_accept(head), f"filter dropped {kind}"
        if res == "ACCEPTED":
            assert len(f) <= (1544 if has_fcs else 1540)   # the model's receive bound
            assert not has_fcs or len(f) >= 64
            assert self._expect_accept(head), f"filter took {kind}"
            whole = f if has_fcs else padded(f) + zlib.crc32(padded(f)).to_bytes(4, "little")
            if fcs != "bad":
                # what the driver will read: BSWP=0 (CSR3 cleared by a STOP and then INIT/STRT
                # written behind the driver's back) stores byte pairs swapped
                bswp = bool(self.chip.csr3 & 4)
                self.accepted.append(whole[:-4] if bswp else swap_pairs(whole, len(whole) - 4))
            if self.timing == "fast":
                assert self.chip.counters.rx_delivered == before + 1
                base, n, idx = self.chip.rx_ring
                d = (base + 8 * ((idx - 1) % n)) & 0x7FFF
                ram = self.board.ram
                mcnt = ((ram[d + 6] << 8) | ram[d + 7]) & 0xFFF
                assert mcnt == (len(f) if has_fcs else len(padded(f)) + 4), "MCNT"
        if res == "TOO_LONG":
            assert len(f) > (1544 if has_fcs else 1540)
        if res == "RUNT":
            assert has_fcs and len(f) < 64

    def _chip_only(self, action):
        """Run an action only the chip takes part in; with the plain board, diff the RAM."""
        if self.checking:
            return action()
        before = bytes(self.board.ram)
        r = action()
        self.diff_violations += ram_diff_violations(self.chip, before, bytes(self.board.ram))
        return r

    # -- driver actions ---------------------------------------------------------------------
    @rule(length=st.integers(0, 1514), seed=st.integers(0, 255))
    def send(self, length, seed):
        self.drv.send(frame(OTHER, length, seed=seed) if length >= 14 else OTHER[:length])

    @rule()
    def service(self):
        self.drv.service(now=self.t)

    @rule(dt=st.one_of(st.integers(0, 3_000_000), st.sampled_from([1_600_000, 5_100_000_000])))
    def time_step(self, dt):
        self.t += dt
        self._chip_only(lambda: self.board.advance_to(self.t))
        self.drv.now = self.t

    @rule(groups=st.sets(st.sampled_from(GROUPS), max_size=3), promisc=st.booleans())
    def set_multicast(self, groups, promisc):
        self.drv.set_multicast(sorted(groups), promisc=promisc)

    @rule(full_reset=st.booleans())
    def reopen(self, full_reset):
        if full_reset:
            self.drv.reset()
        else:
            self.drv.close()
            self.drv.open()
        self.chip_stopped_behind_driver = False

    @rule()
    def stop_mid_frame(self):
        """The chip is stopped behind the driver's back (a frame may be on the wire)."""
        self.board.write16(0x4002, 0)
        self.board.write16(0x4000, C0.STOP)
        self.chip_stopped_behind_driver = True

    @precondition(lambda self: not self.chip.csr0 & C0.STOP)
    @rule()
    def strt_while_running(self):
        """What Linux writes on MERR: STRT again (INEA momentarily 0 until the handler's end).
        Only while running: after a STOP, CSR3 is 0 (BSWP=0, ref: section 3), and STRT without
        a new INIT would store frames byte-pair-swapped -- correct, but no driver does that."""
        self.board.write16(0x4002, 0)
        self.board.write16(0x4000, C0.STRT)
        self.board.write16(0x4000, C0.INEA)

    @rule()
    def init_while_running(self):
        self.board.write16(0x4002, 0)
        self.board.write16(0x4000, C0.INIT | C0.INEA)

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def chip_writes_only_what_it_owns(self):
        if self.dma is not None:
            assert self.dma.violations == [], self.dma.violations[:5]
        assert self.diff_violations == [], self.diff_violations[:5]
        assert len(self.board.ram) == 0x8000

    @invariant()
    def irq_line_is_intr_and_inea_and_changes_by_edges(self):
        csr0 = self.chip.csr0
        level = bool(csr0 & C0.INTR) and bool(csr0 & C0.INEA)
        assert self.board.irq_asserted == level
        assert all(a != b for a, b in zip(self.edges, self.edges[1:]))
        assert (self.edges[-1] if self.edges else False) == level

    @invariant()
    def every_offered_frame_is_accounted_for(self):
        c = self.chip.counters
        assert c.rx_offered == self.offered
        assert c.rx_offered == (c.rx_delivered + c.rx_filtered + c.rx_missed + c.rx_dropped
                                + c.rx_in_flight)

    @invariant()
    def the_driver_hands_up_accepted_frames_in_order(self):
        got = list(self.drv.received)
        # every received frame is an accepted one, in order (a reset may lose some in between)
        it = iter(self.accepted)
        for f in got:
            assert any(f == a for a in it), "driver delivered a frame that was never accepted"
        assert self.drv.counters.hangs_avoided == 0

    @invariant()
    def frames_on_the_wire_carry_their_fcs(self):
        for w in self.wire[self.delivered_seen:]:
            assert len(w) >= 64 and zlib.crc32(w) == _RESIDUE
        self.delivered_seen = len(self.wire)

    def teardown(self):
        # drain: a final service must not hang or raise, and leaves the line low when running
        if hasattr(self, "drv") and self.drv.is_open:
            try:
                self.drv.service(now=self.t)
            except DriverHang:  # pragma: no cover - reported by the invariant above
                raise


def _settings():
    return settings(stateful_step_count=STEPS, deadline=None,
                    max_examples=settings.default.max_examples if THOROUGH else 40)


class LinuxWireMachine(CardMachine):
    timing = "wire"


class LinuxFastHotPathMachine(CardMachine):
    checking = False


class LinuxWireHotPathMachine(CardMachine):
    timing = "wire"
    checking = False


class NetBSDFastMachine(CardMachine):
    driver_cls = NetBSDLeDriver


class NetBSDWireMachine(CardMachine):
    driver_cls = NetBSDLeDriver
    timing = "wire"


TestLinuxFast = CardMachine.TestCase
TestLinuxFast.settings = _settings()
TestLinuxWire = LinuxWireMachine.TestCase
TestLinuxWire.settings = _settings()
TestNetBSDFast = NetBSDFastMachine.TestCase
TestNetBSDFast.settings = _settings()
TestNetBSDWire = NetBSDWireMachine.TestCase
TestNetBSDWire.settings = _settings()
TestLinuxFastHotPath = LinuxFastHotPathMachine.TestCase
TestLinuxFastHotPath.settings = _settings()
TestLinuxWireHotPath = LinuxWireHotPathMachine.TestCase
TestLinuxWireHotPath.settings = _settings()
