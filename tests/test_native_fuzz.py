"""Fuzzing harnesses of native/fuzz/ and the regression inputs they found (fixtures/regressions/).

- The libFuzzer target (native/fuzz/fuzz_segment.c, ASan + UBSan) is built and run for ~20 s on
  the seed corpus; it must finish without a crash. Skipped with a reason where clang's fuzzer
  runtime is missing (Debian: apt-get install clang libclang-rt-14-dev).
- Every seed and every `fixtures/regressions/segment-*.bin` is replayed through native.segment
  (the harness's option header decoded by native/fuzz/seeds.py): the result is frames within the
  wire limits or a SegmentError, never anything else, and the C core agrees with the oracle.
- Every `fixtures/regressions/pcapng-*` (found by native/fuzz/fuzz_pcapng.py) read by the pcapng
  loaders raises only their documented CaptureFormatError.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "native" / "fuzz"
REGRESSIONS = ROOT / "fixtures" / "regressions"
sys.path.insert(0, str(FUZZ))
import seeds as fuzz_seeds  # noqa: E402  (native/fuzz/seeds.py: header encode/decode)

from fixture_capture import CaptureFormatError, read_pcapng  # noqa: E402
from conftest import importable, require_package, which  # noqa: E402


def _libfuzzer_links() -> bool:
    cc = os.environ.get("CC", "clang")
    probe = "int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){return 0;}\n"
    r = subprocess.run([cc, "-x", "c", "-", "-fsanitize=fuzzer,address,undefined", "-o", os.devnull],
                       input=probe, capture_output=True, text=True)
    return r.returncode == 0


def _segment_inputs():
    files = sorted((FUZZ / "corpus").glob("*.bin")) + sorted(REGRESSIONS.glob("segment-*.bin"))
    return [pytest.param(p, id=p.name) for p in files]


@pytest.fixture(scope="module")
def native():
    import native as mod
    return mod


def _run(native_mod, opts, errors=None):
    """segment() with the harness's options: the frames, or ("error", code)."""
    kw = dict(gso_size=opts["gso_size"], mss=opts["mss"], csum=opts["csum"],
              csum_start=opts["csum_start"], csum_offset=opts["csum_offset"],
              append_fcs=opts["append_fcs"])
    try:
        return native_mod.segment(opts["frame"], **kw)
    except (errors or native_mod.SegmentError) as e:
        return ("error", e.code)


@pytest.mark.parametrize("path", _segment_inputs())
def test_every_fuzz_seed_and_regression_gives_wire_frames_or_a_segment_error(path, native):
    opts = fuzz_seeds.decode(path.read_bytes())
    if opts is None:
        return
    result = _run(native, opts)
    if opts["csum"] == 3:
        assert result[0] == "error"
        return
    if isinstance(result, tuple):
        assert -15 <= result[1] <= -1
        return
    fcs = 4 if opts["append_fcs"] else 0
    for f in result:
        assert 60 + fcs <= len(f) <= 1522 + fcs
        if fcs:
            assert f[-4:] == zlib.crc32(f[:-4]).to_bytes(4, "little")


@pytest.mark.parametrize("path", _segment_inputs())
def test_the_c_core_and_the_oracle_agree_on_every_fuzz_seed_and_regression(path, native):
    if os.environ.get("A2065_NATIVE", "").lower() == "python":
        pytest.skip("A2065_NATIVE=python forces the oracle; nothing to compare it with")
    assert native.IMPLEMENTATION == "c", "the C core did not load: 'make venv' builds it (build-essential)"
    from native import oracle

    opts = fuzz_seeds.decode(path.read_bytes())
    if opts is None:
        return
    c = _run(native, opts)
    py = _run(oracle, opts, errors=native.SegmentError)
    assert c == py


def _pcapng_regressions():
    return [pytest.param(p, id=p.name) for p in sorted(REGRESSIONS.glob("pcapng-*"))]


@pytest.mark.parametrize("path", _pcapng_regressions())
def test_the_fixture_loader_rejects_every_pcapng_regression_with_capture_format_error_only(path):
    with pytest.raises(CaptureFormatError):   # every regression input is malformed: refused, typed
        read_pcapng(path.read_bytes())


@pytest.mark.parametrize("path", _pcapng_regressions())
def test_the_replay_backend_rejects_every_pcapng_regression_with_capture_format_error_only(path):
    from pcap_backend.backends import pcapng_io
    from pcap_backend.base import CaptureFormatError as BackendFormatError

    with pytest.raises(BackendFormatError):
        for _ in pcapng_io.iter_pcapng(io.BytesIO(path.read_bytes())):
            pass


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory):
    require_package("clang", which(os.environ.get("CC", "clang")), "libFuzzer targets")
    require_package("libclang-rt-14-dev", _libfuzzer_links, "clang's libFuzzer runtime")
    return tmp_path_factory.mktemp("fuzz_build")


def test_the_libfuzzer_segment_target_runs_20_seconds_on_the_seed_corpus_without_a_crash(fuzz_build):
    env = dict(os.environ, BUILD=str(fuzz_build))
    r = subprocess.run([str(FUZZ / "run.sh"), "20"], env=env, capture_output=True, text=True,
                       timeout=300)
    log = r.stdout + r.stderr
    crashes = list(fuzz_build.glob("crash-*")) + list(fuzz_build.glob("leak-*")) + \
        list(fuzz_build.glob("timeout-*"))
    assert r.returncode == 0 and not crashes, log[-4000:]
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    assert runs and int(runs.group(1)) > 1000, log[-2000:]


def test_the_libfuzzer_binary_replays_every_regression_input_cleanly(fuzz_build):
    regressions = sorted(REGRESSIONS.glob("segment-*.bin"))
    seeds = sorted((FUZZ / "corpus").glob("*.bin"))
    env = dict(os.environ, BUILD=str(fuzz_build))
    binary = fuzz_build / "fuzz_segment"
    if not binary.exists():
        subprocess.run([str(FUZZ / "run.sh"), "1"], env=env, capture_output=True, timeout=300)
    r = subprocess.run([str(binary), *map(str, regressions + seeds)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]


def test_the_atheris_pcapng_target_runs_3000_inputs_without_an_undocumented_exception(tmp_path):
    require_package("atheris", importable("atheris"))
    capfuzz = ROOT / "pcap_backend" / "fuzz"
    r = subprocess.run([sys.executable, str(capfuzz / "fuzz_capfile.py"), "-runs=3000", "-seed=2065",
                        f"-artifact_prefix={tmp_path}/", str(tmp_path), str(capfuzz / "corpus")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and not list(tmp_path.glob("crash-*")), r.stderr[-4000:]
    assert "Done 3000 runs" in r.stderr
