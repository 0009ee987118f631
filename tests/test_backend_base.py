"""The backend contract: PacketMeta parsing, Packet shape, typed errors, counters."""
import struct

import pytest

from pcap_backend import (Backend, BackendError, BackendUnavailable, CaptureFormatError,
                          NoSuchInterface, Packet, PacketMeta, PermissionDenied)
from pcap_backend import base


def test_a_super_packet_vnet_header_parses_to_tcpv4_gso_size_and_partial_checksum():
    hdr = struct.pack("<BBHHHH", 1, 1, 66, 1448, 34, 16)
    m = PacketMeta.from_vnet_hdr(hdr + b"frame")
    assert m == PacketMeta(base.GSO_TCPV4, 1448, True, 34, 16, False)


def test_a_verified_frame_vnet_header_parses_to_csum_valid_without_gso():
    m = PacketMeta.from_vnet_hdr(bytes([2]) + bytes(9))
    assert m == PacketMeta(base.GSO_NONE, 0, False, 0, 0, True)


def test_the_ecn_bit_is_stripped_from_the_gso_type():
    m = PacketMeta.from_vnet_hdr(struct.pack("<BBHHHH", 1, 0x84, 86, 1428, 54, 16))
    assert m.gso_type == base.GSO_TCPV6 and m.gso_size == 1428


def test_a_short_vnet_header_is_rejected():
    with pytest.raises(ValueError):
        PacketMeta.from_vnet_hdr(b"\x00" * 9)


def test_vnet_header_round_trips_through_to_vnet_hdr():
    m = PacketMeta(base.GSO_UDP_L4, 1400, True, 34, 6, False)
    assert PacketMeta.from_vnet_hdr(m.to_vnet_hdr()) == m
    assert len(m.to_vnet_hdr()) == 10
    assert PacketMeta().to_vnet_hdr() == bytes(10)


def test_auxdata_status_of_a_super_packet_says_gso_tcp_and_checksum_not_ready():
    m = PacketMeta.from_auxdata(0x109, 1448)
    assert m.gso_type == base.GSO_TCPV4 and m.gso_size == 1448 and m.csum_partial and not m.csum_valid
    assert PacketMeta.from_auxdata(0x81).csum_valid


def test_packet_is_a_named_tuple_whose_first_two_fields_are_arrival_and_frame():
    p = Packet(5, b"x")
    arrival, frame = p[:2]
    assert (arrival, frame, p.meta) == (5, b"x", None)


def test_typed_errors_share_one_base_and_the_matching_builtin():
    for cls in (BackendUnavailable, PermissionDenied, NoSuchInterface, CaptureFormatError):
        assert issubclass(cls, BackendError)
    assert issubclass(PermissionDenied, PermissionError)
    assert issubclass(NoSuchInterface, LookupError)
    assert issubclass(CaptureFormatError, ValueError)


def test_a_backend_subclass_counts_traffic_and_failures_by_reason():
    class Loop(Backend):
        name = "loop"

        def send(self, frame, t_ns):
            if not frame:
                return self._tx_fail("empty")
            self._tx_ok(frame)
            return True

        def poll(self, now_ns, limit=64):
            return []

    b = Loop()
    b.send(b"abc", 0)
    b.send(b"", 0)
    b.send(b"", 0)
    s = b.stats()
    assert (s["tx_frames"], s["tx_bytes"], s["tx_failed"], s["tx_failed_total"]) == (1, 3, {"empty": 2}, 2)
    assert s["kernel_drops"] is None and s["link_up"]
    b.close()
    assert not b.link_up
