#!/usr/bin/env python3
"""atheris target: the project's pcapng reading paths over mutated bytes.

    python3 native/fuzz/fuzz_pcapng.py [atheris/libFuzzer flags] [corpus dirs]
    python3 native/fuzz/fuzz_pcapng.py -max_total_time=60 native/fuzz/build/pcapng_corpus native/fuzz/pcapng_corpus

The readers sit on python-pcapng's FileScanner:
  - tests/fixture_capture.read_pcapng(bytes)  (the test fixture loader),
  - pcap_backend.backends.pcapng_io.iter_pcapng(file)  (the replay backend), and
  - a2065.runners.replay.read_capture(path)  (`a2065 replay`; the input goes through a file in /dev/shm).
Their documented contract: malformed input raises CaptureFormatError (a ValueError) and nothing
else. Any other exception escaping is a finding; atheris reports it with the input that caused it.
FUZZ_PCAPNG_TARGETS=loader|backend|runner|both|all (default all; both = loader and backend) picks
the readers, so a known finding in one does not stop the search in the others.
Seeds: native/fuzz/pcapng_corpus/ (written by `python3 native/fuzz/seeds.py`).
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

with atheris.instrument_imports(include=["pcapng", "fixture_capture", "pcap_backend", "a2065.runners.replay"]):
    import pcapng  # noqa: F401  (instrumented)
    from fixture_capture import CaptureFormatError as LoaderFormatError, read_pcapng

    try:
        from pcap_backend.backends.pcapng_io import iter_pcapng
        from pcap_backend.base import CaptureFormatError as BackendFormatError
    except ImportError:  # the backend is optional for this target
        iter_pcapng = None
        BackendFormatError = LoaderFormatError
    try:
        from a2065.runners.replay import read_capture
    except ImportError:
        read_capture = None


TARGETS = os.environ.get("FUZZ_PCAPNG_TARGETS", "all")
if TARGETS == "loader":
    iter_pcapng = None
if TARGETS not in ("runner", "all"):
    read_capture = None
_TMP = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else "/tmp", f"fuzz_pcapng_{os.getpid()}.pcapng")


def one_input(data: bytes) -> None:
    if TARGETS not in ("backend", "runner"):
        _loader(data)
    if iter_pcapng is not None and TARGETS != "runner":
        _backend(data)
    if read_capture is not None:
        _runner(data)


def _loader(data: bytes) -> None:
    try:
        pkts = read_pcapng(data)
        for p in pkts:
            assert isinstance(p.frame, bytes) and isinstance(p.ts_ns, int)
    except LoaderFormatError:
        pass


def _backend(data: bytes) -> None:
    try:
        for _ in iter_pcapng(io.BytesIO(data)):
            pass
    except BackendFormatError:
        pass


def _runner(data: bytes) -> None:
    with open(_TMP, "wb") as f:
        f.write(data)
    try:
        read_capture(_TMP)
    except BackendFormatError:
        pass
    finally:
        os.unlink(_TMP)  # libFuzzer leaves with _exit: no atexit clean-up


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
