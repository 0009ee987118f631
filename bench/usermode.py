#!/usr/bin/env python3
"""User-mode backends benchmark: TCP goodput through the card into a guest kernel (fast timing).

    python bench/usermode.py --json FILE [--quick]      (root: network namespaces, TAP)

Each figure is one TCP download of N bytes (16 MB; --quick 4 MB) from a server to the guest
namespace's kernel, which sits behind the emulated card (Python Linux-style driver, `fast`
timing, live time) on the guest-namespace rig of a2065/rig/guest.py. Bytes are checked
(SHA-256) and the figure is bytes / wall seconds from connect to the last byte, the median of
--repeat runs (3; --quick: 1):

  slirp_fast_goodput_Bps   server on the host namespace's 127.0.0.1, reached at the gateway
                           10.0.2.2 through libslirp (in the pump thread)
  passt_fast_goodput_Bps   the same through a passt child; null with passt_error when passt fails
  vde_fast_goodput_Bps     server in a namespace whose TAP is plugged into a vde_switch with
                           vde_plug2tap; the card is another port of that switch
Prints a table. --quick keeps the whole run under two minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def _download(rig, nbytes, server_ns, server_ip, connect_ip):
    from a2065.rig.guest import guest_download
    n, got, sha, _res, dt = guest_download(rig, nbytes, server_ns=server_ns, server_ip=server_ip,
                                           connect_ip=connect_ip, timeout=60, join=10)
    if n != nbytes or got != sha:
        raise RuntimeError(f"stream damaged: {n} bytes, sha match {got == sha}")
    return int(n / dt)


def nat(name, nbytes):
    from a2065.rig.guest import GuestRig
    from pcap_backend.backends import open_backend
    mk = (lambda ns: open_backend("passt", netns=ns)) if name == "passt" else \
        (lambda ns: open_backend("slirp"))
    with GuestRig(mk) as rig:
        rig.dhcp()
        return _download(rig, nbytes, rig.host_ns, "127.0.0.1", "10.0.2.2")


def vde(nbytes):
    from a2065.rig.guest import GuestRig, start_switch, stop_switch
    from pcap_backend.backends import open_backend
    from pcap_backend.netns import netns, run, unique
    tmp = tempfile.mkdtemp(prefix="a2065-vde-bench-")
    sw = os.path.join(tmp, "switch")
    switch = start_switch(sw)
    plug = None
    try:
        with netns("a2bv") as sns:
            tap = unique("a2bt")
            plug = subprocess.Popen(["ip", "netns", "exec", sns, "vde_plug2tap", "-s", sw, tap],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                if run(["ip", "link", "show", tap], ns=sns, check=False).returncode == 0:
                    break
                time.sleep(0.05)
            run(["ip", "addr", "add", "10.78.0.1/24", "dev", tap], ns=sns)
            run(["ip", "link", "set", tap, "up"], ns=sns)
            with GuestRig(lambda ns: open_backend("vde", sw)) as rig:
                run(["ip", "addr", "add", "10.78.0.15/24", "dev", rig.tap], ns=rig.guest_ns)
                return _download(rig, nbytes, sns, "10.78.0.1", "10.78.0.1")
    finally:
        if plug is not None:
            plug.kill()
            plug.wait()
        stop_switch(switch)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="write the figures here")
    ap.add_argument("--quick", action="store_true", help="4 MB transfers (under two minutes)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per backend, the median is reported (default 3; --quick 1)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/usermode.py needs root (network namespaces and a TAP)", file=sys.stderr)
        return 2
    nbytes = (4 if a.quick else 16) * 1000 * 1000
    out = {"command": "python bench/usermode.py --json FILE" + (" --quick" if a.quick else ""),
           "bytes": nbytes, "timing": "fast", "host": platform.platform(),
           "cpus": os.cpu_count()}
    repeat = a.repeat or (1 if a.quick else 3)
    out["repeat"] = repeat
    for key, fn in (("slirp", lambda: nat("slirp", nbytes)), ("passt", lambda: nat("passt", nbytes)),
                    ("vde", lambda: vde(nbytes))):
        runs = []
        try:
            for _ in range(repeat):
                runs.append(fn())
            out[f"{key}_fast_goodput_Bps"] = sorted(runs)[len(runs) // 2]
        except Exception as e:  # noqa: BLE001 - reported in the JSON, the others still run
            out[f"{key}_fast_goodput_Bps"] = None
            out[f"{key}_error"] = f"{type(e).__name__}: {e}"[:500]
        out[f"{key}_runs_Bps"] = runs
    Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'backend':8} {'goodput':>14}   (TCP download into the guest through the card, fast)")
    for key in ("passt", "slirp", "vde"):
        v = out[f"{key}_fast_goodput_Bps"]
        print(f"{key:8} {('%.2f MB/s' % (v / 1e6)) if v else 'failed':>14}"
              + (f"   {out.get(key + '_error', '')[:90]}" if not v else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
