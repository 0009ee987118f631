"""Plug A2065 cards into any Python CPU emulator: a 24-bit bus window plus cycle-based time.

Complete example (the CPU object is whatever your emulator has)::

    from a2065 import A2065
    from a2065.adapters.generic import GenericAdapter

    card = A2065(serial=0x00123456)
    zorro = GenericAdapter([card], cpu_hz=7_093_790)        # PAL A500/A2000 clock

    def mem_read16(addr):                                    # your CPU's memory handler
        if zorro.claims(addr):                               # $E80000 window or a card's base
            return zorro.read16(addr, cycles=cpu.cycles)     # catches the card up first
        return ram_read16(addr)
    # ... the same for read8/read32/write8/write16/write32

    while running:
        cpu.set_irq_level(zorro.irq_level())                # 2 while INT2 is asserted, else 0
        cpu.run(zorro.slice_cycles(cpu.cycles, max_cycles=20_000))
        zorro.catch_up(cpu.cycles)                           # run due card events

Time: emulated ns = ``t0 + (cycles - c0) * 10**9 // cpu_hz`` (integer math, floor), where ``c0``
is the cycle count given as ``start_cycles`` and ``t0`` the cards' time when the adapter was made.
``next_deadline_cycles()`` returns the first cycle count at which the earliest card event is due
(exact inverse of the floor), so a CPU slice that ends there runs it on time.

INT2 is wired-OR across the cards: ``irq_level()`` is 2 if any card asserts it, else 0, and
``on_irq(level)`` (optional) is called with 2 or 0 on each change of that OR.
``on_map(base, size)`` (optional) is called when the OS configures a card, for hosts that
register memory handlers per page (the $E80000 window is ``AUTOCONFIG_WINDOW``).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

from lance.timing import cycles_to_ns_floor, ns_to_cycles_ceil

from ..autoconfig import CONFIG_WINDOW, E_EXPANSIONBASE, ZorroBoard, ZorroChain

AUTOCONFIG_WINDOW = (E_EXPANSIONBASE, CONFIG_WINDOW)
INT2 = 2


class GenericAdapter:
    """A Zorro II bus with A2065 cards (or any board with the same interface) for a CPU core."""

    def __init__(self, boards: Iterable[ZorroBoard], *, cpu_hz: int, start_cycles: int = 0,
                 on_irq: Optional[Callable[[int], None]] = None,
                 on_map: Optional[Callable[[int, int], None]] = None) -> None:
        if int(cpu_hz) <= 0:
            raise ValueError("cpu_hz must be positive")
        self.cpu_hz = int(cpu_hz)
        self.chain = ZorroChain(boards)
        self.on_irq = on_irq
        self.on_map = on_map
        self.c0 = int(start_cycles)
        self.t0 = self.chain.now()
        self._level = 0
        self.chain.watch_irq(self._irq_changed)
        for b in self.chain.boards:
            if hasattr(b, "on_configured"):
                b.on_configured = self._wrap_configured(b, b.on_configured)
        self._level = self.irq_level()

    # -- wiring ------------------------------------------------------------------------------
    def _wrap_configured(self, board: ZorroBoard,
                         prev: Optional[Callable[[int], None]]) -> Callable[[int], None]:
        def configured(base: int) -> None:
            if prev is not None:
                prev(base)
            if self.on_map is not None:
                self.on_map(base, board.autoconfig.size)
        return configured

    def _irq_changed(self) -> None:
        level = self.irq_level()
        if level != self._level:
            self._level = level
            if self.on_irq is not None:
                self.on_irq(level)

    # -- time --------------------------------------------------------------------------------
    def now_ns(self, cycles: int) -> int:
        return self.t0 + cycles_to_ns_floor(int(cycles) - self.c0, self.cpu_hz)

    def catch_up(self, cycles: int) -> None:
        """Run every card's events due by CPU time ``cycles``."""
        self.chain.advance_to(self.now_ns(cycles))

    def next_deadline_cycles(self) -> Optional[int]:
        """Absolute CPU cycle count of the earliest pending card event, or None. Every event,
        idle TX polls included: this adapter cannot end a CPU slice when a write hands a TMD to
        the chip (machine68k can, and leaves idle polls out with ``next_visible_deadline``)."""
        d = self.chain.next_deadline()
        if d is None:
            return None
        return self.c0 + max(0, ns_to_cycles_ceil(d - self.t0, self.cpu_hz))

    def slice_cycles(self, cycles: int, max_cycles: int) -> int:
        """How many cycles the CPU may run from ``cycles`` before a card event is due (>= 1)."""
        d = self.next_deadline_cycles()
        if d is None:
            return max(1, int(max_cycles))
        return max(1, min(int(max_cycles), d - int(cycles)))

    # -- interrupt ---------------------------------------------------------------------------
    def irq_level(self) -> int:
        return INT2 if self.chain.irq_asserted else 0

    # -- bus ---------------------------------------------------------------------------------
    def claims(self, addr: int) -> bool:
        """True for the $E80000 window (whether or not a card is in it) and configured cards."""
        addr &= 0xFFFFFF
        if E_EXPANSIONBASE <= addr < E_EXPANSIONBASE + CONFIG_WINDOW:
            return True
        return self.chain.route(addr) is not None

    def mapped_ranges(self) -> list[tuple[int, int]]:
        """[(base, size)] the host should route here: the window and every configured card."""
        out = [AUTOCONFIG_WINDOW]
        for b in self.chain.boards:
            ac = b.autoconfig
            if ac.configured:
                out.append((ac.base, ac.size))  # type: ignore[arg-type]  # configured: base set
        return out

    def _now(self, cycles: Optional[int]) -> Optional[int]:
        return None if cycles is None else self.now_ns(cycles)

    def read8(self, addr: int, cycles: Optional[int] = None) -> int:
        return self.chain.read8(addr, now=self._now(cycles))

    def read16(self, addr: int, cycles: Optional[int] = None) -> int:
        return self.chain.read16(addr, now=self._now(cycles))

    def read32(self, addr: int, cycles: Optional[int] = None) -> int:
        return self.chain.read32(addr, now=self._now(cycles))

    def write8(self, addr: int, value: int, cycles: Optional[int] = None) -> None:
        self.chain.write8(addr, value, now=self._now(cycles))

    def write16(self, addr: int, value: int, cycles: Optional[int] = None) -> None:
        self.chain.write16(addr, value, now=self._now(cycles))

    def write32(self, addr: int, value: int, cycles: Optional[int] = None) -> None:
        self.chain.write32(addr, value, now=self._now(cycles))

    def reset(self) -> None:
        """Bus reset (CPU RESET instruction or power-on): every card back to unconfigured."""
        self.chain.reset()
