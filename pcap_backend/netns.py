"""Network namespaces and interface ioctls: the one place the project switches namespaces.

Backends open their sockets and devices inside a namespace (``call_in_netns``), the live bridge and
the end-to-end rig build namespaces and veth links (``netns``, ``in_netns``, ``run``), and the tests
use the same functions. Only the calling thread switches (``setns``); sockets and file descriptors
opened inside keep their namespace after the switch back, so one process can hold devices in
several namespaces at once.

Switching needs CAP_SYS_ADMIN; creating namespaces and links needs root and ``ip`` (iproute2).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import itertools
import json
import os
import socket
import struct
import subprocess
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

__all__ = [
    "CLONE_NEWNET", "NetnsError", "unique", "run", "netns", "in_netns", "netns_fd", "call_in_netns",
    "set_link_mac", "link_flags", "link_mac", "link_info", "set_offloads", "offloads",
    "IFF_UP", "IFF_RUNNING", "IFF_PROMISC", "IFF_ALLMULTI",
]

CLONE_NEWNET = 0x40000000           # setns(2) nstype for a network namespace
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFHWADDR, SIOCSIFHWADDR = 0x8913, 0x8914, 0x8927, 0x8924
IFF_UP, IFF_RUNNING, IFF_PROMISC, IFF_ALLMULTI = 0x1, 0x40, 0x100, 0x200

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_counter = itertools.count()
T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace or link command failed (the message names the command and its error)."""


def unique(prefix: str = "a2") -> str:
    """A short name unique to this process (interface names are limited to 15 characters)."""
    name = f"{prefix}{os.getpid() % 100000}x{next(_counter)}"
    if len(name) > 15:
        raise ValueError(f"name {name!r} is longer than 15 characters: use a shorter prefix")
    return name


def run(argv: Sequence[str], *, ns: Optional[str] = None, check: bool = True,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command (inside namespace `ns` when given), capturing text output.

    With ``check`` a non-zero exit raises :class:`NetnsError` naming the command and its stderr."""
    argv = list(argv)
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextlib.contextmanager
def netns(prefix: str = "a2ns") -> Iterator[str]:
    """Create a network namespace with loopback up, yield its name, delete it afterwards."""
    name = unique(prefix)
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "link", "set", "lo", "up"], ns=name)
        yield name
    finally:
        run(["ip", "netns", "del", name], check=False)


@contextlib.contextmanager
def in_netns(ns: Optional[str]) -> Iterator[Optional[str]]:
    """Run the body with the calling thread inside named namespace `ns` (None: stay where it is)."""
    if ns is None:
        yield None
        return
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        try:
            yield ns
        finally:
            _setns(back)
    finally:
        os.close(back)


def netns_fd() -> Optional[int]:
    """An O_RDONLY fd on the calling thread's network namespace, or None (no /proc)."""
    try:
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def call_in_netns(ns_fd: Optional[int], func: Callable[[], T]) -> T:
    """Run ``func()`` with the calling thread in the namespace `ns_fd` (setns, then back).

    No switch when the thread is already there (no privilege needed then); switching needs
    CAP_SYS_ADMIN (OSError otherwise)."""
    if ns_fd is None:
        return func()
    try:
        here = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return func()
    there = os.fstat(ns_fd)
    if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
        return func()
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(ns_fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns into the backend's network namespace: {os.strerror(e)}")
        try:
            return func()
        finally:
            _setns(own)
    finally:
        os.close(own)


def _ifreq_name(ifname: str) -> bytes:
    return ifname.encode()[:15]


def link_flags(sock: socket.socket, ifname: str) -> int:
    """IFF_* flags of `ifname`, through a socket that lives in that interface's namespace."""
    r = fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16s24x", _ifreq_name(ifname)))
    return int(struct.unpack_from("16sH", r)[1])


def link_mac(sock: socket.socket, ifname: str) -> bytes:
    """The MAC of `ifname` (needs no privilege), through a socket in that interface's namespace."""
    r = fcntl.ioctl(sock, SIOCGIFHWADDR, struct.pack("16s24x", _ifreq_name(ifname)))
    return bytes(r[18:24])


def set_link_mac(ifname: str, mac: bytes, *, up: bool = False) -> None:
    """Set an interface's MAC (and optionally bring it up) in the calling thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        name = _ifreq_name(ifname)
        fcntl.ioctl(s, SIOCSIFHWADDR, struct.pack("16sH6s8x", name, 1, bytes(mac)))
        if up:
            flags = link_flags(s, ifname)
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", name, flags | IFF_UP))


def link_info(ns: Optional[str], dev: str) -> dict[str, Any]:
    """``ip -j link show dev DEV`` (in namespace `ns`) as a dict."""
    info: dict[str, Any] = json.loads(run(["ip", "-j", "link", "show", "dev", dev], ns=ns).stdout)[0]
    return info


def set_offloads(ns: Optional[str], dev: str, **features: bool) -> None:
    """``ethtool -K`` in a namespace: ``set_offloads(ns, "veth0", tso=False, gro=True)``."""
    args: list[str] = []
    for k, v in features.items():
        args += [k.replace("_", "-"), "on" if v else "off"]
    if args:
        run(["ethtool", "-K", dev, *args], ns=ns)


def offloads(ns: Optional[str], dev: str) -> dict[str, bool]:
    """``ethtool -k`` as {feature: bool}."""
    out: dict[str, bool] = {}
    for line in run(["ethtool", "-k", dev], ns=ns).stdout.splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip().startswith("on")
    return out
