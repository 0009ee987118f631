"""Hypothesis strategies for fuzzing a driver, or an emulator, against the A2065 card.

The project's own property tests draw from these (tests/test_board_fuzz.py,
tests/test_lance_robustness.py, tests/test_strategies.py); they are public so that a driver author
can throw the same hostile inputs at their own code. Needs hypothesis::

    pip install 'a2065[strategies]'

What there is:

``frames(dst=...)``
    Ethernet frames as the card would see them on the wire: to the card, broadcast, multicast or
    someone else, IPv4/ARP/IPv6/unknown EtherTypes, runts and full-size frames (sizes 14..1514 by
    default, or any range you give, e.g. ``max_size=1600`` for oversized ones).
``register_ops()`` / ``run_register_ops(chip, ram, ops)``
    Chip-level sequences: RAP/RDP writes and reads, frames arriving, time passing, pokes into the
    RAM behind the chip's back, resets. ``run_register_ops`` applies them one by one and yields
    after each, so you can check your invariants between steps.
``bus_ops()`` / ``run_bus_ops(board, ops, now)``
    Board-level (68000-side) traffic at any offset of the 64 KB slot and beyond, every access
    width, with the hot offsets ($4000 RDP, $4002 RAP, RAM, autoconfig $48/$4C) and values (CSR0
    bits, BSWP, addresses) drawn often; plus time steps and arriving frames. ``run_bus_ops`` yields
    ``(op, value_read_or_None)`` after each.
``hostile_rings()``
    A ``RingImage``: 32 KB of buffer RAM holding an init block and RX/TX descriptor rings that a
    buggy or hostile guest could have written: any mode bits, ring lengths 1..128, ring and buffer
    addresses anywhere in the 24-bit LANCE space (inside the RAM, overlapping the rings or the
    init block, or outside), BCNT at its edges, OWN/STP/ENP in any combination, garbage between.
    ``image.start(chip)`` does the drivers' bring-up (CSR1/CSR2 = init block address, CSR3 = BSWP,
    INIT, INEA|STRT) so the chip runs on it.

Example: a driver must survive anything the network sends::

    from hypothesis import given, strategies as st
    from a2065 import A2065
    from a2065.strategies import frames

    @given(st.lists(frames(), max_size=50))
    def test_my_driver_survives_any_traffic(arriving):
        card = A2065(serial=0x00123456, strict=True)
        driver = MyDriver(card)           # yours: brings the card up through its registers
        for frame in arriving:
            card.lance.receive(frame)
            driver.interrupt()
        assert driver.healthy()

Ops are plain tuples (documented on each strategy), so a failing example prints readably and can
be pasted into a regression test.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Tuple

try:
    from hypothesis import strategies as st
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("a2065.strategies needs hypothesis: pip install 'a2065[strategies]' "
                      "(or pip install hypothesis)") from e

from lance.layouts import decode_init, encode_desc, encode_init

from .mac import MacAddress

if TYPE_CHECKING:
    from lance.chip import Am7990

    from .board import A2065

#: One operation of `register_ops` or `bus_ops`: a tuple whose first item names its kind.
Op = Tuple[Any, ...]

#: The card the strategies aim at by default: A2065(serial=0x00123456).
CARD_MAC = MacAddress("00:80:10:12:34:56")
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")

RAM_SIZE = 0x8000           # the A2065's buffer RAM
RAM_LANCE_BASE = 0x8000     # the drivers' LANCE address of RAM offset 0

# -- frames ---------------------------------------------------------------------------------------

ETHERTYPES = (0x0800, 0x0806, 0x86DD, 0x8100, 0x88B5)


def frames(dst: Optional[bytes] = None, *, min_size: int = 14, max_size: int = 1514,
           fcs: bool = False) -> st.SearchStrategy[bytes]:
    """Ethernet frames of ``min_size..max_size`` bytes (without FCS; with ``fcs=True`` a correct
    CRC-32 FCS is appended on top). Destination: ``dst`` if given, else the card (``CARD_MAC``),
    broadcast, a multicast or another station's address."""
    if not 14 <= min_size <= max_size:
        raise ValueError(f"need 14 <= min_size <= max_size, got {min_size}..{max_size}")
    dsts = st.just(bytes(dst)) if dst is not None else st.one_of(
        st.just(bytes(CARD_MAC)), st.just(bytes(BROADCAST)),
        st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] | 1]) + b[1:]),
        st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]))
    srcs = st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:])
    types = st.one_of(st.sampled_from(ETHERTYPES), st.integers(0, 0xFFFF))
    sizes = st.one_of(st.integers(min_size, max_size),
                      st.sampled_from(sorted({min_size, max_size, max(min_size, min(60, max_size)),
                                              max(min_size, min(64, max_size))})))

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        size = draw(sizes)
        head = draw(dsts) + draw(srcs) + draw(types).to_bytes(2, "big")
        body = draw(st.binary(min_size=size - 14, max_size=size - 14))
        frame: bytes = head + body
        if fcs:
            frame += zlib.crc32(frame).to_bytes(4, "little")
        return frame

    return build()


