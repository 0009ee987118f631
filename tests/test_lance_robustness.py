"""Hostile guest data: random RAM, rings, registers and frames never raise and stay accounted."""
import random

from hypothesis import given, strategies as st

from a2065.strategies import register_ops, run_register_ops
from lance import Am7990, RamDma
from lance.dma import GenericDma

ops = register_ops(max_size=40)   # a2065.strategies: public for users who fuzz their own drivers


def run(chip, ram, seq):
    for op, value in run_register_ops(chip, ram, seq):
        if op[0] == "read":
            assert 0 <= value <= 0xFFFF
        assert len(ram) == 32768
        assert chip.counters_balanced()
        assert chip.irq_asserted == bool(chip.csr0 & 0x80 and chip.csr0 & 0x40)


@given(st.integers(0, 2**32), st.binary(min_size=24, max_size=24), ops,
       st.sampled_from(["fast", "wire"]))
def test_random_ram_and_register_sequences_never_raise(seed, ib, seq, timing):
    ram = bytearray(random.Random(seed).randbytes(32768))
    ram[0:24] = ib
    edges = []
    chip = Am7990(RamDma(ram), irq=edges.append, transmit=lambda f, t: len(f) % 2 == 0,
                  timing=timing)
    # bring it up over whatever is in RAM, then run the random sequence
    chip.write_rap(1)
    chip.write_rdp(0x8000)
    chip.write_rap(0)
    chip.write_rdp(0x0003 | 0x0040)
    run(chip, ram, seq)
    assert len(ram) == 32768


class PlainPort:
    """A DmaPort without read_desc, over a 16 MB sparse dict."""

    def __init__(self):
        self.mem = {}

    def read16(self, a):
        return (self.mem.get(a, 0) << 8) | self.mem.get(a + 1, 0)

    def write16(self, a, v):
        self.mem[a] = v >> 8
        self.mem[a + 1] = v & 0xFF

    def read(self, a, n):
        return bytes(self.mem.get((a + i) & 0xFFFFFF, 0) for i in range(n))

    def write(self, a, data):
        for i, b in enumerate(data):
            self.mem[(a + i) & 0xFFFFFF] = b


def test_any_dma_port_without_read_desc_is_wrapped():
    chip = Am7990(PlainPort())
    assert isinstance(chip.dma, GenericDma)
    chip.write_rap(0)
    chip.write_rdp(0x0003)
    assert chip.receive(bytes(60)).name in ("MISSED", "ACCEPTED", "FILTERED")
