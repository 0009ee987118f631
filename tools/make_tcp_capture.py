#!/usr/bin/env python3
"""Record real-kernel super-packet captures for fixtures/captures/.

Two network namespaces joined by a veth pair, kernel defaults (TSO/GSO on at the sender, GRO as the
kernel leaves it at the receiver). A Python sender in namespace A sends a deterministic byte stream
(seeded PRNG) over TCP to a Python receiver in namespace B; an AF_PACKET socket with
PACKET_VNET_HDR bound to A's veth records every frame in both directions together with the
virtio_net_hdr the kernel attaches (gso_type, gso_size, csum_start, csum_offset, flags) and a kernel
nanosecond timestamp (SO_TIMESTAMPNS). The result is written as pcapng (if_tsresol 9) with the
metadata as a JSON `opt_comment` on each Enhanced Packet Block; see fixtures/captures/README.md.

Small-MSS captures without kernel metadata (the path of a libpcap bridge, or AF_PACKET without the
virtio-net header): ``--mss 536`` makes the receiver (the guest's role) advertise that MSS
(TCP_MAXSEG before listen/connect), ``--timestamps off`` turns TCP timestamps off in both
namespaces (net.ipv4.tcp_timestamps, per namespace), ``--capture afpacket|libpcap`` records without
the virtio-net header and ``--capture-side receiver`` records on the receiver's veth (where a bridge
listens: the sender's TSO super-packets arrive whole). A second AF_PACKET socket with the vnet
header records the kernel's gso_size of every super-packet in the same run (the truth the bridge's
segments are checked against); it goes into the section header's comment, not the packets.

Usage (root):
    python3 tools/make_tcp_capture.py --family 4 --size 2097152 --out fixtures/captures/tcp4_tso.pcapng
    python3 tools/make_tcp_capture.py --family 6 --size 2097152 --out fixtures/captures/tcp6_tso.pcapng
    python3 tools/make_tcp_capture.py --udp-gso --size 131072 --out fixtures/captures/udp4_gso.pcapng
    python3 tools/make_tcp_capture.py --family 4 --mss 536 --capture libpcap --capture-side receiver \
        --size 262144 --out fixtures/captures/tcp4_mss536_ts_libpcap.pcapng

The stream's SHA-256 and the capture's counts are printed as JSON (and go into the README).
Everything stays inside the two namespaces this script creates (names include the pid); they are
deleted in a finally block.
"""
from __future__ import annotations

import argparse
import hashlib
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

SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_STATISTICS = 6
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
ETH_P_ALL = 0x0003
SOL_UDP = 17
UDP_SEGMENT = 103
VNET_HDR = struct.Struct("<BBHHHH")  # 10 bytes: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
PKTTYPE_OUTGOING = 4

ADDR4 = ("10.206.5.1", "10.206.5.2")
ADDR6 = ("fd00:a206:5::1", "fd00:a206:5::2")
PORT = 5001
SEED = 2065


def stream_bytes(size: int, seed: int = SEED) -> bytes:
    """The deterministic payload: `random.Random(seed).randbytes(size)` (CPython's Mersenne Twister)."""
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------- roles in namespaces

