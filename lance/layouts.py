"""Init block and descriptor layouts (ref: reference §4-5; N-reg, M, TME, DS90 p.24/p.28).

Two codecs for the same bytes:
- ``construct`` layouts (cold path, documentation, snapshot tooling): ``INIT_BLOCK``, ``RMD``, ``TMD``.
- precompiled ``struct.Struct`` codecs for the hot path: ``DESC`` (4 big-endian words; the chip,
  its DMA port and ``a2065 inspect`` read descriptors through it) and ``INIT_WORDS`` (12
  big-endian words), plus ``decode_*`` helpers returning the same field names as the construct
  layouts. tests/test_lance_layouts.py proves they agree.

The descriptor status bits are defined once, as the ``RMD1``/``TMD1``/``TMD3`` IntFlags of
lance/csr.py; both codecs take their field names (lower case) and positions from them.

All words are big-endian as the 68k stores them; BSWP never applies to them (ref: L-7990, M).
PADR is little-endian *within* each word: MAC byte 0 is the low byte of word 1 (IB+3 in RAM).
"""
import enum
import struct
from typing import Any

from construct import Array, BitsInteger, BitStruct, Flag, Int16ub, Struct

from .buffers import BytesLike
from .csr import BCNT_MASK, HADR_MASK, MCNT_MASK, RMD1, TDR_MASK, TMD1, TMD3

DESC = struct.Struct(">4H")
INIT_WORDS = struct.Struct(">12H")
INIT_BLOCK_SIZE = 24
DESC_SIZE = 8

_RING = BitStruct("len_log2" / BitsInteger(3), "reserved" / BitsInteger(5), "addr_hi" / BitsInteger(8))

#: 12-word initialization block.
INIT_BLOCK = Struct(
    "mode" / Int16ub,
    "padr" / Array(3, Int16ub),  # each word: low byte = even MAC byte, high byte = odd MAC byte
    "ladrf" / Array(4, Int16ub),  # word i holds LADRF bits 16i..16i+15
    "rdra_lo" / Int16ub,
    "rlen" / _RING,
    "tdra_lo" / Int16ub,
    "tlen" / _RING,
)


def _status_fields(flags: type[enum.IntFlag]) -> tuple[tuple[str, int], ...]:
    """(name, bit) of every single-bit member of a descriptor-word IntFlag, most significant
    first: the one definition of the bits (lance/csr.py) drives both codecs below."""
    members = [m for m in flags.__members__.values() if m.value and not m.value & (m.value - 1)]
    return tuple((str(m.name).lower(), int(m.value)) for m in sorted(members, key=lambda m: -m.value))


_RMD1_FIELDS = _status_fields(RMD1)  # own err fram oflo crc buff stp enp
_TMD1_FIELDS = _status_fields(TMD1)  # own err res13 more one def stp enp
_TMD3_FIELDS = _status_fields(TMD3)  # buff uflo res13 lcol lcar rtry


def _bits(fields: tuple[tuple[str, int], ...], low_name: str, low_width: int) -> Any:
    """A 16-bit word: the flags from bit 15 down, then a ``low_width``-bit field."""
    if [bit for _, bit in fields] != [0x8000 >> i for i in range(len(fields))] \
            or len(fields) + low_width != 16:
        raise AssertionError(f"flags {fields} do not fill bits 15:{low_width}")
    return BitStruct(*[name / Flag for name, _ in fields], low_name / BitsInteger(low_width))


#: Receive descriptor (RMD0-3).
RMD = Struct(
    "ladr" / Int16ub,
    "rmd1" / _bits(_RMD1_FIELDS, "hadr", 8),
    "rmd2" / BitStruct("ones" / BitsInteger(4), "bcnt" / BitsInteger(12)),
    "rmd3" / BitStruct("reserved" / BitsInteger(4), "mcnt" / BitsInteger(12)),
)

#: Transmit descriptor (TMD0-3).
TMD = Struct(
    "ladr" / Int16ub,
    "tmd1" / _bits(_TMD1_FIELDS, "hadr", 8),
    "tmd2" / BitStruct("ones" / BitsInteger(4), "bcnt" / BitsInteger(12)),
    "tmd3" / _bits(_TMD3_FIELDS, "tdr", 10),
)


def _word(w: int, fields: tuple[tuple[str, int], ...], low_name: str, low_mask: int) -> dict[str, int]:
    d: dict[str, int] = {name: bool(w & bit) for name, bit in fields}
    d[low_name] = w & low_mask
    return d


def buffer_address(w0: int, w1: int) -> int:
    """The 24-bit buffer address of a descriptor: HADR (word 1 bits 7:0) and LADR (word 0)."""
    return ((w1 & HADR_MASK) << 16) | w0


