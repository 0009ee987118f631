"""Network-namespace fixtures for tests that touch real kernels (import as `from netns import ...`);
the namespace primitives are pcap_backend.netns, the veth topologies a2065.rig.veth (re-exported).

Everything here creates its own namespaces and devices with unique names (they include the pid and
a counter), configures addresses only inside them, and removes them on exit even when the body
raises. Nothing is sent outside those namespaces. Needs root (tests using it are `@pytest.mark.root`).

    from netns import veth_namespaces, in_netns, ns_run, set_offloads, tcp_bulk

    with veth_namespaces() as t:            # two namespaces joined by veth, addresses, links up
        with in_netns(t.ns_b):              # sockets/handles opened here live in ns_b
            backend = AfPacket(t.dev_b)
        got = tcp_bulk(t, 4 << 20)          # bulk TCP A -> B in threads, returns bytes received
        ns_run(t.ns_a, ["ip", "addr"])        # a subprocess in a namespace
        run_in_ns(t.ns_b, func, *args)                # a function in a forked child in ns_b

`in_netns` switches only the calling thread (setns); the sockets and file descriptors opened
inside keep their namespace after it returns, so one process can hold devices in several
namespaces at once.
"""
from __future__ import annotations

import socket

from pcap_backend.netns import (  # noqa: F401  (re-exported for the tests)
    _setns, in_netns, link_info, netns, offloads, run, set_offloads, unique)
from a2065.rig.veth import (  # noqa: F401  (the topologies live in a2065.rig.veth)
    BridgedNamespaces, VethTopology, bridged_namespaces, recreate_veth, run_in_ns, tcp_bulk,
    veth_namespaces)

ns_run = lambda ns, argv, **kw: run(argv, ns=ns, **kw)  # noqa: E731


def arp_request(src_mac: bytes, src_ip: str, dst_ip: str) -> bytes:
    """A broadcast ARP who-has frame (42 bytes, no padding)."""
    import struct

    return (b"\xff" * 6 + src_mac + b"\x08\x06"
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + socket.inet_aton(src_ip)
            + b"\x00" * 6 + socket.inet_aton(dst_ip))


def is_arp_reply(frame: bytes, sender_ip: str, target_mac: bytes) -> bool:
    return (len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02"
            and frame[28:32] == socket.inet_aton(sender_ip) and frame[32:38] == target_mac)


def icmp_echo(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, ident: int = 0x2065,
              seq: int = 1, payload: bytes = b"a2065-ping" * 4) -> bytes:
    """An Ethernet/IPv4 ICMP echo request with valid checksums."""
    import struct

    from packets import inet_checksum as csum

    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0x1234, 0x4000, 64, 1, 0,
                     socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + icmp


def is_echo_reply(frame: bytes, from_ip: str, ident: int = 0x2065) -> bool:
    return (len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[23] == 1
            and frame[26:30] == socket.inet_aton(from_ip) and frame[34] == 0
            and int.from_bytes(frame[38:40], "big") == ident)
