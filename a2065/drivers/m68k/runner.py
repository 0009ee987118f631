"""Run one 68000 scenario in this process and print its result as JSON on stdout.

machine68k holds one CPU per process, so tests and the benchmark start
``python3 -m a2065.drivers.m68k.runner SCENARIO 'JSON-ARGS'`` once per scenario (``run_scenario`` below
does that and parses the answer).

Scenarios
  driver          boot the driver program, send frames from the host side, collect what the
                  card transmits; returns the mailbox, frames, IRQ edges/latencies, counters
  callback_error  a card register read raises inside a machine68k callback (strict board)
  native_error    the same with a bare machine68k callback (no adapter): what machine68k does
  bus_error       the CPU reads an address nothing answers (adapter-made bus error, vector 2)
  reset_instruction  the CPU executes RESET (bus reset) after boot, then boots again
  idle            the idle loop for a number of cycles with or without a card (benchmark)
  mmio            a tight 68000 loop of word reads from RAP vs from RAM (benchmark)
"""
from __future__ import annotations

import json
import sys
import time

from lance.testing import trace_registers
from ..child import run_module
from . import FL_BUSY_IDLE, ST_RUNNING, image, mailbox_param_bytes, read_mailbox

BOOT_CYCLES = 2_000_000


def run_scenario(name: str, args: dict | None = None, *, timeout: float = 300) -> dict:
    """Run a scenario in a fresh interpreter; return its JSON result (raises on failure)."""
    return run_module("a2065.drivers.m68k.runner", [name, json.dumps(args or {})],
                      timeout=timeout, what=f"runner {name}")


# ---------------------------------------------------------------------------- helpers

def _make_boards(a: dict):
    from a2065 import A2065, RamCard

    boards, card = [], None
    for kind in a.get("chain", ["a2065"]):
        if kind == "a2065":
            b = A2065(serial=a.get("serial", 0x00123456), variant=a.get("variant", "commodore"),
                      timing=a.get("timing", "fast"), strict=a.get("strict", True))
            card = card or b
        elif kind == "ramcard":
            b = RamCard(512 << 10)
        elif kind == "ramcard64":
            b = RamCard(64 << 10, manufacturer=0x1234, product=0x42)
        else:
            raise ValueError(kind)
        boards.append(b)
    return boards, card


def _host(boards, a: dict):
    from a2065.adapters.machine68k import Machine68kHost

    host = Machine68kHost(boards, cpu_hz=a.get("cpu_hz", 7_093_790),
                          max_slice_cycles=a.get("max_slice_cycles", 50_000))
    host.load(image())
    for addr, data in mailbox_param_bytes(ip=a.get("ip", 0x0A00020F),
                                          flags=a.get("flags", 0)).items():
        host.load(data, addr)
    host.reset()
    return host


def _mailbox(host) -> dict:
    return read_mailbox(host.read_block)


def _boot(host) -> bool:
    return host.run_until(lambda: _mailbox(host)["state"] >= ST_RUNNING,
                          max_cycles=BOOT_CYCLES, step_cycles=5_000)


# ---------------------------------------------------------------------------- scenarios

