"""The LANCE's DMA port: how the chip reads and writes its 24-bit bus addresses.

The chip sees only this interface. ``RamDma`` maps LANCE addresses into a bytearray with an
address mask (the A2065 decodes the low 15 bits: RAM[addr & 0x7FFF], ref: W, M-a2065), so any
access wraps modulo the RAM size. Words are big-endian (the 68k bus, MSB on D15-D8).
"""
import struct
from typing import Protocol, runtime_checkable

from .buffers import BytesLike
from .layouts import DESC as _D

_W = struct.Struct(">H")


@runtime_checkable
class DmaPort(Protocol):
    def read16(self, addr: int) -> int: ...

    def write16(self, addr: int, value: int) -> None: ...

    def read(self, addr: int, length: int) -> bytes: ...

    def write(self, addr: int, data: BytesLike) -> None: ...


@runtime_checkable
class DescriptorDma(DmaPort, Protocol):
    """A DmaPort that also reads a descriptor's four words at once: what the chip keeps (a port
    without ``read_desc`` is wrapped in `GenericDma`)."""

    def read_desc(self, addr: int) -> tuple[int, ...]: ...


class RamDma:
    """DMA into ``ram`` (a bytearray) at ``addr & mask``; accesses wrap at the mask.

    Fast paths use direct slicing / ``struct.unpack_from``; a slow path handles the wrap.
    Addresses are also reduced modulo ``len(ram)``, so a mask wider than the RAM never raises.
    """

    __slots__ = ("ram", "mask", "size")

    def __init__(self, ram: bytearray, mask: int = 0x7FFF) -> None:
        if not isinstance(ram, bytearray):
            raise TypeError("RamDma needs a bytearray")
        if len(ram) == 0:
            raise ValueError("empty RAM")
        self.ram = ram
        self.mask = int(mask)
        self.size = len(ram)

    def _a(self, addr: int) -> int:
        return (addr & self.mask) % self.size

    # words -----------------------------------------------------------------------------
    def read16(self, addr: int) -> int:
        a = (addr & self.mask) % self.size
        if a + 2 <= self.size:
            value: int = _W.unpack_from(self.ram, a)[0]
            return value
        return (self.ram[a] << 8) | self.ram[(a + 1) % self.size]

    def write16(self, addr: int, value: int) -> None:
        a = (addr & self.mask) % self.size
        if a + 2 <= self.size:
            _W.pack_into(self.ram, a, value & 0xFFFF)
        else:
            self.ram[a] = (value >> 8) & 0xFF
            self.ram[(a + 1) % self.size] = value & 0xFF

    def read_desc(self, addr: int) -> tuple[int, ...]:
        """The four big-endian words of a descriptor at ``addr``."""
        a = (addr & self.mask) % self.size
        if a + 8 <= self.size and a + 8 <= self.mask + 1:
            return _D.unpack_from(self.ram, a)
        return tuple(self.read16(addr + 2 * i) for i in range(4))

    # bytes -----------------------------------------------------------------------------
    def read(self, addr: int, length: int) -> bytes:
        a = (addr & self.mask) % self.size
        end = a + length
        if end <= self.size and end <= self.mask + 1:
            return bytes(self.ram[a:end])
        out = bytearray(length)
        for i in range(length):
            out[i] = self.ram[((addr + i) & self.mask) % self.size]
        return bytes(out)

    def write(self, addr: int, data: BytesLike) -> None:
        n = len(data)
        a = (addr & self.mask) % self.size
        end = a + n
        if end <= self.size and end <= self.mask + 1:
            self.ram[a:end] = data
            return
        ram, mask, size = self.ram, self.mask, self.size
        for i in range(n):
            ram[((addr + i) & mask) % size] = data[i]


class GenericDma:
    """Adapter giving any DmaPort the ``read_desc`` helper the chip uses."""

    __slots__ = ("port",)

    def __init__(self, port: DmaPort) -> None:
        self.port = port

    def read16(self, addr: int) -> int:
        return self.port.read16(addr & 0xFFFFFF) & 0xFFFF

    def write16(self, addr: int, value: int) -> None:
        self.port.write16(addr & 0xFFFFFF, value & 0xFFFF)

    def read_desc(self, addr: int) -> tuple[int, ...]:
        return tuple(self.read16(addr + 2 * i) for i in range(4))

    def read(self, addr: int, length: int) -> bytes:
        return bytes(self.port.read(addr & 0xFFFFFF, length))

    def write(self, addr: int, data: BytesLike) -> None:

        self.port.write(addr & 0xFFFFFF, bytes(data))
