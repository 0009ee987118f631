"""Backends: live pcap, AF_PACKET, TAP, pcapng replay/record, VirtualCable, Null."""
from .afpacket import AfPacket
from .cable import CableEnd, VirtualCable, serialisation_ns_ceil
from .null import Null
from .pcap import Pcap
from .pcapng_io import PcapngRecorder, PcapngReplay, iter_pcapng
from .tap import Tap

__all__ = ["AfPacket", "CableEnd", "VirtualCable", "serialisation_ns_ceil", "Null", "Pcap", "Tap",
           "PcapngReplay", "PcapngRecorder", "iter_pcapng"]

try:  # user-mode backends (passt, libslirp, VDE): their libraries load lazily, on first use
    from .passt import Passt  # noqa: F401
    from .slirp import Slirp  # noqa: F401
    from .usermode import PeerGone, PeerUnreachable, make_usermode_backend  # noqa: F401
    from .vde import Vde  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["Passt", "Slirp", "Vde", "make_usermode_backend", "PeerGone", "PeerUnreachable"]
