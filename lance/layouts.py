"""Init block and descriptor layouts (ref: reference §4-5; N-reg, M, TME, DS90 p.24/p.28).

Two codecs for the same bytes:
- ``construct`` layouts (cold path, documentation, snapshot tooling): ``INIT_BLOCK``, ``RMD``, ``TMD``.
- precompiled ``struct.Struct`` codecs for the hot path: ``DESC`` (4 big-endian words) and
  ``INIT_WORDS`` (12 big-endian words), plus ``decode_*`` helpers returning the same field
  names as the construct layouts. tests/test_lance_layouts.py proves they agree.

All words are big-endian as the 68k stores them; BSWP never applies to them (ref: L-7990, M).
PADR is little-endian *within* each word: MAC byte 0 is the low byte of word 1 (IB+3 in RAM).
"""
import struct

from construct import Array, BitsInteger, BitStruct, Flag, Int16ub, Struct

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

#: Receive descriptor (RMD0-3).
RMD = Struct(
    "ladr" / Int16ub,
    "rmd1" / BitStruct(
        "own" / Flag, "err" / Flag, "fram" / Flag, "oflo" / Flag,
        "crc" / Flag, "buff" / Flag, "stp" / Flag, "enp" / Flag,
        "hadr" / BitsInteger(8),
    ),
    "rmd2" / BitStruct("ones" / BitsInteger(4), "bcnt" / BitsInteger(12)),
    "rmd3" / BitStruct("reserved" / BitsInteger(4), "mcnt" / BitsInteger(12)),
)

#: Transmit descriptor (TMD0-3).
TMD = Struct(
    "ladr" / Int16ub,
    "tmd1" / BitStruct(
        "own" / Flag, "err" / Flag, "res13" / Flag, "more" / Flag,
        "one" / Flag, "deff" / Flag, "stp" / Flag, "enp" / Flag,
        "hadr" / BitsInteger(8),
    ),
    "tmd2" / BitStruct("ones" / BitsInteger(4), "bcnt" / BitsInteger(12)),
    "tmd3" / BitStruct(
        "buff" / Flag, "uflo" / Flag, "res13" / Flag, "lcol" / Flag,
        "lcar" / Flag, "rtry" / Flag, "tdr" / BitsInteger(10),
    ),
)


def buffer_length(bcnt_word: int) -> int:
    """Buffer length from RMD2/TMD2: two's complement of the 12-bit BCNT; 0 means 4096 (ref: M)."""
    n = (-bcnt_word) & 0xFFF
    return n or 4096


def bcnt_word(length: int) -> int:
    """The RMD2/TMD2 word a driver writes for a buffer of ``length`` bytes (ones in 15:12)."""
    return 0xF000 | ((-length) & 0xFFF)


def decode_init(data) -> dict:
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


def encode_init(*, mode=0, padr=b"\0" * 6, ladrf=0, rdra=0, rlen=1, tdra=0, tlen=1) -> bytes:
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


def decode_rmd(data) -> dict:
    """Decode an 8-byte receive descriptor with the struct codec (construct field names)."""
    w0, w1, w2, w3 = DESC.unpack_from(data, 0)
    return {
        "ladr": w0,
        "rmd1": {
            "own": bool(w1 & 0x8000), "err": bool(w1 & 0x4000), "fram": bool(w1 & 0x2000),
            "oflo": bool(w1 & 0x1000), "crc": bool(w1 & 0x0800), "buff": bool(w1 & 0x0400),
            "stp": bool(w1 & 0x0200), "enp": bool(w1 & 0x0100), "hadr": w1 & 0xFF,
        },
        "rmd2": {"ones": w2 >> 12, "bcnt": w2 & 0xFFF},
        "rmd3": {"reserved": w3 >> 12, "mcnt": w3 & 0xFFF},
    }


def decode_tmd(data) -> dict:
    """Decode an 8-byte transmit descriptor with the struct codec (construct field names)."""
    w0, w1, w2, w3 = DESC.unpack_from(data, 0)
    return {
        "ladr": w0,
        "tmd1": {
            "own": bool(w1 & 0x8000), "err": bool(w1 & 0x4000), "res13": bool(w1 & 0x2000),
            "more": bool(w1 & 0x1000), "one": bool(w1 & 0x0800), "deff": bool(w1 & 0x0400),
            "stp": bool(w1 & 0x0200), "enp": bool(w1 & 0x0100), "hadr": w1 & 0xFF,
        },
        "tmd2": {"ones": w2 >> 12, "bcnt": w2 & 0xFFF},
        "tmd3": {
            "buff": bool(w3 & 0x8000), "uflo": bool(w3 & 0x4000), "res13": bool(w3 & 0x2000),
            "lcol": bool(w3 & 0x1000), "lcar": bool(w3 & 0x0800), "rtry": bool(w3 & 0x0400),
            "tdr": w3 & 0x3FF,
        },
    }


def encode_desc(w0: int, w1: int, w2: int, w3: int) -> bytes:
    """Pack four descriptor words."""
    return DESC.pack(w0 & 0xFFFF, w1 & 0xFFFF, w2 & 0xFFFF, w3 & 0xFFFF)
