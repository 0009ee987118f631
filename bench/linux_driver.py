#!/usr/bin/env python3
"""The real Linux A2065 driver on the emulated 68000 (issue 15): checks and TCP goodput.

    python bench/linux_driver.py --json FILE [--quick]          (root for the goodput runs)

The driver is drivers/net/ethernet/amd/a2065.c from Debian's linux-source-6.1, unmodified, built
with our kernel shim (a2065/drivers/linux). Every scenario runs in its own process.

Checks (each pass/fail, in `wire` and `fast` card timing, the 68000 at 7.09 MHz): probe through
Zorro autoconfig + MAC from the serial; open/close/reopen (CSR0 0x0073 / 0x0004); every transmit
length 14..1514 (--quick: every 7th) padded to 60 with a right FCS; every receive length 60..1514
(--quick: every 7th) byte-exact; CRC-error frames counted; a missed-frame burst counted and
reception resumed; the multicast hash of 40 groups, allmulti, promiscuous; the watchdog after a
stalled transmitter; two boards on INT2; snapshot/restore across processes; 802.1Q 1518-byte
frames.

Goodput (root: network namespaces): the end-to-end rig (a2065/drivers/linux/live.py) with the
guest kernel's TCP on the driver, wire timing; server -> guest and guest -> server over IPv4 and
IPv6 (8 MB each, --quick 2 MB), once with the 68000 at 70.9 MHz (ten times PAL: the CPU is not the
limit) and once at 7.09 MHz (a stock A2000). Goodput = bytes / (last byte - first byte) at the
receiving application.

JSON keys: checks_passed, checks_failed, failed (names), tcp_goodput_fast_cpu_Bps (server ->
guest IPv4, fast CPU), tcp_goodput_7mhz_Bps (the same at 7.09 MHz), driver_source (the package
version), runs (every transfer), elapsed_seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from a2065.drivers import linux as L  # noqa: E402
from a2065.drivers.linux.runner import run_scenario  # noqa: E402

MAC = bytes.fromhex("008010123456")
PEER = bytes.fromhex("020000000001")
RUNNING, STOP = 0x0073, 0x0004
FAST_CPU_HZ = 70_937_900
PAL_HZ = 7_093_790


def frame(dst, src, n, seed=0):
    body = bytes((i * 7 + seed) & 0xFF for i in range(max(0, n - 14)))
    return (dst + src + b"\x08\x00" + body)[:n]


def wire(f):
    f = f + bytes(max(0, 60 - len(f)))
    return f + struct.pack("<I", zlib.crc32(f))


def hx(fs):
    return [f.hex() for f in fs]


def txs(step, card=0):
    return [bytes.fromhex(h) for i, h in step["tx"] if i == card]


def rxs(step, dev=0):
    return [bytes.fromhex(h) for d, h in step["rx"] if d == dev]


def script(steps, **kw):
    return run_scenario("script", {"steps": steps, **kw})


def checks(timing: str, quick: bool) -> dict:
    """name -> bool for one card timing."""
    out = {}
    k = 7 if quick else 1
    r = script([], serials=[0x00ABCDEF], timing=timing)
    out["probe_and_mac"] = (r["bases"] == [0xE90000] and r["netdevs"][0]["mac"] == "008010abcdef"
                            and r["netdevs"][0]["base_addr"] == 0xE94000)
    r = script([{"op": "open"}, {"op": "close"}, {"op": "open"}], timing=timing)
    s = r["steps"]
    out["open_close_reopen"] = (s[0]["csr0"] == [RUNNING] and s[1]["csr0"] == [STOP]
                                and s[2]["csr0"] == [RUNNING])
    fs = [frame(PEER, MAC, n, seed=n) for n in range(14, 1515, k)]
    r = script([{"op": "open"}, {"op": "send", "frames": hx(fs)}], timing=timing)
    out["transmit_14_to_1514"] = txs(r["steps"][1]) == [wire(f) for f in fs]
    fs = [frame(MAC, PEER, n, seed=n) for n in range(60, 1515, k)]
    r = script([{"op": "open"}, {"op": "offer", "frames": hx(fs)}], timing=timing)
    out["receive_60_to_1514"] = rxs(r["steps"][1]) == fs
    good = frame(MAC, PEER, 200)
    bad = frame(MAC, PEER, 300, seed=1) + b"\xde\xad\xbe\xef"
    r = script([{"op": "open"}, {"op": "offer", "has_fcs": True, "frames": hx(
        [bad, good + struct.pack("<I", zlib.crc32(good))])}], timing=timing)
    out["crc_errors_counted"] = (r["stats"][0]["rx_crc_errors"] == 1
                                 and rxs(r["steps"][1]) == [good])
    burst = [frame(MAC, PEER, 64, seed=i) for i in range(40)]
    after = [frame(MAC, PEER, 500, seed=99)]
    r = script([{"op": "open"}, {"op": "offer", "frames": hx(burst), "paced": "wire"},
                {"op": "offer", "frames": hx(after)}], timing=timing)
    out["missed_burst_and_resume"] = (r["chip_counters"][0]["rx_missed"] == 24
                                      and r["stats"][0]["rx_errors"] >= 1
                                      and rxs(r["steps"][2]) == after)
    groups = [bytes((1, 0, 0x5E, 0, i >> 8, i & 0xFF)) for i in range(1, 41)]
    bits = {(~zlib.crc32(g) & 0xFFFFFFFF) >> 26 for g in groups}
    other = bytes.fromhex("02000000abcd")
    r = script([{"op": "open"}, {"op": "rx_mode", "mc": hx(groups)},
                {"op": "offer", "frames": hx([frame(groups[5], PEER, 80)])},
                {"op": "rx_mode", "flags": L.IFF_ALLMULTI},
                {"op": "rx_mode", "flags": L.IFF_PROMISC},
                {"op": "offer", "frames": hx([frame(other, PEER, 80)])}], timing=timing)
    out["multicast_allmulti_promisc"] = (
        len(rxs(r["steps"][2])) == 1 and len(rxs(r["steps"][5])) == 1 and r["mode"] == [0x8000])
    r = script([{"op": "open"}, {"op": "rx_mode", "mc": hx(groups)}], timing=timing)
    out["multicast_hash"] = {h for h in range(64) if (r["ladrf"][0] >> h) & 1} == bits
    stuck = [frame(PEER, MAC, 100, seed=i) for i in range(5)]
    r = script([{"op": "open"}, {"op": "stall"}, {"op": "queue", "frames": hx(stuck)},
                {"op": "run", "ms": 5500}, {"op": "send", "frames": hx([frame(PEER, MAC, 90)])}],
               timing=timing)
    out["watchdog_reset_and_resume"] = (r["hostif"]["tx_timeouts"] == 1
                                        and txs(r["steps"][4]) == [wire(frame(PEER, MAC, 90))])
    m1, m2 = bytes.fromhex("008010000a01"), bytes.fromhex("008010000b02")
    steps = [{"op": "open", "dev": 0}, {"op": "open", "dev": 1}]
    for i in range(4):
        steps += [{"op": "offer", "dev": d, "frames": hx([frame(m, PEER, 200, seed=i)]),
                   "settle_ms": 0, "drain_ms": 0} for d, m in ((0, m1), (1, m2))]
    steps.append({"op": "run", "ms": 50})
    r = script(steps, timing=timing, serials=[0x000A01, 0x000B02])
    out["two_boards_shared_int2"] = (r["stats"][0]["rx_packets"] == 4
                                     and r["stats"][1]["rx_packets"] == 4)
    inbound = [frame(MAC, PEER, 900 + i, seed=i) for i in range(12)]
    a = script([{"op": "open"}, {"op": "offer", "frames": hx(inbound[:6]), "paced": "wire",
                                 "drain_ms": 0, "settle_ms": 0},
                {"op": "save"}], timing=timing)
    b = run_scenario("script", {"resume": a["steps"][-1]["state"], "steps": [
        {"op": "run", "ms": 100}, {"op": "offer", "frames": hx(inbound[6:])}]})
    got = [f for s in a["steps"] + b["steps"] for f in rxs(s)]
    out["snapshot_restore_carries_on"] = got == inbound
    vlan = [frame(MAC, PEER, 1518, seed=3)]
    vlan = [vlan[0][:12] + b"\x81\x00\x00\x64" + vlan[0][12:1514]]
    r = script([{"op": "open"}, {"op": "offer", "frames": hx(vlan)}], timing=timing)
    out["vlan_1518_received"] = rxs(r["steps"][1]) == vlan
    return out


def goodput_runs(cpu_hz: int, nbytes: int) -> dict:
    from a2065.drivers.linux.live import run_rig_scenario
    transfers = [{"dir": d, "ipv6": v6, "port": 5200 + i, "bytes": nbytes}
                 for i, (d, v6) in enumerate([("to_guest", False), ("to_server", False),
                                              ("to_guest", True), ("to_server", True)])]
    r = run_rig_scenario({"cpu_hz": cpu_hz, "timing": "wire", "transfers": transfers})
    runs = {}
    for t in r["transfers"]:
        name = f"{'server_to_guest' if t['dir'] == 'to_guest' else 'guest_to_server'}_" \
               f"{'ipv6' if t['ipv6'] else 'ipv4'}"
        g, s = t["got"], t["sent"]
        runs[name] = {"bytes": g["bytes"], "intact": g["sha256"] == s["sha256"] and g["eof"],
                      "goodput_Bps": g["goodput_Bps"]}
    st = r["stats"]
    runs["counters"] = {"slipped_ns": st["slipped_ns"], "emulated_s": st["emulated_s"],
                        "driver": st["driver"], "tx_timeouts": st["hostif"]["tx_timeouts"],
                        "irqs": st["hostif"]["irqs"], "bridge_dropped": st["bridge"]["dropped"]}
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer lengths, 2 MB transfers")
    a = ap.parse_args(argv)
    t0 = time.time()
    res = {"driver_source": f"{L.PACKAGE} {L.source_version()}", "quick": a.quick,
           "python": platform.python_version(), "cpu_count": os.cpu_count()}
    results = {}
    for timing in ("wire", "fast"):
        for name, ok in checks(timing, a.quick).items():
            results[f"{name}[{timing}]"] = bool(ok)
            print(f"  {'PASS' if ok else 'FAIL'}  {name}[{timing}]", file=sys.stderr)
    res["checks"] = results
    res["checks_passed"] = sum(results.values())
    res["checks_failed"] = len(results) - res["checks_passed"]
    res["failed"] = [k for k, v in results.items() if not v]
    res["tcp_goodput_fast_cpu_Bps"] = res["tcp_goodput_7mhz_Bps"] = None
    res["runs"] = {}
    if os.geteuid() == 0:
        nbytes = 2_000_000 if a.quick else 8_000_000
        for label, hz in (("fast_cpu", FAST_CPU_HZ), ("7mhz", PAL_HZ)):
            runs = goodput_runs(hz, nbytes)
            res["runs"][label] = {"cpu_hz": hz, **runs}
            if runs["server_to_guest_ipv4"]["intact"]:
                res[f"tcp_goodput_{label}_Bps"] = runs["server_to_guest_ipv4"]["goodput_Bps"]
            for k, v in runs.items():
                if k != "counters":
                    print(f"  {label:8s} {k:24s} {v['goodput_Bps']:>10,} B/s  "
                          f"{'intact' if v['intact'] else 'BROKEN'}", file=sys.stderr)
    else:
        res["note"] = "goodput runs need root (network namespaces); skipped"
    res["elapsed_seconds"] = round(time.time() - t0, 1)
    print(f"checks {res['checks_passed']} passed, {res['checks_failed']} failed; "
          f"goodput fast CPU {res['tcp_goodput_fast_cpu_Bps']} B/s, 7.09 MHz "
          f"{res['tcp_goodput_7mhz_Bps']} B/s; {res['driver_source']}; "
          f"{res['elapsed_seconds']} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if res["checks_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
