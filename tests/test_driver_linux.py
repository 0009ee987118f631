"""Driver-sequence tests: the Linux a2065 driver (a2065/drivers/pydriver.py) against the board and chip.

Replays at register and RAM level how Linux brings the card up, transmits, takes RX/TX
interrupts, changes the multicast list and recovers from the 5 s watchdog, as reference section
10 describes, and asserts CSR values, descriptor contents, IRQ edges and frames on the wire.

The helpers at the top (Rig, RecordingBus, frame builders) are also imported by
test_driver_netbsd.py and test_lance_statemachine.py.
"""
from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings, strategies as st

from a2065 import A2065
from lance.testing import fcs  # noqa: F401  (re-exported for the other driver tests)
from a2065.drivers import (C0, DriverHang, LinuxA2065Driver, NetBSDLeDriver, R1, T1, T3,
                          ladrf_bit, ladrf_for)

STOP, STRT, INIT, IDON, INEA, TDMD = C0.STOP, C0.STRT, C0.INIT, C0.IDON, C0.INEA, C0.TDMD
IDLE_RUNNING = 0x0073  # INEA|RXON|TXON|STRT|INIT (ref: L-a2065 comment, section 3)
OTHER = bytes.fromhex("020000000001")
STRANGER = bytes.fromhex("020000000099")
BCAST = b"\xff" * 6
SECOND = 1_000_000_000


# ---------------------------------------------------------------------------------------------
# helpers shared with the other driver test files
# ---------------------------------------------------------------------------------------------
def frame(dst: bytes, length: int = 60, *, src: bytes = OTHER, ethertype: int = 0x88B5,
          seed: int = 0) -> bytes:
    """An Ethernet frame without FCS of ``length`` bytes (>= 14), payload a counting pattern."""
    hdr = bytes(dst) + bytes(src) + ethertype.to_bytes(2, "big")
    body = bytes((seed + i) & 0xFF for i in range(max(0, length - 14)))
    return (hdr + body)[:length]


def group_with_other_bit(bit: int, *, start: int = 1) -> bytes:
    """A multicast address whose LADRF bit differs from ``bit``."""
    for n in range(start, start + 1000):
        g = bytes([0x01, 0x00, 0x5E, 0, (n >> 8) & 0x7F, n & 0xFF])
        if ladrf_bit(g) != bit:
            return g
    raise AssertionError("no address found")


class RecordingBus:
    """Passes every access to the board and records register accesses (and optionally RAM
    writes) as ("w"|"r", "RAP"|"RDP"|offset, value). Anything else is delegated."""

    REGS = {0x4000: "RDP", 0x4002: "RAP"}

    def __init__(self, board, record_ram: bool = False):
        self._board = board
        self.log: list = []
        self.record_ram = record_ram
        self.after_write = None   # hook(offset, width, value) run after every write

    def __getattr__(self, name):
        return getattr(self._board, name)

    def _note(self, kind, offset, value, width):
        name = self.REGS.get(offset & 0xFFFE)
        if name is not None:
            self.log.append((kind, name, value))
        elif self.record_ram and kind == "w":
            self.log.append((f"w{width}", offset, value))

    def read8(self, offset, **kw):
        return self._board.read8(offset, **kw)

    def read16(self, offset, **kw):
        v = self._board.read16(offset, **kw)
        self._note("r", offset, v, 16)
        return v

    def read32(self, offset, **kw):
        return (self.read16(offset, **kw) << 16) | self.read16(offset + 2)

    def write8(self, offset, value, **kw):
        self._board.write8(offset, value, **kw)
        self._note("w", offset, value, 8)
        if self.after_write:
            self.after_write(offset, 8, value)

    def write16(self, offset, value, **kw):
        self._board.write16(offset, value, **kw)
        self._note("w", offset, value, 16)
        if self.after_write:
            self.after_write(offset, 16, value)

    def write32(self, offset, value, **kw):
        self._board.write32(offset, value, **kw)
        self._note("w", offset, value, 32)
        if self.after_write:
            self.after_write(offset, 32, value)

    def regs(self):
        return [e for e in self.log if e[1] in ("RAP", "RDP")]

    def clear(self):
        self.log.clear()


