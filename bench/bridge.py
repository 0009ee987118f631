#!/usr/bin/env python3
"""Bridge benchmark: super-packets through `segment` into the card's receive queue.

    python bench/bridge.py --json FILE [--quick]

Figures (JSON keys):
  replay_MBps                 super-packet bytes/s replayed from the real-kernel fixture (in memory)
                              through Bridge.service (poll + segment + queue + hand-off to a sink
                              chip that takes every frame)
  super_packets_per_s         the same run in super-packets per second
  segment_us_per_super_packet segmentation as the bridge does it: one native.Segmenter.run (one
                              C call) into a pooled Segmenter, the frames as read-only memoryviews
                              into its buffer (bridge.policy.Segmentation.split);
                              segment_run_us_per_super_packet: run alone;
                              segment_take_us_per_super_packet: run + take (one bytes copy of the
                              output per super-packet, the bridge's hot path before issue 17);
                              segment_list_us_per_super_packet: native.segment() (list of bytes)
  bridge_overhead_us_per_64k  (bridge ingest time - segment_us) per super-packet, scaled to
                              64 KB: what the bridge adds on top of the segmentation; the worse
                              of tcp4 and tcp6 (each is in res["tcp4"] / res["tcp6"])
  stage_us_per_super_packet   {capture, segment, queue}: poll from the replay backend, segment
                              (pooled run + views), everything else up to the hand-off to the chip
  queue_ns_per_frame          the "queue" stage per frame: filter, policy, queue, delivery loop
                              and the sink chip's receive() call
  legacy_delivered_fraction   TCP stream bytes the guest got with drop-legacy / with segment
                              (board + Linux-style driver, fast timing)
  legacy_delivered_bytes_fraction  frame bytes delivered to the card, drop-legacy / segment
  card_fast_MBps              the same replay through bridge + card + driver (fast timing), guest
                              bytes per wall second (one run); card_fast_cpu_MBps: per second of
                              the thread's CPU time, best of 5 (includes the StreamCollector)
  afpacket_live_MBps          root only: a bulk TCP transfer between two namespaces captured with
                              AF_PACKET (vnet header) on the receiver's veth and run through the
                              bridge into a sink chip; kernel drops reported
  live_tcp_segment_wire_Bps   root only: kernel TCP sender -> veth -> `a2065 bridge` (AF_PACKET,
  live_tcp_legacy_wire_Bps    wire timing) -> card -> Linux-style driver -> guest TAP -> kernel
                              receiver; goodput with segment and with drop-legacy
Prints a table; --quick keeps the whole run well under two minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import native  # noqa: E402
from a2065.runners.replay import Capture, CaptureReplay, Runner, StreamCollector, read_capture  # noqa: E402
from pcap_backend.bridge import Bridge  # noqa: E402
from pcap_backend.bridge.policy import Segmentation  # noqa: E402

CAPTURES = ROOT / "fixtures" / "captures"
# In-process replay loops are timed with the thread's CPU clock (best of many repetitions): on the
# shared 2-vCPU VM wall-clock loops also count time spent descheduled.
CLOCK = time.thread_time_ns
CSUM_NONE, CSUM_PARTIAL = 0, 1


class SinkChip:
    """Takes every frame at once (the card's receive queue with a driver that keeps up)."""

    timing = "fast"
    mode = 0                 # MODE: no loopback, DTCR off
    padr = bytes(6)          # no INIT yet: the own-frame filter learns nothing from it

    def __init__(self):
        self.now = 0
        self.frames = 0
        self.bytes = 0
        self.transmit = None

    class _St:
        name = "ACCEPTED"

    ACCEPTED = _St()

    def rx_ready(self, length):
        return True

    def rx_idle_at(self):
        return self.now

    def receive(self, frame, *, has_fcs=False):
        self.frames += 1
        self.bytes += len(frame)
        return self.ACCEPTED


def _kwargs(meta):
    if meta is None:
        return {}
    kw = {"gso_size": meta.gso_size if meta.gso_type else 0}
    if meta.csum_partial:
        kw.update(csum=CSUM_PARTIAL, csum_start=meta.csum_start, csum_offset=meta.csum_offset)
    return kw


def bench_replay(packets, reps):
    """Replay + segment + queue figures over the super-packets of a capture (in memory)."""
    supers = [(f, m) for _ts, f, _o, m in packets if len(f) > 1514]
    n = len(supers)
    sbytes = sum(len(f) for f, _ in supers)
    # segmentation as the bridge does it: one Segmenter.run (C) + take (each frame copied out once,
    # as a view into one bytes copy); the bridge overhead is measured on top of this
    kws = [(f, _kwargs(m)) for f, m in supers]
    sg = native.Segmenter()
    run, take = sg.run, sg.take

    def best_of(fn):
        best = float("inf")
        for _ in range(reps):
            t = CLOCK()
            fn()
            best = min(best, CLOCK() - t)
        return best

    def seg_take():
        for f, kw in kws:
            take(run(f, **kw))

    # as the bridge cuts them: a pooled Segmenter, frames as read-only views into its buffer
    pool = Segmentation()
    split = pool.split
    args = [(f, kw.get("gso_size", 0), 0, kw.get("csum", CSUM_NONE), kw.get("csum_start", 0),
             kw.get("csum_offset", 0)) for f, kw in kws]

    def seg_bridge():
        for a in args:
            split(*a)

    def seg_run():
        for f, kw in kws:
            run(f, **kw)

    def seg_list():
        for f, kw in kws:
            native.segment(f, **kw)

    best_take = best_of(seg_take)
    best_seg = best_of(seg_bridge)
    best_run = best_of(seg_run)
    best_list = best_of(seg_list)
    # bridge ingest (filter + policy + segment + enqueue), queue emptied between rounds
    chip = SinkChip()
    br = Bridge(CaptureReplay([]), chip, queue_frames=1 << 20, queue_bytes=1 << 30)
    best_ing = float("inf")
    for _ in range(reps):
        t = CLOCK()
        ingest = br.ingest
        for f, m in supers:
            ingest(f, m)
        best_ing = min(best_ing, CLOCK() - t)
        br.queue.clear()
    # capture stage: polling the replay backend
    best_cap = float("inf")
    for _ in range(reps):
        be = CaptureReplay([p for p in packets if len(p[1]) > 1514], as_fast=True)
        t = CLOCK()
        while be.poll(0, 64):
            pass
        best_cap = min(best_cap, CLOCK() - t)
    # whole bridge: service() from the replay backend into the sink chip
    best_all = float("inf")
    for _ in range(reps):
        chip = SinkChip()
        be = CaptureReplay([p for p in packets if len(p[1]) > 1514], as_fast=True)
        br = Bridge(be, chip)
        t = CLOCK()
        while not be.exhausted or br.queued:
            br.service(0)
        best_all = min(best_all, CLOCK() - t)
        assert br.stats()["dropped_total"] == 0, br.stats()["dropped"]
        frames = br.stats()["segments_made"]
    avg = sbytes / n
    seg_us = best_seg / n / 1000
    ing_us = best_ing / n / 1000
    all_us = best_all / n / 1000
    cap_us = best_cap / n / 1000
    return {
        "super_packets": n,
        "super_packet_avg_bytes": round(avg),
        "segment_us_per_super_packet": round(seg_us, 2),
        "segment_run_us_per_super_packet": round(best_run / n / 1000, 2),
        "segment_take_us_per_super_packet": round(best_take / n / 1000, 2),
        "segment_list_us_per_super_packet": round(best_list / n / 1000, 2),
        "bridge_ingest_us_per_super_packet": round(ing_us, 2),
        "bridge_overhead_us_per_super_packet": round(ing_us - seg_us, 2),
        "bridge_overhead_us_per_64k": round((ing_us - seg_us) * 65536 / avg, 2),
        "stage_us_per_super_packet": {"capture": round(cap_us, 2), "segment": round(seg_us, 2),
                                      "queue": round(max(0.0, all_us - cap_us - seg_us), 2)},
        "service_us_per_super_packet": round(all_us, 2),
        "frames_per_super_packet": round(frames / n, 1),
        "queue_ns_per_frame": round(max(0.0, all_us - cap_us - seg_us) * 1000 / (frames / n)),
        "replay_MBps": round(sbytes / (best_all / 1e9) / 1e6, 1),
        "super_packets_per_s": round(n / (best_all / 1e9)),
        "segment_only_MBps": round(sbytes / (best_seg / 1e9) / 1e6, 1),
    }


def bench_card(packets, mac):
    """Full path (bridge + card + driver, fast timing) for both policies."""
    out = {}
    for policy in ("segment", "drop-legacy"):
        sc = StreamCollector()
        t = time.perf_counter()
        r = Runner(CaptureReplay(packets, start_ns=1_000_000), policy=policy, timing="fast",
                   mac=mac, on_receive=lambda f, ts: sc.add(f, ts))
        r.run()
        wall = time.perf_counter() - t
        s = r.stats()
        out[policy] = {"stream_bytes": len(sc.stream()), "guest_bytes": s["driver"]["rx_bytes"],
                       "delivered_bytes": s["bridge"]["delivered_bytes"], "wall_s": wall,
                       "sha256": sc.sha256()}
    # the same segment run, thread CPU time, best of 5: the wall-clock figure above swings 2-4x
    # on a shared machine
    best = float("inf")
    for _ in range(5):
        sc = StreamCollector()
        r = Runner(CaptureReplay(packets, start_ns=1_000_000), policy="segment", timing="fast",
                   mac=mac, on_receive=lambda f, ts: sc.add(f, ts))
        t = CLOCK()
        r.run()
        best = min(best, CLOCK() - t)
    seg, leg = out["segment"], out["drop-legacy"]
    return {
        "card_fast_cpu_MBps": round(seg["guest_bytes"] / (best / 1e9) / 1e6, 1),
        "legacy_delivered_fraction": round(leg["stream_bytes"] / seg["stream_bytes"], 4),
        "legacy_delivered_bytes_fraction": round(leg["delivered_bytes"] / seg["delivered_bytes"], 4),
        "card_fast_MBps": round(seg["guest_bytes"] / seg["wall_s"] / 1e6, 2),
        "segment_stream_sha256": seg["sha256"],
    }


def _live_capture(dev, ready_path, idle_s=0.5, max_s=60.0):
    """Runs in a forked child inside the receiver's namespace: AF_PACKET -> Bridge -> sink chip
    until the link has been idle for idle_s after traffic (or max_s). Returns plain counters."""
    from pcap_backend.backends.afpacket import AfPacket
    cap = AfPacket(dev)
    chip = SinkChip()
    br = Bridge(cap, chip, queue_frames=1 << 16, queue_bytes=256 << 20, backpressure=False)
    Path(ready_path).write_text("ready")
    first = last = None
    t_end = time.perf_counter() + max_s
    t_poll = t_seg = c_poll = c_seg = 0
    cpu = time.thread_time_ns
    while True:
        now = time.perf_counter()
        if now > t_end or (last is not None and now - last > idle_s):
            break
        c0, t0 = cpu(), time.perf_counter_ns()
        pkts = cap.poll(0, 64)
        c1, t1 = cpu(), time.perf_counter_ns()
        if not pkts:
            time.sleep(0.0002)
            continue
        for p in pkts:
            br.ingest(p.frame, p.meta)
        br._deliver()
        c2, t2 = cpu(), time.perf_counter_ns()
        t_poll += t1 - t0
        t_seg += t2 - t1
        c_poll += c1 - c0
        c_seg += c2 - c1
        last = time.perf_counter()
        if first is None:
            first = last
    s = br.stats()
    bs = cap.stats()
    cap.close()
    span = (last - first) if first is not None and last is not None and last > first else None
    return {"received": s["received"], "received_bytes": s["received_bytes"],
            "super_packets": s["super_packets"], "segments_made": s["segments_made"],
            "delivered_frames": chip.frames, "segment_failures": s["segment_failures"],
            "dropped": s["dropped"], "kernel_drops": bs.get("kernel_drops"), "span_s": span,
            "capture_us_per_packet": round(t_poll / max(1, s["received"]) / 1000, 2),
            "bridge_us_per_packet": round(t_seg / max(1, s["received"]) / 1000, 2),
            "capture_cpu_us_per_packet": round(c_poll / max(1, s["received"]) / 1000, 2),
            "bridge_cpu_us_per_packet": round(c_seg / max(1, s["received"]) / 1000, 2)}


def bench_afpacket(nbytes, seconds_max=60.0):
    """Live: TCP bulk A -> B between namespaces; a separate process captures with AF_PACKET (vnet
    header) on B's veth and runs every frame through the bridge into a sink chip."""
    if os.geteuid() != 0:
        return {"skipped": "needs root (network namespaces, AF_PACKET)"}
    try:
        import tempfile
        from a2065.rig import veth as netns
    except Exception as e:  # noqa: BLE001
        return {"skipped": f"helpers unavailable: {e}"}
    try:
        with netns.veth_namespaces() as topo, tempfile.TemporaryDirectory() as tmp:
            ready = Path(tmp) / "ready"
            result = {}

            def child():
                try:
                    result["r"] = netns.run_in_ns(topo.ns_b, _live_capture, topo.dev_b, str(ready),
                                                  timeout=seconds_max + 30)
                except Exception as e:  # noqa: BLE001
                    result["err"] = e

            th = threading.Thread(target=child, daemon=True)
            th.start()
            for _ in range(500):
                if ready.exists():
                    break
                time.sleep(0.01)
            t0 = time.perf_counter()
            received = netns.tcp_bulk(topo, nbytes, chunk=1 << 20, timeout=seconds_max)
            t1 = time.perf_counter()
            th.join(seconds_max + 30)
            if "err" in result:
                return {"skipped": f"capture child failed: {result['err']}"}
            r = result["r"]
            r.update({
                "afpacket_live_MBps": round(r["received_bytes"] / r["span_s"] / 1e6, 1) if r["span_s"] else 0.0,
                "transfer_MBps": round(nbytes / (t1 - t0) / 1e6, 1),
                "tcp_complete": len(received) == nbytes,
                "bytes": nbytes,
            })
            return r
    except Exception as e:  # noqa: BLE001 - a bench reports, it does not crash
        return {"skipped": f"{type(e).__name__}: {e}"}


_SERVER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.0.2", 5000)); s.listen(1); s.settimeout(90)
c, _ = s.accept(); c.settimeout(90); n = 0; t = time.perf_counter()
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
print(n, time.perf_counter() - t)
"""

_CLIENT = """
import random, socket, sys, time
data = random.Random(2065).randbytes(int(sys.argv[1]))
for _ in range(50):
    try:
        c = socket.create_connection(("10.9.0.2", 5000), timeout=90); break
    except OSError:
        time.sleep(0.1)
c.sendall(data); c.close()
"""


def bench_live_tcp(policy, nbytes, timing="wire"):
    """Root: a kernel TCP sender in one namespace, `a2065 bridge` (AF_PACKET) on the far end of
    the veth, the card + Linux-style driver, and the receiving kernel behind a guest TAP.
    Returns the receiver's goodput (bytes / time from accept to EOF)."""
    import signal
    import subprocess
    if os.geteuid() != 0:
        return {"skipped": "needs root (network namespaces, AF_PACKET, TAP)"}
    try:
        from a2065.rig.veth import bridged_namespaces
        with bridged_namespaces("a2b", ["--policy", policy, "--timing", timing],
                                duration=200) as t:
            br = t.bridge
            srv = subprocess.Popen(["ip", "netns", "exec", t.ns_b, sys.executable, "-c", _SERVER],
                                   stdout=subprocess.PIPE, text=True)
            t.procs.append(srv)
            subprocess.run(["ip", "netns", "exec", t.ns_a, sys.executable, "-c", _CLIENT,
                            str(nbytes)], check=True, capture_output=True, timeout=120)
            out, _ = srv.communicate(timeout=120)
            n, dt = out.split()
            br.send_signal(signal.SIGINT)
            bout, _ = br.communicate(timeout=30)
            st = json.loads(bout)["bridge"]
            return {"policy": policy, "timing": timing, "bytes": int(n),
                    "seconds": round(float(dt), 3), "goodput_Bps": round(int(n) / float(dt)),
                    "complete": int(n) == nbytes, "super_packets": st["super_packets"],
                    "segments_made": st["segments_made"], "dropped": st["dropped"]}
    except Exception as e:  # noqa: BLE001 - a bench reports, it does not crash
        return {"skipped": f"{type(e).__name__}: {e}"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (well under 2 minutes)")
    ap.add_argument("--no-live", action="store_true", help="skip the AF_PACKET namespace run")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    reps = 5 if args.quick else 20
    res = {"bench": "bridge", "quick": args.quick, "native": native.IMPLEMENTATION,
           "python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # Both captures are read before either is timed: the heap then looks the same for both
    # (reading tcp4 alone before timing once made every later 68 KB allocation page-fault).
    caps = {name: read_capture(CAPTURES / f"{name}_tso.pcapng") for name in ("tcp4", "tcp6")}
    for name in ("tcp4", "tcp6"):
        cap = caps[name]
        pk = cap.direction("auto")
        r = bench_replay(pk, reps * 10)  # ~45 super-packets per repetition: ~1 ms loops
        res[name] = r
        if name == "tcp4":
            res.update({k: r[k] for k in ("replay_MBps", "super_packets_per_s",
                                          "bridge_overhead_us_per_64k", "stage_us_per_super_packet",
                                          "segment_us_per_super_packet")})
            card = bench_card(pk, Capture.guest_mac(pk))
            res.update(card)
            res["segment_stream_verified"] = card["segment_stream_sha256"] == cap.sha256
    res["bridge_overhead_us_per_64k"] = max(res["tcp4"]["bridge_overhead_us_per_64k"],
                                            res["tcp6"]["bridge_overhead_us_per_64k"])
    if not args.no_live:
        live = bench_afpacket((64 if args.quick else 256) << 20)
        res["afpacket"] = live
        if "afpacket_live_MBps" in live:
            res["afpacket_live_MBps"] = live["afpacket_live_MBps"]
    if not args.no_live:
        seg = bench_live_tcp("segment", (2 if args.quick else 10) * 1_000_000)
        leg = bench_live_tcp("drop-legacy", 50_000 if args.quick else 100_000)
        res["live_tcp"] = {"segment": seg, "drop-legacy": leg}
        if "goodput_Bps" in seg:
            res["live_tcp_segment_wire_Bps"] = seg["goodput_Bps"]
        if "goodput_Bps" in leg:
            res["live_tcp_legacy_wire_Bps"] = leg["goodput_Bps"]
    res["wall_s"] = round(time.perf_counter() - t_start, 2)

    rows = [
        ("segment() implementation", res["native"]),
        ("replay into the queue (tcp4)", f"{res['replay_MBps']:,} MB/s, {res['super_packets_per_s']:,} super-packets/s"),
        ("replay into the queue (tcp6)", f"{res['tcp6']['replay_MBps']:,} MB/s"),
        ("segment per super-packet", f"{res['segment_us_per_super_packet']} us (pooled Segmenter.run + views; run alone "
                                     f"{res['tcp4']['segment_run_us_per_super_packet']} us, native.segment() "
                                     f"{res['tcp4']['segment_list_us_per_super_packet']} us, run + take "
                                     f"{res['tcp4']['segment_take_us_per_super_packet']} us)"),
        ("bridge overhead per 64 KB", f"{res['bridge_overhead_us_per_64k']} us, the worse of tcp4 "
                                      f"{res['tcp4']['bridge_overhead_us_per_64k']} us and tcp6 "
                                      f"{res['tcp6']['bridge_overhead_us_per_64k']} us"),
        ("stages per super-packet", ", ".join(f"{k} {v} us" for k, v in res["stage_us_per_super_packet"].items())
                                    + f" ({res['tcp4']['frames_per_super_packet']} frames: "
                                    f"{res['tcp4']['queue_ns_per_frame']} ns per frame after segmentation)"),
        ("card + driver, fast timing", f"{res['card_fast_MBps']} MB/s wall, {res['card_fast_cpu_MBps']} MB/s CPU "
                                       f"(stream verified: {res['segment_stream_verified']})"),
        ("legacy delivered fraction", f"{res['legacy_delivered_fraction']} of the stream, "
                                      f"{res['legacy_delivered_bytes_fraction']} of the bytes"),
    ]
    live = res.get("afpacket", {})
    if "afpacket_live_MBps" in live:
        rows.append(("AF_PACKET live capture+segment", f"{live['afpacket_live_MBps']} MB/s, kernel drops "
                     f"{live['kernel_drops']}, {live['super_packets']} super-packets, TCP complete {live['tcp_complete']}"))
    elif live:
        rows.append(("AF_PACKET live capture+segment", f"skipped: {live.get('skipped')}"))
    for pol, r in res.get("live_tcp", {}).items():
        if "goodput_Bps" in r:
            rows.append((f"live TCP via a2065 bridge, {pol}", f"{r['goodput_Bps']:,} B/s "
                         f"({r['bytes']:,} B in {r['seconds']} s, wire timing, complete {r['complete']})"))
        else:
            rows.append((f"live TCP via a2065 bridge, {pol}", f"skipped: {r.get('skipped')}"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")
    print(f"{'wall time'.ljust(w)}  {res['wall_s']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
