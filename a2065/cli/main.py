"""The ``a2065`` command (also ``python -m a2065``).

Subcommands (the synopsis README.md shows; `a2065 COMMAND --help` has every option and default)::

    a2065 demo     [--capture NAME|FILE] [--out DIR] [--timing wire|fast] [--no-m68k] [--json]
    a2065 replay   FILE [--policy P] [--timing T] [--delivery D] [--direction DIR] [--mac MAC]
                   [--record OUT.pcapng] [--json]
    a2065 inspect  SNAPSHOT [--json]
    a2065 bridge   [--iface IF] [--backend NAME] [--forward SPEC]... [--timing T] [--policy P]
                   [--guest-tap NAME] [--mac MAC] [--duration S] [--record FILE] [--netns NS]
                   [--guest-netns NS] [--json]
    a2065 bench    [--quick] [--out DIR] [--only NAMES]

Exit codes (scripts can rely on them), for every subcommand:

    0  success (demo: the stream the guest received under `segment` matched the capture)
    1  runtime failure: a run failed, a stream did not verify, an input exists but cannot be
       read or parsed (a damaged or truncated capture: its intact packets are replayed first),
       a recording could not be written, a missing privilege or library (the message says which)
    2  usage error: bad or missing arguments, an input file that does not exist, an output that
       would overwrite an input or cannot be created; caught before anything is opened
  130  interrupted (Ctrl-C) before a replay, demo or bench finished; the bridge, which runs until
       stopped, exits 0 on Ctrl-C or SIGTERM (also during its set-up) with its final counters

Errors print one line ``a2065 <command>: error: <what happened>; <what to do>`` to stderr,
never a traceback (``-v`` adds one for internal errors). Tables go to stdout; progress goes to
stderr only when it is a terminal. ``--json`` prints one JSON document to stdout instead of the
table, also when the run fails (with an "error" field).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

ROOT = Path(__file__).resolve().parents[2]   # the repository, when run from a checkout


# -- installed-package lookups (issue 16): the wheel is the product, so nothing here may assume a
# -- source checkout except `bench`, which says so.

def bundled_capture(name: str) -> Path:
    """The demo capture ``name`` (tcp4, tcp6, udp4) from the installed package's data."""
    from a2065.cli.captures import capture_path
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
# argument types: checked by the parser, so a bad value is exit 2 before anything is opened

def mac_address(s: str) -> bytes:
    """A unicast, non-zero MAC (six hex bytes, ':' or '-' between): the card's own address."""
    try:
        b = bytes(int(x, 16) for x in s.replace("-", ":").split(":"))
    except ValueError:
        b = b""
    if len(b) != 6:
        raise argparse.ArgumentTypeError(f"{s!r} is not a MAC address; give six hex bytes like "
                                         "02:00:00:00:00:01")
    if b[0] & 1:
        raise argparse.ArgumentTypeError(f"{s} is a {'broadcast' if b == bytes([255] * 6) else 'multicast'}"
                                         " address; a card's own MAC is unicast (first byte even)")
    if b == bytes(6):
        raise argparse.ArgumentTypeError("00:00:00:00:00:00 is not a usable card MAC")
    return b


def mac_or_auto(s: str):
    return "auto" if s == "auto" else mac_address(s)


