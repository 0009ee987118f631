#!/usr/bin/env python3
"""Benchmark of the native core (checksum, FCS, segment) against floors measured in the same run.

    python3 bench/native.py --json bench/results/native.json [--quick]

Everything is reported as a ratio to something measured in the same process, because the shared
2-vCPU machine varies up to 1.5x between runs (reference/performance.md). Each figure is the median
of R repetitions of a timed loop of N calls (per-call time = loop time / N), timed with the thread's
CPU clock (time.thread_time_ns): on a machine shared by many jobs, wall-clock loops also count the
time the process sat descheduled (seen here: 2.2 s wall for 0.7 s of CPU).

Baselines:
- memcpy: a bytearray slice assignment from a memoryview of bytes (`dst[:n] = src`), i.e. CPython's
  memcpy plus about the same Python-call overhead a `native.checksum(bytes)` call has. The raw cffi
  `ffi.memmove` is reported too where the C core is built.
- zlib: `zlib.crc32(frame).to_bytes(4, "little")` (the system zlib).
- oracle: native.oracle.segment (pure Python) on the same super-packet.

JSON keys (ratios are dimensionless):
  checksum_1500_GBps, checksum_64k_GBps, memcpy_1500_GBps, memcpy_64k_GBps,
  checksum_1500_vs_memcpy, checksum_64k_vs_memcpy   throughput ratio (checksum GB/s / memcpy GB/s)
  fcs_1514_ns = fcs_1514_batch_ns   per frame via native.fcs_frames (45 frames per call): how the
                            design computes FCS (in C, per batch), never one Python call per frame
  zlib_fcs_1514_ns          zlib.crc32(frame).to_bytes(4, "little"), one frame per call
  fcs_1514_speedup_vs_zlib  zlib_fcs_1514_ns / fcs_1514_ns
  fcs_in_segment_ns_per_frame, fcs_in_segment_speedup_vs_zlib
                            (Segmenter.run with FCS - without FCS) / 45 frames, and zlib / that
  fcs_1514_single_call_ns, fcs_1514_single_call_speedup_vs_zlib   native.fcs(): one cffi call
                            per frame (mostly call overhead; kept so nobody is misled)
  segment_64k_us = segment_64k_run_us   the hot-path call, native.Segmenter.run: 65,226 B IPv4
                            TCP super-packet -> 45 frames + FCS in its buffer + (offset, length)
                            table, one C call
  segment_64k_views_us      run + views (a memoryview per frame)
  segment_64k_take_us       run + take (views into one bytes copy: what the bridge queues)
  segment_64k_list_us       native.segment(): a list of 45 bytes objects (the old headline)
  segment_64k_nofcs_us, segment_64k_ipv6_us (Segmenter.run), segment_64k_oracle_us
  segment_64k_speedup_vs_oracle                        (oracle time / segment_64k_us)
  segment_64k_vs_memcpy, segment_64k_views_vs_memcpy   time ratio to copying the output once
  paths: {"portable", "wide128", "wide"}   checksum/CRC code-path figures (wide128: AVX2 checksum
                            + 128-bit PCLMULQDQ; wide: + the widest fold the CPU has)
"""
from __future__ import annotations

import argparse
import array
import json
import os
import platform
import random
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import native  # noqa: E402
from native import oracle  # noqa: E402


CLOCK = time.thread_time_ns  # CPU time of this thread: time spent descheduled on the shared machine is not counted


def per_call_ns(fn, n_calls: int, repeats: int) -> float:
    """Median over `repeats` of (CPU time of n_calls calls of fn) / n_calls, in ns."""
    samples = []
    loop = range(n_calls)
    fn()  # warm caches and lazily built state
    for _ in range(repeats):
        t0 = CLOCK()
        for _ in loop:
            fn()
        samples.append((CLOCK() - t0) / n_calls)
    return statistics.median(samples)


def _addr(b: bytes) -> int:
    """Address of a bytes object's data (for alignment), via cffi when the core is built."""
    ffi = getattr(native, "ffi", None)
    if ffi is None:
        return 0
    return int(ffi.cast("uintptr_t", ffi.from_buffer(b)))