def scenario_driver(a: dict) -> dict:
    boards, card = _make_boards(a)
    sent_frames = []
    tx_log = []

    via = a.get("via", "direct")
    cable = card_end = host_end = None
    if via == "cable":
        from pcap_backend.backends.cable import VirtualCable

        cable = VirtualCable(bit_rate=a.get("bit_rate", 10_000_000))
        host_end, card_end = cable.a, cable.b
    if card is not None:
        def transmit(frame, t_ns):
            frame = bytes(frame)
            tx_log.append({"t_ns": t_ns, "frame": frame.hex()})
            if card_end is not None:
                return card_end.send(frame[:-4], t_ns)   # cables carry frames without FCS
            return True
        card.lance.transmit = transmit
    trace = []
    if card is not None and a.get("trace"):
        trace_registers(card.lance, trace)
    host = _host(boards, a)
    booted = _boot(host)
    boot = {"booted": booted, "trace_len": len(trace), "cycles": host.cycles, "mailbox": _mailbox(host),
            "irq_edges": len(host.irq_edges)}
    statuses = []
    spacing = int(a.get("spacing_cycles", 30_000))
    frames = [bytes.fromhex(h) for h in a.get("frames", [])]
    if booted and card is not None:
        for i, f in enumerate(frames):
            if via == "cable":
                host_end.send(f, host.now_ns())
                # deliver when the cable says the frame has arrived
                while True:
                    pk = card_end.poll(host.now_ns(), 64)
                    if pk:
                        for p in pk:
                            statuses.append(card.lance.receive(p.frame).name)
                        break
                    host.run(500)
            else:
                statuses.append(card.lance.receive(f).name)
            sent_frames.append(f.hex())
            if spacing:
                host.run(spacing)
        host.run(int(a.get("settle_cycles", 100_000)))
    replies_on_cable = []
    if host_end is not None:
        replies_on_cable = [p.frame.hex() for p in host_end.poll(host.now_ns() + 10**9, 1000)]
    lat = list(host.irq_latencies_ns)
    return {
        "boot": boot,
        "mailbox": _mailbox(host),
        "statuses": statuses,
        "sent": sent_frames,
        "tx": tx_log,
        "replies_on_cable": replies_on_cable,
        "irq_edges": list(host.irq_edges),
        "irq_latencies_ns": lat,
        "cycles": host.cycles,
        "now_ns": host.now_ns(),
        "chip_now": card.now if card else None,
        "stats": host.stats,
        "invalid_accesses": list(host.invalid_accesses),
        "chip_counters": vars(card.lance.counters) if card else None,
        "board_stats": card.stats if card else None,
        "bases": [getattr(b.autoconfig, "base", None) for b in boards],
        "states": [b.autoconfig.state for b in boards],
        "csr0": card.lance.csr0 if card else None,
        "padr": card.lance.padr.hex() if card else None,
        "trace": trace,
    }


def scenario_callback_error(a: dict) -> dict:
    boards, card = _make_boards({"strict": True, **a})
    host = _host(boards, a)
    booted = _boot(host)
    calls = {"n": 0}
    orig = card.lance.read_rdp

    def failing_read_rdp():
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("injected failure in read_rdp")
        return orig()
    card.lance.read_rdp = failing_read_rdp
    # a frame makes the driver's interrupt handler read CSR0 through the callback
    frame = bytes.fromhex(a["frame"])
    card.lance.receive(frame)
    out = {"booted": booted, "raised": None}
    try:
        host.run(200_000)
    except ValueError as e:
        out["raised"] = {"type": type(e).__name__, "message": str(e)}
    out["pc"] = host.cpu.r_pc()
    out["cycles_when_raised"] = host.cycles
    out["chip_now"] = card.now
    out["now_ns"] = host.now_ns()
    # the machine keeps running afterwards and the card keeps answering
    host.run(200_000)
    out["mailbox_after"] = _mailbox(host)
    out["errors_raised"] = host.errors_raised
    return out


def scenario_native_error(a: dict) -> dict:
    import machine68k
    from machine68k import CPUType, Machine

    m = Machine(CPUType.M68000, 64)
    cpu, mem = m.cpu, m.mem
    # $0: SSP, PC=$400; at $400: move.w $E90000,d0 ; moveq #1,d1 ; bra.s *
    mem.w32(0, 0x8000)
    mem.w32(4, 0x400)
    code = bytes.fromhex("303900E90000" "7201" "60FE")
    mem.w_block(0x400, code)
    seen = []

    def r16(addr):
        seen.append(addr)
        raise KeyError("raised inside r16")
    mem.set_special_range_read_funcs(0xE90000, 1, r8=lambda a: 0, r16=r16, r32=lambda a: 0)
    cpu.pulse_reset()
    out = {"raised": None, "version": getattr(machine68k, "__version__", None)}
    try:
        cpu.execute(1000)
    except KeyError as e:
        out["raised"] = {"type": "KeyError", "message": str(e)}
    from machine68k import Register
    out["pc"] = cpu.r_pc()
    out["d1"] = cpu.r_reg(Register.D1)
    out["callback_calls"] = len(seen)
    return out


def scenario_bus_error(a: dict) -> dict:
    boards, card = _make_boards(a)
    host = _host(boards, {"flags": FL_BUSY_IDLE, **a})   # not STOPped: w_pc takes effect
    booted = _boot(host)
    # at $8000: tst.w $C00000 ; nop ; bra.s * -- $C00000 is nothing on this machine
    host.load(bytes.fromhex("4A7900C00000" "4E71" "60FE"), 0x8000)
    host.cpu.w_pc(0x8000)
    host.run(10_000)
    return {"booted": booted, "mailbox": _mailbox(host), "invalid": list(host.invalid_accesses),
            "bus_errors": host.stats["bus_errors"]}


