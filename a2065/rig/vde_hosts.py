"""Two hosts joined by vxvde, simulated with network namespaces (issue 13): the topology shared
by tests/test_vde_distributed.py and bench/scale.py (tooling: needs root).

::

    host A (namespace)                       host B (namespace)
    10.99.0.1/24 on veth  =================  10.99.0.2/24 on veth   (the "LAN")
    route 224.0.0.0/4 dev veth               route 224.0.0.0/4 dev veth
    vde_plug vxvde://G tap://T  10.98.0.1    vde_plug vxvde://G tap://T  10.98.0.2
    card processes (MultiCard, Vde(vxvde://G) per card), each card's guest TAP in a namespace
    of its own: guest kernels 10.98.0.1x (A) and 10.98.0.2x (B)

The veth pair joins only the two host namespaces; neither has any other interface (no default
route), so the multicast group and everything else stays inside. The vxvde URL uses TTL 1.
With ``lan=False`` there is no LAN: each host has a veth pair of its own, and the two segments
meet only through a ``dpipe vde_plug = vde_plug`` stream (`TwoHosts.join_by_stream`), the way two
machines on a routed network are joined over ssh.

Also here, run as a script inside a host namespace:

  ``python -m a2065.rig.vde_hosts cards --url URL --card NS,TAP,SERIAL,IP/LEN ...``
      one process, one `a2065.runners.multi.MultiCard` loop, one card per --card (its own `Vde`
      plug on URL; its guest TAP created in namespace NS with the card's MAC and IP/LEN). Prints
      JSON lines: ready (after every guest is configured), final (counters) after SIGTERM.
  ``python -m a2065.rig.vde_hosts mesh --me I --ips IP0,IP1,... --to J,K --bytes N``
      in guest namespace I: accept TCP streams from the others on port MESH_PORT and send one
      deterministic stream (seed = stream_seed(I, J)) of N bytes to each --to; prints READY, then
      one JSON document with the bytes and SHA-256 of every stream sent and received.

Debian packages: libvdeplug2 (vxvde plugin), vdeplug (vde_plug), iproute2.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

from a2065.drivers.child import ROOT, child_env

from .events import EventChild


MESH_PORT = 5300
LAN_PREFIX = "10.99.0."
GUEST_PREFIX = "10.98.0."


def vxvde_missing():
    """None, or why the vxvde topology cannot run (names the Debian package)."""
    if shutil.which("vde_plug") is None:
        return "needs vde_plug (Debian package vdeplug)"
    try:
        from pcap_backend.backends.vde import find_plugin, load_libvdeplug
        from pcap_backend.base import BackendUnavailable
        load_libvdeplug()
    except BackendUnavailable as e:  # names the Debian package
        return str(e)
    for plugin in ("vxvde", "tap"):
        if find_plugin(plugin) is None:
            return f"needs libvdeplug_{plugin}.so (Debian package libvdeplug2)"
    return None


def card_mac(serial: int) -> bytes:
    from a2065 import A2065
    return A2065(serial=serial).mac


def stream_seed(src: int, dst: int) -> int:
    return 13_000 + src * 64 + dst


class Guest:
    """One emulated machine: host index, card serial, guest namespace, TAP name, address."""

    def __init__(self, index: int, host: int, slot: int, ns: str, tap: str):
        self.index, self.host, self.slot, self.ns, self.tap = index, host, slot, ns, tap
        self.serial = 0x13A000 + host * 0x100 + slot
        self.mac = card_mac(self.serial)
        self.ip = f"{GUEST_PREFIX}{10 * (host + 1) + slot}"

    def spec(self) -> str:
        return f"{self.ns},{self.tap},{self.serial:#x},{self.ip}/24"


class CardsProcess(EventChild):
    """A `cards` child in a host namespace (one MultiCard loop), reporting JSON events."""

    def __init__(self, host_ns: str, url: str, guests, log_dir: str, tag: str):
        self.guests = list(guests)
        argv = ["ip", "netns", "exec", host_ns, sys.executable, "-m", "a2065.rig.vde_hosts",
                "cards", "--url", url]
        for g in self.guests:
            argv += ["--card", g.spec()]
        super().__init__(argv, os.path.join(log_dir, f"cards-{tag}.stderr"), f"cards process {tag}")

    def wait_event(self, name: str, timeout: float = 30.0, after: int = 0) -> dict:
        return super().wait_event(name, timeout, after)

    def finish(self, timeout: float = 20.0) -> dict:
        return super().finish(timeout)


class TwoHosts:
    """The topology of the module docstring: `hosts` host namespaces on one veth LAN, each with
    `cards_per_host` cards (an int, or one count per host) in `procs_per_host` card processes
    and a vde_plug TAP endpoint."""

    def __init__(self, *, cards_per_host=4, procs_per_host: int = 2, hosts: int = 2,
                 log_dir: str = "/tmp", lan: bool = True):
        from pcap_backend.netns import unique
        if hosts != 2:
            raise ValueError("the LAN is one veth pair: two hosts")
        self.hosts = hosts
        self.lan = lan
        self.cards_per_host, self.procs_per_host = cards_per_host, procs_per_host
        self.log_dir = log_dir
        tag = unique("")
        self.host_ns = [f"a2vh{i}{tag}" for i in range(hosts)]
        self.lan_dev = [f"a2vl{i}{tag}"[:15] for i in range(hosts)]
        self.endpoint_tap = [f"a2ve{i}{tag}"[:15] for i in range(hosts)]
        self.endpoint_ip = [f"{GUEST_PREFIX}{i + 1}" for i in range(hosts)]
        # a group of its own per run (administratively scoped 239/8), TTL 1, port of its own
        g = os.getpid() % 250 + 1
        self.url = f"vxvde://239.98.{g}.{int(tag.split('x')[-1]) % 250 + 1}/port={14000 + g}/ttl=1"
        counts = [cards_per_host] * hosts if isinstance(cards_per_host, int) \
            else list(cards_per_host)
        self.guests = []
        for h in range(hosts):
            for s in range(counts[h]):
                self.guests.append(Guest(len(self.guests), h, s, f"a2vg{h}{s}{tag}"[:15],
                                         f"a2vt{h}{s}{tag}"[:15]))
        self._made: list = []
        self.procs: list = []            # helper processes (endpoints, tools): killed at close
        self.cards: dict = {}            # host -> [CardsProcess]
        self.endpoints: dict = {}
        self.streams: list = []          # join_by_stream process groups

    # -- set-up ------------------------------------------------------------------------------
    def __enter__(self) -> "TwoHosts":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _ns(self, name: str) -> None:
        from pcap_backend.netns import run
        run(["ip", "netns", "add", name])
        self._made.append(name)
        run(["ip", "link", "set", "lo", "up"], ns=name)
        for scope in ("all", "default"):
            run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1"], ns=name, check=False)
        run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=name)

    def start(self) -> "TwoHosts":
        from pcap_backend.netns import run
        for ns in self.host_ns:
            self._ns(ns)
        if self.lan:
            run(["ip", "link", "add", self.lan_dev[0], "netns", self.host_ns[0], "type", "veth",
                 "peer", "name", self.lan_dev[1], "netns", self.host_ns[1]])
        else:  # no LAN between the hosts: each has a veth pair of its own (a LAN of one host)
            for h, ns in enumerate(self.host_ns):
                run(["ip", "link", "add", self.lan_dev[h], "netns", ns, "type", "veth", "peer",
                     "name", self.lan_dev[h][:-1] + "p", "netns", ns])
                run(["ip", "link", "set", self.lan_dev[h][:-1] + "p", "up"], ns=ns)
        for h, ns in enumerate(self.host_ns):
            dev = self.lan_dev[h]
            run(["ip", "addr", "add", f"{LAN_PREFIX}{h + 1}/24", "dev", dev], ns=ns)
            run(["ip", "link", "set", dev, "up"], ns=ns)
            run(["ip", "route", "add", "224.0.0.0/4", "dev", dev], ns=ns)
        for g in self.guests:
            self._ns(g.ns)
        for h in range(self.hosts):
            self.start_endpoint(h)
            self.start_cards(h)
        for h in range(self.hosts):
            for c in self.cards[h]:
                c.wait_event("ready", 60)
        return self

    def start_endpoint(self, h: int) -> subprocess.Popen:
        """vde_plug joining the group to a TAP in host namespace h, with the host's guest-LAN
        address (the kernel of the host itself is then one more machine on the segment)."""
        from pcap_backend.netns import run
        ns, tap = self.host_ns[h], self.endpoint_tap[h]
        p = subprocess.Popen(["ip", "netns", "exec", ns, "vde_plug", self.url, f"tap://{tap}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        self.procs.append(p)
        for _ in range(250):
            if run(["ip", "link", "show", tap], ns=ns, check=False).returncode == 0:
                break
            if p.poll() is not None:
                raise RuntimeError(f"vde_plug exited: {p.stderr.read()!r}")
            time.sleep(0.02)
        run(["ip", "addr", "add", f"{self.endpoint_ip[h]}/24", "dev", tap], ns=ns)
        run(["ip", "link", "set", tap, "up"], ns=ns)
        self.endpoints[h] = p
        return p

    def start_cards(self, h: int) -> list:
        """The card processes of host h (its guests split evenly between them)."""
        mine = [g for g in self.guests if g.host == h]
        if not mine:
            self.cards[h] = []
            return []
        per = -(-len(mine) // self.procs_per_host)
        procs = [CardsProcess(self.host_ns[h], self.url, mine[i:i + per], self.log_dir,
                              f"{h}-{i // per}-{time.monotonic_ns()}")
                 for i in range(0, len(mine), per)]
        self.cards[h] = procs
        return procs

    def join_by_stream(self, h: int = 0) -> subprocess.Popen:
        """`dpipe vde_plug URL = <into the other host> vde_plug URL` in host h: the two hosts'
        segments joined by one byte stream (`ip netns exec` stands in for ssh)."""
        other = self.host_ns[1 - h]
        p = subprocess.Popen(["ip", "netns", "exec", self.host_ns[h], "dpipe", "vde_plug",
                              self.url, "=", "ip", "netns", "exec", other, "vde_plug", self.url],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # dpipe leads a process group of its own
        self.streams.append(p)
        return p

    def split_stream(self, p: subprocess.Popen) -> None:
        """End a `join_by_stream`: dpipe and both vde_plugs (the group dpipe leads)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(5)

    def kill_cards(self, h: int) -> None:
        for c in self.cards.get(h, []):
            c.kill()

    def close(self) -> None:
        for p in self.streams:
            self.split_stream(p)
        for procs in self.cards.values():
            for c in procs:
                c.kill()
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.kill()
            with contextlib.suppress(Exception):
                p.wait(5)
        from pcap_backend.netns import run
        for ns in reversed(self._made):
            run(["ip", "netns", "del", ns], check=False)
        self._made.clear()

    # -- checks ------------------------------------------------------------------------------
    def spawn(self, ns: str, *args) -> subprocess.Popen:
        """A process in `ns` (killed at close); stdout/stderr piped, text."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=child_env())
        self.procs.append(p)
        return p

    def mesh(self, flows, nbytes: int, timeout: float = 120.0) -> dict:
        """One TCP stream per (src, dst) guest-index flow, all at once: a `mesh` process per
        guest namespace. Returns {(src, dst): (sent doc, received doc)}; `self.mesh_span_ns`
        is then the time from the first connection to the last stream's end."""
        ips = ",".join(g.ip for g in self.guests)
        procs = {}
        for g in self.guests:
            to = [d for s, d in flows if s == g.index]
            expect = sum(1 for s, d in flows if d == g.index)
            if not to and not expect:
                continue
            p = self.spawn(g.ns, sys.executable, "-m", "a2065.rig.vde_hosts", "mesh", "--me",
                           g.index, "--ips", ips, "--to", ",".join(map(str, to)) or "-",
                           "--expect", expect, "--bytes", nbytes, "--timeout", timeout)
            procs[g.index] = p
        for i, p in procs.items():   # every listener up before anyone connects
            r, _, _ = select.select([p.stdout], [], [], 30)
            line = p.stdout.readline() if r else ""
            if line.strip() != "READY":
                raise AssertionError(f"mesh {i} did not start: {line!r} {p.stderr.read()}")
        docs = {}
        for i, p in procs.items():
            # read through the same buffered file as the READY line (communicate() would read
            # the fd underneath and miss what that buffer already holds)
            try:
                p.wait(timeout + 30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            out, err = p.stdout.read(), p.stderr.read()
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if not lines:
                raise AssertionError(f"mesh {i} gave no result ({p.returncode}): {err[-2000:]}")
            docs[i] = json.loads(lines[-1])
        out = {}
        for s, d in flows:
            out[(s, d)] = (docs[s]["sent"].get(str(d)), docs[d]["received"].get(str(s)))
        firsts = [d["first_ns"] for d in docs.values() if d.get("first_ns")]
        lasts = [d["last_ns"] for d in docs.values() if d.get("last_ns")]
        self.mesh_span_ns = (max(lasts) - min(firsts)) if firsts and lasts else None
        return out


# ---------------------------------------------------------------------------------------------
# the card process

def run_cards(url: str, specs, seconds: float = 600.0) -> None:
    import ctypes
    from a2065.runners.guest import open_guest_tap
    from a2065.runners.multi import MultiCard
    from pcap_backend.backends.vde import Vde
    from pcap_backend.netns import in_netns, run
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the test

    def say(**doc):
        print(json.dumps(doc, default=str), flush=True)

    loop = MultiCard(timing="fast")
    opened = []
    try:
        for spec in specs:
            ns, tap_name, serial, cidr = spec.split(",")
            serial = int(serial, 0)
            mac = card_mac(serial)
            be = Vde(url, description=f"a2065-{serial:06x}")
            opened.append(be)
            tap, mc = open_guest_tap(tap_name, mac, ns)
            opened.append(tap)
            with in_netns(ns):  # the guest "boots": its kernel configures its interface
                run(["ip", "addr", "add", cidr, "dev", tap.ifname])
                run(["ip", "link", "set", tap.ifname, "up"])
            loop.add(be, tap, serial=serial, mac=mac, multicast=mc, name=tap_name)
        say(event="ready", pid=os.getpid(), cards=len(loop.cards))
        loop.run(seconds, handle_signals=True)
        st = loop.stats()
    finally:
        loop.close()
        for h in reversed(opened):
            h.close()
    say(event="final", stats=st)


# ---------------------------------------------------------------------------------------------
# the mesh tool

def run_mesh(me: int, ips, to, expect: int, nbytes: int, timeout: float) -> dict:
    from a2065.rig import StreamPattern
    by_ip = {ip: i for i, ip in enumerate(ips)}
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ips[me], MESH_PORT))
    ls.listen(64)
    ls.setblocking(False)
    print("READY", flush=True)
    end = time.monotonic() + timeout
    # senders: connect (retrying: the peer's listener may start a little later)
    tx = {}       # sock -> state
    pending = list(to)
    rx = {}       # sock -> state
    received, sent = {}, {}
    first_ns = last_ns = None
    next_try = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if pending and now >= next_try:
            for d in list(pending):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.bind((ips[me], 0))
                err = s.connect_ex((ips[d], MESH_PORT))
                if err not in (0, 115):  # EINPROGRESS
                    s.close()
                    continue
                pending.remove(d)
                if first_ns is None:
                    first_ns = time.monotonic_ns()
                tx[s] = {"dst": d, "pat": StreamPattern(stream_seed(me, d)), "k": 0, "pos": 0,
                         "sent": 0, "h": hashlib.sha256(), "chunk": None, "done": False}
            next_try = now + 0.5
        if not tx and not pending and len(received) >= expect and not rx:
            break
        wr = [s for s, st in tx.items() if not st["done"]]
        rd = [ls, *rx]
        r, w, _ = select.select(rd, wr, [], 0.2)
        for s in r:
            if s is ls:
                with contextlib.suppress(BlockingIOError):
                    c, addr = ls.accept()
                    c.setblocking(False)
                    if first_ns is None:
                        first_ns = time.monotonic_ns()
                    rx[c] = {"src": by_ip.get(addr[0], -1), "h": hashlib.sha256(), "bytes": 0}
                continue
            st = rx[s]
            try:
                data = s.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data = b""
                st["error"] = str(e)
            if data:
                st["h"].update(data)
                st["bytes"] += len(data)
                continue
            received[str(st["src"])] = {"bytes": st["bytes"], "sha256": st["h"].hexdigest(),
                                        "eof": "error" not in st}
            last_ns = time.monotonic_ns()
            s.close()
            del rx[s]
        for s in w:
            st = tx[s]
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:  # the connect failed: try again later
                s.close()
                del tx[s]
                pending.append(st["dst"])
                continue
            while st["sent"] < nbytes:
                if st["chunk"] is None:
                    st["chunk"] = memoryview(st["pat"].chunk(st["k"]))
                want = min(len(st["chunk"]) - st["pos"], nbytes - st["sent"])
                try:
                    n = s.send(st["chunk"][st["pos"]:st["pos"] + want])
                except (BlockingIOError, InterruptedError):
                    break
                st["h"].update(st["chunk"][st["pos"]:st["pos"] + n])
                st["sent"] += n
                st["pos"] += n
                if st["pos"] == len(st["chunk"]):
                    st["k"] += 1
                    st["chunk"], st["pos"] = None, 0
            if st["sent"] >= nbytes:
                s.shutdown(socket.SHUT_WR)
                s.close()
                sent[str(st["dst"])] = {"bytes": st["sent"], "sha256": st["h"].hexdigest()}
                del tx[s]
    for s, st in tx.items():
        sent[str(st["dst"])] = {"bytes": st["sent"], "sha256": st["h"].hexdigest(),
                                "unfinished": True}
    for s, st in rx.items():
        received.setdefault(str(st["src"]), {"bytes": st["bytes"],
                                             "sha256": st["h"].hexdigest(), "eof": False})
    # CLOCK_MONOTONIC is system-wide: the caller compares these across namespaces
    return {"me": me, "sent": sent, "received": received, "first_ns": first_ns,
            "last_ns": last_ns}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m a2065.rig.vde_hosts")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cards")
    c.add_argument("--url", required=True)
    c.add_argument("--card", action="append", required=True)
    c.add_argument("--seconds", type=float, default=600.0)
    m = sub.add_parser("mesh")
    m.add_argument("--me", type=int, required=True)
    m.add_argument("--ips", required=True)
    m.add_argument("--to", default="-")
    m.add_argument("--expect", type=int, default=0)
    m.add_argument("--bytes", type=int, default=1 << 20)
    m.add_argument("--timeout", type=float, default=120.0)
    a = p.parse_args(argv)
    if a.cmd == "cards":
        run_cards(a.url, a.card, a.seconds)
    else:
        to = [] if a.to == "-" else [int(x) for x in a.to.split(",")]
        doc = run_mesh(a.me, a.ips.split(","), to, a.expect, a.bytes, a.timeout)
        print(json.dumps(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