def seconds(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{s!r} is not a positive number of seconds")
    return v


def forward_spec(s: str) -> tuple:
    """tcp|udp:HOST_PORT[:GUEST_PORT] -> (proto, host_port, guest_port)."""
    proto, _, ports = s.partition(":")
    hp, _, gp = ports.partition(":")
    gp = gp or hp
    if proto not in ("tcp", "udp") or not hp.isdigit() or not gp.isdigit() \
            or not 0 < int(hp) < 65536 or not 0 < int(gp) < 65536:
        raise argparse.ArgumentTypeError(f"{s!r}: expected tcp|udp:HOST_PORT[:GUEST_PORT], ports 1-65535")
    return proto, int(hp), int(gp)


def interface_name(s: str) -> str:
    """A Linux interface name: 1-15 bytes, no '/', ':' or white space ('%d' allowed for a TAP)."""
    if not 0 < len(s.replace("%d", "0").encode()) <= 15 or any(c in s for c in "/: \t\n") \
            or s in (".", ".."):
        raise argparse.ArgumentTypeError(f"{s!r} is not an interface name (1-15 characters, "
                                         "no '/', ':' or spaces)")
    return s


def _output_path(option: str, path, inputs=()) -> Path:
    """Check a file the command will write: not a directory, its directory exists and is
    writable, and it is none of the inputs (a recording never overwrites what is replayed)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name inside it")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: directory {parent} does not exist")
    for i in inputs:
        try:
            same = p.exists() and Path(i).exists() and os.path.samefile(p, i)
        except OSError:
            same = False
        if same or p.resolve() == Path(i).resolve():
            raise UsageError(f"{option} {path}: that is the input file; recording over it would "
                             "destroy it; choose another name")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable by this user; choose a writable path")
    return p


def _netns_exists(option: str, name: Optional[str]) -> None:
    if name is not None and not os.path.exists(f"/var/run/netns/{name}"):
        raise UsageError(f"{option} {name}: no such network namespace (see `ip netns`)")


# ---------------------------------------------------------------------------------------------
# output helpers

class Progress:
    """One self-rewriting line on stderr while a long replay runs, only when stderr is a terminal
    (frames done of the total, percent, frames per second). Written by hand: tqdm or rich would
    add a dependency for one line."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = max(1, total)
        self.label = label
        self._t0 = time.monotonic()
        self._last = 0.0
        self._shown = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 or now - self._t0 < 0.5:  # quiet for short runs
            return
        self._last = now
        rate = done / (now - self._t0)
        sys.stderr.write(f"\r{self.label}: {done:,}/{self.total:,} frames "
                         f"({100 * done // self.total}%), {rate:,.0f} frames/s ")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r\033[K")
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


# ---------------------------------------------------------------------------------------------
# replay core shared by demo and replay

def _load_capture(path):
    from pcap_backend.base import CaptureFormatError
    from a2065.runners.replay import read_capture
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file; give the path of a pcapng or pcap capture")
    if p.is_dir():
        raise UsageError(f"{path}: is a directory; give the path of a pcapng or pcap capture")
    try:
        return read_capture(p)
    except CaptureFormatError as e:
        raise Failure(str(e)) from e


def _replay_once(cap, packets, mac, *, policy, timing, delivery="lossless", guest_pcap=None,
                 record=None, progress=True, label=""):
    """Run one replay through bridge, card and driver. Returns a result dict; a recording that
    cannot be written stops the run and is reported in "record_error". Recordings carry the
    capture's own timestamps (emulated time shifted onto the first packet's time)."""
    from a2065.runners.replay import CaptureReplay, Runner, StreamCollector
    from pcap_backend.backends.pcapng_io import PcapngTee
    start_ns = 1_000_000
    offset = packets[0][0] - start_ns
    collector = StreamCollector()
    tee = rec = None
    try:
        if guest_pcap:
            tee = PcapngTee(guest_pcap, ts_offset_ns=offset, comment=f"what the guest received: "
                            f"{cap.path}, policy {policy}, timing {timing}")
        if record:
            rec = PcapngTee(record, ts_offset_ns=offset,
                            comment=f"bridge tee: {cap.path}, policy {policy}")
    except OSError as e:
        if tee is not None:
            tee.close()
        raise Failure(f"cannot create {e.filename}: {e.strerror}; choose a writable path") from e
    files = [f for f in (tee, rec) if f is not None]

    def on_receive(frame, t_ns):
        collector.add(frame, t_ns)
        if tee is not None:
            tee.record(t_ns, frame, False)

    backend = CaptureReplay(packets, start_ns=start_ns)
    bar = Progress(len(packets), label or f"replay ({policy}, {timing})", progress)
    try:
        runner = Runner(backend, policy=policy, delivery=delivery, timing=timing, mac=mac,
                        on_receive=on_receive, recorder=rec)
        runner.run(progress=lambda r: bar.update(r.backend.rx_frames),
                   stop=lambda: any(f.write_error for f in files))
    finally:
        bar.close()
        for f in files:
            f.close()
    record_error = next((f"{f.path}: {f.write_error}" for f in files if f.write_error), None)
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
        "stream_kind": collector.kind,
        "stream_bytes": len(stream),
        "stream_sha256": sha,
        "expected_sha256": cap.sha256,
        "verified": (sha == cap.sha256) if cap.sha256 else None,
        "emulated_ns": runner.now,
        "goodput_Bps": collector.goodput_Bps(len(stream)),
        "data_span_ns": span,
        "guest_pcapng": str(guest_pcap) if guest_pcap else None,
        "record": str(record) if record else None,
        "record_error": record_error,
        "stalled": runner.stalled,
        "bridge": b,
    }


# ---------------------------------------------------------------------------------------------
# subcommands

def _capture_errors(cap, results) -> list:
    """One-line problems of a finished replay (each makes the exit code 1)."""
    errors = [r["record_error"] for r in results if r.get("record_error")]
    if cap.error is not None:
        errors.append(f"{cap.path}: {cap.error}; the {len(cap.packets):,} intact packets before "
                      "it were replayed")
    return errors


def cmd_demo(args) -> int:
    name = args.capture
    from a2065.cli.captures import BUNDLED
    path = bundled_capture(name) if name in BUNDLED else Path(name)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory; choose a directory")
    outputs = {policy: out / f"guest-{Path(path).stem}-{policy}.pcapng"
               for policy in ("segment", "drop-legacy")}
    if out.is_dir():
        for o in outputs.values():
            _output_path("--out", o, [path])
    cap = _load_capture(path)
    packets = cap.direction("auto")
    mac = cap.guest_mac(packets)
    if mac is None:
        raise Failure(f"{path}: no unicast frames toward a guest; the demo needs a TCP or UDP "
                      "capture toward one machine")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the directory ({e.strerror}); choose a writable path")
    t0 = time.monotonic()
    results = []
    for policy, guest_pcap in outputs.items():
        results.append(_replay_once(cap, packets, mac, policy=policy, timing=args.timing,
                                    guest_pcap=guest_pcap, progress=not args.json))
    m68k = _m68k_demo() if args.m68k else {"status": "skipped", "detail": "--no-m68k"}
    elapsed = time.monotonic() - t0
    seg, legacy = results
    errors = _capture_errors(cap, results)
    kind = seg["stream_kind"] or "TCP"
    if seg["verified"] is False:
        errors.append(f"the guest's {kind} stream under segment does NOT match the capture's "
                      "SHA-256; run with -v to see the bridge's log")
    if seg["stream_bytes"] == 0 or seg["stalled"]:
        errors.append("the guest received no stream under segment" if not seg["stalled"] else
                      "the segment run stalled with frames queued (see the log with -v)")
    if m68k["status"] == "failed":
        errors.append("the 68000 ARP/ping program failed; rerun with --no-m68k to skip it")
    doc = {
        "capture": str(path),
        "capture_sha256": cap.sha256,
        "capture_error": str(cap.error) if cap.error else None,
        "guest_mac": mac.hex(":"),
        "frames_toward_guest": len(packets),
        "timing": args.timing,
        "results": results,
        "legacy_delivered_fraction": (legacy["stream_bytes"] / seg["stream_bytes"]) if seg["stream_bytes"] else None,
        "m68k_demo": m68k,
        "ok": not errors,
        "errors": errors,
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
        print(_table(rows, ["policy", "frames in", "guest frames", "guest bytes",
                            f"{kind} stream bytes", "sha-256", "goodput B/s", "dropped (by reason)"]))
        print()
        if args.timing == "wire" and kind == "TCP":
            print("goodput: emulated time; the 10BASE-T limit for TCP with timestamps is 1,176,853 B/s")
        elif args.timing == "wire":
            print("goodput: emulated time, payload bytes per second at 10 Mb/s")
        for r in results:
            print(f"guest received ({r['policy']}): {r['guest_pcapng']}")
        print(f"68000 ARP/ping demo: {m68k['status']}" + (f" ({m68k['detail']})" if m68k.get("detail") else ""))
        if seg["verified"] is True:
            print(f"segment: the guest's {kind} stream matches the capture's SHA-256 {cap.sha256[:16]}...")
    _report(args, errors)
    return EXIT_FAILURE if errors else EXIT_OK


def _report(args, errors) -> None:
    for e in errors:
        print(f"a2065 {args.command}: error: {e}", file=sys.stderr)


def _ping_frames(card_mac: bytes, card_ip: bytes, count: int = 3):
    """An ARP who-has for the card's IP and `count` ICMP echo requests to it."""
    from native import checksum as _csum16
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


def _is_icmp_echo_reply(frame: bytes) -> bool:
    """An ICMPv4 echo reply (type 0), VLAN-tagged or not (pcap_backend.headers walks it)."""
    from pcap_backend import headers
    h = headers.walk(frame)
    return (h is not None and h.version == 4 and h.proto == headers.IPPROTO_ICMP
            and not h.fragment and h.l4 < h.end and frame[h.l4] == 0)


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
    echo = sum(1 for f in tx if _is_icmp_echo_reply(f))
    ok = arp == 1 and echo == len(frames) - 1
    return {"status": "ok" if ok else "failed",
            "detail": f"68000 driver answered {arp} ARP request(s) and {echo}/{len(frames) - 1} pings "
                      f"in {res.get('now_ns', 0) / 1e6:.1f} ms of emulated time",
            "arp_replies": arp, "echo_replies": echo}


def cmd_replay(args) -> int:
    if args.record:
        _output_path("--record", args.record, [args.file])
    cap = _load_capture(args.file)
    packets = cap.direction(args.direction)
    if not packets:
        raise Failure(f"{args.file}: no frames in direction {args.direction!r}; try --direction all")
    mac = cap.guest_mac(packets) if args.mac == "auto" else args.mac
    if mac is None:
        raise Failure(f"{args.file}: cannot tell the guest's MAC (no unicast frames); pass --mac")
    r = _replay_once(cap, packets, mac, policy=args.policy, timing=args.timing,
                     delivery=args.delivery, record=args.record, progress=not args.json)
    errors = _capture_errors(cap, [r])
    if r["verified"] is False:
        errors.append(f"the guest's {r['stream_kind'] or 'TCP'} stream does NOT match the "
                      f"capture's SHA-256 {cap.sha256[:16]}... (stream sha-256 MISMATCH)")
    if r["stalled"]:
        errors.append("the run stalled with frames queued; the driver stopped taking frames "
                      "(see the log with -v)")
    r["capture_error"] = str(cap.error) if cap.error else None
    r["errors"] = errors
    r["ok"] = not errors
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print(f"capture: {args.file} ({len(packets)} frames, direction {args.direction}, guest MAC {mac.hex(':')})")
        kind = r["stream_kind"] or "TCP"
        rows = [["policy / timing / delivery", f"{r['policy']} / {r['timing']} / {r['delivery']}"],
                ["super-packets", _fmt_int(r["super_packets"])],
                ["segments made", _fmt_int(r["segments_made"])],
                ["frames into the queue", _fmt_int(r["frames_in"])],
                ["delivered to the card", _fmt_int(r["delivered"])],
                ["guest frames / bytes", f"{_fmt_int(r['guest_frames'])} / {_fmt_int(r['guest_bytes'])}"],
                ["dropped", _drops(r["dropped"])],
                [f"{kind} stream bytes", _fmt_int(r["stream_bytes"])],
                ["emulated time", f"{r['emulated_ns'] / 1e9:.6f} s"],
                ["goodput (emulated)", f"{_fmt_int(r['goodput_Bps'])} B/s"]]
        if r["verified"] is not None:
            rows.append(["stream sha-256", "verified" if r["verified"] else "MISMATCH"])
        if r["record"]:
            rows.append(["recorded", r["record"] if not r["record_error"] else "FAILED (see below)"])
        print(_table(rows, ["", ""]))
    _report(args, errors)
    return EXIT_FAILURE if errors else EXIT_OK


def _inspect_doc(state: dict) -> dict:
    from lance.layouts import DESC_SIZE, descriptor_summary
    chip = state.get("chip", {})
    ram = state.get("ram", b"")

    def ring(base, n, idx):
        """Descriptors as the chip reads them, through its one decoder: big-endian words whatever
        CSR3 BSWP says (BSWP swaps buffer bytes, never descriptors; lance/layouts.py)."""
        out = []
        for i in range(min(int(n or 0), 128)):  # bounded: a ring holds at most 128 entries
            off = (int(base) + DESC_SIZE * i) & 0x7FFF
            if len(ram) < off + DESC_SIZE:
                break
            d = descriptor_summary(ram, off)
            out.append({"index": i, "current": i == idx, "addr": d["addr"],
                        "own": "chip" if d["own"] else "host", "flags": f"{d['status']:#04x}",
                        "bcnt": d["length"], "mcnt_or_tmd3": d["word3"]})
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
                    "descriptors": ring(chip.get("rdra", 0), chip.get("rlen"), chip.get("rx_idx"))},
        "tx_ring": {"base": chip.get("tdra"), "length": chip.get("tlen"), "current": chip.get("tx_idx"),
                    "descriptors": ring(chip.get("tdra", 0), chip.get("tlen"), chip.get("tx_idx"))},
        "counters": chip.get("counters"),
    }