class Rig:
    """A configured board + a driver, recording IRQ edges and frames on the wire."""

    def __init__(self, driver_cls=LinuxA2065Driver, *, timing: str = "fast", open: bool = True,
                 record_ram: bool = False, start_ns: int | None = None, **driver_kw):
        self.wire: list = []    # (frame with FCS, t_ns)
        self.edges: list = []   # (level, t_ns)
        self.link_up = True
        self.board = A2065(timing=timing, irq=self._irq, transmit=self._tx, strict=True)
        self.bus = RecordingBus(self.board, record_ram=record_ram)
        if start_ns is not None:
            self.board.advance_to(start_ns)
            driver_kw.setdefault("now", start_ns)
        self.drv = driver_cls(self.bus, **driver_kw)
        if open:
            self.drv.open()

    @property
    def chip(self):
        return self.board.lance

    def _irq(self, level):
        self.edges.append((bool(level), self.board.lance.now))

    def _tx(self, data, t_ns):
        self.wire.append((bytes(data), t_ns))
        return self.link_up

    def offer(self, data: bytes, *, now: int | None = None):
        if now is not None:
            self.board.advance_to(now)
        return self.chip.receive(bytes(data))

    def offer_with_fcs(self, data: bytes):
        return self.chip.receive(bytes(data), has_fcs=True)

    def csr(self, n: int) -> int:
        """Read CSRn from the side (not through the driver's bus log); leaves RAP=0."""
        b = self.board
        b.write16(0x4002, n)
        v = b.read16(0x4000)
        b.write16(0x4002, 0)
        return v

    def word(self, lance_addr: int) -> int:
        o = lance_addr & 0x7FFF
        return (self.board.ram[o] << 8) | self.board.ram[o + 1]

    def words(self, lance_addr: int, n: int = 4) -> list:
        return [self.word(lance_addr + 2 * i) for i in range(n)]

    def ram(self, lance_addr: int, n: int) -> bytes:
        o = lance_addr & 0x7FFF
        return bytes(self.board.ram[o:o + n])

    def rising(self) -> int:
        return sum(1 for lvl, _ in self.edges if lvl)


def padded(data: bytes) -> bytes:
    return data + bytes(max(0, 60 - len(data)))


# ---------------------------------------------------------------------------------------------
# bring-up
# ---------------------------------------------------------------------------------------------
def _one_init(csr0_after_init):
    """The register trace of one Linux STOP/CSR1-3/INIT/poll/IDON/INEA|STRT sequence."""
    return [
        ("w", "RAP", 0), ("w", "RDP", STOP),
        ("w", "RAP", 1), ("w", "RDP", 0x8000),
        ("w", "RAP", 2), ("w", "RDP", 0x0000),
        ("w", "RAP", 3), ("w", "RDP", 0x0004),
        ("w", "RAP", 0),
        ("w", "RAP", 0), ("w", "RDP", INIT),
        ("r", "RDP", csr0_after_init),   # the poll finds IDON on its first read
        ("r", "RDP", csr0_after_init),   # the driver's ERR check after the loop
        ("w", "RDP", IDON),
        ("w", "RDP", INEA | STRT),
    ]


def test_linux_open_writes_stop_csr1_csr2_csr3_init_and_finds_idon_on_the_first_poll_read():
    rig = Rig(open=False)
    rig.drv.open()
    # IDON|INTR|INIT: INIT reads back 1, IDON raises INTR (INEA still 0) (ref: section 3, 8)
    expected = _one_init(0x0181)
    # open, then the stack's set_rx_mode does the same full sequence again
    assert rig.bus.regs() == expected + expected
    assert rig.drv.init_poll_reads == 1 <= 100


def test_linux_open_leaves_csr0_idle_running_0x0073_without_an_interrupt_edge():
    rig = Rig()
    assert rig.csr(0) == IDLE_RUNNING
    assert rig.edges == []
    assert not rig.board.irq_asserted


def test_linux_open_builds_the_init_block_at_0x8000_with_the_mac_bytes_swapped_in_each_word():
    rig = Rig()
    mac = rig.board.mac
    ib = rig.words(0x8000, 12)
    assert ib[0] == 0                                   # MODE
    assert ib[1:4] == [mac[1] << 8 | mac[0], mac[3] << 8 | mac[2], mac[5] << 8 | mac[4]]
    assert rig.ram(0x8002, 6) == bytes([mac[1], mac[0], mac[3], mac[2], mac[5], mac[4]])
    assert ib[4:8] == [0, 0, 0, 0]                      # LADRF
    assert ib[8:12] == [0x8018, 0x8000, 0x8098, 0x4000]  # RDRA, RLEN 4, TDRA, TLEN 2