def _sum16(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def super_packet(family: int = 4, segments: int = 45, mss: int = 1448) -> bytes:
    """A TSO super-packet as the kernel hands it over: TCP timestamps, checksum left partial."""
    rng = random.Random(2065)
    payload = rng.randbytes(segments * mss)
    tcp = bytearray(struct.pack("!HHIIBBHHH", 40000, 5001, 1, 1, 8 << 4, 0x18, 65535, 0, 0)
                    + b"\x01\x01\x08\x0a" + bytes(8)) + payload
    if family == 4:
        src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst))
        ip[10:12] = struct.pack("!H", ~_sum16(bytes(ip)) & 0xFFFF)
        pseudo = _sum16(src + dst + struct.pack("!BBH", 0, 6, len(tcp)))
        et = 0x0800
    else:
        src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
        ip = bytearray(struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64, src, dst))
        pseudo = _sum16(src + dst + struct.pack("!IxxxB", len(tcp), 6))
        et = 0x86DD
    tcp[16:18] = struct.pack("!H", pseudo)  # partial: pseudo-header sum only
    return bytes.fromhex("020000000002020000000001") + struct.pack("!H", et) + bytes(ip) + bytes(tcp)


def measure(quick: bool) -> dict:
    R = 5 if quick else 11
    scale = 1 if quick else 3
    res: dict = {"implementation": native.IMPLEMENTATION, "quick": quick}
    if hasattr(native, "impl_info"):
        res["impl_info"] = native.impl_info()

    # ---- checksum vs memcpy, over source buffers of both alignments bytes objects get here
    # (glibc malloc: 16-byte aligned, +32 B of bytes header -> data at 0 or 16 mod 32); the wide
    # path is ~1.4x faster on 32-byte aligned data, so the headline figure averages the two classes.
    rng = random.Random(1)
    for label, size, calls in (("1500", 1500, 20000 * scale), ("64k", 65536, 2000 * scale)):
        by_class = {}
        keep = []
        for _ in range(64):
            b = rng.randbytes(size)
            keep.append(b)
            by_class.setdefault(_addr(b) % 32, b)
            if len(by_class) >= 2:
                break
        dst = bytearray(size)
        t_ck_all, t_cp_all = [], []
        for cls, src in sorted(by_class.items()):
            mv = memoryview(src)

            def copy():
                dst[:] = mv

            t_ck = per_call_ns(lambda: native.checksum(src), calls, R)
            t_cp = per_call_ns(copy, calls, R)
            t_ck_all.append(t_ck)
            t_cp_all.append(t_cp)
            res[f"checksum_{label}_align{cls}_GBps"] = round(size / t_ck, 2)
        t_ck, t_cp = statistics.fmean(t_ck_all), statistics.fmean(t_cp_all)
        res[f"checksum_{label}_ns"] = round(t_ck, 1)
        res[f"memcpy_{label}_ns"] = round(t_cp, 1)
        res[f"checksum_{label}_GBps"] = round(size / t_ck, 2)
        res[f"memcpy_{label}_GBps"] = round(size / t_cp, 2)
        res[f"checksum_{label}_vs_memcpy"] = round(t_cp / t_ck, 3)
        if getattr(native, "ffi", None) is not None:
            ffi = native.ffi
            dst_c = ffi.from_buffer(dst)
            src = keep[0]
            t_mm = per_call_ns(lambda: ffi.memmove(dst_c, src, size), calls, R)
            res[f"ffi_memmove_{label}_ns"] = round(t_mm, 1)
            c_ck = native.lib.a2065_checksum  # the bare cffi call: what the Python wrapper adds
            res[f"checksum_{label}_bare_cffi_ns"] = round(per_call_ns(lambda: c_ck(src, size, 0), calls, R), 1)

    # ---- FCS vs zlib. The design never makes one Python call per frame: the FCS is computed in C
    # inside segment() (Segmenter.run(..., append_fcs=True)), or for frames already in a buffer by
    # one native.fcs_frames() call per batch. Headline: the batch API per frame (45 frames of
    # 1514 B, laid out as segment() writes them) against zlib.crc32 per frame, same run. The
    # single-call figure (one cffi call per frame: ~60-70 % of it is call overhead) is kept as
    # fcs_1514_single_call_ns so nobody is misled.
    frame = rng.randbytes(1514)
    calls = 20000 * scale
    t_fcs = per_call_ns(lambda: native.fcs(frame), calls, R)
    t_z = per_call_ns(lambda: zlib.crc32(frame).to_bytes(4, "little"), calls, R)
    nb = 45
    batch = bytearray()
    tab = array.array("I")
    for _ in range(nb):
        tab.extend((len(batch), 1514))
        batch += rng.randbytes(1514) + bytes(4)
    t_batch = per_call_ns(lambda: native.fcs_frames(batch, tab), 2000 * scale, R) / nb
    res["fcs_1514_single_call_ns"] = round(t_fcs, 1)
    res["fcs_1514_single_call_speedup_vs_zlib"] = round(t_z / t_fcs, 3)
    res["fcs_1514_batch_ns"] = round(t_batch, 1)
    res["fcs_1514_ns"] = round(t_batch, 1)
    res["zlib_fcs_1514_ns"] = round(t_z, 1)
    res["fcs_1514_speedup_vs_zlib"] = round(t_z / t_batch, 3)
    big = rng.randbytes(65536)
    t_c64 = per_call_ns(lambda: native.crc32(big), 500 * scale, R)
    t_z64 = per_call_ns(lambda: zlib.crc32(big), 500 * scale, R)
    res["crc32_64k_GBps"] = round(65536 / t_c64, 2)
    res["zlib_crc32_64k_GBps"] = round(65536 / t_z64, 2)

    # ---- segment. Headline segment_64k_us: the hot-path call, Segmenter.run: one C call that
    # writes the 45 frames + FCS into the preallocated buffer and their (offset, length) table.
    # Next to it what a caller adds to get Python objects: + views (a memoryview per frame),
    # + take (views into one bytes copy: what the bridge queues), and native.segment(), a list of
    # 45 bytes objects (segment_64k_list_us, the old headline).
    sp4, sp6 = super_packet(4), super_packet(6)
    assert len(sp4) == 65226, len(sp4)
    kw = dict(gso_size=1448, csum=native.CSUM_PARTIAL, append_fcs=True)
    kw_nofcs = dict(gso_size=1448, csum=native.CSUM_PARTIAL)
    out = native.segment(sp4, **kw)
    assert len(out) == 45 and all(len(f) == 1518 for f in out)
    out_bytes = sum(len(f) for f in out)
    calls = 300 * scale
    s = native.Segmenter()
    run, views, take = s.run, s.views, s.take
    assert [bytes(v) for v in views(run(sp4, **kw))] == out
    t_run = per_call_ns(lambda: run(sp4, **kw), calls, R)
    t_views = per_call_ns(lambda: views(run(sp4, **kw)), calls, R)
    t_run_nofcs = per_call_ns(lambda: run(sp4, **kw_nofcs), calls, R)
    t_list = per_call_ns(lambda: native.segment(sp4, **kw), calls, R)
    t_seg = t_run
    res["segment_64k_frames"] = len(out)
    res["segment_64k_us"] = round(t_run / 1000, 2)
    res["segment_64k_run_us"] = round(t_run / 1000, 2)
    res["segment_64k_views_us"] = round(t_views / 1000, 2)
    res["segment_64k_take_us"] = round(per_call_ns(lambda: take(run(sp4, **kw)), calls, R) / 1000, 2)
    res["segment_64k_list_us"] = round(t_list / 1000, 2)
    res["segment_64k_nofcs_us"] = round(t_run_nofcs / 1000, 2)
    res["segment_64k_ipv6_us"] = round(per_call_ns(lambda: run(sp6, **kw), calls, R) / 1000, 2)
    # the FCS as the design computes it: inside segment(), per frame, against zlib per frame
    fcs_seg = max(0.0, t_run - t_run_nofcs) / len(out)
    res["fcs_in_segment_ns_per_frame"] = round(fcs_seg, 1)
    res["fcs_in_segment_speedup_vs_zlib"] = round(t_z / fcs_seg, 2) if fcs_seg else None
    okw = dict(gso_size=1448, csum=oracle.CSUM_PARTIAL, append_fcs=True)
    assert oracle.segment(sp4, **okw) == out
    t_or = per_call_ns(lambda: oracle.segment(sp4, **okw), 10 * scale, 3 if quick else 5)
    res["segment_64k_oracle_us"] = round(t_or / 1000, 1)
    res["segment_64k_speedup_vs_oracle"] = round(t_or / t_seg, 1)
    dst = bytearray(out_bytes)
    src = memoryview(bytes(out_bytes))

    def copy_out():
        dst[:] = src

    t_copy = per_call_ns(copy_out, 2000 * scale, R)
    res["memcpy_output_bytes"] = out_bytes
    res["memcpy_output_us"] = round(t_copy / 1000, 3)
    res["segment_64k_vs_memcpy"] = round(t_seg / t_copy, 1)
    res["segment_64k_views_vs_memcpy"] = round(t_views / t_copy, 1)

    # ---- code paths (portable vs wide) where the core lets us choose
    set_impl = getattr(native, "_set_impl", None)
    if native.IMPLEMENTATION == "c" and set_impl is not None:
        paths = {}
        src64 = rng.randbytes(65536)
        # (checksum wide, crc level): level True = widest carry-less fold, 2 = 128-bit PCLMULQDQ
        for name, wide, crc in (("portable", False, False), ("wide128", True, 2), ("wide", True, True)):
            if not set_impl(wide, crc):
                continue
            info = native.impl_info()
            paths[name] = {
                "impl": info,
                "checksum_64k_GBps": round(65536 / per_call_ns(lambda: native.checksum(src64), 1000 * scale, R), 2),
                "fcs_1514_batch_ns": round(per_call_ns(lambda: native.fcs_frames(batch, tab), 300 * scale, R) / nb, 1),
                "segment_64k_us": round(per_call_ns(lambda: run(sp4, **kw), 100 * scale, R) / 1000, 2),
            }
        set_impl(True, True) or set_impl(False, False)
        res["paths"] = paths
    return res