def cmd_inspect(args) -> int:
    from a2065 import snapshot
    p = Path(args.snapshot)
    if not p.exists():
        raise UsageError(f"{p}: no such file; give the path of a snapshot written with a2065.snapshot.save")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory; give the path of a snapshot file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise Failure(f"cannot read {p}: {e.strerror}") from e
    try:
        state = snapshot.from_bytes(data)
    except (ValueError, KeyError, TypeError) as e:  # SnapshotError is a ValueError
        why = str(e)
        for prefix in ("not an A2065 snapshot: ", "not an A2065 snapshot"):
            why = why[len(prefix):] if why.startswith(prefix) else why
        raise Failure(f"{p} is not a readable A2065 snapshot" + (f" ({why})" if why else "")
                      + "; give a file written by a2065.snapshot.save") from e
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


def _check_bridge_args(args) -> None:
    """Everything about `bridge`'s arguments that can be known before anything is opened."""
    from pcap_backend.backends import REGISTRY
    kind = REGISTRY[args.backend]
    if kind.iface is not None and not args.iface:
        raise UsageError("--iface is required: " + (
            "a vde_switch control directory or a libvdeplug 4 URL (vde:///path, "
            "vxvde://group, ...)" if kind.iface == "switch" else
            "the host interface to bridge to (see `ip link`)"))
    if kind.iface is None and args.iface:
        raise UsageError(f"--iface is not used by --backend {args.backend} (user-mode NAT); drop it")
    if kind.iface == "interface":
        try:
            interface_name(args.iface)
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"--iface {e}") from None
    if args.forward and kind.forwards is None:
        raise UsageError(f"--forward is for --backend passt or slirp (user-mode NAT); "
                         f"{args.backend} has no port forwards")
    _netns_exists("--netns", args.netns)
    _netns_exists("--guest-netns", args.guest_netns)
    if args.record:
        _output_path("--record", args.record)


