"""VDE backend: the card as one plug of a Virtual Distributed Ethernet (libvdeplug 4).

The card joins whatever a libvdeplug 4 URL names, through the library and its plugins as they
are (Debian packages ``libvdeplug2`` for the library and its built-in plugins, ``vde2`` for
``vde_switch``/``vde_plug2tap``, ``vdeplug`` for ``vde_plug``/``dpipe``):

  ``/path`` or ``vde:///path[port]``  a ``vde_switch`` (or a ``hub://``/``switch://`` plug) on
                                      this host; ``[N]`` picks the switch port
  ``vxvde://[group][/opt...]``        a distributed Ethernet on an IP multicast group: every plug
                                      on the group, on any host of the LAN, is on one segment,
                                      no switch process (``/port=``, ``/vni=``, ``/ttl=``,
                                      ``/if=``, ``/v4``, ``/v6``, ``/grp=``)
  ``vxlan://``, ``udp://``, ``ptp://``, ``tap://``, ``cmd://``, ``hub://``, ``switch://``,
  ``multi://``, ``bonding://``, ``seqpacket://``, ``null://``  the other built-in plugins;
  ``slirp://``, ``pcap://``, ``agno://``, ``vlan://``, ``vdesl://`` come in their own Debian
  packages (``PLUGIN_PACKAGES``)

A URL whose plugin the library cannot load is `BackendUnavailable` naming the missing plugin
file, the Debian package that ships it and the plugins that are installed (`installed_plugins`).

libvdeplug is loaded with cffi in ABI mode (``libvdeplug.so.2``): ``vde_open_real`` (what the
``vde_open`` macro expands to, interface version 1), ``vde_send``, ``vde_recv``, ``vde_datafd``,
``vde_ctlfd``, ``vde_close``. The data fd is a datagram socket, one frame per datagram, put in
non-blocking mode. Other plugins' data fds may be an epoll fd of their own (vxvde: one multicast
and one unicast socket) whose ``vde_recv`` blocks whatever the flags: `poll()` calls ``vde_recv``
only while that fd is readable. ``vde_recv`` returning 1 is a datagram the plugin consumed itself
(vxvde: its own multicast looped back, another VNI), counted in ``rx_plugin_skipped``. `fileno()`
is an epoll fd holding the data fd: the same number across reconnects (a host loop that took it
once keeps working), readable when a frame is waiting.

Switch failure (plugins with a switch behind them: ``vde``; the stream of ``cmd://`` ending is
the same): the switch closes the control connection (EOF on ``vde_ctlfd``) or sends fail
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
import re
import select
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Sequence, Union

from ..base import Backend, BackendError, BackendUnavailable, Packet
from . import _util
from .usermode import PeerGone, PeerUnreachable

if TYPE_CHECKING:
    from lance.buffers import BytesLike

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

_loaded: dict[tuple[str, ...], tuple[Any, Any]] = {}  # cffi's (ffi, lib): no types


def _probe_libvdeplug(ffi: Any, lib: Any) -> tuple[Any, Any]:
    lib.vde_open_real  # noqa: B018 - check it is really libvdeplug
    return ffi, lib


def load_libvdeplug(names: Union[str, Sequence[str]] = LIBRARY_NAMES) -> tuple[Any, Any]:
    """(ffi, lib) for the first loadable name; BackendUnavailable says what to install."""
    return _util.load_cffi_library("libvdeplug", _CDEF, names, INSTALL_HINT, _probe_libvdeplug,
                                   _loaded)


# ---------------------------------------------------------------------------------------------
# URLs and plugins

#: plugins the Debian package libvdeplug2 (libvdeplug 4.0.1) ships in its plugin directory
BUILTIN_PLUGINS = ("bonding", "cmd", "hub", "multi", "null", "ptp", "seqpacket", "switch", "tap",
                   "udp", "vde", "vxlan", "vxvde")
#: plugins Debian ships in packages of their own
PLUGIN_PACKAGES = {"agno": "libvdeplug-agno", "pcap": "libvdeplug-pcap",
                   "slirp": "libvdeplug-slirp", "vdesl": "libvdeplug-vdesl",
                   "vlan": "libvdeplug-vlan"}
#: plugins whose data is a byte stream: vde_recv returning 0 is the far end closing it
STREAM_PLUGINS = ("cmd", "vdesl")
_PLUGIN_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_PLUGIN_FILE = re.compile(r"libvdeplug_([A-Za-z0-9_]+)\.so$")


class VdeUrl(NamedTuple):
    """A libvdeplug URL split as the library splits it: ``plugin://address``; a string without
    ``://`` is the address of the default plugin ``vde`` (a switch directory)."""
    plugin: str
    address: str
    url: str


