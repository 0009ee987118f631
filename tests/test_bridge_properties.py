"""Bridge invariants on generated traffic (hypothesis): the counters always add up, the queue
never exceeds its bounds, and under `segment` nothing larger than the wire maximum reaches the chip."""
from __future__ import annotations

from hypothesis import given, strategies as st

from bridge_helpers import BCAST, CARD_MAC, PEER_MAC, ChipDouble, ListBackend, ipv4_tcp
from pcap_backend.base import Packet, PacketMeta
from pcap_backend.bridge import Bridge

OTHER = bytes.fromhex("02cccccccccc")


@st.composite
def packets(draw):
    kind = draw(st.sampled_from(["tcp", "tcp_meta", "junk", "own", "other"]))
    size = draw(st.integers(0, 20000))
    t = draw(st.integers(0, 5_000_000))
    if kind == "junk":
        return Packet(t, CARD_MAC + PEER_MAC + b"\x88\xb5" + bytes(size), None)
    dst = {"other": OTHER}.get(kind, draw(st.sampled_from([CARD_MAC, BCAST])))
    src = CARD_MAC if kind == "own" else PEER_MAC
    frame = ipv4_tcp(bytes(size), dst_mac=dst, src_mac=src, seq=draw(st.integers(0, 2**32 - 1)),
                     flags=draw(st.sampled_from([0x10, 0x18, 0x11, 0x38])))
    meta = None
    if kind == "tcp_meta":
        meta = PacketMeta(1, draw(st.integers(1, 1460)), draw(st.booleans()), 34, 16, False)
    return Packet(t, frame, meta)


@given(pkts=st.lists(packets(), max_size=25),
       policy=st.sampled_from(["segment", "drop-legacy"]),
       delivery=st.sampled_from(["lossless", "hardware"]),
       timing=st.sampled_from(["fast", "wire"]),
       descriptors=st.integers(0, 60),
       queue_frames=st.integers(1, 200),
       queue_bytes=st.integers(1514, 200_000),
       steps=st.lists(st.integers(0, 2_000_000), min_size=1, max_size=8))
def test_counters_add_up_and_bounds_hold_for_any_traffic(pkts, policy, delivery, timing, descriptors,
                                                          queue_frames, queue_bytes, steps):
    pkts = sorted(pkts, key=lambda p: p.arrival_ns)
    chip = ChipDouble(timing=timing, descriptors=descriptors)
    bridge = Bridge(ListBackend(pkts), chip, policy=policy, delivery=delivery, timing=timing,
                    queue_frames=queue_frames, queue_bytes=queue_bytes)
    now = 0
    for dt in steps:
        now += dt
        chip.advance_to(now)
        bridge.service(now)
        s = bridge.stats()
        assert s["frames_in"] == s["delivered"] + s["queued"] + s["dropped_total"]
        assert s["queued"] <= bridge.queue_frames and s["queued_bytes"] <= queue_bytes
        chip.free += 3  # the driver hands some descriptors back
    if policy == "segment":
        assert all(len(f) <= 1514 for _, f in chip.got)
    else:
        assert bridge.queue_frames <= 10
    assert all(f[6:12] != CARD_MAC for _, f in chip.got)


@given(queue_frames=st.integers(1, 120), queue_bytes=st.integers(1514, 120_000),
       prefill=st.integers(0, 60), payload=st.integers(1, 40_000), gso=st.integers(200, 1460))
def test_the_queue_takes_every_leading_segment_that_fits_its_free_room(queue_frames, queue_bytes,
                                                                         prefill, payload, gso):
    """A lower bound on what the queue accepts: with room for r more frames and b more bytes, a
    super-packet's leading segments are taken up to the first that does not fit (never fewer)."""
    chip = ChipDouble(descriptors=0)
    bridge = Bridge(ListBackend(), chip, queue_frames=queue_frames, queue_bytes=queue_bytes,
                    backpressure=False)
    for i in range(prefill):
        bridge.ingest(ipv4_tcp(bytes(100), seq=i * 100), None)
    frames0, bytes0 = bridge.queued, bridge.queued_bytes
    # headers 14 + 20 + 20; every frame padded to the 60-byte wire minimum
    sizes = [max(60, 54 + min(gso, payload - off)) for off in range(0, payload, gso)]
    room_frames, room_bytes = queue_frames - frames0, queue_bytes - bytes0
    fit = used = 0
    for size in sizes:
        if fit == room_frames or used + size > room_bytes:
            break
        fit += 1
        used += size
    big = ipv4_tcp(bytes(payload), seq=1)
    taken = bridge.ingest(big, PacketMeta(1, gso, False, 0, 0, True))
    assert taken == fit
    assert bridge.queued == frames0 + fit and bridge.queued_bytes == bytes0 + used
    s = bridge.stats()
    assert s["frames_in"] == s["delivered"] + s["queued"] + s["dropped_total"]
