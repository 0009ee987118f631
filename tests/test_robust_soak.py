"""Campaigns 4 and 5 in the test suite (tools/campaign_soak.py): a TCP-like stream through a
VirtualCable, the bridge, the card and the Linux-style driver at full `fast` speed; and the same
stream while the card is saved and replaced by a restored copy every few ms of emulated time.

The 30-minute soak is a command (`python3 -m tools.campaign_soak --minutes 30`), see
RELIABILITY.md. Wall time only bounds how long these run; nothing asserts on it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import campaign_soak as cs  # noqa: E402


def _assert_consistent(r):
    assert r["stream_bytes"] > 0
    assert r["sha256_guest"] == r["sha256_peer"]
    if r["sha256_expected_prefix"] is not None:
        assert r["sha256_guest"] == r["sha256_expected_prefix"]
    assert r["peer_acked"] == r["stream_bytes"]       # everything sent was delivered in order
    assert r["bad_checksums"] == 0 and r["stalls"] == 0
    assert r["bridge_invariant"] and r["chip_counters_balanced"]
    assert r["guest_frames"] == r["chip_rx_delivered"] == r["driver_rx_frames"]
    assert r["bridge"]["queued"] == 0


def test_a_twenty_second_soak_keeps_the_stream_intact_memory_flat_and_counters_consistent():
    r = cs.run(seconds=20, seed=11, sample_seconds=0.5)
    _assert_consistent(r)
    assert r["bridge_dropped"] == {} and r["retransmits"] == 0
    assert r["super_packets"] > 100
    # memory flat: no growth beyond allocator noise once warm
    warm_start = r["samples"][len(r["samples"]) // 5][1]
    assert r["rss_kb_last"] - warm_start < 8 * 1024, r["samples"]
    assert r["rss_slope_kb_per_min"] < 4 * 1024


def test_a_lossy_cable_still_delivers_the_stream_intact_by_retransmission():
    r = cs.run(seconds=6, seed=12, loss=0.02)
    _assert_consistent(r)
    assert r["retransmits"] > 0


@pytest.mark.parametrize("timing,every_ms", [("fast", 1), ("wire", 2)])
def test_the_stream_survives_replacing_the_card_with_its_restored_snapshot_every_few_ms(timing,
                                                                                       every_ms):
    r = cs.run(seconds=6, seed=13, timing=timing, snapshot_every_ms=every_ms)
    _assert_consistent(r)
    assert r["snapshots"] >= 20
    assert 32768 < r["snapshot_bytes"] < 256 * 1024


@pytest.mark.slow
def test_a_five_minute_soak_keeps_memory_flat():
    r = cs.run(seconds=300, seed=14, sample_seconds=5)
    _assert_consistent(r)
    assert r["rss_slope_kb_per_min"] < 256


@pytest.mark.root
def test_twenty_seconds_of_kernel_tcp_through_the_rig_at_full_speed_arrive_intact_without_stalls():
    from tools import campaign_rig_soak as rs

    r = rs.run(seconds=20, timing="fast", sample_seconds=2.0, port=5311)
    assert r["intact"] and r["eof"] and r["bytes_received"] > 1_000_000
    assert r["counters_consistent"] and r["stalls"] == 0
    assert r["segment_failures"] == {} and r["kernel_drops"] == 0
    assert r["rss_kb_max"] - r["rss_kb_first"] < 32 * 1024


def test_the_stream_stays_intact_across_the_32_bit_tcp_sequence_wrap(monkeypatch):
    monkeypatch.setattr(cs, "ISN", 0xFFFFFFFF - 3_000_000)  # wraps after 3 MB
    r = cs.run(seconds=3, seed=15, max_bytes=12_000_000)
    _assert_consistent(r)
    assert r["stream_bytes"] > 3_000_000