def test_linux_rings_hold_16_owned_rx_descriptors_and_4_idle_tx_descriptors():
    rig = Rig()
    for i in range(16):
        assert rig.words(0x8018 + 8 * i) == [(0x80B8 + 1544 * i) & 0xFFFF, 0x8000, 0xF9F8, 0]
    for i in range(4):
        assert rig.words(0x8098 + 8 * i) == [(0xE138 + 1544 * i) & 0xFFFF, 0x0000, 0xF000, 0]


def test_linux_writes_a_harmless_fifth_tx_descriptor_over_rx_buffer_zero():
    rig = Rig()
    assert rig.words(0x80B8) == [0xF958, 0, 0xF000, 0]
    f = frame(rig.board.mac, 100)
    rig.offer(f)
    rig.drv.service()
    assert list(rig.drv.received) == [f]


def test_linux_init_fails_cleanly_if_the_board_is_unconfigured_and_never_answers():
    class DeadBus:
        configured = True
        mac = bytes(6)

        def read16(self, off, **kw):
            return 0

        read8 = read32 = read16

        def write16(self, off, v, **kw):
            pass

        write8 = write32 = write16

    drv = LinuxA2065Driver(DeadBus())
    with pytest.raises(Exception, match="unopened after 100 reads"):
        drv.open()


# ---------------------------------------------------------------------------------------------
# transmit
# ---------------------------------------------------------------------------------------------
def test_linux_transmit_pads_to_60_bytes_and_the_chip_appends_the_fcs():
    rig = Rig()
    short = frame(OTHER, 42)
    assert rig.drv.send(short)
    assert [f for f, _ in rig.wire] == [padded(short) + fcs(padded(short))]
    assert len(rig.wire[0][0]) == 64


def test_linux_transmit_interrupt_reads_csr0_0x02f3_and_0x0073_after_the_acks():
    rig = Rig()
    rig.drv.send(frame(OTHER, 100))
    assert rig.csr(0) == 0x02F3          # ERR=0 TINT INTR INEA RXON TXON STRT INIT (L-a2065)
    assert rig.board.irq_asserted
    rig.drv.service()
    assert rig.csr(0) == IDLE_RUNNING
    assert not rig.board.irq_asserted
    assert [lvl for lvl, _ in rig.edges] == [True, False]


def test_linux_tx_descriptor_is_returned_with_own_clear_and_the_driver_clears_stp_enp_on_reap():
    rig = Rig()
    rig.drv.send(frame(OTHER, 200))
    tmd = rig.words(0x8098)
    assert tmd[1] == (T1.STP | T1.ENP) << 8       # OWN cleared by the chip, no error bits, HADR 0
    assert tmd[2] == (-200) & 0xFFFF | 0xF000      # BCNT untouched
    assert tmd[3] == 0                             # TMD3: no errors on a collision-free wire
    rig.drv.service()
    assert rig.words(0x8098)[1] == 0
    assert rig.drv.counters.tx_frames == 1


def test_linux_send_refuses_the_fourth_frame_while_three_are_in_flight_in_wire_timing():
    rig = Rig(timing="wire", start_ns=SECOND)
    assert [rig.drv.send(frame(OTHER, 1514, seed=i)) for i in range(4)] == [True, True, True, False]
    assert rig.drv.counters.tx_busy == 1
    rig.drv.service(now=rig.board.now + 10_000_000)
    assert rig.drv.counters.tx_frames == 3
    assert rig.drv.send(frame(OTHER, 60))


