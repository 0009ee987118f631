"""Untrusted files: snapshots and captures. No length field drives an allocation without a cap,
damaged input gives the documented error type and nothing else, and a damaged snapshot never
leaves a board half-restored.

Also the brief CI run of the atheris pcapng target (pcap_backend/fuzz/fuzz_capfile.py); the libFuzzer
segment() target's CI run and the regression replays are in tests/test_native_fuzz.py.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from a2065 import A2065
from a2065 import snapshot as snapmod
from a2065.drivers import LinuxA2065Driver
from a2065.runners.replay import read_capture
from pcap_backend.backends.pcapng_io import iter_pcapng
from pcap_backend.base import CaptureFormatError

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = ROOT / "fixtures" / "regressions"


def _running_board():
    b = A2065()
    b.write16(0x48, 0xE900)
    LinuxA2065Driver(b).open()
    return b


def _fix_crc(d: bytes) -> bytes:
    n = struct.unpack_from(">I", d, 10)[0]
    return d[:14 + n] + struct.pack(">I", zlib.crc32(d[10:14 + n])) + d[18 + n:]


def _file(body: bytes) -> bytes:
    head = b"A2065SNP" + struct.pack(">HI", 1, len(body))
    return head + body + struct.pack(">I", zlib.crc32(head[10:] + body))


# -- snapshots ----------------------------------------------------------------------------------

def test_a_snapshot_file_over_the_cap_is_refused_before_its_body_is_parsed(monkeypatch):
    def never(*a, **k):
        raise AssertionError("the body was parsed")
    monkeypatch.setattr(snapmod.SNAPSHOT_FILE, "parse", never)
    body = bytes([7]) + struct.pack(">I", 300_000) + bytes(300_000)  # a list of 300,000 Nones
    with pytest.raises(snapmod.SnapshotError, match="more than"):
        snapmod.from_bytes(_file(body))


def test_a_damaged_snapshot_is_refused_by_its_crc_before_its_body_is_parsed(monkeypatch):
    data = bytearray(snapmod.to_bytes(_running_board().snapshot()))
    data[100] ^= 0x40
    monkeypatch.setattr(snapmod.SNAPSHOT_FILE, "parse", lambda *a, **k: 1 / 0)
    with pytest.raises(snapmod.SnapshotError, match="CRC"):
        snapmod.from_bytes(bytes(data))


@pytest.mark.parametrize("data", [b"", b"A2065SNP", b"A2065SNP\x00\x01\xff\xff\xff\xff" + bytes(8),
                                  b"NOTASNAP" + bytes(40)])
def test_short_and_foreign_snapshot_files_give_snapshot_error(data):
    with pytest.raises(snapmod.SnapshotError):
        snapmod.from_bytes(data)


def test_a_deeply_nested_snapshot_body_gives_snapshot_error_not_a_recursion_crash():
    body = (bytes([7]) + struct.pack(">I", 1)) * 5000 + bytes([0])
    with pytest.raises(snapmod.SnapshotError):
        snapmod.from_bytes(_file(body))


def test_a_huge_element_count_with_no_elements_behind_it_allocates_nothing():
    body = bytes([7]) + struct.pack(">I", 0xFFFFFFFF) + bytes(10)
    tracemalloc.start()
    try:
        with pytest.raises(snapmod.SnapshotError):
            snapmod.from_bytes(_file(body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024


_BASE = None


def _base():
    global _BASE
    if _BASE is None:
        _BASE = snapmod.to_bytes(_running_board().snapshot())
    return _BASE


@settings(max_examples=150, deadline=None)
@given(muts=st.lists(st.tuples(st.integers(14, 34_000), st.integers(0, 255)), min_size=1,
                     max_size=4))
def test_a_crc_consistent_but_hostile_snapshot_gives_snapshot_error_or_a_working_board(muts):
    d = bytearray(_base())
    n = struct.unpack_from(">I", d, 10)[0]
    for pos, v in muts:
        d[min(pos, 14 + n - 1)] = v
    data = _fix_crc(bytes(d))
    try:
        b = A2065.from_snapshot(snapmod.from_bytes(data), strict=True)
    except snapmod.SnapshotError:
        return
    # a state that loads is a board that works: bounded, inside its RAM
    b.advance_to(b.now + 5_000_000)
    for off in (0x4000, 0x4002, 0x8000, 0xFFFE):
        b.read16(off)
    assert len(b.ram) == 32768


def test_a_damaged_snapshot_leaves_the_board_it_was_restored_into_untouched():
    b = _running_board()
    before = snapmod.to_bytes(b.snapshot())
    state = snapmod.from_bytes(before)
    state["chip"] = dict(state["chip"])
    del state["chip"]["mode"]
    other = _running_board()
    other.ram[0x100:0x104] = b"XXXX"
    keep = snapmod.to_bytes(other.snapshot())
    with pytest.raises(snapmod.SnapshotError, match="damaged"):
        other.restore(state)
    assert snapmod.to_bytes(other.snapshot()) == keep


# -- captures -----------------------------------------------------------------------------------

def _shb():
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    return struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _idb():
    body = struct.pack("<HHI", 1, 0, 262144)
    return struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _epb(frame: bytes, caplen=None, origlen=None):
    pad = frame + bytes(-len(frame) % 4)
    body = struct.pack("<IIIII", 0, 0, 0, len(frame) if caplen is None else caplen,
                       len(frame) if origlen is None else origlen) + pad
    return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


@pytest.mark.parametrize("caplen", [0xFFFFFFFF, 0x7FFFFFFF, 65536 * 16])
def test_a_packet_block_claiming_a_huge_captured_length_is_refused_without_allocating_it(tmp_path,
                                                                                         caplen):
    path = tmp_path / "lie.pcapng"
    path.write_bytes(_shb() + _idb() + _epb(bytes(64), caplen=caplen))
    tracemalloc.start()
    try:
        for reader in (lambda: list(iter_pcapng(path)), lambda: read_capture(path)):
            with pytest.raises((CaptureFormatError, ValueError)):
                reader()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_a_block_length_of_four_gigabytes_in_a_tiny_file_is_refused_by_every_reader(tmp_path):
    path = tmp_path / "huge.pcapng"
    path.write_bytes(_shb() + _idb() + struct.pack("<II", 6, 0xFFFFFFF0) + bytes(32))
    tracemalloc.start()
    try:
        with pytest.raises(CaptureFormatError):
            list(iter_pcapng(path))
        with pytest.raises(CaptureFormatError):
            read_capture(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_every_pcapng_regression_is_refused_by_the_runner_capture_reader_with_its_error_type():
    regressions = sorted(REGRESSIONS.glob("pcapng-*"))
    assert regressions, "fixtures/regressions/ lost its pcapng inputs"
    for p in regressions:
        with pytest.raises(CaptureFormatError):
            read_capture(p)


def test_the_atheris_capture_codec_target_runs_fifteen_seconds_without_a_finding(tmp_path):
    from conftest import importable, require_package
    require_package("atheris", importable("atheris"))
    fuzz = ROOT / "pcap_backend" / "fuzz"
    r = subprocess.run([sys.executable, str(fuzz / "fuzz_capfile.py"), "-max_total_time=15",
                        "-timeout=20", "-rss_limit_mb=1024", "-print_final_stats=1",
                        f"-artifact_prefix={tmp_path}/", str(tmp_path),
                        str(fuzz / "corpus")],
                       capture_output=True, text=True, timeout=300, cwd=str(ROOT),
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    log = r.stdout + r.stderr
    assert r.returncode == 0 and not list(tmp_path.glob("crash-*")), log[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    assert runs and int(runs.group(1)) > 100, log[-2000:]


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("snapshot-*.snap")), ids=lambda p: p.name)
def test_every_snapshot_regression_gives_snapshot_error_and_leaves_the_board_untouched(path):
    b = _running_board()
    keep = snapmod.to_bytes(b.snapshot())
    with pytest.raises(snapmod.SnapshotError):
        b.restore(snapmod.from_bytes(path.read_bytes()))
    with pytest.raises(snapmod.SnapshotError):
        A2065.from_snapshot(snapmod.from_bytes(path.read_bytes()))
    assert snapmod.to_bytes(b.snapshot()) == keep
