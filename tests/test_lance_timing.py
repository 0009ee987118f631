"""Emulated-time behaviour: wire timing figures, polls, event order (ref: reference §9, 802.3)."""
import zlib

from hypothesis import given, strategies as st

from lance import CSR0, MODE, RMD1, TMD1, RxStatus
from lance.testing import Rig, frame
from lance.timing import (
    IFG_NS, TX_POLL_NS, cycles_to_ns_floor, frame_period_ns, frame_wire_ns, ns_to_cycles_floor,
)


def wire(**kw):
    r = Rig(timing="wire", **kw)
    r.init()
    return r


def test_a_1518_byte_frame_occupies_1230_4_us_with_its_gap():
    assert frame_period_ns(1518) == 1_230_400


def test_64_byte_frames_are_spaced_67_2_us():
    assert frame_period_ns(64) == 67_200


def test_ns_from_cycles_is_exact_integer_math():
    assert cycles_to_ns_floor(7_093_790, 7_093_790) == 1_000_000_000
    assert cycles_to_ns_floor(10**15, 7_093_790) == 10**15 * 10**9 // 7_093_790
    assert isinstance(cycles_to_ns_floor(3, 7), int)


@given(st.integers(0, 10**12), st.integers(1, 10**9))
def test_cycles_and_ns_round_trip_never_overshoot(cycles, hz):
    assert ns_to_cycles_floor(cycles_to_ns_floor(cycles, hz), hz) <= cycles


def test_received_frame_is_stored_when_its_last_bit_arrives():
    r = wire()
    f = frame(length=1514)
    assert r.chip.receive(f) is RxStatus.ACCEPTED
    done = frame_wire_ns(1518)
    assert r.chip.next_deadline() == done
    r.chip.advance_to(done - 1)
    assert r.rmd(0)[1] & RMD1.OWN and not r.csr0 & CSR0.RINT
    r.chip.advance_to(done)
    assert r.rmd(0)[3] == 1518 and r.csr0 & CSR0.RINT
    assert r.irq_edges == [True]


def test_the_receiver_is_busy_until_the_gap_after_a_frame():
    r = wire()
    r.chip.receive(frame(length=60))
    assert r.chip.rx_idle_at() == 67_200
    assert not r.chip.rx_ready(60)
    r.chip.advance_to(67_199)
    assert r.chip.receive(frame()) is RxStatus.BUSY
    r.chip.advance_to(67_200)
    assert r.chip.rx_ready(60)
    assert r.chip.receive(frame()) is RxStatus.ACCEPTED


def test_a_filtered_frame_still_occupies_the_wire():
    r = wire()
    assert r.chip.receive(frame(dst=bytes.fromhex("020000000099"))) is RxStatus.FILTERED
    assert r.chip.rx_idle_at() == 67_200


def test_rx_idle_at_is_now_in_fast_timing():
    r = Rig()
    r.init()
    r.chip.advance_to(5000)
    r.chip.receive(frame())
    assert r.chip.rx_idle_at() == 5000


def test_miss_is_decided_when_the_frame_completes():
    r = Rig(timing="wire")
    r.init(rx_own=False)
    assert r.chip.receive(frame()) is RxStatus.ACCEPTED
    r.set_rmd(0, own=True)  # the driver returns a buffer while the frame is on the wire
    r.chip.advance_to(frame_wire_ns(64))
    assert r.rmd(0)[3] == 64 and not r.csr0 & CSR0.MISS


def test_tdmd_polls_at_once_and_the_frame_completes_after_its_wire_time():
    r = wire()
    f = frame(length=1514)
    r.queue_tx(0, f, tdmd=True)
    assert not r.csr0 & CSR0.TDMD
    assert r.tmd(0)[1] & TMD1.OWN and r.sent == []
    assert r.chip.next_deadline() == frame_wire_ns(1518)
    r.chip.advance_to(frame_wire_ns(1518))
    assert not r.tmd(0)[1] & TMD1.OWN and r.csr0 & CSR0.TINT
    assert r.sent == [(f + zlib.crc32(f).to_bytes(4, "little"), frame_wire_ns(1518))]


