"""Live pcap backend: libpcap 1.10 loaded with cffi in ABI mode (no binding package, no compiler).

Opened with pcap_create + snaplen (≥ 262144, whole BIG TCP super-packets) + promiscuous +
immediate mode (without it one frame can wait ~1 s for the buffer timeout) + buffer size, then
pcap_activate, non-blocking, direction IN (the card never receives what it sent), a selectable fd.
pcap_next_ex's data is only valid until the next call: it is copied out at once. Kernel drops come
from pcap_stats. No per-frame metadata (meta None): the bridge infers what it needs.

Interface removed: when pcap_next_ex fails, or pcap_inject fails with ENXIO/ENODEV/ENETDOWN, and
the ifindex the handle was opened on no longer exists under its name, the link is marked gone:
counted in ``link_lost``, logged once (condition ``link:gone``), the dead handle is closed, sends
fail with reason ``no_device`` (the chip reports LCAR). While gone, `poll()` and `send()` look the
name up again at most every ``reopen_interval`` seconds (host monotonic time) and, once it exists,
open a new handle with the same options (snaplen, promiscuous, buffer, direction; ``reopens``
counts it), in the network namespace the backend was first opened in (setns to it when the calling
thread is elsewhere). `fileno()` is an epoll fd holding the handle's selectable fd: its number
survives the reopen, so a host's select loop keeps working.
"""
from __future__ import annotations

import os
import select
import socket
import time
from typing import Any, NoReturn, Optional, Sequence, Union

from ..base import (Backend, BackendError, NoSuchInterface, Packet,
                    PermissionDenied)
from . import _util
from ..netns import call_in_netns, netns_fd

_CDEF = """
typedef struct pcap pcap_t;
struct timeval { long tv_sec; long tv_usec; };
struct pcap_pkthdr { struct timeval ts; unsigned int caplen; unsigned int len; };
struct pcap_stat { unsigned int ps_recv; unsigned int ps_drop; unsigned int ps_ifdrop; };
pcap_t *pcap_create(const char *source, char *errbuf);
int pcap_set_snaplen(pcap_t *p, int snaplen);
int pcap_set_promisc(pcap_t *p, int promisc);
int pcap_set_immediate_mode(pcap_t *p, int immediate);
int pcap_set_buffer_size(pcap_t *p, int buffer_size);
int pcap_set_timeout(pcap_t *p, int to_ms);
int pcap_activate(pcap_t *p);
int pcap_setnonblock(pcap_t *p, int nonblock, char *errbuf);
int pcap_get_selectable_fd(pcap_t *p);
int pcap_setdirection(pcap_t *p, int d);
int pcap_datalink(pcap_t *p);
int pcap_next_ex(pcap_t *p, struct pcap_pkthdr **h, const unsigned char **data);
int pcap_inject(pcap_t *p, const void *buf, size_t size);
int pcap_stats(pcap_t *p, struct pcap_stat *ps);
char *pcap_geterr(pcap_t *p);
const char *pcap_statustostr(int error);
const char *pcap_lib_version(void);
void pcap_close(pcap_t *p);
"""
LIBRARY_NAMES = ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")
ERRBUF_SIZE = 512  # PCAP_ERRBUF_SIZE is 256
PCAP_D_IN = 1
DLT_EN10MB = 1
PCAP_ERROR_NO_SUCH_DEVICE = -5
PCAP_ERROR_PERM_DENIED = -8
PCAP_ERROR_IFACE_NOT_UP = -9
PCAP_ERROR_PROMISC_PERM_DENIED = -11
INSTALL_HINT = "install the Debian package libpcap0.8 (apt-get install libpcap0.8)"

_loaded: dict[tuple[str, ...], tuple[Any, Any]] = {}  # cffi's (ffi, lib): no types


def _probe_libpcap(ffi: Any, lib: Any) -> tuple[Any, Any]:
    lib.pcap_lib_version  # noqa: B018 - check it is really libpcap
    return ffi, lib


def load_libpcap(names: Union[str, Sequence[str]] = LIBRARY_NAMES) -> tuple[Any, Any]:
    """(ffi, lib) for the first loadable name; BackendUnavailable says what to install."""
    return _util.load_cffi_library("libpcap", _CDEF, names, INSTALL_HINT, _probe_libpcap, _loaded)

