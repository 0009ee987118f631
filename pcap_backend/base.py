"""Backend contract: the `Backend` ABC, `Packet`, `PacketMeta`, typed errors and shared counters.

A backend moves Ethernet frames (no FCS) between the emulated card and something else: a live
interface, a TAP, a capture file, another card. Every backend is non-blocking; `fileno()` gives a
descriptor for a host's select loop where one exists. Time is integer nanoseconds of emulated time.

Counters every backend keeps (see `Backend.stats()`): rx_frames, rx_bytes, tx_frames, tx_bytes,
tx_failed (dict reason -> count), kernel_drops (None where the backend cannot know).
Conditions (ENOBUFS, link down, a full disk, ...) are logged once when they start and once when
they clear, never per frame; logger ``a2065.backend.<name>``.
"""
from __future__ import annotations

import abc
import logging
import struct
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, NamedTuple, Optional, \
    Protocol, runtime_checkable

if TYPE_CHECKING:  # the type alias only: the host side does not load the chip at run time
    from lance.buffers import BytesLike

__all__ = [
    "Backend",
    "ChipPort",
    "Packet",
    "PacketMeta",
    "BackendError",
    "BackendUnavailable",
    "PermissionDenied",
    "NoSuchInterface",
    "CaptureFormatError",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_UDP",
    "GSO_TCPV6",
    "GSO_UDP_L4",
    "GSO_ECN",
    "VNET_HDR_LEN",
    "VNET_NEEDS_CSUM",
    "VNET_DATA_VALID",
]

# ---------------------------------------------------------------------------------------------
# virtio_net_hdr (include/uapi/linux/virtio_net.h): <BBHHHH flags, gso_type, hdr_len, gso_size,
# csum_start, csum_offset>, little-endian on every host we run on (x86-64/arm64 Linux).
VNET_HDR_LEN = 10
VNET_NEEDS_CSUM = 0x01  # checksum partial: csum_start/csum_offset say where to finish it
VNET_DATA_VALID = 0x02  # checksum verified by the host
GSO_NONE = 0  # not a super-packet
GSO_TCPV4 = 1  # TCP over IPv4, split at gso_size
GSO_UDP = 3  # UFO (IPv4 fragmentation of one datagram); obsolete, reported as is
GSO_TCPV6 = 4  # TCP over IPv6
GSO_UDP_L4 = 5  # UDP_SEGMENT: a train of datagrams of gso_size payload each
GSO_ECN = 0x80  # flag bit: the TCP super-packet had CWR set
_VNET = struct.Struct("<BBHHHH")

# PACKET_AUXDATA tp_status bits (include/uapi/linux/if_packet.h)
TP_STATUS_USER = 0x1
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_CSUM_VALID = 0x80
TP_STATUS_GSO_TCP = 0x100


