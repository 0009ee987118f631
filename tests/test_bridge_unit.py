"""Bridge rules (pcap_backend/bridge.py) against a chip double and list/cable backends."""
from __future__ import annotations

import collections
import hashlib
import logging
import struct

import pytest

from bridge_helpers import (
    BCAST, CARD_MAC, PEER_MAC, ChipDouble, ListBackend, check_invariant, ipv4_tcp, reassemble,
    tcp_checksum_ok, tcp_payload, wire_time_ns,
)
from fixture_capture import CAPTURES, load
from pcap_backend.backends import Null, VirtualCable
from pcap_backend.base import Packet, PacketMeta
from pcap_backend.bridge import Bridge, PcapngTee, syn_mss


def _meta(p):
    if p.meta is None:
        return None
    m = p.meta
    partial = bool(m["flags"] & 1)
    return PacketMeta(m["gso_type"], m["gso_size"] if m["gso_type"] else 0, partial,
                      m["csum_start"] if partial else 0, m["csum_offset"] if partial else 0,
                      bool(m["flags"] & 2))


def _capture_backend(name):
    pkts = [p for p in load(name) if p.outgoing]
    unicast = collections.Counter(p.frame[:6] for p in pkts if not p.frame[0] & 1)
    guest_mac = unicast.most_common(1)[0][0]
    return ListBackend([Packet(p.ts_ns, p.frame, _meta(p)) for p in pkts]), guest_mac


def _run(bridge, chip, until=None, step=None):
    """Drive chip + bridge on emulated time until nothing is left to do."""
    for _ in range(1_000_000):
        t = bridge.next_deadline()
        if t is None or (until is not None and t > until):
            break
        if t > chip.now:
            chip.advance_to(t)
        bridge.service(chip.now)
        if step:
            step()
    return chip


@pytest.mark.parametrize("name", ["tcp4", "tcp6"])
def test_segment_policy_turns_the_real_kernel_capture_into_wire_frames_carrying_the_exact_stream(name):
    backend, mac = _capture_backend(name)
    chip = ChipDouble(mac=mac)
    bridge = Bridge(backend, chip)
    _run(bridge, chip)
    frames = [f for _, f in chip.got]
    assert max(map(len, frames)) <= 1514
    assert hashlib.sha256(reassemble(frames)).hexdigest() == CAPTURES[name].sha256
    s = check_invariant(bridge)
    assert s["super_packets"] == s["segmented"] > 40
    assert s["queued"] == 0 and set(s["dropped"]) <= {"filtered"}  # multicast not joined


def test_segment_policy_completes_partial_checksums_of_frames_that_already_fit():
    backend, mac = _capture_backend("tcp4")
    chip = ChipDouble(mac=mac)
    bridge = Bridge(backend, chip)
    _run(bridge, chip)
    tcp = [f for _, f in chip.got if f[12:14] == b"\x08\x00" and f[23] == 6]
    assert tcp and all(tcp_checksum_ok(f) for f in tcp)
    assert bridge.stats()["csum_completed"] > 0


def test_drop_legacy_drops_every_frame_over_1600_bytes_and_queues_at_most_ten():
    backend, mac = _capture_backend("tcp4")
    chip = ChipDouble(mac=mac)
    bridge = Bridge(backend, chip, policy="drop-legacy")
    assert bridge.queue_frames == 10
    _run(bridge, chip)
    s = check_invariant(bridge)
    assert s["dropped"]["legacy_oversize"] == sum(1 for p in load("tcp4") if p.outgoing and len(p.frame) > 1600)
    assert all(len(f) <= 1600 for _, f in chip.got)
    assert s["delivered_bytes"] < 0.05 * 2097152


def test_drop_legacy_queue_tail_drops_beyond_ten_frames():
    backend = ListBackend([Packet(0, ipv4_tcp(b"x" * 100, seq=i), None) for i in range(25)])
    chip = ChipDouble(descriptors=0)  # nothing is taken: the queue fills
    bridge = Bridge(backend, chip, policy="drop-legacy")
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["queued"] == 10 and s["queue_drops"] == 15


