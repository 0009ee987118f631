"""The end-to-end rig: three network namespaces around the emulated card (issue 7).

::

    namespace server                namespace wire                      namespace guest
    kernel TCP/UDP, offloads   veth  AF_PACKET / pcap socket             TAP (MTU 1500, offloads
    at defaults (TSO/GSO on) ======= of the live backend        <-card-> off, MAC = card's MAC)
    10.65.0.1/24  fd65::1/64         (no addresses)                      10.65.0.2/24  fd65::2/64

The card itself (board + LANCE + bridge + register-level Linux driver, see ``a2065.runners.live``) runs
in the *calling* process: one process holds the backend socket opened inside ``wire`` and the TAP
opened inside ``guest`` (``in_netns`` switches only the calling thread, with setns(2)). The
senders and receivers run as separate processes inside ``server`` and ``guest``
(``python -m a2065.rig tcp-send|tcp-recv|udp-send|udp-recv``), so they never compete with the
card's loop for the interpreter lock.

    with Rig() as rig:
        backend = rig.open_backend("afpacket")       # in namespace wire
        tap = rig.open_guest_tap(mac)                # in namespace guest, configured
        ...
        rx = rig.spawn("guest", "tcp-recv", "--port", "5001")
        tx = rig.spawn("server", "tcp-send", "--to", rig.guest_ip, "--port", "5001", "--bytes", "2000000")

Everything created is removed on exit (namespaces, devices, processes), also after errors.
Addresses exist only inside the namespaces; nothing is sent anywhere else. Needs root.

The endpoint tools print one ``READY`` line when listening and one JSON document at the end.
Stream payloads are deterministic (``stream_bytes(seed, n)``), so any prefix can be checked.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Callable, Optional

from a2065.drivers.child import ROOT, child_env
from pcap_backend.netns import NetnsError, in_netns, run as _run, set_link_mac

__all__ = ["Rig", "in_netns", "stream_bytes", "StreamPattern", "set_link_mac", "RigError"]

_seq = itertools.count()

SERVER_IP, GUEST_IP = "10.65.0.1", "10.65.0.2"
SERVER_IP6, GUEST_IP6 = "fd65::1", "fd65::2"


RigError = NetnsError   # a set-up step failed (the message names the command and its error)


class Rig:
    """Namespaces server / wire / guest joined as the module docstring shows.

    ipv6: give server and guest their fd65:: addresses (no DAD). server_offloads: ethtool
    features for the server's veth (default: leave the kernel's defaults, TSO/GSO on).
    """

    def __init__(self, *, ipv6: bool = True, server_offloads: Optional[dict] = None,
                 tag: Optional[str] = None):
        n = next(_seq)
        tag = tag or f"{os.getpid() % 100000}x{n}"
        self.ns_server, self.ns_wire, self.ns_guest = f"a65s{tag}", f"a65w{tag}", f"a65g{tag}"
        self.server_dev, self.wire_dev, self.tap_name = f"a65s{tag}", f"a65w{tag}", f"a65t{tag}"
        for d in (self.server_dev, self.wire_dev, self.tap_name):
            if len(d) > 15:
                raise RigError(f"interface name {d!r} too long; pass a shorter tag")
        self.ipv6 = ipv6
        self.server_offloads = server_offloads
        self.server_ip, self.guest_ip = SERVER_IP, GUEST_IP
        self.server_ip6, self.guest_ip6 = SERVER_IP6, GUEST_IP6
        self.server_mac: Optional[bytes] = None
        self._made: list = []
        self._procs: list = []
        self._closers: list = []
        self.started = False

    # -- life cycle --------------------------------------------------------------------------
    def __enter__(self) -> "Rig":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self) -> "Rig":
        for ns in (self.ns_server, self.ns_wire, self.ns_guest):
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
            _run(["ip", "link", "set", "lo", "up"], ns=ns)
        _run(["ip", "link", "add", self.server_dev, "netns", self.ns_server, "type", "veth",
              "peer", "name", self.wire_dev, "netns", self.ns_wire])
        s, w = self.ns_server, self.ns_wire
        # the wire end carries no addresses and sends nothing of its own
        _run(["sysctl", "-qw", f"net.ipv6.conf.{self.wire_dev}.disable_ipv6=1"], ns=w, check=False)
        _run(["ip", "link", "set", self.wire_dev, "up"], ns=w)
        if self.ipv6:
            _run(["sysctl", "-qw", f"net.ipv6.conf.{self.server_dev}.accept_dad=0"], ns=s, check=False)
        else:
            _run(["sysctl", "-qw", f"net.ipv6.conf.{self.server_dev}.disable_ipv6=1"], ns=s, check=False)
        _run(["ip", "addr", "add", f"{self.server_ip}/24", "dev", self.server_dev], ns=s)
        if self.ipv6:
            _run(["ip", "-6", "addr", "add", f"{self.server_ip6}/64", "dev", self.server_dev,
                  "nodad"], ns=s)
        if self.server_offloads:
            args = []
            for k, v in self.server_offloads.items():
                args += [k.replace("_", "-"), "on" if v else "off"]
            _run(["ethtool", "-K", self.server_dev, *args], ns=s)
        _run(["ip", "link", "set", self.server_dev, "up"], ns=s)
        info = json.loads(_run(["ip", "-j", "link", "show", "dev", self.server_dev], ns=s).stdout)[0]
        self.server_mac = bytes.fromhex(info["address"].replace(":", ""))
        self.started = True
        return self

    def close(self) -> None:
        """Stop every process, close every handle, delete every namespace (idempotent)."""
        for p in self._procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.kill()
                with contextlib.suppress(Exception):
                    p.wait(5)
            for f in (p.stdout, p.stderr):
                if f is not None:
                    with contextlib.suppress(Exception):
                        f.close()
        self._procs.clear()
        for c in reversed(self._closers):
            with contextlib.suppress(Exception):
                c()
        self._closers.clear()
        for ns in reversed(self._made):
            _run(["ip", "netns", "del", ns], check=False)
        self._made.clear()
        self.started = False

    # -- handles inside the namespaces ------------------------------------------------------
    def open_backend(self, kind: str = "afpacket", **kw):
        """The bridge's live backend on the wire end of the veth, opened inside `wire`."""
        from pcap_backend.backends import open_backend
        if kind not in ("afpacket", "pcap"):
            raise ValueError(f"backend must be afpacket or pcap, not {kind!r}")
        b = open_backend(kind, self.wire_dev, open_in_netns=self.ns_wire, **kw)
        self._closers.append(b.close)
        return b

    def open_guest_tap(self, mac: bytes, *, configure: bool = True):
        """Create the guest's TAP inside `guest` (it lives as long as the handle), give it the
        card's MAC, MTU 1500, offloads off, the guest addresses, and bring it up."""
        from pcap_backend.backends.tap import Tap
        with in_netns(self.ns_guest):
            tap = Tap(self.tap_name)
            set_link_mac(tap.ifname, mac)
        self._closers.append(tap.close)
        if configure:
            self.configure_guest(tap.ifname)
        return tap

    def configure_guest(self, ifname: Optional[str] = None) -> None:
        g = self.ns_guest
        dev = ifname or self.tap_name
        _run(["ip", "link", "set", dev, "mtu", "1500"], ns=g)
        for feat in ("tx", "sg", "tso", "gso", "gro", "rx"):  # each alone: some may be fixed
            _run(["ethtool", "-K", dev, feat, "off"], ns=g, check=False)
        if self.ipv6:
            _run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0"], ns=g, check=False)
        else:
            _run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], ns=g, check=False)
        _run(["ip", "addr", "add", f"{self.guest_ip}/24", "dev", dev], ns=g)
        if self.ipv6:
            _run(["ip", "-6", "addr", "add", f"{self.guest_ip6}/64", "dev", dev, "nodad"], ns=g)
        _run(["ip", "link", "set", dev, "up"], ns=g)

    def guest_offloads(self) -> dict:
        out = {}
        for line in _run(["ethtool", "-k", self.tap_name], ns=self.ns_guest).stdout.splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip().startswith("on")
        return out

    def server_offload_state(self) -> dict:
        out = {}
        for line in _run(["ethtool", "-k", self.server_dev], ns=self.ns_server).stdout.splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip().startswith("on")
        return out

    # -- processes ---------------------------------------------------------------------------
    def run(self, ns: str, argv, *, check: bool = True) -> subprocess.CompletedProcess:
        return _run(list(argv), ns=self._ns(ns), check=check)

    def _ns(self, ns: str) -> str:
        return {"server": self.ns_server, "wire": self.ns_wire, "guest": self.ns_guest}.get(ns, ns)

    def popen(self, ns: str, argv, **kw) -> subprocess.Popen:
        """Start a process inside a namespace ("server", "wire", "guest" or a name); it is
        killed at close()."""
        env = child_env()
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(["ip", "netns", "exec", self._ns(ns), *argv], env=env, text=True,
                             cwd=ROOT, **kw)
        self._procs.append(p)
        return p

    def spawn(self, ns: str, tool: str, *args, wait_ready: bool = True,
              timeout: float = 10.0) -> subprocess.Popen:
        """Run an endpoint tool of this module in a namespace; wait for its READY line."""
        p = self.popen(ns, [sys.executable, "-m", "a2065.rig", tool, *map(str, args)])
        if wait_ready:
            r, _, _ = select.select([p.stdout], [], [], timeout)
            line = p.stdout.readline() if r else ""
            if line.strip() != "READY":
                p.kill()
                err = p.stderr.read() if p.stderr else ""
                raise RigError(f"{tool} in {ns} did not start: {line!r} {err.strip()}")
        return p

    @staticmethod
    def result(p: subprocess.Popen, timeout: float = 120.0) -> dict:
        """Wait for an endpoint tool and parse its JSON result."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise RigError(f"endpoint timed out: {err.strip()[-500:]}")
        for line in reversed(out.strip().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise RigError(f"endpoint gave no result (exit {p.returncode}): {err.strip()[-500:]}")

    @contextlib.contextmanager
    def card(self, *, timing: str = "wire", policy: str = "segment", backend: str = "afpacket",
             backend_kw: Optional[dict] = None, serial: int = 0x00123456, **live_kw):
        """The emulated card between `wire` and `guest`, its live loop in a thread of this
        process: yields the running `a2065.runners.live.LiveBridge`; stops and closes it afterwards
        (the loop's exception, if any, is in `lb.error` and re-raised here)."""
        import threading
        from a2065 import A2065
        from a2065.runners.live import GuestMulticast, LiveBridge
        be = self.open_backend(backend, **(backend_kw or {}))
        mac = A2065(serial=serial).mac
        tap = self.open_guest_tap(mac)
        with in_netns(self.ns_guest):
            mc = GuestMulticast(tap.ifname)
        lb = LiveBridge(be, tap, timing=timing, policy=policy, multicast=mc, mac=mac,
                        serial=serial, **live_kw)
        stop = threading.Event()
        failure = []

        def loop():
            try:
                lb.run(stop=stop)
            except BaseException as e:  # noqa: BLE001 - surfaced in the caller's thread
                failure.append(e)

        th = threading.Thread(target=loop, name="a2065-card", daemon=True)
        th.start()
        try:
            yield lb
        finally:
            stop.set()
            th.join(15)
            lb.close()
        if failure:
            raise failure[0]

    def wait_for(self, cond, timeout: float = 10.0, interval: float = 0.05) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(interval)
        return bool(cond())

    def guest_maddr(self) -> list:
        """Link-layer multicast addresses the guest kernel has on its TAP (`ip maddr`)."""
        out = _run(["ip", "maddr", "show", "dev", self.tap_name], ns=self.ns_guest).stdout
        macs = []
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "link":
                macs.append(bytes.fromhex(parts[1].replace(":", "")))
        return macs


# ---------------------------------------------------------------------------------------------
# deterministic stream payloads

class StreamPattern:
    """An endless deterministic byte stream: 64 KB chunks, chunk k = 8-byte big-endian k followed
    by 65528 bytes of a seeded random block at a rotating offset (no two chunks alike)."""

    CHUNK = 65536
    BLOCK = 1 << 22

    def __init__(self, seed: int = 2065):
        self.block = random.Random(seed).randbytes(self.BLOCK + self.CHUNK)

    def chunk(self, k: int) -> bytes:
        off = (k * 40_503) % self.BLOCK
        return k.to_bytes(8, "big") + self.block[off:off + self.CHUNK - 8]


def stream_bytes(seed: int, n: int) -> bytes:
    """The first `n` bytes of the stream the senders produce with `seed`."""
    p = StreamPattern(seed)
    out = bytearray()
    k = 0
    while len(out) < n:
        out += p.chunk(k)
        k += 1
    return bytes(out[:n])


def _family(addr: str):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _ready():
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def _done(doc: dict):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def kernel_ping(ns: str, ip: str, *, timeout: float = 5.0,
                while_waiting: Optional[Callable[[], None]] = None) -> bool:
    """The kernel of namespace `ns` sends ICMP echo requests to `ip` (an ICMP datagram socket,
    one every 0.5 s) until one is answered (True) or `timeout` s pass (False). `while_waiting`
    runs between polls (a test pumps a card there); without it the loop sleeps 5 ms."""
    _run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=ns)
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    try:
        s.setblocking(False)
        end, last, seq = time.monotonic() + timeout, 0.0, 0
        while time.monotonic() < end:
            if time.monotonic() - last > 0.5:
                seq += 1
                s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, seq) + b"a2065-rig", (ip, 0))
                last = time.monotonic()
            try:
                d, addr = s.recvfrom(2048)
                if addr[0] == ip and d[0] == 0:
                    return True
            except BlockingIOError:
                pass
            if while_waiting is not None:
                while_waiting()
            else:
                time.sleep(0.005)
        return False
    finally:
        s.close()