class PacketMeta(NamedTuple):
    """What the host said about one frame (virtio-net header or PACKET_AUXDATA).

    gso_type: GSO_* (without the GSO_ECN bit; `ecn` in the raw header is dropped); gso_size: the
    segment payload size (MSS) the sender chose, 0 when unknown; csum_partial: the L4 checksum
    field holds only the pseudo-header sum and must be completed at csum_start (from the start of
    the Ethernet frame) + csum_offset; csum_valid: the host verified the checksum.
    """

    gso_type: int = GSO_NONE
    gso_size: int = 0
    csum_partial: bool = False
    csum_start: int = 0
    csum_offset: int = 0
    csum_valid: bool = False

    @classmethod
    def from_vnet_hdr(cls, hdr: BytesLike) -> "PacketMeta":
        """Parse the first 10 bytes of `hdr` as a virtio_net_hdr (ValueError if shorter)."""
        if len(hdr) < VNET_HDR_LEN:
            raise ValueError(f"virtio_net_hdr needs {VNET_HDR_LEN} bytes, got {len(hdr)}")
        flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = _VNET.unpack_from(hdr)
        partial = bool(flags & VNET_NEEDS_CSUM)
        return cls(
            gso_type & ~GSO_ECN,
            gso_size if (gso_type & ~GSO_ECN) != GSO_NONE else 0,
            partial,
            csum_start if partial else 0,
            csum_offset if partial else 0,
            bool(flags & VNET_DATA_VALID),
        )

    def to_vnet_hdr(self, hdr_len: int = 0) -> bytes:
        """The 10-byte virtio_net_hdr that says the same (for TAP/AF_PACKET sends)."""
        flags = (VNET_NEEDS_CSUM if self.csum_partial else 0) | (
            VNET_DATA_VALID if self.csum_valid else 0
        )
        return _VNET.pack(
            flags,
            self.gso_type,
            hdr_len,
            self.gso_size if self.gso_type else 0,
            self.csum_start if self.csum_partial else 0,
            self.csum_offset if self.csum_partial else 0,
        )

    @classmethod
    def from_auxdata(cls, tp_status: int, gso_size: int = 0) -> "PacketMeta":
        """From PACKET_AUXDATA tp_status alone. It says TCP GSO but not the IP version (reported as
        GSO_TCPV4; the bridge reads the version from the frame) and gives no csum_start/offset."""
        gso = GSO_TCPV4 if tp_status & TP_STATUS_GSO_TCP else GSO_NONE
        return cls(
            gso,
            gso_size if gso else 0,
            bool(tp_status & TP_STATUS_CSUMNOTREADY),
            0,
            0,
            bool(tp_status & TP_STATUS_CSUM_VALID),
        )

    def to_json(self) -> dict[str, int]:
        return {
            "gso_type": self.gso_type,
            "gso_size": self.gso_size,
            "flags": (VNET_NEEDS_CSUM if self.csum_partial else 0)
            | (VNET_DATA_VALID if self.csum_valid else 0),
            "csum_start": self.csum_start,
            "csum_offset": self.csum_offset,
        }


NO_META = PacketMeta()


class Packet(NamedTuple):
    """One received frame: emulated arrival time, the frame (no FCS), host metadata or None."""

    arrival_ns: int
    frame: bytes
    meta: Optional[PacketMeta] = None


# ---------------------------------------------------------------------------------------------
# The chip as the bridge sees it


@runtime_checkable
class ChipPort(Protocol):
    """What `Bridge` needs from the chip it feeds; `lance.Am7990` is one (a test checks it).

    The bridge never reaches past this port: it does not import `lance`, read private state or
    probe attribute names. Pass the chip (``card.lance``), not the board.
    """

    #: The transmit callback ``transmit(frame_with_fcs, t_ns) -> bool | None``; the bridge
    #: installs its own here. False tells the chip the frame was not carried (TMD3.LCAR).
    transmit: Optional[Callable[[bytes, int], Optional[bool]]]
    #: Emulated time in ns; the caller advances the chip before `Bridge.service(now)`.
    now: int
    #: "fast" or "wire" (the bridge's default timing).
    timing: str

    @property
    def mode(self) -> int:
        """The MODE register as the last INIT loaded it (LOOP, INTL, DTCR, PROM bits)."""

    @property
    def padr(self) -> bytes:
        """The physical address (6 bytes) the last INIT loaded; all zero before the first."""

    def receive(self, frame: BytesLike, *, has_fcs: bool = False) -> Any:
        """Offer one frame from the wire at ``now``; returns a status whose ``name`` is ACCEPTED,
        FILTERED, MISSED, RX_OFF, BUSY, TOO_LONG or RUNT. The chip copies what it keeps: the
        caller may reuse the frame's buffer once this returns."""

    def rx_ready(self, length: int) -> bool:
        """A frame of `length` bytes would be stored now (lossless delivery waits for this)."""

    def rx_idle_at(self) -> int:
        """Earliest emulated time the receiver takes another frame (wire timing)."""


