"""Run the real Linux A2065 driver on machine68k with cards attached; one machine per process.

``LinuxMachine`` is the host side of the harness: it boots the image, keeps ``jiffies`` in step
with emulated time, issues commands (open, close, receive mode, remove), feeds the transmit slots
(what the network stack would hand to ``ndo_start_xmit``) and takes what ``netif_rx`` passed up.

Tests and the benchmark run scenarios in a fresh interpreter:
``python -m a2065.drivers.linux.runner SCENARIO JSON-ARGS`` prints one JSON document
(``run_scenario`` does this and parses it).

Scenario ``script`` runs a list of steps (each a dict with ``op``) and returns one result per step:
  open / close {dev}                 the core's dev_open / dev_close; result = the int returned
  rx_mode {dev, mc: [hex], flags}    set the multicast list and IFF_PROMISC/IFF_ALLMULTI
  send {dev, frames: [hex]}          queue frames for ndo_start_xmit, run until the driver took
                                     them all and the card has sent what it was given
  offer {dev, frames: [hex], has_fcs, paced}  frames arriving from the wire; paced: wait until
                                     the receiver can take each one (else back to back)
  run {ms}                           let emulated time pass
  stall {dev}                        the chip stops behind the driver's back (CSR0 = STOP)
  remove                             module exit: the driver's remove for every board
  save                               a snapshot of the whole machine (CPU, RAM, cards) as hex
Every step's result also carries the wire frames sent since the previous step (``tx``) and the
frames received by the host (``rx``). The final result has the log, counters and stats.
"""
from __future__ import annotations

import base64
import json
import struct
import sys
import time

from lance.testing import trace_registers
from ..child import run_module
from . import (HC_CLOSE, HC_OPEN, HC_REMOVE, HC_SET_RX_MODE, HI_ADDR, HOSTIF, HS_FAULT, HS_READY,
               HZ, RAM_KIB, SLOT, STATS_FIELDS, hostif_field, image, read_hostif)

PAL_HZ = 7_093_790
JIFFY_NS = 1_000_000_000 // HZ

#: struct net_device (kshim.h): offsets the host reads
DEV_NAME, DEV_BASE_ADDR, DEV_MEM_START, DEV_FLAGS, DEV_STATE = 0, 16, 20, 32, 36
DEV_WATCHDOG_TIMEO, DEV_STATS, DEV_INDEX, DEV_ADDR = 40, 52, 144, 148
KSHIM_QUEUE_STOPPED = 0x2

_CPU_REGS = ("D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7",
             "A0", "A1", "A2", "A3", "A4", "A5", "A6", "USP", "ISP")


def run_scenario(name: str, args: dict | None = None, *, timeout: float = 600) -> dict:
    """Run a scenario in a fresh interpreter; return its JSON result (raises on failure)."""
    return run_module("a2065.drivers.linux.runner", [name], stdin=json.dumps(args or {}),
                      timeout=timeout, what=f"runner {name}")


class HarnessError(RuntimeError):
    """The 68000 side faulted or did not answer in time."""