def spawn_tool(procs: list, ns: str, *args: object) -> subprocess.Popen:
    """Start an endpoint tool (``python -m a2065.rig tcp-recv|tcp-send|...``) in `ns`, append it
    to `procs`, and return it after its READY line (RigError if it does not start in 20 s)."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "a2065.rig",
                          *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, env=child_env())
    procs.append(p)
    r, _, _ = select.select([p.stdout], [], [], 20)
    line = p.stdout.readline() if r else ""
    if line.strip() != "READY":
        p.kill()
        raise RigError(f"{args[0]} in {ns} did not start: {line!r} {p.stderr.read()}")
    return p


# ---------------------------------------------------------------------------------------------
# endpoint tools (python -m a2065.rig TOOL ...)

def tool_tcp_recv(a) -> dict:
    fam = _family(a.bind)
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.bind, a.port))
    srv.listen(1)
    _ready()
    srv.settimeout(a.accept_timeout)
    conn, peer = srv.accept()
    srv.close()
    h = hashlib.sha256()
    total = 0
    first = last = None
    first_len = 0
    samples = []
    sample_ns = int(a.sample_ms * 1e6)
    next_sample = None
    deadline = time.monotonic_ns() + int(a.max_seconds * 1e9)
    eof = False
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    conn.setblocking(False)
    while True:
        now = time.monotonic_ns()
        if now >= deadline:
            break
        if next_sample is not None and now >= next_sample:
            samples.append([now, total])
            next_sample += sample_ns
            while next_sample <= now:
                next_sample += sample_ns
        wait = min(deadline - now, sample_ns if next_sample is None else max(0, next_sample - now))
        r, _, _ = select.select([conn], [], [], wait / 1e9)
        if not r:
            continue
        try:
            n = conn.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            continue
        except ConnectionResetError:
            break
        if n == 0:
            eof = True
            break
        t = time.monotonic_ns()
        if first is None:
            first = t
            first_len = n
            next_sample = t + sample_ns
            samples.append([t, 0])
        last = t
        h.update(view[:n])
        total += n
    end_ns = time.monotonic_ns()
    if last is not None:
        samples.append([last, total])
    conn.close()
    span = (last - first) if first is not None and last is not None else 0
    return {"bytes": total, "sha256": h.hexdigest(), "eof": eof, "first_ns": first, "last_ns": last,
            "end_ns": end_ns,
            # the first read's bytes arrived before the interval starts
            "goodput_Bps": int((total - first_len) * 1e9 / span) if span > 0 else 0,
            "first_len": first_len, "samples": samples,
            "peer": str(peer[0])}


def tool_tcp_send(a) -> dict:
    fam = _family(a.to)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(a.connect_timeout)
    t0 = time.monotonic_ns()
    s.connect((a.to, a.port))
    _ready()
    pat = StreamPattern(a.seed)
    h = hashlib.sha256()
    sent = 0
    limit = a.bytes if a.bytes else None
    end = time.monotonic_ns() + int(a.duration * 1e9) if a.duration else None
    s.setblocking(False)
    k = 0
    chunk = memoryview(pat.chunk(0))
    pos = 0
    stop = False
    while not stop:
        now = time.monotonic_ns()
        if end is not None and now >= end:
            break
        want = len(chunk) - pos
        if limit is not None:
            want = min(want, limit - sent)
            if want <= 0:
                break
        wait = 1.0 if end is None else max(0.0, (end - now) / 1e9)
        _, w, _ = select.select([], [s], [], min(wait, 1.0))
        if not w:
            continue
        try:
            n = s.send(chunk[pos:pos + want])
        except (BlockingIOError, InterruptedError):
            continue
        h.update(chunk[pos:pos + n])
        sent += n
        pos += n
        if pos == len(chunk):
            k += 1
            chunk = memoryview(pat.chunk(k))
            pos = 0
    t_sent = time.monotonic_ns()
    s.setblocking(True)
    s.settimeout(a.linger)
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_WR)
    closed = False
    with contextlib.suppress(OSError):  # wait for the receiver to close: everything arrived
        closed = s.recv(1) == b""
    s.close()
    return {"bytes": sent, "sha256": h.hexdigest(), "start_ns": t0, "sent_ns": t_sent,
            "end_ns": time.monotonic_ns(), "peer_closed": closed}


def _dgram(seed: int, seq: int, size: int) -> bytes:
    head = struct.pack("!IQ", 0xA2065D00 ^ seed, seq)
    body = hashlib.blake2b(head, digest_size=64).digest()
    body = (body * (size // 64 + 1))[:max(0, size - len(head))]
    return head + body


def tool_udp_send(a) -> dict:
    fam = _family(a.to)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if a.group_if:
        if fam == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.group_if))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(a.group_if))
    _ready()
    period = a.size * 8 / a.rate_bps if a.rate_bps else 0.0
    n = a.count
    sent = errors = 0
    t0 = time.monotonic()
    for seq in range(n):
        if period:
            due = t0 + seq * period
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
        try:
            s.sendto(_dgram(a.seed, seq, a.size), (a.to, a.port))
            sent += 1
        except OSError:
            errors += 1
    s.close()
    return {"sent": sent, "errors": errors, "size": a.size, "seconds": time.monotonic() - t0}


def tool_udp_recv(a) -> dict:
    fam = _family(a.bind) if not a.group else _family(a.group)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if a.group:
        s.bind(("", a.port))
        if fam == socket.AF_INET:
            mreq = socket.inet_aton(a.group) + socket.inet_aton(a.bind)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            idx = socket.if_nametoindex(a.iface)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         socket.inet_pton(socket.AF_INET6, a.group) + struct.pack("@I", idx))
    else:
        s.bind((a.bind, a.port))
    _ready()
    seen = set()
    good = bad = dup = 0
    nbytes = 0
    deadline = time.monotonic() + a.max_seconds
    idle_until = None
    while True:
        now = time.monotonic()
        limit = deadline if idle_until is None else min(deadline, idle_until)
        if now >= limit:
            break
        r, _, _ = select.select([s], [], [], limit - now)
        if not r:
            continue
        data = s.recv(65536)
        idle_until = time.monotonic() + a.idle
        if len(data) < 12:
            bad += 1
            continue
        seq = struct.unpack_from("!Q", data, 4)[0]
        if data != _dgram(a.seed, seq, len(data)):
            bad += 1
            continue
        if seq in seen:
            dup += 1
            continue
        seen.add(seq)
        good += 1
        nbytes += len(data)
    s.close()
    return {"received": good, "bad": bad, "duplicates": dup, "bytes": nbytes,
            "max_seq": max(seen) if seen else -1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m a2065.rig", description="endpoint tools of the rig")
    sub = p.add_subparsers(dest="tool", required=True)
    r = sub.add_parser("tcp-recv")
    r.add_argument("--bind", default="0.0.0.0")
    r.add_argument("--port", type=int, default=5001)
    r.add_argument("--sample-ms", type=float, default=250.0)
    r.add_argument("--max-seconds", type=float, default=120.0)
    r.add_argument("--accept-timeout", type=float, default=30.0)
    r.set_defaults(func=tool_tcp_recv)
    s = sub.add_parser("tcp-send")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, default=5001)
    s.add_argument("--bytes", type=int, default=0)
    s.add_argument("--duration", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=2065)
    s.add_argument("--connect-timeout", type=float, default=15.0)
    s.add_argument("--linger", type=float, default=60.0)
    s.set_defaults(func=tool_tcp_send)
    u = sub.add_parser("udp-send")
    u.add_argument("--to", required=True)
    u.add_argument("--port", type=int, default=5002)
    u.add_argument("--count", type=int, default=1000)
    u.add_argument("--size", type=int, default=1400)
    u.add_argument("--rate-bps", type=float, default=0.0)
    u.add_argument("--seed", type=int, default=7)
    u.add_argument("--group-if", default="")
    u.set_defaults(func=tool_udp_send)
    v = sub.add_parser("udp-recv")
    v.add_argument("--bind", default="0.0.0.0")
    v.add_argument("--port", type=int, default=5002)
    v.add_argument("--group", default="")
    v.add_argument("--iface", default="")
    v.add_argument("--seed", type=int, default=7)
    v.add_argument("--max-seconds", type=float, default=30.0)
    v.add_argument("--idle", type=float, default=1.5)
    v.set_defaults(func=tool_udp_recv)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    _done(a.func(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
