#!/usr/bin/env python3
"""End-to-end goodput benchmark (issue 7): real kernel TCP/UDP through the emulated A2065.

    python bench/e2e.py --json FILE [--quick] [--seconds S] [--plots DIR]     (root)

The rig (a2065/rig/core.py): namespace `server` (kernel offloads at defaults, TSO/GSO on) -- veth --
namespace `wire` (AF_PACKET backend) -- Bridge -- A2065 + Am7990 -- LinuxA2065Driver -- TAP in
namespace `guest` (MTU 1500, offloads off). The card's loop runs in this process (a thread);
senders and receivers are separate processes in their namespaces. One fresh rig per run.

Runs (S = 20 s, --quick 5 s; the sender sends for S seconds, the receiver measures):
  wire_ipv4        server -> guest, IPv4, wire timing, segment
  wire_ipv6        server -> guest, IPv6, wire timing, segment
  legacy_ipv4      server -> guest, IPv4, wire timing, drop-legacy (receiver stops after S s)
  fast_ipv4        server -> guest, IPv4, fast timing, segment (median of 3 runs; --quick 1)
  guest_to_server  guest -> server, IPv4, wire timing, segment
  guest_to_server_ipv6  the same over IPv6
  udp              5 Mb/s and 20 Mb/s datagram streams server -> guest (wire timing)

JSON keys: wire_ipv4_goodput_Bps, wire_ipv6_goodput_Bps, legacy_ipv4_goodput_Bps,
fast_ipv4_goodput_Bps, guest_to_server_wire_goodput_Bps, bytes_lost (sum over the segment runs of
bytes sent but not received intact: SHA-256 of the stream at both ends), plus per run `runs[name]`
(bytes, sha match, goodput, series = [[seconds, goodput B/s over the sample interval], ...],
bridge/driver/chip counters, loop CPU) and `udp`. Goodput = stream bytes the receiving
application got / (last byte - first byte); for drop-legacy, which never finishes, bytes / S.
--plots DIR draws the PNGs into DIR with bench/plots.py when matplotlib is there; nothing is
written anywhere else (`a2065 bench` passes its --out).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from a2065.rig import Rig  # noqa: E402

LIMIT_TS_V4 = 1_176_853   # 10BASE-T TCP goodput limit, IPv4 with timestamps (reference)
LIMIT_TS_V6 = 1_160_598
REFERENCE = {"old_bridge_Bps": [3_000, 7_000], "fixed_c_bridge_lan_Bps": 885_000,
             "a4000_040_a2065_Bps": [400_000, 600_000], "tcp_limit_ipv4_ts_Bps": LIMIT_TS_V4}


def _series(samples, first_ns):
    out = []
    for (t0, b0), (t1, b1) in zip(samples, samples[1:]):
        if t1 > t0:
            out.append([round((t1 - first_ns) / 1e9, 3), int((b1 - b0) * 1e9 / (t1 - t0))])
    return out


def _progress(name, proc, lb, timeout):
    """On a terminal, one status line while a run lasts (quiet when stderr is piped)."""
    if not sys.stderr.isatty():
        return
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        el = time.monotonic() - t0
        b = lb.bridge.delivered_bytes + lb.bridge.transmitted_bytes
        sys.stderr.write(f"\r  {name:16s} {el:5.1f} s  {b / 1e6:9.1f} MB through the card  "
                         f"({b / max(el, 1e-3) / 1e3:,.0f} KB/s)")
        sys.stderr.flush()
        time.sleep(0.5)
    sys.stderr.write("\r" + " " * 78 + "\r")
    sys.stderr.flush()


def tcp_run(name, *, timing, policy, seconds, ipv6=False, to_guest=True, port=5001,
            verbose=True):
    with Rig(ipv6=True) as rig:
        with rig.card(timing=timing, policy=policy) as lb:
            if to_guest:
                rx_ns, tx_ns = "guest", "server"
                dst = rig.guest_ip6 if ipv6 else rig.guest_ip
            else:
                rx_ns, tx_ns = "server", "guest"
                dst = rig.server_ip6 if ipv6 else rig.server_ip
            legacy = policy == "drop-legacy"
            max_s = seconds + 2 if legacy else seconds + 60
            rx = rig.spawn(rx_ns, "tcp-recv", "--bind", "::" if ipv6 else "0.0.0.0", "--port",
                           port, "--max-seconds", max_s, "--sample-ms", 250)
            tx = rig.spawn(tx_ns, "tcp-send", "--to", dst, "--port", port, "--duration", seconds,
                           "--linger", 2 if legacy else 60)
            _progress(name, rx, lb, max_s + 60)
            got = Rig.result(rx, timeout=max_s + 60)
            sent = Rig.result(tx, timeout=max_s + 60)
        st = lb.stats()
    first = got["first_ns"] or got["end_ns"]
    if legacy or not got["eof"]:
        span = max(1, min(got["end_ns"] - first, int(seconds * 1e9))) if got["first_ns"] else int(seconds * 1e9)
        goodput = int(got["bytes"] * 1e9 / span)
    else:
        goodput = got["goodput_Bps"]
    intact = got["sha256"] == sent["sha256"] and got["bytes"] == sent["bytes"]
    b = st["bridge"]
    frames = max(1, st["guest"]["to_guest"] + st["guest"]["sent"])
    run = {
        "timing": timing, "policy": policy, "ipv6": ipv6, "direction": "server->guest" if to_guest else "guest->server",
        "seconds": seconds, "sent_bytes": sent["bytes"], "received_bytes": got["bytes"],
        "complete": bool(got["eof"]), "sha256_match": intact, "goodput_Bps": goodput,
        "bytes_lost": 0 if intact else max(0, sent["bytes"] - (got["bytes"] if got["sha256"] == sent["sha256"] else 0)),
        "series": _series(got["samples"], first) if got["samples"] else [],
        "bridge": {k: b[k] for k in ("received", "super_packets", "segments_made", "delivered",
                                     "delivered_bytes", "dropped", "dropped_total", "transmitted",
                                     "tx_failed", "queue_high_frames")},
        "backend_kernel_drops": st["backend"].get("kernel_drops"),
        "driver": {k: st["driver"][k] for k in ("rx_frames", "tx_frames", "interrupts", "resets")},
        "chip_balanced": st["chip"]["balanced"], "chip_missed": st["chip"]["rx_missed"],
        "guest": st["guest"],
        "loop_cpu_seconds": round(st["cpu_seconds"], 3), "loop_seconds": round(st.get("seconds", 0), 3),
        "loop_cpu_us_per_frame": round(st["cpu_seconds"] * 1e6 / frames, 2),
        "loop_sleep_seconds": round(st["sleep_seconds"], 3),
    }
    if verbose:
        print(f"  {name:16s} {goodput:>12,} B/s  {got['bytes']:>12,} B  "
              f"{'intact' if intact else ('prefix' if legacy else 'LOST')}", file=sys.stderr, flush=True)
    return run


def udp_run(rate_bps, count, *, rcvbuf=None, port=5010):
    kw = {"backend_kw": {"rcvbuf": rcvbuf}} if rcvbuf else {}
    with Rig(ipv6=False) as rig:
        with rig.card(timing="wire", policy="segment", **kw) as lb:
            warm = rig.spawn("guest", "udp-recv", "--port", port + 100, "--max-seconds", 5, "--idle", 0.5)
            rig.spawn("server", "udp-send", "--to", rig.guest_ip, "--port", port + 100, "--count", 3)
            Rig.result(warm, timeout=20)
            k0 = lb.backend.stats()["kernel_drops"]
            d0 = lb.bridge.stats()["dropped_total"]
            rx = rig.spawn("guest", "udp-recv", "--port", port, "--max-seconds", 120, "--idle", 2.0)
            tx = rig.spawn("server", "udp-send", "--to", rig.guest_ip, "--port", port, "--count",
                           count, "--size", 1400, "--rate-bps", rate_bps)
            sent = Rig.result(tx, timeout=120)
            got = Rig.result(rx, timeout=180)
            k1 = lb.backend.stats()["kernel_drops"]
            d1 = lb.bridge.stats()["dropped_total"]
        st = lb.stats()
    return {"offered_bps": rate_bps, "sent": sent["sent"], "received": got["received"],
            "bad": got["bad"], "lost": sent["sent"] - got["received"],
            "kernel_drops": k1 - k0, "bridge_drops": d1 - d0, "chip_balanced": st["chip"]["balanced"],
            "send_seconds": round(sent["seconds"], 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--quick", action="store_true", help="5 s transfers (under five minutes)")
    ap.add_argument("--seconds", type=float, help="transfer length (default 20, --quick 5)")
    ap.add_argument("--plots", metavar="DIR",
                    help="draw the PNGs into DIR with bench/plots.py (default: no plots)")
    ap.add_argument("--only", help="comma-separated run names")
    ap.add_argument("--fast-repeats", type=int, default=0,
                    help="fast-timing runs (median reported; default 3, --quick 1)")
    args = ap.parse_args(argv)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: rigs remove themselves
    if os.geteuid() != 0:
        print("bench/e2e.py: error: needs root (network namespaces, TAP, AF_PACKET); run with sudo",
              file=sys.stderr)
        return 2
    secs = args.seconds or (5.0 if args.quick else 20.0)
    only = set(args.only.split(",")) if args.only else None
    t0 = time.monotonic()
    load0 = os.getloadavg()
    plan = [
        ("wire_ipv4", dict(timing="wire", policy="segment"), 5101),
        ("wire_ipv6", dict(timing="wire", policy="segment", ipv6=True), 5102),
        ("legacy_ipv4", dict(timing="wire", policy="drop-legacy"), 5103),
        ("fast_ipv4", dict(timing="fast", policy="segment"), 5104),
        ("guest_to_server", dict(timing="wire", policy="segment", to_guest=False), 5105),
        ("guest_to_server_ipv6", dict(timing="wire", policy="segment", to_guest=False, ipv6=True), 5106),
    ]
    runs = {}
    fast_all = []
    repeats = args.fast_repeats if args.fast_repeats else (1 if args.quick else 3)
    print(f"e2e bench: {secs:g} s transfers", file=sys.stderr)
    for name, kw, port in plan:
        if only and name not in only:
            continue
        if name == "fast_ipv4":
            # fast timing depends on how much CPU the host gives the loop: median of `repeats`
            tries = [tcp_run(name, seconds=secs, port=port + 10 * k, **kw) for k in range(repeats)]
            fast_all = [t["goodput_Bps"] for t in tries]
            fast_lost = sum(t["bytes_lost"] for t in tries)
            tries.sort(key=lambda t: t["goodput_Bps"])
            runs[name] = tries[len(tries) // 2]
            runs[name]["repeats_goodput_Bps"] = fast_all
            runs[name]["repeats_intact"] = [t["sha256_match"] for t in tries]
            runs[name]["bytes_lost"] = fast_lost  # every repeat counts
        else:
            runs[name] = tcp_run(name, seconds=secs, port=port, **kw)
    udp = {}
    if not only or "udp" in only:
        n5 = int(5e6 / (1400 * 8) * min(secs, 5))
        udp["at_5Mbps"] = udp_run(5_000_000, n5)
        udp["at_20Mbps"] = udp_run(20_000_000, 4 * n5, rcvbuf=256 << 10, port=5011)
        print(f"  udp 5 Mb/s: {udp['at_5Mbps']['received']}/{udp['at_5Mbps']['sent']}; 20 Mb/s: "
              f"{udp['at_20Mbps']['received']}/{udp['at_20Mbps']['sent']} "
              f"(kernel drops {udp['at_20Mbps']['kernel_drops']})", file=sys.stderr)
    g = lambda n: runs[n]["goodput_Bps"] if n in runs else None  # noqa: E731
    res = {
        "bench": "e2e", "quick": bool(args.quick), "seconds": secs,
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "kernel": platform.release(), "loadavg_start": load0},
        "wire_ipv4_goodput_Bps": g("wire_ipv4"),
        "wire_ipv6_goodput_Bps": g("wire_ipv6"),
        "legacy_ipv4_goodput_Bps": g("legacy_ipv4"),
        "fast_ipv4_goodput_Bps": g("fast_ipv4"),
        "guest_to_server_wire_goodput_Bps": g("guest_to_server"),
        "guest_to_server_wire_ipv6_goodput_Bps": g("guest_to_server_ipv6"),
        "fast_ipv4_goodput_all_Bps": fast_all,
        "bytes_lost": sum(r["bytes_lost"] for n, r in runs.items() if r["policy"] == "segment"),
        "limits": {"tcp_ipv4_ts_Bps": LIMIT_TS_V4, "tcp_ipv6_ts_Bps": LIMIT_TS_V6,
                   "goal_wire_Bps": 1_120_000, "goal_fast_Bps": 50_000_000},
        "reference": REFERENCE,
        "runs": runs,
        "udp": udp,
        "elapsed_seconds": round(time.monotonic() - t0, 1),
    }
    res["machine"]["loadavg_end"] = os.getloadavg()
    rows = [(n, f"{r['timing']}/{r['policy']}", r["direction"] + (" v6" if r["ipv6"] else " v4"),
             f"{r['goodput_Bps']:,}", f"{r['received_bytes']:,}",
             "yes" if r["sha256_match"] else ("prefix" if r["policy"] == "drop-legacy" else "NO"))
            for n, r in runs.items()]
    hdr = ("run", "timing/policy", "direction", "goodput B/s", "bytes", "intact")
    w = [max(len(str(x[i])) for x in rows + [hdr]) for i in range(len(hdr))]
    print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        print("  ".join(str(c).rjust(w[i]) if i == 3 or i == 4 else str(c).ljust(w[i]) for i, c in enumerate(r)))
    print(f"bytes lost (segment runs): {res['bytes_lost']:,}; elapsed {res['elapsed_seconds']} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.plots:
        try:
            sys.path.insert(0, str(ROOT / "bench"))
            import plots
            for p in plots.draw(res, args.plots):
                print(f"plot: {p}")
        except ImportError as e:
            print(f"plots skipped ({e}); pip install matplotlib", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
