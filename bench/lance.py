#!/usr/bin/env python3
"""Throughput of the Am7990 model in ``fast`` timing, next to a bare copy loop (the floor).

    python bench/lance.py --json FILE [--quick] [--profile]

Receive: a register-level harness in this process plays the driver as leanly as a driver can:
it offers a frame with ``chip.receive``; every 8 frames (one "interrupt") it acks CSR0
(RAP=0, RDP=RINT|INEA), copies each frame out of its buffer and gives the descriptor back
(RMD3=0, RMD1 high byte = OWN) with direct RAM writes, as Linux does.
Transmit: per frame it copies the frame into the TX buffer, writes TMD2 and then the TMD1 byte
OWN|STP|ENP, and writes RDP=INEA|TDMD (the chip sends it at once in fast timing and calls the
``transmit`` callback); every 3 frames it acks TINT and clears STP|ENP of the finished
descriptors.
The driver's copies go through memoryviews of the RAM and of its buffer: a bytearray slice store
from bytes or a memoryview first copies the source into a temporary bytearray (CPython), a cost
of the harness, not of the chip.
Driver loop alone (``*_harness_ns_per_frame``): the same loop with the chip's calls replaced by
C-level no-ops, in the same run; ``*_chip_ns_per_frame`` = the model's figure minus it, what
the chip itself costs per frame.
Floor: the same number of frames copied into a bytearray by a bare Python loop, in the same run.
``*_vs_copy_floor`` is time(model) / time(floor) for the same frames.

Frame sizes: "1514" = a full-size frame without FCS (1518 on the wire); "64" = the minimum,
60 bytes + FCS. Also reported: the full ``LinuxA2065Driver`` over the ``A2065`` board bus
(frames received per second with the driver's bus-level copy and with ``fast_copy``).

Results and the reproducing command are kept in BENCHMARKS.md ("## Chip (lance)").
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lance import Am7990, RamDma  # noqa: E402

# Linux layout (reference section 10): init 0x8000, RX ring 0x8018, TX ring 0x8098, buffers 1544.
IB, RXR, TXR, RXB, TXB, BUF = 0x0000, 0x0018, 0x0098, 0x00B8, 0x6138, 1544
NRX, NTX = 16, 4
MAC = bytes.fromhex("008010123456")
INIT, STRT, STOP, TDMD, INEA = 0x0001, 0x0002, 0x0004, 0x0008, 0x0040
IDON, TINT, RINT = 0x0100, 0x0200, 0x0400
_H = struct.Struct(">H")
_HHHH = struct.Struct(">HHHH")
BATCH = 8

# CPU time of this process: the machines these run on are shared (other jobs steal the cores),
# and wall-clock figures then measure the neighbours. --wall switches to time.perf_counter.
_clock = time.process_time


def make_chip():
    ram = bytearray(0x8000)
    sent = [0]

    def transmit(frame, t):
        sent[0] += 1
        return True

    chip = Am7990(RamDma(ram, 0x7FFF), transmit=transmit, timing="fast")
    # init block (big-endian words; PADR byte-swapped within words)
    _HHHH.pack_into(ram, IB, 0, MAC[1] << 8 | MAC[0], MAC[3] << 8 | MAC[2], MAC[5] << 8 | MAC[4])
    _HHHH.pack_into(ram, IB + 8, 0, 0, 0, 0)
    _HHHH.pack_into(ram, IB + 16, 0x8000 | RXR, 4 << 13, 0x8000 | TXR, 2 << 13)
    for i in range(NRX):
        _HHHH.pack_into(ram, RXR + 8 * i, (0x8000 | RXB) + BUF * i, 0x8000, (-BUF) & 0xFFFF, 0)
    for i in range(NTX):
        _HHHH.pack_into(ram, TXR + 8 * i, (0x8000 | TXB) + BUF * i, 0x0000, 0xF000, 0)
    w = chip.write_rap
    d = chip.write_rdp
    w(0), d(STOP), w(1), d(0x8000), w(2), d(0), w(3), d(0x0004), w(0), d(INIT)
    assert chip.read_rdp() & IDON, "INIT did not complete"
    d(IDON)
    d(INEA | STRT)
    assert chip.read_rdp() == 0x0073, hex(chip.read_rdp())
    return chip, ram, sent


def frame_of(length: int) -> bytes:
    hdr = MAC + bytes.fromhex("020000000001") + b"\x88\xb5"
    return (hdr + bytes(i & 0xFF for i in range(length)))[:length]


def rx_model(n: int, length: int, harness_only: bool = False) -> float:
    """Seconds to receive n frames through the chip with a lean driver. ``harness_only``: the
    same driver loop with the chip's calls replaced by C-level no-ops (the ack re-arms the MCNT of
    every RMD with two strided slice stores, what the chip would have written): the harness's own
    share of the figure."""
    chip, ram, _ = make_chip()
    f = frame_of(length)
    receive = chip.receive
    write_rdp = chip.write_rdp
    if harness_only:
        receive = set().discard
        mcnt = length + 4
        hi, lo = bytes([mcnt >> 8]) * NRX, bytes([mcnt & 0xFF]) * NRX
        end = RXR + 8 * NRX

        def write_rdp(v):
            ram[RXR + 6:end:8] = hi
            ram[RXR + 7:end:8] = lo
    out = memoryview(bytearray(BUF))
    ramv = memoryview(ram)  # memoryview stores copy once (a bytearray slice store from any
    # other type first copies the source into a temporary bytearray)
    idx = 0
    t0 = _clock()
    for k in range(n // BATCH):
        for _ in range(BATCH):
            receive(f)
        write_rdp(RINT | INEA)                       # the handler's ack (RAP is 0)
        for _ in range(BATCH):                        # RX loop: copy out, give back
            d = RXR + 8 * idx
            mcnt = _H.unpack_from(ram, d + 6)[0] & 0xFFF
            b = RXB + BUF * idx
            out[:mcnt - 4] = ramv[b:b + mcnt - 4]
            ram[d + 6] = 0
            ram[d + 7] = 0
            ram[d + 2] = 0x80                         # rmd1_bits = OWN (one byte)
            idx = (idx + 1) & (NRX - 1)
    dt = _clock() - t0
    c = chip.counters
    assert harness_only or c.rx_delivered == (n // BATCH) * BATCH and c.rx_missed == 0, c
    return dt


def rx_floor(n: int, length: int) -> float:
    """Seconds for the bare loop: copy the same frame into a bytearray n times."""
    f = frame_of(length)
    ram = bytearray(0x8000)
    off = 0
    t0 = _clock()
    for _ in range((n // BATCH) * BATCH):
        ram[off:off + length] = f
    return _clock() - t0


def tx_model(n: int, length: int, harness_only: bool = False) -> float:
    """Seconds to transmit n frames through the chip with a lean driver (``harness_only``: the
    driver loop with ``write_rdp`` a C-level no-op)."""
    chip, ram, sent = make_chip()
    f = frame_of(length)
    write_rdp = set().discard if harness_only else chip.write_rdp
    tmd2 = (-length) & 0xFFFF | 0xF000
    ramv = memoryview(ram)
    idx = 0
    t0 = _clock()
    for k in range(n):
        d = TXR + 8 * idx
        b = TXB + BUF * idx
        _H.pack_into(ram, d + 4, tmd2)
        ram[d + 6] = 0
        ram[d + 7] = 0
        ramv[b:b + length] = f
        ram[d + 2] = 0x83                             # OWN|STP|ENP (one byte)
        write_rdp(INEA | TDMD)
        idx = (idx + 1) & (NTX - 1)
        if idx == 3 or idx == 0:                      # reap: ack TINT, clear STP|ENP
            write_rdp(TINT | INEA)
            for j in range(NTX):
                ram[TXR + 8 * j + 2] &= 0x7C
    dt = _clock() - t0
    assert sent[0] == (0 if harness_only else n), (sent[0], n)
    return dt


def tx_floor(n: int, length: int) -> float:
    f = frame_of(length)
    ram = bytearray(0x8000)
    t0 = _clock()
    for _ in range(n):
        ram[0:length] = f
    return _clock() - t0


def driver_rx(n: int, length: int, fast_copy: bool) -> float:
    """Seconds to receive n frames through the board bus and the full Linux driver."""
    from a2065 import A2065
    from a2065.drivers import LinuxA2065Driver

    board = A2065(timing="fast")
    drv = LinuxA2065Driver(board, fast_copy=fast_copy, received_maxlen=16)
    drv.open()
    f = frame_of(length)
    receive = board.lance.receive
    t0 = _clock()
    for _ in range(n // BATCH):
        for _ in range(BATCH):
            receive(f)
        drv.service()
    dt = _clock() - t0
    assert drv.counters.rx_frames == (n // BATCH) * BATCH
    return dt


def best(fn, *args, repeat=3):
    return min(fn(*args) for _ in range(repeat))


def run(quick: bool) -> dict:
    n_big = 20_000 if quick else 200_000
    n_small = 20_000 if quick else 200_000
    n_drv = 400 if quick else 4_000
    rep = 3 if quick else 5
    res: dict = {"quick": quick, "python": platform.python_version(),
                 "implementation": platform.python_implementation(),
                 "machine": platform.machine(), "frames": {"rx": n_big, "tx": n_big}}
    for name, fn, floor, n, length in (
        ("rx_1514", rx_model, rx_floor, n_big, 1514),
        ("rx_64", rx_model, rx_floor, n_small, 60),
        ("tx_1514", tx_model, tx_floor, n_big, 1514),
        ("tx_64", tx_model, tx_floor, n_small, 60),
    ):
        t = best(fn, n, length, repeat=rep)
        tf = best(floor, n, length, repeat=rep)
        n_eff = (n // BATCH) * BATCH if name.startswith("rx") else n
        res[f"{name}_fps"] = round(n_eff / t)
        res[f"{name}_copy_floor_fps"] = round(n_eff / tf)
        res[f"{name}_vs_copy_floor"] = round(t / tf, 2)
        res[f"{name}_ns_per_frame"] = round(t / n_eff * 1e9)
        if length == 1514:  # the driver loop alone, and the rest: what the chip costs
            th = best(fn, n, length, True, repeat=rep)
            res[f"{name}_harness_ns_per_frame"] = round(th / n_eff * 1e9)
            res[f"{name}_chip_ns_per_frame"] = round((t - th) / n_eff * 1e9)
    for fc in (False, True):
        t = best(driver_rx, n_drv, 1514, fc, repeat=2)
        key = "driver_linux_rx_1514_fps" + ("_fast_copy" if fc else "_bus_copy")
        res[key] = round(((n_drv // BATCH) * BATCH) / t)
    res["goal_rx_1514_fps"] = 150_000
    res["goal_met"] = res["rx_1514_fps"] >= 150_000
    return res


def table(res: dict) -> str:
    lines = [f"{'path':<10} {'model fps':>12} {'floor fps':>12} {'model/floor':>12} "
             f"{'ns/frame':>10}"]
    for name in ("rx_1514", "rx_64", "tx_1514", "tx_64"):
        lines.append(f"{name:<10} {res[name + '_fps']:>12,} {res[name + '_copy_floor_fps']:>12,} "
                     f"{res[name + '_vs_copy_floor']:>12} {res[name + '_ns_per_frame']:>10,}")
    for name in ("rx_1514", "tx_1514"):
        lines.append(f"{name}: driver loop alone {res[name + '_harness_ns_per_frame']:,} ns/frame, "
                     f"the chip {res[name + '_chip_ns_per_frame']:,} ns/frame")
    lines.append(f"full Linux driver over the board, 1514-byte RX: "
                 f"{res['driver_linux_rx_1514_fps_bus_copy']:,} fps (bus copy), "
                 f"{res['driver_linux_rx_1514_fps_fast_copy']:,} fps (fast_copy)")
    lines.append(f"goal rx_1514 >= 150,000 fps: {'met' if res['goal_met'] else 'MISSED'}")
    return "\n".join(lines)


def profile(length: int = 1514, n: int = 40_000, path=None) -> str:
    """Top of a cProfile (by own time) of the RX path (or ``path``: rx_model / tx_model)."""
    pr = cProfile.Profile()
    pr.enable()
    (path or rx_model)(n, length)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(15)
    return s.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--quick", action="store_true", help="fewer frames (< 1 minute)")
    ap.add_argument("--wall", action="store_true",
                    help="time with the wall clock (perf_counter) instead of process CPU time")
    ap.add_argument("--profile", action="store_true",
                    help="print the top of a cProfile of the 1514-byte RX path")
    args = ap.parse_args(argv)
    global _clock
    if args.wall:
        _clock = time.perf_counter
    res = run(args.quick)
    res["clock"] = "wall" if args.wall else "process_cpu"
    print(table(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2, sort_keys=True)
            fh.write("\n")
    if args.profile:
        print("cProfile, receive path, 1514-byte frames:")
        print(profile())
        print("cProfile, transmit path, 1514-byte frames:")
        print(profile(path=tx_model, n=20_000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
