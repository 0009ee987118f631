"""libslirp backend: user-mode NAT inside this process (Debian packages ``libslirp0``; the
declarations below follow ``libslirp-dev``'s libslirp.h of 4.7), no daemon, no root.

libslirp is loaded with cffi in ABI mode (``libslirp.so.0``: no compiler needed). `Slirp()` calls
``slirp_new`` with a ``SlirpConfig`` (the highest version the loaded library accepts, 4 down to 1:
``slirp_new`` refuses a version newer than it knows) and these callbacks:

- ``send_packet``: a frame for the guest → the receive queue that `poll()` drains;
- ``guest_error``: logged once per message, counted (``guest_errors``);
- ``clock_get_ns``: the backend's clock (``clock``, default the host's monotonic clock: slirp's
  peers are real host sockets with real timers, so its TCP timers must run on host time);
- ``timer_new`` / ``timer_new_opaque`` (config ≥ 4) / ``timer_mod`` (expiry in ms of that clock) /
  ``timer_free``: timers kept in a heap serviced at the start of every `poll()`;
- ``register_poll_fd`` / ``unregister_poll_fd``: counted only (libslirp 4.7 does not announce
  every socket, e.g. not a forwarded port's listener); instead every poll step syncs an epoll set
  with the fds libslirp asked to be polled for input, and that epoll fd is `fileno()`, so a host
  select loop wakes when any slirp socket is readable (a host loop still wakes at least every
  ``next_timeout_ms`` for slirp's own timers);
- ``notify``: slirp has more to do; the next `poll()` runs its poll step again.

`poll()`: due timers, ``slirp_pollfds_fill`` → ``poll(2)`` with a zero timeout →
``slirp_pollfds_poll``, then up to ``limit`` queued frames. `send()` is ``slirp_input``.
Inbound ports: ``hostfwd=[("tcp", "127.0.0.1", host_port, guest_port), ...]`` →
``slirp_add_hostfwd``. DHCP (first lease ``dhcp_start``, default 10.0.2.15) and ARP/ICMP answers
for the gateway (``host``, 10.0.2.2) come from libslirp; the gateway address reaches the host's
loopback. DNS is off by default (``dns=False``): ``disable_dns`` is set, but in libslirp 4.7 that
only stops the redirect to the host's resolvers: a query to ``nameserver`` (10.0.2.3) would then
leave as ordinary UDP to the literal address 10.0.2.3 on the host's network. So the backend itself
drops every IPv4 frame the guest sends to the nameserver address (counted in
``tx_failed.dns_disabled``); nothing reaches any resolver. ``dns=True`` lets libslirp forward
queries sent to ``nameserver`` to the host's resolvers.

Everything runs in the calling thread (libslirp is not thread-safe); call every method from one.
"""
from __future__ import annotations

import heapq
import itertools
import select
import socket
import time
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Union

from ..base import Backend, BackendError, Packet
from . import _util

INSTALL_HINT = "install the Debian package libslirp0 (apt-get install libslirp0)"
LIBRARY_NAMES = ("libslirp.so.0", "libslirp.so")

