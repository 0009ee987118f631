"""The guest-namespace rig for the user-mode backends (passt, libslirp, VDE).

    host namespace (lo only)          this process                       guest namespace
    servers on 127.0.0.1   <-NAT->  backend <-> Bridge <-> Am7990 <-> LinuxA2065Driver <-> TAP (kernel)
                           (passt child / libslirp in the pump thread)                   udhcpc, sockets

`GuestRig(make_backend)` creates both namespaces, a TAP in the guest namespace whose MAC is the
card's, and a pump thread that lives in the host namespace (so libslirp's sockets and passt's
listeners are there) and moves frames: TAP -> driver.send -> chip -> bridge -> backend, and
backend -> bridge -> chip -> driver -> TAP, on live time in `fast` timing (Runner.step). Nothing is
routed out of the namespaces: the host namespace has only a loopback. Needs root.

Also here: `CardPump` (the card between a backend and a guest callback), DHCP frame builders,
and the TCP download that measures a transfer into the guest (`guest_download`; the tests and
bench/usermode.py both use it). `start_switch`/`stop_switch` run a vde_switch.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from native import checksum as _csum
from pcap_backend.netns import in_netns, netns, run, unique

__all__ = ["GUEST_MAC", "BROADCAST", "CardPump", "GuestRig", "UDHCPC_SCRIPT", "dhcp_frame",
           "parse_dhcp", "ipv4_udp", "mac_str", "sha_stream", "tcp_server", "recv_all",
           "guest_download", "start_switch", "stop_switch", "DHCP_MAGIC", "DHCPDISCOVER",
           "DHCPOFFER", "DHCPREQUEST", "DHCPACK"]

GUEST_MAC = bytes.fromhex("008010123456")  # the card's MAC for serial 0x123456 (Commodore OUI)
BROADCAST = b"\xff" * 6


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# ---------------------------------------------------------------------------------------------
# Frame builders

def ipv4_udp(src_mac, dst_mac, src_ip, dst_ip, sport, dport, payload) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, len(udp))
    c = _csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), random.getrandbits(16), 0, 64, 17,
                     0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, DHCPACK = 1, 2, 3, 5


def dhcp_frame(mac: bytes, xid: int, msg_type: int, requested=None, server=None) -> bytes:
    """A DHCP DISCOVER or REQUEST from `mac`, broadcast (RFC 2131)."""
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4),
                        bytes(4), bytes(4), bytes(4), mac + bytes(10), b"", b"")
    opts = DHCP_MAGIC + bytes([53, 1, msg_type])
    if requested:
        opts += bytes([50, 4]) + socket.inet_aton(requested)
    if server:
        opts += bytes([54, 4]) + socket.inet_aton(server)
    opts += bytes([55, 4, 1, 3, 6, 26, 255])
    return ipv4_udp(mac, BROADCAST, "0.0.0.0", "255.255.255.255", 68, 67, bootp + opts)


def parse_dhcp(frame: bytes, xid: int):
    """(message type, yiaddr, options dict) of a DHCP reply with this xid, or None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    l4 = 14 + (frame[14] & 0xF) * 4
    sport, dport = struct.unpack_from("!HH", frame, l4)
    if (sport, dport) != (67, 68):
        return None
    b = frame[l4 + 8:]
    if b[0] != 2 or struct.unpack_from("!I", b, 4)[0] != xid or b[236:240] != DHCP_MAGIC:
        return None
    yiaddr = socket.inet_ntoa(b[16:20])
    opts, i = {}, 240
    while i < len(b) and b[i] != 255:
        if b[i] == 0:
            i += 1
            continue
        if i + 1 >= len(b):
            break
        code, n = b[i], b[i + 1]
        opts[code] = b[i + 2:i + 2 + n]
        i += 2 + n
    return opts.get(53, b"\0")[0], yiaddr, opts


# ---------------------------------------------------------------------------------------------
# The card between a guest and a backend

class CardPump:
    """Runner (board + bridge + Linux-style driver) between a backend and a guest side, on live
    time. `guest_send(frame)` queues a frame for the card to transmit; `on_guest(frame)` gets
    every frame the driver received. Call `pump(timeout_s)` repeatedly (one thread only)."""

    def __init__(self, backend, on_guest, *, mac: bytes = GUEST_MAC, timing: str = "fast",
                 extra_fds=()):
        from a2065.runners.replay import Runner
        self.backend = backend
        self.runner = Runner(backend, timing=timing, mac=mac,
                             on_receive=lambda f, t: on_guest(f))
        self.pending = collections.deque()
        self.t0 = time.monotonic_ns()
        self.base = self.runner.now
        self.fds = [fd for fd in extra_fds if fd is not None]

    def now(self) -> int:
        return self.base + time.monotonic_ns() - self.t0

    def guest_send(self, frame: bytes) -> None:
        self.pending.append(frame)

    def pump(self, timeout_s: float = 0.001) -> None:
        r = self.runner
        drv = r.driver
        for _ in range(4):
            now = self.now()
            while self.pending and drv.send(self.pending[0]):
                self.pending.popleft()
            r.step(now)
            if not self.pending and not r.bridge.queued:
                break
        if self.pending or r.bridge.queued:
            return
        fds = [fd for fd in (self.backend.fileno(), *self.fds) if fd is not None]
        if timeout_s > 0:
            select.select(fds, [], [], timeout_s)


