"""Two network namespaces joined by a veth pair: the topology the bridge tests and benchmarks use.

    from a2065.rig.veth import veth_namespaces, bridged_namespaces, tcp_bulk, run_in_ns

    with veth_namespaces() as t:            # two namespaces joined by veth, addresses, links up
        got = tcp_bulk(t, 4 << 20)          # bulk TCP A -> B in threads, returns bytes received
        run_in_ns(t.ns_b, func, *args)      # a function in a forked child in ns_b
    with bridged_namespaces("a2b") as t:    # the same with `a2065 bridge` between the veth and a TAP
        ...

Everything is created with unique names (pid + counter), addresses exist only inside the
namespaces, and everything is removed on exit even when the body raises. Needs root.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Optional

from a2065.drivers.child import ROOT, child_env
from pcap_backend.netns import _setns, in_netns, link_info, netns, run, unique

__all__ = ["VethTopology", "veth_namespaces", "recreate_veth", "BridgedNamespaces",
           "bridged_namespaces", "tcp_bulk", "run_in_ns"]


def run_in_ns(ns: str, func, *args, timeout: float = 120.0, **kwargs):
    """Run `func(*args, **kwargs)` in a forked child inside `ns`; return its (pickled) result.

    An exception in the child is re-raised here as RuntimeError with the child's traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
            _setns(fd)
            try:
                out = ("ok", func(*args, **kwargs))
            except BaseException:  # noqa: BLE001 - report everything to the parent
                out = ("err", traceback.format_exc())
            data = pickle.dumps(out)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            data = f.read()
    finally:
        os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("child in namespace died without a result")
    kind, val = pickle.loads(data)
    if kind == "err":
        raise RuntimeError(f"in namespace {ns}:\n{val}")
    return val


@dataclass
class VethTopology:
    ns_a: str
    ns_b: str
    dev_a: str
    dev_b: str
    ip_a: str
    ip_b: str
    mac_a: bytes
    mac_b: bytes
    prefix: int = 24


@contextlib.contextmanager
def veth_namespaces(ip_a: str = "10.206.5.1", ip_b: str = "10.206.5.2", prefix: int = 24,
                    mtu: Optional[int] = None, ipv6: bool = False):
    """Two fresh namespaces joined by a veth pair with addresses, links up, kernel default
    offloads (TSO/GSO on). IPv6 is disabled unless `ipv6` (no DAD noise in captures)."""
    with netns("a2na") as ns_a, netns("a2nb") as ns_b:
        dev_a, dev_b = unique("a2va"), unique("a2vb")
        run(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b])
        for ns, dev, ip in ((ns_a, dev_a, ip_a), (ns_b, dev_b, ip_b)):
            if not ipv6:
                run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], ns=ns, check=False)
            if mtu:
                run(["ip", "link", "set", dev, "mtu", str(mtu)], ns=ns)
            run(["ip", "addr", "add", f"{ip}/{prefix}", "dev", dev], ns=ns)
            run(["ip", "link", "set", dev, "up"], ns=ns)
        mac_a = bytes.fromhex(link_info(ns_a, dev_a)["address"].replace(":", ""))
        mac_b = bytes.fromhex(link_info(ns_b, dev_b)["address"].replace(":", ""))
        yield VethTopology(ns_a, ns_b, dev_a, dev_b, ip_a, ip_b, mac_a, mac_b, prefix)


def recreate_veth(t: VethTopology) -> None:
    """After the veth of `t` was deleted (`ip link del`), make it again with the same names,
    addresses and state (links up, IPv6 off); the MACs are new."""
    run(["ip", "link", "add", t.dev_a, "netns", t.ns_a, "type", "veth", "peer", "name", t.dev_b,
         "netns", t.ns_b])
    for ns, dev, ip in ((t.ns_a, t.dev_a, t.ip_a), (t.ns_b, t.dev_b, t.ip_b)):
        run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], ns=ns, check=False)
        run(["ip", "addr", "add", f"{ip}/{t.prefix}", "dev", dev], ns=ns)
        run(["ip", "link", "set", dev, "up"], ns=ns)