def parse_url(url: Union[str, os.PathLike[str]]) -> VdeUrl:
    """`VdeUrl` of `url`; ValueError for an empty URL or a plugin name that is not a word."""
    s = os.fspath(url) if not isinstance(url, str) else url
    if not s:
        raise ValueError("empty VDE URL")
    if "://" not in s:
        return VdeUrl("vde", s, s)
    plugin, _, address = s.partition("://")
    if not _PLUGIN_NAME.fullmatch(plugin):
        raise ValueError(f"VDE URL {s!r}: {plugin!r} is not a plugin name (letters, digits, _)")
    return VdeUrl(plugin, address, s)


def plugin_package(plugin: str) -> str:
    """The Debian package that ships libvdeplug_PLUGIN.so, or a sentence saying none does."""
    if plugin in BUILTIN_PLUGINS:
        return "libvdeplug2"
    return PLUGIN_PACKAGES.get(plugin, "no Debian package (build the plugin from its source)")


def _loaded_library_dirs() -> list[str]:
    """Directories of the libvdeplug this process mapped (from /proc/self/maps)."""
    out: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(" ")[-1]
                if "/libvdeplug.so" in path:
                    d = os.path.dirname(path)
                    if d not in out:
                        out.append(d)
    except OSError:
        pass
    return out


def plugin_dirs() -> list[str]:
    """Where libvdeplug 4 looks for ``libvdeplug_NAME.so``, in its order: each directory of
    $VDEPLUGIN_PATH, ~/.vdeplug, then ``vdeplug/`` beside the library (Debian:
    /usr/lib/<multiarch>/vdeplug) and under /usr/local/lib, /usr/lib, /lib."""
    dirs: list[str] = [d for d in os.environ.get("VDEPLUGIN_PATH", "").split(":") if d]
    dirs.append(os.path.join(os.path.expanduser("~"), ".vdeplug"))
    dirs += [os.path.join(d, "vdeplug") for d in _loaded_library_dirs()]
    dirs += ["/usr/local/lib/vdeplug", "/usr/lib/vdeplug", "/lib/vdeplug"]
    seen, out = set(), []
    for d in dirs:
        real = os.path.realpath(d)
        if real not in seen:
            seen.add(real)
            out.append(d)
    return out


def find_plugin(plugin: str) -> Optional[str]:
    """Path of ``libvdeplug_PLUGIN.so`` in `plugin_dirs()`, or None."""
    for d in plugin_dirs():
        path = os.path.join(d, f"libvdeplug_{plugin}.so")
        if os.path.exists(path):
            return path
    return None


def installed_plugins() -> list[str]:
    """Sorted names of the plugins found in `plugin_dirs()` (``vde`` is always one: the library
    falls back to its own code for it)."""
    names = {"vde"}
    for d in plugin_dirs():
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            m = _PLUGIN_FILE.match(e)
            if m:
                names.add(m.group(1))
    return sorted(names)


def missing_plugin_message(url: VdeUrl) -> str:
    return (f"libvdeplug has no {url.plugin}:// plugin for {url.url!r}: "
            f"libvdeplug_{url.plugin}.so is in none of {', '.join(plugin_dirs())}; install: "
            f"{plugin_package(url.plugin)}; installed plugins: "
            f"{', '.join(p + '://' for p in installed_plugins())}")


def _open_failure_hint(url: VdeUrl) -> str:
    if url.plugin == "vde":
        return (f"is vde_switch running with -s {url.address}? it is in the Debian package vde2")
    if url.plugin in ("vxvde", "vxlan"):
        return ("does this host have a route for the multicast group (ip route add 224.0.0.0/4 "
                "dev IFACE, or /if=IFACE in the URL) and an address on that interface?")
    if url.plugin == "cmd":
        return "does the command start and speak the vde_plug stream (vde_plug on the far end)?"
    return f"see libvdeplug_{url.plugin}(1)"