class LinuxMachine:
    """A 68000 with 256 KiB of RAM running the Linux driver, and A2065 cards on its Zorro bus."""

    def __init__(self, *, serials=(0x00123456,), timing: str = "fast", cpu_hz: int = PAL_HZ,
                 variant: str = "commodore", boards=None, max_slice_cycles: int = 20_000,
                 image_bytes: bytes | None = None, ram_fast_path: bool = True):
        from a2065 import A2065

        from .fasthost import HarnessHost, RamFastPathHost

        self.cards = list(boards) if boards is not None else [
            A2065(serial=s, timing=timing, variant=variant, strict=True) for s in serials]
        self.wire = []                          # (card index, frame with FCS, t_ns)
        for i, card in enumerate(self.cards):
            card.lance.transmit = self._transmitter(i)
        host_cls = RamFastPathHost if ram_fast_path else HarnessHost
        self.host = host_cls(self.cards, ram_kib=RAM_KIB, cpu_hz=cpu_hz,
                             max_slice_cycles=max_slice_cycles)
        self.cpu_hz = cpu_hz
        self.jiffy_cycles = max(1, cpu_hz // HZ)
        self.image = image_bytes or image()
        self.received = []                      # (dev, frame) from netif_rx
        self.sink = None                        # or callback(dev, frame) instead of `received`
        self._consts = {}
        self._jiffies = None
        self._txq_head = None                   # host-written counters: our copy, read once
        self._rxq_tail = None
        self.on_transmit = None                 # optional callback(card index, frame, t_ns)

    def _transmitter(self, i):
        def transmit(frame, t_ns):
            frame = bytes(frame)
            self.wire.append((i, frame, t_ns))
            if self.on_transmit is not None:
                return self.on_transmit(i, frame, t_ns)
            return True
        return transmit

    # ---------------------------------------------------------------- memory helpers
    def hi(self) -> dict:
        return read_hostif(self.host.read_block)

    def _set(self, name: str, value: int) -> None:
        addr, data = hostif_field(name, value)
        self.host.load(data, addr)

    def _get(self, name: str) -> int:
        off, fmt = HOSTIF[name]
        return struct.unpack(fmt, self.host.read_block(HI_ADDR + off, struct.calcsize(fmt)))[0]

    def _const(self, name: str) -> int:
        """A field the 68000 sets once before READY and never changes (queue addresses, sizes)."""
        v = self._consts.get(name)
        if v is None:
            v = self._get(name)
            if self._get("state") == HS_READY:
                self._consts[name] = v
        return v

    def r32(self, addr: int) -> int:
        return struct.unpack(">I", self.host.read_block(addr, 4))[0]

    # ---------------------------------------------------------------- time
    def tick(self) -> None:
        j = (self.host.now_ns() // JIFFY_NS) & 0xFFFFFFFF
        if j != self._jiffies:
            self._jiffies = j
            self._set("jiffies", j)
            self.host.ring()

    def run(self, cycles: int) -> None:
        """Run ``cycles`` of CPU time, keeping jiffies current, collecting received frames."""
        end = self.host.cycles + int(cycles)
        while self.host.cycles < end:
            self.tick()
            self.host.run(min(self.jiffy_cycles, end - self.host.cycles))
            self._check()
            self.collect()

    def run_ms(self, ms: float) -> None:
        self.run(int(self.cpu_hz * ms / 1000))

    def run_until(self, cond, *, max_ms: float = 2000, step_cycles: int | None = None) -> bool:
        step = step_cycles or max(1, self.jiffy_cycles // 10)
        end = self.host.cycles + int(self.cpu_hz * max_ms / 1000)
        while not cond():
            if self.host.cycles >= end:
                return False
            self.tick()
            self.host.run(min(step, end - self.host.cycles))
            self._check()
            self.collect()
        return True

    def _check(self) -> None:
        if self._get("state") == HS_FAULT:
            h = self.hi()
            raise HarnessError(f"68000 exception: vector {h['fault_vector']} at pc "
                               f"${h['fault_pc']:06X}\n{self.log()}")

    # ---------------------------------------------------------------- boot and commands
    def boot(self, max_ms: float = 3000) -> dict:
        self.host.load(self.image)
        self.host.reset()
        if not self.run_until(lambda: self._get("state") == HS_READY, max_ms=max_ms):
            raise HarnessError(f"no READY after {max_ms} ms: {self.hi()}\n{self.log()}")
        return self.hi()

    def command(self, cmd: int, arg: int = 0, *, max_ms: float = 1000) -> int:
        self._set("cmd_arg", arg)
        self._set("cmd", cmd)
        self.host.ring()
        if not self.run_until(lambda: self._get("cmd") == 0, max_ms=max_ms):
            raise HarnessError(f"command {cmd} not done in {max_ms} ms\n{self.log()}")
        return self._get("cmd_result")

    def open(self, dev: int = 0) -> int:
        return self.command(HC_OPEN, dev)

    def close(self, dev: int = 0) -> int:
        return self.command(HC_CLOSE, dev)

    def remove(self) -> int:
        return self.command(HC_REMOVE, 0)

    def set_rx_mode(self, dev: int = 0, mc=(), flags: int = 0) -> int:
        mc = [bytes(m) for m in mc]
        if len(mc) > self._get("mc_max"):
            raise ValueError("too many multicast addresses for the harness")
        if mc:
            self.host.load(b"".join(mc), self._get("mc_addrs"))
        self._set("mc_count", len(mc))
        self._set("dev_flags", flags)
        return self.command(HC_SET_RX_MODE, dev)

    # ---------------------------------------------------------------- frames
    def _head(self) -> int:
        if self._txq_head is None:
            self._txq_head = self._get("txq_head")
        return self._txq_head

    def tx_space(self) -> bool:
        h, t, n = self._head(), self._get("txq_tail"), self._const("txq_slots")
        if (h - t) & 0xFFFFFFFF >= n:
            return False
        skb, _, _, _ = self._slot("txq", h, n)
        return skb != 0

    def _slot(self, q: str, index: int, n: int):
        addr = self._const(q) + (index & (n - 1)) * SLOT.size
        return SLOT.unpack(self.host.read_block(addr, SLOT.size))

    def queue(self, frame: bytes, dev: int = 0) -> bool:
        """Put one frame in the next transmit slot (False: no free slot now)."""
        if not self.tx_space():
            return False
        frame = bytes(frame)
        n = self._const("txq_slots")
        h = self._head()
        addr = self._const("txq") + (h & (n - 1)) * SLOT.size
        skb, data, _, _ = SLOT.unpack(self.host.read_block(addr, SLOT.size))
        self.host.load(frame, data)
        self.host.load(SLOT.pack(skb, data, len(frame), dev), addr)
        self._txq_head = (h + 1) & 0xFFFFFFFF
        self._set("txq_head", self._txq_head)
        self.host.ring()
        return True

    def send(self, frame: bytes, dev: int = 0, *, max_ms: float = 2000) -> None:
        if not self.run_until(self.tx_space, max_ms=max_ms):
            raise HarnessError(f"no transmit slot for {max_ms} ms: {self.hi()}\n{self.log()}")
        self.queue(frame, dev)

    def tx_drained(self) -> bool:
        return self._head() == self._get("txq_tail")

    def collect(self) -> int:
        """Take every frame netif_rx passed up; return how many."""
        if self._rxq_tail is None:
            self._rxq_tail = self._get("rxq_tail")
        h, t, n = self._get("rxq_head"), self._rxq_tail, self._const("rxq_slots")
        k = 0
        while t != h and k < n:
            _, data, length, dev = self._slot("rxq", t, n)
            f = self.host.read_block(data, length)
            if self.sink is not None:
                self.sink(dev, f)
            else:
                self.received.append((dev, f))
            t = (t + 1) & 0xFFFFFFFF
            k += 1
        if k:
            self._rxq_tail = t
            self._set("rxq_tail", t)
            self.host.ring()
        return k

    # ---------------------------------------------------------------- inspection
    def log(self) -> str:
        h = self.hi()
        size, head = h["log_size"], h["log_head"]
        if not size:
            return ""
        raw = self.host.read_block(h["log_buf"], size)
        n = min(head, size)
        start = (head - n) % size
        text = (raw[start:] + raw[:start])[:n] if n == size else raw[:n]
        return text.decode("latin-1")

    def dev_addr(self, dev: int = 0) -> int:
        return self._get(f"dev{dev}")

    def stats(self, dev: int = 0) -> dict:
        addr = self._get(f"stats{dev}")
        if not addr:
            return {}
        raw = self.host.read_block(addr, 4 * len(STATS_FIELDS))
        return dict(zip(STATS_FIELDS, struct.unpack(f">{len(STATS_FIELDS)}I", raw)))

    def netdev(self, dev: int = 0) -> dict:
        a = self.dev_addr(dev)
        raw = self.host.read_block(a, 160)
        return {
            "addr": a,
            "name": raw[DEV_NAME:DEV_NAME + 16].split(b"\0")[0].decode(),
            "base_addr": struct.unpack_from(">I", raw, DEV_BASE_ADDR)[0],
            "mem_start": struct.unpack_from(">I", raw, DEV_MEM_START)[0],
            "flags": struct.unpack_from(">I", raw, DEV_FLAGS)[0],
            "queue_stopped": bool(struct.unpack_from(">I", raw, DEV_STATE)[0] & KSHIM_QUEUE_STOPPED),
            "watchdog_timeo": struct.unpack_from(">i", raw, DEV_WATCHDOG_TIMEO)[0],
            "stats_addr_ok": self._get(f"stats{dev}") == a + DEV_STATS,
            "index": struct.unpack_from(">i", raw, DEV_INDEX)[0],
            "mac": raw[DEV_ADDR:DEV_ADDR + 6].hex(),
        }

    # ---------------------------------------------------------------- snapshot
    def save(self) -> dict:
        """The whole machine between two instructions: CPU registers, RAM, every card."""
        from machine68k import Register
        from a2065.snapshot import to_bytes

        cpu = self.host.cpu
        regs = {r: cpu.r_reg(getattr(Register, r)) for r in _CPU_REGS}
        regs["PC"] = cpu.r_pc()
        regs["SR"] = cpu.r_sr()
        return {
            "cycles": self.host.cycles, "now_ns": self.host.now_ns(), "cpu_hz": self.cpu_hz,
            "regs": regs,
            "ram": base64.b64encode(self.host.read_block(0, RAM_KIB * 1024)).decode(),
            "cards": [base64.b64encode(to_bytes(c.snapshot())).decode() for c in self.cards],
        }

    @classmethod
    def resume(cls, state: dict, **kw) -> "LinuxMachine":
        """A machine in a new process carrying on from ``save()``."""
        from machine68k import Register
        from a2065 import A2065
        from a2065.snapshot import from_bytes

        cards = [A2065.from_snapshot(from_bytes(base64.b64decode(c)), strict=True)
                 for c in state["cards"]]
        m = cls(boards=cards, cpu_hz=state["cpu_hz"], **kw)
        m.host.load(base64.b64decode(state["ram"]), 0)
        cpu = m.host.cpu
        cpu.w_sr(state["regs"]["SR"])
        for r in _CPU_REGS:
            cpu.w_reg(getattr(Register, r), state["regs"][r])
        cpu.w_pc(state["regs"]["PC"])
        return m


# ---------------------------------------------------------------------------- scenarios

def _offer(m: LinuxMachine, card, frames, *, has_fcs: bool, paced, max_ms: float = 500):
    """paced=True: the CPU runs until the receiver is idle and has room (no frame is lost);
    "wire": frames follow each other as closely as the wire allows while the CPU is held (its
    interrupts wait); False: all at the same instant."""
    statuses = []
    lance = card.lance
    for f in frames:
        if paced is True:
            ln = len(f) - 4 if has_fcs else len(f)
            m.run_until(lambda: lance.rx_ready(max(ln, 60)) and lance.rx_idle_at() <= lance.now,
                        max_ms=max_ms, step_cycles=200)
        elif paced == "wire":
            card.advance_to(lance.rx_idle_at())
        statuses.append(lance.receive(f, has_fcs=has_fcs).name)
    if paced == "wire":
        card.advance_to(lance.rx_idle_at())     # the CPU is held until the last one is in
    return statuses


def _rx_ring_empty(card) -> bool:
    """Every receive descriptor is back with the chip and no frame is on its way in."""
    base, n, _ = card.lance.rx_ring
    ram = card.ram
    for i in range(n):
        if not ram[((base + 8 * i) & 0x7FFF) + 2] & 0x80:
            return False
    return card.lance.counters.rx_in_flight == 0


def _settle(m: LinuxMachine, ms: float) -> None:
    """Run until the driver took every queued frame and the chips are idle, then ``ms`` more."""
    m.run_until(m.tx_drained, max_ms=2000)
    m.run_ms(ms)


def scenario_script(a: dict) -> dict:
    t0 = time.perf_counter()
    if a.get("resume"):
        m = LinuxMachine.resume(a["resume"])
        boot = m.hi()
    else:
        m = LinuxMachine(serials=a.get("serials", [0x00123456]), timing=a.get("timing", "fast"),
                         cpu_hz=a.get("cpu_hz", PAL_HZ), variant=a.get("variant", "commodore"),
                         ram_fast_path=a.get("ram_fast_path", True))
        boot = m.boot()
    trace = []
    if a.get("trace"):
        trace_registers(m.cards[0].lance, trace)
    results = []
    wire_seen = len(m.wire)
    rx_seen = len(m.received)
    for step in a.get("steps", []):
        op = step["op"]
        dev = step.get("dev", 0)
        res = {"op": op}
        if op == "open":
            res["ret"] = m.open(dev)
        elif op == "close":
            res["ret"] = m.close(dev)
        elif op == "remove":
            res["ret"] = m.remove()
        elif op == "rx_mode":
            res["ret"] = m.set_rx_mode(dev, [bytes.fromhex(x) for x in step.get("mc", [])],
                                       step.get("flags", 0))
        elif op == "send":
            for f in step["frames"]:
                m.send(bytes.fromhex(f), dev)
            _settle(m, step.get("settle_ms", 20))
        elif op == "queue":           # fill the slots without waiting (stalled chip)
            res["queued"] = sum(m.queue(bytes.fromhex(f), dev) for f in step["frames"])
            m.run_ms(step.get("settle_ms", 20))
        elif op == "offer":
            res["statuses"] = _offer(m, m.cards[dev], [bytes.fromhex(f) for f in step["frames"]],
                                     has_fcs=step.get("has_fcs", False),
                                     paced=step.get("paced", True))
            card = m.cards[dev]
            m.run_until(lambda: _rx_ring_empty(card), max_ms=step.get("drain_ms", 1000))
            m.run_ms(step.get("settle_ms", 20))
        elif op == "run":
            m.run_ms(step["ms"])
        elif op == "stall":
            card = m.cards[dev]
            card.lance.write_rap(0)
            card.lance.write_rdp(0x0004)           # STOP
            card.lance.write_rap(0)
        elif op == "save":
            res["state"] = m.save()
        else:
            raise ValueError(op)
        res["tx"] = [[i, f.hex()] for i, f, _ in m.wire[wire_seen:]]
        res["rx"] = [[d, f.hex()] for d, f in m.received[rx_seen:]]
        wire_seen, rx_seen = len(m.wire), len(m.received)
        res["stats"] = [m.stats(i) for i in range(m.hi()["ndev"])]
        res["hostif"] = m.hi()
        res["csr0"] = [c.lance.csr0 for c in m.cards]
        res["jiffies"] = m.hi()["jiffies"]
        res["trace"] = trace[:]
        trace.clear()
        results.append(res)
    h = m.hi()
    return {
        "boot": boot,
        "steps": results,
        "hostif": h,
        "netdevs": [m.netdev(i) for i in range(h["ndev"])],
        "stats": [m.stats(i) for i in range(h["ndev"])],
        "log": m.log(),
        "bases": [c.autoconfig.base if c.autoconfig.configured else None for c in m.cards],
        "macs": [c.mac.hex() for c in m.cards],
        "chip_counters": [vars(c.lance.counters) for c in m.cards],
        "ladrf": [c.lance.ladrf for c in m.cards],
        "rx_ring": [list(c.lance.rx_ring) for c in m.cards],
        "tx_ring": [list(c.lance.tx_ring) for c in m.cards],
        "iadr": [c.lance.iadr for c in m.cards],
        "mode": [c.lance.mode for c in m.cards],
        "padr": [c.lance.padr.hex() for c in m.cards],
        "irq_edges": len(m.host.irq_edges),
        "invalid_accesses": list(m.host.invalid_accesses)[:20],
        "mmio": {k: m.host.stats[k] for k in ("mmio_reads", "mmio_writes")},
        "irq_latencies_ns": list(m.host.irq_latencies_ns)[:1000],
        "cycles": m.host.cycles,
        "now_ns": m.host.now_ns(),
        "wall_s": time.perf_counter() - t0,
    }


SCENARIOS = {"script": scenario_script}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0]
    args = json.loads(argv[1]) if len(argv) > 1 else json.loads(sys.stdin.read() or "{}")
    out = SCENARIOS[name](args)
    sys.stdout.write(json.dumps(out, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))
                     + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