def cmd_bridge(args) -> int:
    """Live bridging: host interface <-> backend <-> bridge <-> card <-> Linux-style driver <->
    guest TAP (the guest's network stack is whatever sits behind that TAP). The loop is
    ``a2065.runners.live`` (events at their own emulated times, guest multicast list -> LADRF, TAP with
    the card's MAC, SIGINT/SIGTERM stop after the current step with final counters)."""
    from a2065.runners import live
    from pcap_backend.base import BackendError, NoSuchInterface
    _check_bridge_args(args)

    def ready(lb):
        if not args.json:
            print(f"bridging {args.iface or args.backend} ({args.backend}) <-> A2065 "
                  f"{lb.driver.mac.hex(':')} <-> TAP {lb.guest.ifname}; {args.policy}, "
                  f"{args.timing} timing; Ctrl-C stops",
                  file=sys.stderr if not sys.stdout.isatty() else sys.stdout, flush=True)
    try:
        st = live.run_bridge(iface=args.iface, backend=args.backend, timing=args.timing,
                             policy=args.policy, record=args.record, guest_tap=args.guest_tap,
                             guest_netns=args.guest_netns, netns=args.netns, mac=args.mac,
                             duration=args.duration, forwards=args.forward or (), on_ready=ready)
    except NoSuchInterface as e:
        raise UsageError(str(e) if "ip link" in str(e) else f"{e}; list interfaces with `ip link`") from e
    except PermissionError as e:
        hint = ("entering a network namespace (--netns, --guest-netns) needs root privileges "
                "(CAP_SYS_ADMIN)" if args.netns or args.guest_netns else
                "see SECURITY.md for running without root")
        raise Failure(_one_line(e) + ("" if "SECURITY.md" in str(e) else f"; {hint}")) from e
    except BackendError as e:
        raise Failure(_one_line(e)) from e
    except OSError as e:  # e.g. a MAC the kernel refuses for the TAP, a namespace gone
        raise Failure(f"{_one_line(e)}") from e
    st["guest_tx_frames"] = st["guest"]["sent"]
    errors = [f"--record {args.record}: {st['record_error']}; the recording stops at the last "
              "complete frame"] if st.get("record_error") else []
    st["errors"] = errors
    if args.json:
        print(json.dumps(st, indent=2, default=str))
    else:
        print(_table(live.summary_rows(st), ["", ""]))
    _report(args, errors)
    return EXIT_FAILURE if errors else EXIT_OK