# -- chip-level register operations ---------------------------------------------------------------

def register_ops(max_size: int = 40) -> st.SearchStrategy[list[Op]]:
    """Lists of chip operations, each a tuple:

    ``("rap", v)`` write RAP; ``("rdp", v)`` write RDP; ``("read", n)`` select CSRn and read it;
    ``("rx", frame, has_fcs)`` a frame arrives; ``("adv", ns)`` time passes; ``("poke", offset,
    data)`` the host writes RAM behind the chip's back; ``("reset",)`` the chip's RESET pin.
    """
    return st.lists(
        st.one_of(
            st.tuples(st.just("rap"), st.integers(0, 0xFFFF)),
            st.tuples(st.just("rdp"), st.integers(0, 0xFFFF)),
            st.tuples(st.just("read"), st.integers(0, 3)),
            st.tuples(st.just("rx"), st.one_of(frames(max_size=1600), st.binary(max_size=1600)),
                      st.booleans()),
            st.tuples(st.just("adv"), st.integers(0, 3_000_000)),
            st.tuples(st.just("poke"), st.integers(0, RAM_SIZE - 1), st.binary(min_size=1, max_size=16)),
            st.tuples(st.just("reset"),),
        ),
        max_size=max_size,
    )


def run_register_ops(chip: Am7990, ram: bytearray,
                     ops: Iterable[Op]) -> Iterator[tuple[Op, Optional[int]]]:
    """Apply ``register_ops()`` to ``chip`` (a ``lance.Am7990``) and ``ram`` (its RAM), yielding
    ``(op, value_read_or_None)`` after each. A poke never grows the RAM."""
    for op in ops:
        kind, value = op[0], None
        if kind == "rap":
            chip.write_rap(op[1])
        elif kind == "rdp":
            chip.write_rdp(op[1])
        elif kind == "read":
            chip.write_rap(op[1])
            value = chip.read_rdp()
        elif kind == "rx":
            chip.receive(op[1], has_fcs=op[2])
        elif kind == "adv":
            chip.advance_to(chip.now + op[1])
        elif kind == "poke":
            end = min(op[1] + len(op[2]), len(ram))
            ram[op[1]:end] = op[2][:end - op[1]]
        elif kind == "reset":
            chip.reset()
        else:
            raise ValueError(f"not a register op: {op!r}")
        yield op, value


# -- board-level bus traffic ------------------------------------------------------------------------

#: offsets a bus fuzzer should hit often: RDP/RAP and their byte halves and 64 KB aliases, the
#: unmapped gaps' edges, RAM's first/last bytes, the init block and rings of the Linux layout,
#: the autoconfig base registers.
BUS_HOT_OFFSETS = (0x4000, 0x4001, 0x4002, 0x4003, 0x14000, 0x14002, 0x4004, 0x7FFF, 0xFFFE,
                   0xFFFF, 0x8000, 0x8018, 0x8098, 0x48, 0x4C)
#: values that mean something to CSR0/RAP/CSR3 or point at the RAM
BUS_HOT_VALUES = (0x0001, 0x0002, 0x0003, 0x0004, 0x0008, 0x0042, 0x0043, 0x0048, 0x7F00, 0x8000,
                  0x8018, 0xF000, 0xFFFF, 0x00018000, 0x80000000, 0xFFFFFFFF)
