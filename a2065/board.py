"""The Commodore A2065 Zorro II board around the Am7990: the one bus dispatcher.

Facts: ``am7990-a2065.md`` section 1 (tags L-a2065, N-le, W, M-a2065). Offsets are relative to
the configured base; before configuration the board answers its autoconfig image instead (see
``a2065.autoconfig``), and after a shut-up it answers nothing.

Access table of a configured board (``ACCESS_TABLE`` below is the code form of this table; the
dispatcher is built from it and from nothing else)

=================  ======  ===================================================================
offsets            width   behaviour
=================  ======  ===================================================================
$0000-$3FFF        8/16    unmapped: reads 0, writes ignored (ref: W; M-a2065 re-installs the
                           autoconfig image here -- not followed; real board unconfirmed)
$4000-$4001 RDP    16      LANCE register data port (``chip.read_rdp/write_rdp``) (ref: L-a2065,
                           N-le, W)
$4002-$4003 RAP    16      LANCE register address port (``chip.read_rap/write_rap``)
$4000-$4003        8       read: the matching half of the 16-bit register (even offset = D15-D8,
                           odd = D7-D0), so it is what a 16-bit read would put on that byte lane;
                           reading RDP/RAP has no side effects on the LANCE, so this is safe.
                           write: ignored and counted (``stats["byte_register_writes"]``): the
                           LANCE latches all 16 data lines, half of which are undriven during a
                           byte cycle, so any value we made up would be a guess. W ignores them
                           too. Real board: unverified.
$4004-$7FFF        8/16    unmapped (no mirrors): reads 0, writes ignored (ref: W, M-a2065 decode
                           only $4000-$4003; real decoding unverified)
$8000-$FFFF        8/16    32 KB buffer RAM, big-endian lanes: word at x = ram[x]<<8 | ram[x+1]
                           (ref: L-a2065, N-le)
any                32      two 16-bit accesses, high word first (68000 bus) -- each through the
                           row above that matches its own offset
=================  ======  ===================================================================

Edge cases (all defined; none raises into the host)

* offsets are taken modulo 64 KB (the board decodes A15-A1 inside its slot), so -2 is $FFFE and
  $1xxxx aliases $xxxx; a long access at $FFFE wraps to $0000 for its low word.
* an odd offset in a 16-bit access is answered as the aligned word ``offset & ~1``: a 68000
  would take an address error and never reach the bus; a host that skips that check (machine68k)
  gets what the board decodes without A0. Values are masked to the access width.
* ``now=`` (integer ns) on any access first runs the chip up to that time (never backwards).
* any exception from the chip during a bus access is caught, logged on ``a2065.board`` and
  counted in ``stats["chip_errors"]``; the read returns 0xFFFF. ``strict=True`` re-raises instead
  (the test-suite uses it so chip bugs surface).

LANCE DMA: the chip sees the RAM through ``RamDma(ram, 0x7FFF)``: any 24-bit LANCE address maps
to RAM[address & 0x7FFF] (ref: W; both drivers use LANCE address 0x8000 + offset).

INT2: the chip calls back on edges of INTR && INEA; the board forwards each edge once to
``irq(level)`` and exposes ``irq_asserted`` for polling (ref: L-a2065, M-a2065: Zorro /INT2).

MAC: OUI (00:80:10 Commodore, 00:00:9F Ameristar) + low 24 bits of the serial number, big-endian
(ref: L-a2065, N-le). The board does not write PADR; the driver does.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

from . import snapshot as _snapshot
from .autoconfig import UNMAPPED_BYTE, Autoconfig, rom_bytes
from .mac import MacAddress

if TYPE_CHECKING:
    from lance.chip import Am7990, TransmitCallback
    from lance.dma import RamDma

log = logging.getLogger("a2065.board")

RAM_BASE = 0x8000
RAM_SIZE = 0x8000
LANCE_RDP = 0x4000
LANCE_RAP = 0x4002
ER_TYPE = 0xC1  # Zorro II, not memory, no diag ROM, 64 KB (ref: W, M-a2065)

#: variant -> (manufacturer, product, OUI) (ref: L-ids, N-le, W, M-a2065)
VARIANTS = {
    "commodore": (0x0202, 0x70, bytes((0x00, 0x80, 0x10))),
    "ameristar": (0x041D, 0x01, bytes((0x00, 0x00, 0x9F))),
}
ER_FLAGS = 0x00  # can be shut up (ref: W, M-a2065 "can_shutup(true) // ?"); real board unverified


def _no_report() -> None:
    pass


def checked_serial(serial: object) -> int:
    """``serial`` if it fits er_SerialNumber (32 bits), else a TypeError/ValueError that says what
    to pass (issue 16: 2**40 or -1 used to become a silently wrong MAC)."""
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise TypeError(f"serial must be an int (the board's 32-bit er_SerialNumber), not "
                        f"{type(serial).__name__}; e.g. serial=0x00123456 gives MAC 00:80:10:12:34:56")
    if not 0 <= serial <= 0xFFFFFFFF:
        raise ValueError(f"serial {serial:#x} is outside the 32-bit er_SerialNumber; pass "
                         "0..0xFFFFFFFF: its low 24 bits are the MAC's last three bytes "
                         "(serial=0x00123456 gives 00:80:10:12:34:56)")
    return serial


def mac_for(serial: int, variant: str = "commodore") -> MacAddress:
    """MAC = OUI + serial[23:0] big-endian (ref: L-a2065, N-le); prints as 00:80:10:12:34:56."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {sorted(VARIANTS)}")
    serial = checked_serial(serial)
    oui = VARIANTS[variant][2]
    return MacAddress(oui + bytes(((serial >> 16) & 0xFF, (serial >> 8) & 0xFF, serial & 0xFF)))


