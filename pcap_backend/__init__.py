"""pcap_backend: host network backends and the bridge to the chip; see docs/architecture.md."""
from .base import (
    Backend,
    BackendError,
    BackendUnavailable,
    CaptureFormatError,
    NoSuchInterface,
    Packet,
    PacketMeta,
    PermissionDenied,
)
from .backends import AfPacket, CableEnd, Null, Pcap, Tap, VirtualCable

__all__ = [
    "Backend", "Packet", "PacketMeta",
    "BackendError", "BackendUnavailable", "PermissionDenied", "NoSuchInterface", "CaptureFormatError",
    "VirtualCable", "CableEnd", "Null", "AfPacket", "Pcap", "Tap",
]
