"""VDE backend: the card as one port of a Virtual Distributed Ethernet switch (Debian packages
``vde2`` for ``vde_switch``/``vde_plug2tap`` and ``libvdeplug2``/``libvdeplug-dev`` for the plug
library), so emulated machines in several processes, Linux TAPs and other VDE-speaking emulators
(QEMU) share one Ethernet segment; VDE's own tools (``vde_plug`` over ssh, ``vxvde://``) join
switches across hosts.

libvdeplug is loaded with cffi in ABI mode (``libvdeplug.so.2``): ``vde_open_real`` (what the
``vde_open`` macro expands to, interface version 1), ``vde_send``, ``vde_recv``, ``vde_datafd``,
``vde_ctlfd``, ``vde_close``. The data fd is a datagram socket, one frame per datagram, put in
non-blocking mode. `fileno()` is an epoll fd holding it: the same number across reconnects (a
host loop that took it once keeps working), readable when a frame is waiting.

Switch failure: the switch closes the control connection (EOF on ``vde_ctlfd``) or sends fail
with ECONNREFUSED/ENOENT. The link then goes down, `PeerGone` is kept in ``error`` and logged once,
sends fail with reason ``peer_gone`` (the chip reports LCAR). While down, `poll()` tries to reopen
the same switch at most every ``reconnect_interval`` seconds (host time); when the switch is back
the link comes up again (``reconnects`` counts it, the condition is logged as cleared). A switch
that is not there at open is `PeerUnreachable` (``reconnect=True`` waits for it instead).
"""
from __future__ import annotations

import collections
import errno
import fcntl
import os
import select
import time
from typing import Optional

from ..base import Backend, BackendError, Packet
from . import _util
from .usermode import PeerGone, PeerUnreachable

INSTALL_HINT = ("install the Debian package libvdeplug2 (apt-get install libvdeplug2; "
                "vde_switch is in vde2)")
LIBRARY_NAMES = ("libvdeplug.so.2", "libvdeplug.so")
LIBVDEPLUG_INTERFACE_VERSION = 1
VDE_ETHBUFSIZE = 9216 + 14 + 4  # VDE_MAXMTU + Ethernet header + 802.1Q tag
MSG_DONTWAIT = 0x40

_CDEF = """
typedef struct vdeconn VDECONN;
struct vde_open_args { int port; char *group; unsigned int mode; };
VDECONN *vde_open_real(char *vde_url, char *descr, int interface_version,
                       struct vde_open_args *open_args);
ssize_t vde_recv(VDECONN *conn, void *buf, size_t len, int flags);
ssize_t vde_send(VDECONN *conn, const void *buf, size_t len, int flags);
int vde_datafd(VDECONN *conn);
int vde_ctlfd(VDECONN *conn);
int vde_close(VDECONN *conn);
"""
_GONE_ERRNOS = {errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN, errno.EPIPE,
                errno.ECONNRESET, errno.EBADF}

_loaded: dict = {}


def _probe_libvdeplug(ffi, lib):
    lib.vde_open_real  # noqa: B018 - check it is really libvdeplug
    return ffi, lib


def load_libvdeplug(names=LIBRARY_NAMES):
    """(ffi, lib) for the first loadable name; BackendUnavailable says what to install."""
    return _util.load_cffi_library("libvdeplug", _CDEF, names, INSTALL_HINT, _probe_libvdeplug,
                                   _loaded)