BUS_READS = ("r8", "r16", "r32")
BUS_WRITES = ("w8", "w16", "w32")


def bus_ops(max_size: int = 120) -> st.SearchStrategy[list[Op]]:
    """Lists of bus operations on one board, each a tuple:

    ``("r8"|"r16"|"r32", offset)`` a read; ``("w8"|"w16"|"w32", offset, value)`` a write (the
    value is masked to the width); ``("time", ns)`` emulated time passes; ``("rx", frame)`` a frame
    arrives at the chip. Offsets go up to $1FFFF (the board decodes 64 KB, so $1xxxx aliases).
    """
    offsets = st.one_of(st.integers(0, 0x1FFFF), st.sampled_from(BUS_HOT_OFFSETS),
                        st.integers(0x8000, 0x80FF))
    values = st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from(BUS_HOT_VALUES))
    access = st.sampled_from(BUS_READS + BUS_WRITES + ("w16", "w16"))
    ops = st.one_of(
        st.builds(lambda a, off, v: (a, off) if a in BUS_READS else (a, off, v & ((1 << int(a[1:])) - 1)),
                  access, offsets, values),
        st.tuples(st.just("time"), st.integers(0, 4_000_000)),
        st.tuples(st.just("rx"), frames(max_size=1600)),
    )
    return st.lists(ops, max_size=max_size)


def run_bus_ops(board: A2065, ops: Iterable[Op], now: Optional[int] = None, *,
                bus_only: bool = False) -> Iterator[Tuple[Op, Optional[int]]]:
    """Apply ``bus_ops()`` to ``board`` (an ``A2065`` or anything with its bus interface), yielding
    ``(op, value_read_or_None)`` after each. Accesses pass ``now=`` (integer ns, advanced by the
    "time" ops) when ``now`` is given. ``bus_only`` skips "time" and "rx" (pure bus traffic)."""
    for op in ops:
        kind, value = op[0], None
        if kind == "time":
            if bus_only:
                continue
            if now is not None:
                now += op[1]
                board.advance_to(now)
        elif kind == "rx":
            if bus_only:
                continue
            board.lance.receive(op[1])
        elif kind in BUS_READS:
            read = getattr(board, "read" + kind[1:])
            value = read(op[1]) if now is None else read(op[1], now=now)
        elif kind in BUS_WRITES:
            write = getattr(board, "write" + kind[1:])
            write(op[1], op[2]) if now is None else write(op[1], op[2], now=now)
        else:
            raise ValueError(f"not a bus op: {op!r}")
        yield op, value


# -- hostile rings --------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class RingImage:
    """Buffer RAM as a guest left it: an init block at LANCE address ``iadr`` and whatever rings it
    names. ``ram`` is the A2065's 32 KB (RAM offset x is LANCE address 0x8000 + x); ``init`` is the
    init block decoded from ``ram`` (descriptors may have been written over it)."""

    ram: bytes
    iadr: int
    init: dict[str, Any]

    def __repr__(self) -> str:       # 32 KB of RAM would drown a failing example
        import hashlib
        return (f"RingImage(iadr={self.iadr:#08x}, init={self.init!r}, ram=<{len(self.ram)} bytes, "
                f"{sum(1 for b in self.ram if b)} non-zero, sha256 {hashlib.sha256(self.ram).hexdigest()[:16]}>)")

    def load_into(self, ram: bytearray) -> None:
        """Copy the image into a board's or rig's 32 KB RAM."""
        if len(ram) != RAM_SIZE:
            raise ValueError(f"the A2065's buffer RAM is {RAM_SIZE} bytes, not {len(ram)}")
        ram[:] = self.ram

    def start(self, chip: Am7990, *, bswp: bool = True) -> None:
        """The drivers' bring-up on this image: CSR0=STOP, CSR1/CSR2=iadr, CSR3=BSWP, CSR0=INIT,
        CSR0=IDON (acknowledge), CSR0=INEA|STRT."""
        for rap, value in ((0, 0x0004), (1, self.iadr & 0xFFFF), (2, (self.iadr >> 16) & 0xFF),
                           (3, 0x0004 if bswp else 0), (0, 0x0001), (0, 0x0100), (0, 0x0042)):
            chip.write_rap(rap)
            chip.write_rdp(value)