def chip_port_missing(obj: object) -> list[str]:
    """The members of `ChipPort` that `obj` lacks, read from the Protocol itself: its methods,
    then its properties, then its attributes, each in the order the Protocol defines them."""
    public = {n: v for n, v in vars(ChipPort).items() if not n.startswith("_")}
    members = [n for n, v in public.items() if not isinstance(v, property)]
    members += [n for n, v in public.items() if isinstance(v, property)]
    members += [n for n in ChipPort.__annotations__ if n not in public]
    return [n for n in members if not hasattr(obj, n)]


class FrameRecorder(Protocol):
    """The bridge's tee (`PcapngTee`, any `PcapngRecorder`): every frame delivered to the card
    (``outgoing`` False, after segmentation) and every frame the card sent (True)."""

    def record(self, t_ns: int, frame: BytesLike, outgoing: bool) -> None: ...


# ---------------------------------------------------------------------------------------------
# Errors


class BackendError(Exception):
    """Base class of every backend failure that the caller can act on."""


class BackendUnavailable(BackendError):
    """A library or kernel facility the backend needs is missing (the message says what to install)."""


class PermissionDenied(BackendError, PermissionError):
    """The process lacks a privilege (the message says which capability, or root)."""


class NoSuchInterface(BackendError, LookupError):
    """The named network interface does not exist (in this network namespace)."""


class CaptureFormatError(BackendError, ValueError):
    """A capture file is not readable pcapng of the kind we replay (corrupt, truncated, wrong link type)."""


# ---------------------------------------------------------------------------------------------


class Conditions:
    """Log a condition once when it starts and once when it clears; count every occurrence."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.active: dict[str, int] = {}

    def hit(self, key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
        if key not in self.active:
            self.active[key] = 0
            self.log.log(level, message + " (logged once until it clears)", *args)
        self.active[key] += 1

    def clear(self, key: str) -> None:
        n = self.active.pop(key, None)
        if n is not None:
            self.log.info("%s cleared after %d occurrence(s)", key, n)

    def clear_all(self, keys: Iterable[str]) -> None:
        for k in keys:
            if k in self.active:
                self.clear(k)


class Backend(abc.ABC):
    """Non-blocking frame source/sink. Subclasses implement `send` and `poll`."""

    name = "backend"

    def __init__(self, name: Optional[str] = None) -> None:
        if name is not None:
            self.name = name
        self.log = logging.getLogger(f"a2065.backend.{self.name}")
        self.conditions = Conditions(self.log)
        self.closed = False
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.tx_failed: dict[str, int] = {}
        self.kernel_drops: Optional[int] = None

    # -- contract ------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return not self.closed

    @abc.abstractmethod
    def send(self, frame: bytes, t_ns: int) -> bool:
        """Offer one frame (no FCS) at emulated time t_ns; False: not sent (counted by reason)."""

    @abc.abstractmethod
    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        """Frames that have arrived by now_ns, at most `limit`, as `Packet`s; never blocks."""

    def fileno(self) -> Optional[int]:
        return None

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "link_up": self.link_up,
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "tx_failed": dict(self.tx_failed),
            "tx_failed_total": sum(self.tx_failed.values()),
            "kernel_drops": self.kernel_drops,
        }

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        self.close()
        return False

    # -- helpers for subclasses ----------------------------------------------------------------
    def _rx(self, frame: BytesLike) -> None:
        self.rx_frames += 1
        self.rx_bytes += len(frame)

    def _tx_ok(self, frame: BytesLike) -> None:

        self.tx_frames += 1
        self.tx_bytes += len(frame)
        if self.conditions.active:
            self.conditions.clear_all([k for k in self.conditions.active if k.startswith("tx:")])

    def _tx_fail(self, reason: str, detail: str = "") -> bool:
        """Count a refused transmit under `reason`, log the condition once; returns False."""
        self.tx_failed[reason] = self.tx_failed.get(reason, 0) + 1
        self.conditions.hit(
            "tx:" + reason, "%s: transmit failing: %s%s", self.name, reason, f" ({detail})" if detail else ""
        )
        return False
