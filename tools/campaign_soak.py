#!/usr/bin/env python3
"""Campaign 4 (load and soak) and 5 (snapshots under load): a TCP-like stream through the card
at full `fast` speed, on a VirtualCable (no root), for a wall-clock duration.

    python3 -m tools.campaign_soak --seconds 25 --seed 1                # CI size
    python3 -m tools.campaign_soak --minutes 30 --seed 1 --report soak.json
    python3 -m tools.campaign_soak --seconds 30 --snapshot-every-ms 3   # campaign 5

                 VirtualCable (emulated time, no bit-rate limit)
    Peer  ----------------------------------------------->  CableEnd -> Bridge -> Am7990/A2065
    (sender: go-back-N, 64 KB window,                           ^ Runner (Linux-style driver)
     super-packets with gso metadata                            |
     and plain frames)  <----------- ACKs ------------------  Guest (in-order receiver, checks
                                                              every TCP checksum, hashes stream)

The peer sends a deterministic byte stream (from the seed) as IPv4/TCP: GSO super-packets of up
to 64 KB (virtio-net metadata: gso_size 1448 or 536) and wire-sized frames, with valid checksums;
the bridge segments them, the card stores them, the driver hands them to the guest, which checks
each TCP checksum, accepts in-order data (go-back-N), and ACKs through the card's transmitter.
The peer retransmits after 200 ms of emulated time without progress (so --loss works too).

Figures: stream bytes (and the SHA-256 of both ends, which must match), emulated and wall
goodput, frames, steps; RSS sampled every --sample-seconds with a least-squares slope (kB per
minute) over the samples after the first 20 % (warm-up); stalls = runs of 2000 loop steps
without in-order stream progress (max_progress_gap_s: the longest wall gap, a figure only); counters consistent at the end (bridge: frames_in ==
delivered + queued + dropped; chip: offered == delivered + filtered + missed + dropped + in
flight; guest frames == chip delivered == driver frames).

--snapshot-every-ms N: every N ms of emulated time the card is saved (board.snapshot -> to_bytes
-> from_bytes) and replaced by `A2065.from_snapshot(...)` (the driver, bridge and runner are
re-pointed at the new board; the old one is dropped), so the stream continues on restored cards.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import native  # noqa: E402
from a2065 import A2065  # noqa: E402
from a2065 import snapshot as snapmod  # noqa: E402
from a2065.runners.replay import Runner  # noqa: E402
from pcap_backend.backends.cable import VirtualCable  # noqa: E402
from pcap_backend.base import PacketMeta  # noqa: E402

CARD_MAC = bytes.fromhex("008010123456")
PEER_MAC = bytes.fromhex("020000000002")
PEER_IP, GUEST_IP = bytes((10, 65, 0, 1)), bytes((10, 65, 0, 2))
PEER_PORT, GUEST_PORT = 5001, 40000
ISN = 1_000_000
WINDOW = 64 * 1024
RTO_NS = 200_000_000
MSS = 1448


def rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def slope_per_minute(samples) -> float:
    """Least-squares slope of (seconds, kB) samples, in kB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    if sxx == 0:
        return 0.0
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return sxy / sxx * 60.0


def _tcp_frame(dst_mac, src_mac, src_ip, dst_ip, sport, dport, seq, ack, flags, payload, ident):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0)
    seg = tcp + payload
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(seg))
    c = native.checksum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), ident & 0xFFFF, 0x4000, 64, 6, 0,
                     src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", native.checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + seg


