#!/usr/bin/env python3
"""Campaign 2, hostile network: adversarial frames through the bridge into the card.

    python3 -m tools.campaign_network --frames 20000 --seed 1          # CI size
    python3 -m tools.campaign_network --frames 2000000 --seed 3 --report out.json

Frames of 0..65,535 bytes with random and adversarial headers: lying IPv4 total lengths and IHLs,
IP options, fragments, IPv6 extension-header chains (long, looping hop-by-hop/routing/destination
options, fragment headers, lengths past the end), VLAN stacks (0..8 tags, 802.1Q and 802.1ad),
TCP data offsets before the header end or past the frame, MSS 0 and lying option lengths, option
length 0/1 (an option walk that would never advance), SYN+FIN, URG with urgent pointers, UDP with
lying lengths, truncation anywhere, and metadata (virtio-net header) that lies: any gso_type,
gso_size 0/1/huge, csum_start/offset past the frame. Sources include the card's own MAC.

They go through the real path: a backend -> `Bridge` (segment policy; lossless or hardware
delivery, fast or wire timing) -> the Am7990 on an A2065 board driven by the Linux-style driver,
which recycles descriptors (and hangs, detectably, on a chained descriptor).

Invariants, after every service step:
  * nothing over the wire maximum reaches the chip: every frame offered to `chip.receive` is
    60..1514 bytes (the bridge pads; 1518 with the FCS the chip appends), plus 4 per VLAN tag
    for at most two tags (802.1Q: 1522 with FCS) -- the chip takes them (its bound is 1540 + FCS,
    one 1544-byte buffer; reported as `vlan_over_1514`);
  * the driver never meets a chained receive descriptor (DriverHang) and never sees a frame
    longer than the bridge may offer (1514 + 4 per tag, two tags at most);
  * everything dropped is counted by reason: frames_in == delivered + queued + sum(dropped),
    every reason a non-empty name, the chip's counters add up;
  * the queue stays inside its bounds; nothing raises.
Also MSS learning: the card transmits SYNs with adversarial MSS options (0, 1, 65535, lying
lengths), so segment() also sees learned MSS values of any size.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import struct
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from a2065.drivers import DriverHang  # noqa: E402
from a2065.runners.replay import Runner  # noqa: E402
from pcap_backend.base import Backend, Packet, PacketMeta  # noqa: E402

ETH_MAX = 1514
PEER = bytes.fromhex("020000000002")
GUEST_IP = bytes((10, 0, 0, 1))
PEER_IP = bytes((10, 0, 0, 2))


def _csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class FrameGen:
    """Adversarial Ethernet frames from a seeded random.Random."""

    def __init__(self, rng: random.Random, card_mac: bytes):
        self.r = rng
        self.card = card_mac

    def pick(self, *opts):
        return opts[self.r.randrange(len(opts))]

    def payload_len(self):
        r = self.r
        k = r.randrange(10)
        if k < 3:
            return r.randrange(0, 64)
        if k < 6:
            return r.randrange(0, 1600)
        if k < 9:
            return r.randrange(1400, 65536)
        return self.pick(0, 1, 1459, 1460, 1461, 8948, 9000, 65000, 65455, 65495, 65535)

    def tcp_options(self, syn: bool) -> bytes:
        r = self.r
        k = r.randrange(8)
        if k == 0:
            return b""
        if k == 1:
            return struct.pack("!BBH", 2, 4, self.pick(0, 1, 8, 88, 536, 1460, 65535))
        if k == 2:
            return bytes((2, self.pick(0, 1, 3, 5, 40, 255))) + r.randbytes(r.randrange(0, 8))
        if k == 3:
            return bytes((self.pick(0, 1, 2, 3, 8, 30, 254), self.pick(0, 1, 2))) * r.randrange(1, 10)
        if k == 4:
            return b"\x01" * r.randrange(1, 41)
        return r.randbytes(r.randrange(0, 41))

    def l4(self, proto: int, plen: int) -> bytes:
        r = self.r
        if proto == 6:
            flags = self.pick(0x10, 0x18, 0x02, 0x12, 0x03, 0x01, 0x11, 0x20, 0x38, 0x3F, 0xFF, 0xC2,
                              r.randrange(256))
            opts = self.tcp_options(bool(flags & 2))
            opts = opts[:40]
            if len(opts) % 4 and r.random() < 0.7:
                opts += b"\x00" * (4 - len(opts) % 4)
            doff = (20 + len(opts)) // 4
            if r.random() < 0.25:
                doff = self.pick(0, 1, 4, 5, 15, r.randrange(16))
            urg = self.pick(0, 0, 1, 0xFFFF, r.randrange(65536))
            hdr = struct.pack("!HHIIBBHHH", self.pick(80, 5001, r.randrange(65536)),
                              self.pick(40000, r.randrange(65536)), r.getrandbits(32),
                              r.getrandbits(32), (doff & 15) << 4 | r.randrange(16) * (r.random() < 0.1),
                              flags, r.randrange(65536), r.randrange(65536), urg)
            return hdr + opts + r.randbytes(plen) if plen < 4096 else hdr + opts + bytes(plen)
        if proto == 17:
            ulen = self.pick(8 + plen, 0, 7, 8, 65535, r.randrange(65536))
            return struct.pack("!HHHH", r.randrange(65536), self.pick(53, 4789, r.randrange(65536)),
                               ulen & 0xFFFF, r.randrange(65536)) + bytes(plen)
        return r.randbytes(min(plen, 256)) + bytes(max(0, plen - 256))

    def ipv4(self) -> bytes:
        r = self.r
        proto = self.pick(6, 6, 6, 17, 17, 1, 0, 41, r.randrange(256))
        body = self.l4(proto, self.payload_len())
        ihl = 5
        opts = b""
        if r.random() < 0.15:
            opts = r.randbytes(4 * r.randrange(1, 11))
            ihl = 5 + len(opts) // 4
        if r.random() < 0.1:
            ihl = self.pick(0, 1, 4, 15, r.randrange(16))
        total = 20 + len(opts) + len(body)
        if r.random() < 0.3:
            total = self.pick(0, 1, 19, 20, 40, total - 1, total + 1, total + 1000, 65535,
                              r.randrange(65536))
        frag = self.pick(0x4000, 0x4000, 0, 0x2000, 0x0001, 0x2000 | 185, r.randrange(65536))
        hdr = struct.pack("!BBHHHBBH4s4s", (self.pick(4, 4, 4, 6, 0, 15) << 4) | (ihl & 15),
                          r.randrange(256), total & 0xFFFF, r.randrange(65536), frag,
                          r.randrange(256), proto, 0, PEER_IP, GUEST_IP) + opts
        if r.random() < 0.8:
            c = _csum(hdr)
            hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
        return b"\x08\x00" + hdr + body

    def ipv6(self) -> bytes:
        r = self.r
        chain = []
        k = r.randrange(6)
        if k >= 3:
            n = self.pick(1, 2, 3, 8, 9, 50, 200)
            for _ in range(n):
                chain.append(self.pick(0, 43, 60, 44, 60, 0, 51, 50, r.randrange(256)))
        final = self.pick(6, 6, 17, 58, 59, r.randrange(256))
        ext = b""
        nexts = chain[1:] + [final]
        for h, nh in zip(chain, nexts):
            if h == 44:  # fragment header: fixed 8 bytes
                ext += struct.pack("!BBHI", nh, 0, self.pick(0, 1, 8, r.randrange(65536)), r.getrandbits(32))
            else:
                hl = self.pick(0, 0, 1, 255, r.randrange(8))
                ext += bytes((nh, hl)) + r.randbytes(min(6 + 8 * hl, 64)) + bytes(max(0, 6 + 8 * hl - 64))
            if len(ext) > 60000:
                break
        first = chain[0] if chain else final
        body = ext + self.l4(final, self.payload_len())
        plen = len(body)
        if r.random() < 0.3:
            plen = self.pick(0, 1, 8, 20, plen - 1, plen + 1, 65535, r.randrange(65536))
        hdr = struct.pack("!IHBB16s16s", (self.pick(6, 6, 6, 4, 0) << 28) | r.getrandbits(20),
                          plen & 0xFFFF, first, 64, b"\xfd" + bytes(14) + b"\x02",
                          b"\xfd" + bytes(14) + b"\x01")
        return b"\x86\xdd" + hdr + body

    def frame(self):
        r = self.r
        dst = self.pick(self.card, self.card, self.card, b"\xff" * 6, b"\x01\x00\x5e\x00\x00\x01",
                        r.randbytes(6))
        src = self.pick(PEER, PEER, PEER, self.card, r.randbytes(6))
        tags = b""
        ntag = self.pick(0, 0, 0, 0, 1, 2, 3, 8)
        for _ in range(ntag):
            tags += struct.pack("!HH", self.pick(0x8100, 0x88A8, 0x9100), r.randrange(65536))
        k = r.randrange(10)
        if k < 5:
            l3 = self.ipv4()
        elif k < 8:
            l3 = self.ipv6()
        elif k < 9:
            l3 = b"\x08\x06" + r.randbytes(28)
        else:
            l3 = r.randbytes(2) + bytes(self.payload_len())
        f = dst + src + tags + l3
        if r.random() < 0.1:
            f = f[: r.randrange(0, len(f) + 1)]
        f = f[:65535]
        meta = None
        if r.random() < 0.4:
            gso_type = self.pick(0, 1, 1, 4, 3, 5, r.randrange(8))
            meta = PacketMeta(gso_type, self.pick(0, 1, 8, 536, 1448, 1460, 9000, 65535, r.randrange(65536))
                              if gso_type else 0,
                              r.random() < 0.5, self.pick(34, 54, 38, 0, 65535, r.randrange(65536)),
                              self.pick(16, 6, 0, 65535, r.randrange(65536)), r.random() < 0.3)
        return f, meta

    def syn(self) -> bytes:
        """A SYN the card transmits (guest side) with an adversarial MSS option."""
        r = self.r
        opts = struct.pack("!BBH", 2, self.pick(4, 4, 4, 0, 1, 2, 40), self.pick(0, 1, 48, 536, 1460, 65535))
        opts += b"\x00" * (-len(opts) % 4)
        tcp = struct.pack("!HHIIBBHHH", 40000, self.pick(80, 5001), r.getrandbits(32), 0,
                          (5 + len(opts) // 4) << 4, 0x02, 65535, 0, 0) + opts
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, GUEST_IP, PEER_IP)
        return PEER + self.card + b"\x08\x00" + ip + tcp


class HostileBackend(Backend):
    """Hands out generated packets, a few per poll, at increasing emulated times."""

    name = "hostile"

    def __init__(self, gen: FrameGen, count: int, *, spacing_ns: int):
        super().__init__()
        self.gen = gen
        self.left = count
        self.spacing = spacing_ns
        self.t = 0
        self.sent = 0

    def send(self, frame, t_ns):
        self.sent += 1
        self._tx_ok(frame)
        return True

    def poll(self, now_ns, limit=64):
        out = []
        while self.left and len(out) < limit and self.t <= now_ns:
            f, meta = self.gen.frame()
            self._rx(f)
            out.append(Packet(self.t, f, meta))
            self.left -= 1
            self.t += self.spacing
        return out

    def next_deadline(self):
        return self.t if self.left else None


class Violation(AssertionError):
    pass


class LogCounter(logging.Handler):
    """Counts records per (logger, message template): the bridge must log a condition once."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.counts = collections.Counter()

    def emit(self, record):
        # one condition = template + its non-numeric arguments (an exception by its type)
        args = tuple(type(a).__name__ if isinstance(a, BaseException) else a
                     for a in (record.args or ()) if not isinstance(a, int))
        self.counts[(record.name, record.msg, args)] += 1


