"""AMD Am7990 LANCE: registers, init block, TX/RX rings, address filter, loopback, event timing.

Hardware facts and their sources: the team reference am7990-a2065.md (§3-9); comments cite its
tags (``ref: M, TME``). Guesses are marked ``unverified``. Every choice for an item the reference
calls unconfirmed is listed in docs/architecture.md, section "lance/".

Time is integer ns of emulated time. Two timing modes:

- ``fast``: a frame offered to ``receive`` is stored at once; a TX poll sends every owned frame
  back to back at once. The 1.6 ms idle TX poll still runs on emulated time.
- ``wire``: 10 Mb/s. A received frame is stored when its last bit arrives,
  ``now + (len_with_fcs + 8) * 800`` ns, and the receiver takes the next one 9.6 us later.
  A transmitted frame is fetched at the poll and completes (descriptors written, TINT,
  ``transmit`` called) after the same wire time; the next one starts no earlier than 9.6 us later.

The model never reads a clock; the host calls ``advance_to``.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import struct
import zlib
from typing import Any, Callable, Literal, Optional, SupportsInt, Union, cast

_lance_paths: Optional[Callable[[bytearray, bytearray], Any]]
try:  # the C core's per-frame descriptor paths (or their pure-Python twins): native/SPEC.md
    from native import LANCE_TX_OUT, lance_paths as _lance_paths
except ImportError:  # pragma: no cover - lance used without the native package: general paths
    LANCE_TX_OUT, _lance_paths = 0, None

from .buffers import BytesLike
from .csr import (
    CSR0_ERR_SOURCES, CSR0_INTR_SOURCES, CSR0_W1C, CSR3, CSR3_MASK, MODE, RMD1, TMD1, TMD3,
)
from .dma import DescriptorDma, DmaPort, GenericDma, RamDma
from .fcs import crc32_bytes
from .filter import address_filter
from .layouts import decode_init
from .timing import (
    FCS_LEN, IFG_NS, MAX_FRAME_WITH_FCS, MIN_FRAME_WITH_FCS,
    MIN_FRAME_WITHOUT_FCS, RX_MAX_FRAME_WITH_FCS, RX_MAX_FRAME_WITHOUT_FCS, SLOT_NS, TX_POLL_NS,
    frame_wire_ns,
)

#: ``irq(level)``: the chip's INTR line changed (True: asserted).
IrqCallback = Callable[[bool], None]
#: ``transmit(frame_with_fcs, t_ns)``: a frame left at emulated time ``t_ns``; False: it was not
#: carried (TMD3.LCAR), True or None: it was.
TransmitCallback = Callable[[bytes, int], Optional[bool]]

log_rx = logging.getLogger("a2065.lance.rx")
log_tx = logging.getLogger("a2065.lance.tx")
log_csr = logging.getLogger("a2065.lance.csr")

#: Layout of the dict ``snapshot()`` returns. The chip keeps no upgrade chain of its own: its state
#: is saved as part of the card snapshot (a2065/snapshot.py), whose one version chain upgrades an
#: old chip layout together with the rest of the card; ``restore`` takes this layout only.
STATE_VERSION = 1

#: CRC-32 residue: zlib.crc32(data + fcs_le(data)) for any data with its correct FCS appended.
_CRC_RESIDUE = 0x2144DF1C
#: Bound on bytes gathered for one transmitted frame: the A2065 RAM size (more only aliases).
MAX_GATHER = 32768

# Plain-int copies of the flags for the hot paths.
_INIT, _STRT, _STOP, _TDMD = 0x0001, 0x0002, 0x0004, 0x0008
_TXON, _RXON, _INEA = 0x0010, 0x0020, 0x0040
_CONTROL = _INIT | _STRT | _STOP
_IDON, _TINT, _RINT, _MERR, _MISS, _CERR, _BABL = 0x0100, 0x0200, 0x0400, 0x0800, 0x1000, 0x2000, 0x4000
_W1C = int(CSR0_W1C)
_ERRS = int(CSR0_ERR_SOURCES)
_INTRS = int(CSR0_INTR_SOURCES)
_OWN, _ERR = int(RMD1.OWN), int(RMD1.ERR)  # the same bits in TMD1
_STP, _ENP = int(RMD1.STP), int(RMD1.ENP)
_R_BUFF, _R_CRC = int(RMD1.BUFF), int(RMD1.CRC)
_T_STATUS = int(TMD1.ERR | TMD1.MORE | TMD1.ONE | TMD1.DEF)  # cleared by the chip in TMD1
_TMD1_KEEP = 0xFFFF & ~(_OWN | _T_STATUS)  # TMD1 bits a finished transmission leaves as written
_LCAR = int(TMD3.LCAR)
_BSWP = int(CSR3.BSWP)
_MAX_XFER = 4096  # one buffer at most (12-bit BCNT): the longest single DMA transfer
_M_DRX, _M_DTX, _M_LOOP, _M_DTCR = int(MODE.DRX), int(MODE.DTX), int(MODE.LOOP), int(MODE.DTCR)
_M_COLL, _M_DRTY, _M_INTL, _M_PROM = int(MODE.COLL), int(MODE.DRTY), int(MODE.INTL), int(MODE.PROM)


class RxStatus(enum.Enum):
    """What ``receive`` did with a frame."""

    ACCEPTED = "accepted"  # stored (fast) or in flight to be stored (wire)
    FILTERED = "filtered"  # address filter rejected it
    MISSED = "missed"  # no owned descriptor: CSR0.MISS
    RX_OFF = "rx_off"  # stopped, RXON=0, or internal loopback (no external reception)
    BUSY = "busy"  # wire timing: still receiving the previous frame / inter-frame gap
    TOO_LONG = "too_long"  # over RX_MAX_FRAME_WITH_FCS = 1544 bytes with FCS (1540 without)
    RUNT = "runt"  # has_fcs frame under 64 bytes


@dataclasses.dataclass
class Counters:
    """Frame accounting. Invariant (checked by ``Am7990.counters_balanced``)::

        rx_offered == rx_delivered + rx_filtered + rx_missed + rx_dropped + rx_in_flight

    where rx_dropped is the sum of the rx_dropped_* fields. Loopback frames count as offered.
    A frame stored with CRC set (DTCR loopback or bad host FCS) counts as delivered (and in
    rx_crc_errors); a frame cut by a chain break (RMD1.BUFF) counts in rx_dropped_buff.
    """

    rx_offered: int = 0
    rx_delivered: int = 0
    rx_filtered: int = 0
    rx_missed: int = 0
    rx_in_flight: int = 0
    rx_dropped_off: int = 0  # receiver off / stopped
    rx_dropped_loopback: int = 0  # outside frame during internal loopback
    rx_dropped_busy: int = 0  # wire timing: receiver busy
    rx_dropped_too_long: int = 0
    rx_dropped_runt: int = 0
    rx_dropped_buff: int = 0  # chain break: partial frame, RMD1.BUFF
    rx_dropped_stopped: int = 0  # in flight when STOP/INIT/reset came
    rx_crc_errors: int = 0
    rx_bytes: int = 0  # bytes stored incl. FCS of delivered frames
    tx_frames: int = 0  # frames completed without a chain break (incl. LCAR, RTRY)
    tx_bytes: int = 0  # bytes put on the wire incl. FCS
    tx_errors: int = 0  # descriptors finished with TMD1.ERR
    tx_lcar: int = 0
    tx_buff: int = 0
    tx_rtry: int = 0
    tx_no_stp: int = 0  # owned descriptors without STP released and skipped
    tx_aborted: int = 0  # in flight when STOP/INIT/reset came
    tx_loopback: int = 0
    babl: int = 0
    polls: int = 0

    @property
    def rx_dropped_by(self) -> dict[str, int]:
        """Dropped frames by reason: {"off": n, "loopback": n, "busy": n, ...}."""
        return {f.name[len("rx_dropped_"):]: getattr(self, f.name)
                for f in dataclasses.fields(self) if f.name.startswith("rx_dropped_")}

    @property
    def rx_dropped(self) -> int:
        return (self.rx_dropped_off + self.rx_dropped_loopback + self.rx_dropped_busy
                + self.rx_dropped_too_long + self.rx_dropped_runt + self.rx_dropped_buff
                + self.rx_dropped_stopped)


_RX_OFF = RxStatus.RX_OFF
_ACCEPTED = RxStatus.ACCEPTED
_FILTERED = RxStatus.FILTERED
_WORD_PACK = struct.Struct(">H").pack_into
_RMD123_PACK = struct.Struct(">3H").pack_into  # descriptor words 1-3 (RMD or TMD)
_FCS_BYTES = struct.Struct("<I").pack


class Am7990:
    """The LANCE. See docs/architecture.md (lance contract) for the public API."""

    # set by the dma setter: the RAM behind a plain RamDma (the hot paths' direct access) or None
    _ram: Optional[bytearray]
    _ram_mask: int

    def __init__(self, dma: DmaPort, *, irq: Optional[IrqCallback] = None,
                 transmit: Optional[TransmitCallback] = None, timing: str = "fast",
                 name: str = "lance") -> None:
        if timing not in ("fast", "wire"):
            raise ValueError(f"timing must be 'fast' or 'wire', not {timing!r}")
        self.irq = irq
        self.transmit = transmit
        self.timing = timing
        self._wire = timing == "wire"
        self.name = name
        self.counters = Counters()
        self.now = 0
        self._irq_level = False
        self._rap = 0
        self._csr1 = 0
        self._csr2 = 0
        self._csr3 = 0
        self._csr0 = _STOP
        # init block state
        self._mode = 0
        self._padr = bytes(6)
        self._ladrf = 0
        self._rdra = 0
        self._rlen = 1
        self._tdra = 0
        self._tlen = 1
        self._rx_idx = 0
        self._tx_idx = 0
        self._accepts = address_filter(self._padr, 0, False)  # rebuilt with PADR/LADRF/MODE
        # events (absolute ns or None)
        self._tx_poll_at: Optional[int] = None  # periodic idle poll
        self._tx_gap_at: Optional[int] = None  # poll after a frame + inter-frame gap (wire)
        self._tx_flight: Optional[dict[str, Any]] = None  # frame in transmission (wire)
        self._rx_flight: Optional[dict[str, Any]] = None  # frame being received (wire)
        self._rx_idle_at = 0
        self._ram_reported = False  # the host calls ram_written() after its RAM writes
        self._tx_idle_seen = False  # current TMD seen not owned, nothing changed since
        self._rx_fast = self._tx_fast = False  # which hot paths apply (see _paths_changed)
        self.dma = dma

    # ------------------------------------------------------------------ registers
    def write_rap(self, value: int) -> None:
        """RAP: bits 1:0 select CSR0-3; other bits ignored (ref: M, TME, W)."""
        self._rap = int(value) & 3

    def read_rap(self) -> int:
        return self._rap

    def read_rdp(self) -> int:
        """Read the CSR selected by RAP. CSR1-3 read their stored value even while running
        (ref: M returns open bus there; W reads the value; unverified)."""
        r = self._rap
        if r == 0:
            return self.csr0
        if r == 1:
            return self._csr1
        if r == 2:
            return self._csr2
        return self._csr3

    def write_rdp(self, value: int) -> None:
        """Write the CSR selected by RAP. CSR1-3 writes are ignored unless STOP=1 (ref: M, W).
        CSR0 (every interrupt acknowledgement and TDMD) is handled here without further calls
        unless the write has STOP, INIT or STRT."""
        v = (value if type(value) is int else int(value)) & 0xFFFF
        r = self._rap
        if r:
            self._write_csr123(r, v)
            return
        self._tx_idle_seen = False
        if v & _CONTROL:
            self._write_csr0_control(v)
            return
        c = self._csr0 & ~(v & _W1C)
        if not c & _STOP:
            # INEA takes the written value on every write (ref: L-a2065); while STOP=1 the
            # 7990 ignores it (ref: M). TDMD is set-only; cleared at the poll (ref: M, TME).
            c = (c & ~_INEA) | (v & (_INEA | _TDMD))
            self._csr0 = c
            if c & _TDMD and c & _TXON:
                self._tx_poll()
                c = self._csr0
        else:
            self._csr0 = c
        if (c & _INEA != 0 and c & _INTRS != 0) is not self._irq_level:
            self._update_irq()

    def _write_csr123(self, r: int, v: int) -> None:
        if not self._csr0 & _STOP:
            log_csr.debug("%s: CSR%d write %#06x ignored while running", self.name, r, v)
            return
        if r == 1:
            self._csr1 = v & 0xFFFE  # IADR[15:1]; bit 0 forced 0 (ref: M mask 0xFFFFFE)
        elif r == 2:
            self._csr2 = v  # 15:8 reserved, writable on the 7990 (ref: M); IADR uses 7:0
        else:
            self._csr3 = v & CSR3_MASK  # BSWP, ACON, BCON (ref: M CSR3_MASK)
            self._paths_changed()

    @property
    def csr0(self) -> int:
        """CSR0 as software reads it: stored bits plus derived ERR and INTR."""
        c = self._csr0
        if c & _ERRS:
            c |= 0x8000
        if c & _INTRS:
            c |= 0x0080
        return c

    @property
    def csr1(self) -> int:
        return self._csr1

    @property
    def csr2(self) -> int:
        return self._csr2

    @property
    def csr3(self) -> int:
        return self._csr3

    @property
    def iadr(self) -> int:
        """Init block address (24 bits, word aligned)."""
        return ((self._csr2 & 0xFF) << 16) | (self._csr1 & 0xFFFE)

    @property
    def mode(self) -> int:
        return self._mode

    @property
    def padr(self) -> bytes:
        return self._padr

    @property
    def ladrf(self) -> int:
        return self._ladrf

    @property
    def rx_ring(self) -> tuple[int, int, int]:
        """(base, entries, current index)."""
        return (self._rdra, self._rlen, self._rx_idx)

    @property
    def tx_ring(self) -> tuple[int, int, int]:
        return (self._tdra, self._tlen, self._tx_idx)

    @property
    def irq_asserted(self) -> bool:
        return self._irq_level

    def _write_csr0_control(self, v: int) -> None:
        """A CSR0 write with STOP, INIT or STRT (then the rest of the write as usual)."""
        if v & _STOP:
            # STOP overrides INIT and STRT in the same write; CSR0 <- 0x0004 (INEA too),
            # CSR3 <- 0 (ref: TME quoting DS, M, W, DS90 p.24).
            self._stop()
            self._paths_changed()
            self._update_irq()
            return
        c = self._csr0 & ~(v & _W1C)
        self._csr0 = c
        if v & _INIT:
            if c & _STOP:
                self._init()
            else:
                # The datasheet requires STOP before INIT; INIT while initialised/running is
                # ignored (drivers mask INIT out of their write-backs). unverified
                log_csr.debug("%s: INIT ignored, STOP=0", self.name)
        if v & _STRT:
            self._start()
        self._paths_changed()
        c = self._csr0
        if not c & _STOP:
            c = (c & ~_INEA) | (v & (_INEA | _TDMD))  # as in write_rdp
            self._csr0 = c
            if c & _TDMD and c & _TXON:
                self._tx_poll()
        self._update_irq()

    def _update_irq(self) -> None:
        c = self._csr0
        level = bool(c & _INTRS) and bool(c & _INEA)
        if level != self._irq_level:
            self._irq_level = level
            if self.irq is not None:
                self.irq(level)

    # ------------------------------------------------------------------ STOP / INIT / STRT
    def _abort_flights(self) -> None:
        if self._rx_flight is not None:
            self._rx_flight = None
            self.counters.rx_in_flight -= 1
            self.counters.rx_dropped_stopped += 1
        if self._tx_flight is not None:
            self._tx_flight = None
            self.counters.tx_aborted += 1
        self._tx_gap_at = None
        self._tx_poll_at = None

    def _stop(self) -> None:
        self._abort_flights()
        self._csr0 = _STOP
        self._csr3 = 0

    def reset(self) -> None:
        """RESET pin: as STOP, and RAP=0. CSR1/CSR2 keep their values (ref: M)."""
        self._tx_idle_seen = False
        self._stop()
        self._paths_changed()
        self._rap = 0
        self._update_irq()

    def _init(self) -> None:
        """Read the 12-word init block at IADR; IDON at once (both timing modes)."""
        self._abort_flights()
        try:
            ib = decode_init(self.dma.read(self.iadr, 24))
        except Exception:  # a foreign DmaPort misbehaving: treat as zeros, keep going
            log_csr.exception("%s: init block read failed", self.name)
            ib = decode_init(bytes(24))
        self._mode = ib["mode"]
        self._padr = ib["padr"]
        self._ladrf = ib["ladrf"]
        self._rdra = ib["rdra"]
        self._rlen = ib["rlen"]
        self._tdra = ib["tdra"]
        self._tlen = ib["tlen"]
        self._accepts = address_filter(self._padr, self._ladrf, self._mode & _M_PROM)
        self._rx_idx = 0  # rings rewound (ref: M, TME)
        self._tx_idx = 0
        self._csr0 = (self._csr0 & ~(_STOP | _RXON | _TXON | _TDMD)) | _INIT | _IDON

    def _start(self) -> None:
        """STRT: RXON unless DRX, TXON unless DTX; clears STOP (ref: TME quoting DS, M).
        Written again while running it re-enables a transmitter stopped by BUFF/UFLO. unverified"""
        c = (self._csr0 & ~_STOP) | _STRT
        c = c & ~(_RXON | _TXON)
        if not self._mode & _M_DRX:
            c |= _RXON
        if not self._mode & _M_DTX:
            c |= _TXON
            if self._tx_poll_at is None:
                self._tx_poll_at = self.now + TX_POLL_NS
        else:
            self._tx_poll_at = None
        self._csr0 = c

    # ------------------------------------------------------------------ time
    def _next_event(self) -> tuple[Optional[int], Optional[str]]:
        """(time, kind) of the earliest event; at equal times rx, then tx, gap, poll."""
        best: Optional[int] = None
        which: Optional[str] = None
        f = self._rx_flight
        if f is not None:
            best, which = f["at"], "rx"
        f = self._tx_flight
        if f is not None and (best is None or f["at"] < best):
            best, which = f["at"], "tx"
        t = self._tx_gap_at
        if t is not None and (best is None or t < best):
            best, which = t, "gap"
        t = self._tx_poll_at
        if t is not None and (best is None or t < best):
            best, which = t, "poll"
        return best, which

    def next_deadline(self) -> Optional[int]:
        """Absolute ns of the next internal event (idle TX polls included), or None."""
        return self._next_event()[0]

    def next_visible_deadline(self) -> Optional[int]:
        """Absolute ns of the next event that can change what a driver sees, or None: every
        event except an idle TX poll (TDMD clear and the current TMD not owned), which changes
        nothing a driver can read. A host that runs its CPU in slices, and ends one when a
        write makes this earlier, ends them here, so an idle card never cuts one.
        ``advance_to`` still runs every poll at its exact 1.6 ms time, so the poll phase, and
        the time a frame handed over later leaves, are those of a chip the host stopped at
        every poll; a RAM write that hands a TMD to the chip makes this report the next poll."""
        best = self._tx_poll_at
        if best is not None and self._tx_poll_is_idle():
            best = None
        for t in (self._rx_flight["at"] if self._rx_flight is not None else None,
                  self._tx_flight["at"] if self._tx_flight is not None else None,
                  self._tx_gap_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def ram_writes_reported(self, reported: bool = True) -> None:
        """The host says whether it calls ``ram_written()`` after every write it makes to the RAM
        this chip reads (the A2065 board does, for each bus write to its buffer RAM). While it
        does, ``next_visible_deadline()`` reads the current TMD again only after such a write
        (or a register write or an event), not on every call."""
        self._ram_reported = bool(reported)
        self._tx_idle_seen = False

    def ram_written(self) -> None:
        """The host wrote RAM this chip reads (see ``ram_writes_reported``)."""
        self._tx_idle_seen = False

    def _tx_poll_is_idle(self) -> bool:
        """TDMD clear and the current TMD not owned."""
        if self._tx_idle_seen:
            return True
        if self._csr0 & _TDMD or self._tx_owned():
            return False
        self._tx_idle_seen = self._ram_reported  # cached only while RAM writes are reported
        return True

    def advance_to(self, t_ns: int) -> None:
        """Run every event due at or before ``t_ns`` in time order, then set now = t_ns.
        A time earlier than ``now`` is ignored (time never goes back)."""
        t = int(t_ns)
        if t < self.now:
            return
        while True:  # each event is consumed or moves itself past t (idle polls in one step)
            at, which = self._next_event()
            if at is None or at > t:
                break
            if at > self.now:
                self.now = at
            if which == "rx":
                self._tx_idle_seen = False
                self._rx_complete()
            elif which == "tx":
                self._tx_idle_seen = False
                self._tx_complete()
            elif which == "gap":
                self._tx_idle_seen = False
                self._tx_gap_at = None
                self._tx_poll()
            elif (self._rx_flight is None and self._tx_flight is None
                  and self._tx_gap_at is None and self._csr0 & _TXON
                  and (self._tx_idle_seen or not self._tx_owned())):
                # Idle polls find nothing and nothing else can change RAM before t: run them
                # all at once (same phase, same result as one by one). They change nothing
                # the idle check looked at, so its cached answer stays.
                k = (t - at) // TX_POLL_NS + 1
                self._csr0 &= ~_TDMD
                self.counters.polls += k
                self.now = at + (k - 1) * TX_POLL_NS
                self._tx_poll_at = at + k * TX_POLL_NS
            else:
                self._tx_idle_seen = False
                self._tx_poll()
            self._update_irq()
        self.now = t

    # ------------------------------------------------------------------ guest data helpers
    @property
    def dma(self) -> DescriptorDma:
        return self._dma

    @dma.setter
    def dma(self, port: DmaPort) -> None:
        """Set the DMA port (any DmaPort; one without ``read_desc`` is wrapped in GenericDma).
        A plain RamDma over a power-of-two RAM also enables the RX hot path."""
        if not hasattr(port, "read_desc"):
            port = GenericDma(port)
        self._dma = cast(DescriptorDma, port)  # it has read_desc now
        self._tx_idle_seen = False
        self._ram = None
        self._ram_mask = 0
        self._ram_size = 0
        # native.lance_paths: (RAM handle, TX buffer handle, rx_store, tx_take); releasing the
        # old handles lets the host resize a RAM this chip no longer uses
        self._ram_paths: tuple[Any, Any, Any, Any] = (None, None, None, None)
        self._tx_out = None
        if (type(port) is RamDma and port.size == port.mask + 1
                and port.size & (port.size - 1) == 0 and _lance_paths is not None):
            self._ram = port.ram
            self._ram_mask = port.mask
            self._ram_size = port.size
            out = bytearray(LANCE_TX_OUT)
            self._tx_out = memoryview(out)
            self._ram_paths = _lance_paths(port.ram, out)
        self._paths_changed()

    def _paths_changed(self) -> None:
        """Which hot paths apply: a RamDma over a power-of-two RAM, fast timing, CSR3.BSWP=1, no
        loopback (and RXON for receive). Recomputed whenever one of them can change: the DMA
        port, CSR0 STOP/INIT/STRT, CSR3, reset, restore."""
        simple = (self._ram is not None and not self._wire and bool(self._csr3 & _BSWP)
                  and not self._mode & _M_LOOP)
        self._rx_fast = simple and bool(self._csr0 & _RXON)
        self._tx_fast = simple
        # what the transmit hot path reads per poll, fixed until the next change listed above
        # (INIT and restore, which set TDRA/TLEN/MODE, end in this call)
        self._tx_hot = (self._ram, self._ram_size, *self._ram_paths[:2], self._ram_paths[3],
                        self._tx_out, self._tdra, self._tlen - 1, self._tlen * 2,
                        not self._mode & _M_DTCR) if simple else None

    def _span_read(self, start: int, length: int) -> bytearray:
        """Read the word-aligned span around a BSWP=0 buffer in transfers of at most one
        buffer's 4096 bytes (an odd-address 4096-byte buffer spans 4098)."""
        span = bytearray(self.dma.read(start, min(length, _MAX_XFER)))
        pos = _MAX_XFER
        while pos < length:
            span += self.dma.read((start + pos) & 0xFFFFFF, min(length - pos, _MAX_XFER))
            pos += _MAX_XFER
        return span

    def _span_write(self, start: int, span: BytesLike) -> None:
        for pos in range(0, len(span), _MAX_XFER):
            self.dma.write((start + pos) & 0xFFFFFF, span[pos:pos + _MAX_XFER])

    def _read_data(self, addr: int, n: int) -> bytes:
        if self._csr3 & _BSWP:
            return self.dma.read(addr, n)
        # BSWP=0: frame byte i is at (addr + i) ^ 1 (byte pairs swapped)
        start = addr & ~1
        end = (addr + n + 1) & ~1
        span = self._span_read(start, end - start)
        span[0::2], span[1::2] = span[1::2], span[0::2]
        off = addr - start
        return bytes(span[off:off + n])

    def _write_data(self, addr: int, data: BytesLike) -> None:
        if self._csr3 & _BSWP:
            self.dma.write(addr, data)
            return
        n = len(data)
        start = addr & ~1
        end = (addr + n + 1) & ~1
        span = self._span_read(start, end - start)
        span[0::2], span[1::2] = span[1::2], span[0::2]
        off = addr - start
        span[off:off + n] = data
        span[0::2], span[1::2] = span[1::2], span[0::2]
        self._span_write(start, span)

    # ------------------------------------------------------------------ transmit
    def _tx_owned(self) -> bool:
        """Whether the chip owns the TX descriptor at the current index."""
        a = (self._tdra + (self._tx_idx << 3)) & 0xFFFFFF
        return bool(self.dma.read_desc(a)[1] & _OWN)

    def _tx_poll(self) -> None:
        """One TX poll: clears TDMD; sends the owned frames (all of them back to back in fast
        mode, the first one in wire mode). Never skips a descriptor it does not own.
        The caller updates the IRQ line afterwards.

        Hot path (see _paths_changed) for the common frames, inline here: one descriptor each,
        STP and ENP, a buffer that does not wrap the RAM; sent as ``_tx_fetch`` +
        ``_tx_finish`` would. Any other TMD goes to the general path."""
        csr0 = self._csr0 & ~_TDMD
        self._csr0 = csr0
        c = self.counters
        c.polls += 1
        if not csr0 & _TXON:
            self._tx_poll_at = None
            return
        self._tx_poll_at = self.now + TX_POLL_NS  # the idle poll timer restarts at every poll
        hot = self._tx_hot
        if hot is None:  # (fast timing: never a frame in flight or a gap)
            if self._tx_flight is None and self._tx_gap_at is None:
                self._tx_send_general()
            return  # else busy: the poll after the gap will look again
        ram, size, ramh, outh, take, out, tdra, tmask, left, add_fcs = hot  # left: 2 x TLEN
        rmask = size - 1
        while left:  # bound: each pass sends one frame
            left -= 1
            idx = self._tx_idx
            a = (tdra + (idx << 3)) & rmask  # 8-aligned: a descriptor never wraps
            if not ram[a + 2] & 0x80:  # TMD1.OWN (bit 15: the high byte, first in RAM)
                return
            # one owned STP|ENP buffer inside RAM: copied with its FCS (else 0: general path)
            taken = take(ramh, size, a, add_fcs, outh, LANCE_TX_OUT)
            if taken <= 0:
                break
            n = taken & 0xFFFF  # with the FCS
            frame = out[:n].tobytes()
            self._tx_idx = (idx + 1) & tmask
            tmd3 = 0
            transmit = self.transmit
            if transmit is not None:
                ok = transmit(frame, self.now)
                if ok is not None and not ok:
                    tmd3 = _LCAR  # link down: carrier lost, frame still "sent"
                    c.tx_lcar += 1
            c.tx_bytes += n
            if n > MAX_FRAME_WITH_FCS:
                self._csr0 |= _BABL  # as _tx_finish
                c.babl += 1
            # TMD1 (OWN cleared, ERR with TMD3), TMD2 as it was, TMD3 (TDR 0: no collisions) in
            # one store (the general path writes TMD3 before TMD1; nothing runs in between here)
            _RMD123_PACK(ram, a + 2, ((taken >> 16) & _TMD1_KEEP) | (_ERR if tmd3 else 0),
                         taken >> 32, tmd3)
            c.tx_frames += 1
            if tmd3:
                c.tx_errors += 1
            csr0 = self._csr0 | _TINT
            self._csr0 = csr0
            if not csr0 & _TXON:
                return  # the transmit callback stopped the chip
        else:
            return
        self._tx_send_general()

    def _tx_send_general(self) -> None:
        """Send the owned frames of any shape from the current TMD (the poll's general path)."""
        for _ in range(self._tlen * 2):  # bound: each pass releases at least one descriptor
            job = self._tx_fetch()
            if job is None:
                break
            if job is True:
                if not self._csr0 & _TXON:
                    break  # BUFF/UFLO turned the transmitter off
                continue  # a descriptor was released without a frame (no STP)
            if self._wire:
                self._tx_flight = job
                break
            self._tx_finish(job, self.now)
            if not self._csr0 & _TXON:
                break

    def _tx_fetch(self) -> Union[None, Literal[True], dict[str, Any]]:
        """Look at the current TX descriptor. Returns None (not owned: stay on it), True (a
        descriptor was consumed without a frame), or a job dict for a frame to send."""
        dma = self.dma
        mask = self._tlen - 1
        base = self._tdra
        idx = self._tx_idx
        a = (base + (idx << 3)) & 0xFFFFFF
        w0, w1, w2, w3 = dma.read_desc(a)
        if not w1 & _OWN:
            return None
        if not w1 & _STP:
            # OWN without STP: released and skipped (ref: M, TME; TME also sets TINT, we do not).
            dma.write16(a + 2, w1 & ~_OWN)
            self._tx_idx = (idx + 1) & mask
            self.counters.tx_no_stp += 1
            log_tx.debug("%s: TMD %d owned without STP, released", self.name, idx)
            return True
        chunks = []
        total = 0
        descs = []
        j = idx
        for k in range(self._tlen):  # bound: ring length
            blen = (-w2) & 0xFFF or 4096  # BCNT 0 = 4096 (ref: M)
            take = min(blen, MAX_GATHER - total)
            if take > 0:
                chunks.append(self._read_data(((w1 & 0xFF) << 16) | w0, take))
                total += take
            descs.append((a, w1))
            if w1 & _ENP:
                break
            nj = (j + 1) & mask
            na = (base + (nj << 3)) & 0xFFFFFF
            nw = dma.read_desc(na) if k + 1 < self._tlen else (0, 0, 0, 0)
            if not nw[1] & _OWN:
                # Chain break: BUFF+UFLO in TMD3, ERR in TMD1, TXON off (ref: PCnet, M; TME BUFF
                # only). Earlier buffers are released; TINT; the frame is not sent.
                for pa, pw1 in descs[:-1]:
                    dma.write16(pa + 2, pw1 & ~(_OWN | _T_STATUS))
                dma.write16(a + 6, (w3 & 0x2000) | int(TMD3.BUFF | TMD3.UFLO))
                dma.write16(a + 2, (w1 & ~(_OWN | _T_STATUS)) | _ERR)
                self._tx_idx = nj
                self._csr0 = (self._csr0 & ~_TXON) | _TINT
                self._tx_poll_at = None
                self.counters.tx_buff += 1
                self.counters.tx_errors += 1
                log_tx.debug("%s: TX chain break at TMD %d: BUFF|UFLO, TXON off", self.name, j)
                return True
            j = nj
            a = na
            w0, w1, w2, w3 = nw
        frame = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        mode = self._mode
        if not mode & _M_DTCR:
            frame = frame + zlib.crc32(frame).to_bytes(4, "little")
        rtry = 0
        if mode & _M_LOOP and mode & _M_INTL and mode & _M_COLL:
            # Forced collision: every attempt collides -> RTRY after 16 attempts, 1 with DRTY
            # (ref: DS90 p.24; M reports RTRY at once).
            rtry = 1 if mode & _M_DRTY else 16
        self._tx_idx = (j + 1) & mask
        dur = rtry * SLOT_NS if rtry else frame_wire_ns(len(frame))  # RTRY duration unverified
        return {"at": self.now + dur, "frame": frame, "descs": descs, "rtry": rtry}

    def _tx_finish(self, job: dict[str, Any], t: int) -> None:
        """Complete a frame: transmit/loop it, write descriptors (TMD3 before TMD1, OWN last)."""
        dma = self.dma
        c = self.counters
        frame = job["frame"]
        descs = job["descs"]
        mode = self._mode
        loop = mode & _M_LOOP
        intl = loop and mode & _M_INTL
        tmd3 = 0
        if job["rtry"]:
            tmd3 = int(TMD3.RTRY)
            c.tx_rtry += 1
        else:
            if not intl and self.transmit is not None:
                ok = self.transmit(frame, t)
                if ok is not None and not ok:
                    tmd3 = int(TMD3.LCAR)  # link down: carrier lost, frame still "sent"
                    c.tx_lcar += 1
            c.tx_bytes += len(frame)
            if len(frame) > MAX_FRAME_WITH_FCS:
                # BABL: more than 1518 bytes incl. FCS on the wire (ref: PCnet "1519 or more";
                # M counts before FCS). The frame is still sent.
                self._csr0 |= _BABL
                c.babl += 1
        for pa, pw1 in descs[:-1]:
            dma.write16(pa + 2, pw1 & ~(_OWN | _T_STATUS))
        la, lw1 = descs[-1]
        dma.write16(la + 6, tmd3)  # TMD3 first (TDR 0: no collisions)
        dma.write16(la + 2, (lw1 & ~(_OWN | _T_STATUS)) | (_ERR if tmd3 else 0))  # OWN last
        c.tx_frames += 1
        if tmd3:
            c.tx_errors += 1
        self._csr0 |= _TINT
        if loop and not job["rtry"]:
            c.tx_loopback += 1
            self._rx_loopback(frame)

    def _tx_complete(self) -> None:
        job = self._tx_flight
        self._tx_flight = None
        self._tx_finish(job, self.now)
        self._tx_gap_at = self.now + IFG_NS if self._csr0 & _TXON else None

    # ------------------------------------------------------------------ receive
    def receive(self, frame: BytesLike, *, has_fcs: bool = False) -> RxStatus:
        """Offer one frame from the wire at ``now``. ``has_fcs``: the last 4 bytes are its FCS
        (checked: RMD1.CRC on mismatch); otherwise it is padded to 60 and an FCS appended."""
        c = self.counters
        c.rx_offered += 1
        n = len(frame)
        if has_fcs or not self._rx_fast or not MIN_FRAME_WITHOUT_FCS <= n <= RX_MAX_FRAME_WITHOUT_FCS:
            return self._receive(frame, has_fcs, n)
        # Hot path (see _paths_changed): a host frame (the chip adds the FCS) that needs no
        # padding and fits the current descriptor's buffer. Same effect as _receive.
        if type(frame) is not bytes:
            data = bytes(frame) if type(frame) is bytearray or type(frame) is memoryview else None
            if data is None or len(data) != n:  # e.g. a view of wider items: the general path
                return self._receive(frame, False, n)
            frame = data
        if not self._accepts(frame[:6]):
            c.rx_filtered += 1
            return _FILTERED
        idx = self._rx_idx
        ram_paths = self._ram_paths
        # frame + FCS into the owned RMD's buffer, RMD1-3 written (else 0: nothing written)
        stored = ram_paths[2](ram_paths[0], self._ram_size, self._rdra + (idx << 3), frame, n)
        if stored > 0:
            self._rx_idx = (idx + 1) & (self._rlen - 1)
            self._tx_idle_seen = False  # RAM written (rings may overlap)
            c.rx_delivered += 1
            c.rx_bytes += stored
            csr0 = self._csr0 | _RINT
            self._csr0 = csr0
            if csr0 & _INEA and not self._irq_level:
                self._update_irq()
            return _ACCEPTED
        st = self._rx_store(frame, _FCS_BYTES(crc32_bytes(frame, n, 0)), False)
        self._update_irq()
        return st

    def _receive(self, frame: BytesLike, has_fcs: bool, n: int) -> RxStatus:
        """The general receive path (every case; ``rx_offered`` already counted)."""
        c = self.counters
        if not self._csr0 & _RXON:
            c.rx_dropped_off += 1
            return _RX_OFF
        mode = self._mode
        if mode & _M_LOOP and mode & _M_INTL:
            c.rx_dropped_loopback += 1  # internal loopback: no external reception (ref: DS90)
            return _RX_OFF
        if has_fcs:
            if n > RX_MAX_FRAME_WITH_FCS:
                c.rx_dropped_too_long += 1
                return RxStatus.TOO_LONG
            if n < MIN_FRAME_WITH_FCS:
                c.rx_dropped_runt += 1  # ref: M discards runts; unverified in the datasheet
                return RxStatus.RUNT
        elif n > RX_MAX_FRAME_WITHOUT_FCS:
            c.rx_dropped_too_long += 1
            return RxStatus.TOO_LONG
        wire = self._wire
        if wire and (self._rx_flight is not None or self.now < self._rx_idle_at):
            c.rx_dropped_busy += 1
            return RxStatus.BUSY
        if not has_fcs and n < MIN_FRAME_WITHOUT_FCS:
            frame = bytes(frame) + bytes(MIN_FRAME_WITHOUT_FCS - n)
            n = MIN_FRAME_WITHOUT_FCS
        dst = bytes(frame[:6])
        if not self._accepts(dst):
            c.rx_filtered += 1
            if wire:
                # the frame still occupies the wire
                self._rx_idle_at = self.now + frame_wire_ns(n if has_fcs else n + FCS_LEN) + IFG_NS
            return _FILTERED
        data: BytesLike
        if has_fcs:
            data = bytes(frame)
            fcs = b""
            crc_bad = zlib.crc32(data) != _CRC_RESIDUE
        else:
            data = frame
            fcs = zlib.crc32(frame).to_bytes(4, "little")
            crc_bad = False
        if wire:
            at = self.now + frame_wire_ns(n + len(fcs))
            self._rx_flight = {"at": at, "frame": bytes(data) + fcs, "crc_bad": crc_bad}
            self._rx_idle_at = at + IFG_NS
            c.rx_in_flight += 1
            return _ACCEPTED
        st = self._rx_store(data, fcs, crc_bad)
        self._update_irq()
        return st

    def _rx_complete(self) -> None:
        f = self._rx_flight
        self._rx_flight = None
        self.counters.rx_in_flight -= 1
        if not self._csr0 & _RXON:
            self.counters.rx_dropped_off += 1
            return
        self._rx_store(f["frame"], b"", f["crc_bad"])

    def _rx_loopback(self, frame: bytes) -> None:
        """A frame looped back from the transmitter (internal: only to our own PADR, ref: DS90,
        TME; external: the normal address filter). The receiver checks the FCS."""
        c = self.counters
        c.rx_offered += 1
        if not self._csr0 & _RXON:
            c.rx_dropped_off += 1
            return
        dst = bytes(frame[:6])
        if self._mode & _M_INTL:
            ok = dst == self._padr
        else:
            ok = len(dst) == 6 and self._accepts(dst)
        if not ok:
            c.rx_filtered += 1
            return
        crc_bad = len(frame) < 4 or zlib.crc32(frame) != _CRC_RESIDUE
        self._rx_store(frame, b"", crc_bad)

    def _rx_store(self, data: BytesLike, fcs: bytes, crc_bad: bool) -> RxStatus:
        """Store a frame (data + fcs) into the RX ring at the current index."""
        self._tx_idle_seen = False  # RAM written (rings may overlap)
        dma = self.dma
        c = self.counters
        idx = self._rx_idx
        base = self._rdra
        a = (base + (idx << 3)) & 0xFFFFFF
        w0, w1, w2, w3 = dma.read_desc(a)
        if not w1 & _OWN:
            # No owned buffer: frame lost, MISS (ref: TME, W; M also sets RINT - not copied).
            self._csr0 |= _MISS
            c.rx_missed += 1
            return RxStatus.MISSED
        n = len(data)
        total = n + len(fcs)
        blen = (-w2) & 0xFFF or 4096  # BCNT 0 = 4096 (ref: M)
        if total <= blen:
            buf = ((w1 & 0xFF) << 16) | w0
            if self._csr3 & _BSWP:
                dma.write(buf, data)
                if fcs:
                    dma.write(buf + n, fcs)
            else:
                self._write_data(buf, bytes(data) + fcs)
            dma.write16(a + 6, total & 0xFFF)  # RMD3 (MCNT incl. FCS) before RMD1
            dma.write16(a + 2, (w1 & 0xFF) | (0x4B00 if crc_bad else 0x0300))  # STP|ENP[|ERR|CRC]
            self._rx_idx = (idx + 1) & (self._rlen - 1)
            self._csr0 |= _RINT
            c.rx_delivered += 1
            c.rx_bytes += total
            if crc_bad:
                c.rx_crc_errors += 1
            return RxStatus.ACCEPTED
        return self._rx_store_chain(bytes(data) + fcs, crc_bad, a, w0, w1, w2)

    def _rx_store_chain(self, whole: bytes, crc_bad: bool, a: int, w0: int, w1: int,
                        w2: int) -> RxStatus:
        """A frame longer than the current buffer: STP on the first, ENP on the last; a next
        descriptor not owned gives ERR|BUFF in the current one and drops the rest (ref: M, TME).
        The first buffer's 64-byte minimum (DS90 p.28) is not enforced. unverified"""
        dma = self.dma
        c = self.counters
        mask = self._rlen - 1
        base = self._rdra
        total = len(whole)
        pos = 0
        j = self._rx_idx
        flags = _STP
        for k in range(self._rlen):  # bound: ring length
            blen = (-w2) & 0xFFF or 4096
            take = min(blen, total - pos)
            self._write_data(((w1 & 0xFF) << 16) | w0, whole[pos:pos + take])
            pos += take
            nj = (j + 1) & mask
            if pos >= total:
                flags |= _ENP
                if crc_bad:
                    flags |= _ERR | _R_CRC
                dma.write16(a + 6, total & 0xFFF)  # MCNT only in the ENP descriptor
                dma.write16(a + 2, (w1 & 0xFF) | flags)
                self._rx_idx = nj
                self._csr0 |= _RINT
                c.rx_delivered += 1
                c.rx_bytes += total
                if crc_bad:
                    c.rx_crc_errors += 1
                return RxStatus.ACCEPTED
            na = (base + (nj << 3)) & 0xFFFFFF
            nw = dma.read_desc(na) if k + 1 < self._rlen else (0, 0, 0, 0)
            if not nw[1] & _OWN:
                # Chain break: BUFF; receiver stays on (ref: M; W clears RXON). RMD3 untouched.
                dma.write16(a + 2, (w1 & 0xFF) | flags | _ERR | _R_BUFF)
                self._rx_idx = nj
                self._csr0 |= _RINT
                c.rx_dropped_buff += 1
                log_rx.debug("%s: RX chain break after %d of %d bytes: BUFF", self.name, pos, total)
                return RxStatus.ACCEPTED
            dma.write16(a + 2, (w1 & 0xFF) | flags)
            flags = 0
            j = nj
            a = na
            w0, w1, w2, _ = nw
        raise AssertionError("unreachable: the chain loop always returns")  # pragma: no cover

    def rx_idle_at(self) -> int:
        """Earliest time the receiver takes another frame (``now`` in fast timing)."""
        if not self._wire:
            return self.now
        t = self._rx_idle_at
        if self._rx_flight is not None:
            t = max(t, self._rx_flight["at"] + IFG_NS)
        return max(self.now, t)

    def rx_ready(self, length: int) -> bool:
        """Receiver on and idle, and the owned descriptors from the current index hold a frame
        of ``length`` bytes (without FCS; padded to 60) plus its 4-byte FCS."""
        c = self._csr0
        if not c & _RXON or (self._mode & _M_LOOP and self._mode & _M_INTL):
            return False
        if self._wire and (self._rx_flight is not None or self.now < self._rx_idle_at):
            return False
        need = max(int(length), MIN_FRAME_WITHOUT_FCS) + FCS_LEN
        mask = self._rlen - 1
        j = self._rx_idx
        for _ in range(self._rlen):
            w = self.dma.read_desc((self._rdra + (j << 3)) & 0xFFFFFF)
            if not w[1] & _OWN:
                return False
            need -= (-w[2]) & 0xFFF or 4096
            if need <= 0:
                return True
            j = (j + 1) & mask
        return False

    def counters_balanced(self) -> bool:
        """offered == delivered + filtered + missed + dropped + in flight."""
        c = self.counters
        return c.rx_offered == (c.rx_delivered + c.rx_filtered + c.rx_missed + c.rx_dropped
                                + c.rx_in_flight)

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """Plain-data state: registers, init state, ring indexes, events and in-flight frames."""
        def flight(f: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
            if f is None:
                return None
            d: dict[str, Any] = {"at": f["at"], "frame": bytes(f["frame"])}
            if "crc_bad" in f:
                d["crc_bad"] = bool(f["crc_bad"])
            if "descs" in f:
                d["descs"] = [[pa, pw] for pa, pw in f["descs"]]
                d["rtry"] = f["rtry"]
            return d

        return {
            "version": STATE_VERSION,
            "timing": self.timing,
            "now": self.now,
            "irq_level": self._irq_level,
            "rap": self._rap,
            "csr0": self._csr0,
            "csr1": self._csr1,
            "csr2": self._csr2,
            "csr3": self._csr3,
            "mode": self._mode,
            "padr": bytes(self._padr),
            "ladrf": self._ladrf,
            "rdra": self._rdra,
            "rlen": self._rlen,
            "tdra": self._tdra,
            "tlen": self._tlen,
            "rx_idx": self._rx_idx,
            "tx_idx": self._tx_idx,
            "tx_poll_at": self._tx_poll_at,
            "tx_gap_at": self._tx_gap_at,
            "tx_flight": flight(self._tx_flight),
            "rx_flight": flight(self._rx_flight),
            "rx_idle_at": self._rx_idle_at,
            "counters": dataclasses.asdict(self.counters),
        }

    def restore(self, d: dict[str, Any]) -> None:
        """Load a ``snapshot()`` dict. The IRQ line is set to the saved level without a callback."""
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported lance state version {d.get('version')!r} (this build "
                             f"reads {STATE_VERSION}; a2065.snapshot.upgrade brings old card "
                             f"snapshots, chip included, to it)")
        timing = d["timing"]
        if timing not in ("fast", "wire"):
            raise ValueError(f"bad timing {timing!r}")
        self.timing = timing
        self._wire = timing == "wire"
        self.now = int(d["now"])
        self._irq_level = bool(d["irq_level"])
        self._rap = int(d["rap"]) & 3
        self._csr0 = int(d["csr0"]) & 0x7F7F
        self._csr1 = int(d["csr1"]) & 0xFFFE
        self._csr2 = int(d["csr2"]) & 0xFFFF
        self._csr3 = int(d["csr3"]) & CSR3_MASK
        self._mode = int(d["mode"]) & 0xFFFF
        self._padr = bytes(d["padr"])[:6].ljust(6, b"\0")
        self._ladrf = int(d["ladrf"]) & 0xFFFFFFFFFFFFFFFF
        self._accepts = address_filter(self._padr, self._ladrf, self._mode & _M_PROM)
        self._rdra = int(d["rdra"]) & 0xFFFFF8
        self._rlen = _pow2_ring(int(d["rlen"]))
        self._tdra = int(d["tdra"]) & 0xFFFFF8
        self._tlen = _pow2_ring(int(d["tlen"]))
        self._rx_idx = int(d["rx_idx"]) & (self._rlen - 1)
        self._tx_idx = int(d["tx_idx"]) & (self._tlen - 1)
        self._tx_poll_at = _opt_int(d["tx_poll_at"])
        self._tx_gap_at = _opt_int(d["tx_gap_at"])
        tf = d["tx_flight"]
        self._tx_flight = None if tf is None else {
            "at": int(tf["at"]), "frame": bytes(tf["frame"]),
            "descs": [(int(pa), int(pw)) for pa, pw in tf["descs"]], "rtry": int(tf["rtry"]),
        }
        rf = d["rx_flight"]
        self._rx_flight = None if rf is None else {
            "at": int(rf["at"]), "frame": bytes(rf["frame"]), "crc_bad": bool(rf["crc_bad"]),
        }
        self._rx_idle_at = int(d["rx_idle_at"])
        self._tx_idle_seen = False
        self._paths_changed()
        self.counters = Counters(**{k: int(v) for k, v in d["counters"].items()
                                    if k in Counters.__dataclass_fields__})


def _pow2_ring(n: int) -> int:
    n = max(1, min(128, n))
    return 1 << (n.bit_length() - 1)


def _opt_int(v: Optional[SupportsInt]) -> Optional[int]:
    return None if v is None else int(v)