def test_back_to_back_transmit_keeps_the_inter_frame_gap():
    r = wire()
    r.queue_tx(0, frame(length=60))
    r.queue_tx(1, frame(length=60), tdmd=True)
    r.chip.advance_to(10 * 67_200)
    t = [s[1] for s in r.sent]
    assert t == [frame_wire_ns(64), frame_wire_ns(64) + IFG_NS + frame_wire_ns(64)]


def test_tdmd_during_a_transmission_is_served_after_the_gap():
    r = wire()
    r.queue_tx(0, frame(length=60), tdmd=True)
    r.chip.advance_to(1000)
    r.queue_tx(1, frame(length=60), tdmd=True)
    r.chip.advance_to(frame_wire_ns(64) + IFG_NS)
    assert len(r.sent) == 1
    r.chip.advance_to(frame_wire_ns(64) + IFG_NS + frame_wire_ns(64))
    assert len(r.sent) == 2


def test_the_1_6_ms_poll_is_a_deadline_in_wire_timing_too():
    r = wire()
    assert r.chip.next_deadline() == TX_POLL_NS
    r.queue_tx(0, frame(length=60))
    r.chip.advance_to(TX_POLL_NS)
    assert r.chip.next_deadline() == TX_POLL_NS + frame_wire_ns(64)


def test_advance_to_an_earlier_time_is_ignored():
    r = wire()
    r.chip.advance_to(1000)
    r.chip.advance_to(10)
    assert r.chip.now == 1000


def test_events_run_in_time_order_within_one_advance():
    r = wire()
    order = []
    r.chip.irq = lambda level: order.append((r.chip.now, hex(r.csr0 & 0x0600)))
    r.chip.receive(frame(length=1514))  # RX done at 1.2144 ms
    r.queue_tx(0, frame(length=60), tdmd=True)  # TX done at 57.6 us
    r.chip.advance_to(2 * TX_POLL_NS)
    assert order[0] == (frame_wire_ns(64), "0x200")
    assert r.rmd(0)[3] == 1518


def test_stop_aborts_frames_in_flight_and_accounts_for_them():
    r = wire()
    r.chip.receive(frame())
    r.queue_tx(0, frame(length=60), tdmd=True)
    r.csr_write(0, CSR0.STOP)
    assert r.chip.next_deadline() is None
    r.chip.advance_to(TX_POLL_NS)
    assert r.sent == [] and r.rmd(0)[1] & RMD1.OWN
    c = r.chip.counters
    assert c.rx_dropped_stopped == 1 and c.tx_aborted == 1 and r.chip.counters_balanced()


def test_in_flight_frames_count_in_the_balance():
    r = wire()
    r.chip.receive(frame())
    assert r.chip.counters.rx_in_flight == 1 and r.chip.counters_balanced()


def test_a_csr0_read_after_advance_shows_completed_events():
    r = wire()
    r.chip.receive(frame())
    r.chip.advance_to(frame_wire_ns(64))
    r.chip.write_rap(0)
    assert r.chip.read_rdp() & CSR0.RINT


def test_link_down_in_wire_timing_writes_lcar_at_completion():
    r = Rig(timing="wire", link=False)
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.tmd(0)[3] == 0
    r.chip.advance_to(frame_wire_ns(64))
    assert r.tmd(0)[3] & 0x0800 and r.tmd(0)[1] & TMD1.ERR


def test_chip_now_only_moves_through_advance_to():
    r = wire()
    r.chip.receive(frame())
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.chip.now == 0
    r.chip.advance_to(123)
    assert r.chip.now == 123