def _tags(frame) -> int:
    """802.1Q/802.1ad tags at the front (at most 2 count towards the 1522-byte wire maximum)."""
    n = 0
    off = 12
    while n < 2 and len(frame) >= off + 2 and frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        n += 1
        off += 4
    return n


def run_episode(seed: int, episode: int, frames: int) -> dict:
    rng = random.Random(f"a2065-network/{seed}/{episode}")
    delivery = rng.choice(("lossless", "hardware"))
    timing = rng.choice(("fast", "fast", "wire"))
    card = bytes.fromhex("008010") + rng.randbytes(3)
    gen = FrameGen(rng, card)
    backend = HostileBackend(gen, frames, spacing_ns=rng.choice((0, 1000, 50_000, 200_000)))
    runner = Runner(backend, policy="segment", delivery=delivery, timing=timing, mac=card,
                    queue_frames=rng.choice((16, 256, 1024)),
                    queue_bytes=rng.choice((64 * 1024, 2 * 1024 * 1024)))
    chip = runner.chip
    offered = []
    tagged_over = []
    real_receive = chip.receive

    def guarded_receive(frame, *, has_fcs=False):
        n = len(frame)
        if has_fcs or not 60 <= n <= ETH_MAX + 4 * _tags(frame):
            raise Violation(f"a {n}-byte frame (has_fcs={has_fcs}, {_tags(frame)} VLAN tags) "
                            f"reached the chip")
        if n > ETH_MAX:
            tagged_over.append(n)
        offered.append(n)
        return real_receive(frame, has_fcs=has_fcs)

    chip.receive = guarded_receive
    got = []
    runner.on_receive = lambda f, t: got.append(len(f))
    bridge = runner.bridge
    steps = 0
    logs = LogCounter()
    blog = logging.getLogger("a2065.bridge")
    blog.addHandler(logs)
    old_prop, blog.propagate = blog.propagate, False
    try:
        return _drive(rng, gen, backend, runner, bridge, chip, offered, tagged_over, got, logs)
    finally:
        blog.removeHandler(logs)
        blog.propagate = old_prop