# ---------------------------------------------------------------------------------------------
# The guest-namespace rig (root)

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    echo "lease $ip/${mask:-24} router $router mtu $mtu" ;;
esac
exit 0
"""


class GuestRig:
    """Namespaces `host_ns` (lo only) and `guest_ns` (a kernel TAP driven through the card).

    make_backend(host_ns) is called inside the pump thread, in the host namespace."""

    def __init__(self, make_backend, *, timing: str = "fast"):
        self.make_backend = make_backend
        self.timing = timing
        self.error = None
        self.backend = None
        self.pump = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        try:
            self.host_ns = self._stack.enter_context(netns("a2uh"))
            self.guest_ns = self._stack.enter_context(netns("a2ug"))
            # unprivileged ping sockets (passt/libslirp answer the guest's pings through them)
            run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=self.host_ns)
            run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], ns=self.guest_ns,
                check=False)
            self.tap = unique("a2ut")
            self._tmp = tempfile.mkdtemp(prefix="a2065-rig-")
            self._stack.callback(shutil.rmtree, self._tmp, True)
            self._thread = threading.Thread(target=self._run, name="a2065-usermode-pump",
                                            daemon=True)
            self._thread.start()
            self._stack.callback(self._join)
            if not self._ready.wait(30) or self.error:
                raise RuntimeError(f"rig did not start: {self.error!r}") from self.error
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def _join(self):
        self._stop.set()
        self._thread.join(20)

    def _run(self):
        from pcap_backend.backends.tap import Tap
        backend = tap = None
        try:
            with in_netns(self.host_ns):
                backend = self.backend = self.make_backend(self.host_ns)
                with in_netns(self.guest_ns):
                    tap = Tap(self.tap)
                run(["ip", "link", "set", self.tap, "address", mac_str(GUEST_MAC)], ns=self.guest_ns)
                run(["ip", "link", "set", self.tap, "up"], ns=self.guest_ns)
                self.pump = pump = CardPump(backend, lambda f: tap.send(f, 0), timing=self.timing,
                                            extra_fds=(tap.fileno(),))
                self._ready.set()
                while not self._stop.is_set():
                    for p in tap.poll(0, 64):
                        pump.guest_send(p.frame)
                    pump.pump(0.002)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
            self._ready.set()
        finally:
            if tap is not None:
                tap.close()
            if backend is not None:
                backend.close()

    def check(self):
        if self.error:
            raise RuntimeError(f"pump thread failed: {self.error!r}") from self.error

    # -- guest side ---------------------------------------------------------------------------
    def dhcp(self, timeout: float = 20.0) -> dict:
        """A DHCP lease for the guest kernel's TAP: busybox udhcpc if installed, else (or with
        A2065_TEST_DHCP=python) the Python client over an AF_PACKET socket in the guest
        namespace, which then configures the address, MTU and default route with ip."""
        udhcpc = shutil.which("udhcpc") or shutil.which("busybox")
        if os.environ.get("A2065_TEST_DHCP") == "python":
            udhcpc = None
        if udhcpc:
            script = os.path.join(self._tmp, "udhcpc.sh")
            with open(script, "w") as f:
                f.write(UDHCPC_SCRIPT)
            os.chmod(script, 0o755)
            argv = [udhcpc] if udhcpc.endswith("udhcpc") else [udhcpc, "udhcpc"]
            r = run(argv + ["-i", self.tap, "-f", "-q", "-n", "-t", "10", "-T", "1", "-A", "1",
                            "-s", script], ns=self.guest_ns, check=False, timeout=timeout)
            self.check()
            if r.returncode != 0:
                raise RuntimeError(f"udhcpc failed ({r.returncode}): {r.stdout} {r.stderr}; "
                                   f"backend {self.backend.stats()}")
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("lease ")][-1].split()
            ip, prefix = line[1].split("/")
            lease = {"client": "udhcpc", "ip": ip, "prefix": int(prefix), "router": line[3],
                     "mtu": line[5] if len(line) > 5 else None}
        else:
            lease = self._python_dhcp(timeout)
        return lease

    def _python_dhcp(self, timeout):
        with in_netns(self.guest_ns):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        try:
            s.bind((self.tap, 0))
            s.settimeout(1.0)
            xid = random.getrandbits(32)
            deadline = time.monotonic() + timeout

            def exchange(frame, want):
                while time.monotonic() < deadline:
                    s.send(frame)
                    t = time.monotonic() + 1
                    while time.monotonic() < t:
                        try:
                            f = s.recv(65536)
                        except socket.timeout:
                            break
                        r = parse_dhcp(f, xid)
                        if r and r[0] == want:
                            return r
                raise TimeoutError("no DHCP reply")

            _t, ip, opts = exchange(dhcp_frame(GUEST_MAC, xid, DHCPDISCOVER), DHCPOFFER)
            server = socket.inet_ntoa(opts[54])
            _t, ip, opts = exchange(dhcp_frame(GUEST_MAC, xid, DHCPREQUEST, ip, server), DHCPACK)
        finally:
            s.close()
        prefix = bin(int.from_bytes(opts[1], "big")).count("1")
        router = socket.inet_ntoa(opts[3][:4])
        run(["ip", "addr", "add", f"{ip}/{prefix}", "dev", self.tap], ns=self.guest_ns)
        if 26 in opts:
            run(["ip", "link", "set", self.tap, "mtu", str(struct.unpack("!H", opts[26])[0])],
                ns=self.guest_ns)
        run(["ip", "route", "add", "default", "via", router, "dev", self.tap], ns=self.guest_ns)
        return {"client": "python", "ip": ip, "prefix": prefix, "router": router}

    def socket_in(self, ns: str, *args) -> socket.socket:
        with in_netns(ns):
            return socket.socket(*args)


def sha_stream(nbytes: int, seed: int = 0x2065):
    """A deterministic pseudo-random payload of nbytes and its SHA-256."""
    rnd = random.Random(seed)
    block = rnd.randbytes(1 << 20)
    data = (block * (nbytes // len(block) + 1))[:nbytes]
    return data, hashlib.sha256(data).hexdigest()


def tcp_server(sock: socket.socket, *, send: bytes | None = None, timeout: float = 120.0):
    """Accept one connection on a listening socket in a thread: either send `send` and close, or
    read to EOF. Returns (thread, result dict: sha256, bytes, error)."""
    res: dict = {}

    def serve():
        try:
            sock.settimeout(timeout)
            conn, _ = sock.accept()
            conn.settimeout(timeout)
            with conn:
                if send is not None:
                    conn.sendall(send)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(1)
                    res["bytes"] = len(send)
                else:
                    n, digest = recv_all(conn)
                    res.update(bytes=n, sha256=digest)
        except Exception as e:  # noqa: BLE001
            res["error"] = e
        finally:
            sock.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th, res


def recv_all(sock: socket.socket) -> tuple[int, str]:
    """Read to EOF: (bytes, their SHA-256)."""
    h, n = hashlib.sha256(), 0
    while True:
        d = sock.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
    return n, h.hexdigest()


def guest_download(rig: "GuestRig", nbytes: int, *, server_ns: str | None = None,
                   server_ip: str = "127.0.0.1", connect_ip: str = "10.0.2.2",
                   timeout: float = 120.0, join: float = 30.0):
    """A guest-namespace TCP client downloads `nbytes` (sha_stream) from a one-shot server in
    `server_ns` (default: the rig's host namespace) at server_ip, connecting to connect_ip (default:
    the NAT gateway, which maps to the host's 127.0.0.1). Returns (bytes received, their SHA-256,
    the sent SHA-256, the server's result dict, seconds from connect to EOF)."""
    data, sha = sha_stream(nbytes)
    srv = rig.socket_in(rig.host_ns if server_ns is None else server_ns, socket.AF_INET,
                        socket.SOCK_STREAM)
    srv.bind((server_ip, 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    th, res = tcp_server(srv, send=data)
    cli = rig.socket_in(rig.guest_ns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        cli.settimeout(timeout)
        t0 = time.perf_counter()
        cli.connect((connect_ip, port))
        n, got = recv_all(cli)
        dt = time.perf_counter() - t0
    finally:
        cli.close()
        th.join(join)
    return n, got, sha, res, dt


# ---------------------------------------------------------------------------------------------
# A vde_switch for the VDE backend

def start_switch(sock_dir: str) -> subprocess.Popen:
    """Start `vde_switch -s sock_dir` and wait for its control socket."""
    p = subprocess.Popen(["vde_switch", "-s", sock_dir], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(os.path.join(sock_dir, "ctl")):
            return p
        if p.poll() is not None:
            raise RuntimeError(f"vde_switch exited with {p.returncode}")
        time.sleep(0.02)
    p.kill()
    raise RuntimeError("vde_switch did not create its control socket")


def stop_switch(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(5)
