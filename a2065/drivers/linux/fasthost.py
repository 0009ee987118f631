"""Machine68kHost with a shortcut for the A2065's buffer RAM (the harness's own speed-up).

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

RAM_START = 0x8000
RAM_END = 0x10000


class RamFastPathHost(Machine68kHost):

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

        def fr16(addr):
            x = ram(addr, 2)
            if x is None:
                return r16(addr)
            stats["mmio_reads"] += 1
            m, o = x
            return (m[o] << 8) | m[o + 1]

        def fr32(addr):
            x = ram(addr, 4)
            if x is None:
                return r32(addr)
            stats["mmio_reads"] += 1
            return int.from_bytes(x[0][x[1]:x[1] + 4], "big")

        def fw8(addr, value):
            x = ram(addr, 1)
            if x is None:
                return w8(addr, value)
            stats["mmio_writes"] += 1
            x[0][x[1]] = value & 0xFF

        def fw16(addr, value):
            x = ram(addr, 2)
            if x is None:
                return w16(addr, value)
            stats["mmio_writes"] += 1
            m, o = x
            m[o] = (value >> 8) & 0xFF
            m[o + 1] = value & 0xFF

        def fw32(addr, value):
            x = ram(addr, 4)
            if x is None:
                return w32(addr, value)
            stats["mmio_writes"] += 1
            m, o = x
            m[o:o + 4] = (value & 0xFFFFFFFF).to_bytes(4, "big")

        return fr8, fr16, fr32, fw8, fw16, fw32
