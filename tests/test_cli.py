"""The a2065 command through subprocess: exit codes, messages, help, demo output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def a2065(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "a2065", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=120)


def test_demo_exits_0_prints_the_side_by_side_table_and_writes_the_guest_pcapng(tmp_path):
    r = a2065("demo", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "a2065/cli/captures/tcp4_tso.pcapng" in out   # package data (a2065.cli.captures)
    seg = next(l for l in out.splitlines() if l.startswith("segment "))
    leg = next(l for l in out.splitlines() if l.startswith("drop-legacy "))
    assert "verified" in seg and "2,097,152" in seg
    assert "legacy_oversize" in leg
    pcaps = sorted(p.name for p in tmp_path.iterdir())
    assert pcaps == ["guest-tcp4_tso-drop-legacy.pcapng", "guest-tcp4_tso-segment.pcapng"]
    assert str(tmp_path / "guest-tcp4_tso-segment.pcapng") in out
    assert "Traceback" not in r.stderr
    assert "68000 ARP/ping demo: " in out


def test_demo_json_reports_a_verified_stream_at_the_10base_t_goodput(tmp_path):
    r = a2065("demo", "--out", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    seg, legacy = doc["results"]
    assert seg["policy"] == "segment" and seg["verified"] is True
    assert seg["stream_sha256"] == doc["capture_sha256"]
    assert 1_100_000 <= seg["goodput_Bps"] <= 1_186_606   # 10BASE-T TCP limit on emulated time
    assert legacy["policy"] == "drop-legacy" and legacy["dropped"]["legacy_oversize"] > 30
    assert doc["legacy_delivered_fraction"] < 0.05
    assert doc["m68k_demo"]["status"] in ("ok", "skipped")   # optional; never "failed"


@pytest.mark.parametrize("capture", ["tcp6", "udp4"])
def test_demo_verifies_the_other_bundled_captures_too(tmp_path, capture):
    r = a2065("demo", "--out", tmp_path, "--capture", capture, "--json", "--no-m68k")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["verified"] is True


@pytest.mark.parametrize("sub", ["demo", "replay", "inspect", "bridge", "bench"])
def test_every_subcommand_has_help_that_exits_0(sub):
    r = a2065(sub, "--help")
    assert r.returncode == 0 and "usage: a2065 " + sub in r.stdout


def test_top_level_help_documents_the_exit_codes():
    r = a2065("--help")
    assert r.returncode == 0 and "2 usage error" in r.stdout


def test_no_subcommand_is_a_usage_error_with_exit_2():
    r = a2065()
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_an_unknown_option_value_is_a_usage_error_naming_the_choices():
    r = a2065("replay", "x.pcapng", "--policy", "fragment")
    assert r.returncode == 2 and "segment" in r.stderr and "drop-legacy" in r.stderr


def test_a_missing_capture_file_exits_2_and_says_what_to_give():
    r = a2065("replay", "/nonexistent/file.pcapng")
    assert r.returncode == 2
    assert "no such file" in r.stderr and "pcapng" in r.stderr and "Traceback" not in r.stderr


def test_a_corrupt_capture_exits_1_with_a_hint_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"this is not pcapng at all" * 10)
    r = a2065("replay", bad)
    assert r.returncode == 1 and "tshark" in r.stderr and "Traceback" not in r.stderr


def test_replay_records_both_directions_and_prints_counters(tmp_path):
    rec = tmp_path / "rec.pcapng"
    cap = ROOT / "fixtures" / "captures" / "tcp4_tso.pcapng"
    r = a2065("replay", cap, "--timing", "wire", "--record", rec, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verified"] is True and doc["super_packets"] == 45
    assert rec.stat().st_size > 2_000_000


def test_replay_with_drop_legacy_shows_the_oversize_drops_and_exits_1_because_the_stream_does_not_verify():
    cap = ROOT / "fixtures" / "captures" / "tcp4_tso.pcapng"
    r = a2065("replay", cap, "--policy", "drop-legacy")
    assert r.returncode == 1, r.stderr
    assert "legacy_oversize" in r.stdout
    assert "MISMATCH" in r.stderr and "Traceback" not in r.stderr


def test_bench_with_an_unknown_benchmark_name_exits_2_and_names_it():
    r = a2065("bench", "--only", "nosuch")
    assert r.returncode == 2 and "nosuch" in r.stderr


def test_bridge_without_iface_is_a_usage_error_that_says_what_to_give():
    r = a2065("bridge")
    assert r.returncode == 2 and "--iface is required" in r.stderr


def test_bridge_vde_says_it_takes_a_switch_directory_or_any_libvdeplug_url():
    r = a2065("bridge", "--backend", "vde")
    assert r.returncode == 2 and "--iface is required" in r.stderr
    assert "vde_switch control directory" in r.stderr and "libvdeplug 4 URL" in r.stderr
    assert "vxvde://" in r.stderr
    h = " ".join(a2065("bridge", "--help").stdout.split())
    assert "libvdeplug 4 URL (vde:///path, vxvde://group[/port]" in h
    assert "vde: a plug of a VDE network (--iface: a vde_switch directory or a libvdeplug 4 URL" in h


def test_bench_lists_scale_and_skips_it_without_root_naming_what_it_needs(tmp_path, monkeypatch,
                                                                           capsys):
    import importlib
    main = importlib.import_module("a2065.cli.main")
    assert "scale" in main.BENCHES
    assert "scale" in " ".join(a2065("bench", "--help").stdout.split())
    monkeypatch.setattr(main.os, "geteuid", lambda: 1000)
    assert main.main(["bench", "--only", "scale", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "scale skipped: needs root (network namespaces, TAP, vxvde)" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.root   # without CAP_NET_RAW the socket is refused before the name is looked up
def test_bridge_to_an_interface_that_does_not_exist_exits_2_and_points_to_ip_link():
    r = a2065("bridge", "--iface", "nosuch0", "--duration", "1")
    assert r.returncode == 2 and "ip link" in r.stderr and "Traceback" not in r.stderr


def test_inspect_prints_version_time_csrs_and_ring_state(tmp_path):
    from a2065 import snapshot
    from a2065.board import A2065
    from a2065.drivers import LinuxA2065Driver
    board = A2065()
    drv = LinuxA2065Driver(board)
    drv.open()
    path = tmp_path / "card.snap"
    path.write_bytes(snapshot.to_bytes(board.snapshot()))
    r = a2065("inspect", path)
    assert r.returncode == 0, r.stderr
    assert "version 1" in r.stdout and "CSR0=0x" in r.stdout and "RX RING" in r.stdout
    assert "16 owned by the chip" in r.stdout
    j = json.loads(a2065("inspect", path, "--json").stdout)
    assert j["rx_ring"]["length"] == 16 and j["csr"]["csr3"] == board.snapshot()["chip"]["csr3"]


def test_inspect_of_a_file_that_is_not_a_snapshot_exits_1(tmp_path):
    p = tmp_path / "junk"
    p.write_bytes(b"\0" * 64)
    r = a2065("inspect", p)
    assert r.returncode == 1 and "not a readable A2065 snapshot" in r.stderr


def test_inspect_reads_the_released_v1_snapshot_fixture():
    r = a2065("inspect", ROOT / "fixtures" / "snapshots" / "a2065-v1-running-rx.snap")
    assert r.returncode == 0, r.stderr
    assert "version 1" in r.stdout and "wire timing" in r.stdout and "PADR=00:80:10:12:34:56" in r.stdout
