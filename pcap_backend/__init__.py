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

from .base import ChipPort  # noqa: E402  (what the bridge needs from the chip)
from .bridge import Bridge, PcapngTee  # noqa: E402

__all__ += ["ChipPort", "Bridge", "PcapngTee"]