def _one_line(e: BaseException) -> str:
    """An exception as one line, without the doubled 'X: X' some OS errors carry."""
    if isinstance(e, OSError) and e.strerror and type(e).__module__ == "builtins":
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    head, sep, tail = text.partition(": ")
    return head if sep and head == tail else text


BENCHES = ("native", "lance", "board", "bridge", "usermode", "e2e", "linux_driver", "scale")
BENCH_NEEDS_ROOT = {"usermode": "namespaces and the passt/libslirp/VDE rigs",
                    "e2e": "network namespaces, TAP, AF_PACKET",
                    "scale": "network namespaces, TAP, vxvde"}


def cmd_bench(args) -> int:
    """Run bench/*.py, each writing DIR/<name>.json; usermode, e2e and scale need root; e2e also
    draws its goodput PNGs into DIR, scale its scale_cards.png."""
    import subprocess
    bench = bench_dir()
    out = Path(args.out)
    names = [n for n in args.only.split(",") if n] if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES or not (bench / f"{n}.py").exists()]
    if unknown:
        raise UsageError(f"--only: no benchmark {', '.join(map(repr, unknown))} "
                         f"(one of {', '.join(BENCHES)})")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the directory ({e.strerror})") from e
    failed, ran = [], []
    for name in names:
        if name in BENCH_NEEDS_ROOT and os.geteuid() != 0:
            print(f"a2065 bench: {name} skipped: needs root ({BENCH_NEEDS_ROOT[name]})",
                  file=sys.stderr)
            continue
        argv = [sys.executable, str(bench / f"{name}.py"), "--json", str(out / f"{name}.json")]
        if args.quick:
            argv.append("--quick")
        if name == "e2e":
            argv += ["--plots", str(out)]
        elif name == "scale":
            argv += ["--plot", str(out / "scale_cards.png")]
        print(f"== {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        if subprocess.run(argv, cwd=str(ROOT)).returncode != 0:
            failed.append(name)
        else:
            ran.append(name)
    if failed:
        raise Failure(f"benchmarks failed: {', '.join(failed)} (the others wrote their JSON to {out})")
    print(f"results: {', '.join(str(out / (n + '.json')) for n in ran) or 'none'}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default (unless it says its default itself)."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or not action.option_strings or action.default in (None, False) \
                or action.default is argparse.SUPPRESS:
            return h
        return h + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="a2065", formatter_class=_Help,
                description="Emulated Commodore A2065 Ethernet card (Am7990 LANCE): replay "
                "captures through it, bridge it live to a host network, inspect its snapshots.",
                epilog="exit codes: 0 ok; 1 runtime failure (run failed, stream did not verify, "
                "unreadable or truncated input, recording could not be written, missing privilege "
                "or library); 2 usage error (bad arguments, missing input file, output over an "
                "input), caught before anything is opened; 130 replay/demo/bench interrupted (the bridge "
                "exits 0 on Ctrl-C)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log bridge/chip conditions to stderr (and tracebacks of internal errors)")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                           title="commands (each has --help)")
    sub.required = True

    for add in (_add_demo, _add_replay, _add_inspect, _add_bridge, _add_bench):
        add(sub)
    return p


