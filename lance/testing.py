"""A small RAM-level rig for tests and benchmarks: 32 KB RAM, RamDma, an Am7990, an init block
and rings laid out like the Linux a2065 driver does (LANCE addresses 0x8000 + RAM offset).

Not a driver: it pokes RAM and registers directly so tests can build any state.
"""
from __future__ import annotations

import struct
import zlib
from typing import Any, Optional

from .buffers import BytesLike

from .chip import Am7990
from .csr import CSR0, CSR3
from .dma import RamDma
from .layouts import bcnt_word, encode_init

MAC = bytes.fromhex("008010123456")
_W = struct.Struct(">H")


class Rig:
    """RAM + chip. Ring layout: init block at ``iadr``, RX ring, TX ring, RX buffers, TX buffers."""

    def __init__(self, timing: str = "fast", *, mode: int = 0, padr: BytesLike = MAC,
                 ladrf: int = 0, rlen: int = 4, tlen: int = 4, rx_buf: int = 1544,
                 tx_buf: int = 1544, bswp: bool = True, iadr: int = 0x8000,
                 transmit: bool = True, link: bool = True) -> None:
        self.ram = bytearray(32768)
        self.dma = RamDma(self.ram, 0x7FFF)
        self.irq_edges: list[bool] = []
        self.sent: list[tuple[bytes, int]] = []  # (frame, t_ns)
        self.link = link
        self.chip = Am7990(self.dma, irq=self.irq_edges.append,
                           transmit=self._transmit if transmit else None, timing=timing)
        self.mode, self.padr, self.ladrf = mode, bytes(padr), ladrf
        self.rlen, self.tlen = rlen, tlen
        self.rx_buf, self.tx_buf = rx_buf, tx_buf
        self.bswp = bswp
        self.iadr = iadr
        self.rdra = (iadr + 24 + 7) & ~7
        self.tdra = self.rdra + 8 * rlen
        self.rx_bufs = [self.tdra + 8 * tlen + i * rx_buf for i in range(rlen)]
        tx0 = self.tdra + 8 * tlen + rlen * rx_buf
        self.tx_bufs = [tx0 + i * tx_buf for i in range(tlen)]

    # -------------------------------------------------------------- plumbing
    def _transmit(self, frame: bytes, t: int) -> bool:
        self.sent.append((bytes(frame), t))
        return self.link

    def off(self, addr: int) -> int:
        return addr & 0x7FFF

    def w16(self, addr: int, v: int) -> None:
        _W.pack_into(self.ram, self.off(addr), v & 0xFFFF)

    def r16(self, addr: int) -> int:
        value: int = _W.unpack_from(self.ram, self.off(addr))[0]
        return value

    def put(self, addr: int, data: BytesLike) -> None:
        for i, b in enumerate(data):  # wraps at 32 KB like the board
            self.ram[self.off(addr + i)] = b

    def get(self, addr: int, n: int) -> bytes:
        return bytes(self.ram[self.off(addr + i)] for i in range(n))

    def csr_write(self, n: int, v: int) -> None:
        self.chip.write_rap(n)
        self.chip.write_rdp(v)

    def csr_read(self, n: int) -> int:
        self.chip.write_rap(n)
        return self.chip.read_rdp()

    @property
    def csr0(self) -> int:
        return self.chip.csr0

    # -------------------------------------------------------------- setup
    def write_init_block(self) -> None:
        self.put(self.iadr, encode_init(mode=self.mode, padr=self.padr, ladrf=self.ladrf,
                                        rdra=self.rdra, rlen=self.rlen, tdra=self.tdra,
                                        tlen=self.tlen))

    def write_rings(self, rx_own: bool = True) -> None:
        for i in range(self.rlen):
            self.set_rmd(i, own=rx_own)
        for i in range(self.tlen):
            b = self.tx_bufs[i]
            a = self.tdra + 8 * i
            self.w16(a, b & 0xFFFF)
            self.w16(a + 2, (b >> 16) & 0xFF)
            self.w16(a + 4, 0xF000)
            self.w16(a + 6, 0)

    def set_rmd(self, i: int, *, own: bool = True, length: Optional[int] = None,
                buf: Optional[int] = None) -> None:
        b = self.rx_bufs[i] if buf is None else buf
        a = self.rdra + 8 * i
        self.w16(a, b & 0xFFFF)
        self.w16(a + 4, bcnt_word(self.rx_buf if length is None else length))
        self.w16(a + 6, 0)
        self.w16(a + 2, (0x8000 if own else 0) | ((b >> 16) & 0xFF))

    def init(self, *, start: bool = True, inea: bool = True, rx_own: bool = True) -> None:
        """Linux-style bring-up: STOP, CSR1-3, build memory, INIT, ack IDON, INEA|STRT."""
        self.csr_write(0, CSR0.STOP)
        self.csr_write(1, self.iadr & 0xFFFF)
        self.csr_write(2, (self.iadr >> 16) & 0xFF)
        self.csr_write(3, CSR3.BSWP if self.bswp else 0)
        self.write_init_block()
        self.write_rings(rx_own=rx_own)
        self.csr_write(0, CSR0.INIT)
        if start:
            self.csr_write(0, CSR0.IDON)
            self.csr_write(0, (CSR0.INEA if inea else 0) | CSR0.STRT)

    # -------------------------------------------------------------- descriptors
    def rmd(self, i: int) -> tuple[int, ...]:
        a = self.rdra + 8 * i
        return tuple(self.r16(a + 2 * k) for k in range(4))

    def tmd(self, i: int) -> tuple[int, ...]:
        a = self.tdra + 8 * i
        return tuple(self.r16(a + 2 * k) for k in range(4))

    def rx_data(self, i: int, n: Optional[int] = None) -> bytes:
        if n is None:
            n = self.rmd(i)[3] & 0xFFF
        return self.get(self.rx_bufs[i], n)

    def queue_tx(self, i: int, frame: BytesLike, *, own: bool = True, stp: bool = True,
                 enp: bool = True, tdmd: bool = False, buf: Optional[int] = None) -> None:
        """Fill TX buffer i and its descriptor (OWN written last), optionally write TDMD."""
        b = self.tx_bufs[i] if buf is None else buf
        if self.bswp:
            self.put(b, frame)
        else:
            for k, byte in enumerate(frame):
                self.ram[self.off((b + k) ^ 1)] = byte
        a = self.tdra + 8 * i
        self.w16(a, b & 0xFFFF)
        self.w16(a + 4, bcnt_word(len(frame)))
        self.w16(a + 6, 0)
        self.w16(a + 2, (0x8000 if own else 0) | (0x0200 if stp else 0) | (0x0100 if enp else 0)
                 | ((b >> 16) & 0xFF))
        if tdmd:
            self.csr_write(0, CSR0.INEA | CSR0.TDMD)

    def give_back_rx(self, i: int) -> None:
        """Return RX descriptor i to the chip as Linux does: MCNT=0, RMD1 = OWN."""
        a = self.rdra + 8 * i
        self.w16(a + 6, 0)
        self.ram[self.off(a + 2)] = 0x80