def table(res: dict) -> str:
    rows = [
        ("implementation", res["implementation"], ""),
        ("checksum 1500 B", f'{res["checksum_1500_GBps"]} GB/s', f'memcpy {res["memcpy_1500_GBps"]} GB/s, ratio {res["checksum_1500_vs_memcpy"]}'),
        ("checksum 64 KB", f'{res["checksum_64k_GBps"]} GB/s', f'memcpy {res["memcpy_64k_GBps"]} GB/s, ratio {res["checksum_64k_vs_memcpy"]}; '
         + ", ".join(f"{k.split('_')[2]} {v}" for k, v in res.items() if k.startswith("checksum_64k_align"))),
        ("  bare cffi call 1500 B", f'{res.get("checksum_1500_bare_cffi_ns", "-")} ns', f'API call {res["checksum_1500_ns"]} ns; cffi memmove {res.get("ffi_memmove_1500_ns", "-")} ns, bytearray copy {res["memcpy_1500_ns"]} ns'),
        ("FCS 1514 B, batch per frame", f'{res["fcs_1514_ns"]} ns', f'zlib {res["zlib_fcs_1514_ns"]} ns per frame, speedup {res["fcs_1514_speedup_vs_zlib"]}x (native.fcs_frames, 45 frames per call)'),
        ("  inside segment() per frame", f'{res["fcs_in_segment_ns_per_frame"]} ns', f'speedup {res["fcs_in_segment_speedup_vs_zlib"]}x ((run with FCS - without) / 45)'),
        ("  one Python call per frame", f'{res["fcs_1514_single_call_ns"]} ns', f'speedup {res["fcs_1514_single_call_speedup_vs_zlib"]}x (native.fcs: mostly call overhead)'),
        ("CRC-32 64 KB", f'{res["crc32_64k_GBps"]} GB/s', f'zlib {res["zlib_crc32_64k_GBps"]} GB/s'),
        ("segment 64 KB -> 45 + FCS", f'{res["segment_64k_us"]} us', f'Segmenter.run; oracle {res["segment_64k_oracle_us"]} us, speedup {res["segment_64k_speedup_vs_oracle"]}x'),
        ("  vs copying output once", f'{res["segment_64k_vs_memcpy"]}x', f'copy of {res["memcpy_output_bytes"]} B: {res["memcpy_output_us"]} us; run + views {res["segment_64k_views_vs_memcpy"]}x'),
        ("  run + views", f'{res["segment_64k_views_us"]} us', "a memoryview per frame"),
        ("  run + take (bridge)", f'{res["segment_64k_take_us"]} us', "views into one bytes copy"),
        ("  native.segment() list", f'{res["segment_64k_list_us"]} us', "45 bytes objects"),
        ("  without FCS", f'{res["segment_64k_nofcs_us"]} us', "Segmenter.run"),
        ("  IPv6", f'{res["segment_64k_ipv6_us"]} us', ""),
    ]
    for name, p in res.get("paths", {}).items():
        rows.append((f"path {name}", f'seg {p["segment_64k_us"]} us',
                     f'checksum 64 KB {p["checksum_64k_GBps"]} GB/s, FCS batch {p["fcs_1514_batch_ns"]} ns ({p["impl"]})'))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (well under a minute)")
    a = ap.parse_args(argv)
    t0 = time.time()
    res = measure(a.quick)
    res["wall_s"] = round(time.time() - t0, 1)
    res["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                      "loadavg": [round(x, 2) for x in os.getloadavg()],
                      "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(table(res))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