#: BCNT words at the edges: 0 (= 4096), 1, the largest, the smallest frame, with and without the
#: ones-bits the chip ignores
BCNT_EDGES = (0x0000, 0xF000, 0xFFFF, 0x0001, 0xFFC4, 0xFA12, 0xFC18, 0xFFC0, 0xF800, 0xFDB0, 0x0800)
#: mode words: normal, promiscuous, loopback variants, DRX/DTX, every bit
MODE_EDGES = (0x0000, 0x8000, 0x0004, 0x0044, 0x0024, 0x0014, 0x0001, 0x0002, 0x0003, 0xFFFF)


def _lance_address() -> st.SearchStrategy[int]:
    inside = st.integers(0, RAM_SIZE - 1).map(lambda off: RAM_LANCE_BASE + off)
    return st.one_of(inside, inside.map(lambda a: a & ~7), st.integers(0, 0xFFFFFF),
                     st.sampled_from((0, RAM_LANCE_BASE, RAM_LANCE_BASE + RAM_SIZE - 8, 0xFFFFF8)))


@st.composite
def hostile_rings(draw: st.DrawFn) -> RingImage:
    """A ``RingImage`` with an init block and rings as a hostile or buggy guest could leave them
    (see the module docstring). Descriptor words are drawn per descriptor: OWN/STP/ENP/ERR bits in
    any combination, BCNT at its edges or anywhere, buffers anywhere."""
    ram = bytearray(draw(st.one_of(st.just(bytes(RAM_SIZE)), st.integers(0, 2**32 - 1).map(
        lambda seed: random.Random(seed).randbytes(RAM_SIZE)))))
    iadr = draw(st.one_of(st.just(RAM_LANCE_BASE), st.integers(0, RAM_SIZE - 24).map(
        lambda off: RAM_LANCE_BASE + (off & ~1))))
    rlen, tlen = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    init: dict[str, Any] = {
        "mode": draw(st.one_of(st.sampled_from(MODE_EDGES), st.integers(0, 0xFFFF))),
        "padr": draw(st.one_of(st.just(bytes(CARD_MAC)), st.binary(min_size=6, max_size=6))),
        "ladrf": draw(st.one_of(st.just(0), st.just(2**64 - 1), st.integers(0, 2**64 - 1))),
        "rdra": draw(_lance_address()) & ~7, "rlen": 1 << rlen,
        "tdra": draw(_lance_address()) & ~7, "tlen": 1 << tlen,
    }
    off = (iadr - RAM_LANCE_BASE) & 0x7FFF
    block = encode_init(**init)
    ram[off:off + len(block)] = block[:RAM_SIZE - off]
    for base, n in ((init["rdra"], init["rlen"]), (init["tdra"], init["tlen"])):
        for i in range(min(n, draw(st.integers(0, n)))):      # some descriptors written, the rest as is
            addr = base + 8 * i
            if not RAM_LANCE_BASE <= addr <= RAM_LANCE_BASE + RAM_SIZE - 8:
                break                                          # the rest of the ring is off the board
            buf = draw(_lance_address())
            w1 = (draw(st.integers(0, 0xFF)) << 8) | ((buf >> 16) & 0xFF)
            w2 = draw(st.one_of(st.sampled_from(BCNT_EDGES), st.integers(0, 0xFFFF)))
            w3 = draw(st.one_of(st.just(0), st.integers(0, 0xFFFF)))
            d = addr - RAM_LANCE_BASE
            ram[d:d + 8] = encode_desc(buf & 0xFFFF, w1, w2, w3)
    return RingImage(bytes(ram), iadr, decode_init(ram[off:off + 24]))


__all__ = ["CARD_MAC", "BROADCAST", "frames", "register_ops", "run_register_ops", "bus_ops",
           "run_bus_ops", "BUS_HOT_OFFSETS", "BUS_HOT_VALUES", "hostile_rings", "RingImage",
           "BCNT_EDGES", "MODE_EDGES"]