def frame(dst: BytesLike = MAC, src: BytesLike = bytes.fromhex("020000000001"),
          ethertype: int = 0x0800, payload: BytesLike = b"", length: Optional[int] = None) -> bytes:
    """An Ethernet frame without FCS; ``length`` pads/truncates the payload to that total."""
    f = bytes(dst) + bytes(src) + ethertype.to_bytes(2, "big") + bytes(payload)
    if length is not None:
        f = (f + bytes(range(256)) * 8)[:length] if len(f) < length else f[:length]
    return f


def fcs(data: BytesLike) -> bytes:
    """The Ethernet FCS as it follows a frame in RAM (CRC-32, little-endian)."""
    return zlib.crc32(data).to_bytes(4, "little")


def running(**kw: Any) -> Rig:
    """A `Rig(**kw)` already through INIT and started."""
    r = Rig(**kw)
    r.init()
    return r


class RecordingDma(RamDma):
    """RamDma that logs every 16-bit write as (RAM offset, value), for write-order tests."""

    def __init__(self, ram: bytearray, log: list[tuple[int, int]]) -> None:
        super().__init__(ram)
        self.log = log

    def write16(self, addr: int, value: int) -> None:
        self.log.append((addr & 0x7FFF, value))
        super().write16(addr, value)


def trace_registers(chip: Am7990, log: list[tuple[str, int]]) -> None:
    """Log every RAP/RDP access made through `chip` from now on: ("rap", value), ("w", value),
    ("r", value). The driver-sequence tests and the 68000 runners compare such traces with the
    sequences the reference gives for the Linux and NetBSD drivers."""
    w_rap, w_rdp, r_rdp = chip.write_rap, chip.write_rdp, chip.read_rdp

    def write_rap(value: int) -> None:
        log.append(("rap", value & 0xFFFF))
        w_rap(value)

    def write_rdp(value: int) -> None:
        log.append(("w", value & 0xFFFF))
        w_rdp(value)

    def read_rdp() -> int:
        v = r_rdp()
        log.append(("r", v & 0xFFFF))
        return v
    chip.write_rap, chip.write_rdp, chip.read_rdp = write_rap, write_rdp, read_rdp  # type: ignore[method-assign]
