"""The ``a2065`` command (also ``python -m a2065``).

Subcommands::

    a2065 demo     [--capture NAME|FILE] [--out DIR] [--timing wire|fast] [--json]
    a2065 replay   FILE [--policy segment|drop-legacy] [--timing fast|wire]
                   [--delivery lossless|hardware] [--direction auto|in|out|all] [--mac MAC]
                   [--record OUT.pcapng] [--json]
    a2065 inspect  SNAPSHOT [--json]
    a2065 bridge   --iface IF [--backend afpacket|pcap|tap] [--timing wire|fast]
                   [--policy segment|drop-legacy] [--guest-tap NAME] [--duration S]
                   [--record FILE] [--json]
    a2065 bench    [--quick] [--out DIR] [--only NAMES]

Exit codes (scripts can rely on them):

    0  success (demo: the stream the guest received under `segment` matched the capture)
    1  runtime failure: a run failed, a verification did not match, an input file exists but
       cannot be parsed (corrupt pcapng or snapshot), a missing privilege or library (the
       message says which)
    2  usage error: bad or missing arguments, an input file that does not exist, a subcommand
       that is not available yet

Expected errors print one line ``a2065 <command>: error: <what happened>; <what to do>`` to
stderr, never a traceback. Tables go to stdout; progress goes to stderr only when it is a
terminal (quiet when piped). ``--json`` prints one JSON document to stdout instead of the table.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

ROOT = Path(__file__).resolve().parents[2]   # the repository, when run from a checkout


# -- installed-package lookups (issue 16): the wheel is the product, so nothing here may assume a
# -- source checkout except `bench`, which says so.

def bundled_capture(name: str) -> Path:
    """The demo capture ``name`` (tcp4, tcp6, udp4) from the installed package's data."""
    from a2065.captures import capture_path
    try:
        return capture_path(name)
    except FileNotFoundError as e:
        raise Failure(f"{e} or pass --capture FILE") from None


