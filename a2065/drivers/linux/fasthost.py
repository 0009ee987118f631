"""The harness's Machine68kHost: a doorbell interrupt, and a shortcut for the A2065's buffer RAM.

``HarnessHost`` adds the host's doorbell (hostif.h): a level-6 interrupt the host raises when a
jiffy goes by or when it leaves work for the 68000, acknowledged by the 68000 writing EXTER
(bit 13, SET/CLR clear) to INTREQ at $DFF09C, as an Amiga acknowledges its level-6 sources. The
kernel loop sleeps in STOP between interrupts, so an idle 68000 costs the host nothing.

The driver copies every frame between its skbs and the card's 32 KB RAM with word and long moves;
through the generic handlers each access costs a chip catch-up and a deadline check. Those are
needed for register accesses (a write may schedule a chip event) but not for RAM: a machine68k
slice never runs past the cards' next deadline, so no chip event is due inside it, and a RAM
access schedules none. ``RamFastPathHost`` therefore answers even-aligned word/long accesses and
byte accesses at board offsets $8000-$FFFF of a configured A2065 straight from ``board.ram``
(big-endian lanes, as the board's own RAM rows), and hands everything else, including the first
card access after an INT2 rising edge (the latency probe), to the generic handlers.
"""
from __future__ import annotations

from a2065 import A2065
from a2065.adapters.machine68k import Machine68kHost
from a2065.autoconfig import Autoconfig

RAM_START = 0x8000
A2065_CONFIGURED = Autoconfig.CONFIGURED
RAM_END = 0x10000
CUSTOM_PAGE = 0xDF0000
INTREQ = 0xDFF09C
INTF_SETCLR, INTF_EXTER = 0x8000, 0x2000
DOORBELL_LEVEL = 6


class HarnessHost(Machine68kHost):

    def __init__(self, *a, **kw):
        self.doorbell = False
        self.doorbells = 0
        super().__init__(*a, **kw)
        self.mem.set_special_range_read_funcs(CUSTOM_PAGE, 1, r8=lambda addr: 0,
                                              r16=lambda addr: 0, r32=lambda addr: 0)
        self.mem.set_special_range_write_funcs(CUSTOM_PAGE, 1, w8=lambda addr, v: None,
                                               w16=self._custom_w16, w32=self._custom_w32)

    def ring(self) -> None:
        """Raise the doorbell (level 6) until the 68000 acknowledges it."""
        if not self.doorbell:
            self.doorbell = True
            self.doorbells += 1
            self._irq_changed()

    def _or_level(self) -> int:
        if getattr(self, "doorbell", False):
            return DOORBELL_LEVEL
        return super()._or_level()

    def _custom_w16(self, addr, value):
        if addr == INTREQ and not value & INTF_SETCLR and value & INTF_EXTER:
            self.doorbell = False
            self._irq_changed()

    def _custom_w32(self, addr, value):
        self._custom_w16(addr, (value >> 16) & 0xFFFF)
        self._custom_w16(addr + 2, value & 0xFFFF)


class RamFastPathHost(HarnessHost):

    def _handlers(self, page):
        r8, r16, r32, w8, w16, w32 = super()._handlers(page)
        pages = self._pages
        stats = self.stats
        host = self

        def ram(addr, width):
            """board.ram and the RAM offset, or None when the generic path must answer."""
            if host._irq_pending_rise is not None:
                return None
            b = pages.get(page)
            if b is None or type(b) is not A2065:
                return None
            ac = b.autoconfig
            if ac.state != ac.CONFIGURED or ac.base != page:
                return None
            o = addr - page
            if o < RAM_START or o + width > RAM_END or (width > 1 and o & 1):
                return None
            return b.ram, o - RAM_START

        def fr8(addr):
            x = ram(addr, 1)
            if x is None:
                return r8(addr)
            stats["mmio_reads"] += 1
            return x[0][x[1]]

        # the word and long handlers are the hot path (the driver's copies): the checks of ram()
        # written out inline, one Python call per access
        configured = A2065_CONFIGURED

        def fr16(addr):
            b = pages.get(page)
            if b is not None and b.__class__ is A2065 and host._irq_pending_rise is None:
                ac = b.autoconfig
                o = addr - page - RAM_START
                if ac.state == configured and ac.base == page and 0 <= o <= 0x7FFE and not o & 1:
                    stats["mmio_reads"] += 1
                    m = b.ram
                    return (m[o] << 8) | m[o + 1]
            return r16(addr)

        def fr32(addr):
            b = pages.get(page)
            if b is not None and b.__class__ is A2065 and host._irq_pending_rise is None:
                ac = b.autoconfig
                o = addr - page - RAM_START
                if ac.state == configured and ac.base == page and 0 <= o <= 0x7FFC and not o & 1:
                    stats["mmio_reads"] += 1
                    return int.from_bytes(b.ram[o:o + 4], "big")
            return r32(addr)

        def fw8(addr, value):
            x = ram(addr, 1)
            if x is None:
                return w8(addr, value)
            stats["mmio_writes"] += 1
            x[0][x[1]] = value & 0xFF

        def fw16(addr, value):
            b = pages.get(page)
            if b is not None and b.__class__ is A2065 and host._irq_pending_rise is None:
                ac = b.autoconfig
                o = addr - page - RAM_START
                if ac.state == configured and ac.base == page and 0 <= o <= 0x7FFE and not o & 1:
                    stats["mmio_writes"] += 1
                    m = b.ram
                    m[o] = (value >> 8) & 0xFF
                    m[o + 1] = value & 0xFF
                    return
            w16(addr, value)

        def fw32(addr, value):
            b = pages.get(page)
            if b is not None and b.__class__ is A2065 and host._irq_pending_rise is None:
                ac = b.autoconfig
                o = addr - page - RAM_START
                if ac.state == configured and ac.base == page and 0 <= o <= 0x7FFC and not o & 1:
                    stats["mmio_writes"] += 1
                    b.ram[o:o + 4] = (value & 0xFFFFFFFF).to_bytes(4, "big")
                    return
            w32(addr, value)

        return fr8, fr16, fr32, fw8, fw16, fw32