def buffer_length(bcnt_word: int) -> int:
    """Buffer length from RMD2/TMD2: two's complement of the 12-bit BCNT; 0 means 4096 (ref: M)."""
    n = (-bcnt_word) & 0xFFF
    return n or 4096


def bcnt_word(length: int) -> int:
    """The RMD2/TMD2 word a driver writes for a buffer of ``length`` bytes (ones in 15:12)."""
    return 0xF000 | ((-length) & 0xFFF)


def decode_init(data: BytesLike) -> dict[str, Any]:
    """Decode a 24-byte init block with the struct codec into chip-level values."""
    w = INIT_WORDS.unpack_from(data, 0)
    padr = bytes((w[1] & 0xFF, w[1] >> 8, w[2] & 0xFF, w[2] >> 8, w[3] & 0xFF, w[3] >> 8))
    ladrf = w[4] | (w[5] << 16) | (w[6] << 32) | (w[7] << 48)
    return {
        "mode": w[0],
        "padr": padr,
        "ladrf": ladrf,
        "rdra": (((w[9] & 0xFF) << 16) | w[8]) & 0xFFFFF8,
        "rlen": 1 << (w[9] >> 13),
        "tdra": (((w[11] & 0xFF) << 16) | w[10]) & 0xFFFFF8,
        "tlen": 1 << (w[11] >> 13),
    }


def encode_init(*, mode: int = 0, padr: BytesLike = b"\0" * 6, ladrf: int = 0, rdra: int = 0,
                rlen: int = 1, tdra: int = 0, tlen: int = 1) -> bytes:
    """Build a 24-byte init block (rlen/tlen are entry counts, powers of two 1..128)."""
    padr = bytes(padr)
    rl = max(0, min(7, int(rlen).bit_length() - 1))
    tl = max(0, min(7, int(tlen).bit_length() - 1))
    return INIT_WORDS.pack(
        mode & 0xFFFF,
        padr[0] | (padr[1] << 8), padr[2] | (padr[3] << 8), padr[4] | (padr[5] << 8),
        ladrf & 0xFFFF, (ladrf >> 16) & 0xFFFF, (ladrf >> 32) & 0xFFFF, (ladrf >> 48) & 0xFFFF,
        rdra & 0xFFFF, (rl << 13) | ((rdra >> 16) & 0xFF),
        tdra & 0xFFFF, (tl << 13) | ((tdra >> 16) & 0xFF),
    )


def decode_rmd(data: BytesLike, offset: int = 0) -> dict[str, Any]:
    """Decode an 8-byte receive descriptor with the struct codec (construct field names)."""
    w0, w1, w2, w3 = DESC.unpack_from(data, offset)
    return {
        "ladr": w0,
        "rmd1": _word(w1, _RMD1_FIELDS, "hadr", HADR_MASK),
        "rmd2": {"ones": w2 >> 12, "bcnt": w2 & BCNT_MASK},
        "rmd3": {"reserved": w3 >> 12, "mcnt": w3 & MCNT_MASK},
    }


def decode_tmd(data: BytesLike, offset: int = 0) -> dict[str, Any]:
    """Decode an 8-byte transmit descriptor with the struct codec (construct field names)."""
    w0, w1, w2, w3 = DESC.unpack_from(data, offset)
    return {
        "ladr": w0,
        "tmd1": _word(w1, _TMD1_FIELDS, "hadr", HADR_MASK),
        "tmd2": {"ones": w2 >> 12, "bcnt": w2 & BCNT_MASK},
        "tmd3": _word(w3, _TMD3_FIELDS, "tdr", TDR_MASK),
    }


def descriptor_summary(data: BytesLike, offset: int = 0) -> dict[str, int]:
    """What a reader of a ring wants from the descriptor at ``data[offset:offset + 8]`` (RX or
    TX): buffer address, OWN, the status byte (word 1 bits 15:8), buffer length and word 3
    (RMD3 MCNT or TMD3). Big-endian words whatever CSR3.BSWP says."""
    w0, w1, w2, w3 = DESC.unpack_from(data, offset)
    return {"addr": buffer_address(w0, w1), "own": bool(w1 & RMD1.OWN), "status": w1 >> 8,
            "length": buffer_length(w2), "word3": w3}


def encode_desc(w0: int, w1: int, w2: int, w3: int) -> bytes:
    """Pack four descriptor words."""
    return DESC.pack(w0 & 0xFFFF, w1 & 0xFFFF, w2 & 0xFFFF, w3 & 0xFFFF)
