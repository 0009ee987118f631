"""Register-level Python drivers for the A2065, written from the reference's section 10.

Two drivers talk to the card the way the two public A2065 drivers do (ref: L-a2065, N-le,
N-lance, N-am), only through a *bus*: an object with ``read8/read16/read32`` and
``write8/write16/write32`` at board offsets (normally a configured :class:`a2065.A2065`; RDP at
0x4000, RAP at 0x4002, RAM at 0x8000-0xFFFF). They are used by the driver-sequence tests, the
benchmarks, the demo and the end-to-end rig, and they double as a check on the emulator: the
Linux driver hangs (in a bounded, detectable way here) if the chip ever hands it a chained receive
descriptor.

* :class:`LinuxA2065Driver` follows ``drivers/net/ethernet/amd/a2065.c`` as the reference
  describes it: its memory layout, the open/reset sequence with the 100-read IDON poll, the
  byte write of ``OWN|STP|ENP`` to the TMD1 high byte, the interrupt handler's acks, the RX loop
  (including its infinite loop on a descriptor without both STP and ENP, raised here as
  :class:`DriverHang`), the TX reap, MERR -> STRT, the 5 s transmit watchdog and the full re-init
  on a multicast change.
* :class:`NetBSDLeDriver` follows NetBSD's amiga ``if_le`` + MI ``lance.c``/``am7990.c``: RAP
  written before every RDP access, descriptors copied as whole 8-byte blocks (so TMD1.OWN lands in
  RAM before TMD2), ``INEA|STRT|IDON`` in one write, and a reset whenever an interrupt finds RXON
  or TXON clear or MERR set.

No code here comes from either operating system; it is written from the facts in
``reference/am7990-a2065.md`` (tags cited as ``# ref: <tag>``).

Usage::

    board = A2065(timing="fast", transmit=lambda frame, t: True)
    drv = LinuxA2065Driver(board, on_receive=print)   # autoconfigures the board at $E90000
    drv.open()                                         # STOP, CSR1-3, rings, INIT, IDON, INEA|STRT
    drv.send(frame)                                    # False when the TX ring is full
    board.lance.receive(frame_for_us)
    drv.service(now=t_ns)                              # runs the handler while INT2 is asserted
    drv.counters.rx_frames, drv.counters.rx_errors["miss"], drv.counters.hangs_avoided

Payload copies go through the bus (``read32``/``write32``) unless ``fast_copy=True`` and the bus
has a ``ram`` bytearray (the board): then frame bytes are sliced directly, which is what a 68k
memcpy does, minus the bus dispatch per word. Registers and descriptors always use the bus.

Time: drivers keep ``now`` (emulated ns, or None). ``service(now)`` catches the board up to
``now`` (``advance_to``) and every bus access then carries ``now=`` so CSR0 reads are current.
"""
from __future__ import annotations

import collections
import dataclasses
import enum
import zlib
from typing import Callable, Iterable, Optional

__all__ = [
    "C0", "R1", "T1", "T3", "CSR0Flags", "RMD1Flags", "TMD1Flags", "TMD3Flags",
    "DriverHang",
    "DriverError",
    "DriverCounters",
    "LinuxA2065Driver",
    "NetBSDLeDriver",
    "autoconfigure",
    "ladrf_for",
    "ladrf_bit",
    "RDP",
    "RAP",
    "RAM_OFFSET",
]

# Board offsets (ref: L-a2065, N-le).
RDP = 0x4000
RAP = 0x4002
RAM_OFFSET = 0x8000
RAM_SIZE = 0x8000


class CSR0Flags(enum.IntFlag):
    """CSR0 bits as the drivers name them (ref: section 3, CSR0 table)."""

    ERR = 0x8000   # BABL|CERR|MISS|MERR
    BABL = 0x4000  # babble
    CERR = 0x2000  # collision error (heartbeat)
    MISS = 0x1000  # missed frame
    MERR = 0x0800  # memory error
    RINT = 0x0400  # receive interrupt
    TINT = 0x0200  # transmit interrupt
    IDON = 0x0100  # initialization done
    INTR = 0x0080  # interrupt flag
    INEA = 0x0040  # interrupt enable
    RXON = 0x0020  # receiver on
    TXON = 0x0010  # transmitter on
    TDMD = 0x0008  # transmit demand
    STOP = 0x0004  # stop
    STRT = 0x0002  # start
    INIT = 0x0001  # initialize


class RMD1Flags(enum.IntFlag):
    """RMD1 high byte (ref: section 5 receive descriptor; byte values as written to rmd1_bits)."""

    OWN = 0x80   # chip owns
    ERR = 0x40   # FRAM|OFLO|CRC|BUFF
    FRAM = 0x20  # framing error
    OFLO = 0x10  # FIFO overflow
    CRC = 0x08   # CRC error
    BUFF = 0x04  # buffer error
    STP = 0x02   # start of packet
    ENP = 0x01   # end of packet


class TMD1Flags(enum.IntFlag):
    """TMD1 high byte (ref: section 5 transmit descriptor)."""

    OWN = 0x80   # chip owns
    ERR = 0x40   # UFLO|LCOL|LCAR|RTRY
    MORE = 0x10  # more than one retry
    ONE = 0x08   # exactly one retry
    DEF = 0x04   # deferred
    STP = 0x02   # start of packet
    ENP = 0x01   # end of packet


