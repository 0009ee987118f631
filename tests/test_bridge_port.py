"""The bridge's port to the chip (pcap_backend.base.ChipPort) and its transmit-side rules."""
from __future__ import annotations

import zlib

import pytest

from a2065.board import A2065
from bridge_helpers import CARD_MAC, PEER_MAC, ChipDouble, ListBackend, ipv4_tcp
from pcap_backend.base import ChipPort
from pcap_backend.bridge import Bridge

MODE_DTCR = 0x0008  # Am7990 CSR15 (MODE) bit 3: disable transmit CRC (the guest supplies it)


def test_the_am7990_is_a_chip_port_and_the_board_is_not():
    board = A2065()
    assert isinstance(board.lance, ChipPort)
    assert not isinstance(board, ChipPort)


def test_passing_the_board_instead_of_its_chip_is_a_type_error_naming_card_lance():
    with pytest.raises(TypeError, match=r"card\.lance"):
        Bridge(ListBackend(), A2065())


def test_passing_something_that_is_no_chip_is_a_type_error():
    with pytest.raises(TypeError, match="ChipPort"):
        Bridge(ListBackend(), object())


def test_the_bridge_installs_its_transmit_callback_on_the_real_chip():
    board = A2065()
    bridge = Bridge(ListBackend(), board.lance)
    assert board.lance.transmit == bridge.transmit


def _with_fcs(frame: bytes, good: bool = True) -> bytes:
    fcs = zlib.crc32(frame)
    if not good:
        fcs ^= 0x1
    return frame + fcs.to_bytes(4, "little")


def test_a_dtcr_frame_with_a_wrong_fcs_is_not_passed_to_the_host_but_counted():
    chip = ChipDouble()
    chip.mode = MODE_DTCR
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    f = ipv4_tcp(b"guest fcs", dst_mac=PEER_MAC, src_mac=CARD_MAC)
    assert chip.transmit(_with_fcs(f, good=False), 10) is True  # it left the card
    assert backend.sent == []
    s = bridge.stats()
    assert s["tx_bad_fcs"] == 1 and s["transmitted"] == 0 and s["tx_failed"] == 0
    assert chip.transmit(_with_fcs(f), 20) is True
    assert backend.sent == [(20, f)] and bridge.stats()["transmitted"] == 1


def test_without_dtcr_the_fcs_is_the_chips_own_and_never_checked_again():
    chip = ChipDouble()
    backend = ListBackend()
    bridge = Bridge(backend, chip)
    f = ipv4_tcp(b"chip fcs", dst_mac=PEER_MAC, src_mac=CARD_MAC)
    assert chip.transmit(f + b"\0\0\0\0", 5) is True
    assert backend.sent == [(5, f)] and bridge.stats()["tx_bad_fcs"] == 0


def test_the_real_chip_in_dtcr_mode_hands_the_guests_fcs_to_the_bridge_which_checks_it():
    from lance import MODE, TMD3
    from lance.testing import Rig
    r = Rig(mode=MODE.DTCR)
    backend = ListBackend()
    bridge = Bridge(backend, r.chip, mac=CARD_MAC)
    r.init()
    f = ipv4_tcp(b"dtcr" * 10, dst_mac=PEER_MAC, src_mac=CARD_MAC)
    r.queue_tx(0, _with_fcs(f, good=False), tdmd=True)
    r.queue_tx(1, _with_fcs(f), tdmd=True)
    assert [x for _, x in backend.sent] == [f]
    assert bridge.stats()["tx_bad_fcs"] == 1
    assert not r.tmd(0)[3] & TMD3.LCAR  # the chip saw the frame leave


def test_a_chip_assigned_later_is_the_one_every_part_of_the_bridge_uses():
    first, second = ChipDouble(), ChipDouble(descriptors=5)
    bridge = Bridge(ListBackend([]), first)
    bridge.chip = second
    bridge.ingest(ipv4_tcp(b"to the new chip"), None)
    bridge.service(0)
    assert first.got == [] and len(second.got) == 1
    with pytest.raises(TypeError, match=r"card\.lance"):
        bridge.chip = A2065()
