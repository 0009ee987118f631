#!/usr/bin/env python3
"""Goodput plots from bench/e2e.py's JSON (matplotlib, PNG).

    python bench/plots.py bench/results/e2e.json [--out DIR]     (default DIR: beside the JSON)

Writes
  e2e_goodput_time.png     goodput over time of every run (log scale), with the figures from the
                           original problem: old pcap bridges 3-7 KB/s, the fixed C bridge 885 KB/s
                           on a LAN, a real A4000/040 + A2065 400-600 KB/s, the 10BASE-T TCP limit
  e2e_goodput_summary.png  one bar per run beside the same reference figures
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LABELS = {
    "wire_ipv4": "wire, segment, IPv4, server->guest",
    "wire_ipv6": "wire, segment, IPv6, server->guest",
    "guest_to_server": "wire, segment, IPv4, guest->server",
    "guest_to_server_ipv6": "wire, segment, IPv6, guest->server",
    "legacy_ipv4": "wire, drop-legacy, IPv4, server->guest",
    "fast_ipv4": "fast, segment, IPv4, server->guest",
}


def draw(res: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ref = res.get("reference", {})
    runs = res.get("runs", {})
    paths = []

    def references(ax, horizontal=True):
        old = ref.get("old_bridge_Bps", [3000, 7000])
        a4k = ref.get("a4000_040_a2065_Bps", [400_000, 600_000])
        span = ax.axhspan if horizontal else ax.axvspan
        line = ax.axhline if horizontal else ax.axvline
        span(old[0], old[1], color="tab:red", alpha=0.15, label="old pcap bridges 3-7 KB/s")
        span(a4k[0], a4k[1], color="tab:green", alpha=0.15, label="real A4000/040 + A2065 400-600 KB/s")
        line(ref.get("fixed_c_bridge_lan_Bps", 885_000), color="tab:purple", ls="--",
             label="fixed C bridge on a LAN 885 KB/s")
        line(ref.get("tcp_limit_ipv4_ts_Bps", 1_176_853), color="black", ls=":",
             label="10BASE-T TCP limit 1,176,853 B/s")

    fig, ax = plt.subplots(figsize=(10, 6.5))
    references(ax)
    for name, r in runs.items():
        s = r.get("series") or []
        if not s:
            continue
        xs = [p[0] for p in s]
        ys = [max(p[1], 100) for p in s]
        ax.plot(xs, ys, lw=1.6, label=f"{LABELS.get(name, name)}: {r['goodput_Bps'] / 1e3:,.1f} KB/s")
    ax.set_yscale("log")
    ax.set_ylim(1e3, 2e8)
    ax.set_xlabel("seconds since the first byte")
    ax.set_ylabel("goodput (bytes/s, per 250 ms sample)")
    ax.set_title(f"A2065 emulation end to end: goodput over time ({res.get('seconds', '?')} s transfers, "
                 f"{res.get('date', '')} UTC)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=3)
    p = out / "e2e_goodput_time.png"
    fig.tight_layout()
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(10, 5.6))
    names = [n for n in LABELS if n in runs]
    vals = [max(runs[n]["goodput_Bps"], 1) for n in names]
    colors = ["tab:blue", "tab:cyan", "tab:olive", "tab:green", "tab:red", "tab:orange"][:len(names)]
    ax.barh([LABELS[n] for n in names], vals, color=colors)
    for i, v in enumerate(vals):
        ax.text(v * 1.08, i, f"{v / 1e3:,.1f} KB/s", va="center", fontsize=8)
    references(ax, horizontal=False)
    ax.set_xscale("log")
    ax.set_xlim(1e3, 3e8)
    ax.set_xlabel("goodput (bytes/s)")
    ax.set_title("Measured goodput beside the figures from the original problem")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.tight_layout()
    p = out / "e2e_goodput_summary.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="bench/e2e.py --json output")
    ap.add_argument("--out", help="directory for the PNGs (default: the JSON file's directory)")
    a = ap.parse_args(argv)
    res = json.loads(Path(a.json).read_text())
    a.out = a.out or str(Path(a.json).resolve().parent)
    try:
        for p in draw(res, a.out):
            print(p)
    except ImportError as e:
        print(f"bench/plots.py: error: matplotlib is missing ({e}); pip install matplotlib "
              "(or the project's bench extra: pip install -e '.[bench]')", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