def test_queue_frame_limit_tail_drops_and_counts_without_backpressure():
    backend = ListBackend([Packet(0, ipv4_tcp(b"y" * 200, seq=i), None) for i in range(50)])
    chip = ChipDouble(descriptors=0)
    bridge = Bridge(backend, chip, queue_frames=20, backpressure=False)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["queued"] == 20 and s["queue_drops"] == 30
    assert s["queue_high_frames"] == 20


def test_queue_byte_budget_bounds_memory_even_for_one_super_packet():
    big = ipv4_tcp(bytes(60000), seq=1)
    backend = ListBackend([Packet(0, big, PacketMeta(1, 1000, False, 0, 0, True))])
    chip = ChipDouble(descriptors=0)
    bridge = Bridge(backend, chip, queue_bytes=10 * 1100)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["segments_made"] == 60
    assert s["queued_bytes"] <= 10 * 1100 and s["queued"] == 10 - 0 or s["queued"] < 11
    assert s["queue_drops"] == 60 - s["queued"]
    # and from below: ten 1054-byte segments (54 B of headers + 1000) fit 11,000 bytes, the
    # eleventh does not; the queue takes what fits, it does not refuse the super-packet whole
    assert s["queued"] == 10 and s["queued_bytes"] == 10 * 1054


def test_backpressure_leaves_packets_in_the_backend_instead_of_dropping_them():
    frames = [ipv4_tcp(bytes(30000), seq=i * 30000) for i in range(10)]
    backend = ListBackend([Packet(0, f, PacketMeta(1, 1448, False, 0, 0, True)) for f in frames])
    chip = ChipDouble(descriptors=0)
    bridge = Bridge(backend, chip, queue_bytes=200_000)
    bridge.service(0)
    assert bridge.stats()["queue_drops"] == 0
    assert backend.pending  # still waiting upstream
    chip.free = 1 << 30
    _run(bridge, chip)
    s = check_invariant(bridge)
    assert s["dropped_total"] == 0 and s["delivered"] == 10 * 21


def test_lossless_delivery_waits_for_returned_descriptors_and_loses_nothing():
    backend = ListBackend([Packet(0, ipv4_tcp(b"z" * 500, seq=i * 500), None) for i in range(12)])
    chip = ChipDouble(descriptors=2)
    bridge = Bridge(backend, chip)
    bridge.service(0)
    assert len(chip.got) == 2 and bridge.queued == 10
    assert bridge.next_deadline() is None  # waits for the driver, not for time
    for _ in range(5):
        chip.free += 2  # the driver hands back two descriptors
        bridge.service(chip.now)
    s = check_invariant(bridge)
    assert len(chip.got) == 12 and s["missed"] == 0 and s["dropped_total"] == 0


def test_hardware_delivery_offers_at_once_and_counts_miss_when_no_descriptor_is_owned():
    backend = ListBackend([Packet(0, ipv4_tcp(b"z" * 500, seq=i * 500), None) for i in range(12)])
    chip = ChipDouble(descriptors=2)
    bridge = Bridge(backend, chip, delivery="hardware")
    bridge.service(0)
    s = check_invariant(bridge)
    assert len(chip.got) == 2 and s["missed"] == 10 and s["queued"] == 0


def test_frames_the_chip_filters_are_counted_as_filtered():
    other = bytes.fromhex("02aabbccddee")
    backend = ListBackend([Packet(0, ipv4_tcp(b"q" * 10, dst_mac=other), None),
                           Packet(0, ipv4_tcp(b"q" * 10), None)])
    chip = ChipDouble()
    bridge = Bridge(backend, chip)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["filtered"] == 1 and s["delivered"] == 1