def _add_demo(sub) -> None:
    d = sub.add_parser("demo", formatter_class=_Help,
                       help="replay a bundled real-kernel capture through segment and "
                       "drop-legacy side by side (no network, no root)",
                       description="Replay the bundled real-kernel capture (super-packets with "
                       "virtio-net metadata) through the bridge with the segment and drop-legacy "
                       "policies, into the emulated card and the Linux-style driver; write a "
                       "pcapng of what the guest received, verify the stream against the "
                       "capture's SHA-256 and print a table.")
    d.add_argument("--capture", default="tcp4", metavar="NAME|FILE",
                   help="bundled capture tcp4, tcp6 or udp4, or a pcapng/pcap file")
    d.add_argument("--out", default="out", metavar="DIR",
                   help="directory for the guest pcapng files (created if missing)")
    d.add_argument("--timing", choices=("wire", "fast"), default="wire",
                   help="wire: every frame takes its 10 Mb/s slot on emulated time, so goodput "
                   "is what the real card would see; fast: no wire time")
    d.add_argument("--no-m68k", dest="m68k", action="store_false",
                   help="skip the 68000 ARP/ping program (by default it runs when machine68k and "
                   "the m68k cross compiler are installed)")
    d.add_argument("--json", action="store_true", help="print JSON instead of the table")
    d.set_defaults(func=cmd_demo)