class Vde(Backend):
    """`Vde("/tmp/sw")`: join the vde_switch whose control directory (or URL) is given."""

    name = "vde"

    def __init__(self, switch: str, *, port: int = 0, description: str = "a2065",
                 reconnect: bool = False, reconnect_interval: float = 0.5,
                 out_queue: int = 256, library=LIBRARY_NAMES, name: Optional[str] = None):
        super().__init__(name or f"vde.{os.path.basename(str(switch).rstrip('/')) or 'switch'}")
        self.ffi, self.lib = load_libvdeplug(library)
        self.switch = str(switch)
        self.port = port
        self.description = description
        self.reconnect_interval = reconnect_interval
        self.reconnects = 0
        self.error: Optional[BackendError] = None
        self.rx_errors: dict[str, int] = {}
        self._conn = self.ffi.NULL
        self._datafd = self._ctlfd = -1
        self._buf = self.ffi.new("char[]", VDE_ETHBUFSIZE)
        self._next_try = 0.0
        # vde_switch reads a datagram socket that holds only net.unix.max_dgram_qlen frames
        # (10 by default): a burst from the card meets EAGAIN. Such frames wait here, bounded,
        # and go out when the socket is writable again instead of being lost.
        self.out_queue = out_queue
        self._txq: collections.deque = collections.deque()
        self.tx_deferred = 0
        self._epoll = select.epoll()
        try:
            self._open()
        except PeerUnreachable as e:
            if not reconnect:
                raise
            self._down(str(e))

    def _open(self) -> None:
        ffi = self.ffi
        args = ffi.new("struct vde_open_args *")
        args.port = self.port
        args.group = ffi.NULL
        args.mode = 0o700
        ffi.errno = 0
        conn = self.lib.vde_open_real(self.switch.encode(), self.description.encode(),
                                      LIBVDEPLUG_INTERFACE_VERSION, args)
        if conn == ffi.NULL:
            e = ffi.errno
            raise PeerUnreachable(f"cannot join the VDE switch {self.switch!r}: "
                                  f"{os.strerror(e) if e else 'vde_open failed'} (is vde_switch "
                                  f"running with -s {self.switch}? it is in the Debian package vde2)")
        self._conn = conn
        self._datafd = self.lib.vde_datafd(conn)
        self._ctlfd = self.lib.vde_ctlfd(conn)
        fl = fcntl.fcntl(self._datafd, fcntl.F_GETFL)
        fcntl.fcntl(self._datafd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self._epoll.register(self._datafd, select.EPOLLIN)

    def _watch_writable(self, on: bool) -> None:
        """EPOLLOUT interest on the data fd while frames wait, so the host's select on
        fileno() wakes the loop when the switch reads again."""
        if self._datafd >= 0:
            self._epoll.modify(self._datafd, select.EPOLLIN | (select.EPOLLOUT if on else 0))

    def _flush(self) -> None:
        q = self._txq
        while q:
            frame = q[0]
            n = self.lib.vde_send(self._conn, frame, len(frame), MSG_DONTWAIT)
            if n < 0:
                e = self.ffi.errno
                if e in (errno.EAGAIN, errno.ENOBUFS, errno.EINTR):
                    return
                q.popleft()
                if e in _GONE_ERRNOS:
                    self._down(f"send: {os.strerror(e)}")
                    return
                from ._util import TX_REASONS
                self._tx_fail(TX_REASONS.get(e, errno.errorcode.get(e, "error").lower()),
                              os.strerror(e))
                continue
            q.popleft()
            self._tx_ok(frame)
        self._watch_writable(False)

    def _drop_queue(self) -> None:
        while self._txq:
            self._txq.popleft()
            self._tx_fail("peer_gone", "queued when the switch went away")

    def _close_conn(self) -> None:
        if self._datafd >= 0:
            try:
                self._epoll.unregister(self._datafd)
            except OSError:
                pass
        if self._conn != self.ffi.NULL:
            self.lib.vde_close(self._conn)
        self._conn = self.ffi.NULL
        self._datafd = self._ctlfd = -1

    def _down(self, why: str) -> None:
        if self.error is None:
            self.error = PeerGone(f"VDE switch {self.switch!r} is gone: {why}")
            self.conditions.hit("link:peer_gone", "%s: %s; reconnecting every %.1f s",
                                self.name, self.error, self.reconnect_interval)
        self._close_conn()
        self._drop_queue()
        self._next_try = time.monotonic() + self.reconnect_interval

    def _try_reconnect(self) -> None:
        now = time.monotonic()
        if now < self._next_try:
            return
        self._next_try = now + self.reconnect_interval
        try:
            self._open()
        except PeerUnreachable:
            return
        self.error = None
        self.reconnects += 1
        self.conditions.clear("link:peer_gone")
        self.log.info("%s: rejoined the switch %s", self.name, self.switch)

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _check_ctl(self) -> None:
        """EOF (or an error) on the control fd: the switch closed our port."""
        if self._ctlfd < 0:
            return
        r, _, _ = select.select([self._ctlfd], [], [], 0)
        if r:
            try:
                data = os.read(self._ctlfd, 256)
            except BlockingIOError:
                return
            except OSError as e:
                self._down(f"control connection: {e}")
                return
            if not data:
                self._down("the switch closed the control connection")

    # -- contract ---------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return not self.closed and self.error is None

    def fileno(self) -> Optional[int]:
        return None if self.closed else self._epoll.fileno()

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if self.error is not None:
            self._try_reconnect()
            if self.error is not None:
                return self._tx_fail("peer_gone", str(self.error))
        if len(frame) > VDE_ETHBUFSIZE:
            return self._tx_fail("too_big", f"{len(frame)} bytes")
        if self._txq:
            self._flush()
            if self.error is not None:
                return self._tx_fail("peer_gone", str(self.error))
        if self._txq:
            return self._defer(frame)
        n = self.lib.vde_send(self._conn, frame, len(frame), MSG_DONTWAIT)
        if n < 0:
            e = self.ffi.errno
            if e in (errno.EAGAIN, errno.ENOBUFS):
                return self._defer(frame)
            if e in _GONE_ERRNOS:
                self._down(f"send: {os.strerror(e)}")
                return self._tx_fail("peer_gone", str(self.error))
            from ._util import TX_REASONS
            return self._tx_fail(TX_REASONS.get(e, errno.errorcode.get(e, "error").lower()),
                                 os.strerror(e))
        self._tx_ok(frame)
        return True

    def _defer(self, frame) -> bool:
        if len(self._txq) >= self.out_queue:
            return self._tx_fail("eagain", "the switch is not reading (output queue full)")
        self._txq.append(bytes(frame))
        self.tx_deferred += 1
        self._watch_writable(True)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list:
        out: list = []
        if self.closed:
            return out
        if self.error is not None:
            self._try_reconnect()
            if self.error is not None:
                return out
        if self._txq:
            self._flush()
            if self.error is not None:
                return out
        ffi, lib, buf = self.ffi, self.lib, self._buf
        while len(out) < limit:
            n = lib.vde_recv(self._conn, buf, VDE_ETHBUFSIZE, MSG_DONTWAIT)
            if n < 0:
                e = ffi.errno
                if e in (errno.EAGAIN, errno.EINTR):
                    break
                if e in _GONE_ERRNOS:
                    self._down(f"recv: {os.strerror(e)}")
                    return out
                self.rx_errors[errno.errorcode.get(e, "error")] = \
                    self.rx_errors.get(errno.errorcode.get(e, "error"), 0) + 1
                break
            if n == 0:
                break
            if n < 14:
                self.rx_errors["runt"] = self.rx_errors.get("runt", 0) + 1
                continue
            frame = bytes(ffi.buffer(buf, n))
            self._rx(frame)
            out.append(Packet(now_ns, frame, None))
        if not out:
            self._check_ctl()
        return out

    def stats(self) -> dict:
        s = super().stats()
        s.update(switch=self.switch, reconnects=self.reconnects, rx_errors=dict(self.rx_errors),
                 tx_deferred=self.tx_deferred, tx_queued=len(self._txq),
                 error=str(self.error) if self.error else None)
        return s

    def close(self) -> None:
        if not self.closed:
            if self._txq and self.error is None:
                self._flush()
            while self._txq:
                self._txq.popleft()
                self._tx_fail("closed", "still queued at close")
            self._close_conn()
            self._epoll.close()
        super().close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["Vde", "load_libvdeplug", "INSTALL_HINT"]
