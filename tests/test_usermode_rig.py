"""Tests of the guest-namespace rig for the user-mode backends (passt, libslirp, VDE), which lives
in `a2065.rig.guest` (its names are re-exported here for the other usermode tests).

Also here, used by the unprivileged tests: a
scripted guest (`scripted_guest`) that speaks raw frames (DHCP, ARP, ICMP) through the card to a backend.

Run as a script (`python tests/test_usermode_rig.py scripted slirp`) it runs the scripted guest and
prints its result as JSON (the unprivileged tests start it as uid 65534).
"""
from __future__ import annotations

import collections
import json
import os
import random
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

from packets import inet_checksum as _csum  # noqa: E402

from a2065.rig.guest import (  # noqa: E402,F401  (the rig lives in a2065.rig; re-exported for the tests)
    BROADCAST, DHCP_MAGIC, DHCPACK, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST, GUEST_MAC, UDHCPC_SCRIPT,
    CardPump, GuestRig, dhcp_frame, guest_download, ipv4_udp, mac_str, parse_dhcp, recv_all,
    sha_stream, tcp_server)


# ---------------------------------------------------------------------------------------------
# A scripted guest: raw frames through the card (the rig itself is a2065/rig/guest.py)

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
