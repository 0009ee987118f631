"""Random bus traffic from the host never raises and never reaches outside the board's RAM."""
from hypothesis import given
from hypothesis import strategies as st

from a2065 import A2065
from a2065.drivers import LinuxA2065Driver

RAM_SIZE = 0x8000
MAX_DMA = 4096  # one descriptor's BCNT is 12 bits: no single DMA transfer may be longer


class GuardedDma:
    """Wraps the board's RamDma: checks every transfer's length and result size."""

    def __init__(self, inner, ram):
        self.inner, self.ram, self.calls = inner, ram, 0

    def _check(self, length):
        self.calls += 1
        assert 0 <= length <= MAX_DMA, f"DMA of {length} bytes"
        assert len(self.ram) == RAM_SIZE

    def read16(self, addr):
        self._check(2)
        v = self.inner.read16(addr)
        assert 0 <= v <= 0xFFFF
        return v

    def write16(self, addr, value):
        self._check(2)
        self.inner.write16(addr, value)

    def read_desc(self, addr):
        self._check(8)
        return self.inner.read_desc(addr)

    def read(self, addr, length):
        self._check(length)
        data = self.inner.read(addr, length)
        assert len(data) == length
        return data

    def write(self, addr, data):
        self._check(len(data))
        self.inner.write(addr, data)


HOT_OFFSETS = [0x4000, 0x4001, 0x4002, 0x4003, 0x14000, 0x14002, 0x4004, 0x7FFF, 0xFFFE,
               0xFFFF, 0x8000, 0x8018, 0x8098, 0x48, 0x4C]
HOT_VALUES = [0x0001, 0x0002, 0x0003, 0x0004, 0x0008, 0x0042, 0x0043, 0x0048, 0x7F00, 0x8000,
              0x8018, 0xF000, 0xFFFF, 0x00018000, 0x80000000, 0xFFFFFFFF]

offsets = st.one_of(st.integers(0, 0x1FFFF), st.sampled_from(HOT_OFFSETS),
                    st.integers(0x8000, 0x80FF))
values = st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from(HOT_VALUES))
ops = st.lists(st.tuples(
    st.sampled_from(["r8", "r16", "r32", "w8", "w16", "w32", "w16", "w16", "time", "rx"]),
    offsets, values), max_size=120)


def _frame(v, n):
    dst = b"\xff" * 6 if v & 1 else bytes((0x00, 0x80, 0x10, 0x12, 0x34, 0x56))
    n = 14 + (n % 1600)
    return (dst + b"\x02\0\0\0\0\x07" + b"\x08\x00" + bytes(range(256)) * 7)[:n]


@given(start=st.sampled_from(["cold", "linux", "garbage-init"]),
       timing=st.sampled_from(["fast", "wire"]), ram=st.binary(max_size=512), ops=ops)
def test_random_bus_traffic_never_raises_and_never_reaches_outside_the_board_ram(
        start, timing, ram, ops):
    sent, edges = [], []
    b = A2065(strict=True, timing=timing, transmit=lambda f, t: sent.append(f) or True,
              irq=edges.append)
    guard = GuardedDma(b.lance.dma, b.ram)
    b.lance.dma = guard
    b.write16(0x48, 0xE900)
    if start == "linux":
        LinuxA2065Driver(b).open()
    elif start == "garbage-init":
        b.ram[: len(ram)] = ram
        b.write16(0x4002, 1)
        b.write16(0x4000, 0x8000)
        b.write16(0x4002, 0)
        b.write16(0x4000, 0x0043)  # INEA|STRT|INIT on whatever the RAM holds
    now = b.now
    for op, off, v in ops:
        if op == "time":
            now += v % 4_000_000
            b.advance_to(now)
        elif op == "rx":
            b.lance.receive(_frame(v, off))
        elif op[0] == "r":
            got = getattr(b, "read" + op[1:])(off, now=now)
            assert 0 <= got < (1 << int(op[1:]))
        else:
            getattr(b, "write" + op[1:])(off, v, now=now)
    b.advance_to(now + 10_000_000)
    assert len(b.ram) == RAM_SIZE and b.lance.dma is guard
    assert b.stats["chip_errors"] == 0
    if start != "cold":
        assert guard.calls > 0  # the chip really did DMA (INIT read the init block)
    assert all(len(f) <= 64 * 1024 for f in sent)
    assert all(a != c for a, c in zip(edges, edges[1:]))  # edges alternate: no repeats
    assert b.irq_asserted == (edges[-1] if edges else False)


@given(ops=ops)
def test_random_traffic_before_configuration_reaches_neither_ram_nor_the_chip(ops):
    b = A2065(strict=True)
    for op, off, v in ops:
        if b.configured or b.shut_up:
            break
        if op in ("time", "rx"):
            continue
        if op[0] == "r":
            getattr(b, "read" + op[1:])(off)
        else:
            getattr(b, "write" + op[1:])(off, v)
    assert b.ram == bytearray(RAM_SIZE)  # nothing before the configuring write reached RAM
    assert b.lance.read_rap() == 0 and b.lance.csr0 == 0x0004  # nor the chip
