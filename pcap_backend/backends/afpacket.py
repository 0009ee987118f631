"""AF_PACKET backend: a raw Linux packet socket bound to one interface, with kernel metadata.

PACKET_VNET_HDR (set before bind) makes every received frame start with the 10-byte virtio_net_hdr:
per super-packet the GSO type, the exact gso_size and whether the checksum is partial
(csum_start/csum_offset from the start of the frame) → `PacketMeta`. Sends then need a header too
(all zeros: a plain frame with a complete checksum). PACKET_AUXDATA is read as a second source:
tp_status bits cross-check the header (mismatches counted) and carry a VLAN tag the kernel took out
of the frame (hardware VLAN acceleration), which is put back so the frame is what was on the wire.

Frames the host sends itself (pkttype PACKET_OUTGOING, which includes what this socket injects)
are skipped, so the card never sees its own transmissions. Needs CAP_NET_RAW.

Interface removed: a send or receive that fails with ENXIO/ENODEV (or ENETDOWN while the bound
ifindex no longer exists under the name) marks the link gone: counted in ``link_lost``, logged once
(condition ``link:gone``), sends fail with reason ``no_device`` (the chip reports LCAR). While gone,
`poll()` and `send()` look the same interface *name* up again at most every ``reopen_interval``
seconds (host monotonic time); once it exists, the socket is re-bound to it (``reopens`` counts
it) and traffic resumes. The socket is re-bound rather than replaced: the kernel has already
detached it from the dead device, its options (vnet header, auxdata, buffer) stay, it stays in the
network namespace it was opened in (the name is looked up there, not in the caller's), and
`fileno()` keeps its number, so a host's select loop needs nothing new.
"""
from __future__ import annotations

import errno
import socket
import struct
import time
from typing import Any, Optional

from ..base import (VNET_HDR_LEN, Backend, BackendError, BackendUnavailable, NoSuchInterface,
                    Packet, PacketMeta, PermissionDenied, TP_STATUS_CSUMNOTREADY,
                    TP_STATUS_GSO_TCP, GSO_TCPV4, GSO_TCPV6)
