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
from .backends import (AfPacket, CableEnd, Null, Pcap, PcapngRecorder, PcapngReplay, Tap,
                       VirtualCable)

__all__ = [
    "Backend", "Packet", "PacketMeta",
    "BackendError", "BackendUnavailable", "PermissionDenied", "NoSuchInterface", "CaptureFormatError",
    "VirtualCable", "CableEnd", "Null", "AfPacket", "Pcap", "Tap",
    "PcapngReplay", "PcapngRecorder",
]

try:  # the bridge is another engineer's module; the backends work without it
    from .bridge import Bridge, PcapngTee  # noqa: F401
except ImportError:  # pragma: no cover - only while bridge.py is absent or broken
    pass
else:
    __all__ += ["Bridge", "PcapngTee"]