def scenario_reset_instruction(a: dict) -> dict:
    """After boot the CPU executes RESET; then the CPU is reset and the driver boots again."""
    boards, card = _make_boards(a)
    host = _host(boards, {"flags": FL_BUSY_IDLE, **a})
    booted = _boot(host)
    before = [b.autoconfig.state for b in boards]
    host.load(bytes.fromhex("4E70" "60FE"), 0x8000)        # reset ; bra.s *
    host.cpu.w_pc(0x8000)
    host.run(1_000)
    after_reset = [b.autoconfig.state for b in boards]
    window = [host.mem.cpu_r8(0xE80000 + off) for off in (0, 2, 4, 6)]
    old_base_rap = host.mem.cpu_r16(0xE94002)
    host.load(bytes(2), 0x400 + 0x06)                       # mailbox.state = 0
    host.reset()
    rebooted = _boot(host)
    return {"booted": booted, "before": before, "after_reset": after_reset,
            "window": window, "old_base_rap": old_base_rap, "bus_resets": host.bus_resets,
            "rebooted": rebooted, "states": [b.autoconfig.state for b in boards],
            "mailbox": _mailbox(host), "csr0": card.lance.csr0 if card else None}


def scenario_idle(a: dict) -> dict:
    """The driver idling in its busy loop for ``cycles`` (2 instructions per iteration)."""
    with_card = a.get("card", True)
    boards, card = _make_boards({"chain": ["a2065"] if with_card else []})
    host = _host(boards, {"flags": FL_BUSY_IDLE})
    booted = _boot(host)
    mb0 = _mailbox(host)
    c0 = host.cycles
    t0 = time.perf_counter()
    host.run(int(a.get("cycles", 20_000_000)))
    wall = time.perf_counter() - t0
    mb1 = _mailbox(host)
    iters = (mb1["idle"] - mb0["idle"]) & 0xFFFFFFFF
    return {"booted": booted, "state": mb1["state"], "wall_s": wall, "cycles": host.cycles - c0,
            "instructions": 2 * iters, "ips": 2 * iters / wall, "cps": (host.cycles - c0) / wall,
            "slices": host.stats["slices"], "emulated_ns": host.now_ns(),
            "interrupts": mb1["interrupts"]}


def scenario_mmio(a: dict) -> dict:
    """Word reads of RAP in a 68000 loop vs the same loop reading RAM: per-access cost."""
    boards, card = _make_boards({})
    host = _host(boards, {"flags": FL_BUSY_IDLE})       # not STOPped: w_pc takes effect
    booted = _boot(host)
    base = _mailbox(host)["base"]
    n = int(a.get("reads", 100_000))
    res = {}
    for what, addr in (("ram", 0x9000), ("rap", base + 0x4002)):
        # $8000: lea addr,a0 ; move.l #n-1,d1 ; loop: move.w (a0),d0 ; subq.l #1,d1 ; bpl.s loop
        #        ; bra.s *
        code = (bytes.fromhex("41F9") + addr.to_bytes(4, "big") + bytes.fromhex("223C")
                + (n - 1).to_bytes(4, "big") + bytes.fromhex("3010" "5381" "6AFA" "60FE"))
        host.load(code, 0x8000)
        host.cpu.w_sr(0x2700)
        host.cpu.w_pc(0x8000)
        r0 = host.stats["mmio_reads"]
        t0 = time.perf_counter()
        host.run(n * 30)  # 8+8+10 = 26 cycles per pass on a 68000, then bra.s * spins
        res[what] = {"wall_s": time.perf_counter() - t0, "mmio_reads": host.stats["mmio_reads"] - r0}
    per = (res["rap"]["wall_s"] - res["ram"]["wall_s"]) / n
    return {"booted": booted, "reads": n, "runs": res, "mmio_word_access_ns": per * 1e9}


SCENARIOS = {
    "driver": scenario_driver,
    "callback_error": scenario_callback_error,
    "native_error": scenario_native_error,
    "bus_error": scenario_bus_error,
    "reset_instruction": scenario_reset_instruction,
    "idle": scenario_idle,
    "mmio": scenario_mmio,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0]
    args = json.loads(argv[1]) if len(argv) > 1 else {}
    out = SCENARIOS[name](args)
    sys.stdout.write(json.dumps(out, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))
                     + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