from . import _util

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
PACKET_VNET_HDR = 15
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUX = struct.Struct("IIIHHHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, vlan_tci, vlan_tpid
_STATS = struct.Struct("II")  # tpacket_stats: tp_packets, tp_drops (reset on read)

DEFAULT_BUFFER = 262144 + VNET_HDR_LEN
_TCP_GSO = (GSO_TCPV4, GSO_TCPV6)


class AfPacket(Backend):
    """`AfPacket("eth0")`: open in the network namespace of the calling thread."""

    name = "afpacket"

    def __init__(self, ifname: str, *, vnet_hdr: bool = True, auxdata: bool = True,
                 skip_outgoing: bool = True, rcvbuf: int = 8 << 20, bufsize: int = DEFAULT_BUFFER,
                 reopen_interval: float = 0.5, name: Optional[str] = None) -> None:
        super().__init__(name or f"afpacket.{ifname}")
        _util.check_ifname(ifname)
        self.ifname = ifname
        self.vnet_hdr = vnet_hdr
        self.auxdata = auxdata
        self.skip_outgoing = skip_outgoing
        self.rx_outgoing_skipped = 0
        self.rx_truncated = 0
        self.rx_meta_mismatch = 0
        self.rx_errors: dict[str, int] = {}
        self.reopen_interval = reopen_interval
        self.link_lost = 0  # times the interface disappeared under the socket
        self.reopens = 0  # times the socket was re-bound to an interface of the same name
        self._gone = False
        self._next_try = 0.0
        self.kernel_drops = 0
        self.kernel_packets = 0
        self._hdr = VNET_HDR_LEN if vnet_hdr else 0
        self._buf = bytearray(max(bufsize, 1514 + self._hdr))
        self._view = memoryview(self._buf)
        self._zero_hdr = bytes(self._hdr)
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as e:
            raise PermissionDenied(
                f"AF_PACKET on {ifname} needs CAP_NET_RAW (run as root or "
                f"`setcap cap_net_raw,cap_net_admin+ep` on the interpreter): {e}") from e
        except (AttributeError, OSError) as e:
            raise BackendUnavailable(f"AF_PACKET sockets are not available here (Linux only): {e}") from e
        self.sock = s
        try:
            try:
                socket.if_nametoindex(ifname)
            except OSError as e:
                raise NoSuchInterface(
                    f"no interface {ifname!r} in this network namespace (see `ip link`)") from e
            if vnet_hdr:
                s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)  # before bind, or EBUSY
            if auxdata:
                s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
                    break
                except OSError:
                    continue
            try:
                s.bind((ifname, ETH_P_ALL))
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.ENXIO):
                    raise NoSuchInterface(f"no interface {ifname!r}: {e}") from e
                raise BackendError(f"cannot bind AF_PACKET socket to {ifname}: {e}") from e
            s.setblocking(False)
            self._ifindex = _util.interface_index(s, ifname)
            self._ancsize = socket.CMSG_SPACE(_AUX.size) if auxdata else 0
            self._read_stats()  # start the kernel counters from zero
            self.kernel_drops = 0
            self.kernel_packets = 0
        except BaseException:
            s.close()
            raise

    # -- contract ------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return (not self.closed and not self._gone
                and _util.interface_running(self.sock, self.ifname))

    def fileno(self) -> Optional[int]:
        return None if self.closed else self.sock.fileno()

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if self._gone:
            self._try_reopen()
            if self._gone:
                return self._tx_fail("no_device", f"interface {self.ifname} is gone")
        return self._send(self._zero_hdr, frame)

    def _send(self, hdr: bytes, frame: bytes) -> bool:
        for attempt in (0, 1):
            try:
                if hdr:
                    self.sock.sendmsg([hdr, frame])
                else:
                    self.sock.send(frame)
                break
            except OSError as e:
                # After the link went down and up again the socket still holds the old ENETDOWN
                # (sk_err, reported once): retry once if the interface is running now.
                if attempt == 0 and e.errno == errno.ENETDOWN and self.link_up:
                    continue
                if e.errno in _util.GONE_ERRNOS:
                    self._check_gone(str(e))
                return self._tx_fail(_util.tx_reason(e), str(e))
        self._tx_ok(frame)
        return True

    def send_with_meta(self, frame: bytes, meta: PacketMeta, t_ns: int) -> bool:
        """Send a super-packet or a frame with a partial checksum, described by `meta`."""
        if not self._hdr:
            raise BackendError("send_with_meta needs vnet_hdr=True")
        if self.closed:
            return self._tx_fail("closed")
        if self._gone:
            self._try_reopen()
            if self._gone:
                return self._tx_fail("no_device", f"interface {self.ifname} is gone")
        return self._send(meta.to_vnet_hdr(), frame)

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        if self.closed:
            return out
        if self._gone:  # frames queued before the device went are still read (and the fd drained)
            self._try_reopen()
        sock, buf, view, hdr = self.sock, self._buf, self._view, self._hdr
        attempts = 0
        while len(out) < limit and attempts < 4 * limit + 16:
            attempts += 1
            try:
                n, anc, flags, addr = sock.recvmsg_into([buf], self._ancsize, socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno in _util.GONE_ERRNOS and self._check_gone(str(e)):
                    break
                reason = _util.tx_reason(e)
                self.rx_errors[reason] = self.rx_errors.get(reason, 0) + 1
                self.conditions.hit("rx:" + reason, "%s: receive error: %s", self.name, e)
                break
            if self.skip_outgoing and addr[2] == PACKET_OUTGOING:
                self.rx_outgoing_skipped += 1
                continue
            if n > len(buf):  # MSG_TRUNC returns the real length
                self.rx_truncated += 1
                self.conditions.hit("rx:truncated", "%s: frame of %d B over buffer %d B dropped",
                                    self.name, n - hdr, len(buf) - hdr)
                continue
            if n < hdr + 14:
                self.rx_errors["runt"] = self.rx_errors.get("runt", 0) + 1
                continue
            meta = PacketMeta.from_vnet_hdr(view[:hdr]) if hdr else None
            frame = bytes(view[hdr:n])
            for level, ctype, data in anc:
                if level == SOL_PACKET and ctype == PACKET_AUXDATA and len(data) >= _AUX.size:
                    status, _l, _s, _m, _n, tci, tpid = _AUX.unpack_from(data)
                    if meta is None:
                        meta = PacketMeta.from_auxdata(status)
                    elif (bool(status & TP_STATUS_GSO_TCP) != (meta.gso_type in _TCP_GSO)
                          or bool(status & TP_STATUS_CSUMNOTREADY) != meta.csum_partial):
                        self.rx_meta_mismatch += 1
                    if status & TP_STATUS_VLAN_VALID:
                        frame, meta = _insert_vlan(frame, meta, tci,
                                                   tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100)
            self._rx(frame)
            out.append(Packet(now_ns, frame, meta))
        if out and self.conditions.active:
            self.conditions.clear_all([k for k in self.conditions.active if k.startswith("rx:")])
        return out

    # -- interface removal ----------------------------------------------------------------------
    def _check_gone(self, why: str) -> bool:
        """After ENXIO/ENODEV/ENETDOWN: is the interface we are bound to gone? If so mark the link
        down (counted, logged once) and try to re-bind at once (it may be back already)."""
        if self._gone:
            return True
        idx = _util.interface_index(self.sock, self.ifname)
        if idx is not None and idx == self._ifindex:
            return False  # still there: link down, or a transient error
        self._gone = True
        self.link_lost += 1
        self._clear_sk_err()  # else the fd stays readable (POLLERR) and a select loop spins
        self.conditions.hit("link:gone", "%s: interface %s is gone (%s); reopening it by name "
                            "every %.1f s", self.name, self.ifname, why, self.reopen_interval)
        self._next_try = 0.0
        self._try_reopen()
        return True

    def _clear_sk_err(self) -> None:
        try:
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            pass

    def _try_reopen(self) -> None:
        now = time.monotonic()
        if now < self._next_try:
            return
        self._next_try = now + self.reopen_interval
        idx = _util.interface_index(self.sock, self.ifname)  # in the socket's namespace
        if idx is None:
            return
        try:
            self.sock.bind((self.ifname, ETH_P_ALL))
        except OSError:
            return
        self._clear_sk_err()  # the ENETDOWN the kernel left when the old device went
        self._ifindex = idx
        self._gone = False
        self.reopens += 1
        self.conditions.clear("link:gone")
        self.log.info("%s: interface %s is back (ifindex %d): re-bound", self.name, self.ifname, idx)

    def close(self) -> None:
        if not self.closed:
            try:
                self._read_stats()
            finally:
                self.sock.close()
                super().close()

    def stats(self) -> dict[str, Any]:
        if not self.closed:
            self._read_stats()
        s = super().stats()
        s.update(ifname=self.ifname, rx_outgoing_skipped=self.rx_outgoing_skipped,
                 rx_truncated=self.rx_truncated, rx_meta_mismatch=self.rx_meta_mismatch,
                 rx_errors=dict(self.rx_errors), kernel_packets=self.kernel_packets,
                 link_lost=self.link_lost, reopens=self.reopens)
        return s

    def _read_stats(self) -> None:
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError:
            return
        packets, drops = _STATS.unpack(raw[:_STATS.size])
        self.kernel_packets += packets
        self.kernel_drops += drops


def _insert_vlan(frame: bytes, meta: Optional[PacketMeta], tci: int,
                 tpid: int) -> tuple[bytes, Optional[PacketMeta]]:
    frame = frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    if meta is not None and meta.csum_partial:
        meta = meta._replace(csum_start=meta.csum_start + 4)
    return frame, meta
