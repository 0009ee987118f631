"""Loopback: internal/external, DTCR, COLL/DRTY (ref: reference §7)."""
from lance import CSR0, MODE, RMD1, TMD1, TMD3, RxStatus
from lance.testing import MAC, Rig, fcs, frame, running
from lance.timing import SLOT_NS, frame_wire_ns

INTERNAL = MODE.LOOP | MODE.INTL


def test_internal_loopback_receives_the_frame_and_does_not_send_it_out():
    r = running(mode=INTERNAL)
    f = frame(dst=MAC, length=30)
    r.queue_tx(0, f, tdmd=True)
    assert r.sent == []
    assert r.rx_data(0) == f + fcs(f) and r.rmd(0)[3] == 34
    assert r.csr0 & CSR0.TINT and r.csr0 & CSR0.RINT


def test_internal_loopback_tx_descriptor_completes_before_the_rx_one():
    r = running(mode=INTERNAL)
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    assert not r.tmd(0)[1] & TMD1.OWN and not r.rmd(0)[1] & RMD1.OWN


def test_internal_loopback_takes_only_frames_to_our_own_padr():
    r = running(mode=INTERNAL)
    r.queue_tx(0, frame(dst=b"\xff" * 6, length=30), tdmd=True)
    assert r.rmd(0)[1] & RMD1.OWN and r.chip.counters.rx_filtered == 1


def test_internal_loopback_size_limit_of_32_bytes_is_not_enforced():
    r = running(mode=INTERNAL)
    f = frame(dst=MAC, length=1514)
    r.queue_tx(0, f, tdmd=True)
    assert r.rmd(0)[3] == 1518


def test_internal_loopback_ignores_frames_from_outside():
    r = running(mode=INTERNAL)
    assert r.chip.receive(frame()) is RxStatus.RX_OFF
    assert r.chip.counters.rx_dropped_loopback == 1


def test_external_loopback_sends_the_frame_and_receives_it_back():
    r = running(mode=MODE.LOOP)
    f = frame(dst=MAC, length=60)
    r.queue_tx(0, f, tdmd=True)
    assert r.sent[0][0] == f + fcs(f)
    assert r.rx_data(0) == f + fcs(f)


def test_external_loopback_uses_the_normal_filter():
    r = running(mode=MODE.LOOP)
    r.queue_tx(0, frame(dst=b"\xff" * 6, length=60), tdmd=True)
    assert r.rmd(0)[3] == 64
    r.queue_tx(1, frame(dst=bytes.fromhex("020000000099"), length=60), tdmd=True)
    assert r.rmd(1)[1] & RMD1.OWN


def test_external_loopback_still_receives_other_nodes_frames():
    r = running(mode=MODE.LOOP)
    assert r.chip.receive(frame()) is RxStatus.ACCEPTED


def test_dtcr_loopback_with_a_correct_software_fcs_has_no_crc_error():
    r = running(mode=INTERNAL | MODE.DTCR)
    f = frame(dst=MAC, length=28)
    r.queue_tx(0, f + fcs(f), tdmd=True)
    assert r.rmd(0)[3] == 32 and not r.rmd(0)[1] & RMD1.ERR


def test_dtcr_loopback_with_a_wrong_fcs_sets_crc():
    r = running(mode=INTERNAL | MODE.DTCR)
    f = frame(dst=MAC, length=28)
    r.queue_tx(0, f + b"\x12\x34\x56\x78", tdmd=True)
    w1 = r.rmd(0)[1]
    assert w1 & RMD1.CRC and w1 & RMD1.ERR


def test_coll_forces_rtry_and_nothing_is_received():
    r = running(mode=INTERNAL | MODE.COLL)
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    assert r.tmd(0)[3] & TMD3.RTRY and r.tmd(0)[1] & TMD1.ERR
    assert r.rmd(0)[1] & RMD1.OWN and r.sent == []
    assert r.csr0 & CSR0.TINT and r.csr0 & CSR0.TXON


def test_coll_takes_16_attempts_and_drty_one_in_wire_timing():
    r = running(mode=INTERNAL | MODE.COLL, timing="wire")
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    assert r.chip.next_deadline() == 16 * SLOT_NS
    r = running(mode=INTERNAL | MODE.COLL | MODE.DRTY, timing="wire")
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    assert r.chip.next_deadline() == SLOT_NS


def test_loopback_frame_arrives_when_the_transmission_ends_in_wire_timing():
    r = running(mode=INTERNAL, timing="wire")
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    r.chip.advance_to(frame_wire_ns(34) - 1)
    assert r.rmd(0)[1] & RMD1.OWN
    r.chip.advance_to(frame_wire_ns(34))
    assert r.rmd(0)[3] == 34


def test_loopback_with_the_receiver_disabled_completes_the_transmit_only():
    r = running(mode=INTERNAL | MODE.DRX)
    r.queue_tx(0, frame(dst=MAC, length=30), tdmd=True)
    assert r.csr0 & CSR0.TINT and not r.csr0 & CSR0.RINT
    assert r.chip.counters_balanced()