def test_wire_timing_drains_the_queue_at_the_10mbps_wire_rate_on_emulated_time():
    frames = [ipv4_tcp(bytes(1000), seq=i * 1000) for i in range(20)]
    backend = ListBackend([Packet(0, f, None) for f in frames])
    chip = ChipDouble(timing="wire")
    bridge = Bridge(backend, chip, timing="wire")
    _run(bridge, chip)
    times = [t for t, _ in chip.got]
    assert len(times) == 20
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= wire_time_ns(len(frames[0])) for g in gaps)
    # and no slower than the wire either: the bridge offers each frame the moment the chip is idle
    assert times[-1] == 19 * wire_time_ns(len(frames[0]))


def test_wire_timing_next_deadline_is_the_chip_idle_time_while_frames_wait():
    backend = ListBackend([Packet(0, ipv4_tcp(bytes(100), seq=i), None) for i in range(3)])
    chip = ChipDouble(timing="wire")
    bridge = Bridge(backend, chip)
    bridge.service(0)
    assert bridge.next_deadline() == chip.rx_idle_at() > 0


def test_frames_arriving_later_are_not_delivered_before_their_arrival_time():
    backend = ListBackend([Packet(5_000_000, ipv4_tcp(b"a" * 100), None)])
    chip = ChipDouble()
    bridge = Bridge(backend, chip)
    bridge.service(0)
    assert chip.got == [] and bridge.next_deadline() == 5_000_000
    _run(bridge, chip)
    assert chip.got[0][0] == 5_000_000


def test_own_transmissions_reflected_by_the_backend_are_dropped_and_counted():
    a, b = VirtualCable.pair(bit_rate=None)
    chip = ChipDouble()
    bridge = Bridge(a, chip)
    own = ipv4_tcp(b"mine", dst_mac=BCAST, src_mac=CARD_MAC)
    b.send(own, 0)                          # the host reflects our broadcast back
    b.send(ipv4_tcp(b"theirs", dst_mac=BCAST), 0)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["own_frames_dropped"] == 1 and s["delivered"] == 1
    assert tcp_payload(chip.got[0][1])[1] == b"theirs"


def test_own_frames_are_delivered_when_the_chip_is_in_external_loopback():
    backend = ListBackend([Packet(0, ipv4_tcp(b"loop", dst_mac=CARD_MAC, src_mac=CARD_MAC), None)])
    chip = ChipDouble()
    chip.mode = 0x0004  # MODE.LOOP without INTL: external loopback
    bridge = Bridge(backend, chip)
    bridge.service(0)
    assert check_invariant(bridge)["delivered"] == 1


def test_mss_learned_from_a_transmitted_syn_sets_the_segment_size_of_metadata_free_super_packets():
    backend = ListBackend()
    chip = ChipDouble()
    bridge = Bridge(backend, chip)
    assert chip.transmit == bridge.transmit
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x02\x18")  # MSS 536
    assert chip.send(syn, 100)
    assert backend.sent == [(100, syn)]
    big = ipv4_tcp(bytes(range(256)) * 20, seq=7)  # 5120 bytes of payload, no metadata
    backend.add(200, big)
    chip.advance_to(200)
    bridge.service(200)
    got = [f for _, f in chip.got]
    assert [len(tcp_payload(f)[1]) for f in got] == [536] * 9 + [5120 - 9 * 536]
    assert all(tcp_checksum_ok(f) for f in got)
    assert reassemble(got) == bytes(range(256)) * 20
    s = check_invariant(bridge)
    assert s["mss_learned"] == 1 and s["mss_used"] == 1


def test_without_any_metadata_or_learned_mss_the_largest_fitting_segment_is_used():
    big = ipv4_tcp(bytes(4000), seq=1)
    chip = ChipDouble()
    bridge = Bridge(ListBackend([Packet(0, big, None)]), chip)
    bridge.service(0)
    assert [len(tcp_payload(f)[1]) for _, f in chip.got] == [1460, 1460, 1080]