def test_linux_transmit_buffer_error_makes_the_driver_stop_and_reinitialise():
    rig = Rig()
    # A frame without ENP whose next descriptor is not owned: BUFF|UFLO, TXON off (ref: s.5).
    d = 0x8000 + (0x8098 & 0x7FFF)
    rig.board.write16(d + 4, (-100) & 0xFFFF | 0xF000)
    rig.board.write8(d + 2, T1.OWN | T1.STP)
    rig.drv.tx_new = 1
    rig.board.write16(0x4000, INEA | TDMD)
    assert rig.words(0x8098)[3] & (T3.BUFF | T3.UFLO)
    assert not rig.csr(0) & C0.TXON
    rig.drv.service()
    assert rig.drv.counters.tx_errors["fifo"] == 1
    assert rig.drv.counters.resets == 1
    assert rig.csr(0) == IDLE_RUNNING
    assert rig.drv.send(frame(OTHER, 80))
    assert rig.wire[-1][0][:80] == frame(OTHER, 80)


# ---------------------------------------------------------------------------------------------
# receive and the address filter
# ---------------------------------------------------------------------------------------------
def test_linux_unicast_frame_lands_in_one_descriptor_with_stp_enp_and_mcnt_counting_the_fcs():
    rig = Rig()
    f = frame(rig.board.mac, 300)
    assert rig.offer(f).name == "ACCEPTED"
    rmd = rig.words(0x8018)
    assert rmd[1] == (R1.STP | R1.ENP) << 8      # OWN cleared, no errors, HADR 0
    assert rmd[2] == 0xF9F8                      # BCNT untouched
    assert rmd[3] == 304                         # MCNT includes the FCS
    assert rig.ram(0x80B8, 304) == f + fcs(f)    # FCS stored after the data (BSWP=1: in order)
    assert rig.csr(0) & C0.RINT
    rig.drv.service()
    assert list(rig.drv.received) == [f]
    assert rig.words(0x8018) == [0x80B8, 0x8000, 0xF9F8, 0]   # returned: OWN, MCNT 0
    assert rig.drv.rx_new == 1
    assert rig.csr(0) == IDLE_RUNNING


def test_linux_short_host_frames_are_padded_to_60_before_the_fcs():
    rig = Rig()
    f = frame(rig.board.mac, 20)
    rig.offer(f)
    assert rig.words(0x8018)[3] == 64
    rig.drv.service()
    assert list(rig.drv.received) == [padded(f)]


def test_linux_receives_broadcast_and_ignores_unicast_for_other_stations():
    rig = Rig()
    b = frame(BCAST, 64)
    assert rig.offer(frame(STRANGER, 64)).name == "FILTERED"
    assert rig.offer(b).name == "ACCEPTED"
    rig.drv.service()
    assert list(rig.drv.received) == [b]


def test_linux_multicast_hash_accepts_listed_groups_and_filters_groups_on_other_bits():
    g = bytes.fromhex("01005e000001")
    h = 63 - (zlib.crc32(g) >> 26)                 # the reference's equivalent formula
    assert ladrf_bit(g) == h
    words = ladrf_for([g])
    assert words[h >> 4] == 1 << (h & 15) and sum(bin(w).count("1") for w in words) == 1
    other = group_with_other_bit(h)
    rig = Rig(multicast=[g])
    assert rig.words(0x8008, 4) == words
    fg, fo = frame(g, 90), frame(other, 90)
    assert rig.offer(fo).name == "FILTERED"
    assert rig.offer(fg).name == "ACCEPTED"
    rig.drv.service()
    assert list(rig.drv.received) == [fg]


def test_linux_promiscuous_mode_sets_mode_prom_and_receives_frames_for_other_stations():
    rig = Rig(promisc=True)
    assert rig.word(0x8000) == 0x8000
    f = frame(STRANGER, 128)
    assert rig.offer(f).name == "ACCEPTED"
    rig.drv.service()
    assert list(rig.drv.received) == [f]


def test_linux_allmulti_loads_an_all_ones_logical_filter():
    rig = Rig(allmulti=True)
    assert rig.words(0x8008, 4) == [0xFFFF] * 4
    assert rig.offer(frame(group_with_other_bit(0), 70)).name == "ACCEPTED"


def test_linux_full_receive_ring_raises_miss_and_the_driver_drains_and_recovers():
    rig = Rig()
    frames = [frame(rig.board.mac, 100, seed=i) for i in range(17)]
    results = [rig.offer(f).name for f in frames]
    assert results == ["ACCEPTED"] * 16 + ["MISSED"]
    assert rig.csr(0) & (C0.MISS | C0.ERR) == C0.MISS | C0.ERR
    rig.drv.service()
    assert list(rig.drv.received) == frames[:16]
    assert rig.drv.counters.rx_errors["miss"] == 1
    assert rig.csr(0) == IDLE_RUNNING
    assert rig.offer(frames[16]).name == "ACCEPTED"
    rig.drv.service()
    assert rig.drv.received[-1] == frames[16]


