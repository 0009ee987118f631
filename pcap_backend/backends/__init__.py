"""Backends: live AF_PACKET, pcap and TAP, capture replay/record, user-mode NAT (passt, libslirp),
VDE, the virtual cable and Null; `registry` opens any of them by name (`open_backend`)."""
from .afpacket import AfPacket
from .cable import CableEnd, VirtualCable, serialisation_ns_ceil
from .null import Null
from .pcap import Pcap
from .pcapng_io import CaptureReplay, PcapngRecorder, PcapngReplay, PcapngTee, iter_pcapng
from .registry import REGISTRY, USERMODE_BACKENDS, BackendKind, backend_class, open_backend
from .tap import Tap

__all__ = ["AfPacket", "CableEnd", "VirtualCable", "serialisation_ns_ceil", "Null", "Pcap", "Tap",
           "CaptureReplay", "PcapngReplay", "PcapngRecorder", "PcapngTee", "iter_pcapng",
           "REGISTRY", "USERMODE_BACKENDS", "BackendKind", "open_backend", "backend_class"]

try:  # user-mode backends (passt, libslirp, VDE): their libraries load lazily, on first use
    from .passt import Passt  # noqa: F401
    from .slirp import Slirp  # noqa: F401
    from .usermode import PeerGone, PeerUnreachable, make_usermode_backend  # noqa: F401
    from .vde import Vde  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["Passt", "Slirp", "Vde", "make_usermode_backend", "PeerGone", "PeerUnreachable"]