class TMD3Flags(enum.IntFlag):
    """TMD3 bits (ref: section 5)."""

    BUFF = 0x8000  # buffer error
    UFLO = 0x4000  # underflow
    LCOL = 0x1000  # late collision
    LCAR = 0x0800  # loss of carrier (Linux: T3_CLOS)
    RTRY = 0x0400  # retry error (Linux: T3_RTY)


def _plain(flags):
    """A class whose attributes are the flag values as plain ints. The drivers' hot paths use
    these: every operation on an ``enum.IntFlag`` builds a new enum object, which made IntFlag
    arithmetic half of the e2e rig's CPU per received frame (.team/notes-driver.md)."""
    return type(flags.__name__[:-5], (), {"__doc__": f"{flags.__doc__} (plain ints)",
                                          **{m.name: int(m.value) for m in flags}})


C0 = _plain(CSR0Flags)
R1 = _plain(RMD1Flags)
T1 = _plain(TMD1Flags)
T3 = _plain(TMD3Flags)

MODE_PROM = 0x8000  # ref: section 4 MODE bit 15
CSR3_BSWP = 0x0004  # ref: section 1 "Byte order"; both drivers write BSWP only
ETH_ZLEN = 60       # ref: L-a2065, N-lance LEMINSIZE: pad to 60, chip adds FCS
ONES = 0xF000       # RMD2/TMD2 bits 15:12 must be ones
WATCHDOG_NS = 5_000_000_000  # ref: section 10, "Timeout 5 s -> full reset" (both drivers)


class DriverError(RuntimeError):
    """The chip did something the real driver treats as fatal (e.g. INIT never finished)."""


class DriverHang(DriverError):
    """The Linux RX loop met a descriptor without both STP and ENP.

    The real driver ``continue``s without advancing or returning the descriptor and spins in its
    interrupt handler forever (ref: section 10, "RX loop"). We count it and raise instead.
    """


@dataclasses.dataclass
class DriverCounters:
    rx_frames: int = 0
    rx_bytes: int = 0
    rx_errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    tx_busy: int = 0          # send() refused: ring full
    collisions: int = 0
    interrupts: int = 0       # handler runs that found INTR set
    not_mine: int = 0         # handler runs that found INTR clear (shared INT2)
    resets: int = 0           # full STOP + re-init after open (timeout, error, multicast)
    inits: int = 0            # every INIT sequence including open
    timeouts: int = 0         # transmit watchdog fired
    hangs_avoided: int = 0    # Linux RX loop would have spun forever

    @property
    def rx_errors_total(self) -> int:
        return sum(self.rx_errors.values())

    @property
    def tx_errors_total(self) -> int:
        return sum(self.tx_errors.values())


def ether_crc_le(data: bytes) -> int:
    """CRC-32, reflected, init 0xFFFFFFFF, no final inversion (Linux ``ether_crc_le``)."""
    return zlib.crc32(data) ^ 0xFFFFFFFF


def ladrf_bit(mac: bytes) -> int:
    """The logical-address-filter bit (0..63) for a multicast address (ref: section 6)."""
    return ether_crc_le(bytes(mac)) >> 26


def ladrf_for(addrs: Iterable[bytes], *, allmulti: bool = False) -> list[int]:
    """The four LADRF words as both drivers compute them: word[h >> 4] |= 1 << (h & 15)."""
    if allmulti:
        return [0xFFFF] * 4
    words = [0, 0, 0, 0]
    for a in addrs:
        h = ladrf_bit(a)
        words[h >> 4] |= 1 << (h & 15)
    return words


def _mac_bytes(mac) -> bytes:
    if isinstance(mac, str):
        mac = bytes(int(x, 16) for x in mac.replace("-", ":").split(":"))
    mac = bytes(mac)
    if len(mac) != 6:
        raise ValueError(f"MAC must be 6 bytes, got {len(mac)}")
    return mac


def autoconfigure(bus, base: int = 0xE90000) -> None:
    """Configure an unconfigured board the way the OS does: low nibble of A23-A16 at $4A, then
    the whole byte at $48 (ref: section 2, Protocol; AROS WriteExpansionByte)."""
    if getattr(bus, "configured", True):
        return
    byte = (base >> 16) & 0xFF
    bus.write8(0x4A, (byte << 4) & 0xF0)
    bus.write8(0x48, byte)


