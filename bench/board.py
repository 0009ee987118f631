#!/usr/bin/env python3
"""The 68000 driver on machine68k: idle speed with and without the card, and MMIO cost.

    python bench/board.py --json FILE [--quick]

Each measurement runs in its own interpreter (machine68k keeps one CPU per process) through
``a2065.drivers.m68k.runner``; the best of ``--repeat`` runs is kept (least disturbed by other load).

* ``m68k_ips_with_card``: the driver (a2065/drivers/m68k) boots, configures the card, brings the LANCE
  up (Linux style) and idles in its busy loop (``addq.l #1,(idle).w ; bra.s``: exactly two
  instructions per iteration) for N cycles; instructions = 2 x iterations, divided by the wall
  time of ``Machine68kHost.run(N)``. With the card, slices end at the events a driver can see
  (none while idle: the TX poll every 1.6 ms = 11 350 cycles finds no descriptor and runs at
  catch-up) and the card is caught up after each slice.
* ``m68k_ips_without_card``: the same program and loop with an empty Zorro chain (the driver
  finds no board and idles); slices are only bounded by ``max_slice_cycles`` (50 000).
* ``idle_ratio_with_card``: ``m68k_ips_with_card / m68k_ips_without_card``, the two measured in
  the same run, alternating (with, without, with, ...) so load changes hit both alike. Since
  issue 17 an idle card's TX polls end no slice (``next_visible_deadline``); goal >= 0.9.
* ``mmio_word_access_ns``: a 68000 loop of N ``move.w (a0),d0`` from the card's RAP, minus the same
  loop reading CPU RAM, divided by N: the cost of one word access through the machine68k
  callback, the adapter (time stamp via ``m68k_cycles_run``, routing) and the board dispatcher.

Results and the reproducing command go to BENCHMARKS.md ("## Board and 68000").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from a2065.drivers.m68k import build  # noqa: E402
from a2065.drivers.m68k.runner import run_scenario  # noqa: E402


def best(name, args, repeat, key, higher=True):
    runs = [run_scenario(name, args) for _ in range(repeat)]
    pick = max if higher else min
    return pick(runs, key=lambda r: r[key]), runs


def best_pair(name, args_a, args_b, repeat, key):
    """Best run of each of two variants, measured alternately (a, b, a, b, ...)."""
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(run_scenario(name, args_a))
        runs_b.append(run_scenario(name, args_b))
    return max(runs_a, key=lambda r: r[key]), max(runs_b, key=lambda r: r[key])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="FILE", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="short runs (< 1 min)")
    ap.add_argument("--repeat", type=int, default=None)
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    build()
    repeat = a.repeat or (3 if a.quick else 5)
    idle_cycles = 40_000_000 if a.quick else 400_000_000
    reads = 100_000 if a.quick else 1_000_000

    with_card, without = best_pair("idle", {"cycles": idle_cycles, "card": True},
                                   {"cycles": idle_cycles, "card": False}, repeat, "ips")
    mmio, _ = best("mmio", {"reads": reads}, repeat, "mmio_word_access_ns", higher=False)

    out = {
        "m68k_ips_with_card": round(with_card["ips"]),
        "m68k_ips_without_card": round(without["ips"]),
        "mmio_word_access_ns": round(mmio["mmio_word_access_ns"], 1),
        "m68k_cycles_per_s_with_card": round(with_card["cps"]),
        "m68k_cycles_per_s_without_card": round(without["cps"]),
        "idle_ratio_with_card": round(with_card["ips"] / without["ips"], 3),
        "realtime_factor_with_card": round(with_card["cps"] / 7_093_790, 1),
        "slices_with_card": with_card["slices"],
        "slices_without_card": without["slices"],
        "idle_cycles": idle_cycles,
        "mmio_reads": reads,
        "repeat": repeat,
        "quick": a.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    rows = [
        ("68000 idle loop, card attached", f"{out['m68k_ips_with_card'] / 1e6:.1f} M instr/s",
         f"{out['m68k_cycles_per_s_with_card'] / 1e6:.0f} M cycles/s"),
        ("68000 idle loop, no card", f"{out['m68k_ips_without_card'] / 1e6:.1f} M instr/s",
         f"{out['m68k_cycles_per_s_without_card'] / 1e6:.0f} M cycles/s"),
        ("MMIO word read of RAP", f"{out['mmio_word_access_ns']:.0f} ns", "per access"),
    ]
    w = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>18}  {r[2]}")
    print(f"(idle_ratio_with_card: {out['idle_ratio_with_card']} (goal >= 0.9); "
          f"{out['realtime_factor_with_card']}x "
          f"a 7.09 MHz 68000; {out['elapsed_s']} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