def _libpcap_reader(iface: str):
    """(fileno, read) over a libpcap handle on `iface`, both directions, full snaplen, immediate
    mode; read() returns [(ts_ns, pkttype, frame)] (libpcap gives no direction: pkttype 0, the
    caller tells directions apart by source MAC). Uses the project's libpcap loader."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pcap_backend.backends.pcap import load_libpcap
    ffi, lib = load_libpcap()
    err = ffi.new("char[]", 512)
    p = lib.pcap_create(iface.encode(), err)
    if p == ffi.NULL:
        raise RuntimeError(ffi.string(err).decode())
    lib.pcap_set_snaplen(p, 262144)
    lib.pcap_set_promisc(p, 1)
    lib.pcap_set_immediate_mode(p, 1)
    lib.pcap_set_buffer_size(p, 256 << 20)
    if lib.pcap_activate(p) < 0:
        raise RuntimeError(ffi.string(lib.pcap_geterr(p)).decode())
    lib.pcap_setnonblock(p, 1, err)
    h = ffi.new("struct pcap_pkthdr **")
    d = ffi.new("const unsigned char **")

    def read():
        out = []
        for _ in range(4096):  # bounded per call
            if lib.pcap_next_ex(p, h, d) != 1:
                break
            hdr = h[0]
            if hdr.caplen < hdr.len:
                raise RuntimeError("libpcap cut a frame at snaplen")
            ts = hdr.ts.tv_sec * 1_000_000_000 + hdr.ts.tv_usec * 1000
            out.append((ts, 0, bytes(ffi.buffer(d[0], hdr.caplen))))
        return out

    def drops():
        st = ffi.new("struct pcap_stat *")
        lib.pcap_stats(p, st)
        return st.ps_recv, st.ps_drop + st.ps_ifdrop

    return lib.pcap_get_selectable_fd(p), read, drops


def _packet_socket(iface: str, vnet: bool) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    if vnet:
        s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)  # must precede bind
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((iface, 0))
    return s


def _socket_reader(s: socket.socket):
    """(fileno, read, drops) over an AF_PACKET socket; read() returns [(ts_ns, pkttype, data)]."""
    def read():
        out = []
        for _ in range(4096):  # bounded per call
            try:
                data, anc, _flags, addr = s.recvmsg(262144 + VNET_HDR.size, 64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            ts = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    ts = sec * 1_000_000_000 + nsec
            out.append((ts if ts is not None else time.time_ns(), addr[2], data))
        return out

    def drops():
        return struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))

    return s.fileno(), read, drops


def role_capture(iface: str, out_path: str, mode: str = "vnet") -> None:
    """Record frames on `iface` until SIGTERM; write raw records to out_path (a pickle-free format).

    mode vnet: AF_PACKET with the virtio-net header (each record starts with it); afpacket: plain
    AF_PACKET; libpcap: a libpcap handle. In the last two a second, vnet-header socket records the
    kernel's gso_size of every super-packet into out_path + ".gso" (JSON list)."""
    if mode == "libpcap":
        fd, read, drops = _libpcap_reader(iface)
    else:
        fd, read, drops = _socket_reader(_packet_socket(iface, mode == "vnet"))
    truth = None
    if mode != "vnet":
        truth = _socket_reader(_packet_socket(iface, True))
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    records = []
    gso_sizes = []
    print("ready", flush=True)
    idle_after_stop = 0
    fds = [fd] + ([truth[0]] if truth else [])
    while True:
        r, _, _ = select.select(fds, [], [], 0.1)
        if not r:
            if stop:
                idle_after_stop += 1
                if idle_after_stop >= 3:
                    break
            continue
        records += read()
        if truth:
            for _ts, _pt, data in truth[1]():
                _flags, gso_type, _hdr_len, gso_size, _cs, _co = VNET_HDR.unpack_from(data)
                if gso_type and len(data) - VNET_HDR.size > 1514:
                    gso_sizes.append(gso_size)
    tp_packets, tp_drops = drops()
    if truth:
        tp_drops += truth[2]()[1]
        with open(out_path + ".gso", "w") as f:
            json.dump(gso_sizes, f)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<II", tp_packets, tp_drops))
        for ts, pkttype, data in records:
            f.write(struct.pack("<QBI", ts, pkttype, len(data)))
            f.write(data)


TCP_MAXSEG = 2


