#!/usr/bin/env python3
"""atheris target: the capture codec (`pcap_backend.capfile`) over mutated bytes.

    python3 pcap_backend/fuzz/fuzz_capfile.py [atheris/libFuzzer flags] [corpus dirs]
    python3 pcap_backend/fuzz/fuzz_capfile.py -max_total_time=60 /tmp/capcorpus pcap_backend/fuzz/corpus

The contract: `iter_capture` on any bytes yields CapturedFrame tuples (int timestamp, bytes frame)
and then either ends or raises CaptureFormatError (a ValueError), nothing else; every frame it
yields survives a write-read round trip through `pcapng_packet` unchanged. Any other exception
escaping is a finding; atheris reports it with the input that caused it. Every reader of the tree
(`CaptureReplay`, `a2065 replay`'s `read_capture`) goes through `iter_capture`.
Seeds: pcap_backend/fuzz/corpus/ (pcapng written by `python3 native/fuzz/seeds.py`, plus
classic pcap files).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["pcap_backend.capfile"]):
    from pcap_backend.base import CaptureFormatError
    from pcap_backend.capfile import TS_MAX_NS, iter_capture, pcapng_header, pcapng_packet


def one_input(data: bytes) -> None:
    got = []
    try:
        for cf in iter_capture(io.BytesIO(data), max_block=1 << 16):
            assert isinstance(cf.frame, bytes) and isinstance(cf.ts_ns, int)
            got.append(cf)
    except CaptureFormatError:
        pass
    if got:
        again = pcapng_header() + b"".join(pcapng_packet(c.ts_ns, c.frame, c.outgoing, c.meta)
                                           for c in got)
        back = list(iter_capture(io.BytesIO(again)))
        assert [(min(max(c.ts_ns, 0), TS_MAX_NS), c.frame, c.outgoing) for c in got] == \
            [(c.ts_ns, c.frame, c.outgoing) for c in back]


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
