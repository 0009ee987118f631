"""VirtualCable and Null backends: timing, order, loss, bounded queues, link control."""
import logging

import pytest

from pcap_backend import Backend, Null, Packet, VirtualCable
from pcap_backend.backends.cable import serialisation_ns_ceil

FRAME = bytes(range(64))


def test_null_backend_reports_link_down_refuses_sends_and_receives_nothing():
    n = Null()
    assert isinstance(n, Backend)
    assert n.link_up is False
    assert n.send(FRAME, 0) is False
    assert n.send(FRAME, 10) is False
    assert n.poll(10**12) == []
    s = n.stats()
    assert s["tx_failed"] == {"link_down": 2} and s["tx_frames"] == 0 and s["rx_frames"] == 0


def test_null_backend_logs_link_down_once_not_per_frame(caplog):
    n = Null()
    with caplog.at_level(logging.INFO, logger="a2065.backend.null"):
        for t in range(100):
            n.send(FRAME, t)
    assert len([r for r in caplog.records if "link_down" in r.getMessage()]) == 1
    assert n.stats()["tx_failed"]["link_down"] == 100


def test_a_frame_arrives_after_serialisation_at_ten_megabits_plus_delay():
    a, b = VirtualCable.pair(bit_rate=10_000_000, delay_ns=5_000)
    assert a.send(FRAME, 1_000)
    # 8 preamble + 64 + 4 FCS = 76 bytes = 608 bits = 60.8 us at 10 Mb/s
    assert serialisation_ns_ceil(64, 10_000_000) == 60_800
    assert b.poll(1_000 + 60_800 + 5_000 - 1) == []
    pkts = b.poll(1_000 + 60_800 + 5_000)
    assert pkts == [Packet(66_800, FRAME, None)]


def test_short_frames_are_timed_as_padded_to_the_ethernet_minimum():
    assert serialisation_ns_ceil(14, 10_000_000) == serialisation_ns_ceil(60, 10_000_000) == (8 + 60 + 4) * 8 * 100


def test_back_to_back_frames_are_spaced_by_serialisation_and_the_interframe_gap():
    a, b = VirtualCable.pair()
    a.send(FRAME, 0)
    a.send(FRAME, 0)
    p = b.poll(10**9)
    assert [x.arrival_ns for x in p] == [60_800, 60_800 + 9_600 + 60_800]


def test_a_cable_without_bit_rate_delivers_at_send_time_plus_delay_in_order():
    a, b = VirtualCable.pair(bit_rate=None, delay_ns=7)
    for i in range(10):
        a.send(bytes([i]) * 60, 100)
    p = b.poll(107)
    assert [x.frame[0] for x in p] == list(range(10))
    assert all(x.arrival_ns == 107 for x in p)


def test_poll_returns_at_most_limit_frames_and_keeps_the_rest():
    a, b = VirtualCable.pair(bit_rate=None)
    for i in range(10):
        a.send(bytes([i]) * 60, 0)
    assert len(b.poll(0, limit=3)) == 3
    assert [x.frame[0] for x in b.poll(0)] == list(range(3, 10))


def test_both_directions_are_independent():
    a, b = VirtualCable.pair(bit_rate=None)
    a.send(b"A" * 60, 0)
    b.send(b"B" * 60, 0)
    assert b.poll(0)[0].frame == b"A" * 60
    assert a.poll(0)[0].frame == b"B" * 60
    assert a.stats()["tx_frames"] == 1 and a.stats()["rx_frames"] == 1


def _lost_pattern(seed):
    a, b = VirtualCable.pair(bit_rate=None, loss=0.3, seed=seed)
    for i in range(200):
        a.send(i.to_bytes(2, "big") * 30, i)
    return [int.from_bytes(p.frame[:2], "big") for p in b.poll(10**9, limit=1000)], a.stats()["tx_lost"]


def test_loss_is_deterministic_for_a_seed_and_every_lost_frame_is_counted():
    got1, lost1 = _lost_pattern(42)
    got2, lost2 = _lost_pattern(42)
    got3, _ = _lost_pattern(43)
    assert got1 == got2 and lost1 == lost2
    assert got1 != got3
    assert len(got1) + lost1 == 200
    assert 20 < lost1 < 100


def test_a_full_receive_queue_drops_and_counts_frames_at_the_receiver():
    a, b = VirtualCable.pair(bit_rate=None, queue_frames=4)
    for i in range(10):
        assert a.send(bytes([i]) * 60, 0)
    assert b.stats()["rx_dropped"] == {"queue_full": 6}
    assert [p.frame[0] for p in b.poll(0)] == [0, 1, 2, 3]


def test_unplugging_the_cable_fails_sends_drops_frames_in_flight_and_replugging_resumes():
    cable = VirtualCable(bit_rate=10_000_000)
    a, b = cable.a, cable.b
    a.send(FRAME, 0)
    cable.set_link(False)
    assert not a.link_up and not b.link_up
    assert a.send(FRAME, 1) is False
    assert b.poll(10**9) == []
    assert b.stats()["rx_dropped"] == {"link_down": 1}
    assert a.stats()["tx_failed"] == {"link_down": 1}
    a.set_link(True)
    assert a.link_up and b.link_up
    assert a.send(FRAME, 10**6)
    assert len(b.poll(10**9)) == 1


def test_closing_one_end_takes_the_link_down_for_the_other():
    a, b = VirtualCable.pair()
    with a:
        pass
    assert not b.link_up
    assert b.send(FRAME, 0) is False


def test_next_deadline_is_the_arrival_of_the_first_waiting_frame():
    a, b = VirtualCable.pair(bit_rate=None, delay_ns=50)
    assert b.next_deadline() is None
    a.send(FRAME, 10)
    assert b.next_deadline() == 60


def test_invalid_cable_parameters_are_rejected():
    for kw in ({"bit_rate": 0}, {"delay_ns": -1}, {"loss": 1.5}, {"queue_frames": 0}):
        with pytest.raises(ValueError):
            VirtualCable.pair(**kw)
