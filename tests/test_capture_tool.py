"""tools/make_tcp_capture.py records what the kernel really hands a bridge (needs root: netns).

A short run (256 KiB) in fresh namespaces must give a pcapng whose outgoing frames include TSO
super-packets with their virtio_net_hdr, whose TCP stream rebuilds to the sent stream's SHA-256,
and whose receiver saw the same hash. Everything stays in the tool's own namespaces (pid-named,
deleted in its finally block).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_capture import read_pcapng

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "make_tcp_capture.py"


def _stream(pkts, dport=5001):
    import struct

    isn, pieces = None, {}
    for p in pkts:
        f = p.frame
        if len(f) < 14:
            continue
        et = struct.unpack_from("!H", f, 12)[0]
        if et == 0x0800:
            l4 = 14 + (f[14] & 15) * 4
            end = 14 + struct.unpack_from("!H", f, 16)[0]
            if f[23] != 6:
                continue
        elif et == 0x86DD:
            if f[20] != 6:
                continue
            l4, end = 54, 54 + struct.unpack_from("!H", f, 18)[0]
        else:
            continue
        if struct.unpack_from("!H", f, l4 + 2)[0] != dport:
            continue
        seq = struct.unpack_from("!I", f, l4 + 4)[0]
        if f[l4 + 13] & 0x02:
            isn = seq
            continue
        data = f[l4 + (f[l4 + 12] >> 4) * 4:end]
        if data:
            pieces[(seq - isn - 1) % 2**32] = data
    out = bytearray()
    for rel in sorted(pieces):
        out[rel:rel + len(pieces[rel])] = pieces[rel]
    return bytes(out)


@pytest.mark.root
@pytest.mark.parametrize("family", [4, 6])
def test_the_capture_tool_records_super_packets_whose_stream_matches_the_sent_bytes(family, tmp_path):
    out = tmp_path / f"tcp{family}.pcapng"
    r = subprocess.run([sys.executable, str(TOOL), "--family", str(family), "--size", "262144",
                        "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["receiver"]["sha256"] == report["stream_sha256"]
    assert report["capture_drops"] == 0
    pkts = read_pcapng(out.read_bytes())
    supers = [p for p in pkts if p.outgoing and p.gso_size and len(p.frame) > 1514]
    assert supers, "no TSO super-packet was captured"
    assert all(p.csum_partial for p in supers)
    assert {p.gso_type for p in supers} == {1 if family == 4 else 4}
    stream = _stream([p for p in pkts if p.outgoing])
    assert hashlib.sha256(stream).hexdigest() == report["stream_sha256"]