def _drive(rng, gen, backend, runner, bridge, chip, offered, tagged_over, got, logs):
    frames = backend.left
    steps = 0
    for i in range(frames * 4 + 100):
        if rng.random() < 0.02:
            runner.driver.send(gen.syn())  # MSS learning with adversarial values
        t = runner.next_deadline()
        if t is None:
            if backend.left == 0 and bridge.queued == 0:
                break
            t = runner.now + 1_000_000
        t = max(t, runner.now + (rng.choice((0, 0, 1000, 100_000)) if bridge.queued else 0))
        runner.step(t)
        steps += 1
        s = bridge.stats()
        if s["frames_in"] != s["delivered"] + s["queued"] + s["dropped_total"]:
            raise Violation(f"bridge counters do not add up: {s}")
        if any(not isinstance(k, str) or not k for k in s["dropped"]):
            raise Violation(f"unnamed drop reason in {s['dropped']}")
        if s["queued"] > bridge.queue_frames or s["queued_bytes"] > bridge.queue_bytes:
            raise Violation("queue over its bounds")
        if not chip.counters_balanced():
            raise Violation(f"chip counters do not add up: {chip.counters}")
        if got and max(got) > ETH_MAX + 8:
            raise Violation(f"driver received a {max(got)}-byte frame")
        if backend.left == 0 and bridge.queued == 0 and runner.board.next_deadline() is None:
            break
    repeated = {k: v for k, v in logs.counts.items() if k[0] == "a2065.bridge" and v > 1}
    if repeated:
        raise Violation(f"the bridge logged a condition more than once: {repeated}")
    s = bridge.stats()
    return {"frames": frames - backend.left, "received_bytes": s["received_bytes"],
            "super_packets": s["super_packets"], "segmented": s["segmented"],
            "segments_made": s["segments_made"], "delivered": s["delivered"],
            "dropped": s["dropped"], "max_offered": max(offered) if offered else 0,
            "driver_frames": len(got), "vlan_over_1514": len(tagged_over), "mss_learned": s["mss_learned"], "steps": steps,
            "log_records": sum(logs.counts.values()), "delivery": runner.bridge.delivery,
            "timing": runner.timing}


