#!/usr/bin/env python3
"""Scale benchmark: many emulated machines across hosts and many cards per process (issue 13).

    python bench/scale.py --json FILE [--quick] [--plot PNG]     (root: network namespaces, TAP)

Two hosts simulated as network namespaces on one veth LAN, joined by vxvde (libvdeplug 4's
distributed plug; no switch process), drawn in a2065/rig/vde_hosts.py.

Part 1, across hosts: 4 cards per host in 2 card processes per host (a `MultiCard` loop each),
each card's guest kernel in a namespace of its own behind a TAP. Every guest pings every other
(56 ordered pairs): ``pairs_reachable_fraction``. Then 28 TCP streams at once, one per pair of
guests (2 MB each; --quick 256 KB), SHA-256 checked at both ends: ``aggregate_goodput_Bps`` is
the bytes that arrived intact / (first connection .. last stream end).

Part 2, many cards in one process: N = 1, 2, 4, 8 cards in one `MultiCard` loop on host A, each
with its own `Vde` plug and its own guest; host A's kernel (on the vde_plug TAP endpoint) sends
one TCP stream to every guest at once for D seconds (6; --quick 3). ``cpu_us_per_frame_by_cards``
is the card process's loop-thread CPU time / frames its cards moved (received from the network +
transmitted to it); ``goodput_by_cards_Bps`` the sum of the receivers' goodputs.

``bytes_lost``: bytes senders wrote that did not arrive intact at their receiver, both parts.
Writes FILE (JSON), prints a table, draws a PNG (matplotlib, the bench extra) at --plot or beside
FILE as scale_cards.png; nothing is written into the source tree unless asked to.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

CARD_COUNTS = (1, 2, 4, 8)


def across_hosts(nbytes: int, log_dir: str) -> dict:
    from a2065.rig import stream_bytes
    from a2065.rig.core import kernel_ping
    from a2065.rig.vde_hosts import TwoHosts, stream_seed
    with TwoHosts(cards_per_host=4, procs_per_host=2, log_dir=log_dir) as th:
        g = th.guests
        pairs = [(a, b) for a in g for b in g if a is not b]
        ok = sum(kernel_ping(a.ns, b.ip, timeout=5) for a, b in pairs)
        flows = [(a.index, b.index) if (a.index + b.index) % 2 else (b.index, a.index)
                 for a in g for b in g if a.index < b.index]
        res = th.mesh(flows, nbytes, timeout=300)
        intact = lost = 0
        for (s, d), (sent, got) in res.items():
            wrote = sent["bytes"] if sent else 0
            want = hashlib.sha256(stream_bytes(stream_seed(s, d), wrote)).hexdigest()
            if got and got["bytes"] == wrote and got["sha256"] == want and got["eof"]:
                intact += wrote
            else:
                lost += wrote - (got["bytes"] if got and got["sha256"] == want else 0)
        span = th.mesh_span_ns
        stats = [c.finish() for h in (0, 1) for c in th.cards[h]]
        frames = sum(st["frames"] for st in stats)
        cpu = sum(st["cpu_seconds"] for st in stats)
        return {"hosts": th.hosts, "cards": len(g), "card_processes": len(stats),
                "url": th.url, "pairs": len(pairs), "pairs_reachable": ok,
                "pairs_reachable_fraction": ok / len(pairs), "streams": len(flows),
                "stream_bytes": nbytes, "bytes_intact": intact, "bytes_lost": lost,
                "span_seconds": span / 1e9 if span else None,
                "aggregate_goodput_Bps": int(intact * 1e9 / span) if span else None,
                "frames": frames, "cpu_seconds": cpu,
                "cpu_us_per_frame": cpu * 1e6 / frames if frames else None}


def cards_in_one_process(n: int, seconds: float, log_dir: str) -> dict:
    from a2065.rig import Rig, stream_bytes
    from a2065.rig.core import spawn_tool
    from a2065.rig.vde_hosts import TwoHosts
    with TwoHosts(cards_per_host=(n, 0), procs_per_host=1, log_dir=log_dir) as th:
        started = []
        for i, g in enumerate(th.guests):
            rx = spawn_tool(th.procs, g.ns, "tcp-recv", "--bind", g.ip, "--port", 5500 + i)
            started.append((g, 200 + i, rx))
        txs = [spawn_tool(th.procs, th.host_ns[0], "tcp-send", "--to", g.ip, "--port",
                          5500 + i, "--seed", seed, "--duration", seconds)
               for i, (g, seed, _rx) in enumerate(started)]
        goodput = lost = moved = 0
        for (g, seed, rx), tx in zip(started, txs):
            got, sent = Rig.result(rx, seconds + 120), Rig.result(tx, seconds + 120)
            want = hashlib.sha256(stream_bytes(seed, sent["bytes"])).hexdigest()
            if got["bytes"] == sent["bytes"] and got["sha256"] == want:
                moved += got["bytes"]
                goodput += got["goodput_Bps"]
            else:
                lost += sent["bytes"] - (got["bytes"] if got["sha256"] == want else 0)
        (proc,) = th.cards[0]
        st = proc.finish()
        cards = st["cards"]
        return {"cards": n, "goodput_Bps": goodput, "bytes": moved, "bytes_lost": lost,
                "frames": st["frames"], "cpu_seconds": st["cpu_seconds"],
                "seconds": st.get("seconds"), "loops": st["loops"],
                "cpu_us_per_frame": st["cpu_seconds"] * 1e6 / st["frames"] if st["frames"] else None,
                "rx_filtered": sum(c["chip"]["rx_filtered"] for c in cards),
                "tx_failed": sum(sum(c["backend"]["tx_failed"].values()) for c in cards)}


def draw(out: dict, path: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = out["by_cards"]
    ns = [r["cards"] for r in runs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(ns, [r["cpu_us_per_frame"] for r in runs], "o-")
    a1.set_xlabel("cards in one process")
    a1.set_ylabel("host CPU per frame (µs)")
    a1.set_ylim(bottom=0)
    a1.set_xticks(ns)
    a1.set_title("cost per frame")
    a2.plot(ns, [r["goodput_Bps"] / 1e6 for r in runs], "o-", label="aggregate")
    a2.plot(ns, [r["goodput_Bps"] / 1e6 / r["cards"] for r in runs], "s--", label="per card")
    a2.set_xlabel("cards in one process")
    a2.set_ylabel("TCP goodput (MB/s)")
    a2.set_ylim(bottom=0)
    a2.set_xticks(ns)
    a2.legend()
    a2.set_title("goodput (fast timing)")
    fig.suptitle("MultiCard: N cards, one loop, one Vde (vxvde) plug each", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="256 KB streams, 3 s per card count")
    ap.add_argument("--plot", help="PNG path (default: scale_cards.png beside --json)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/scale.py needs root (network namespaces and TAPs)", file=sys.stderr)
        return 2
    from a2065.rig.vde_hosts import vxvde_missing
    why = vxvde_missing()
    if why:
        print(f"bench/scale.py: {why}", file=sys.stderr)
        return 2
    nbytes = (256 if a.quick else 2048) * 1000
    seconds = 3.0 if a.quick else 6.0
    log_dir = tempfile.mkdtemp(prefix="a2065-scale-")
    t0 = time.monotonic()
    part1 = across_hosts(nbytes, log_dir)
    runs = [cards_in_one_process(n, seconds, log_dir) for n in CARD_COUNTS]
    out = {"command": "python bench/scale.py --json FILE" + (" --quick" if a.quick else ""),
           "host": platform.platform(), "cpus": os.cpu_count(), "timing": "fast",
           "hosts": part1["hosts"], "cards": part1["cards"],
           "pairs_reachable_fraction": part1["pairs_reachable_fraction"],
           "aggregate_goodput_Bps": part1["aggregate_goodput_Bps"],
           "cpu_us_per_frame_by_cards": {str(r["cards"]): r["cpu_us_per_frame"] for r in runs},
           "goodput_by_cards_Bps": {str(r["cards"]): r["goodput_Bps"] for r in runs},
           "bytes_lost": part1["bytes_lost"] + sum(r["bytes_lost"] for r in runs),
           "across_hosts": part1, "by_cards": runs, "stream_seconds": seconds,
           "wall_seconds": time.monotonic() - t0}
    Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    plot = a.plot or os.path.join(os.path.dirname(os.path.abspath(a.json)), "scale_cards.png")
    try:
        out["plot"] = draw(out, plot)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    except ImportError as e:
        print(f"no plot: matplotlib is missing ({e}); pip install .[bench]", file=sys.stderr)
    p = part1
    print(f"across hosts: {p['hosts']} hosts, {p['cards']} cards in {p['card_processes']} "
          f"processes; {p['pairs_reachable']}/{p['pairs']} pairs reachable; {p['streams']} "
          f"streams of {p['stream_bytes']:,} B: {p['aggregate_goodput_Bps'] or 0:,} B/s "
          f"aggregate, {p['bytes_lost']:,} B lost; {p['cpu_us_per_frame'] or 0:.1f} µs CPU/frame")
    print(f"{'cards':>5} {'goodput B/s':>14} {'frames':>9} {'cpu s':>7} {'µs/frame':>9} "
          f"{'filtered':>9} {'lost B':>7}")
    for r in runs:
        print(f"{r['cards']:>5} {r['goodput_Bps']:>14,} {r['frames']:>9,} {r['cpu_seconds']:>7.2f} "
              f"{r['cpu_us_per_frame'] or 0:>9.1f} {r['rx_filtered']:>9,} {r['bytes_lost']:>7,}")
    if out.get("plot"):
        print(f"plot: {out['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