def role_receiver(family: int, udp: bool, expect: int, mss: int = 0, connect: bool = False) -> None:
    """The guest's role: receive the stream. mss: advertise it (TCP_MAXSEG before listen or
    connect); connect: be the client (the MSS then rides on the SYN, else on the SYN-ACK)."""
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    addr = ADDR6[1] if family == 6 else ADDR4[1]
    h = hashlib.sha256()
    total = 0
    if udp:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((addr, PORT))
        print("ready", flush=True)
        s.settimeout(5.0)
        datagrams = 0
        while total < expect:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            h.update(d)
            total += len(d)
            datagrams += 1
        print(json.dumps({"sha256": h.hexdigest(), "bytes": total, "datagrams": datagrams}), flush=True)
        return
    if connect:
        c = socket.socket(fam, socket.SOCK_STREAM)
        if mss:
            c.setsockopt(socket.IPPROTO_TCP, TCP_MAXSEG, mss)
        print("ready", flush=True)
        peer = ADDR6[0] if family == 6 else ADDR4[0]
        for _ in range(100):
            try:
                c.connect((peer, PORT))
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
    else:
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mss:
            ls.setsockopt(socket.IPPROTO_TCP, TCP_MAXSEG, mss)
        ls.bind((addr, PORT))
        ls.listen(1)
        print("ready", flush=True)
        c, _ = ls.accept()
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        total += len(d)
    c.close()
    print(json.dumps({"sha256": h.hexdigest(), "bytes": total}), flush=True)


def role_sender(family: int, udp: bool, size: int, gso: int, listen: bool = False) -> None:
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    src, dst = (ADDR6 if family == 6 else ADDR4)
    data = stream_bytes(size)
    if udp:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((src, PORT + 1))
        s.setsockopt(SOL_UDP, UDP_SEGMENT, gso)
        chunk = gso * 40
        for off in range(0, size, chunk):
            s.sendto(data[off:off + chunk], (dst, PORT))
            time.sleep(0.005)  # let the receiver and the capture keep up
        s.close()
        return
    if listen:  # the receiver connects (--guest-connects)
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((src, PORT))
        ls.listen(1)
        s, _ = ls.accept()
    else:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.connect((dst, PORT))
    # Paced in 256 KB writes so the Python capture loses nothing; TSO still builds 64 KB frames.
    step = 256 * 1024
    for off in range(0, size, step):
        s.sendall(data[off:off + step])
        time.sleep(0.01)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # wait for the receiver's FIN
    s.close()


# --------------------------------------------------------------------------- orchestration

def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def spawn(ns: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(p: subprocess.Popen, what: str) -> None:
    line = p.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"{what} did not start: {line!r} {p.stderr.read()}")