class Pcap(Backend):
    """`Pcap("eth0")`: a live libpcap handle opened in the calling thread's network namespace."""

    name = "pcap"
    kernel_drops: int  # counted from the first handle on (0 in __init__)

    def __init__(self, ifname: str, *, snaplen: int = 262144, promisc: bool = True,
                 buffer_size: int = 8 << 20, direction_in: bool = True,
                 library: Union[str, Sequence[str]] = LIBRARY_NAMES,
                 reopen_interval: float = 0.5, name: Optional[str] = None) -> None:
        super().__init__(name or f"pcap.{ifname}")
        _util.check_ifname(ifname)
        if snaplen < 262144:
            raise ValueError("snaplen must be >= 262144 so super-packets stay whole")
        self.ifname = ifname
        self.ffi, self.lib = ffi, lib = load_libpcap(library)
        self.version = ffi.string(lib.pcap_lib_version()).decode(errors="replace")
        self.kernel_drops = 0
        self.if_drops = 0
        self._stats_base = (0, 0)  # drop counts of handles closed before the current one
        self.rx_truncated = 0
        self.rx_errors = 0
        self.direction_in = False
        self.warnings: list[str] = []
        self._opts = (snaplen, promisc, buffer_size, direction_in)
        self.reopen_interval = reopen_interval
        self.link_lost = 0  # times the interface disappeared under the handle
        self.reopens = 0  # times a new handle was opened on an interface of the same name
        self._gone = False
        self._next_try = 0.0
        self._p: Any = None  # the pcap_t * (cffi)
        self._fd = -1
        self._hdr = ffi.new("struct pcap_pkthdr **")
        self._data = ffi.new("const unsigned char **")
        self._stat = ffi.new("struct pcap_stat *")
        # a socket in the same namespace for interface-flag/index queries (link_up, removal)
        self._ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._ns: Optional[int] = None
        # an epoll once __init__ returns (it raises otherwise)
        self._epoll: select.epoll = None  # type: ignore[assignment]
        try:
            self._open()
            self._ns = netns_fd()  # where a reopen must happen
            self._epoll = select.epoll()
            if self._fd >= 0:
                self._epoll.register(self._fd, select.EPOLLIN)
        except BaseException:
            if self._p is not None:
                lib.pcap_close(self._p)  # type: ignore[unreachable]  # _open() may have set it
                self._p = None
            for x in (self._ctl, self._epoll):
                if x is not None:
                    x.close()
            if self._ns is not None:
                os.close(self._ns)
            raise

    def _open(self) -> None:
        """Create and activate a handle on self.ifname in the calling thread's namespace."""
        ffi, lib, ifname = self.ffi, self.lib, self.ifname
        snaplen, promisc, buffer_size, direction_in = self._opts
        err = ffi.new("char[]", ERRBUF_SIZE)
        p = lib.pcap_create(ifname.encode(), err)
        if p == ffi.NULL:
            raise BackendError(f"pcap_create({ifname}): {ffi.string(err).decode(errors='replace')}")
        self._p = p
        try:
            lib.pcap_set_snaplen(p, snaplen)
            lib.pcap_set_promisc(p, 1 if promisc else 0)
            lib.pcap_set_immediate_mode(p, 1)
            lib.pcap_set_buffer_size(p, buffer_size)
            lib.pcap_set_timeout(p, 1)
            rc = lib.pcap_activate(p)
            if rc < 0:
                self._raise_activate(rc)
            if rc > 0:
                w = f"{self._status(rc)}: {self._geterr()}"
                self.warnings.append(w)
                self.log.warning("%s: pcap_activate warning: %s", self.name, w)
            if lib.pcap_datalink(p) != DLT_EN10MB:
                raise BackendError(f"{ifname} is not an Ethernet interface "
                                   f"(pcap link type {lib.pcap_datalink(p)})")
            if lib.pcap_setnonblock(p, 1, err) < 0:
                raise BackendError(f"pcap_setnonblock: {ffi.string(err).decode(errors='replace')}")
            self.direction_in = False
            if direction_in:
                if lib.pcap_setdirection(p, PCAP_D_IN) == 0:
                    self.direction_in = True
                else:  # the bridge then filters frames by source MAC
                    self.warnings.append(f"pcap_setdirection: {self._geterr()}")
            self._fd = lib.pcap_get_selectable_fd(p)
            self._ifindex = _util.interface_index(self._ctl, ifname)
        except BaseException:
            lib.pcap_close(p)
            self._p = None
            self._fd = -1
            raise

    def _status(self, rc: int) -> str:
        status: str = self.ffi.string(self.lib.pcap_statustostr(rc)).decode(errors="replace")
        return status

    def _geterr(self) -> str:
        err: str = self.ffi.string(self.lib.pcap_geterr(self._p)).decode(errors="replace")
        return err

    def _raise_activate(self, rc: int) -> NoReturn:
        status, detail = self._status(rc), self._geterr()
        msg = f"pcap_activate({self.ifname}): {status}" + (f": {detail}" if detail and detail != status else "")
        if rc == PCAP_ERROR_NO_SUCH_DEVICE:
            raise NoSuchInterface(msg + " (see `ip link`; the name is looked up in this namespace)")
        if rc in (PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED):
            raise PermissionDenied(msg + " — live capture needs CAP_NET_RAW (and CAP_NET_ADMIN for "
                                   "promiscuous mode / buffer size): run as root or "
                                   "`setcap cap_net_raw,cap_net_admin+ep` on the interpreter")
        if rc == PCAP_ERROR_IFACE_NOT_UP:
            raise BackendError(msg + f" (bring it up: ip link set {self.ifname} up)")
        raise BackendError(msg)

    # -- contract ------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return (not self.closed and not self._gone
                and _util.interface_running(self._ctl, self.ifname))

    def fileno(self) -> Optional[int]:
        return None if self.closed else self._epoll.fileno()

    # -- interface removal ----------------------------------------------------------------------
    def _check_gone(self, why: str) -> bool:
        """After a handle error: is the interface the handle was opened on gone? If so mark the
        link down (counted, logged once), close the handle and try to reopen at once."""
        if self._gone:
            return True
        idx = _util.interface_index(self._ctl, self.ifname)
        if idx is not None and idx == self._ifindex:
            return False
        self._gone = True
        self.link_lost += 1
        self.conditions.hit("link:gone", "%s: interface %s is gone (%s); reopening it by name "
                            "every %.1f s", self.name, self.ifname, why, self.reopen_interval)
        self._close_handle()
        self._next_try = 0.0
        self._try_reopen()
        return True

    def _close_handle(self) -> None:
        if self._p is not None:
            self._read_stats()
            self._stats_base = (self.kernel_drops, self.if_drops)
            if self._fd >= 0:
                try:
                    self._epoll.unregister(self._fd)
                except OSError:
                    pass
            self.lib.pcap_close(self._p)
            self._p = None
            self._fd = -1

    def _try_reopen(self) -> None:
        now = time.monotonic()
        if now < self._next_try:
            return
        self._next_try = now + self.reopen_interval
        if _util.interface_index(self._ctl, self.ifname) is None:  # cheap, in our namespace
            return
        try:
            call_in_netns(self._ns, self._open)
        except (BackendError, OSError) as e:
            self.conditions.hit("reopen", "%s: reopening %s failed: %s", self.name, self.ifname, e)
            return
        if self._fd >= 0:
            self._epoll.register(self._fd, select.EPOLLIN)
        self._gone = False
        self.reopens += 1
        self.conditions.clear("reopen")
        self.conditions.clear("link:gone")
        self.log.info("%s: interface %s is back (ifindex %s): reopened", self.name, self.ifname,
                      self._ifindex)

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        if self.closed:
            return out
        if self._gone:
            self._try_reopen()
            if self._gone:
                return out
        lib, ffi, p, h, d = self.lib, self.ffi, self._p, self._hdr, self._data
        while len(out) < limit:
            rc = lib.pcap_next_ex(p, h, d)
            if rc == 1:
                hdr = h[0]
                caplen, wirelen = hdr.caplen, hdr.len
                frame = bytes(ffi.buffer(d[0], caplen))  # copy now: valid until the next call
                if caplen < wirelen:
                    self.rx_truncated += 1
                    self.conditions.hit("rx:truncated", "%s: frames cut at snaplen (%d < %d)",
                                        self.name, caplen, wirelen)
                    continue
                self._rx(frame)
                out.append(Packet(now_ns, frame, None))
            elif rc == 0:
                break
            else:
                if self._check_gone(f"pcap_next_ex: {self._geterr()}"):
                    break
                self.rx_errors += 1
                self.conditions.hit("rx:error", "%s: pcap_next_ex: %s", self.name, self._geterr())
                break
        if out and "rx:error" in self.conditions.active:
            self.conditions.clear("rx:error")
        return out

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if self._gone:
            self._try_reopen()
            if self._gone:
                return self._tx_fail("no_device", f"interface {self.ifname} is gone")
        n = self.lib.pcap_inject(self._p, frame, len(frame))
        if n < 0:
            e = self.ffi.errno
            reason = _util.TX_REASONS.get(e, "error")
            detail = self._geterr()
            if e in _util.GONE_ERRNOS:
                self._check_gone(detail)
            return self._tx_fail(reason, detail)
        self._tx_ok(frame)
        return True

    def stats(self) -> dict[str, Any]:
        self._read_stats()
        s = super().stats()
        s.update(ifname=self.ifname, if_drops=self.if_drops, rx_truncated=self.rx_truncated,
                 rx_errors=self.rx_errors, direction_in=self.direction_in, libpcap=self.version,
                 link_lost=self.link_lost, reopens=self.reopens)
        return s

    def _read_stats(self) -> None:
        if not self.closed and self._p is not None and self.lib.pcap_stats(self._p, self._stat) == 0:
            base_drops, base_if = self._stats_base
            self.kernel_drops = base_drops + self._stat.ps_drop
            self.if_drops = base_if + self._stat.ps_ifdrop

    def close(self) -> None:
        if not self.closed and getattr(self, "_epoll", None) is not None:
            self._close_handle()
            self._epoll.close()
            self._ctl.close()
            if self._ns is not None:
                os.close(self._ns)
                self._ns = None
        super().close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
