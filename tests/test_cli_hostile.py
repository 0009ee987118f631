"""A hostile user at the a2065 command: every subcommand gets random arguments and damaged
files. Whatever comes, no traceback, an exit code in {0, 1, 2}, and no input file changed (a
--record aimed at the very file being replayed included; any other existing file is the user's
to overwrite, as with tcpdump -w, so it is not offered).

The command runs in this process (`a2065.cli.main.main(argv)`, exactly what the console script
calls), so an exception escaping it is a traceback a user would have seen. The bridge cases run
inside a network namespace made for them (root), so whatever they open disappears with it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import struct
from pathlib import Path

import pytest

from a2065.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
TCP4 = ROOT / "fixtures" / "captures" / "tcp4_tso.pcapng"
SNAP = ROOT / "fixtures" / "snapshots" / "a2065-v1-running-rx.snap"


def damaged_inputs(d: Path, rnd: random.Random) -> dict:
    """Capture and snapshot files, intact and damaged in the ways files get damaged."""
    d.mkdir()
    cap, snap = TCP4.read_bytes(), SNAP.read_bytes()
    flip = bytearray(cap)
    for _ in range(20):
        flip[rnd.randrange(len(flip))] ^= 1 << rnd.randrange(8)
    sflip = bytearray(snap)
    for _ in range(4):
        sflip[rnd.randrange(len(sflip))] ^= 0xFF
    files = {
        "good.pcapng": cap,
        "cut.pcapng": cap[:rnd.randrange(40, len(cap))],
        "flipped.pcapng": bytes(flip),
        "empty.pcapng": b"",
        "noise.pcapng": rnd.randbytes(3000),
        "huge_caplen.pcap": struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
        + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 60) + bytes(60),
        "wrong_link.pcap": struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 105)
        + struct.pack("<IIII", 0, 0, 60, 60) + bytes(60),
        "good.snap": snap,
        "cut.snap": snap[:rnd.randrange(1, len(snap))],
        "flipped.snap": bytes(sflip),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "a_directory").mkdir()
    return {name: d / name for name in files} | {"a_directory": d / "a_directory"}


def digest(d: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def run(argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse: --help (0) and usage errors (2)
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def pick(rnd, *choices):
    return rnd.choice(choices)


def garbage(rnd):
    """Mostly nothing: an unknown word makes argparse refuse the whole line before anything runs."""
    return [pick(rnd, *GARBAGE)] if rnd.random() < 0.1 else []


GARBAGE = ["--", "-", "-x", "--nope", "%d%s%n", "é", " ", "''", "--json=1", "-vv" * 0 or "--jso"]
MACS = ["auto", "00:80:10:00:00:01", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
        "zz", "1:2:3", "", "00-80-10-00-00-02"]


def replay_args(rnd, f, outs):
    src = pick(rnd, *f.values(), outs / "missing.pcapng")
    argv = ["replay", src]
    for _ in range(rnd.randrange(0, 5)):
        argv += pick(rnd, ["--policy", pick(rnd, "segment", "drop-legacy", "bogus")],
                     ["--timing", pick(rnd, "fast", "wire", "slow")],
                     ["--delivery", pick(rnd, "lossless", "hardware", "")],
                     ["--direction", pick(rnd, "auto", "in", "out", "all", "up")],
                     ["--mac", pick(rnd, *MACS)],
                     ["--record", pick(rnd, outs / "rec.pcapng", src, outs, outs / "no" / "x")],
                     ["--json"], garbage(rnd))
    return argv


def demo_args(rnd, f, outs):
    argv = ["demo", "--no-m68k", "--timing", "fast"]
    for _ in range(rnd.randrange(0, 4)):
        argv += pick(rnd, ["--capture", pick(rnd, "tcp4", "udp4", "tcp9", *f.values())],
                     ["--out", pick(rnd, outs / "demo", f["good.pcapng"], outs / "demo" / "deeper")],
                     ["--json"], garbage(rnd))
    return argv


def inspect_args(rnd, f, outs):
    argv = ["inspect", pick(rnd, *f.values(), outs / "missing.snap")]
    if rnd.random() < 0.4:
        argv.append("--json")
    argv += garbage(rnd)
    return argv


def bench_args(rnd, f, outs):
    argv = ["bench", "--only", pick(rnd, "warp", "native,", ",,", "e2e,nope", "")]
    for _ in range(rnd.randrange(0, 3)):
        argv += pick(rnd, ["--quick"], ["--out", pick(rnd, outs / "b", f["good.pcapng"])],
                     garbage(rnd))
    if argv[2] in ("native,", ",,", ""):  # a valid subset would run the real benchmarks
        argv[2] = "warp"
    return argv


def bridge_args(rnd, f, outs):
    argv = ["bridge"]
    for _ in range(rnd.randrange(0, 6)):
        argv += pick(rnd, ["--iface", pick(rnd, "lo", "a65nosuch0", "x" * 20, "a/b", "", str(outs))],
                     ["--backend", pick(rnd, "afpacket", "pcap", "tap", "slirp", "vde", "tunnel")],
                     ["--forward", pick(rnd, "tcp:8022:22", "udp:53", "tcp:0", "icmp:1", "tcp:x")],
                     ["--timing", pick(rnd, "wire", "fast")],
                     ["--policy", pick(rnd, "segment", "drop-legacy")],
                     ["--guest-tap", pick(rnd, "a65h%d", "x" * 16, "a b", "a65h0")],
                     ["--mac", pick(rnd, *MACS[1:])],
                     ["--duration", pick(rnd, "0.2", "-1", "0", "inf", "x")],
                     ["--record", pick(rnd, outs / "live.pcapng", outs, f["a_directory"])],
                     ["--netns", "a65-no-such-ns"], ["--guest-netns", "a65-no-such-ns"],
                     ["--json"], garbage(rnd))
    return argv + ["--duration", "0.3"]  # last one wins: every case ends by itself


CASES = [("replay", replay_args, 30), ("demo", demo_args, 6), ("inspect", inspect_args, 20),
         ("bench", bench_args, 8)]


@pytest.mark.parametrize("name,make,count", CASES, ids=[c[0] for c in CASES])
def test_random_arguments_and_damaged_files_never_give_a_traceback_or_touch_an_input(
        tmp_path, name, make, count):
    rnd = random.Random(f"a2065-hostile-{name}")
    f = damaged_inputs(tmp_path / "in", rnd)
    outs = tmp_path / "out"
    outs.mkdir()
    before = digest(tmp_path / "in")
    codes = set()
    for _ in range(count):
        argv = make(rnd, f, outs)
        code, out, err = run(argv)
        assert code in (0, 1, 2), (argv, code, err[-2000:])
        assert "Traceback" not in err + out, (argv, err[-2000:])
        if code:
            assert err.strip(), argv  # a failure always says something
        codes.add(code)
        assert digest(tmp_path / "in") == before, argv
    assert codes & {1, 2}  # the damage was noticed at least once


@pytest.mark.root
def test_random_bridge_arguments_in_a_namespace_never_give_a_traceback_or_touch_an_input(tmp_path):
    from pcap_backend.netns import in_netns, netns
    rnd = random.Random("a2065-hostile-bridge")
    f = damaged_inputs(tmp_path / "in", rnd)
    outs = tmp_path / "out"
    outs.mkdir()
    before = digest(tmp_path / "in")
    with netns("a2hb") as ns, in_netns(ns):
        for _ in range(16):
            argv = bridge_args(rnd, f, outs)
            code, out, err = run(argv)
            assert code in (0, 1, 2), (argv, code, err[-2000:])
            assert "Traceback" not in err + out, (argv, err[-2000:])
            assert digest(tmp_path / "in") == before, argv
    shutil.rmtree(outs, ignore_errors=True)