def write_pcapng(path: str, records, comment: str, vnet: bool = True, own_mac: bytes = b"") -> dict:
    """Records -> pcapng. vnet: each record starts with the virtio_net_hdr (written as the EPB's
    JSON comment); else the EPB comment holds only the direction, told by pkttype or, where the
    capture gave none (libpcap), by the source MAC (own_mac: the captured veth's address)."""
    from pcap_backend.capfile import pcapng_header, pcapng_packet

    stats = {"frames": 0, "super_packets": 0, "largest_frame": 0, "outgoing": 0, "incoming": 0}
    with open(path, "wb") as f:
        f.write(pcapng_header(if_name="vethA", application="a2065 tools/make_tcp_capture.py",
                              comment=comment))
        for ts, pkttype, data in records:
            if not vnet:
                frame = data
                if pkttype == 0 and own_mac:
                    pkttype = PKTTYPE_OUTGOING if frame[6:12] == own_mac else 0
                meta = {"dir": "out" if pkttype == PKTTYPE_OUTGOING else "in"}
                gso_type = 0
            else:
                flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(data)
                frame = data[VNET_HDR.size:]
                meta = {"dir": "out" if pkttype == PKTTYPE_OUTGOING else "in", "flags": flags,
                        "gso_type": gso_type, "hdr_len": hdr_len, "gso_size": gso_size,
                        "csum_start": csum_start, "csum_offset": csum_offset}
            f.write(pcapng_packet(ts, frame, pkttype == PKTTYPE_OUTGOING,
                                  comment=json.dumps(meta, separators=(",", ":"))))
            stats["frames"] += 1
            stats["outgoing" if pkttype == PKTTYPE_OUTGOING else "incoming"] += 1
            stats["largest_frame"] = max(stats["largest_frame"], len(frame))
            if len(frame) > 1514:
                stats["super_packets"] += 1
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=["capture", "receiver", "sender"])
    ap.add_argument("--iface")
    ap.add_argument("--raw")
    ap.add_argument("--family", type=int, choices=[4, 6], default=4)
    ap.add_argument("--udp-gso", action="store_true", help="UDP with UDP_SEGMENT instead of TCP")
    ap.add_argument("--gso", type=int, default=1400, help="UDP_SEGMENT size")
    ap.add_argument("--size", type=int, default=2 * 1024 * 1024)
    ap.add_argument("--out")
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--mss", type=int, default=0, help="MSS the receiver advertises (TCP_MAXSEG)")
    ap.add_argument("--timestamps", choices=["on", "off"], default="on",
                    help="net.ipv4.tcp_timestamps in both namespaces")
    ap.add_argument("--capture", choices=["vnet", "afpacket", "libpcap"], default="vnet",
                    help="vnet: AF_PACKET with the virtio-net header; afpacket: without it; libpcap")
    ap.add_argument("--capture-side", choices=["sender", "receiver"], default="sender",
                    help="whose veth to record on")
    ap.add_argument("--guest-connects", action="store_true",
                    help="the receiver opens the connection (its MSS rides on the SYN)")
    a = ap.parse_args()

    if a.role == "capture":
        role_capture(a.iface, a.raw, a.capture)
        return 0
    if a.role == "receiver":
        role_receiver(a.family, a.udp_gso, a.size, a.mss, a.guest_connects)
        return 0
    if a.role == "sender":
        role_sender(a.family, a.udp_gso, a.size, a.gso, a.guest_connects)
        return 0

    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if not a.out:
        ap.error("--out is required")
    for attempt in range(a.attempts):
        result = run_once(a)
        if result is not None:
            print(json.dumps(result, indent=2))
            return 0
        print(f"attempt {attempt + 1}: capture dropped packets, retrying", file=sys.stderr)
    return 1


