"""Am7990 receive address filter (ref: reference §6; M, TME, L-a2065, N-lance).

Order: PROM accepts everything; an individual address (I/G bit 0 of byte 0 clear) must equal
PADR; the broadcast address is always accepted (the 7990 has no broadcast disable); any other
group address goes through the 64-bit logical address filter LADRF.

Hash: CRC-32 (reflected poly 0xEDB88320, init 0xFFFFFFFF, *no* final inversion) over the six
destination bytes; h = crc >> 26 (0..63); accepted if LADRF bit h is set, i.e. bit (h & 15) of
init-block word 4 + (h >> 4). zlib.crc32 is that CRC with the final inversion, so
h = (~zlib.crc32(dst) & 0xFFFFFFFF) >> 26 == 63 - (zlib.crc32(dst) >> 26).

``address_filter(padr, ladrf, prom)`` is the one implementation: the chip builds it again
whenever PADR, LADRF or MODE change (INIT, restore) and calls it for every frame it receives.
"""
import zlib
from typing import Callable, Iterable

from .buffers import BytesLike

#: The receiver's filter: True if a frame whose destination address is the argument is taken.
AddressFilter = Callable[[BytesLike], bool]

BROADCAST = b"\xff\xff\xff\xff\xff\xff"


def ladrf_hash(dst: BytesLike) -> int:
    """Bit index 0..63 of LADRF that a group address ``dst`` (6 bytes) selects."""
    return 63 - (zlib.crc32(bytes(dst[:6])) >> 26)


def ladrf_from_addresses(addresses: Iterable[BytesLike]) -> int:
    """LADRF as a 64-bit int (bit h = word h>>4 bit h&15) accepting the given group addresses."""
    v = 0
    for a in addresses:
        v |= 1 << ladrf_hash(a)
    return v


def ladrf_words(ladrf: int) -> tuple[int, ...]:
    """The four init-block words (IB+8..IB+14) for a 64-bit LADRF value."""
    return tuple((ladrf >> (16 * i)) & 0xFFFF for i in range(4))


def _accept_all(dst: BytesLike) -> bool:
    return True


def address_filter(padr: BytesLike, ladrf: int, prom: int) -> AddressFilter:
    """The receiver's filter for one PADR/LADRF/PROM (any true value: MODE & PROM) setting: a function ``accepts(dst)`` that
    is True if a frame whose destination address is ``dst`` (exactly 6 bytes: bytes, or a
    read-only memoryview) is taken. Callers with a shorter destination refuse it themselves
    (``accepts`` below)."""
    if prom:
        return _accept_all
    own = bytes(padr)
    ladrf = int(ladrf)
    if not ladrf and not own[0] & 1:
        # Only PADR and broadcast can pass: set membership, one C call (hence hashable dst).
        return frozenset((own, BROADCAST)).__contains__
    crc32 = zlib.crc32

    def accepts(dst: BytesLike) -> bool:
        if not dst[0] & 1:
            return dst == own
        if dst == BROADCAST:
            return True
        return (ladrf >> (63 - (crc32(dst) >> 26))) & 1 == 1

    return accepts


def accepts(dst: BytesLike, padr: BytesLike, ladrf: int, prom: bool) -> bool:
    """True if the receiver with this PADR/LADRF/PROM takes a frame whose destination is ``dst``
    (a destination shorter than 6 bytes only in PROM)."""
    head = bytes(dst[:6])
    if len(head) < 6:
        return bool(prom)
    return address_filter(padr, ladrf, prom)(head)