class _Driver:
    """What both drivers share: bus access helpers, time, counters, delivery."""

    name = "driver"
    RX_BUF_SIZE = 1536
    INIT_POLL_LIMIT = 100

    def __init__(self, bus, mac=None, *, rx_ring_log2=4, tx_ring_log2=2, promisc=False,
                 multicast=(), allmulti=False, on_receive: Optional[Callable[[bytes], None]] = None,
                 received_maxlen: Optional[int] = 4096, fast_copy: bool = False,
                 watchdog_ns: int = WATCHDOG_NS, now: Optional[int] = None,
                 autoconfig_base: int = 0xE90000):
        if not (0 <= rx_ring_log2 <= 7 and 0 <= tx_ring_log2 <= 7):
            raise ValueError("ring log2 must be 0..7 (1..128 entries)")
        self.bus = bus
        autoconfigure(bus, autoconfig_base)
        if mac is None:
            mac = getattr(bus, "mac")
        self.mac = _mac_bytes(mac)
        self.rx_log2 = rx_ring_log2
        self.tx_log2 = tx_ring_log2
        self.n_rx = 1 << rx_ring_log2
        self.n_tx = 1 << tx_ring_log2
        self.promisc = bool(promisc)
        self.allmulti = bool(allmulti)
        self.multicast = [_mac_bytes(m) for m in multicast]
        self.on_receive = on_receive
        self.received: collections.deque = collections.deque(maxlen=received_maxlen)
        self.counters = DriverCounters()
        self.now = now
        self.watchdog_ns = watchdog_ns
        self.is_open = False
        self.init_poll_reads = 0   # CSR0 reads the last INIT poll took
        # Payload copies (frame bytes only, never registers or descriptors) may go straight to
        # the board's RAM bytearray when fast_copy is set and the bus has one; on a real Amiga
        # the CPU's memcpy is the same bytes, just slower here through the bus.
        ram = getattr(bus, "ram", None) if fast_copy else None
        self._ram = ram if isinstance(ram, (bytearray, memoryview)) else None
        self._layout()

    # -- bus access ------------------------------------------------------------------------
    # (``now=`` only when the driver has a time: a bus without the keyword still works)
    def r8(self, off):
        now = self.now
        return self.bus.read8(off) if now is None else self.bus.read8(off, now=now)

    def r16(self, off):
        now = self.now
        return self.bus.read16(off) if now is None else self.bus.read16(off, now=now)

    def r32(self, off):
        now = self.now
        return self.bus.read32(off) if now is None else self.bus.read32(off, now=now)

    def w8(self, off, v):
        now = self.now
        if now is None:
            self.bus.write8(off, v & 0xFF)
        else:
            self.bus.write8(off, v & 0xFF, now=now)

    def w16(self, off, v):
        now = self.now
        if now is None:
            self.bus.write16(off, v & 0xFFFF)
        else:
            self.bus.write16(off, v & 0xFFFF, now=now)

    def w32(self, off, v):
        now = self.now
        if now is None:
            self.bus.write32(off, v & 0xFFFFFFFF)
        else:
            self.bus.write32(off, v & 0xFFFFFFFF, now=now)

    def wrap(self, v):
        self.w16(RAP, v)

    def wrdp(self, v):
        self.w16(RDP, v)

    def rrdp(self):
        return self.r16(RDP)

    @staticmethod
    def off(lance_addr: int) -> int:
        """Board offset of a LANCE address (ref: section 1 "LANCE view": LANCE 0x8000+n is
        base+0x8000+n)."""
        return RAM_OFFSET + (lance_addr & 0x7FFF)

    def copy_to_card(self, lance_addr: int, data: bytes) -> None:
        """memcpy into card RAM: long moves, then a word and a byte for the tail."""
        o = self.off(lance_addr)
        n = len(data)
        if self._ram is not None and o - RAM_OFFSET + n <= RAM_SIZE:
            self._ram[o - RAM_OFFSET:o - RAM_OFFSET + n] = data
            return
        i = 0
        mv = memoryview(data)
        while i + 4 <= n:
            self.w32(o + i, int.from_bytes(mv[i:i + 4], "big"))
            i += 4
        if i + 2 <= n:
            self.w16(o + i, int.from_bytes(mv[i:i + 2], "big"))
            i += 2
        if i < n:
            self.w8(o + i, mv[i])

    def copy_from_card(self, lance_addr: int, n: int) -> bytes:
        o = self.off(lance_addr)
        if self._ram is not None and o - RAM_OFFSET + n <= RAM_SIZE:
            return bytes(self._ram[o - RAM_OFFSET:o - RAM_OFFSET + n])
        out = bytearray()
        i = 0
        while i + 4 <= n:
            out += self.r32(o + i).to_bytes(4, "big")
            i += 4
        if i + 2 <= n:
            out += self.r16(o + i).to_bytes(2, "big")
            i += 2
        if i < n:
            out.append(self.r8(o + i))
        return bytes(out)

    # -- time and interrupts ---------------------------------------------------------------
    def _catch_up(self, now):
        if now is not None:
            if self.now is None or now > self.now:
                self.now = now
            adv = getattr(self.bus, "advance_to", None)
            if adv is not None:
                adv(self.now)

    def irq_asserted(self) -> bool:
        v = getattr(self.bus, "irq_asserted", None)
        if v is None:
            return True  # no line to look at: ask the chip (the handler checks INTR)
        return bool(v() if callable(v) else v)

    def service(self, now: Optional[int] = None, *, max_rounds: int = 64) -> int:
        """Run the interrupt handler while the board's IRQ is asserted (a level-triggered line
        re-enters the handler). Also runs the deferred work a kernel would run from timers:
        the transmit watchdog and (Linux) a postponed multicast change. Returns the number of
        events handled (frames received, transmit descriptors reaped, error/IDON sources)."""
        self._catch_up(now)
        events = 0
        if self.is_open:
            events += self._timers()
        rounds = 0
        while self.is_open and rounds < max_rounds and self.irq_asserted():
            rounds += 1
            handled = self.interrupt()
            if handled is None:
                break
            events += handled
        return events

    def _deliver(self, frame: bytes) -> None:
        self.counters.rx_frames += 1
        self.counters.rx_bytes += len(frame)
        self.received.append(frame)
        if self.on_receive is not None:
            self.on_receive(frame)

    def _write_init_block(self, mode: int, ladrf) -> None:
        """12-word init block at init_addr (ref: section 4). PADR bytes are swapped within each
        big-endian word: MAC byte 0 in PADR[7:0] (ref: section 4 PADR byte order)."""
        ib = self.init_addr
        m = self.mac
        self.w16(self.off(ib + 0), mode)
        for k in range(3):
            self.w16(self.off(ib + 2 + 2 * k), (m[2 * k + 1] << 8) | m[2 * k])
        for k in range(4):
            self.w16(self.off(ib + 8 + 2 * k), ladrf[k])
        self.w16(self.off(ib + 16), self.rx_ring & 0xFFFF)
        self.w16(self.off(ib + 18), (self.rx_log2 << 13) | ((self.rx_ring >> 16) & 0xFF))
        self.w16(self.off(ib + 20), self.tx_ring & 0xFFFF)
        self.w16(self.off(ib + 22), (self.tx_log2 << 13) | ((self.tx_ring >> 16) & 0xFF))

    def _check_fits(self, end):
        if end - 0x8000 > RAM_SIZE:
            raise ValueError(f"{self.name}: layout needs {end - 0x8000} bytes of the 32 KB RAM")

    def _place_rings(self, init_block_size: int) -> None:
        """The layout both drivers use (ref: section 10): init block at LANCE 0x8000, then the
        RX ring, the TX ring, RX buffers and TX buffers of RX_BUF_SIZE bytes each, back to back.
        Only the space given to the init block differs."""
        self.init_addr = 0x8000
        self.rx_ring = self.init_addr + init_block_size
        self.tx_ring = self.rx_ring + 8 * self.n_rx
        self.rx_bufs = self.tx_ring + 8 * self.n_tx
        self.tx_bufs = self.rx_bufs + self.RX_BUF_SIZE * self.n_rx
        self._check_fits(self.tx_bufs + self.RX_BUF_SIZE * self.n_tx)

    def _update_filter(self, addrs, promisc, allmulti) -> None:
        """Take set_multicast's arguments (None = keep the current setting)."""
        if addrs is not None:
            self.multicast = [_mac_bytes(a) for a in addrs]
        if promisc is not None:
            self.promisc = bool(promisc)
        if allmulti is not None:
            self.allmulti = bool(allmulti)

    def _tx_frame(self, frame: bytes) -> Optional[bytes]:
        """The frame as both drivers hand it to the chip: padded to ETH_ZLEN (the chip appends
        the FCS); None, counted as tx_errors["too_long"], if it would overrun a TX buffer (the
        stack never sends one)."""
        frame = bytes(frame)
        if len(frame) > self.RX_BUF_SIZE:
            self.counters.tx_errors["too_long"] += 1
            return None
        if len(frame) < ETH_ZLEN:
            frame = frame + bytes(ETH_ZLEN - len(frame))
        return frame

    # descriptor addresses (LANCE view)
    def rmd(self, i):
        return self.rx_ring + 8 * i

    def tmd(self, i):
        return self.tx_ring + 8 * i

    def rx_buf(self, i):
        return self.rx_bufs + self.RX_BUF_SIZE * i

    def tx_buf(self, i):
        return self.tx_bufs + self.RX_BUF_SIZE * i

    def close(self) -> None:
        """Stop the chip (ref: both drivers' stop: CSR0 = STOP)."""
        self.wrap(0)
        self.wrdp(C0.STOP)
        self.is_open = False

    def set_multicast(self, addrs, *, promisc=None, allmulti=None) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class LinuxA2065Driver(_Driver):
    """Linux ``a2065.c`` as section 10 of the reference describes it."""

    name = "linux"
    RX_BUF_SIZE = 1544      # ref: L-a2065 RX_BUFF_SIZE / TX_BUFF_SIZE
    INIT_POLL_LIMIT = 100   # ref: L-a2065 init_restart_lance

    def _layout(self):
        # struct lance_init_block: 24-byte init block, brx_ring[], btx_ring[], rx_buf[][1544],
        # tx_buf[][1544], at LANCE 0x8000 (ref: section 10 Linux "Rings").
        self._place_rings(0x18)
        self.rx_new = 0
        self.tx_new = 0
        self.tx_old = 0
        self.trans_start = None
        self.queue_stopped = False
        self.multicast_pending = False

    # -- bring-up --------------------------------------------------------------------------
    def _load_csrs(self):
        # ref: section 10 Linux open/reset: RAP=1 CSR1=0x8000, RAP=2 CSR2=0, RAP=3 CSR3=BSWP, RAP=0
        self.wrap(1)
        self.wrdp(self.init_addr & 0xFFFF)
        self.wrap(2)
        self.wrdp((self.init_addr >> 16) & 0xFF)
        self.wrap(3)
        self.wrdp(CSR3_BSWP)
        self.wrap(0)

    def _init_ring(self, mode=0, ladrf=(0, 0, 0, 0)):
        """lance_init_ring: init block with MODE 0 and LADRF 0, every ring entry rebuilt,
        indexes back to 0 (ref: section 10 Linux "Ring init")."""
        self.rx_new = self.tx_new = self.tx_old = 0
        self.queue_stopped = False
        self._write_init_block(mode, ladrf)
        # TX: the loop runs i <= TX_RING_SIZE, so a 5th descriptor lands on the first 8 bytes
        # after the TX ring (= RX buffer 0); harmless, kept to be faithful (ref: section 10).
        for i in range(self.n_tx + 1):
            d = self.off(self.tmd(i))
            a = self.tx_buf(i)
            self.w16(d, a & 0xFFFF)
            self.w8(d + 3, (a >> 16) & 0xFF)   # tmd1_hadr
            self.w8(d + 2, 0)                  # tmd1_bits
            self.w16(d + 4, ONES)              # length 0xF000
            self.w16(d + 6, 0)                 # misc
        for i in range(self.n_rx):
            d = self.off(self.rmd(i))
            a = self.rx_buf(i)
            self.w16(d, a & 0xFFFF)
            self.w8(d + 3, (a >> 16) & 0xFF)
            self.w8(d + 2, R1.OWN)
            self.w16(d + 4, (-self.RX_BUF_SIZE | ONES) & 0xFFFF)
            self.w16(d + 6, 0)

    def _init_restart(self):
        """INIT, poll CSR0 at most 100 times for IDON|ERR, ack IDON, INEA|STRT
        (ref: section 10 Linux open/reset sequence)."""
        self.counters.inits += 1
        self.wrap(0)
        self.wrdp(C0.INIT)
        reads = 0
        csr0 = 0
        while reads < self.INIT_POLL_LIMIT:
            csr0 = self.rrdp()
            reads += 1
            if csr0 & (C0.ERR | C0.IDON):
                break
        self.init_poll_reads = reads
        if not csr0 & (C0.ERR | C0.IDON) or self.rrdp() & C0.ERR:
            self.is_open = False
            raise DriverError(f"LANCE unopened after {reads} reads, CSR0={csr0:#06x}")
        self.wrdp(C0.IDON)
        self.wrdp(C0.INEA | C0.STRT)
        self.is_open = True

    def _full_init(self, *, with_rx_mode: bool):
        self.wrap(0)
        self.wrdp(C0.STOP)
        self._load_csrs()
        if with_rx_mode:
            mode = MODE_PROM if self.promisc else 0
            ladrf = ((0, 0, 0, 0) if self.promisc
                     else ladrf_for(self.multicast, allmulti=self.allmulti))
        else:
            mode, ladrf = 0, (0, 0, 0, 0)
        self._init_ring(mode, ladrf)
        self._init_restart()

    def open(self) -> None:
        """lance_open, then the stack's set_rx_mode (a second full STOP/INIT, as __dev_open
        calls ndo_set_rx_mode right after ndo_open)."""
        self._full_init(with_rx_mode=False)
        self._full_init(with_rx_mode=True)
        self.trans_start = self.now

    def reset(self) -> None:
        """lance_reset: STOP, init ring, CSR1-3, INIT (ref: section 10)."""
        self.counters.resets += 1
        self._full_init(with_rx_mode=True)
        self.trans_start = self.now

    def set_multicast(self, addrs=None, *, promisc=None, allmulti=None) -> None:
        """lance_set_multicast: with transmits outstanding it retries later (a 4-jiffy timer;
        here the next service()); else STOP + full re-init with the new filter."""
        self._update_filter(addrs, promisc, allmulti)
        if not self.is_open:
            return
        if self.tx_old != self.tx_new:
            self.multicast_pending = True
            return
        self._set_multicast_now()

    def _set_multicast_now(self):
        self.multicast_pending = False
        self.counters.resets += 1
        self._full_init(with_rx_mode=True)

    # -- transmit --------------------------------------------------------------------------
    def tx_buffs_avail(self) -> int:
        mask = self.n_tx - 1
        if self.tx_old <= self.tx_new:
            return self.tx_old + mask - self.tx_new
        return self.tx_old - self.tx_new - 1

    def send(self, frame: bytes) -> bool:
        """lance_start_xmit (ref: section 10 Linux "Transmit")."""
        if not self.is_open or self.tx_buffs_avail() <= 0:
            self.counters.tx_busy += 1
            return False
        frame = self._tx_frame(frame)
        if frame is None:
            return False
        entry = self.tx_new & (self.n_tx - 1)
        d = self.off(self.tmd(entry))
        self.w16(d + 4, (-len(frame) | ONES) & 0xFFFF)   # length
        self.w16(d + 6, 0)                               # misc
        self.copy_to_card(self.tx_buf(entry), frame)
        self.w8(d + 2, T1.OWN | T1.STP | T1.ENP)          # tmd1_bits, one byte write
        self.tx_new = (self.tx_new + 1) & (self.n_tx - 1)
        self.wrdp(C0.INEA | C0.TDMD)                      # RAP assumed 0
        self.trans_start = self.now
        self.counters.tx_bytes += len(frame)
        if self.tx_buffs_avail() <= 0:
            self.queue_stopped = True
        return True

    # -- interrupt -------------------------------------------------------------------------
    def interrupt(self):
        """lance_interrupt (ref: section 10 Linux "Interrupt"). Returns events handled, or None
        when CSR0.INTR is clear (not ours)."""
        self.wrap(0)
        csr0 = self.rrdp()
        if not csr0 & C0.INTR:
            self.counters.not_mine += 1
            return None
        self.counters.interrupts += 1
        events = 0
        # Ack all sources; this write also clears INEA for the duration of the handler.
        self.wrdp(csr0 & ~(C0.INEA | C0.TDMD | C0.STOP | C0.STRT | C0.INIT) & 0xFFFF)
        if csr0 & C0.ERR:
            self.wrdp(C0.BABL | C0.ERR | C0.MISS | C0.INEA)
        if csr0 & C0.RINT:
            events += self._rx()
        if csr0 & C0.TINT:
            events += self._tx()   # may have re-initialised the chip; the handler goes on
        if csr0 & C0.BABL:
            self.counters.tx_errors["babl"] += 1
            events += 1
        if csr0 & C0.MISS:
            self.counters.rx_errors["miss"] += 1
            events += 1
        if csr0 & C0.MERR:
            self.counters.rx_errors["merr"] += 1
            self.wrdp(C0.STRT)
            events += 1
        if csr0 & C0.IDON:
            events += 1
        if self.queue_stopped and self.tx_buffs_avail() > 0:
            self.queue_stopped = False
        self.wrap(0)
        self.wrdp(C0.BABL | C0.CERR | C0.MISS | C0.MERR | C0.IDON | C0.INEA)
        return events

    def _rx(self) -> int:
        """lance_rx (ref: section 10 Linux "RX loop")."""
        self.wrdp(C0.RINT | C0.INEA)
        events = 0
        mask = self.n_rx - 1
        for _ in range(self.n_rx + 1):  # bound: every descriptor is returned once per pass
            d = self.off(self.rmd(self.rx_new))
            bits = self.r8(d + 2)
            if bits & R1.OWN:
                break
            if (bits & (R1.STP | R1.ENP)) != (R1.STP | R1.ENP):
                # The kernel's `continue` re-reads the same descriptor forever.
                self.counters.rx_errors["over"] += 1
                self.counters.hangs_avoided += 1
                raise DriverHang(
                    f"Linux a2065 RX loop would spin on descriptor {self.rx_new} "
                    f"(RMD1 bits {bits:#04x}: not both STP and ENP)")
            if bits & R1.ERR:
                if bits & R1.BUFF:
                    self.counters.rx_errors["fifo"] += 1
                if bits & R1.CRC:
                    self.counters.rx_errors["crc"] += 1
                if bits & R1.OFLO:
                    self.counters.rx_errors["over"] += 1
                if bits & R1.FRAM:
                    self.counters.rx_errors["frame"] += 1
            else:
                length = (self.r16(d + 6) & 0xFFF) - 4
                if length < 0:
                    self.counters.rx_errors["dropped"] += 1   # skb allocation would fail
                else:
                    self._deliver(self.copy_from_card(self.rx_buf(self.rx_new), length))
            events += 1
            self.w16(d + 6, 0)          # mblength
            self.w8(d + 2, R1.OWN)      # rmd1_bits, one byte write
            self.rx_new = (self.rx_new + 1) & mask
        return events

    def _tx(self) -> int:
        """lance_tx (ref: section 10 Linux "TX reap")."""
        self.wrdp(C0.TINT | C0.INEA)
        events = 0
        mask = self.n_tx - 1
        j = self.tx_old
        for _ in range(self.n_tx):
            if j == self.tx_new:
                break
            d = self.off(self.tmd(j))
            bits = self.r8(d + 2)
            if bits & T1.OWN:
                break
            if bits & T1.ERR:
                status = self.r16(d + 6)
                self.counters.tx_errors["total"] += 1
                if status & T3.RTRY:
                    self.counters.tx_errors["aborted"] += 1
                if status & T3.LCOL:
                    self.counters.tx_errors["window"] += 1
                if status & T3.LCAR:
                    self.counters.tx_errors["carrier"] += 1
                if status & (T3.BUFF | T3.UFLO):
                    # buffer errors and underflows turn the transmitter off: restart
                    self.counters.tx_errors["fifo"] += 1
                    self.reset()
                    return events + 1
            elif (bits & (T1.STP | T1.ENP)) == (T1.STP | T1.ENP):
                self.w8(d + 2, bits & ~(T1.STP | T1.ENP))  # count each packet once
                if bits & T1.ONE:
                    self.counters.collisions += 1
                if bits & T1.MORE:
                    self.counters.collisions += 2
                self.counters.tx_frames += 1
            events += 1
            j = (j + 1) & mask
        self.tx_old = j
        self.wrdp(C0.TINT | C0.INEA)
        return events

    def _timers(self) -> int:
        events = 0
        if self.multicast_pending and self.tx_old == self.tx_new:
            self._set_multicast_now()
            events += 1
        # netdev watchdog: queue stopped and nothing sent for 5 s -> tx_timeout -> lance_reset.
        if (self.queue_stopped and self.now is not None and self.trans_start is not None
                and self.now - self.trans_start >= self.watchdog_ns):
            self.counters.timeouts += 1
            self.reset()
            events += 1
        return events

    def outstanding_tx(self) -> int:
        return (self.tx_new - self.tx_old) & (self.n_tx - 1)


