"""Backends: live pcap, AF_PACKET, TAP, pcapng replay/record, VirtualCable, Null."""
from .afpacket import AfPacket
from .cable import CableEnd, VirtualCable, wire_ns
from .null import Null
from .pcap import Pcap
from .pcapng_io import PcapngRecorder, PcapngReplay, iter_pcapng
from .tap import Tap

__all__ = ["AfPacket", "CableEnd", "VirtualCable", "wire_ns", "Null", "Pcap", "Tap",
           "PcapngReplay", "PcapngRecorder", "iter_pcapng"]
