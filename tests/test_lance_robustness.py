"""Hostile guest data: random RAM, rings, registers and frames never raise and stay accounted."""
import random

from hypothesis import given, strategies as st

from lance import Am7990, RamDma
from lance.dma import GenericDma

ops = st.lists(
    st.one_of(
        st.tuples(st.just("rap"), st.integers(0, 0xFFFF)),
        st.tuples(st.just("rdp"), st.integers(0, 0xFFFF)),
        st.tuples(st.just("read"), st.integers(0, 3)),
        st.tuples(st.just("rx"), st.binary(max_size=1600), st.booleans()),
        st.tuples(st.just("adv"), st.integers(0, 3_000_000)),
        st.tuples(st.just("poke"), st.integers(0, 0x7FFF), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("reset"),),
    ),
    max_size=40,
)


def run(chip, ram, seq):
    for op in seq:
        kind = op[0]
        if kind == "rap":
            chip.write_rap(op[1])
        elif kind == "rdp":
            chip.write_rdp(op[1])
        elif kind == "read":
            chip.write_rap(op[1])
            assert 0 <= chip.read_rdp() <= 0xFFFF
        elif kind == "rx":
            chip.receive(op[1], has_fcs=op[2])
        elif kind == "adv":
            chip.advance_to(chip.now + op[1])
        elif kind == "poke":
            ram[op[1]:op[1] + len(op[2])] = op[2]
            del ram[32768:]
        else:
            chip.reset()
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
