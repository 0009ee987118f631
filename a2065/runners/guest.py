"""The guest side of a live card: the TAP whose namespace's kernel is the emulated machine.

`open_guest_tap` makes (or attaches to) the guest's TAP with the card's MAC; `GuestMulticast`
reads that kernel's link-layer multicast list and ALLMULTI/PROMISC flags, which a card mirrors
into its driver (LADRF); `GuestCounters` counts what moved between the guest and the card.
Used by `a2065.runners.multi.Card` (and so by `LiveBridge` and `MultiCard`).
"""
from __future__ import annotations

import dataclasses
import os
import socket
from typing import Optional

__all__ = ["GuestMulticast", "GuestCounters", "open_guest_tap"]

PROC_MCAST = "/proc/thread-self/net/dev_mcast"


class GuestMulticast:
    """Reads the multicast list of one interface from ``dev_mcast`` of the namespace in which it
    is created (the file keeps that namespace once opened), plus the IFF flags via a socket
    opened in the same namespace."""

    def __init__(self, ifname: str):
        self.ifname = ifname
        self._fd = os.open(PROC_MCAST, os.O_RDONLY)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def read(self):
        """(sorted list of 6-byte MACs, allmulti, promisc)."""
        from pcap_backend.netns import IFF_ALLMULTI, IFF_PROMISC, link_flags
        data = b""
        while True:
            chunk = os.pread(self._fd, 65536, len(data))
            if not chunk:
                break
            data += chunk
            if len(data) > 1 << 20:
                break
        macs = []
        for line in data.decode("ascii", "replace").splitlines():
            parts = line.split()
            # "idx name refcount global hexaddr"
            if len(parts) >= 5 and parts[1] == self.ifname and len(parts[4]) == 12:
                try:
                    macs.append(bytes.fromhex(parts[4]))
                except ValueError:
                    continue
        try:
            flags = link_flags(self._sock, self.ifname)
        except OSError:
            flags = 0
        return sorted(set(macs)), bool(flags & IFF_ALLMULTI), bool(flags & IFF_PROMISC)

    def close(self):
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._sock.close()


@dataclasses.dataclass
class GuestCounters:
    to_guest: int = 0            # frames the driver received and the guest backend took
    to_guest_bytes: int = 0
    to_guest_failed: int = 0     # guest backend refused (TAP down or full)
    from_guest: int = 0          # frames read from the guest backend
    from_guest_bytes: int = 0
    sent: int = 0                # handed to driver.send
    pending_high: int = 0
    turns: int = 0               # loop turns in which the card was serviced
    multicast_updates: int = 0
    write_queue_full: int = 0    # threaded writes: the writer was behind by write_queue_frames


def open_guest_tap(name: str, mac: bytes, netns: Optional[str] = None, *, up: bool = True):
    """Create (or attach to) the guest's TAP in `netns`, give it the card's MAC so the chip's
    PADR filter passes the guest's traffic, bring it up. Returns (tap, GuestMulticast).

    A TAP that already has the card's MAC and is up is left alone, so a TAP pre-made for an
    unprivileged user (SECURITY.md) needs no capability; if it has another MAC and this process
    may not change it, PermissionDenied says which command fixes it."""
    from pcap_backend.backends.tap import Tap
    from pcap_backend.base import PermissionDenied
    from pcap_backend.netns import IFF_UP, in_netns, link_flags, link_mac, set_link_mac
    with in_netns(netns):
        tap = Tap(name)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                have, flags = link_mac(s, tap.ifname), link_flags(s, tap.ifname)
            if have != bytes(mac) or (up and not flags & IFF_UP):
                try:
                    set_link_mac(tap.ifname, mac, up=up)
                except PermissionError as e:
                    raise PermissionDenied(
                        f"guest TAP {tap.ifname} has MAC {have.hex(':')}, the card "
                        f"{bytes(mac).hex(':')}, and changing it needs CAP_NET_ADMIN: run "
                        f"`sudo ip link set {tap.ifname} address {bytes(mac).hex(':')} up` once, "
                        f"or pass --mac {have.hex(':')}") from e
            mc = GuestMulticast(tap.ifname)
        except BaseException:
            tap.close()
            raise
    return tap, mc
