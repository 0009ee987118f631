"""The generic host adapter: 24-bit bus, autoconfig, cycle time, INT2, deadlines."""
from hypothesis import given
from hypothesis import strategies as st

from a2065 import A2065, RamCard
from a2065.adapters.generic import GenericAdapter
from a2065.autoconfig import decode_nibbles
from a2065.drivers import LinuxA2065Driver
from lance.timing import cycles_to_ns_floor, ns_to_cycles_ceil

PAL_HZ = 7_093_790
BROADCAST = b"\xff" * 6


def bus_with(*boards, **kw):
    return GenericAdapter(list(boards), cpu_hz=PAL_HZ, **kw)


def configure(bus, base=0xE90000):
    bus.write8(0xE8004A, ((base >> 16) & 0xF) << 4)
    bus.write8(0xE80048, (base >> 16) & 0xFF)


@given(cycles=st.integers(0, 1 << 48), hz=st.integers(1, 100_000_000))
def test_the_adapters_cycle_time_is_the_integer_floor_of_lance_timing(cycles, hz):
    assert GenericAdapter([], cpu_hz=hz).now_ns(cycles) == cycles_to_ns_floor(cycles, hz)
    assert cycles_to_ns_floor(cycles, hz) == cycles * 10**9 // hz


@given(ns=st.integers(0, 1 << 48), hz=st.integers(1, 100_000_000))
def test_cycles_for_ns_is_the_first_cycle_count_that_reaches_the_time(ns, hz):
    c = ns_to_cycles_ceil(ns, hz)
    assert cycles_to_ns_floor(c, hz) >= ns
    assert c == 0 or cycles_to_ns_floor(c - 1, hz) < ns


def test_the_adapter_claims_the_window_and_then_the_configured_slot():
    mapped = []
    card = A2065(strict=True)
    bus = bus_with(card, on_map=lambda base, size: mapped.append((base, size)))
    assert bus.claims(0xE80000) and bus.claims(0xE8FFFF) and not bus.claims(0xE90000)
    assert decode_nibbles(lambda o: bus.read8(0xE80000 + o))[:2] == b"\xc1\x70"
    configure(bus)
    assert mapped == [(0xE90000, 0x10000)] and card.base == 0xE90000
    assert bus.claims(0xE94000) and not bus.claims(0xEA0000)
    assert bus.mapped_ranges() == [(0xE80000, 0x10000), (0xE90000, 0x10000)]
    bus.write32(0xE98000, 0xDEADBEEF)
    assert bus.read32(0xE98000) == 0xDEADBEEF and card.ram[:4] == bytes.fromhex("deadbeef")
    assert bus.read16(0xE80000) == 0xFFFF  # window empty now


def test_an_access_with_cycles_catches_the_card_up_to_that_time_first():
    card = A2065(strict=True)
    bus = bus_with(card)
    configure(bus)
    bus.read16(0xE94000, cycles=PAL_HZ)  # one second of CPU time
    assert card.now == 1_000_000_000
    bus.write16(0xE94002, 0, cycles=PAL_HZ // 2)  # earlier: never back
    assert card.now == 1_000_000_000


def test_start_cycles_and_a_restored_cards_time_set_the_origin():
    card = A2065(strict=True)
    card.advance_to(5_000)
    bus = bus_with(A2065.from_snapshot(card.snapshot()), start_cycles=1_000)
    assert bus.now_ns(1_000) == 5_000
    assert bus.now_ns(1_000 + PAL_HZ) == 5_000 + 10**9


def test_irq_level_is_2_while_any_card_asserts_int2_and_edges_reach_the_host():
    levels = []
    one, two = A2065(serial=1, strict=True), A2065(serial=2, strict=True)
    bus = bus_with(one, two, on_irq=levels.append)
    configure(bus, 0xE90000)
    configure(bus, 0xEA0000)
    d1, d2 = LinuxA2065Driver(one), LinuxA2065Driver(two)
    d1.open()
    d2.open()
    assert bus.irq_level() == 0
    one.lance.receive(BROADCAST + bytes(54))
    two.lance.receive(BROADCAST + bytes(54))
    assert bus.irq_level() == 2 and levels == [2]  # wired-OR: one edge for the shared line
    d1.service()
    assert bus.irq_level() == 2 and levels == [2]
    d2.service()
    assert bus.irq_level() == 0 and levels == [2, 0]


def test_next_deadline_cycles_is_the_first_cycle_at_which_the_event_is_due():
    card = A2065(strict=True)
    bus = bus_with(card)
    configure(bus)
    assert bus.next_deadline_cycles() is None
    LinuxA2065Driver(card).open()
    deadline = card.next_deadline()
    c = bus.next_deadline_cycles()
    assert bus.now_ns(c) >= deadline > bus.now_ns(c - 1)
    assert bus.slice_cycles(0, max_cycles=10**9) == c
    assert bus.slice_cycles(0, max_cycles=100) == 100
    bus.catch_up(c - 1)
    assert card.next_deadline() == deadline
    bus.catch_up(c)
    assert card.next_deadline() > deadline
    assert bus.slice_cycles(10**12, max_cycles=100) == 1  # overdue: run at least one cycle


def test_a_ram_card_and_an_a2065_share_the_adapter():
    ram = RamCard(64 << 10)
    card = A2065(strict=True)
    bus = bus_with(ram, card)
    configure(bus, 0x200000)
    configure(bus, 0xE90000)
    bus.write16(0x200010, 0x1234)
    bus.write16(0xE98010, 0x5678)
    assert ram.ram[0x10:0x12] == b"\x12\x34" and card.ram[0x10:0x12] == b"\x56\x78"
    bus.reset()
    assert not ram.autoconfig.configured and not card.configured


def test_the_module_docstring_example_runs_a_cpu_loop_to_an_interrupt():
    class FakeCpu:  # stands in for a CPU core: runs cycles, holds an IRQ level
        cycles, irq = 0, 0

        def run(self, n):
            self.cycles += n

        def set_irq_level(self, level):
            self.irq = level

    cpu = FakeCpu()
    card = A2065(strict=True, timing="wire")
    zorro = GenericAdapter([card], cpu_hz=PAL_HZ)
    configure(zorro)
    LinuxA2065Driver(card).open()
    card.lance.receive(BROADCAST + bytes(100))  # in flight on the wire for ~90 us
    seen = []
    for _ in range(10):
        cpu.set_irq_level(zorro.irq_level())
        seen.append(cpu.irq)
        cpu.run(zorro.slice_cycles(cpu.cycles, max_cycles=20_000))
        zorro.catch_up(cpu.cycles)
    assert seen[0] == 0 and 2 in seen
    assert cpu.cycles >= ns_to_cycles_ceil(card.now, PAL_HZ) - 1