class CampaignFailure(Exception):
    def __init__(self, seed, episode, exc):
        self.exc = exc
        super().__init__(f"seed {seed} episode {episode}: {type(exc).__name__}: {exc} -- replay: "
                         f"python3 -m tools.campaign_network --seed {seed} --episode {episode}")


def run(seed: int, frames: int, *, episode_frames: int = 500, first_episode: int = 0,
        progress=None, keep_going=False) -> dict:
    t0 = time.monotonic()
    tot = {"frames": 0, "received_bytes": 0, "super_packets": 0, "segmented": 0,
           "segments_made": 0, "delivered": 0, "driver_frames": 0, "mss_learned": 0,
           "vlan_over_1514": 0,
           "dropped": {}, "max_offered": 0, "episodes": 0, "failures": []}
    ep = first_episode
    while tot["frames"] < frames:
        n = min(episode_frames, frames - tot["frames"])
        try:
            r = run_episode(seed, ep, n)
        except (Violation, DriverHang, Exception) as e:  # noqa: BLE001 - any escape is a finding
            f = CampaignFailure(seed, ep, e)
            tot["failures"].append(str(f))
            print(f"FAIL {f}", file=sys.stderr, flush=True)
            if not keep_going:
                raise f from e
            r = {"frames": n}
        for k in ("frames", "received_bytes", "super_packets", "segmented", "segments_made",
                  "delivered", "driver_frames", "mss_learned", "vlan_over_1514"):
            tot[k] += r.get(k, 0)
        for k, v in r.get("dropped", {}).items():
            tot["dropped"][k] = tot["dropped"].get(k, 0) + v
        tot["max_offered"] = max(tot["max_offered"], r.get("max_offered", 0))
        tot["episodes"] += 1
        ep += 1
        if progress and tot["episodes"] % 20 == 0:
            progress(tot, time.monotonic() - t0)
    tot["seconds"] = round(time.monotonic() - t0, 1)
    tot["seed"] = seed
    return tot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--episode-frames", type=int, default=500)
    ap.add_argument("--episode", type=int, help="replay just this episode")
    ap.add_argument("--keep-going", action="store_true")
    ap.add_argument("--report")
    a = ap.parse_args(argv)
    if a.episode is not None:
        print(json.dumps(run_episode(a.seed, a.episode, a.episode_frames)))
        return 0

    def progress(t, secs):
        print(f"[network] {t['frames']:,} frames, {t['received_bytes'] / 1e6:.0f} MB, "
              f"{t['segments_made']:,} segments, {secs:.0f} s, failures {len(t['failures'])}",
              file=sys.stderr, flush=True)

    try:
        r = run(a.seed, a.frames, episode_frames=a.episode_frames, progress=progress,
                keep_going=a.keep_going)
    except CampaignFailure as f:
        print(f"FAIL {f}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=1))
    if a.report:
        Path(a.report).write_text(json.dumps(r, indent=1) + "\n")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