def test_one_long_advance_equals_many_short_ones():
    a, b = wire(), wire()
    for r in (a, b):
        r.chip.receive(frame())
        r.queue_tx(0, frame(length=60), tdmd=True)
    hour = 3600 * 10**9
    a.chip.advance_to(hour)
    t = 0
    while t < hour:
        t = min(hour, t + 7 * TX_POLL_NS // 3)
        b.chip.advance_to(t)
    assert a.chip.snapshot() == b.chip.snapshot() and a.ram == b.ram
    assert a.chip.next_deadline() > hour


def test_an_hour_of_idle_time_costs_no_more_than_a_few_steps():
    r = wire()
    r.chip.advance_to(3600 * 10**9)
    assert r.chip.counters.polls == 3600 * 10**9 // TX_POLL_NS
    r.queue_tx(0, frame(length=60))
    r.chip.advance_to(r.chip.next_deadline())
    assert len(r.sent) == 0 and r.chip.next_deadline() is not None
    r.chip.advance_to(r.chip.next_deadline())
    assert len(r.sent) == 1


# -- datasheet and 802.3 figures as literals (issue 17): a changed constant fails here ----------

def test_the_timing_constants_are_the_datasheet_and_802_3_figures():
    from lance import timing
    assert timing.TX_POLL_NS == 1_600_000   # idle TX ring poll, 1.6 ms (ref: M, TME quoting DS)
    assert timing.SLOT_NS == 51_200         # 512 bit times at 10 Mb/s
    assert timing.IFG_NS == 9_600           # 96 bit times
    assert timing.BYTE_NS == 800            # 0.8 us per byte
    assert timing.PREAMBLE_BYTES == 8       # 7 preamble + SFD


def test_a_frame_queued_without_tdmd_leaves_at_1_6_ms_and_the_next_at_3_2_ms():
    r = Rig()
    r.init()                                # STRT at t = 0
    assert r.chip.next_deadline() == 1_600_000
    r.queue_tx(0, frame(length=60))         # OWN, no TDMD
    r.chip.advance_to(1_599_999)
    assert r.sent == []
    r.chip.advance_to(1_600_000)
    assert [t for _, t in r.sent] == [1_600_000]
    r.chip.advance_to(2_000_000)
    r.queue_tx(1, frame(length=60))
    r.chip.advance_to(3_199_999)
    assert len(r.sent) == 1
    r.chip.advance_to(3_200_000)
    assert [t for _, t in r.sent] == [1_600_000, 3_200_000]
    assert r.chip.counters.polls == 2


def test_the_poll_keeps_its_1_6_ms_phase_over_an_idle_hour():
    r = Rig(timing="wire")
    r.init()
    r.chip.advance_to(3_600_000_000_000)
    assert r.chip.counters.polls == 2_250_000   # 3600 s / 1.6 ms
    assert r.chip.next_deadline() == 3_600_001_600_000


def test_wire_times_are_0_8_us_per_byte_with_8_bytes_of_preamble_and_a_9_6_us_gap():
    assert frame_wire_ns(64) == 57_600            # (64 + 8) * 0.8 us
    assert frame_wire_ns(1518) == 1_220_800
    r = wire()
    r.queue_tx(0, frame(length=60))
    r.queue_tx(1, frame(length=60), tdmd=True)   # two 64-byte frames back to back at t = 0
    r.chip.advance_to(1_000_000)
    assert [t for _, t in r.sent] == [57_600, 57_600 + 9_600 + 57_600]
    rx = wire()
    rx.chip.receive(frame(length=1514))
    assert rx.chip.next_deadline() == 1_220_800
    assert rx.chip.rx_idle_at() == 1_230_400     # + 9.6 us before the next frame


def test_a_forced_collision_retries_16_slots_of_51_2_us():
    from lance.testing import running
    r = running(mode=MODE.LOOP | MODE.INTL | MODE.COLL, timing="wire")
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.chip.next_deadline() == 819_200      # 16 x 51.2 us
    r = running(mode=MODE.LOOP | MODE.INTL | MODE.COLL | MODE.DRTY, timing="wire")
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.chip.next_deadline() == 51_200       # one attempt with DRTY