def test_mss_table_is_bounded_with_lru_eviction():
    chip = ChipDouble()
    bridge = Bridge(ListBackend(), chip, mss_table_size=2)
    def syn(port, mss):
        return ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD_MAC, src="10.0.0.1", dst="10.0.0.2",
                        sport=port, dport=80, flags=0x02, options=b"\x02\x04" + struct.pack("!H", mss))
    chip.send(syn(1, 500), 0)
    chip.send(syn(2, 600), 0)
    chip.send(syn(1, 501), 0)   # refreshes flow 1
    chip.send(syn(3, 700), 0)   # evicts flow 2, the least recently used
    key = lambda p: (bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), 80, p)
    assert bridge.learned_mss(key(1)) == 501
    assert bridge.learned_mss(key(2)) is None
    assert bridge.learned_mss(key(3)) == 700


def test_syn_mss_parses_options_after_nops_and_ignores_non_syn_segments():
    f = ipv4_tcp(b"", flags=0x12, options=b"\x01\x01\x04\x02\x02\x04\x05\xb4")
    assert syn_mss(f)[1] == 1460
    assert syn_mss(ipv4_tcp(b"", flags=0x10, options=b"\x02\x04\x05\xb4")) is None


def test_unsegmentable_super_packets_are_dropped_and_counted_by_error_class():
    odd = CARD_MAC + PEER_MAC + b"\x88\xb5" + bytes(3000)        # unknown ethertype, oversized
    urg = ipv4_tcp(bytes(3000), flags=0x38)                        # URG with data to split
    chip = ChipDouble()
    bridge = Bridge(ListBackend([Packet(0, odd, None), Packet(0, urg, None)]), chip)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["dropped"] == {"EthertypeError": 1, "UrgError": 1}
    assert s["segment_failures"] == {"EthertypeError": 1, "UrgError": 1}
    assert chip.got == []


def test_failures_are_logged_once_per_condition(caplog):
    odd = CARD_MAC + PEER_MAC + b"\x88\xb5" + bytes(3000)
    chip = ChipDouble()
    bridge = Bridge(ListBackend([Packet(0, odd, None)] * 5), chip)
    with caplog.at_level(logging.INFO, logger="a2065.bridge"):
        bridge.service(0)
    assert sum("cannot segment" in r.getMessage() for r in caplog.records) == 1
    assert bridge.stats()["dropped"]["EthertypeError"] == 5


def test_short_frames_are_padded_to_the_60_byte_wire_minimum():
    arp = BCAST + PEER_MAC + b"\x08\x06" + bytes(28)
    chip = ChipDouble()
    bridge = Bridge(ListBackend([Packet(0, arp, None)]), chip)
    bridge.service(0)
    assert len(chip.got[0][1]) == 60 and chip.got[0][1][:42] == arp


def test_transmit_strips_the_fcs_and_sends_at_the_chip_completion_time():
    backend = ListBackend()
    chip = ChipDouble()
    bridge = Bridge(backend, chip)
    f = ipv4_tcp(b"hello", dst_mac=PEER_MAC, src_mac=CARD_MAC)
    assert chip.send(f, 123456) is True
    assert backend.sent == [(123456, f)]
    assert bridge.stats()["transmitted"] == 1 and bridge.stats()["transmitted_bytes"] == len(f)


def test_a_backend_refusal_is_counted_and_returned_to_the_chip():
    chip = ChipDouble()
    bridge = Bridge(Null(), chip)
    assert chip.send(ipv4_tcp(b"x", dst_mac=PEER_MAC, src_mac=CARD_MAC), 5) is False
    s = bridge.stats()
    assert s["tx_failed"] == 1 and s["transmitted"] == 0


def test_recorder_tee_writes_both_directions_as_pcapng_with_emulated_timestamps(tmp_path):
    from fixture_capture import read_pcapng
    path = tmp_path / "tee.pcapng"
    rx = ipv4_tcp(b"in" * 40)
    tx = ipv4_tcp(b"out", dst_mac=PEER_MAC, src_mac=CARD_MAC)
    chip = ChipDouble()
    with PcapngTee(path) as tee:
        bridge = Bridge(ListBackend([Packet(1_000_000_007, rx, None)]), chip, recorder=tee)
        chip.advance_to(1_000_000_007)
        bridge.service(chip.now)
        chip.send(tx, 2_000_000_009)
    pkts = read_pcapng(path.read_bytes())
    assert [(p.ts_ns, p.frame, p.outgoing) for p in pkts] == [
        (1_000_000_007, rx, False), (2_000_000_009, tx, True)]