def test_linux_receive_ring_wraps_many_times_in_order():
    rig = Rig()
    sent = []
    for i in range(50):
        f = frame(rig.board.mac, 60 + i * 29, seed=i)
        sent.append(f)
        assert rig.offer(f).name == "ACCEPTED"
        if i % 5 == 4:
            rig.drv.service()
    rig.drv.service()
    assert list(rig.drv.received) == sent
    assert rig.drv.rx_new == 50 % 16


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(14, 1514), min_size=1, max_size=20))
def test_linux_frames_that_fit_one_buffer_are_never_chained_so_the_driver_never_hangs(lengths):
    rig = Rig()
    sent = []
    for i, n in enumerate(lengths):
        f = frame(rig.board.mac, n, seed=i)
        if rig.offer(f).name == "ACCEPTED":
            sent.append(padded(f))
        rig.drv.service()              # would raise DriverHang on a chained descriptor
    assert list(rig.drv.received) == sent
    assert len(sent) == len(lengths)
    assert rig.drv.counters.hangs_avoided == 0


def test_linux_driver_raises_driverhang_where_the_real_one_would_spin_on_a_chained_frame():
    class SmallBuffers(LinuxA2065Driver):
        RX_BUF_SIZE = 256   # not what Linux uses: forces the chip to chain a 1000-byte frame

    rig = Rig(SmallBuffers)
    assert rig.offer(frame(rig.board.mac, 1000)).name == "ACCEPTED"
    assert rig.words(0x8018)[1] >> 8 == R1.STP         # first of a chain: no ENP
    with pytest.raises(DriverHang):
        rig.drv.service()
    assert rig.drv.counters.hangs_avoided == 1


# ---------------------------------------------------------------------------------------------
# multicast change, watchdog
# ---------------------------------------------------------------------------------------------
def test_linux_multicast_change_stops_and_fully_reinitialises_the_chip():
    rig = Rig()
    g = bytes.fromhex("01005e7f0001")
    rig.offer(frame(rig.board.mac, 80))
    rig.drv.service()
    assert rig.drv.rx_new == 1
    rig.bus.clear()
    rig.drv.set_multicast([g])
    assert rig.bus.regs() == _one_init(0x0181)
    assert rig.drv.rx_new == 0 and rig.drv.counters.resets == 1
    assert rig.words(0x8008, 4) == ladrf_for([g])
    assert rig.csr(0) == IDLE_RUNNING
    f = frame(g, 80)
    assert rig.offer(f).name == "ACCEPTED"
    assert rig.words(0x8018)[1] >> 8 == R1.STP | R1.ENP    # the chip rewound to descriptor 0
    rig.drv.service()
    assert rig.drv.received[-1] == f


def test_linux_multicast_change_waits_until_outstanding_transmits_are_reaped():
    rig = Rig(timing="wire", start_ns=SECOND)
    rig.drv.send(frame(OTHER, 1514))
    g = bytes.fromhex("01005e000042")
    rig.drv.set_multicast([g])
    assert rig.drv.multicast_pending and rig.drv.counters.resets == 0
    t = rig.board.now + 2_000_000
    rig.drv.service(now=t)             # TX completes and is reaped
    rig.drv.service(now=t)             # the retried set_multicast now runs
    assert not rig.drv.multicast_pending
    assert rig.drv.counters.resets == 1
    assert rig.words(0x8008, 4) == ladrf_for([g])
    assert len(rig.wire) == 1