_CDEF = """
typedef struct Slirp Slirp;
struct in_addr { uint32_t s_addr; };
struct in6_addr { uint8_t s6_addr[16]; };
struct sockaddr_in;
struct sockaddr_in6;
typedef ssize_t (*SlirpWriteCb)(const void *buf, size_t len, void *opaque);
typedef void (*SlirpTimerCb)(void *opaque);
typedef int (*SlirpAddPollCb)(int fd, int events, void *opaque);
typedef int (*SlirpGetREventsCb)(int idx, void *opaque);
typedef enum SlirpTimerId { SLIRP_TIMER_RA, SLIRP_TIMER_NUM } SlirpTimerId;
typedef struct SlirpCb {
    SlirpWriteCb send_packet;
    void (*guest_error)(const char *msg, void *opaque);
    int64_t (*clock_get_ns)(void *opaque);
    void *(*timer_new)(SlirpTimerCb cb, void *cb_opaque, void *opaque);
    void (*timer_free)(void *timer, void *opaque);
    void (*timer_mod)(void *timer, int64_t expire_time, void *opaque);
    void (*register_poll_fd)(int fd, void *opaque);
    void (*unregister_poll_fd)(int fd, void *opaque);
    void (*notify)(void *opaque);
    void (*init_completed)(Slirp *slirp, void *opaque);
    void *(*timer_new_opaque)(SlirpTimerId id, void *cb_opaque, void *opaque);
} SlirpCb;
typedef struct SlirpConfig {
    uint32_t version;
    int restricted;
    bool in_enabled;
    struct in_addr vnetwork;
    struct in_addr vnetmask;
    struct in_addr vhost;
    bool in6_enabled;
    struct in6_addr vprefix_addr6;
    uint8_t vprefix_len;
    struct in6_addr vhost6;
    const char *vhostname;
    const char *tftp_server_name;
    const char *tftp_path;
    const char *bootfile;
    struct in_addr vdhcp_start;
    struct in_addr vnameserver;
    struct in6_addr vnameserver6;
    const char **vdnssearch;
    const char *vdomainname;
    size_t if_mtu;
    size_t if_mru;
    bool disable_host_loopback;
    bool enable_emu;
    struct sockaddr_in *outbound_addr;
    struct sockaddr_in6 *outbound_addr6;
    bool disable_dns;
    bool disable_dhcp;
} SlirpConfig;
Slirp *slirp_new(const SlirpConfig *cfg, const SlirpCb *callbacks, void *opaque);
void slirp_cleanup(Slirp *slirp);
void slirp_pollfds_fill(Slirp *slirp, uint32_t *timeout, SlirpAddPollCb add_poll, void *opaque);
void slirp_pollfds_poll(Slirp *slirp, int select_error, SlirpGetREventsCb get_revents, void *opaque);
void slirp_input(Slirp *slirp, const uint8_t *pkt, int pkt_len);
void slirp_handle_timer(Slirp *slirp, SlirpTimerId id, void *cb_opaque);
int slirp_add_hostfwd(Slirp *slirp, int is_udp, struct in_addr host_addr, int host_port,
                      struct in_addr guest_addr, int guest_port);
int slirp_remove_hostfwd(Slirp *slirp, int is_udp, struct in_addr host_addr, int host_port);
char *slirp_connection_info(Slirp *slirp);
const char *slirp_version_string(void);
void free(void *ptr);
"""

SLIRP_POLL_IN, SLIRP_POLL_OUT, SLIRP_POLL_PRI, SLIRP_POLL_ERR, SLIRP_POLL_HUP = 1, 2, 4, 8, 16
_TO_POLL = ((SLIRP_POLL_IN, select.POLLIN), (SLIRP_POLL_OUT, select.POLLOUT),
            (SLIRP_POLL_PRI, select.POLLPRI))
_FROM_POLL = ((select.POLLIN, SLIRP_POLL_IN), (select.POLLOUT, SLIRP_POLL_OUT),
              (select.POLLPRI, SLIRP_POLL_PRI), (select.POLLERR, SLIRP_POLL_ERR),
              (select.POLLHUP, SLIRP_POLL_HUP), (select.POLLNVAL, SLIRP_POLL_ERR))
MAX_FRAME = 65535 + 14

_loaded: dict[tuple[str, ...], tuple[Any, Any, Any, str]] = {}  # cffi objects: no types


def _probe_libslirp(ffi: Any, lib: Any) -> tuple[Any, Any, Any, str]:
    version: str = ffi.string(lib.slirp_version_string()).decode()
    return ffi, lib, ffi.dlopen(None), version  # libc: free() for slirp_connection_info


def load_libslirp(names: Union[str, Sequence[str]] = LIBRARY_NAMES) -> tuple[Any, Any, Any, str]:
    """(ffi, lib, libc, version string) for the first loadable name; BackendUnavailable otherwise."""
    return _util.load_cffi_library("libslirp", _CDEF, names, INSTALL_HINT, _probe_libslirp, _loaded)

def _in_addr(ffi: Any, dotted: str) -> Any:
    a = ffi.new("struct in_addr *")
    a.s_addr = int.from_bytes(socket.inet_aton(dotted), "little")  # network order in memory
    return a[0]


class _Timer:
    __slots__ = ("cb", "cb_opaque", "timer_id", "expire_ms", "gen", "freed")

    def __init__(self, cb: Any, cb_opaque: Any, timer_id: Optional[int] = None) -> None:
        # cb: the SlirpTimerCb (cffi), None for a timer of an id (slirp_handle_timer)
        self.cb, self.cb_opaque, self.timer_id = cb, cb_opaque, timer_id
        self.expire_ms: Optional[int] = None
        self.gen = 0
        self.freed = False