def test_counters_add_up_under_a_mix_of_every_outcome():
    odd = CARD_MAC + PEER_MAC + b"\x88\xb5" + bytes(3000)
    pkts = [Packet(0, ipv4_tcp(bytes(20000), seq=1), PacketMeta(1, 1448, True, 34, 16, False)),
            Packet(0, odd, None),
            Packet(0, ipv4_tcp(b"own", src_mac=CARD_MAC), None),
            Packet(0, ipv4_tcp(b"other", dst_mac=bytes.fromhex("02bbbbbbbbbb")), None)]
    pkts += [Packet(0, ipv4_tcp(bytes(900), seq=i), None) for i in range(40)]
    chip = ChipDouble(descriptors=20)
    bridge = Bridge(ListBackend(pkts), chip, delivery="hardware", queue_frames=30,
                    backpressure=False)
    bridge.service(0)
    s = check_invariant(bridge)
    assert s["received"] == 44
    assert s["frames_in"] == 44 - 1 + s["segments_made"]
    assert s["delivered"] == 20 and s["missed"] > 0 and s["queue_drops"] > 0
    assert s["own_frames_dropped"] == 1 and s["filtered"] == 1 and s["dropped"]["EthertypeError"] == 1


def test_bad_policy_delivery_or_timing_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="segment, drop-legacy"):
        Bridge(ListBackend(), ChipDouble(), policy="fragment")
    with pytest.raises(ValueError, match="lossless, hardware"):
        Bridge(ListBackend(), ChipDouble(), delivery="eventually")
    with pytest.raises(ValueError, match="fast, wire"):
        Bridge(ListBackend(), ChipDouble(), timing="slow")


@pytest.mark.skipif(__import__("native").IMPLEMENTATION != "c",
                    reason="the Segmenter pool needs the C core (A2065_NATIVE=python forces the oracle)")
def test_pooled_segment_buffers_are_reused_only_once_no_frame_cut_into_them_is_alive():
    from pcap_backend.bridge.policy import Segmentation
    seg = Segmentation(pool_size=2)
    a = seg.split(ipv4_tcp(b"A" * 5000, seq=1), 1000, 0, 0, 0, 0)
    a_copy = [bytes(f) for f in a]
    b = seg.split(ipv4_tcp(b"B" * 5000, seq=1), 1000, 0, 0, 0, 0)
    c = seg.split(ipv4_tcp(b"C" * 5000, seq=1), 1000, 0, 0, 0, 0)   # pool full, both busy: copied
    assert [bytes(f) for f in a] == a_copy and seg.copied == 1
    assert all(isinstance(f, memoryview) and f.readonly for f in a + b)
    del a
    d = seg.split(ipv4_tcp(b"D" * 5000, seq=1), 1000, 0, 0, 0, 0)   # reuses a's buffer
    assert seg.copied == 1 and tcp_payload(bytes(d[0]))[1] == b"D" * 1000
    assert tcp_payload(bytes(b[0]))[1] == b"B" * 1000 and tcp_payload(bytes(c[0]))[1] == b"C" * 1000


def test_a_slow_guest_keeps_many_super_packets_queued_and_still_gets_the_exact_stream():
    backend, mac = _capture_backend("tcp6")
    chip = ChipDouble(mac=mac, descriptors=7)
    bridge = Bridge(backend, chip, queue_bytes=4 << 20)
    for _ in range(100_000):
        t = bridge.next_deadline()
        if t is None:
            if not backend.pending and not bridge.queued:
                break
            chip.free += 7  # the driver hands back a few descriptors
        elif t > chip.now:
            chip.advance_to(t)
        bridge.service(chip.now)
    frames = [f for _, f in chip.got]
    assert hashlib.sha256(reassemble(frames)).hexdigest() == CAPTURES["tcp6"].sha256
    assert bridge.stats()["queue_high_frames"] > 200