def test_linux_watchdog_resets_the_card_5_seconds_after_the_queue_stopped_and_it_works_again():
    rig = Rig(start_ns=SECOND)
    rig.board.write16(0x4000, STOP)        # the chip dies behind the driver's back
    for i in range(3):
        assert rig.drv.send(frame(OTHER, 100, seed=i))
    assert rig.drv.queue_stopped and not rig.wire
    rig.drv.service(now=rig.board.now + 4 * SECOND)
    assert rig.drv.counters.timeouts == 0
    rig.drv.service(now=rig.board.now + 1 * SECOND)
    assert rig.drv.counters.timeouts == 1 and rig.drv.counters.resets == 1
    assert rig.csr(0) == IDLE_RUNNING
    f = frame(OTHER, 100, seed=9)
    assert rig.drv.send(f)
    assert rig.wire[-1][0] == f + fcs(f)


def test_linux_close_stops_the_chip():
    rig = Rig()
    rig.drv.close()
    assert rig.csr(0) == STOP
    assert rig.offer(frame(rig.board.mac, 60)).name == "RX_OFF"


# ---------------------------------------------------------------------------------------------
# wire timing with emulated time advanced explicitly
# ---------------------------------------------------------------------------------------------
def test_linux_wire_timing_raises_the_receive_interrupt_only_after_the_frame_has_arrived():
    rig = Rig(timing="wire", start_ns=SECOND)
    t0 = rig.board.now
    f = frame(rig.board.mac, 1514)
    assert rig.offer(f).name == "ACCEPTED"
    assert rig.drv.service(now=t0) == 0 and not rig.drv.received
    wire_ns = (1518 + 8) * 800
    rig.drv.service(now=t0 + wire_ns + 9_600)
    assert list(rig.drv.received) == [f]
    rise = [t for lvl, t in rig.edges if lvl]
    assert len(rise) == 1 and t0 + wire_ns <= rise[0] <= t0 + wire_ns + 9_600


def test_linux_wire_timing_transmits_complete_after_their_wire_time_and_in_order():
    rig = Rig(timing="wire", start_ns=SECOND)
    t0 = rig.board.now
    frames = [frame(OTHER, 1514, seed=i) for i in range(3)]
    for f in frames:
        rig.drv.send(f)
    assert rig.drv.counters.tx_frames == 0
    rig.drv.service(now=t0 + 3 * ((1518 + 8) * 800 + 9_600))
    assert rig.drv.counters.tx_frames == 3
    assert [w for w, _ in rig.wire] == [f + fcs(f) for f in frames]
    times = [t for _, t in rig.wire]
    assert all(b - a >= (1518 + 8) * 800 for a, b in zip(times, times[1:]))


def test_linux_wire_timing_serves_a_burst_of_64_byte_frames_at_the_wire_rate():
    rig = Rig(timing="wire", start_ns=SECOND)
    t = rig.board.now
    period = (64 + 8) * 800 + 9_600        # 67.2 us (ref: section 9)
    sent = []
    for i in range(40):
        f = frame(rig.board.mac, 60, seed=i)
        rig.board.advance_to(t)
        assert rig.offer(f).name == "ACCEPTED"
        sent.append(f)
        t += period
        if i % 8 == 7:
            rig.drv.service(now=t)
    rig.drv.service(now=t + period)
    assert list(rig.drv.received) == sent
    assert rig.drv.counters.rx_errors_total == 0


# ---------------------------------------------------------------------------------------------
# error paths the handler must acknowledge
# ---------------------------------------------------------------------------------------------
def test_linux_handler_acks_babble_from_an_oversized_transmit_and_keeps_running():
    rig = Rig()
    big = frame(OTHER, 1540)                 # fits the 1544-byte buffer, 1544 on the wire
    assert rig.drv.send(big)
    assert rig.wire[0][0] == big + fcs(big)  # babble still goes out (ref: section 3 BABL)
    assert rig.csr(0) & (C0.BABL | C0.ERR) == C0.BABL | C0.ERR
    rig.drv.service()
    assert rig.drv.counters.tx_errors["babl"] == 1
    assert rig.drv.counters.tx_frames == 1
    assert rig.csr(0) == IDLE_RUNNING
    assert not rig.board.irq_asserted


def test_linux_lost_carrier_sets_lcar_and_err_and_the_driver_counts_it_without_resetting():
    rig = Rig()
    rig.link_up = False
    assert rig.drv.send(frame(OTHER, 100))
    tmd = rig.words(0x8098)
    assert tmd[1] >> 8 == T1.ERR | T1.STP | T1.ENP
    assert tmd[3] == T3.LCAR
    rig.drv.service()
    assert rig.drv.counters.tx_errors["carrier"] == 1
    assert rig.drv.counters.resets == 0 and rig.drv.counters.tx_frames == 0
    assert rig.csr(0) == IDLE_RUNNING


