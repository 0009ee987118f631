"""Runner: board + bridge + Linux-style driver on emulated time (and briefly on live time)."""
from __future__ import annotations

import struct

from a2065.runners.replay import Capture, CaptureReplay, Runner, StreamCollector, read_capture
from bridge_helpers import ipv4_tcp, tcp_payload
from pcap_backend.backends import VirtualCable

CAP = "fixtures/captures/tcp4_tso.pcapng"
MAC_A = bytes.fromhex("00800f000001")
MAC_B = bytes.fromhex("00800f000002")


def _replay(timing, policy="segment", delivery="lossless"):
    cap = read_capture(CAP)
    pk = cap.direction("auto")
    got = []
    r = Runner(CaptureReplay(pk, start_ns=1_000_000), timing=timing, policy=policy,
               delivery=delivery, mac=Capture.guest_mac(pk), on_receive=lambda f, t: got.append((t, f)))
    r.run()
    return cap, r, got


def test_wire_timing_replay_is_deterministic_and_paced_at_10mbps_on_emulated_time():
    cap, r1, got1 = _replay("wire")
    _, r2, got2 = _replay("wire")
    assert got1 == got2 and r1.now == r2.now
    times = [t for t, f in got1 if len(f) == 1514]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # (1514 + 4 FCS + 8 preamble) * 800 ns + 9.6 us gap = 1.2304 ms per full frame
    assert min(gaps) >= 1_230_400
    sc = StreamCollector()
    for t, f in got1:
        sc.add(f, t)
    assert sc.sha256() == cap.sha256
    assert 1_150_000 <= sc.goodput_Bps(len(sc.stream())) <= 1_186_606


def test_fast_timing_delivers_the_same_stream_in_far_less_emulated_time():
    cap, wire, _ = _replay("wire")
    _, fast, got = _replay("fast")
    sc = StreamCollector()
    for t, f in got:
        sc.add(f, t)
    assert sc.sha256() == cap.sha256
    assert fast.now * 5 < wire.now


def test_lossless_replay_loses_nothing_even_though_the_ring_has_only_16_descriptors():
    _, r, _ = _replay("wire")
    s = r.stats()["bridge"]
    assert s["missed"] == 0 and s["queue_drops"] == 0 and s["delivered"] == 1461
    assert r.chip.counters.rx_missed == 0 and not r.stalled


def test_drop_legacy_replay_keeps_almost_none_of_the_stream():
    cap, r, got = _replay("wire", policy="drop-legacy")
    sc = StreamCollector()
    for t, f in got:
        sc.add(f, t)
    assert len(sc.stream()) < 0.05 * 2097152
    assert r.stats()["bridge"]["dropped"]["legacy_oversize"] == 38


def _step_both(a, b, until):
    t = 0
    while t <= until:
        a.step(t)
        b.step(t)
        ds = [d for d in (a.next_deadline(), b.next_deadline(), a.bridge.next_deadline(),
                          b.bridge.next_deadline()) if d is not None and d > t]
        if not ds:
            break
        t = min(ds)


def test_two_cards_joined_by_a_virtual_cable_exchange_frames_through_their_drivers():
    end_a, end_b = VirtualCable.pair(bit_rate=10_000_000)
    got_b = []
    a = Runner(end_a, timing="wire", mac=MAC_A)
    b = Runner(end_b, timing="wire", mac=MAC_B, on_receive=lambda f, t: got_b.append(f))
    frames = [ipv4_tcp(bytes([i]) * 1000, dst_mac=MAC_B, src_mac=MAC_A, seq=i * 1000) for i in range(3)]
    for f in frames:
        assert a.driver.send(f)
    _step_both(a, b, 50_000_000)
    assert [tcp_payload(f)[1] for f in got_b] == [tcp_payload(f)[1] for f in frames]
    assert a.stats()["bridge"]["transmitted"] == 3 and b.stats()["bridge"]["delivered"] == 3


def test_mss_from_a_syn_the_guest_sends_splits_a_later_metadata_free_super_packet():
    end_a, end_b = VirtualCable.pair(bit_rate=None)
    got = []
    guest = Runner(end_a, timing="fast", mac=MAC_A, on_receive=lambda f, t: got.append(f))
    syn = ipv4_tcp(b"", dst_mac=MAC_B, src_mac=MAC_A, src="10.0.0.1", dst="10.0.0.2", sport=40000,
                   dport=5001, flags=0x02, options=b"\x02\x04" + struct.pack("!H", 536))
    assert guest.driver.send(syn)
    guest.run(until_ns=3_000_000)
    assert end_b.poll(10**12)[0].frame[:len(syn)] == syn
    big = ipv4_tcp(bytes(4000), dst_mac=MAC_A, src_mac=MAC_B, seq=1)
    end_b.send(big, guest.now)
    guest.run(until_ns=guest.now + 5_000_000)
    assert [len(tcp_payload(f)[1]) for f in got] == [536] * 7 + [4000 - 7 * 536]


def test_live_runner_delivers_frames_from_a_cable_on_the_monotonic_clock():
    end_a, end_b = VirtualCable.pair(bit_rate=10_000_000)
    got = []
    r = Runner(end_a, timing="wire", mac=MAC_A, on_receive=lambda f, t: got.append(f))
    for i in range(5):
        end_b.send(ipv4_tcp(bytes(100), dst_mac=MAC_A, src_mac=MAC_B, seq=i), r.now)
    r.run_live(0.2)
    assert len(got) == 5
