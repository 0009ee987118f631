"""Ethernet addresses that print the way people write them.

``MacAddress`` is a ``bytes`` of length 6, so it compares, hashes, slices and packs exactly like the
six bytes it holds (``card.mac == bytes.fromhex("008010123456")``), and prints as
``00:80:10:12:34:56``::

    >>> from a2065 import A2065
    >>> A2065(serial=0x00123456).mac
    MacAddress('00:80:10:12:34:56')
    >>> print(A2065(serial=0x00123456).mac)
    00:80:10:12:34:56
"""
from __future__ import annotations

import re
from typing import Union

_TEXT = re.compile(r"[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")


class MacAddress(bytes):
    """Six bytes; ``str()`` gives lower-case colon-separated hex.

    Built from 6 bytes (``bytes``, ``bytearray``, ``memoryview``) or from text in the forms
    ``00:80:10:12:34:56``, ``00-80-10-12-34-56`` or ``008010123456``.
    """

    __slots__ = ()

    def __new__(cls, value: Union[str, bytes, bytearray, memoryview]) -> "MacAddress":
        if isinstance(value, str):
            text = value.strip()
            if not _TEXT.fullmatch(text):
                raise ValueError(f"not a MAC address: {value!r}; write it like 00:80:10:12:34:56")
            data = bytes.fromhex(text.replace(":", "").replace("-", ""))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        else:
            raise TypeError(f"MacAddress takes 6 bytes or text like '00:80:10:12:34:56', "
                            f"not {type(value).__name__}")
        if len(data) != 6:
            raise ValueError(f"a MAC address is 6 bytes, not {len(data)}: {data.hex(':')!r}")
        return super().__new__(cls, data)

    def __str__(self) -> str:
        return self.hex(":")

    def __repr__(self) -> str:
        return f"MacAddress('{self.hex(':')}')"

    @property
    def is_multicast(self) -> bool:
        """The I/G bit (bit 0 of the first byte): group address (broadcast included)."""
        return bool(self[0] & 1)


__all__ = ["MacAddress"]