def test_linux_frame_with_a_bad_fcs_is_stored_with_err_crc_and_counted_not_delivered():
    rig = Rig()
    f = frame(rig.board.mac, 100)
    bad = f + bytes(4)
    assert rig.offer_with_fcs(bad).name == "ACCEPTED"
    assert rig.words(0x8018)[1] >> 8 == R1.ERR | R1.CRC | R1.STP | R1.ENP
    good = f + fcs(f)
    assert rig.offer_with_fcs(good).name == "ACCEPTED"
    rig.drv.service()
    assert rig.drv.counters.rx_errors["crc"] == 1
    assert list(rig.drv.received) == [f]
    assert rig.csr(0) == IDLE_RUNNING


def test_linux_builds_the_init_block_and_rings_after_csr3_and_before_init():
    rig = Rig(open=False, record_ram=True)
    rig.drv.open()
    log = rig.bus.log
    csr3 = log.index(("w", "RDP", 0x0004))
    init = log.index(("w", "RDP", INIT))
    ram_writes = [i for i, e in enumerate(log) if e[0] in ("w8", "w16", "w32") and e[1] >= 0x8000]
    assert [e[1] for e in log if e[0] == "w8" and e[1] < 0x8000] == [0x4A, 0x48]   # autoconfig
    first_init_writes = [i for i in ram_writes if i < init]
    assert first_init_writes and all(csr3 < i for i in first_init_writes)
    # the OWN byte of every RX descriptor is written as a single byte (rmd1_bits)
    own_bytes = {e[1] for e in log[:init] if e[0] == "w8" and e[2] == R1.OWN}
    assert own_bytes == {0x8000 + ((0x8018 + 8 * i + 2) & 0x7FFF) for i in range(16)}


def test_a_frame_queued_without_tdmd_goes_out_at_the_next_1_6_ms_poll():
    rig = Rig(start_ns=SECOND)
    now = rig.board.now
    poll = rig.board.next_deadline()
    assert poll is not None and now < poll <= now + 1_600_000
    d = 0x8000 + (0x8098 & 0x7FFF)
    f = frame(OTHER, 100)
    rig.board.ram[(0xE138 & 0x7FFF):(0xE138 & 0x7FFF) + 100] = f
    rig.board.write16(d + 4, (-100) & 0xFFFF | 0xF000)
    rig.board.write8(d + 2, T1.OWN | T1.STP | T1.ENP)     # no TDMD
    rig.drv.tx_new = 1
    rig.board.advance_to(poll - 1)
    assert rig.wire == []
    rig.board.advance_to(poll)
    assert rig.wire == [(f + fcs(f), poll)]
    rig.drv.service()
    assert rig.drv.counters.tx_frames == 1


def test_linux_with_a_two_entry_receive_ring_misses_the_third_frame():
    rig = Rig(rx_ring_log2=1)
    assert rig.words(0x8010, 2) == [0x8018, 0x2000]     # RLEN 1
    res = [rig.offer(frame(rig.board.mac, 100, seed=i)).name for i in range(3)]
    assert res == ["ACCEPTED", "ACCEPTED", "MISSED"]
    rig.drv.service()
    assert rig.drv.counters.rx_frames == 2 and rig.drv.counters.rx_errors["miss"] == 1
    assert rig.offer(frame(rig.board.mac, 100)).name == "ACCEPTED"


def test_linux_send_refuses_a_frame_larger_than_its_transmit_buffer():
    rig = Rig()
    assert not rig.drv.send(bytes(1545))
    assert rig.drv.counters.tx_errors["too_long"] == 1 and rig.wire == []
    assert rig.words(0x8098)[1] == 0


@pytest.mark.parametrize("driver_cls", [LinuxA2065Driver, NetBSDLeDriver])
def test_init_completes_within_the_first_poll_read_in_wire_timing_too(driver_cls):
    rig = Rig(driver_cls, timing="wire", start_ns=SECOND)
    assert rig.drv.init_poll_reads == 1
    assert rig.csr(0) == IDLE_RUNNING and rig.edges == []
