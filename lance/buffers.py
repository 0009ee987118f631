"""The one type alias for the byte buffers the chip and the host side read: what ``bytes(x)``,
``len(x)`` and ``x[i]`` accept, as a DMA port, a capture or a socket hands them over."""
from typing import TypeAlias, Union

BytesLike: TypeAlias = Union[bytes, bytearray, memoryview]
