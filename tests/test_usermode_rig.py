"""The guest-namespace rig for the user-mode backends (passt, libslirp, VDE), and its own tests.

    host namespace (lo only)          this process                       guest namespace
    servers on 127.0.0.1   <-NAT->  backend <-> Bridge <-> Am7990 <-> LinuxA2065Driver <-> TAP (kernel)
                           (passt child / libslirp in the pump thread)                   udhcpc, sockets

`GuestRig(make_backend)` creates both namespaces, a TAP in the guest namespace whose MAC is the
card's, and a pump thread that lives in the host namespace (so libslirp's sockets and passt's
listeners are there) and moves frames: TAP -> driver.send -> chip -> bridge -> backend, and
backend -> bridge -> chip -> driver -> TAP, on live time in `fast` timing (Runner.step). Nothing is
routed out of the namespaces: the host namespace has only a loopback.

Also here, used by the unprivileged test and the benchmark: DHCP/ARP/ICMP frame builders and a
scripted guest (`scripted_guest`) that speaks raw frames through the card to a backend.

Run as a script (`python tests/test_usermode_rig.py scripted slirp`) it runs the scripted guest and
prints its result as JSON (the unprivileged tests start it as uid 65534).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import random
import select
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

from packets import inet_checksum as _csum  # noqa: E402

GUEST_MAC = bytes.fromhex("008010123456")  # the card's MAC for serial 0x123456 (Commodore OUI)
BROADCAST = b"\xff" * 6


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# ---------------------------------------------------------------------------------------------
# Frame builders (scripted guest)

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


def scripted_guest(backend, *, mac: bytes = GUEST_MAC, timeout: float = 20.0,
                   ping_target: str | None = None, ping_timeout: float = 5.0) -> dict:
    """DHCP DISCOVER/OFFER/REQUEST/ACK, ARP for the gateway, ICMP echo to it: through the card."""
    from netns import arp_request, icmp_echo, is_arp_reply, is_echo_reply
    got = collections.deque()
    pump = CardPump(backend, got.append, mac=mac)
    out = {"steps": []}
    end = time.monotonic() + timeout

    def wait_for(pred, resend=None, every=1.0, deadline=None):
        deadline = deadline or end
        last = time.monotonic()
        while time.monotonic() < deadline:
            while got:
                f = got.popleft()
                v = pred(f)
                if v:
                    return v
            if resend is not None and time.monotonic() - last > every:
                pump.guest_send(resend)
                last = time.monotonic()
            pump.pump(0.005)
        raise TimeoutError(f"scripted guest timed out; got so far {out}; backend {backend.stats()}")

    xid = random.getrandbits(32)
    disc = dhcp_frame(mac, xid, DHCPDISCOVER)
    pump.guest_send(disc)

    def offer(f):
        r = parse_dhcp(f, xid)
        return r if r and r[0] == DHCPOFFER else None

    _t, ip, opts = wait_for(offer, disc)
    server = socket.inet_ntoa(opts.get(54, b"\0\0\0\0"))
    out["steps"].append("offer")
    req = dhcp_frame(mac, xid, DHCPREQUEST, requested=ip, server=server)
    pump.guest_send(req)

    def ack(f):
        r = parse_dhcp(f, xid)
        return r if r and r[0] == DHCPACK else None

    _t, ip, opts = wait_for(ack, req)
    router = socket.inet_ntoa(opts[3][:4]) if 3 in opts else server
    out.update(ip=ip, router=router, server=server,
               mask=socket.inet_ntoa(opts.get(1, b"\0\0\0\0")),
               mtu=struct.unpack("!H", opts[26])[0] if 26 in opts else None,
               dns=[socket.inet_ntoa(opts[6][i:i + 4]) for i in range(0, len(opts.get(6, b"")), 4)])
    out["steps"].append("ack")
    target = ping_target or router
    arp = arp_request(mac, ip, target)
    pump.guest_send(arp)
    reply = wait_for(lambda f: f if is_arp_reply(f, target, mac) else None, arp)
    gw_mac = reply[22:28]
    out["gateway_mac"] = mac_str(gw_mac)
    out["steps"].append("arp")
    echo = icmp_echo(mac, gw_mac, ip, target, seq=1)
    pump.guest_send(echo)
    try:
        wait_for(lambda f: f if is_echo_reply(f, target) else None, echo,
                 deadline=min(end, time.monotonic() + ping_timeout))
        out["steps"].append("ping")
    except TimeoutError:
        out["ping_unanswered"] = True
    out["backend"] = {k: v for k, v in backend.stats().items() if isinstance(v, (int, str, bool))}
    out["uid"] = os.getuid()
    return out


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
        from netns import netns, run, unique
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
        from netns import in_netns, run
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
        from netns import run
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
        from netns import in_netns, run
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
        from netns import in_netns
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
                    h, n = hashlib.sha256(), 0
                    while True:
                        d = conn.recv(1 << 20)
                        if not d:
                            break
                        h.update(d)
                        n += len(d)
                    res.update(bytes=n, sha256=h.hexdigest())
        except Exception as e:  # noqa: BLE001
            res["error"] = e
        finally:
            sock.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th, res


def recv_all(sock: socket.socket) -> tuple[int, str]:
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
# Tests of the rig's own pieces (no root, no network)

def test_dhcp_frames_are_valid_broadcast_udp_with_correct_checksums():
    f = dhcp_frame(GUEST_MAC, 0x11223344, DHCPDISCOVER)
    assert f[:6] == BROADCAST and f[6:12] == GUEST_MAC and f[12:14] == b"\x08\x00"
    assert _csum(f[14:34]) == 0
    udp = f[34:]
    pseudo = f[26:34] + struct.pack("!BBH", 0, 17, len(udp))
    assert _csum(pseudo + udp) == 0
    assert struct.unpack_from("!HH", udp) == (68, 67)


def test_parse_dhcp_reads_type_lease_and_options_of_a_matching_reply_only():
    xid = 0xCAFEBABE
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, xid, 0, 0, bytes(4),
                        socket.inet_aton("10.0.2.15"), socket.inet_aton("10.0.2.2"), bytes(4),
                        GUEST_MAC + bytes(10), b"", b"")
    opts = DHCP_MAGIC + bytes([53, 1, DHCPOFFER, 1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 2, 2, 255])
    f = ipv4_udp(b"\x52\x55\x0a\x00\x02\x02", BROADCAST, "10.0.2.2", "255.255.255.255", 67, 68,
                 bootp + opts)
    t, ip, o = parse_dhcp(f, xid)
    assert (t, ip, o[3]) == (DHCPOFFER, "10.0.2.15", socket.inet_aton("10.0.2.2"))
    assert parse_dhcp(f, xid + 1) is None


def drop_privileges(uid: int = 65534, gid: int = 65534, *, userns: bool = False) -> None:
    """Become `uid` with no capabilities (setuid from root clears them all); with `userns`,
    then make our own user + network namespace as that user, as `unshare -Urn` does.

    Called after the imports: the interpreter's packages may live where that user cannot read."""
    import ctypes
    import subprocess as sp
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/* belongs to us again after setuid
    if userns:
        if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
        sp.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)


if __name__ == "__main__":  # the unprivileged child: python tests/test_usermode_rig.py scripted NAME
    import logging
    logging.basicConfig(level=logging.WARNING)
    kind, name = sys.argv[1], sys.argv[2]
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    drop = opts.pop("_drop_to", None)
    userns = opts.pop("_userns", False)
    from pcap_backend.backends.usermode import make_usermode_backend
    import a2065.runners.replay  # noqa: F401 - everything imported before the privileges go
    import netns  # noqa: F401
    if name == "slirp":
        from pcap_backend.backends.slirp import load_libslirp
        load_libslirp()
    if drop is not None:
        drop_privileges(drop, drop, userns=userns)
    b = make_usermode_backend(name, **opts)
    try:
        result = scripted_guest(b)
    finally:
        b.close()
    result["euid"] = os.geteuid()
    with open("/proc/self/status") as f:
        result["cap_eff"] = [ln.split()[1] for ln in f if ln.startswith("CapEff")][0]
    print(json.dumps(result))