class A2065:
    """One A2065 card. See the module docstring for the access table and every choice."""

    #: (start, end inclusive, name, read8, read16, write8, write16): method names; the one table.
    ACCESS_TABLE = (
        (0x0000, 0x3FFF, "unmapped-low", "_r8_zero", "_r16_zero", "_w_ignore", "_w_ignore"),
        (0x4000, 0x4001, "RDP", "_r8_register", "_r16_rdp", "_w8_register", "_w16_rdp"),
        (0x4002, 0x4003, "RAP", "_r8_register", "_r16_rap", "_w8_register", "_w16_rap"),
        (0x4004, 0x7FFF, "unmapped-high", "_r8_zero", "_r16_zero", "_w_ignore", "_w_ignore"),
        (0x8000, 0xFFFF, "RAM", "_r8_ram", "_r16_ram", "_w8_ram", "_w16_ram"),
    )
    # the dispatcher's per-word handlers (index = offset >> 1), built by _build_dispatch
    _R8: tuple[Callable[[A2065, int], int], ...]
    _R16: tuple[Callable[[A2065, int], int], ...]
    _W8: tuple[Callable[[A2065, int, int], None], ...]
    _W16: tuple[Callable[[A2065, int, int], None], ...]

    def __init__(self, serial: int = 0x00123456, variant: str = "commodore",
                 timing: str = "fast", irq: Optional[Callable[[bool], None]] = None,
                 on_configured: Optional[Callable[[int], None]] = None, *,
                 transmit: Optional[TransmitCallback] = None, strict: bool = False,
                 chip_factory: Optional[Callable[..., Am7990]] = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; one of {sorted(VARIANTS)}")
        self.serial = checked_serial(serial)
        self.variant = variant
        self.timing = timing
        self.irq = irq
        self.strict = strict
        self.stats: dict[str, int] = {"byte_register_writes": 0, "chip_errors": 0}
        self._set_identity(self.serial, variant)
        self.on_configured = on_configured
        self.ram = bytearray(RAM_SIZE)
        self._irq_level = False
        if chip_factory is None:
            from lance.chip import Am7990
            from lance.dma import RamDma
            self.dma: Optional[RamDma] = RamDma(self.ram, 0x7FFF)
            self.lance: Am7990 = Am7990(self.dma, irq=self._chip_irq, transmit=transmit, timing=timing)
        else:
            self.dma = None
            self.lance = chip_factory(self.ram, irq=self._chip_irq, transmit=transmit,
                                      timing=timing)
        self._irq_level = bool(self.lance.irq_asserted)
        # The board sees every bus write to its RAM and tells the chip, so the chip need not read
        # its TX ring on every next_visible_deadline() (a chip_factory chip may lack this).
        self._ram_written: Callable[[], None] = getattr(self.lance, "ram_written", _no_report)
        if hasattr(self.lance, "ram_writes_reported"):
            self.lance.ram_writes_reported(True)

    # -- identity ----------------------------------------------------------------------------
    @property
    def mac(self) -> MacAddress:
        return mac_for(self.serial, self.variant)

    @property
    def configured(self) -> bool:
        return self.autoconfig.configured

    @property
    def shut_up(self) -> bool:
        return self.autoconfig.shut_up

    @property
    def base(self) -> Optional[int]:
        return self.autoconfig.base

    def _set_identity(self, serial: int, variant: str) -> None:
        """Serial, variant and the autoconfig image they give (unconfigured)."""
        manufacturer, product, _ = VARIANTS[variant]
        self.serial, self.variant = serial, variant
        self.autoconfig = Autoconfig(
            rom_bytes(er_type=ER_TYPE, product=product, manufacturer=manufacturer,
                      serial=serial, flags=ER_FLAGS, init_diag_vec=0),
            size=0x10000, on_configured=self._configured)

    def _configured(self, base: int) -> None:
        if self.on_configured is not None:
            self.on_configured(base)

    # -- time and interrupt --------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.lance.now

    def advance_to(self, t_ns: int) -> None:
        """Run the chip's events up to ``t_ns`` (earlier times are ignored: time is monotonic)."""
        if t_ns > self.lance.now:
            self.lance.advance_to(t_ns)

    def next_deadline(self) -> Optional[int]:
        return self.lance.next_deadline()

    def next_visible_deadline(self) -> Optional[int]:
        """The next chip event a driver can see (idle TX polls left out; see the chip's
        ``next_visible_deadline``): where a host that runs its CPU in slices ends one."""
        nvd = getattr(self.lance, "next_visible_deadline", None)
        deadline: Optional[int] = nvd() if nvd is not None else self.lance.next_deadline()
        return deadline

    @property
    def irq_asserted(self) -> bool:
        return self._irq_level

    def _chip_irq(self, level: bool) -> None:
        level = bool(level)
        if level != self._irq_level:
            self._irq_level = level
            if self.irq is not None:
                self.irq(level)

    def _sync_irq(self) -> None:
        """Forward an edge if the chip's line differs from what we last reported."""
        self._chip_irq(self.lance.irq_asserted)

    def reset(self) -> None:
        """Bus reset: autoconfig back to unconfigured, LANCE RESET pin. RAM keeps its contents
        (static RAM is not cleared by /RESET)."""
        self.autoconfig.reset()
        self.lance.reset()
        self._sync_irq()

    # -- the dispatcher ----------------------------------------------------------------------
    @classmethod
    def _build_dispatch(cls) -> None:
        """Per-word lookup lists (index = offset >> 1) built from ACCESS_TABLE alone."""
        tables: list[list[Any]] = [[None] * 0x8000 for _ in range(4)]
        for start, end, _name, *handlers in cls.ACCESS_TABLE:
            for col, meth in enumerate(handlers):
                fn = getattr(cls, meth)
                for w in range(start >> 1, (end >> 1) + 1):
                    tables[col][w] = fn
        for column in tables:
            if any(h is None for h in column):
                raise AssertionError("ACCESS_TABLE leaves a hole")
        cls._R8, cls._R16, cls._W8, cls._W16 = (tuple(t) for t in tables)

    @classmethod
    def region(cls, offset: int) -> str:
        """Name of the ACCESS_TABLE row that decodes ``offset`` (configured board)."""
        offset &= 0xFFFF
        for start, end, name, *_ in cls.ACCESS_TABLE:
            if start <= offset <= end:
                return name
        raise AssertionError("unreachable")

    def _chip_error(self, what: str, offset: int) -> None:
        self.stats["chip_errors"] += 1
        log.exception("chip raised during %s at offset $%04X", what, offset)
        if self.strict:
            raise

    def read8(self, offset: int, *, now: Optional[int] = None) -> int:
        offset &= 0xFFFF
        try:
            if now is not None and now > self.lance.now:
                self.lance.advance_to(now)
            ac = self.autoconfig
            if ac.state == "configured":
                return self._R8[offset >> 1](self, offset)
            if ac.state == "unconfigured":
                return ac.read8(offset)
            return UNMAPPED_BYTE
        except Exception:
            self._chip_error("read8", offset)
            return 0xFF

    def read16(self, offset: int, *, now: Optional[int] = None) -> int:
        offset &= 0xFFFE
        try:
            if now is not None and now > self.lance.now:
                self.lance.advance_to(now)
            ac = self.autoconfig
            if ac.state == "configured":
                return self._R16[offset >> 1](self, offset)
            if ac.state == "unconfigured":
                return ac.read16(offset)
            return 0xFFFF
        except Exception:
            self._chip_error("read16", offset)
            return 0xFFFF

    def read32(self, offset: int, *, now: Optional[int] = None) -> int:
        hi = self.read16(offset, now=now)
        return (hi << 16) | self.read16(offset + 2)

    def write8(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        offset &= 0xFFFF
        try:
            if now is not None and now > self.lance.now:
                self.lance.advance_to(now)
            ac = self.autoconfig
            if ac.state == "configured":
                self._W8[offset >> 1](self, offset, value & 0xFF)
            elif ac.state == "unconfigured":
                ac.write8(offset, value)
        except Exception:
            self._chip_error("write8", offset)

    def write16(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        offset &= 0xFFFE
        try:
            if now is not None and now > self.lance.now:
                self.lance.advance_to(now)
            ac = self.autoconfig
            if ac.state == "configured":
                self._W16[offset >> 1](self, offset, value & 0xFFFF)
            elif ac.state == "unconfigured":
                ac.write16(offset, value)
        except Exception:
            self._chip_error("write16", offset)

    def write32(self, offset: int, value: int, *, now: Optional[int] = None) -> None:
        self.write16(offset, (value >> 16) & 0xFFFF, now=now)
        self.write16(offset + 2, value & 0xFFFF)

    # -- row handlers (offset already masked; 16-bit handlers get an even offset) -----------
    def _r8_zero(self, offset: int) -> int:
        return 0

    def _r16_zero(self, offset: int) -> int:
        return 0

    def _w_ignore(self, offset: int, value: int) -> None:
        pass

    def _r16_rdp(self, offset: int) -> int:
        return self.lance.read_rdp() & 0xFFFF

    def _r16_rap(self, offset: int) -> int:
        return self.lance.read_rap() & 0xFFFF

    def _w16_rdp(self, offset: int, value: int) -> None:
        self.lance.write_rdp(value)

    def _w16_rap(self, offset: int, value: int) -> None:
        self.lance.write_rap(value)

    def _r8_register(self, offset: int) -> int:
        word = self._R16[offset >> 1](self, offset & 0xFFFE)
        return (word & 0xFF) if offset & 1 else (word >> 8)

    def _w8_register(self, offset: int, value: int) -> None:
        self.stats["byte_register_writes"] += 1
        log.debug("byte write $%02X to LANCE register offset $%04X ignored", value, offset)

    def _r8_ram(self, offset: int) -> int:
        return self.ram[offset - RAM_BASE]

    def _r16_ram(self, offset: int) -> int:
        o = offset - RAM_BASE
        ram = self.ram
        return (ram[o] << 8) | ram[o + 1]

    def _w8_ram(self, offset: int, value: int) -> None:
        self.ram[offset - RAM_BASE] = value
        self._ram_written()

    def _w16_ram(self, offset: int, value: int) -> None:
        o = offset - RAM_BASE
        self.ram[o] = value >> 8
        self.ram[o + 1] = value & 0xFF
        self._ram_written()

    def ram_written(self) -> None:
        """Say that ``board.ram`` was written other than through the bus (a host that pokes it
        directly): the chip looks at its TX ring again for ``next_deadline()``."""
        self._ram_written()

    # -- snapshot ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return _snapshot.board_state(self)

    def restore(self, state: dict[str, Any]) -> None:
        _snapshot.restore_board(self, state)

    @classmethod
    def from_snapshot(cls, state: dict[str, Any], **kwargs: Any) -> "A2065":
        return _snapshot.board_from_state(cls, state, **kwargs)


A2065._build_dispatch()