class NetBSDLeDriver(_Driver):
    """NetBSD amiga ``if_le`` + MI ``lance.c``/``am7990.c`` (ref: section 10 NetBSD)."""

    name = "netbsd"
    RX_BUF_SIZE = 1536          # ref: N-reg LEBLEN
    INIT_POLL_LIMIT = 100_000   # ref: N-lance lance_init

    def __init__(self, bus, mac=None, *, vlan_mtu=False, init_delay_ns=100_000, **kw):
        self.vlan_mtu = vlan_mtu
        self.init_delay_ns = init_delay_ns
        super().__init__(bus, mac, **kw)

    def _layout(self):
        # ref: section 10 NetBSD: init 0x8000 (32 bytes), RX ring 0x8020, TX ring after it,
        # RX buffers, TX buffers, 1536 bytes each.
        self._place_rings(0x20)
        self.last_rd = 0
        self.first_td = 0
        self.last_td = 0
        self.no_td = 0
        self.if_timer_deadline = None

    # every CSR access writes RAP first (ref: N-le lewrcsr/lerdcsr)
    def wrcsr(self, reg, v):
        self.wrap(reg)
        self.wrdp(v)

    def rdcsr(self, reg):
        self.wrap(reg)
        return self.rrdp()

    def _delay(self, ns):
        if self.now is not None:
            self._catch_up(self.now + ns)

    def _write_desc(self, lance_addr, w0, bits, hadr, w2, w3):
        """copytodesc: one 8-byte copy, in address order (OWN byte before word 2)."""
        o = self.off(lance_addr)
        self.w32(o, (w0 << 16) | (bits << 8) | hadr)
        self.w32(o + 4, ((w2 & 0xFFFF) << 16) | (w3 & 0xFFFF))

    def _read_desc(self, lance_addr):
        """copyfromdesc: (w0, bits, hadr, w2, w3)."""
        o = self.off(lance_addr)
        a = self.r32(o)
        b = self.r32(o + 4)
        return a >> 16, (a >> 8) & 0xFF, a & 0xFF, b >> 16, b & 0xFFFF

    def _meminit(self):
        """am7990_meminit (ref: section 10 NetBSD)."""
        mode = MODE_PROM if self.promisc else 0
        ladrf = [0xFFFF] * 4 if self.promisc else ladrf_for(self.multicast, allmulti=self.allmulti)
        self._write_init_block(mode, ladrf)
        for i in range(self.n_rx):
            a = self.rx_buf(i)
            self._write_desc(self.rmd(i), a & 0xFFFF, R1.OWN, (a >> 16) & 0xFF,
                             -self.RX_BUF_SIZE | ONES, 0)
        for i in range(self.n_tx):
            a = self.tx_buf(i)
            self._write_desc(self.tmd(i), a & 0xFFFF, 0, (a >> 16) & 0xFF, ONES, 0)
        self.last_rd = self.first_td = self.last_td = self.no_td = 0

    def init(self):
        """lance_init (ref: section 10 NetBSD "lance_init")."""
        self.counters.inits += 1
        self.wrcsr(0, C0.STOP)
        self._delay(self.init_delay_ns)
        self.wrcsr(3, CSR3_BSWP)
        self._meminit()
        self.wrcsr(1, self.init_addr & 0xFFFF)
        self.wrcsr(2, (self.init_addr >> 16) & 0xFF)
        self._delay(self.init_delay_ns)
        self.wrcsr(0, C0.INIT)
        reads = 0
        while reads < self.INIT_POLL_LIMIT:
            reads += 1
            if self.rdcsr(0) & C0.IDON:
                break
        self.init_poll_reads = reads
        if not self.rdcsr(0) & C0.IDON:
            self.is_open = False
            raise DriverError(f"controller failed to initialize after {reads} reads")
        self.wrcsr(0, C0.INEA | C0.STRT | C0.IDON)
        self.is_open = True
        self.if_timer_deadline = None

    def open(self) -> None:
        self.init()

    def reset(self) -> None:
        """lance_reset = lance_init."""
        self.counters.resets += 1
        self.init()

    def set_multicast(self, addrs=None, *, promisc=None, allmulti=None) -> None:
        """Any change to the multicast list or flags re-inits the chip (ref: N-lance)."""
        self._update_filter(addrs, promisc, allmulti)
        if self.is_open:
            self.counters.resets += 1
            self.init()

    # -- transmit --------------------------------------------------------------------------
    def send(self, frame: bytes) -> bool:
        """am7990_start for one frame (ref: section 10 NetBSD "Transmit")."""
        if not self.is_open or self.no_td >= self.n_tx:
            self.counters.tx_busy += 1
            return False
        bix = self.last_td
        w0, bits, hadr, _, _ = self._read_desc(self.tmd(bix))
        if bits & T1.OWN:
            self.counters.tx_errors["missing_buffer"] += 1
            self.counters.tx_busy += 1
            return False
        frame = self._tx_frame(frame)
        if frame is None:
            return False
        self.copy_to_card(self.tx_buf(bix), frame)
        self._write_desc(self.tmd(bix), w0, T1.OWN | T1.STP | T1.ENP, hadr, -len(frame) | ONES, 0)
        self.wrcsr(0, C0.INEA | C0.TDMD)
        self.last_td = (bix + 1) % self.n_tx
        self.no_td += 1
        self.counters.tx_bytes += len(frame)
        if self.now is not None:
            self.if_timer_deadline = self.now + self.watchdog_ns
        return True

    # -- interrupt -------------------------------------------------------------------------
    def interrupt(self):
        """am7990_intr (ref: section 10 NetBSD "Interrupt")."""
        isr = self.rdcsr(0)
        if not isr & C0.INTR:
            self.counters.not_mine += 1
            return None
        self.counters.interrupts += 1
        self.wrcsr(0, isr & (C0.INEA | C0.BABL | C0.MISS | C0.MERR | C0.RINT | C0.TINT | C0.IDON))
        events = 0
        if isr & C0.ERR:
            if isr & C0.BABL:
                self.counters.tx_errors["babl"] += 1
                events += 1
            if isr & C0.MISS:
                self.counters.rx_errors["miss"] += 1
                events += 1
            if isr & C0.MERR:
                self.counters.rx_errors["merr"] += 1
                self.reset()
                return events + 1
        if not isr & C0.RXON:
            self.counters.rx_errors["receiver_disabled"] += 1
            self.reset()
            return events + 1
        if not isr & C0.TXON:
            self.counters.tx_errors["transmitter_disabled"] += 1
            self.reset()
            return events + 1
        if isr & C0.RINT:
            events += self._rint()
        if isr & C0.TINT:
            events += self._tint()
        if isr & C0.IDON:
            events += 1
        return events

    def _rint(self) -> int:
        events = 0
        bix = self.last_rd
        for _ in range(self.n_rx):
            addr = self.rmd(bix)
            w0, bits, hadr, _, w3 = self._read_desc(addr)
            if bits & R1.OWN:
                break
            if bits & R1.ERR:
                if bits & R1.ENP:
                    if not bits & R1.OFLO:
                        if bits & R1.FRAM:
                            self.counters.rx_errors["frame"] += 1
                        if bits & R1.CRC:
                            self.counters.rx_errors["crc"] += 1
                elif bits & R1.OFLO:
                    self.counters.rx_errors["over"] += 1
                if bits & R1.BUFF:
                    self.counters.rx_errors["buff"] += 1
                self.counters.rx_errors["ierrors"] += 1
            elif (bits & (R1.STP | R1.ENP)) != (R1.STP | R1.ENP):
                self.counters.rx_errors["chained"] += 1
            else:
                length = w3 - 4
                limit = 1518 if self.vlan_mtu else 1514
                if length <= 14 or length > limit:
                    self.counters.rx_errors["length"] += 1
                else:
                    self._deliver(self.copy_from_card(self.rx_buf(bix), length))
            events += 1
            self._write_desc(addr, w0, R1.OWN, hadr, -self.RX_BUF_SIZE | ONES, 0)
            bix = (bix + 1) % self.n_rx
        self.last_rd = bix
        return events

    def _tint(self) -> int:
        events = 0
        bix = self.first_td
        for _ in range(self.n_tx):
            if self.no_td <= 0:
                break
            _, bits, _, _, w3 = self._read_desc(self.tmd(bix))
            if bits & T1.OWN:
                break
            if bits & T1.ERR:
                if w3 & (T3.BUFF | T3.UFLO):
                    self.counters.tx_errors["buff" if w3 & T3.BUFF else "uflo"] += 1
                    self.reset()
                    return events + 1
                if w3 & T3.LCAR:
                    self.counters.tx_errors["carrier"] += 1
                if w3 & T3.LCOL:
                    self.counters.collisions += 1
                if w3 & T3.RTRY:
                    self.counters.collisions += 16
                self.counters.tx_errors["oerrors"] += 1
            else:
                if bits & T1.ONE:
                    self.counters.collisions += 1
                elif bits & T1.MORE:
                    self.counters.collisions += 2
                self.counters.tx_frames += 1
            events += 1
            bix = (bix + 1) % self.n_tx
            self.no_td -= 1
        self.first_td = bix
        if self.no_td == 0:
            self.if_timer_deadline = None
        return events

    def _timers(self) -> int:
        if (self.if_timer_deadline is not None and self.now is not None
                and self.now >= self.if_timer_deadline):
            self.counters.timeouts += 1
            self.reset()
            return 1
        return 0

    def outstanding_tx(self) -> int:
        return self.no_td
