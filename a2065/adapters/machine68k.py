"""Run A2065 cards under machine68k 0.4.1 (Musashi 68000 through Cython; used by amitools).

What machine68k gives and what this adapter builds around it (measured, see
docs/architecture.md "68000 program and machine68k adapter"):

* Memory callbacks per 64 KiB page (``set_special_range_read_funcs/_write_funcs``), full 24-bit
  addresses, one handler per width. It does not split long accesses: ``r32``/``w32`` here issue
  two 16-bit bus cycles, high word first, as the 68000 does. Values are masked to the width.
  There is no unmap: a configured board's page is registered on ``on_configured`` and stays
  registered; its handler re-checks the board is still configured there (after a reset the
  page falls back to the Zorro chain's routing, i.e. open bus).
* No Python API raises interrupts. The extension's own ``m68k_set_irq`` (same shared object,
  reached with ctypes) does: level 2 -> autovector 26 at $68, level-triggered. It is applied only
  *between* ``execute()`` calls (never from inside a memory callback); an INT2 edge inside a
  callback ends the timeslice (``m68k_end_timeslice``) so the next slice starts with the new
  level. The interrupt-acknowledge callback is not wired in this build, so IRQ latency is
  measured as "rising edge -> first access to a card" (``irq_latencies_ns``).
* No bus or address errors: an odd word access reaches the handlers, an unmapped address calls
  the "invalid" hook and reads 0. With ``bus_errors=True`` (default) an access to nothing makes
  the adapter end the slice and enter the 68000 bus-error exception itself (vector 2, 14-byte
  group-0 frame; the stacked PC is the next instruction's, an approximation). Unmapped accesses
  are always recorded in ``invalid_accesses``.
* An exception raised in a callback: machine68k completes the instruction and re-raises it from
  ``execute()``. This adapter does not rely on that: every handler catches, keeps the *first*
  exception, returns an all-ones value, ends the slice, and ``run()`` re-raises it after the
  card has been caught up, so nothing is lost even if several handlers fail in one slice.
* The RESET instruction calls ``set_reset_instr_callback``: the adapter resets the Zorro chain
  (bus reset), so cards return to $E80000 unconfigured. ``reset()`` (``pulse_reset``) is the
  CPU's reset input only.
* One machine per process (all CPU and memory state is global C data): creating a second
  ``Machine68kHost`` in a process raises ``RuntimeError``. Run each scenario in its own process
  (``python -m a2065.adapters.m68k_runner``, used by the tests and the benchmark).

Time: emulated ns = ``t0 + cycles * 10**9 // cpu_hz`` (integer floor), ``cycles`` counted since
the adapter was made; callbacks add the current slice's ``m68k_cycles_run()``. Slices end at the
cards' ``next_visible_deadline()`` (rounded up to a whole cycle: every event a driver can see; an
idle TX poll is none, so an idle card never cuts a slice) and at ``max_slice_cycles``; a write
that schedules an earlier card event (a TMD handed to the chip, TDMD, INIT, STRT) ends the slice
too. ``run()`` catches the cards up after every slice, so idle polls still run at their times.
"""
from __future__ import annotations

import collections
import ctypes
import logging
from typing import Any, Callable, Iterable, Optional, Union

from lance.timing import cycles_to_ns_floor, ns_to_cycles_ceil

from ..autoconfig import E_EXPANSIONBASE, ZorroBoard, ZorroChain

log = logging.getLogger("a2065.adapters.machine68k")

PAL_HZ = 7_093_790          # A500/A2000 PAL 68000 clock
NTSC_HZ = 7_159_090
PAGE = 0x10000
INT2 = 2
VEC_BUS_ERROR = 2
LOG_MAX = 100_000

_IN_USE = False


class BusError(RuntimeError):
    """An access to an address nothing answers (recorded; raised only with strict_bus=True)."""