@dataclass
class BridgedNamespaces:
    ns_a: str            # the far end: veth dev_a with 10.9.0.1/24
    ns_b: str            # the card's side: veth dev_b (no address), `a2065 bridge` and its TAP
    dev_a: str
    dev_b: str
    tap: str             # the guest TAP (card MAC, 10.9.0.2/24, up)
    bridge: subprocess.Popen  # the `a2065 bridge --json` process (stdout/stderr piped, text)
    procs: list          # processes killed on exit if still running (bridge first); append yours


@contextlib.contextmanager
def bridged_namespaces(prefix: str, bridge_args=(), *, duration: float = 60,
                       card_mac: str = "00:80:10:12:34:56"):
    """Two namespaces joined by veth, with `python -m a2065 bridge` running in ns_b on the veth
    (AF_PACKET) into a guest TAP that carries the card's MAC and 10.9.0.2/24; ns_a has 10.9.0.1/24.
    IPv6 is disabled in both. `bridge_args` go after the fixed ones (--iface, --guest-tap,
    e.g. --policy/--timing); the CLI runs for at most `duration` s. Every process in `.procs` is
    killed and both namespaces deleted on exit."""
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, dev_a, dev_b, tap = (f"{prefix}{c}{tag}" for c in "abhvg")
    procs: list = []
    run(["ip", "netns", "add", ns_a])
    try:
        run(["ip", "netns", "add", ns_b])
        run(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b])
        for ns in (ns_a, ns_b):
            run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], ns=ns, check=False)
            run(["ip", "link", "set", "lo", "up"], ns=ns)
        run(["ip", "addr", "add", "10.9.0.1/24", "dev", dev_a], ns=ns_a)
        run(["ip", "link", "set", dev_a, "up"], ns=ns_a)
        run(["ip", "link", "set", dev_b, "up"], ns=ns_b)
        bridge = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-m", "a2065", "bridge", "--iface", dev_b,
             "--guest-tap", tap, *bridge_args, "--duration", str(duration), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env(), cwd=ROOT)
        procs.append(bridge)
        for _ in range(100):
            if run(["ip", "link", "show", tap], ns=ns_b, check=False).returncode == 0:
                break
            time.sleep(0.1)
        run(["ip", "link", "set", tap, "address", card_mac], ns=ns_b)
        run(["ip", "addr", "add", "10.9.0.2/24", "dev", tap], ns=ns_b)
        run(["ip", "link", "set", tap, "up"], ns=ns_b)
        yield BridgedNamespaces(ns_a, ns_b, dev_a, dev_b, tap, bridge, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        run(["ip", "netns", "del", ns_a], check=False)
        run(["ip", "netns", "del", ns_b], check=False)


def tcp_bulk(t: VethTopology, nbytes: int, *, port: int = 5201, chunk: int = 65536,
             payload: Optional[bytes] = None, timeout: float = 60.0) -> bytes:
    """Send `nbytes` over TCP from ns_a to ns_b (threads in this process); return what B received.

    The payload is a deterministic pattern unless given."""
    if payload is None:
        pattern = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(65536))
        payload = (pattern * (nbytes // len(pattern) + 1))[:nbytes]
    with in_netns(t.ns_b):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with in_netns(t.ns_a):
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    received = bytearray()
    errors = []
    try:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((t.ip_b, port))
        srv.listen(1)
        srv.settimeout(timeout)

        def serve():
            try:
                conn, _ = srv.accept()
                conn.settimeout(timeout)
                with conn:
                    while True:
                        d = conn.recv(1 << 20)
                        if not d:
                            break
                        received.extend(d)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        cli.settimeout(timeout)
        cli.connect((t.ip_b, port))
        view = memoryview(payload)
        for off in range(0, len(view), chunk):
            cli.sendall(view[off:off + chunk])
        cli.shutdown(socket.SHUT_WR)
        th.join(timeout)
    finally:
        cli.close()
        srv.close()
    if errors:
        raise errors[0]
    return bytes(received)
