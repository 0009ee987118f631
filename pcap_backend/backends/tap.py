"""TAP backend: a Linux TAP device (/dev/net/tun, IFF_TAP|IFF_NO_PI), one frame per read/write.

`Tap("a2065tap0")` creates the device (or attaches to an existing one of that name that is free or
persistent and ours) in the network namespace of the calling thread; it disappears when the fd
closes unless it was made persistent beforehand (`ip tuntap add ... mode tap`). Without root, a
pre-made persistent TAP owned by the user needs no capability (see SECURITY.md).

With `vnet_hdr=True` every frame carries a 10-byte virtio_net_hdr (→ `PacketMeta`); with
`offload=True` as well, the kernel may hand over super-packets and frames with partial checksums
(TUNSETOFFLOAD: CSUM, TSO4, TSO6), exactly as it does to a virtio NIC.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from typing import Any, Optional

from ..base import (VNET_HDR_LEN, Backend, BackendError, BackendUnavailable, NoSuchInterface,
                    Packet, PacketMeta, PermissionDenied)
from . import _util

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04


class Tap(Backend):
    name = "tap"

    def __init__(self, ifname: str = "a2065tap%d", *, vnet_hdr: bool = False, offload: bool = False,
                 create: bool = True, bufsize: int = 262144, name: Optional[str] = None) -> None:
        _util.check_ifname(ifname.replace("%d", "0"))
        super().__init__(name or f"tap.{ifname}")
        if offload and not vnet_hdr:
            raise ValueError("offload=True needs vnet_hdr=True (metadata says how to segment)")
        if not create:
            try:
                socket.if_nametoindex(ifname)
            except OSError as e:
                raise NoSuchInterface(f"no TAP {ifname!r} to attach to in this namespace "
                                      f"(create it: ip tuntap add {ifname} mode tap)") from e
        self.vnet_hdr = vnet_hdr
        self._hdr = VNET_HDR_LEN if vnet_hdr else 0
        self._buf = bytearray(bufsize + self._hdr)
        self._zero_hdr = bytes(self._hdr)
        self.rx_errors: dict[str, int] = {}
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise BackendUnavailable("/dev/net/tun is missing: load the tun module (modprobe tun) "
                                     "or, in a container, pass the device in") from e
        except PermissionError as e:
            raise PermissionDenied(f"opening /dev/net/tun: {e}: needs read/write access to the "
                                   "device node (root, or make it mode 0666), and creating a TAP "
                                   "needs CAP_NET_ADMIN") from e
        self.fd = fd
        try:
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            try:
                r = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), flags))
            except PermissionError as e:
                raise PermissionDenied(
                    f"TUNSETIFF {ifname}: {e}: creating a TAP needs CAP_NET_ADMIN; without it, "
                    f"attach to a persistent TAP made for your user "
                    f"(ip tuntap add {ifname} mode tap user $USER)") from e
            except OSError as e:
                if e.errno == errno.EBUSY:
                    raise BackendError(f"TAP {ifname} is busy (attached elsewhere)") from e
                if e.errno == errno.EINVAL:
                    raise BackendError(f"TUNSETIFF {ifname}: {e} (a TUN, not TAP, of that name, "
                                       "or flags that differ from the persistent device)") from e
                raise BackendError(f"TUNSETIFF {ifname}: {e}") from e
            self.ifname = r[:16].rstrip(b"\0").decode()
            self.name = name or f"tap.{self.ifname}"
            if offload:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            self._ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        except BaseException:
            os.close(fd)
            raise

    @property
    def link_up(self) -> bool:
        return not self.closed and _util.interface_running(self._ctl, self.ifname)

    def fileno(self) -> Optional[int]:
        return None if self.closed else self.fd

    def send(self, frame: bytes, t_ns: int, meta: Optional[PacketMeta] = None) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        try:
            if self._hdr:
                hdr = meta.to_vnet_hdr() if meta is not None else self._zero_hdr
                n = os.writev(self.fd, [hdr, frame]) - self._hdr
            else:
                n = os.write(self.fd, frame)
        except OSError as e:
            return self._tx_fail(_util.tx_reason(e), str(e))
        if n != len(frame):
            return self._tx_fail("short_write", f"{n} of {len(frame)} bytes")
        self._tx_ok(frame)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        if self.closed:
            return out
        hdr, buf = self._hdr, self._buf
        view = memoryview(buf)
        while len(out) < limit:
            try:
                n = os.readv(self.fd, [buf])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                reason = _util.tx_reason(e)
                self.rx_errors[reason] = self.rx_errors.get(reason, 0) + 1
                self.conditions.hit("rx:" + reason, "%s: read error: %s", self.name, e)
                break
            if n < hdr + 14:
                self.rx_errors["runt"] = self.rx_errors.get("runt", 0) + 1
                continue
            meta = PacketMeta.from_vnet_hdr(view[:hdr]) if hdr else None
            frame = bytes(view[hdr:n])
            self._rx(frame)
            out.append(Packet(now_ns, frame, meta))
        view.release()
        return out

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(ifname=self.ifname, rx_errors=dict(self.rx_errors))
        return s

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
            self._ctl.close()
        super().close()