def run_once(a) -> dict | None:
    pid = os.getpid()
    ns_a, ns_b = f"a2065capA{pid}", f"a2065capB{pid}"
    va, vb = f"vcA{pid}"[:15], f"vcB{pid}"[:15]
    raw = f"/tmp/a2065cap{pid}.raw"
    procs = []
    try:
        sh("ip", "netns", "add", ns_a)
        sh("ip", "netns", "add", ns_b)
        sh("ip", "link", "add", va, "netns", ns_a, "type", "veth", "peer", "name", vb, "netns", ns_b)
        for ns, dev, v4, v6 in ((ns_a, va, ADDR4[0], ADDR6[0]), (ns_b, vb, ADDR4[1], ADDR6[1])):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw",
               f"net.ipv4.tcp_timestamps={1 if a.timestamps == 'on' else 0}")
        offload = subprocess.run(["ip", "netns", "exec", ns_a, "ethtool", "-k", va],
                                 capture_output=True, text=True).stdout
        fam = ["--family", str(a.family)] + (["--udp-gso", "--gso", str(a.gso)] if a.udp_gso else [])
        fam += ["--mss", str(a.mss)] + (["--guest-connects"] if a.guest_connects else [])
        cap_ns, cap_dev = (ns_b, vb) if a.capture_side == "receiver" else (ns_a, va)
        own_mac = bytes.fromhex(subprocess.run(
            ["ip", "netns", "exec", cap_ns, "cat", f"/sys/class/net/{cap_dev}/address"],
            capture_output=True, text=True, check=True).stdout.strip().replace(":", ""))
        cap = spawn(cap_ns, "--role", "capture", "--iface", cap_dev, "--raw", raw, "--capture", a.capture)
        procs.append(cap)
        wait_ready(cap, "capture")
        if a.guest_connects:  # the sender listens first, then the receiver connects
            tx = spawn(ns_a, "--role", "sender", "--size", str(a.size), *fam)
            procs.append(tx)
            time.sleep(0.3)
            rx = spawn(ns_b, "--role", "receiver", "--size", str(a.size), *fam)
            procs.append(rx)
            wait_ready(rx, "receiver")
        else:
            rx = spawn(ns_b, "--role", "receiver", "--size", str(a.size), *fam)
            procs.append(rx)
            wait_ready(rx, "receiver")
            tx = spawn(ns_a, "--role", "sender", "--size", str(a.size), *fam)
            procs.append(tx)
        if tx.wait(timeout=120) != 0:
            raise RuntimeError(f"sender failed: {tx.stderr.read()}")
        rx_out, rx_err = rx.communicate(timeout=60)
        if rx.returncode != 0:
            raise RuntimeError(f"receiver failed: {rx_err}")
        received = json.loads(rx_out.strip().splitlines()[-1])
        time.sleep(0.3)
        cap.send_signal(signal.SIGTERM)
        cap.wait(timeout=60)
        with open(raw, "rb") as f:
            blob = f.read()
        tp_packets, tp_drops = struct.unpack_from("<II", blob)
        if tp_drops:
            return None
        records, off = [], 8
        while off < len(blob):
            ts, pkttype, n = struct.unpack_from("<QBI", blob, off)
            off += 13
            records.append((ts, pkttype, blob[off:off + n]))
            off += n
        sent = stream_bytes(a.size)
        expected = hashlib.sha256(sent).hexdigest()
        kind = "udp-gso" if a.udp_gso else "tcp"
        gso_sizes = None
        if a.capture != "vnet":
            with open(raw + ".gso") as f:
                gso_sizes = json.load(f)
            os.unlink(raw + ".gso")
        if a.capture == "vnet":
            comment = (f"{kind} IPv{a.family} {a.size} bytes of random.Random({SEED}).randbytes, "
                       f"sha256 {expected}; kernel {os.uname().release}; per-EPB opt_comment = "
                       f"virtio_net_hdr JSON")
        else:
            comment = json.dumps({
                "kind": kind, "family": a.family, "stream_bytes": a.size, "seed": SEED,
                "sha256": expected, "kernel": os.uname().release, "capture": a.capture,
                "capture_side": a.capture_side, "mss": a.mss, "timestamps": a.timestamps,
                "guest_connects": a.guest_connects,
                "kernel_gso_sizes": sorted(set(gso_sizes)), "kernel_super_packets": len(gso_sizes),
                "per_epb_comment": "direction only (no kernel metadata)"}, separators=(",", ":"))
        stats = write_pcapng(a.out, records, comment, vnet=a.capture == "vnet", own_mac=own_mac)
        if gso_sizes is not None:
            stats["kernel_gso_sizes"] = sorted(set(gso_sizes))
            stats["kernel_super_packets"] = len(gso_sizes)
        tso = [ln.strip() for ln in offload.splitlines()
               if ln.strip().split(":")[0] in ("tcp-segmentation-offload", "generic-segmentation-offload",
                                              "generic-receive-offload", "tx-checksumming",
                                              "tx-udp-segmentation")]
        return {"file": a.out, "kind": kind, "family": a.family, "stream_bytes": a.size,
                "stream_sha256": expected, "receiver": received, "kernel": os.uname().release,
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "capture_kernel_packets": tp_packets, "capture_drops": tp_drops,
                "sender_offloads": tso, **stats}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns_a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns_b], capture_output=True)
        for leftover in (raw, raw + ".gso"):
            if os.path.exists(leftover):
                os.unlink(leftover)


if __name__ == "__main__":
    sys.exit(main())
