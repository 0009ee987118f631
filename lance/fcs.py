"""CRC-32 of the frames the chip appends an FCS to (802.3: the FCS follows the frame
little-endian; zlib.crc32 is that CRC).

``crc32_bytes(data, n, crc)`` equals ``zlib.crc32(data, crc)`` for ``bytes`` data of length
``n``. With the C core built (``native``, IMPLEMENTATION "c") it is ``a2065_crc32`` itself, called
without a Python wrapper: ~0.2 us for a 1514-byte frame against ~0.5 us for zlib on the 2-vCPU
machine of BENCHMARKS.md, the largest single cost of the chip's per-frame paths. Without the C
core it is zlib.
"""
import zlib
from typing import Callable, Optional

#: ``crc32_bytes(data, n, crc)``: the CRC-32 of ``data`` (``n`` bytes long) continued from ``crc``.
Crc32Bytes = Callable[[bytes, int, int], int]


def _zlib_crc32_bytes(data: bytes, n: int, crc: int) -> int:
    return zlib.crc32(data, crc)


def _c_crc32_bytes() -> Optional[Crc32Bytes]:
    try:
        import native
    except ImportError:
        return None
    c_crc32: Crc32Bytes = native.lib.a2065_crc32
    return c_crc32 if native.IMPLEMENTATION == "c" else None


crc32_bytes: Crc32Bytes = _c_crc32_bytes() or _zlib_crc32_bytes

