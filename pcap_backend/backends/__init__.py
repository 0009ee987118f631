"""Backends: live pcap, AF_PACKET, TAP, pcapng replay/record, VirtualCable, Null."""
from .cable import CableEnd, VirtualCable, wire_ns
from .null import Null

__all__ = ["CableEnd", "VirtualCable", "wire_ns", "Null"]
