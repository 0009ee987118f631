"""Random bus traffic from the host never raises and never reaches outside the board's RAM."""
from hypothesis import given
from hypothesis import strategies as st

from a2065 import A2065
from a2065.drivers import LinuxA2065Driver
from a2065.strategies import BUS_READS, bus_ops, run_bus_ops

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


ops = bus_ops(max_size=120)   # a2065.strategies: the same traffic users can fuzz their drivers with


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
    for op, got in run_bus_ops(b, ops, now=b.now):
        if op[0] in BUS_READS:
            assert 0 <= got < (1 << int(op[0][1:]))
    b.advance_to(b.now + 10_000_000)
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
    for _ in run_bus_ops(b, ops, bus_only=True):
        if b.configured or b.shut_up:      # the traffic after the configuring write is not run
            break
    assert b.ram == bytearray(RAM_SIZE)  # nothing before the configuring write reached RAM
    assert b.lance.read_rap() == 0 and b.lance.csr0 == 0x0004  # nor the chip
