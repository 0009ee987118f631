#!/usr/bin/env python3
"""Campaign 4 on real kernels (root): the end-to-end rig (a2065/rig/core.py) at full speed for a while.

    sudo python3 -m tools.campaign_rig_soak --seconds 60             # the CI-sized run (root tests)
    sudo python3 -m tools.campaign_rig_soak --minutes 30 --report rig-soak.json

server namespace kernel TCP (TSO/GSO on) -- veth -- AF_PACKET -- Bridge -- A2065/Am7990 --
Linux-style driver -- TAP -- guest namespace kernel TCP. The card's live loop runs in this
process (a thread), so this process's RSS is the card's memory: sampled every --sample-seconds,
least-squares slope reported after a 20 % warm-up. Stalls: sampling intervals in which the
bridge delivered nothing while the sender was still sending. At the end: the receiver's SHA-256
equals the sender's, bridge/chip/driver/TAP counters are consistent, no MISS, no segment failure.
Only namespaces, veth and TAP devices the rig creates are used; everything is removed afterwards.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.campaign_soak import rss_kb, slope_per_minute  # noqa: E402


def run(*, seconds: float, timing: str = "fast", sample_seconds: float = 1.0, port: int = 5301,
        progress=None) -> dict:
    from a2065.rig import Rig
    samples = []
    delivered = []
    stalls = 0
    with Rig() as rig:
        with rig.card(timing=timing, policy="segment") as lb:
            rx = rig.spawn("guest", "tcp-recv", "--bind", "0.0.0.0", "--port", port,
                           "--max-seconds", seconds + 90)
            tx = rig.spawn("server", "tcp-send", "--to", rig.guest_ip, "--port", port,
                           "--duration", seconds)
            t0 = time.monotonic()
            last = None
            while tx.poll() is None and time.monotonic() - t0 < seconds + 60:
                time.sleep(sample_seconds)
                st = lb.stats()
                d = st["bridge"]["delivered"]
                wall = time.monotonic() - t0
                if last is not None and d == last and wall < seconds:
                    stalls += 1
                last = d
                samples.append((wall, rss_kb()))
                delivered.append((round(wall, 1), d))
                if progress:
                    progress(wall, d, samples[-1][1])
            sent = Rig.result(tx, timeout=120)
            got = Rig.result(rx, timeout=120)
        st = lb.stats()
    warm = samples[max(1, len(samples) // 5):] if len(samples) > 5 else samples
    b = st["bridge"]
    consistent = (b["frames_in"] == b["delivered"] + b["queued"] + b["dropped_total"]
                  and st["chip"]["balanced"] and st["chip"]["rx_missed"] == 0
                  and st["driver"]["rx_frames"] == b["delivered"]
                  and st["guest"]["to_guest_failed"] == 0 and st["error"] is None)
    return {
        "timing": timing, "seconds": seconds, "bytes_sent": sent.get("bytes"),
        "bytes_received": got.get("bytes"), "sha256_sent": sent.get("sha256"),
        "sha256_received": got.get("sha256"), "eof": got.get("eof"),
        "intact": got.get("sha256") == sent.get("sha256") and got.get("bytes") == sent.get("bytes"),
        "goodput_Bps": int((got.get("bytes") or 0) / max(seconds, 1e-9)),
        "super_packets": b["super_packets"], "segments_made": b["segments_made"],
        "delivered": b["delivered"], "dropped": b["dropped"],
        "segment_failures": b["segment_failures"], "kernel_drops": st["backend"].get("kernel_drops"),
        "counters_consistent": consistent, "stalls": stalls,
        "rss_kb_first": samples[0][1] if samples else None,
        "rss_kb_last": samples[-1][1] if samples else None,
        "rss_kb_max": max(v for _, v in samples) if samples else None,
        "rss_slope_kb_per_min": round(slope_per_minute(warm), 1), "rss_samples": len(samples),
        "samples": samples, "delivered_timeline": delivered,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--timing", choices=("fast", "wire"), default="fast")
    ap.add_argument("--sample-seconds", type=float, default=1.0)
    ap.add_argument("--report")
    a = ap.parse_args(argv)
    secs = a.minutes * 60 if a.minutes else a.seconds

    def progress(wall, d, rss):
        if int(wall) % 30 == 0:
            print(f"[rig-soak] {wall:.0f} s: {d} frames delivered, rss {rss} kB", file=sys.stderr,
                  flush=True)

    r = run(seconds=secs, timing=a.timing, sample_seconds=a.sample_seconds, progress=progress)
    print(json.dumps({k: v for k, v in r.items() if k not in ("samples", "delivered_timeline")},
                     indent=1))
    if a.report:
        Path(a.report).write_text(json.dumps(r, indent=1) + "\n")
    return 0 if r["intact"] and r["counters_consistent"] and r["stalls"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