class Machine68kHost:
    """A 68000 (machine68k), ``ram_kib`` of RAM at $000000, and a Zorro II chain of cards."""

    def __init__(self, boards: Iterable[ZorroBoard] = (), *, ram_kib: int = 64, cpu_hz: int = PAL_HZ,
                 max_slice_cycles: int = 50_000, bus_errors: bool = True,
                 strict_bus: bool = False, cpu_type: str = "68000") -> None:
        global _IN_USE
        if _IN_USE:
            raise RuntimeError("machine68k keeps one CPU per process: run each machine in its "
                               "own process (see a2065.adapters.m68k_runner)")
        import machine68k
        from machine68k import CPUType, Machine

        if int(cpu_hz) <= 0:
            raise ValueError("cpu_hz must be positive")
        _IN_USE = True
        self.cpu_hz = int(cpu_hz)
        self.max_slice_cycles = max(1, int(max_slice_cycles))
        self.bus_errors = bus_errors
        self.strict_bus = strict_bus
        ctype = {"68000": CPUType.M68000}[cpu_type]
        self.machine = Machine(ctype, int(ram_kib))
        self.cpu, self.mem = self.machine.cpu, self.machine.mem
        self.ram_size = int(ram_kib) * 1024
        lib = ctypes.CDLL(machine68k.__file__)  # the very library Python loaded: same CPU
        lib.m68k_cycles_run.restype = ctypes.c_int
        lib.m68k_set_irq.argtypes = [ctypes.c_uint]
        self._lib = lib
        self._cycles_run = lib.m68k_cycles_run
        self._end_timeslice = lib.m68k_end_timeslice
        self.chain = ZorroChain(boards)
        self.t0 = self.chain.now()
        self.cycles = 0                 # CPU cycles run since the adapter was made
        self._slice_base = 0
        self._slice_end_ns = 0
        self._in_execute = False
        self._error: Optional[BaseException] = None
        self._bus_fault: Optional[tuple[int, bool]] = None  # (addr, write) pending bus error
        self._irq_cpu = 0               # level the CPU has been given
        self._irq_pending_rise: Optional[int] = None  # ns of a rising edge not yet followed by a card access
        # bounded logs (the newest LOG_MAX entries): a host may run for hours
        # (t_ns, level) of the INT2 OR
        self.irq_edges: collections.deque[tuple[int, int]] = collections.deque(maxlen=LOG_MAX)
        self.irq_latencies_ns: collections.deque[int] = collections.deque(maxlen=LOG_MAX)
        # (t_ns, "R"/"W", width, addr)
        self.invalid_accesses: collections.deque[tuple[int, str, Any, int]] = \
            collections.deque(maxlen=LOG_MAX)
        self.errors_raised = 0
        self.stats: dict[str, int] = {"slices": 0, "mmio_reads": 0, "mmio_writes": 0, "timeslice_ends": 0,
                      "bus_errors": 0}
        self._pages: dict[int, Optional[ZorroBoard]] = {}  # page -> its board (None: chain only)
        self.chain.watch_irq(self._irq_changed)
        for b in self.chain.boards:
            ac = b.autoconfig
            ac.on_configured = self._wrap_configured(b, ac.on_configured)
        self._map_page(E_EXPANSIONBASE, None)          # the autoconfig window, always
        for b in self.chain.boards:                     # boards restored already configured
            if b.autoconfig.configured:
                self._map_board(b)
        self.mem.set_invalid_func(self._invalid)
        self.cpu.set_reset_instr_callback(self._reset_instruction)
        self.bus_resets = 0
        self._irq_level = self._or_level()

    # ------------------------------------------------------------------ loading / reset
    def load(self, data: bytes, addr: int = 0) -> None:
        self.mem.w_block(int(addr), bytes(data))

    def reset(self) -> None:
        """68000 RESET: reload SSP/PC from $0/$4 (the chain is not reset: call chain.reset())."""
        self.cpu.pulse_reset()

    def _reset_instruction(self, *_: object) -> None:
        """The 68000 RESET instruction drives the bus reset line: every board goes back to
        unconfigured (ref: HRM, reference section 2). Pages stay registered (no unmap); their
        handlers fall back to the chain's routing, so the old base reads as open bus."""
        self.bus_resets += 1
        try:
            self.chain.reset()
        except BaseException as e:
            self._keep(e)

    def read_block(self, addr: int, size: int) -> bytes:
        return bytes(self.mem.r_block(int(addr), int(size)))

    # ------------------------------------------------------------------ time
    def now_ns(self) -> int:
        """Emulated time of the CPU now (inside a callback: at the current instruction)."""
        c = self.cycles
        if self._in_execute:
            c = self._slice_base + self._cycles_run()
        return self.t0 + cycles_to_ns_floor(c, self.cpu_hz)

    def _catch_up(self) -> None:
        self.chain.advance_to(self.t0 + cycles_to_ns_floor(self.cycles, self.cpu_hz))

    # ------------------------------------------------------------------ running
    def run(self, cycles: int) -> int:
        """Run the CPU for ``cycles`` cycles of emulated time (more by at most one instruction),
        in slices bounded by the cards' deadlines. Re-raises the first exception a callback
        raised, after catching the cards up to the CPU. Returns the cycles run."""
        start = self.cycles
        target = start + max(0, int(cycles))
        while self.cycles < target:
            self._apply_irq()
            n = min(target - self.cycles, self.max_slice_cycles)
            dl = self.chain.next_visible_deadline()
            self._slice_end_ns = self.t0 + cycles_to_ns_floor(self.cycles + n, self.cpu_hz)
            if dl is not None:
                to_dl = ns_to_cycles_ceil(dl - self.t0, self.cpu_hz) - self.cycles
                if to_dl <= n:
                    n = max(1, to_dl)
                    self._slice_end_ns = dl     # the deadline is this slice's end
            self._slice_base = self.cycles
            self._in_execute = True
            ran = None
            try:
                ran = self.cpu.execute(n).cycles
            except BaseException as e:  # raised by machine68k itself (not via our handlers)
                self._keep(e)
            finally:
                self._in_execute = False
                if ran is None:
                    ran = max(0, int(self._cycles_run()))
            self.stats["slices"] += 1
            self.cycles += ran
            self._catch_up()
            if self._bus_fault is not None:
                self._enter_bus_error()
            if self._error is not None:
                err, self._error = self._error, None
                self.errors_raised += 1
                raise err
        self._apply_irq()
        return self.cycles - start

    def run_ns(self, ns: int) -> int:
        return self.run(ns_to_cycles_ceil(int(ns), self.cpu_hz))

    def run_until(self, predicate: Callable[[], object], *, max_cycles: int, step_cycles: int = 20_000) -> bool:
        """Run in steps until ``predicate()`` is true; False if ``max_cycles`` ran first."""
        end = self.cycles + int(max_cycles)
        while not predicate():
            if self.cycles >= end:
                return False
            self.run(min(step_cycles, end - self.cycles))
        return True

    def _keep(self, e: BaseException) -> None:
        if self._error is None:
            self._error = e
        else:
            log.error("further exception in a callback after %r: %r", self._error, e)
        if self._in_execute:
            self._end_timeslice()
            self.stats["timeslice_ends"] += 1

    # ------------------------------------------------------------------ interrupts
    def _or_level(self) -> int:
        return INT2 if self.chain.irq_asserted else 0

    def _irq_changed(self) -> None:
        level = self._or_level()
        if level == self._irq_level:
            return
        self._irq_level = level
        t = self.now_ns()
        self.irq_edges.append((t, level))
        self._irq_pending_rise = t if level else None
        if self._in_execute:        # apply between slices: end this one now
            self._end_timeslice()
            self.stats["timeslice_ends"] += 1

    def _apply_irq(self) -> None:
        if self._irq_level != self._irq_cpu:
            self._lib.m68k_set_irq(self._irq_level)
            self._irq_cpu = self._irq_level

    @property
    def irq_level(self) -> int:
        return self._irq_level

    # ------------------------------------------------------------------ mapping
    def _wrap_configured(self, board: ZorroBoard,
                         prev: Optional[Callable[[int], None]]) -> Callable[[int], None]:
        def configured(base: int) -> None:
            if prev is not None:
                prev(base)
            self._map_board(board)
        return configured

    def _map_board(self, board: ZorroBoard) -> None:
        ac = board.autoconfig
        for page in range(ac.base, ac.base + ac.size, PAGE):  # type: ignore[arg-type,operator]  # configured
            self._map_page(page, board)

    def _map_page(self, page: int, board: Optional[ZorroBoard]) -> None:
        page &= 0xFF0000
        if page < self.ram_size:
            raise ValueError(f"card page ${page:06X} overlaps CPU RAM")
        if page in self._pages:
            if board is not None and self._pages[page] is None:
                self._pages[page] = board  # fast path for a page first mapped as chain-only
            return
        self._pages[page] = board
        r8, r16, r32, w8, w16, w32 = self._handlers(page)
        self.mem.set_special_range_read_funcs(page, 1, r8=r8, r16=r16, r32=r32)
        self.mem.set_special_range_write_funcs(page, 1, w8=w8, w16=w16, w32=w32)

    def _target(self, page: int, addr: int) -> tuple[Union[ZorroBoard, ZorroChain], int]:
        """(reader/writer object, address for it): the page's board if it is configured at this
        page, else the Zorro chain with the full address."""
        b = self._pages.get(page)
        if b is not None:
            ac = b.autoconfig
            if ac.state == ac.CONFIGURED and ac.base <= addr < ac.base + ac.size:  # type: ignore[operator]  # configured: base set
                return b, addr - ac.base  # type: ignore[operator]
        return self.chain, addr

    def _touch(self, t: int) -> None:
        if self._irq_pending_rise is not None:
            self.irq_latencies_ns.append(t - self._irq_pending_rise)
            self._irq_pending_rise = None

    def _after_write(self) -> None:
        if self._in_execute:
            dl = self.chain.next_visible_deadline()
            if dl is not None and dl < self._slice_end_ns:
                self._end_timeslice()
                self.stats["timeslice_ends"] += 1

    def _handlers(self, page: int) -> tuple[Callable[[int], int], Callable[[int], int],
                                             Callable[[int], int], Callable[[int, int], None],
                                             Callable[[int, int], None], Callable[[int, int], None]]:
        """The six machine68k handlers of one 64 KiB page.

        Reads pass no ``now``: a slice never runs past the cards' next deadline, and a write
        that schedules an earlier event ends the slice, so no card event is due between the
        slice start (when the cards were caught up) and any read inside it; a read therefore
        sees exactly what it would see with the card advanced to the instruction's time.
        Writes do pass ``now`` (integer ns of the instruction) so the events they start
        (TDMD, INIT, STRT) are scheduled at the right time, then ``_after_write`` checks it.
        """
        stats = self.stats
        keep = self._keep
        target = self._target
        now_ns = self.now_ns

        def touch() -> None:  # IRQ latency probe: first card access after a rising edge
            if self._irq_pending_rise is not None:
                self._touch(now_ns())

        def r8(addr: int) -> int:
            stats["mmio_reads"] += 1
            try:
                touch()
                obj, a = target(page, addr)
                return obj.read8(a) & 0xFF
            except BaseException as e:
                keep(e)
                return 0xFF

        def r16(addr: int) -> int:
            stats["mmio_reads"] += 1
            try:
                touch()
                obj, a = target(page, addr)
                return obj.read16(a) & 0xFFFF
            except BaseException as e:
                keep(e)
                return 0xFFFF

        def r32(addr: int) -> int:
            stats["mmio_reads"] += 1
            try:
                touch()
                obj, a = target(page, addr)
                hi = obj.read16(a) & 0xFFFF           # high word first, as the 68000 bus
                a2 = (addr + 2) & 0xFFFFFF
                obj, a = target(a2 & 0xFF0000, a2)
                return (hi << 16) | (obj.read16(a) & 0xFFFF)
            except BaseException as e:
                keep(e)
                return 0xFFFFFFFF

        def w8(addr: int, value: int) -> None:
            stats["mmio_writes"] += 1
            try:
                t = now_ns()
                self._touch(t)
                obj, a = target(page, addr)
                obj.write8(a, value & 0xFF, now=t)
                self._after_write()
            except BaseException as e:
                keep(e)

        def w16(addr: int, value: int) -> None:
            stats["mmio_writes"] += 1
            try:
                t = now_ns()
                self._touch(t)
                obj, a = target(page, addr)
                obj.write16(a, value & 0xFFFF, now=t)
                self._after_write()
            except BaseException as e:
                keep(e)

        def w32(addr: int, value: int) -> None:
            stats["mmio_writes"] += 1
            try:
                t = now_ns()
                self._touch(t)
                obj, a = target(page, addr)
                obj.write16(a, (value >> 16) & 0xFFFF, now=t)
                a2 = (addr + 2) & 0xFFFFFF
                obj, a = target(a2 & 0xFF0000, a2)
                obj.write16(a, value & 0xFFFF, now=now_ns())
                self._after_write()
            except BaseException as e:
                keep(e)

        return r8, r16, r32, w8, w16, w32

    # ------------------------------------------------------------------ bus errors
    def _invalid(self, mode: Union[str, bytes, int], width: Any, addr: int) -> None:
        write = mode in ("W", "w", ord("W"), b"W")
        self.invalid_accesses.append((self.now_ns(), "W" if write else "R", width, addr))
        if self.strict_bus:
            self._keep(BusError(f"{'write' if write else 'read'} at ${addr:06X}: no memory"))
        elif self.bus_errors and self._bus_fault is None:
            self._bus_fault = (addr & 0xFFFFFF, write)
            if self._in_execute:
                self._end_timeslice()

    def _enter_bus_error(self) -> None:
        """68000 group-0 exception for the recorded fault: push PC, SR, IR, access address and
        the special status word, enter supervisor mode with trace off, jump via vector 2."""
        from machine68k import Register

        addr, write = self._bus_fault  # type: ignore[misc]  # called only with a fault pending
        self._bus_fault = None
        self.stats["bus_errors"] += 1
        cpu, mem = self.cpu, self.mem
        sr = cpu.r_sr()
        pc = cpu.r_pc()
        ir = mem.r16(pc & 0xFFFFFE) if pc + 2 <= self.ram_size else 0
        cpu.w_sr((sr | 0x2000) & ~0x8000)          # Musashi swaps to the SSP itself
        sp = cpu.r_reg(Register.A7) - 14
        status = (0 if write else 0x10) | (0x5 if sr & 0x2000 else 0x1)  # R/W, FC data space
        mem.w16(sp, status)
        mem.w32(sp + 2, addr)
        mem.w16(sp + 6, ir)
        mem.w16(sp + 8, sr)
        mem.w32(sp + 10, pc)
        cpu.w_reg(Register.A7, sp)
        cpu.w_pc(mem.r32(VEC_BUS_ERROR * 4))