def _add_replay(sub) -> None:
    r = sub.add_parser("replay", formatter_class=_Help,
                       help="replay a pcapng or pcap capture through bridge, card and driver",
                       description="Replay a capture (pcapng, or classic pcap in microseconds or "
                       "nanoseconds) into the emulated card on emulated time (deterministic) and "
                       "print the bridge's counters. A damaged or truncated capture replays its "
                       "intact packets, then says where it was cut (exit 1). A stream that does "
                       "not match the SHA-256 in the capture's comment exits 1.")
    r.add_argument("file", metavar="FILE", help="pcapng or pcap capture (Ethernet)")
    r.add_argument("--policy", choices=("segment", "drop-legacy"), default="segment",
                   help="segment: cut super-packets into wire-size frames; drop-legacy: drop "
                   "what does not fit, as the old pcap bridges did")
    r.add_argument("--timing", choices=("fast", "wire"), default="fast",
                   help="fast: no wire time (quickest); wire: 10 Mb/s on emulated time")
    r.add_argument("--delivery", choices=("lossless", "hardware"), default="lossless",
                   help="lossless: frames wait for a free receive descriptor; hardware: a full "
                   "ring drops them (MISS), as on the real card")
    r.add_argument("--direction", choices=("auto", "in", "out", "all"), default="auto",
                   help="which recorded direction goes to the guest (auto: the one with more bytes)")
    r.add_argument("--mac", default="auto", type=mac_or_auto, metavar="MAC|auto",
                   help="the guest card's MAC (auto: the most common unicast destination)")
    r.add_argument("--record", metavar="OUT.pcapng",
                   help="write a pcapng of both directions at the card, with the capture's own "
                   "timestamps (default: no recording; never the input file)")
    r.add_argument("--json", action="store_true", help="print JSON instead of the table")
    r.set_defaults(func=cmd_replay)


def _add_inspect(sub) -> None:
    i = sub.add_parser("inspect", formatter_class=_Help, help="print a snapshot's summary",
                       description="Print a board snapshot's version, time, CSR values and ring state.")
    i.add_argument("snapshot", metavar="SNAPSHOT", help="snapshot file (a2065.snapshot.save)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")
    i.set_defaults(func=cmd_inspect)