def package_version() -> str:
    """The installed distribution's version (``a2065 --version``)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("a2065")
    except PackageNotFoundError:
        return "unknown (not installed; run from a checkout)"


def bench_dir() -> Path:
    """bench/ of the source checkout; the benchmarks are not part of the installed package."""
    d = ROOT / "bench"
    if not (d / "native.py").is_file():
        raise UsageError("the benchmarks (bench/*.py) ship with the source repository, not with "
                         "the installed package; run 'make bench' in a checkout of the repository")
    return d


class UsageError(Exception):
    """Bad arguments: exit 2."""


class Failure(Exception):
    """A runtime failure: exit 1."""


# ---------------------------------------------------------------------------------------------
# output helpers

class Progress:
    """Progress on stderr when it is a terminal: tqdm if installed, else one plain line."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = max(1, total)
        self.label = label
        self._bar = None
        self._last = 0.0
        if self.enabled:
            try:
                from tqdm import tqdm  # optional dependency
                self._bar = tqdm(total=total, desc=label, unit="frame", leave=False, file=sys.stderr)
            except ImportError:
                self._bar = None

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            sys.stderr.write(f"\r{self.label}: {done}/{self.total} frames ({100 * done // self.total}%)")
            sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _fmt_int(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _table(rows, headers) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 or not c[:1].isdigit() else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _drops(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"


def _parse_mac(s: str) -> bytes:
    try:
        b = bytes(int(x, 16) for x in s.replace("-", ":").split(":"))
    except ValueError:
        b = b""
    if len(b) != 6:
        raise UsageError(f"--mac {s!r} is not a MAC address; give six hex bytes like 02:00:00:00:00:01 or 'auto'")
    return b


# ---------------------------------------------------------------------------------------------
# replay core shared by demo and replay

def _load_capture(path):
    from pcap_backend.base import CaptureFormatError
    from a2065.runners.replay import read_capture
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file; give the path of a pcapng capture")
    try:
        return read_capture(p)
    except CaptureFormatError as e:
        raise Failure(str(e)) from e


def _replay_once(cap, packets, mac, *, policy, timing, delivery="lossless", guest_pcap=None,
                 record=None, progress=True, label=""):
    """Run one replay through bridge, card and driver. Returns a result dict."""
    from a2065.runners.replay import CaptureReplay, Runner, StreamCollector
    from pcap_backend.bridge import PcapngTee
    collector = StreamCollector()
    tee = PcapngTee(guest_pcap, comment=f"what the guest received: {cap.path}, policy {policy}, "
                    f"timing {timing}") if guest_pcap else None
    rec = PcapngTee(record, comment=f"bridge tee: {cap.path}, policy {policy}") if record else None

    def on_receive(frame, t_ns):
        collector.add(frame, t_ns)
        if tee is not None:
            tee.record(t_ns, frame, False)

    start_ns = 1_000_000
    backend = CaptureReplay(packets, start_ns=start_ns)
    bar = Progress(len(packets), label or f"replay ({policy}, {timing})", progress)
    try:
        runner = Runner(backend, policy=policy, delivery=delivery, timing=timing, mac=mac,
                        on_receive=on_receive, recorder=rec)
        runner.run(progress=lambda r: bar.update(r.backend.rx_frames))
    finally:
        bar.close()
        if tee is not None:
            tee.close()
        if rec is not None:
            rec.close()
    st = runner.stats()
    b = st["bridge"]
    stream = collector.stream()
    span = (collector.last_ns - collector.first_ns) if collector.first_ns is not None else 0
    sha = collector.sha256() if stream else None
    return {
        "policy": policy,
        "timing": timing,
        "delivery": delivery,
        "frames_offered": len(packets),
        "super_packets": b["super_packets"],
        "segments_made": b["segments_made"],
        "frames_in": b["frames_in"],
        "delivered": b["delivered"],
        "guest_frames": st["driver"]["rx_frames"],
        "guest_bytes": st["driver"]["rx_bytes"],
        "dropped": b["dropped"],
        "dropped_total": b["dropped_total"],
        "queued_at_end": b["queued"],
        "stream_bytes": len(stream),
        "stream_sha256": sha,
        "expected_sha256": cap.sha256,
        "verified": (sha == cap.sha256) if cap.sha256 else None,
        "emulated_ns": runner.now,
        "goodput_Bps": collector.goodput_Bps(len(stream)),
        "data_span_ns": span,
        "guest_pcapng": str(guest_pcap) if guest_pcap else None,
        "record": str(record) if record else None,
        "stalled": runner.stalled,
        "bridge": b,
    }


# ---------------------------------------------------------------------------------------------
# subcommands

def cmd_demo(args) -> int:
    name = args.capture
    from a2065.captures import BUNDLED
    path = bundled_capture(name) if name in BUNDLED else Path(name)
    cap = _load_capture(path)
    packets = cap.direction("auto")
    mac = cap.guest_mac(packets)
    if mac is None:
        raise Failure(f"{path}: no unicast frames toward a guest; the demo needs a TCP capture")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the directory ({e.strerror}); choose a writable path")
    t0 = time.monotonic()
    results = []
    for policy in ("segment", "drop-legacy"):
        results.append(_replay_once(cap, packets, mac, policy=policy, timing=args.timing,
                                    guest_pcap=out / f"guest-{Path(path).stem}-{policy}.pcapng",
                                    progress=not args.json))
    m68k = _m68k_demo() if args.m68k else {"status": "skipped", "detail": "--no-m68k"}
    elapsed = time.monotonic() - t0
    seg, legacy = results
    ok = (seg["verified"] is not False and seg["stream_bytes"] > 0 and not seg["stalled"]
          and m68k["status"] != "failed")
    doc = {
        "capture": str(path),
        "capture_sha256": cap.sha256,
        "guest_mac": mac.hex(":"),
        "frames_toward_guest": len(packets),
        "timing": args.timing,
        "results": results,
        "legacy_delivered_fraction": (legacy["stream_bytes"] / seg["stream_bytes"]) if seg["stream_bytes"] else None,
        "m68k_demo": m68k,
        "ok": ok,
        "wall_s": round(elapsed, 3),
    }
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(f"capture: {path}")
        print(f"  {len(packets)} frames toward the guest ({seg['super_packets']} super-packets over 1514 B), "
              f"guest MAC {mac.hex(':')}, {args.timing} timing (10 Mb/s)" if args.timing == "wire" else
              f"  {len(packets)} frames toward the guest, guest MAC {mac.hex(':')}, fast timing")
        rows = []
        for r in results:
            verdict = {True: "verified", False: "MISMATCH", None: "no sha"}[r["verified"]]
            if r["verified"] is False and r["stream_bytes"] < (seg["stream_bytes"] or 1):
                verdict = "incomplete"
            rows.append([r["policy"], _fmt_int(r["frames_in"]), _fmt_int(r["guest_frames"]),
                         _fmt_int(r["guest_bytes"]), _fmt_int(r["stream_bytes"]), verdict,
                         _fmt_int(r["goodput_Bps"]), _drops(r["dropped"])])
        print()
        print(_table(rows, ["policy", "frames in", "guest frames", "guest bytes", "stream bytes",
                            "sha-256", "goodput B/s", "dropped (by reason)"]))
        print()
        if args.timing == "wire":
            print("goodput: emulated time, 10BASE-T limit with TCP timestamps is 1,176,853 B/s")
        for r in results:
            print(f"guest received ({r['policy']}): {r['guest_pcapng']}")
        print(f"68000 ARP/ping demo: {m68k['status']}" + (f" ({m68k['detail']})" if m68k.get("detail") else ""))
        if seg["verified"] is True:
            print(f"segment: the guest's TCP stream matches the capture's SHA-256 {cap.sha256[:16]}...")
        elif seg["verified"] is False:
            print("a2065 demo: error: the guest's TCP stream under segment does NOT match the "
                  "capture's SHA-256; run with -v to see the bridge's log", file=sys.stderr)
        if m68k["status"] == "failed":
            print("a2065 demo: error: the 68000 ARP/ping program failed; rerun with --no-m68k to "
                  "skip it", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


def _csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ping_frames(card_mac: bytes, card_ip: bytes, count: int = 3):
    """An ARP who-has for the card's IP and `count` ICMP echo requests to it."""
    peer_mac, peer_ip = bytes.fromhex("020000000001"), bytes((10, 0, 2, 2))
    arp = (b"\xff" * 6 + peer_mac + b"\x08\x06" + struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1)
           + peer_mac + peer_ip + bytes(6) + card_ip)
    frames = [arp]
    for seq in range(1, count + 1):
        icmp = struct.pack(">BBHHH", 8, 0, 0, 0x2065, seq) + bytes(range(56))
        icmp = icmp[:2] + struct.pack(">H", _csum16(icmp)) + icmp[4:]
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, peer_ip, card_ip)
        ip = ip[:10] + struct.pack(">H", _csum16(ip)) + ip[12:]
        frames.append(card_mac + peer_mac + b"\x08\x00" + ip + icmp)
    return frames


def _m68k_demo() -> dict:
    """Run the 68000 ARP/ping program when its runner, compiler and CPU core are present."""
    try:
        import importlib.util
        if importlib.util.find_spec("machine68k") is None:
            return {"status": "skipped", "detail": "machine68k not installed (pip install machine68k)"}
        import a2065.drivers.m68k as m68k
        from a2065.drivers.m68k.runner import run_scenario
        from a2065 import mac_for
    except Exception as e:  # noqa: BLE001 - optional part
        return {"status": "skipped", "detail": f"68000 program not available: {e}"}
    if not m68k.compiler():
        return {"status": "skipped", "detail": "no m68k cross compiler (apt-get install gcc-m68k-linux-gnu)"}
    card_mac, card_ip = mac_for(0x00123456), bytes((10, 0, 2, 15))  # the runner's defaults
    frames = _ping_frames(card_mac, card_ip)
    try:
        res = run_scenario("driver", {"frames": [f.hex() for f in frames]}, timeout=120)
    except Exception as e:  # noqa: BLE001 - report, do not fail the demo for an optional part
        return {"status": "failed", "detail": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    tx = [bytes.fromhex(t["frame"]) for t in res.get("tx", [])]
    arp = sum(1 for f in tx if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02")
    echo = sum(1 for f in tx if f[12:14] == b"\x08\x00" and len(f) > 34 and f[23] == 1 and f[34] == 0)
    ok = arp == 1 and echo == len(frames) - 1
    return {"status": "ok" if ok else "failed",
            "detail": f"68000 driver answered {arp} ARP request(s) and {echo}/{len(frames) - 1} pings "
                      f"in {res.get('now_ns', 0) / 1e6:.1f} ms of emulated time",
            "arp_replies": arp, "echo_replies": echo}


def cmd_replay(args) -> int:
    cap = _load_capture(args.file)
    packets = cap.direction(args.direction)
    if not packets:
        raise Failure(f"{args.file}: no frames in direction {args.direction!r}; try --direction all")
    mac = cap.guest_mac(packets) if args.mac == "auto" else _parse_mac(args.mac)
    if mac is None:
        raise Failure(f"{args.file}: cannot tell the guest's MAC (no unicast frames); pass --mac")
    if args.record:
        parent = Path(args.record).resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--record {args.record}: directory {parent} does not exist")
    r = _replay_once(cap, packets, mac, policy=args.policy, timing=args.timing,
                     delivery=args.delivery, record=args.record, progress=not args.json)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print(f"capture: {args.file} ({len(packets)} frames, direction {args.direction}, guest MAC {mac.hex(':')})")
        rows = [["policy / timing / delivery", f"{r['policy']} / {r['timing']} / {r['delivery']}"],
                ["super-packets", _fmt_int(r["super_packets"])],
                ["segments made", _fmt_int(r["segments_made"])],
                ["frames into the queue", _fmt_int(r["frames_in"])],
                ["delivered to the card", _fmt_int(r["delivered"])],
                ["guest frames / bytes", f"{_fmt_int(r['guest_frames'])} / {_fmt_int(r['guest_bytes'])}"],
                ["dropped", _drops(r["dropped"])],
                ["TCP stream bytes", _fmt_int(r["stream_bytes"])],
                ["emulated time", f"{r['emulated_ns'] / 1e9:.6f} s"],
                ["goodput (emulated)", f"{_fmt_int(r['goodput_Bps'])} B/s"]]
        if r["verified"] is not None:
            rows.append(["stream sha-256", "verified" if r["verified"] else "MISMATCH"])
        if r["record"]:
            rows.append(["recorded", r["record"]])
        print(_table(rows, ["", ""]))
    if r["stalled"]:
        print("a2065 replay: error: the run stalled with frames queued; the driver stopped taking "
              "frames (see the log)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _inspect_doc(state: dict) -> dict:
    chip = state.get("chip", {})
    ram = state.get("ram", b"")
    csr3 = chip.get("csr3", 0)
    fmt = ">HHHH" if csr3 & 4 else "<HHHH"  # BSWP: descriptors in 68k (big-endian) order

    def ring(base, n, idx, kind):
        out = []
        for i in range(min(int(n or 0), 128)):  # bounded: a ring holds at most 128 entries
            off = (int(base) + 8 * i) & 0x7FFF
            if len(ram) < off + 8:
                break
            w0, w1, w2, w3 = struct.unpack_from(fmt, ram, off)
            out.append({"index": i, "current": i == idx, "addr": ((w1 & 0xFF) << 16) | w0,
                        "own": "chip" if w1 & 0x8000 else "host", "flags": f"{w1 >> 8:#04x}",
                        "bcnt": (-w2) & 0xFFF or 4096, "mcnt_or_tmd3": w3})
        return out
    return {
        "format": state.get("format"),
        "version": state.get("version"),
        "time_ns": state.get("time_ns"),
        "serial": state.get("serial"),
        "variant": state.get("variant"),
        "timing": state.get("timing"),
        "autoconfig": state.get("autoconfig"),
        "irq_level": state.get("irq_level"),
        "next_deadline": (state.get("pending_events") or {}).get("next_deadline"),
        "csr": {f"csr{i}": chip.get(f"csr{i}") for i in range(4)},
        "rap": chip.get("rap"),
        "mode": chip.get("mode"),
        "padr": chip["padr"].hex(":") if isinstance(chip.get("padr"), (bytes, bytearray)) else chip.get("padr"),
        "ladrf": chip.get("ladrf"),
        "rx_ring": {"base": chip.get("rdra"), "length": chip.get("rlen"), "current": chip.get("rx_idx"),
                    "descriptors": ring(chip.get("rdra", 0), chip.get("rlen"), chip.get("rx_idx"), "rx")},
        "tx_ring": {"base": chip.get("tdra"), "length": chip.get("tlen"), "current": chip.get("tx_idx"),
                    "descriptors": ring(chip.get("tdra", 0), chip.get("tlen"), chip.get("tx_idx"), "tx")},
        "counters": chip.get("counters"),
    }


def cmd_inspect(args) -> int:
    p = Path(args.snapshot)
    if not p.exists():
        raise UsageError(f"{p}: no such file; give the path of a snapshot written with a2065.snapshot.save")
    try:
        from a2065 import snapshot
    except ImportError as e:
        raise Failure(f"the snapshot module is not available ({e})") from e
    try:
        state = snapshot.from_bytes(p.read_bytes())
    except (ValueError, KeyError, TypeError) as e:  # SnapshotError is a ValueError
        raise Failure(f"{p} is not a readable A2065 snapshot: {e}") from e
    doc = _inspect_doc(state)
    if args.json:
        print(json.dumps(doc, indent=2, default=lambda o: o.hex() if isinstance(o, bytes) else str(o)))
        return EXIT_OK
    print(f"snapshot: {p}")
    print(f"  format {doc['format']} version {doc['version']}, emulated time {doc['time_ns']:,} ns, "
          f"serial {doc['serial']:#010x}, {doc['variant']}, {doc['timing']} timing" if isinstance(doc['serial'], int)
          else f"  format {doc['format']} version {doc['version']}")
    ac = doc["autoconfig"] or {}
    base = ac.get("base")
    print(f"  autoconfig {ac.get('state')}" + (f" at {base:#08x}" if isinstance(base, int) else "")
          + f", INT2 {'asserted' if doc['irq_level'] else 'clear'}, next event {doc['next_deadline']}")
    csr = doc["csr"]
    print("  " + "  ".join(f"CSR{i}={csr[f'csr{i}']:#06x}" if isinstance(csr[f'csr{i}'], int) else f"CSR{i}=?"
                           for i in range(4)) + f"  RAP={doc['rap']}")
    if isinstance(csr.get("csr0"), int):
        try:
            from lance.csr import CSR0
            print(f"  CSR0 flags: {CSR0(csr['csr0']).name or 'none'}".replace("|", " "))
        except Exception:  # noqa: BLE001 - decoration only
            pass
    print(f"  MODE={doc['mode']:#06x}  PADR={doc['padr']}  LADRF={doc['ladrf']:#018x}"
          if isinstance(doc["mode"], int) and isinstance(doc["ladrf"], int) else f"  MODE={doc['mode']}")
    for name in ("rx_ring", "tx_ring"):
        r = doc[name]
        owned = sum(1 for d in r["descriptors"] if d["own"] == "chip")
        print(f"  {name.replace('_', ' ').upper()}: base {r['base']:#08x}, {r['length']} entries, current {r['current']}, "
              f"{owned} owned by the chip" if isinstance(r["base"], int) else f"  {name}: ?")
    c = doc["counters"] or {}
    nz = {k: v for k, v in c.items() if v}
    if nz:
        print("  counters: " + ", ".join(f"{k} {v:,}" for k, v in nz.items()))
    return EXIT_OK


def _open_backend(kind: str, iface: str, forwards=()):
    from pcap_backend.base import BackendError, NoSuchInterface
    if kind in USERMODE_BACKENDS:
        return _open_usermode_backend(kind, iface, forwards)
    try:
        if kind == "afpacket":
            from pcap_backend.backends.afpacket import AfPacket
            return AfPacket(iface)
        if kind == "pcap":
            from pcap_backend.backends.pcap import Pcap
            return Pcap(iface)
        from pcap_backend.backends.tap import Tap
        return Tap(iface)
    except NoSuchInterface as e:
        raise UsageError(f"{e}; list interfaces with `ip link`") from e
    except ValueError as e:  # bad interface name
        raise UsageError(f"--iface {iface!r}: {e}") from e
    except BackendError as e:
        raise Failure(str(e)) from e


# --- user-mode backends (passt, libslirp, VDE): pcap_backend/backends/usermode.py ------------------
USERMODE_BACKENDS = ("passt", "slirp", "vde")


def _open_usermode_backend(kind: str, iface, forwards=()):
    """passt/slirp: NAT for the guest (10.0.2.15 via 10.0.2.2), --forward tcp:HOST:GUEST ports;
    vde: --iface is the vde_switch control directory."""
    from pcap_backend.base import BackendError
    from pcap_backend.backends.usermode import make_usermode_backend
    fwd = []
    for spec in forwards or ():
        proto, _, ports = spec.partition(":")
        hp, _, gp = ports.partition(":")
        if proto not in ("tcp", "udp") or not hp.isdigit() or not (gp or hp).isdigit():
            raise UsageError(f"--forward {spec!r}: expected tcp|udp:HOST_PORT[:GUEST_PORT]")
        fwd.append((proto, int(hp), int(gp or hp)))
    try:
        if kind == "vde":
            if fwd:
                raise UsageError("--forward is for passt and slirp (a VDE switch has no NAT)")
            return make_usermode_backend("vde", switch=iface)
        if kind == "slirp":
            return make_usermode_backend("slirp", hostfwd=[(p, "127.0.0.1", h, g) for p, h, g in fwd])
        return make_usermode_backend("passt",
                                     tcp_ports=[f"{h}:{g}" for p, h, g in fwd if p == "tcp"],
                                     udp_ports=[f"{h}:{g}" for p, h, g in fwd if p == "udp"])
    except BackendError as e:
        raise Failure(str(e)) from e


def cmd_bridge(args) -> int:
    """Live bridging: host interface <-> backend <-> bridge <-> card <-> Linux-style driver <->
    guest TAP (the guest's network stack is whatever sits behind that TAP). The loop is
    ``a2065.runners.live`` (events at their own emulated times, guest multicast list -> LADRF, TAP with
    the card's MAC, SIGINT/SIGTERM stop after the current step with final counters)."""
    from a2065.runners import live
    from pcap_backend.netns import in_netns
    from pcap_backend.base import BackendError
    if not args.iface and args.backend not in ("passt", "slirp"):
        raise UsageError("--iface is required: the host interface to bridge to (see `ip link`)"
                         + ("; for --backend vde, the vde_switch control directory"
                            if args.backend == "vde" else ""))
    try:
        with in_netns(args.netns):
            backend = _open_backend(args.backend, args.iface, getattr(args, "forward", None))
    except FileNotFoundError as e:
        raise UsageError(f"--netns {args.netns}: no such network namespace (see `ip netns`)") from e
    mac = _parse_mac(args.mac) if args.mac else None

    def ready(lb):
        if not args.json:
            print(f"bridging {args.iface or args.backend} ({args.backend}) <-> A2065 "
                  f"{lb.driver.mac.hex(':')} <-> TAP {lb.guest.ifname}; {args.policy}, "
                  f"{args.timing} timing; Ctrl-C stops",
                  file=sys.stderr if not sys.stdout.isatty() else sys.stdout, flush=True)
    try:
        st = live.run_bridge(iface=args.iface, backend=backend, timing=args.timing,
                             policy=args.policy, record=args.record, guest_tap=args.guest_tap,
                             guest_netns=args.guest_netns, mac=mac, duration=args.duration,
                             on_ready=ready)
    except FileNotFoundError as e:
        raise UsageError(f"--guest-netns {args.guest_netns}: no such network namespace "
                         "(see `ip netns`)") from e
    except BackendError as e:
        raise Failure(f"guest TAP {args.guest_tap}: {e}") from e
    st["guest_tx_frames"] = st["guest"]["sent"]
    if args.json:
        print(json.dumps(st, indent=2, default=str))
    else:
        print(_table(live.summary_rows(st), ["", ""]))
    return EXIT_OK


def cmd_bench(args) -> int:
    """Run bench/*.py, each writing DIR/<name>.json; usermode and e2e need root; e2e also draws
    its goodput PNGs."""
    import subprocess
    bench = bench_dir()
    out = Path(args.out) if args.out else bench / "results"
    out.mkdir(parents=True, exist_ok=True)
    names = ["native", "lance", "board", "bridge", "usermode", "e2e"]
    needs_root = {"usermode": "namespaces and the passt/libslirp/VDE rigs",
                  "e2e": "network namespaces, TAP, AF_PACKET"}
    if args.only:
        names = [n for n in args.only.split(",") if n]
    failed, ran = [], []
    for name in names:
        script = bench / f"{name}.py"
        if not script.exists():
            if args.only:
                raise UsageError(f"no benchmark {name!r} (bench/{name}.py)")
            continue
        if name in needs_root and os.geteuid() != 0:
            print(f"a2065 bench: {name} skipped: needs root ({needs_root[name]})",
                  file=sys.stderr)
            continue
        argv = [sys.executable, str(script), "--json", str(out / f"{name}.json")]
        if args.quick:
            argv.append("--quick")
        if name == "e2e":
            argv += ["--plots", str(out)]
        print(f"== {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        if subprocess.run(argv, cwd=str(ROOT)).returncode != 0:
            failed.append(name)
        else:
            ran.append(name)
    if failed:
        raise Failure(f"benchmarks failed: {', '.join(failed)} (the others wrote their JSON to {out})")
    print(f"results: {', '.join(str(out / (n + '.json')) for n in ran) or 'none'}")
    return EXIT_OK


def cmd_not_yet(args) -> int:
    raise UsageError(f"'{args.command}' is not available yet in this version; use 'a2065 replay' "
                     f"or 'a2065 demo' meanwhile (see a2065 --help)")


# ---------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="a2065", description="Emulated Commodore A2065 Ethernet card: demo, replay, "
                "snapshot inspection.",
                epilog="exit codes: 0 ok, 1 runtime failure (run failed, verification mismatch, "
                "unreadable file content), 2 usage error (bad arguments, missing file, "
                "subcommand not available yet)")
    p.add_argument("-v", "--verbose", action="store_true", help="log bridge/chip conditions to stderr")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser("demo", help="replay the bundled real-kernel capture through segment and "
                       "drop-legacy side by side (no network, no root)",
                       description="Replay the bundled real-kernel TCP capture (super-packets with "
                       "virtio-net metadata) through the bridge with the segment and drop-legacy "
                       "policies, into the emulated card and the Linux-style driver; write a "
                       "pcapng of what the guest received, verify the stream against the "
                       "capture's SHA-256 and print a table.")
    d.add_argument("--capture", default="tcp4", metavar="NAME|FILE",
                   help="bundled capture tcp4, tcp6 or udp4, or a pcapng file (default tcp4)")
    d.add_argument("--out", default="out", metavar="DIR",
                   help="directory for the guest pcapng files (default ./out)")
    d.add_argument("--timing", choices=("wire", "fast"), default="wire",
                   help="wire: 10 Mb/s on emulated time, goodput is meaningful (default); fast")
    d.add_argument("--no-m68k", dest="m68k", action="store_false",
                   help="skip the 68000 ARP/ping program (it runs when machine68k and the m68k "
                   "cross compiler are installed)")
    d.add_argument("--json", action="store_true", help="print JSON instead of the table")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("replay", help="replay a pcapng capture through bridge, card and driver",
                       description="Replay a pcapng capture into the emulated card on emulated "
                       "time (deterministic) and print the bridge's counters.")
    r.add_argument("file", metavar="FILE", help="pcapng capture (Ethernet)")
    r.add_argument("--policy", choices=("segment", "drop-legacy"), default="segment")
    r.add_argument("--timing", choices=("fast", "wire"), default="fast")
    r.add_argument("--delivery", choices=("lossless", "hardware"), default="lossless")
    r.add_argument("--direction", choices=("auto", "in", "out", "all"), default="auto",
                   help="which recorded direction goes to the guest (auto: the one with more bytes)")
    r.add_argument("--mac", default="auto", help="the guest card's MAC (auto: the most common "
                   "unicast destination)")
    r.add_argument("--record", metavar="OUT", help="write a pcapng of both directions at the card")
    r.add_argument("--json", action="store_true", help="print JSON instead of the table")
    r.set_defaults(func=cmd_replay)

    i = sub.add_parser("inspect", help="print a snapshot's summary",
                       description="Print a board snapshot's version, time, CSR values and ring state.")
    i.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot file (a2065.snapshot.save)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")
    i.set_defaults(func=cmd_inspect)

    b = sub.add_parser("bridge", help="live bridging between a host interface and a guest TAP "
                       "(root or CAP_NET_RAW/CAP_NET_ADMIN)",
                       description="Live bridging: frames from a host interface go through the "
                       "bridge into the emulated card and the Linux-style driver, which hands "
                       "them to a TAP device (the guest's network stack sits behind it); what the "
                       "guest sends goes back out the same way. Ctrl-C stops and prints counters.")
    b.add_argument("--iface", help="host interface to bridge to (required)")
    b.add_argument("--backend", choices=("afpacket", "pcap", "tap") + USERMODE_BACKENDS,
                   default="afpacket",
                   help="afpacket (default, Linux, exact super-packet metadata), pcap (libpcap), "
                   "or tap (create TAP --iface for the host side); without root: passt or slirp "
                   "(user-mode NAT, no --iface; the guest gets 10.0.2.15 by DHCP, gateway "
                   "10.0.2.2 = the host) or vde (--iface = a vde_switch control directory)")
    b.add_argument("--forward", action="append", metavar="tcp|udp:HOST_PORT[:GUEST_PORT]",
                   help="passt/slirp: forward a port on the host's loopback to the guest "
                   "(repeatable)")
    b.add_argument("--timing", choices=("wire", "fast"), default="wire")
    b.add_argument("--policy", choices=("segment", "drop-legacy"), default="segment")
    b.add_argument("--guest-tap", default="a2065g%d", help="TAP device for the guest (default a2065g%%d)")
    b.add_argument("--mac", help="the card's MAC (default: from the board's serial)")
    b.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    b.add_argument("--record", metavar="FILE", help="pcapng of both directions at the card")
    b.add_argument("--json", action="store_true", help="print the final counters as JSON")
    b.add_argument("--netns", metavar="NS", help="open --iface in network namespace NS")
    b.add_argument("--guest-netns", metavar="NS", help="create the guest TAP in network namespace NS")
    b.set_defaults(func=cmd_bridge)

    be = sub.add_parser("bench", help="run the benchmarks, write JSON and goodput plots",
                        description="Run bench/native.py, lance.py, board.py, bridge.py and (as "
                        "root) usermode.py and e2e.py; each writes DIR/<name>.json; e2e also draws "
                        "e2e_goodput_time.png and e2e_goodput_summary.png (matplotlib).")
    be.add_argument("--quick", action="store_true", help="shorter runs (e2e: 5 s transfers)")
    be.add_argument("--out", metavar="DIR", help="where JSON and PNGs go (default bench/results)")
    be.add_argument("--only", metavar="NAMES", help="comma-separated subset, e.g. e2e,bridge")
    be.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("a2065").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"a2065 {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Failure as e:
        print(f"a2065 {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"a2065 {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
