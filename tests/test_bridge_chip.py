"""Bridge against the real Am7990 on a real board, with the Linux-style driver's rings."""
from __future__ import annotations

from a2065.board import A2065
from a2065.drivers import LinuxA2065Driver
from bridge_helpers import ListBackend, check_invariant, ipv4_tcp
from pcap_backend.base import Packet
from pcap_backend.bridge import Bridge

MAC = bytes.fromhex("00800f000001")


def _card(timing="fast"):
    board = A2065(timing=timing)
    drv = LinuxA2065Driver(board, MAC, now=0)
    drv.open()
    return board, drv


def _frames(n, size=600):
    return [Packet(0, ipv4_tcp(bytes(size), dst_mac=MAC, seq=i * size), None) for i in range(n)]


def test_lossless_waits_while_the_guest_is_slow_and_delivers_everything_once_it_catches_up():
    board, drv = _card()
    bridge = Bridge(ListBackend(_frames(40)), board.lance)
    bridge.service(board.now)                # the driver does not run: 16 descriptors fill
    assert bridge.stats()["delivered"] == 16 and bridge.queued == 24
    assert board.lance.counters.rx_missed == 0
    for _ in range(5):
        drv.service(board.now)
        bridge.service(board.now)
    s = check_invariant(bridge)
    assert drv.counters.rx_frames == 40 and s["missed"] == 0 and s["dropped_total"] == 0


def test_hardware_delivery_misses_what_finds_no_owned_descriptor_as_the_chip_does():
    board, drv = _card()
    bridge = Bridge(ListBackend(_frames(40)), board.lance, delivery="hardware")
    bridge.service(board.now)
    s = check_invariant(bridge)
    assert s["delivered"] == 16 and s["missed"] == 24
    assert board.lance.counters.rx_missed == 24
    drv.service(board.now)
    assert drv.counters.rx_frames == 16 and drv.counters.rx_errors["miss"] >= 1


def test_wire_timing_bridge_follows_the_chip_receiver_and_never_sees_busy():
    board, drv = _card("wire")
    bridge = Bridge(ListBackend(_frames(10, 1400)), board.lance)
    t = board.now
    for _ in range(10_000):
        board.advance_to(t)
        bridge.service(t)
        drv.service(t)
        ds = [d for d in (board.next_deadline(), bridge.next_deadline()) if d is not None]
        if drv.counters.rx_frames == 10 or not ds:
            break
        t = max(t, min(ds))
    assert drv.counters.rx_frames == 10
    assert bridge.stats()["busy_retries"] == 0
    assert board.lance.counters.rx_dropped_busy == 0


def test_bridge_installs_itself_as_the_chips_transmit_callback_and_learns_the_mac_from_padr():
    board, drv = _card()
    backend = ListBackend()
    bridge = Bridge(backend, board.lance)
    assert board.lance.transmit == bridge.transmit
    own = ipv4_tcp(b"reflected", dst_mac=b"\xff" * 6, src_mac=MAC)
    backend.add(0, own)
    bridge.service(board.now)
    assert bridge.stats()["own_frames_dropped"] == 1