def _add_bridge(sub) -> None:
    from pcap_backend.backends import REGISTRY
    backends = "; ".join(f"{n}: {k.summary}" for n, k in REGISTRY.items())
    b = sub.add_parser("bridge", formatter_class=_Help,
                       help="live bridging between a host network and a guest TAP",
                       description="Live bridging: frames from the host side (an interface, or "
                       "user-mode NAT) go through the bridge into the emulated card and the "
                       "Linux-style driver, which hands them to a TAP device (the guest's network "
                       "stack sits behind it); what the guest sends goes back out the same way. "
                       "Ctrl-C or SIGTERM stops and prints the counters. afpacket/pcap need "
                       "CAP_NET_RAW, creating a TAP needs CAP_NET_ADMIN; see SECURITY.md for "
                       "running without root.")
    b.add_argument("--iface", metavar="IF", type=str,
                   help="host interface to bridge to (afpacket, pcap, tap); for vde a "
                   "vde_switch control directory or any libvdeplug 4 URL (vde:///path, "
                   "vxvde://group[/port], cmd://..., the plugins the library has); not used by "
                   "passt and slirp (default: none)")
    b.add_argument("--backend", choices=tuple(REGISTRY), default="afpacket",
                   help=f"the host side: {backends}")
    b.add_argument("--forward", action="append", type=forward_spec,
                   metavar="tcp|udp:HOST_PORT[:GUEST_PORT]",
                   help="passt/slirp: forward a port on the host's loopback to the guest's "
                   "10.0.2.15 (repeatable; default: none)")
    b.add_argument("--timing", choices=("wire", "fast"), default="wire",
                   help="wire: 10 Mb/s in real time, as the real card; fast: as fast as the host allows")
    b.add_argument("--policy", choices=("segment", "drop-legacy"), default="segment",
                   help="segment: cut super-packets into wire-size frames; drop-legacy: drop them")
    b.add_argument("--guest-tap", default="a2065g%d", type=interface_name, metavar="NAME",
                   help="TAP device for the guest: created if missing, or an existing one (e.g. "
                   "pre-made for your user); %%d picks the first free number (default: a2065g%%d, "
                   "i.e. a2065g0, a2065g1, ...)")
    b.add_argument("--mac", type=mac_address,
                   help="the card's MAC, unicast (default: 00:80:10:12:34:56, from the board's "
                   "serial); the guest TAP gets the same MAC")
    b.add_argument("--duration", type=seconds, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C)")
    b.add_argument("--record", metavar="FILE",
                   help="pcapng of both directions at the card, wall-clock timestamps, written "
                   "at least every second (default: no recording)")
    b.add_argument("--netns", metavar="NS",
                   help="open --iface inside network namespace NS (default: the current one)")
    b.add_argument("--guest-netns", metavar="NS",
                   help="create the guest TAP in network namespace NS (default: the current one)")
    b.add_argument("--json", action="store_true", help="print the final counters as JSON")
    b.set_defaults(func=cmd_bridge)


def _add_bench(sub) -> None:
    be = sub.add_parser("bench", formatter_class=_Help,
                        help="run the benchmarks, write JSON and goodput plots",
                        description="Run bench/native.py, lance.py, board.py, bridge.py, (as "
                        "root) usermode.py, e2e.py and scale.py, and linux_driver.py (its goodput "
                        "runs as root); each writes DIR/<name>.json and nothing "
                        "else; e2e also draws e2e_goodput_time.png and e2e_goodput_summary.png, "
                        "scale scale_cards.png (matplotlib) into DIR.")
    be.add_argument("--quick", action="store_true", help="shorter runs (e2e: 5 s transfers)")
    be.add_argument("--out", metavar="DIR", default=str(ROOT / "bench" / "results"),
                    help="where JSON and PNGs go")
    be.add_argument("--only", metavar="NAMES",
                    help=f"comma-separated subset of {','.join(BENCHES)} (default: all)")
    be.set_defaults(func=cmd_bench)


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
        _fail(args, e, EXIT_USAGE)
        return EXIT_USAGE
    except Failure as e:
        _fail(args, e, EXIT_FAILURE)
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
    except Exception as e:  # noqa: BLE001 - no traceback reaches the user without -v
        if args.verbose:
            traceback.print_exc()
        _fail(args, Failure(f"internal error ({type(e).__name__}: {_one_line(e)}); rerun with -v "
                            "for the traceback and please report it"), EXIT_FAILURE)
        return EXIT_FAILURE


def _fail(args, e: Exception, code: int) -> None:
    """The one-line message on stderr; with --json also a JSON document on stdout."""
    print(f"a2065 {args.command}: error: {e}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": str(e), "exit_code": code}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
