"""Zorro II autoconfig: the expansion ROM nibble image, the config latch, shut-up, and the chain.

Facts follow ``am7990-a2065.md`` section 2 (tags HRM, CR, A500bk, AROS, W, M-a2065).

Read side of the $E80000 window (offsets within the 64 KB window)

=============  ==========================================================================
offset         what a read returns
=============  ==========================================================================
even, < $80    the nibble for that offset in D15-D12 (bits 7:4 of the even byte); the low
               nibble D11-D8 and the odd byte D7-D0 read as 1s (ref: M-a2065; W returns
               0xFF for odd bytes, which is the same value). Inverted storage for every
               nibble except $00/$02 (er_Type) and $40/$42 (ec_Interrupt) (ref: A500bk, W).
odd, < $80     0xFF (ref: W; M-a2065 gives 1s on D7-D0 too)
>= $80         0xFF per byte (nothing decoded; pull-ups) -- unverified
=============  ==========================================================================

So a byte read of an even offset is ``(nibble << 4) | 0xF`` and a word read is
``(nibble << 12) | 0x0FFF``. Reads never change any state (AROS reads the ROM 12 times and
compares).

Write side

=============  ==========================================================================
$4A            byte write: latch A19-A16 from D7-D4 (AROS writes ``byte << 4`` here);
               word write: latch from D15-D12. Held until $48 is written.
$48            byte write: configure at ``((D7-D4) << 20) | (latch << 16)`` (HRM, AROS);
               word write: configure at ``(high byte) << 16`` (ref: W, the A2630 ROM does it).
$4C-$4F        any write, any width: shut up (pass /CFGOUT, stop responding) (HRM, W).
               ec_Shutup is the $4C/$4E nibble pair; we accept the whole pair -- unverified.
others         ignored
=============  ==========================================================================

Reset returns the board to unconfigured (not shut up, latch cleared) (HRM).

``ZorroChain`` routes full 24-bit addresses: the $E80000 window goes to the first board that
is neither configured nor shut up (config-in/config-out); any other address goes to the
configured board whose window contains it; everything else is unmapped (reads all 1s,
writes ignored -- unverified, "pull-ups").
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional, Protocol

from construct import Bytes, Int8ub, Int16ub, Int32ub, Struct

log = logging.getLogger("a2065.autoconfig")

E_EXPANSIONBASE = 0xE80000  # ref: CR
CONFIG_WINDOW = 0x10000
ROM_SPAN = 0x80  # $00-$7E: 32 logical bytes as 64 nibbles

# er_Type bits (ref: CR, HRM)
ERT_ZORROII = 0xC0
ERTF_MEMLIST = 0x20
ERTF_DIAGVALID = 0x10
ERTF_CHAINEDCONFIG = 0x08
ERT_SIZE_CODES = {8 << 20: 0, 64 << 10: 1, 128 << 10: 2, 256 << 10: 3, 512 << 10: 4,
                  1 << 20: 5, 2 << 20: 6, 4 << 20: 7}

# er_Flags bits (ref: CR, HRM)
ERFF_MEMSPACE = 0x80
ERFF_NOSHUTUP = 0x40

#: Logical expansion ROM (struct ExpansionRom, ref: CR / L-ids), 16 bytes.
EXPANSION_ROM = Struct(
    "er_Type" / Int8ub,
    "er_Product" / Int8ub,
    "er_Flags" / Int8ub,
    "er_Reserved03" / Int8ub,
    "er_Manufacturer" / Int16ub,
    "er_SerialNumber" / Int32ub,
    "er_InitDiagVec" / Int16ub,
    "er_Reserved0c" / Bytes(4),
)

#: Nibble offsets that are NOT stored inverted (ref: A500bk "all nibbles inverted except 00, 02,
#: 40 and 42", W expamem_read).
NOT_INVERTED = frozenset((0x00, 0x02, 0x40, 0x42))

UNMAPPED_BYTE = 0xFF  # unverified: open bus modelled as pull-ups


def rom_bytes(*, er_type: int, product: int, manufacturer: int, serial: int,
              flags: int = 0, init_diag_vec: int = 0) -> bytes:
    """The 16 logical ExpansionRom bytes (plain values, not inverted)."""
    rom: bytes = EXPANSION_ROM.build(dict(
        er_Type=er_type & 0xFF, er_Product=product & 0xFF, er_Flags=flags & 0xFF,
        er_Reserved03=0, er_Manufacturer=manufacturer & 0xFFFF,
        er_SerialNumber=serial & 0xFFFFFFFF, er_InitDiagVec=init_diag_vec & 0xFFFF,
        er_Reserved0c=bytes(4)))
    return rom


def nibble_image(logical: bytes, ec_interrupt: int = 0) -> bytes:
    """64 raw nibbles as the bus shows them: index i is the nibble at window offset 2*i.

    ``logical`` holds up to 32 bytes (byte n -> high nibble at $4n, low nibble at $4n+2); bytes
    past its end are 0. Logical byte 16 ($40/$42) is ec_Interrupt, not inverted.
    """
    data = bytearray(32)
    data[: len(logical)] = logical[:32]
    data[16] = ec_interrupt & 0xFF
    out = bytearray(64)
    for i in range(64):
        off = 2 * i
        byte = data[off >> 2]
        nib = (byte >> 4) if (off & 2) == 0 else (byte & 0xF)
        if off not in NOT_INVERTED:
            nib ^= 0xF
        out[i] = nib
    return bytes(out)


def decode_nibbles(read8: Callable[[int], int]) -> bytes:
    """Read back the 16 logical ROM bytes through ``read8(offset)`` as an OS does."""
    out = bytearray(16)
    for n in range(16):
        hi = (read8(4 * n) >> 4) & 0xF
        lo = (read8(4 * n + 2) >> 4) & 0xF
        if 4 * n not in NOT_INVERTED:
            hi ^= 0xF
        if 4 * n + 2 not in NOT_INVERTED:
            lo ^= 0xF
        out[n] = (hi << 4) | lo
    return bytes(out)


class Autoconfig:
    """One board's autoconfig logic: image, latch, configured/shut-up state.

    ``on_configured(base)`` is called when the $48 write configures the board.
    """

    UNCONFIGURED, CONFIGURED, SHUT_UP = "unconfigured", "configured", "shut_up"

    def __init__(self, logical_rom: bytes, *, size: int = 0x10000,
                 on_configured: Optional[Callable[[int], None]] = None) -> None:
        self.logical_rom = bytes(logical_rom)
        self.size = size
        self.on_configured = on_configured
        self._nibbles = nibble_image(self.logical_rom)
        # precomputed byte/word views of the first $80 bytes of the window
        b = bytearray(b"\xff" * ROM_SPAN)
        for i, nib in enumerate(self._nibbles):
            b[2 * i] = (nib << 4) | 0x0F
        self._bytes = bytes(b)
        self.state = self.UNCONFIGURED
        self.base: Optional[int] = None  # set while configured
        self.latch = 0

    # -- state -------------------------------------------------------------------------------
    @property
    def configured(self) -> bool:
        return self.state == self.CONFIGURED

    @property
    def shut_up(self) -> bool:
        return self.state == self.SHUT_UP

    @property
    def in_config_window(self) -> bool:
        """True while the board answers at $E80000 (given its /CFGIN)."""
        return self.state == self.UNCONFIGURED

    def reset(self) -> None:
        self.state = self.UNCONFIGURED
        self.base = None
        self.latch = 0

    def nibble(self, offset: int) -> int:
        """Raw (as-read) nibble at an even window offset < $80."""
        return self._nibbles[(offset & 0x7E) >> 1]

    # -- reads (side-effect free) --------------------------------------------------------------
    def read8(self, offset: int) -> int:
        offset &= 0xFFFF
        return self._bytes[offset] if offset < ROM_SPAN else UNMAPPED_BYTE

    def read16(self, offset: int) -> int:
        offset &= 0xFFFE
        if offset < ROM_SPAN:
            return (self._bytes[offset] << 8) | 0xFF
        return 0xFFFF

    # -- writes ------------------------------------------------------------------------------
    def write8(self, offset: int, value: int) -> None:
        if self.state != self.UNCONFIGURED:
            return
        offset &= 0xFFFF
        value &= 0xFF
        if offset == 0x4A:
            self.latch = value >> 4
        elif offset == 0x48:
            self._configure((((value >> 4) << 4) | self.latch) << 16)
        elif 0x4C <= offset <= 0x4F:
            self._shut_up()

    def write16(self, offset: int, value: int) -> None:
        if self.state != self.UNCONFIGURED:
            return
        offset &= 0xFFFE
        value &= 0xFFFF
        if offset == 0x4A:
            self.latch = value >> 12
        elif offset == 0x48:
            self._configure((value >> 8) << 16)  # ref: W (word write at $48)
        elif offset in (0x4C, 0x4E):
            self._shut_up()

    def _configure(self, base: int) -> None:
        self.state = self.CONFIGURED
        self.base = base
        log.debug("configured at $%06X", base)
        if self.on_configured is not None:
            self.on_configured(base)

    def _shut_up(self) -> None:
        self.state = self.SHUT_UP
        log.debug("shut up")

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "base": self.base, "latch": self.latch}

    def restore(self, d: dict[str, Any]) -> None:
        state = d["state"]
        if state not in (self.UNCONFIGURED, self.CONFIGURED, self.SHUT_UP):
            raise ValueError(f"unknown autoconfig state {state!r}")
        self.state = state
        self.base = d["base"]
        self.latch = int(d["latch"]) & 0xF


class RamCard:
    """A plain Zorro II autoconfig RAM card (for chains in tests and hosts).

    Byte/word/long accesses in big-endian lanes over ``size`` bytes; er_Type has MEMLIST set.
    Same bus interface as ``A2065`` (``read8/16/32``, ``write8/16/32``, ``autoconfig``, ``reset``).
    """

    def __init__(self, size: int = 512 << 10, *, manufacturer: int = 0x07DB, product: int = 1,
                 serial: int = 0, on_configured: Optional[Callable[[int], None]] = None) -> None:
        if size not in ERT_SIZE_CODES:
            raise ValueError(f"not a Zorro II size: {size}")
        rom = rom_bytes(er_type=ERT_ZORROII | ERTF_MEMLIST | ERT_SIZE_CODES[size],
                        product=product, manufacturer=manufacturer, serial=serial)
        self.autoconfig = Autoconfig(rom, size=size, on_configured=on_configured)
        self.size = size
        self.ram = bytearray(size)

    def reset(self) -> None:
        self.autoconfig.reset()

    def read8(self, offset: int, *, now: Optional[int] = None) -> int:
        ac = self.autoconfig
        if ac.state == ac.CONFIGURED:
            return self.ram[offset % self.size]
        if ac.state == ac.UNCONFIGURED:
            return ac.read8(offset)
        return UNMAPPED_BYTE

    def read16(self, offset: int, *, now: Optional[int] = None) -> int:
        ac = self.autoconfig
        if ac.state == ac.CONFIGURED:
            o = (offset & ~1) % self.size
            return (self.ram[o] << 8) | self.ram[o + 1]
        if ac.state == ac.UNCONFIGURED:
            return ac.read16(offset)
        return 0xFFFF

    def read32(self, offset: int, *, now: Optional[int] = None) -> int:
        return (self.read16(offset) << 16) | self.read16(offset + 2)

    def write8(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        ac = self.autoconfig
        if ac.state == ac.CONFIGURED:
            self.ram[offset % self.size] = value & 0xFF
        elif ac.state == ac.UNCONFIGURED:
            ac.write8(offset, value)

    def write16(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        ac = self.autoconfig
        if ac.state == ac.CONFIGURED:
            o = (offset & ~1) % self.size
            self.ram[o] = (value >> 8) & 0xFF
            self.ram[o + 1] = value & 0xFF
        elif ac.state == ac.UNCONFIGURED:
            ac.write16(offset, value)

    def write32(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        self.write16(offset, (value >> 16) & 0xFFFF)
        self.write16(offset + 2, value & 0xFFFF)


def _then(prev: Optional[Callable[[bool], None]],
          changed: Callable[[], None]) -> Callable[[bool], None]:
    def irq(level: bool) -> None:
        if prev is not None:
            prev(level)
        changed()
    return irq
def _board_list(boards: Iterable[ZorroBoard]) -> list[ZorroBoard]:
    """``boards`` as a list, or a TypeError that says what to pass (issue 16)."""
    if hasattr(boards, "autoconfig"):
        raise TypeError(f"expected a list of boards, got one {type(boards).__name__}: pass "
                        f"[card] (e.g. GenericAdapter([card], cpu_hz=...))")
    try:
        out = list(boards)
    except TypeError:
        raise TypeError(f"expected a list of boards (A2065 cards), not {type(boards).__name__}: "
                        "pass [card]") from None
    for i, b in enumerate(out):
        if not hasattr(b, "autoconfig"):
            hint = " (that is the card's chip: pass the card itself)" if hasattr(b, "read_rdp") else ""
            raise TypeError(f"board {i} is a {type(b).__name__}, not a Zorro board with an "
                            f"autoconfig image{hint}; pass A2065 cards, e.g. [A2065(serial=0x00123456)]")
    return out


class ZorroBoard(Protocol):
    """What a chain needs from a board (`A2065`, `RamCard`): its autoconfig logic and the bus
    accesses at an offset inside its slot. A board may also keep time (``now``,
    ``advance_to``, ``next_deadline``) and report INT2 (``irq``, ``irq_asserted``)."""

    autoconfig: Autoconfig

    def reset(self) -> None: ...
    def read8(self, offset: int, *, now: Optional[int] = None) -> int: ...
    def read16(self, offset: int, *, now: Optional[int] = None) -> int: ...
    def read32(self, offset: int, *, now: Optional[int] = None) -> int: ...
    def write8(self, offset: int, value: int, *, now: Optional[int] = None) -> None: ...
    def write16(self, offset: int, value: int, *, now: Optional[int] = None) -> None: ...
    def write32(self, offset: int, value: int, *, now: Optional[int] = None) -> None: ...


class ZorroChain:
    """Several Zorro II boards on one bus, configured one after another at $E80000.

    Addresses are full 24-bit CPU addresses (higher bits are dropped, as on a 68000).
    A 32-bit access is two 16-bit accesses, high word first, each routed on its own (so a long
    write at $E80048 configures one board and its low word lands on the next one, as on the bus).
    """

    def __init__(self, boards: Iterable[ZorroBoard] = (), *,
                 window: int = E_EXPANSIONBASE) -> None:
        self.boards = _board_list(boards)
        self.window = window

    def add(self, board: ZorroBoard) -> None:
        self.boards.append(board)

    def reset(self) -> None:
        for b in self.boards:
            b.reset()

    def config_board(self) -> Optional[ZorroBoard]:
        """The board that currently has /CFGIN and answers at $E80000, or None."""
        for b in self.boards:
            if b.autoconfig.in_config_window:
                return b
        return None

    def route(self, addr: int) -> Optional[tuple[ZorroBoard, int]]:
        """(board, offset) for a 24-bit address, or None if nothing answers."""
        addr &= 0xFFFFFF
        if self.window <= addr < self.window + CONFIG_WINDOW:
            b = self.config_board()
            if b is not None:
                return b, addr - self.window
        for b in self.boards:
            ac = b.autoconfig
            if ac.state == ac.CONFIGURED and ac.base <= addr < ac.base + ac.size:  # type: ignore[operator]  # configured: base set
                return b, addr - ac.base  # type: ignore[operator]
        return None

    def claims(self, addr: int) -> bool:
        return self.route(addr) is not None

    # -- time and INT2 over every board (what a host adapter needs) -----------------------------
    def now(self) -> int:
        """The latest emulated time a board has reached (0 if no board keeps time)."""
        return max((b.now for b in self.boards if hasattr(b, "now")), default=0)

    def next_deadline(self) -> Optional[int]:
        """The earliest pending event of any board (absolute ns), or None."""
        best: Optional[int] = None
        for b in self.boards:
            nd = getattr(b, "next_deadline", None)
            if nd is not None:
                d = nd()
                if d is not None and (best is None or d < best):
                    best = d
        return best

    def next_visible_deadline(self) -> Optional[int]:
        """The earliest event of any board that a driver can see (a board's
        ``next_visible_deadline``, else its ``next_deadline``), or None: where a host that runs
        its CPU in slices ends one."""
        best: Optional[int] = None
        for b in self.boards:
            nd = getattr(b, "next_visible_deadline", None) or getattr(b, "next_deadline", None)
            if nd is not None:
                d = nd()
                if d is not None and (best is None or d < best):
                    best = d
        return best

    def advance_to(self, t_ns: int) -> None:
        """Run every board's events due by ``t_ns``."""
        for b in self.boards:
            if hasattr(b, "advance_to"):
                b.advance_to(t_ns)

    @property
    def irq_asserted(self) -> bool:
        """INT2 is wired-OR: True while any board asserts it."""
        return any(getattr(b, "irq_asserted", False) for b in self.boards)

    def watch_irq(self, changed: Callable[[], None]) -> None:
        """Have every board that reports INT2 edges call ``changed()`` after its own ``irq``."""
        for b in self.boards:
            if hasattr(b, "irq"):
                b.irq = _then(b.irq, changed)

    def read8(self, addr: int, *, now: Optional[int] = None) -> int:
        r = self.route(addr)
        return r[0].read8(r[1], now=now) if r else UNMAPPED_BYTE

    def read16(self, addr: int, *, now: Optional[int] = None) -> int:
        r = self.route(addr & ~1)
        return r[0].read16(r[1], now=now) if r else 0xFFFF

    def read32(self, addr: int, *, now: Optional[int] = None) -> int:
        hi = self.read16(addr, now=now)
        return (hi << 16) | self.read16(addr + 2, now=now)

    def write8(self, addr: int, value: int, *, now: Optional[int] = None) -> None:
        r = self.route(addr)
        if r:
            r[0].write8(r[1], value, now=now)

    def write16(self, addr: int, value: int, *, now: Optional[int] = None) -> None:
        r = self.route(addr & ~1)
        if r:
            r[0].write16(r[1], value, now=now)

    def write32(self, addr: int, value: int, *, now: Optional[int] = None) -> None:
        self.write16(addr, (value >> 16) & 0xFFFF, now=now)
        self.write16(addr + 2, value & 0xFFFF, now=now)