class Stream:
    """The deterministic stream: chunk k of 64 KB = SHA-256-counter bytes of (seed, k)."""

    CHUNK = 65536

    def __init__(self, seed: int):
        self.seed = seed
        self._cache = {}

    def chunk(self, k: int) -> bytes:
        c = self._cache.get(k)
        if c is None:
            h = hashlib.sha256(f"soak/{self.seed}/{k}".encode()).digest()
            c = (h * (self.CHUNK // 32 + 1))[: self.CHUNK]
            c = bytes(b ^ (i * 131 + k) & 0xFF for i, b in enumerate(c[:256])) + c[256:]
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[k] = c
        return c

    def bytes(self, off: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            k, o = divmod(off, self.CHUNK)
            part = self.chunk(k)[o:o + n]
            out += part
            off += len(part)
            n -= len(part)
        return bytes(out)


class Peer:
    """The sending host: go-back-N over the cable end, super-packets with GSO metadata."""

    def __init__(self, end, stream: Stream, rng: random.Random):
        self.end = end
        self.stream = stream
        self.rng = rng
        self.una = 0          # stream offset acknowledged
        self.nxt = 0          # next offset to send
        self.sent_hash = hashlib.sha256()
        self.hashed = 0       # bytes folded into sent_hash (first transmission order)
        self.ident = 0
        self.last_progress_ns = 0
        self.retransmits = 0
        self.super_packets = 0
        self.frames = 0
        self.send_refused = 0
        self.closing = False  # no new data (drain at the end)

    def service(self, now: int) -> None:
        for p in self.end.poll(now, 256):
            self._ack(p.frame, now)
        if self.nxt > self.una and now - self.last_progress_ns > RTO_NS:
            self.nxt = self.una   # go-back-N
            self.retransmits += 1
            self.last_progress_ns = now
        budget = 0 if self.closing and self.nxt >= self.hashed else 8
        while budget and self.nxt - self.una < WINDOW:
            budget -= 1
            room = WINDOW - (self.nxt - self.una)
            k = self.rng.random()
            if self.closing:
                room = min(room, self.hashed - self.nxt)  # retransmit only
            n = min(room, self.rng.randrange(1, 64_001) if k < 0.6 else self.rng.randrange(1, MSS + 1))
            data = self.stream.bytes(self.nxt, n)
            self.ident += 1
            f = _tcp_frame(CARD_MAC, PEER_MAC, PEER_IP, GUEST_IP, PEER_PORT, GUEST_PORT,
                           ISN + self.nxt, 1, 0x18, data, self.ident)
            meta = None
            if len(f) > 1514:
                meta = PacketMeta(1, self.rng.choice((MSS, MSS, 536)), False, 0, 0, True)
                self.super_packets += 1
            ok = self.end.send_meta(f, now, meta)
            if not ok:
                self.send_refused += 1
                break
            self.frames += 1
            if self.nxt + n > self.hashed:
                self.sent_hash.update(data[self.hashed - self.nxt:])
                self.hashed = self.nxt + n
            self.nxt += n

    def _ack(self, frame, now):
        if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            return
        ack = struct.unpack_from("!I", frame, 42)[0]
        delta = (ack - (ISN + self.una)) & 0xFFFFFFFF  # modulo 2^32: the stream passes 4 GiB
        if 0 < delta <= self.nxt - self.una:
            self.una += delta
            self.last_progress_ns = now


class Guest:
    """The receiving host behind the driver: checks checksums, takes in-order data, ACKs."""

    def __init__(self):
        self.expected = 0
        self.hash = hashlib.sha256()
        self.frames = 0
        self.bad_csum = 0
        self.out_of_order = 0
        self.need_ack = False
        self.runner = None

    def receive(self, frame: bytes, t: int) -> None:
        self.frames += 1
        if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
            return
        ihl = (frame[14] & 15) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        seg = frame[14 + ihl:14 + total]
        pseudo = frame[26:34] + struct.pack("!BBH", 0, 6, len(seg))
        if native.checksum(frame[14:14 + ihl]) != 0 or native.checksum(pseudo + seg) != 0:
            self.bad_csum += 1
            return
        seq = struct.unpack_from("!I", seg, 4)[0]
        data = seg[(seg[12] >> 4) * 4:]
        if data:
            if seq == (ISN + self.expected) & 0xFFFFFFFF:  # sequence numbers wrap at 4 GiB
                self.hash.update(data)
                self.expected += len(data)
            else:
                self.out_of_order += 1
            self.need_ack = True

    def ack(self, runner) -> None:
        if self.need_ack and runner.driver.tx_buffs_avail() > 0:
            f = _tcp_frame(PEER_MAC, CARD_MAC, GUEST_IP, PEER_IP, GUEST_PORT, PEER_PORT, 1,
                           ISN + self.expected, 0x10, b"", 0)
            if runner.driver.send(f):
                self.need_ack = False


def _peer_send_with_meta(peer_end, card_end, metas):
    def send_meta(frame, t, meta):
        before = len(card_end.queue)
        ok = peer_end.send(frame, t)
        if ok and meta is not None and len(card_end.queue) > before:  # not lost, not dropped
            metas[id(card_end.queue[-1])] = meta
        return ok
    return send_meta


class MetaBackend:
    """The card's cable end, handing out each frame with the metadata its sender attached."""

    def __init__(self, end, metas):
        self.end = end
        self.metas = metas

    def __getattr__(self, k):
        return getattr(self.end, k)

    def poll(self, now_ns, limit=64):
        q = self.end.queue
        ids = [id(x) for x in list(q)[:limit]]
        pkts = self.end.poll(now_ns, limit)
        out = []
        for i, p in zip(ids, pkts):
            out.append(p._replace(meta=self.metas.pop(i, None)))
        return out


def _swap_board(runner, rng):
    """Snapshot the running card to bytes and continue on a new board restored from them."""
    old = runner.board
    data = snapmod.to_bytes(old.snapshot())
    new = A2065.from_snapshot(snapmod.from_bytes(data), strict=True)
    new.lance.transmit = old.lance.transmit      # the bridge's callback (callbacks are not saved)
    runner.board = new
    runner.chip = new.lance
    runner.bridge.chip = new.lance
    drv = runner.driver
    drv.bus = new
    if getattr(drv, "_ram", None) is not None:
        drv._ram = new.ram
    # poison the old card: anything still reading it gets junk (bad checksums), any use of its
    # chip raises -- so the stream can only stay intact on the restored card
    old.ram[:] = b"\xff" * len(old.ram)
    old.lance.dma = None
    return len(data)


def run(*, seconds: float, seed: int = 1, loss: float = 0.0, timing: str = "fast", sample_seconds: float = 1.0,
        stall_steps: int = 2000, snapshot_every_ms: float = 0.0, max_bytes: int = 0,
        progress=None) -> dict:
    rng = random.Random(f"soak/{seed}")
    stream = Stream(seed)
    peer_end, card_end = VirtualCable.pair(bit_rate=None, loss=loss, seed=seed, queue_frames=4096)
    metas: dict = {}
    peer_end.send_meta = _peer_send_with_meta(peer_end, card_end, metas)
    guest = Guest()
    backend = MetaBackend(card_end, metas)
    runner = Runner(backend, timing=timing, delivery="lossless", mac=CARD_MAC,
                    on_receive=guest.receive)
    guest.runner = runner
    peer = Peer(peer_end, stream, rng)
    t0 = time.monotonic()
    end = t0 + seconds
    samples = []
    next_sample = t0
    last_progress_wall = t0
    last_expected = 0
    idle_steps = 0
    stalls = 0
    max_stall = 0.0
    snapshots = 0
    snap_bytes = 0
    snap_period = int(snapshot_every_ms * 1_000_000) if snapshot_every_ms else 0
    next_snap = snap_period
    steps = 0
    now = 0
    while True:
        wall = time.monotonic()
        if wall >= end or (max_bytes and guest.expected >= max_bytes):
            break
        if wall >= next_sample:
            samples.append((wall - t0, rss_kb()))
            next_sample += sample_seconds
            if progress:
                progress(guest.expected, wall - t0, samples[-1][1])
        if guest.expected != last_expected:
            last_expected = guest.expected
            max_stall = max(max_stall, wall - last_progress_wall)
            last_progress_wall = wall
            idle_steps = 0
        else:
            idle_steps += 1
            if idle_steps > stall_steps:  # this many loop steps without in-order progress
                stalls += 1
                idle_steps = 0
        peer.service(now)
        t = runner.next_deadline()
        nd = card_end.next_deadline()
        cands = [x for x in (t, nd) if x is not None and x > now]
        now = min(cands) if cands else now + 100_000
        if peer.nxt > peer.una:
            now = min(now, peer.last_progress_ns + RTO_NS + 1)
        runner.step(now)
        guest.ack(runner)
        runner.step(now)
        steps += 1
        if snap_period and now >= next_snap:
            snap_bytes = _swap_board(runner, rng)
            snapshots += 1
            next_snap = now + snap_period
    # drain: no new data; let everything in flight arrive and be acknowledged
    peer.closing = True
    for _ in range(10_000):
        peer.service(now)
        if peer.una == peer.nxt and runner.bridge.queued == 0 and not card_end.queue:
            break
        now += 1_000_000
        runner.step(now)
        guest.ack(runner)
        runner.step(now)
    wall_s = time.monotonic() - t0
    samples.append((wall_s, rss_kb()))
    warm = samples[max(1, len(samples) // 5):] if len(samples) > 5 else samples
    bs = runner.bridge.stats()
    c = runner.chip.counters
    sent_prefix = hashlib.sha256(stream.bytes(0, guest.expected)).hexdigest() \
        if guest.expected <= 32 * 1024 * 1024 else None
    return {
        "seed": seed, "timing": timing, "loss": loss, "wall_seconds": round(wall_s, 1), "emulated_ns": now, "steps": steps,
        "stream_bytes": guest.expected, "peer_acked": peer.una,
        "sha256_guest": guest.hash.hexdigest(),
        "sha256_peer": peer.sent_hash.hexdigest() if peer.hashed == guest.expected else None,
        "sha256_expected_prefix": sent_prefix,
        "goodput_emulated_Bps": guest.expected * 1_000_000_000 // max(now, 1),
        "goodput_wall_Bps": int(guest.expected / max(wall_s, 1e-9)),
        "guest_frames": guest.frames, "bad_checksums": guest.bad_csum,
        "out_of_order": guest.out_of_order, "retransmits": peer.retransmits,
        "super_packets": peer.super_packets, "peer_frames": peer.frames,
        "bridge": {k: bs[k] for k in ("frames_in", "delivered", "queued", "dropped_total",
                                       "segmented", "segments_made", "transmitted")},
        "bridge_dropped": bs["dropped"],
        "chip_rx_delivered": c.rx_delivered, "chip_counters_balanced": runner.chip.counters_balanced(),
        "driver_rx_frames": runner.driver.counters.rx_frames,
        "bridge_invariant": bs["frames_in"] == bs["delivered"] + bs["queued"] + bs["dropped_total"],
        "rss_kb_first": samples[0][1], "rss_kb_last": samples[-1][1],
        "rss_kb_max": max(v for _, v in samples),
        "rss_slope_kb_per_min": round(slope_per_minute(warm), 1), "rss_samples": len(samples),
        "stalls": stalls, "max_progress_gap_s": round(max_stall, 2),
        "snapshots": snapshots, "snapshot_bytes": snap_bytes,
        "samples": samples if len(samples) <= 200 else samples[:: max(1, len(samples) // 200)],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--timing", choices=("fast", "wire"), default="fast")
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument("--snapshot-every-ms", type=float, default=0.0)
    ap.add_argument("--report")
    a = ap.parse_args(argv)
    secs = a.minutes * 60 if a.minutes else a.seconds

    def progress(nbytes, wall, rss):
        if int(wall) % 30 == 0:
            print(f"[soak] {wall:.0f} s: {nbytes / 1e6:.1f} MB in order, rss {rss} kB",
                  file=sys.stderr, flush=True)

    r = run(seconds=secs, seed=a.seed, loss=a.loss, timing=a.timing, sample_seconds=a.sample_seconds,
            snapshot_every_ms=a.snapshot_every_ms, progress=progress)
    out = json.dumps({k: v for k, v in r.items() if k != "samples"}, indent=1)
    print(out)
    if a.report:
        Path(a.report).write_text(json.dumps(r, indent=1) + "\n")
    ok = (r["bridge_invariant"] and r["chip_counters_balanced"] and r["bad_checksums"] == 0
          and r["stalls"] == 0 and (r["sha256_peer"] in (None, r["sha256_guest"])))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