class Vde(Backend):
    """`Vde(url)`: join the VDE network a libvdeplug URL names: ``Vde("/tmp/sw")`` (a
    vde_switch), ``Vde("vxvde://239.1.2.3/port=14879")`` (a multicast segment), ...

    `switch` is the URL (the name is historical: a switch directory is the common case).
    BackendUnavailable: libvdeplug, or the URL's plugin, is not installed (the message names the
    plugin, its Debian package and the installed plugins). PeerUnreachable: the plugin is there
    but could not open the network (no switch, no multicast route); ``reconnect=True`` keeps
    trying instead."""

    name = "vde"

    def __init__(self, switch: str, *, port: int = 0, description: str = "a2065",
                 reconnect: bool = False, reconnect_interval: float = 0.5,
                 out_queue: int = 256, library: Union[str, Sequence[str]] = LIBRARY_NAMES,
                 name: Optional[str] = None) -> None:
        url = parse_url(switch)
        if name is None:
            if url.plugin == "vde":
                name = f"vde.{os.path.basename(url.address.rstrip('/')) or 'switch'}"
            else:
                name = f"{url.plugin}.{url.address.strip('/')[:48] or 'default'}"
        super().__init__(name)
        self.ffi, self.lib = load_libvdeplug(library)
        self.url = url
        self.plugin = url.plugin
        self.switch = url.url
        # vde: a datagram socket (recv honours MSG_DONTWAIT); other plugins may block in
        # vde_recv, so it is called only while their data fd is readable
        self._recv_may_block = url.plugin != "vde"
        self._stream = url.plugin in STREAM_PLUGINS
        self._ready = select.poll()
        self.rx_plugin_skipped = 0
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
        self._txq: collections.deque[bytes] = collections.deque()
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
            if e == errno.EPROTONOSUPPORT and self.url.plugin != "vde":
                if find_plugin(self.url.plugin) is None:
                    raise BackendUnavailable(missing_plugin_message(self.url))
                raise BackendUnavailable(
                    f"libvdeplug could not load its {self.url.plugin}:// plugin "
                    f"({find_plugin(self.url.plugin)}) for {self.switch!r}: a broken or "
                    f"mismatched install? reinstall {plugin_package(self.url.plugin)}")
            what = "the VDE switch" if self.url.plugin == "vde" else \
                f"the VDE network ({self.url.plugin} plugin)"
            raise PeerUnreachable(f"cannot join {what} {self.switch!r}: "
                                  f"{os.strerror(e) if e else 'vde_open failed'} "
                                  f"({_open_failure_hint(self.url)})")
        self._conn = conn
        self._datafd = self.lib.vde_datafd(conn)
        self._ctlfd = self.lib.vde_ctlfd(conn)
        if not self._recv_may_block:
            fl = fcntl.fcntl(self._datafd, fcntl.F_GETFL)
            fcntl.fcntl(self._datafd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self._epoll.register(self._datafd, select.EPOLLIN)
        self._ready = select.poll()
        self._ready.register(self._datafd, select.POLLIN)

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
        self._ready = select.poll()

    def _down(self, why: str) -> None:
        if self.error is None:
            what = "VDE switch" if self.plugin == "vde" else f"VDE network ({self.plugin})"
            self.error = PeerGone(f"{what} {self.switch!r} is gone: {why}")
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
        self.log.info("%s: rejoined %s", self.name, self.switch)

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
            if self.error is not None:  # _flush() may have set it
                return self._tx_fail("peer_gone", str(self.error))  # type: ignore[unreachable]
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

    def _defer(self, frame: BytesLike) -> bool:
        if len(self._txq) >= self.out_queue:
            return self._tx_fail("eagain", "the switch is not reading (output queue full)")
        self._txq.append(bytes(frame))
        self.tx_deferred += 1
        self._watch_writable(True)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        if self.closed:
            return out
        if self.error is not None:
            self._try_reconnect()
            if self.error is not None:
                return out
        if self._txq:
            self._flush()
            if self.error is not None:  # _flush() may have set it
                return out  # type: ignore[unreachable]
        ffi, lib, buf = self.ffi, self.lib, self._buf
        may_block = self._recv_may_block
        turns = 0
        while len(out) < limit and turns < 4 * limit:  # skipped datagrams count too: bounded
            turns += 1
            hangup = False
            if may_block:
                ready = self._ready.poll(0)
                if not ready:
                    break
                hangup = bool(ready[0][1] & (select.POLLHUP | select.POLLERR))
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
                # a stream plugin returns 0 for a frame not yet complete too: the far end is
                # gone only when its fd also reports a hang-up
                if self._stream and hangup:
                    self._down("the stream was closed")
                    return out
                break
            if n == 1:  # the plugin consumed the datagram itself (its own echo, another VNI)
                self.rx_plugin_skipped += 1
                continue
            if n < 14:
                self.rx_errors["runt"] = self.rx_errors.get("runt", 0) + 1
                continue
            frame = bytes(ffi.buffer(buf, n))
            self._rx(frame)
            out.append(Packet(now_ns, frame, None))
        if not out:
            self._check_ctl()
        return out

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(switch=self.switch, plugin=self.plugin, reconnects=self.reconnects,
                 rx_errors=dict(self.rx_errors), rx_plugin_skipped=self.rx_plugin_skipped,
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

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["Vde", "VdeUrl", "parse_url", "load_libvdeplug", "INSTALL_HINT", "BUILTIN_PLUGINS",
           "PLUGIN_PACKAGES", "plugin_package", "plugin_dirs", "find_plugin", "installed_plugins"]