class Slirp(Backend):
    """`Slirp(hostfwd=[("tcp", "127.0.0.1", 2222, 22)])`: libslirp NAT for 10.0.2.0/24."""

    name = "slirp"

    def __init__(self, *, network: str = "10.0.2.0", netmask: str = "255.255.255.0",
                 host: str = "10.0.2.2", dhcp_start: str = "10.0.2.15",
                 nameserver: str = "10.0.2.3", dns: bool = False, dhcp: bool = True,
                 restricted: bool = False, disable_host_loopback: bool = False,
                 hostname: Optional[str] = None, mtu: int = 1500,
                 hostfwd: Sequence[tuple[Any, ...]] = (),
                 clock: Optional[Callable[[], int]] = None, max_queue: int = 4096,
                 library: Union[str, Sequence[str]] = LIBRARY_NAMES,
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        self.ffi, self.lib, self._libc, self.version = ffi, lib, libc, version = load_libslirp(library)
        self._clock = clock or time.monotonic_ns
        self._queue: list[bytes] = []
        self._max_queue = max_queue
        self.rx_dropped: dict[str, int] = {}
        self.guest_errors = 0
        self.timers_fired = 0
        self.hostfwds: list[tuple[str, str, int, str, int]] = []
        self._timers: dict[int, _Timer] = {}
        self._heap: list[tuple[int, int, int]] = []  # (expire_ms, timer id, generation)
        self._ids = itertools.count(1)
        self._need_poll = True
        self._pollfds: list[tuple[int, int]] = []  # (fd, poll events)
        self._revents: list[int] = []
        self._epoll = select.epoll()
        self._registered: set[int] = set()
        self.poll_fd_registrations = 0
        self.next_timeout_ms = 0
        self._slirp = ffi.NULL
        self.dns = dns

        cbs = self._cbs = ffi.new("SlirpCb *")
        keep: list[Any] = []
        self._keep = keep  # the cffi callbacks live as long as the backend

        def cb(sig: str, fn: Callable[..., Any]) -> Any:
            c = ffi.callback(sig, fn, onerror=self._callback_error)
            keep.append(c)
            return c

        cbs.send_packet = cb("SlirpWriteCb", self._cb_send_packet)
        cbs.guest_error = cb("void(const char *, void *)", self._cb_guest_error)
        cbs.clock_get_ns = cb("int64_t(void *)", lambda _o: self._clock())
        cbs.timer_new = cb("void *(SlirpTimerCb, void *, void *)", self._cb_timer_new)
        cbs.timer_free = cb("void(void *, void *)", self._cb_timer_free)
        cbs.timer_mod = cb("void(void *, int64_t, void *)", self._cb_timer_mod)
        cbs.register_poll_fd = cb("void(int, void *)", self._cb_register)
        cbs.unregister_poll_fd = cb("void(int, void *)", self._cb_unregister)
        cbs.notify = cb("void(void *)", self._cb_notify)
        cbs.timer_new_opaque = cb("void *(SlirpTimerId, void *, void *)", self._cb_timer_new_opaque)
        self._add_poll = cb("SlirpAddPollCb", self._cb_add_poll)
        self._get_revents = cb("SlirpGetREventsCb", self._cb_get_revents)
        self._callback_exc: Optional[BaseException] = None

        cfg = self._cfg = ffi.new("SlirpConfig *")
        self._strings: list[Any] = []
        cfg.restricted = 1 if restricted else 0
        cfg.in_enabled = True
        cfg.vnetwork = _in_addr(ffi, network)
        cfg.vnetmask = _in_addr(ffi, netmask)
        cfg.vhost = _in_addr(ffi, host)
        cfg.in6_enabled = False
        cfg.vdhcp_start = _in_addr(ffi, dhcp_start)
        cfg.vnameserver = _in_addr(ffi, nameserver)
        if hostname:
            s = ffi.new("char[]", hostname.encode())
            self._strings.append(s)
            cfg.vhostname = s
        cfg.if_mtu = mtu
        cfg.if_mru = mtu
        cfg.disable_host_loopback = disable_host_loopback
        cfg.disable_dns = not dns
        cfg.disable_dhcp = not dhcp
        self.config_version: Optional[int] = None
        for v in (4, 3, 2, 1):  # slirp_new returns NULL for a version newer than the library's
            cfg.version = v
            p = lib.slirp_new(cfg, cbs, ffi.NULL)
            if p != ffi.NULL:
                self._slirp, self.config_version = p, v
                break
        if self._slirp == ffi.NULL:
            self._epoll.close()
            raise BackendError(f"slirp_new failed for every SlirpConfig version (libslirp {version})")
        if not dns and self.config_version < 3:  # type: ignore[operator]  # slirp_new took one
            self.log.warning("%s: libslirp %s has no disable_dns (config v%d): DNS queries to %s "
                             "are forwarded to the host's resolvers", self.name, version,
                             self.config_version, nameserver)
        self.host, self.dhcp_start, self.network = host, dhcp_start, network
        self.nameserver, self._ns_addr = nameserver, socket.inet_aton(nameserver)
        try:
            for fwd in hostfwd:
                self.add_hostfwd(*fwd)
        except BaseException:
            self.close()
            raise
        self.log.info("%s: libslirp %s (config v%d), gateway %s, first lease %s", self.name,
                      version, self.config_version, host, dhcp_start)

    # -- callbacks (called by libslirp from inside our own calls) ------------------------------------
    def _callback_error(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if self._callback_exc is None:
            self._callback_exc = exc
        self.log.error("%s: exception in a libslirp callback: %r", self.name, exc)

    def _cb_send_packet(self, buf: Any, n: int, _opaque: Any) -> int:
        if len(self._queue) >= self._max_queue:
            self.rx_dropped["queue_full"] = self.rx_dropped.get("queue_full", 0) + 1
            self.conditions.hit("rx:queue_full", "%s: receive queue full (%d frames): the card "
                                "is not taking frames", self.name, self._max_queue)
            return n
        frame = bytes(self.ffi.buffer(buf, n))
        self._queue.append(frame)
        return n

    def _cb_guest_error(self, msg: Any, _opaque: Any) -> None:
        self.guest_errors += 1
        text = self.ffi.string(msg).decode(errors="replace")
        self.conditions.hit("guest_error:" + text[:60], "%s: libslirp reports a guest error: %s",
                            self.name, text)

    def _new_timer(self, t: _Timer) -> Any:
        tid = next(self._ids)
        self._timers[tid] = t
        return self.ffi.cast("void *", tid)

    def _cb_timer_new(self, cb: Any, cb_opaque: Any, _opaque: Any) -> Any:
        return self._new_timer(_Timer(cb, cb_opaque))

    def _cb_timer_new_opaque(self, timer_id: int, cb_opaque: Any, _opaque: Any) -> Any:
        return self._new_timer(_Timer(None, cb_opaque, int(timer_id)))

    def _cb_timer_free(self, handle: Any, _opaque: Any) -> None:
        t = self._timers.pop(int(self.ffi.cast("uintptr_t", handle)), None)
        if t is not None:
            t.freed = True

    def _cb_timer_mod(self, handle: Any, expire_ms: int, _opaque: Any) -> None:
        tid = int(self.ffi.cast("uintptr_t", handle))
        t = self._timers.get(tid)
        if t is None:
            return
        t.gen += 1
        t.expire_ms = expire_ms
        heapq.heappush(self._heap, (expire_ms, tid, t.gen))

    def _cb_register(self, fd: int, _opaque: Any) -> None:
        self.poll_fd_registrations += 1

    def _cb_unregister(self, fd: int, _opaque: Any) -> None:
        self.poll_fd_registrations -= 1

    def _sync_epoll(self, fds: list[tuple[int, int]]) -> None:
        want = {fd for fd, ev in fds if ev & select.POLLIN}
        reg = self._registered
        for fd in reg - want:
            try:
                self._epoll.unregister(fd)
            except OSError:  # already closed by libslirp: the kernel dropped it from the set
                pass
        for fd in want - reg:
            try:
                self._epoll.register(fd, select.EPOLLIN | select.EPOLLPRI)
            except OSError:
                want.discard(fd)
        self._registered = want

    def _cb_notify(self, _opaque: Any) -> None:
        self._need_poll = True

    def _cb_add_poll(self, fd: int, events: int, _opaque: Any) -> int:
        ev = 0
        for s, p in _TO_POLL:
            if events & s:
                ev |= p
        self._pollfds.append((fd, ev))
        return len(self._pollfds) - 1

    def _cb_get_revents(self, idx: int, _opaque: Any) -> int:
        if 0 <= idx < len(self._revents):
            return self._revents[idx]
        return 0

    def _raise_callback_error(self) -> None:
        exc, self._callback_exc = self._callback_exc, None
        if exc is not None:
            raise BackendError(f"{self.name}: a libslirp callback failed: {exc!r}") from exc

    # -- timers and the poll step ---------------------------------------------------------------------
    def _run_timers(self) -> None:
        now_ms = self._clock() // 1_000_000
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            _exp, tid, gen = heapq.heappop(heap)
            t = self._timers.get(tid)
            if t is None or t.freed or t.gen != gen:
                continue
            t.expire_ms = None
            self.timers_fired += 1
            if t.timer_id is not None:
                self.lib.slirp_handle_timer(self._slirp, t.timer_id, t.cb_opaque)
            else:
                t.cb(t.cb_opaque)

    def _poll_step(self) -> None:
        ffi, lib = self.ffi, self.lib
        self._pollfds = []
        timeout = ffi.new("uint32_t *", 0)
        lib.slirp_pollfds_fill(self._slirp, timeout, self._add_poll, ffi.NULL)
        fds = self._pollfds
        revents = [0] * len(fds)
        err = 0
        if fds:
            poller = select.poll()
            index: dict[int, list[int]] = {}
            for i, (fd, ev) in enumerate(fds):
                index.setdefault(fd, []).append(i)
                poller.register(fd, ev)
            try:
                ready = poller.poll(0)
            except OSError:
                ready, err = [], 1
            for fd, rev in ready:
                sl = 0
                for p, s in _FROM_POLL:
                    if rev & p:
                        sl |= s
                for i in index.get(fd, ()):
                    revents[i] = sl
        self._revents = revents
        self._need_poll = False
        self._sync_epoll(fds)
        lib.slirp_pollfds_poll(self._slirp, err, self._get_revents, ffi.NULL)
        self.next_timeout_ms = timeout[0]

    # -- contract ------------------------------------------------------------------------------
    def fileno(self) -> Optional[int]:
        return None if self.closed else self._epoll.fileno()

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if len(frame) > MAX_FRAME:
            return self._tx_fail("too_big", f"{len(frame)} bytes")
        if not self.dns and len(frame) >= 34 and frame[30:34] == self._ns_addr \
                and frame[12:14] == b"\x08\x00":
            return self._tx_fail("dns_disabled", f"guest traffic to the nameserver address "
                                 f"{self.nameserver} dropped (dns=False)")
        self.lib.slirp_input(self._slirp, frame, len(frame))
        self._raise_callback_error()
        self._tx_ok(frame)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        if self.closed:
            return []
        self._run_timers()
        if len(self._queue) < limit or self._need_poll:
            self._poll_step()
            self._run_timers()
        self._raise_callback_error()
        q = self._queue
        take, self._queue = q[:limit], q[limit:]
        out: list[Packet] = []
        for frame in take:
            self._rx(frame)
            out.append(Packet(now_ns, frame, None))
        return out

    def add_hostfwd(self, proto: str, host_addr: str, host_port: int, guest_port: int,
                    guest_addr: Optional[str] = None) -> None:
        """Forward host_addr:host_port (bound in this process's namespace) to the guest."""
        if proto not in ("tcp", "udp"):
            raise ValueError(f"hostfwd protocol must be tcp or udp, not {proto!r}")
        guest_addr = guest_addr or self.dhcp_start
        rc = self.lib.slirp_add_hostfwd(self._slirp, 1 if proto == "udp" else 0,
                                        _in_addr(self.ffi, host_addr), int(host_port),
                                        _in_addr(self.ffi, guest_addr), int(guest_port))
        if rc < 0:
            raise BackendError(f"slirp_add_hostfwd {proto} {host_addr}:{host_port} -> "
                               f"{guest_addr}:{guest_port} failed (port in use, or an address "
                               "this namespace does not have)")
        self.hostfwds.append((proto, host_addr, int(host_port), guest_addr, int(guest_port)))

    def connection_info(self) -> str:
        p = self.lib.slirp_connection_info(self._slirp)
        try:
            info: str = self.ffi.string(p).decode(errors="replace")
            return info
        finally:
            self._libc.free(p)

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(libslirp=self.version, config_version=self.config_version,
                 queued=len(self._queue), rx_dropped=dict(self.rx_dropped),
                 guest_errors=self.guest_errors, timers=len(self._timers),
                 timers_fired=self.timers_fired, poll_fds=len(self._registered),
                 hostfwds=list(self.hostfwds), dns=self.dns)
        return s

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._slirp != self.ffi.NULL:
            self.lib.slirp_cleanup(self._slirp)
            self._slirp = self.ffi.NULL
        self._epoll.close()
        self._queue = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["Slirp", "load_libslirp", "INSTALL_HINT"]
