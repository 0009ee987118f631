"""passt backend: user-mode NAT by the `passt` daemon (Debian package ``passt``), no root needed.

`Passt()` starts ``passt`` as a supervised child in the foreground on a UNIX socket in a private
temporary directory, connects to it and exchanges frames in passt's qemu socket protocol: each
frame is preceded by its length as a 32-bit big-endian integer, in both directions. passt gives
the guest DHCP (address, netmask, gateway, DNS, MTU), ARP/NDP answers, TCP/UDP/ICMP to the host
through ordinary sockets, and inbound port forwarding (``tcp_ports``/``udp_ports`` → ``-t``/``-u``).

Addresses are explicit options, so passt also works in a namespace without a default route:
``interface`` (``-i``, default ``lo``) is only the template passt reads; the guest gets
``address``/``netmask``/``gateway``, and passt answers as ``mac`` (default 52:55:0a:00:02:02,
locally administered, as libslirp's; passt refuses lo's all-zero MAC). The gateway address is mapped to the host's loopback (passt's
default; ``map_gateway=False`` → ``--no-map-gw``), so the guest reaches a server on the host's
127.0.0.1 at the gateway address. DNS: no resolver is offered in DHCP unless ``dns`` is given,
and passt's DNS forwarding is off unless ``dns_forward`` names the address whose queries it should
hand to the host's resolver. (A guest that sends DNS elsewhere anyway is NATed like any other
UDP: confine passt to a namespace, as the tests do, where that must not leave the machine.)

Short frames: the card pads every frame to the 60-byte Ethernet minimum, as the wire requires.
passt 0.0~git20230309 (Debian 12) reads the padding of a bare TCP ACK as payload and resets the
connection, so a 60-byte IPv4/IPv6 frame is cut to the length its IP header gives before it goes
to passt (``trim_padding``, counted in ``padding_trimmed``).

Non-blocking: sends go through a bounded output buffer (partial writes kept), receives through a
reassembly buffer. If the daemon exits (EOF on the socket, or the process gone), the link goes
down, the exit is logged once and kept as a typed error (``error``: `PeerGone`, raised by
`raise_if_failed()`); sends then fail with reason ``peer_gone``. `close()` stops the child (TERM,
then KILL) and removes the directory; an atexit/weakref finalizer does the same if the owner
forgets, so no passt is left behind.
"""
from __future__ import annotations

import atexit
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import weakref
from typing import Any, Optional, Sequence, Union

from ..base import Backend, BackendError, BackendUnavailable, Packet
from .usermode import PeerGone, PeerUnreachable

INSTALL_HINT = "install the Debian package passt (apt-get install passt)"
_LEN = struct.Struct("!I")
MAX_FRAME = 65535 + 14  # passt's own limit on the qemu socket (an IPv4 packet + Ethernet header)


def _stop_child(proc: subprocess.Popen[bytes], tmpdir: Optional[str], timeout: float = 2.0) -> None:
    """TERM, wait, KILL: never leave passt behind; remove its private directory."""
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
    except Exception:  # noqa: BLE001 - interpreter shutdown: best effort
        pass
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


_live: "weakref.WeakSet[Passt]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for b in list(_live):
        try:
            b.close()
        except Exception:  # noqa: BLE001
            pass


class Passt(Backend):
    """`Passt(address="10.0.2.15", gateway="10.0.2.2", tcp_ports=[8080])`: a private passt."""

    name = "passt"

    def __init__(self, *, address: str = "10.0.2.15", netmask: int | str = 24,
                 gateway: str = "10.0.2.2", mac: Optional[str] = "52:55:0a:00:02:02", mtu: int = 1500,
                 dns: Sequence[str] = (), dns_forward: Optional[str] = None,
                 tcp_ports: Sequence[Union[int, str]] = (),
                 udp_ports: Sequence[Union[int, str]] = (),
                 interface: Optional[str] = "lo", map_gateway: bool = True, ipv4_only: bool = True,
                 runas: Optional[str] = None, netns: Optional[str] = None,
                 passt: str = "passt", extra_args: Sequence[str] = (), start_timeout: float = 10.0,
                 out_buffer: int = 4 << 20, trim_padding: bool = True,
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        self.trim_padding = trim_padding
        self.padding_trimmed = 0
        self.address, self.gateway = address, gateway
        self.error: Optional[BackendError] = None
        self.rx_errors: dict[str, int] = {}
        self.exit_status: Optional[int] = None
        self._out = bytearray()
        self._out_limit = out_buffer
        self._in = bytearray()
        self._rxbuf = bytearray(1 << 18)
        self._sock: Optional[socket.socket] = None
        self._epoll = select.epoll()  # fileno(): stays the same number for the backend's life
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._tmp: Optional[str] = None
        self._finalizer = None
        exe = shutil.which(passt)
        if exe is None:
            raise BackendUnavailable(f"the passt program was not found ({passt!r} not on PATH): "
                                     f"{INSTALL_HINT}")
        if runas is None and os.geteuid() == 0:
            runas = "65534:65534"  # passt refuses to run as root; it drops to this user
        self._tmp = tempfile.mkdtemp(prefix="a2065-passt-")
        if runas is not None:
            uid, _, gid = str(runas).partition(":")
            if uid.isdigit():
                os.chown(self._tmp, int(uid), int(gid) if gid.isdigit() else -1)
        os.chmod(self._tmp, 0o700)
        self.socket_path = os.path.join(self._tmp, "passt.socket")
        self.log_path = os.path.join(self._tmp, "passt.log")
        argv = [exe, "--foreground", "--stderr", "--socket", self.socket_path,
                "--address", address, "--netmask", str(netmask), "--gateway", gateway,
                "--mtu", str(mtu)]
        if interface:
            argv += ["--interface", interface]
        if mac:
            argv += ["--mac-addr", mac]
        if dns:
            for d in dns:
                argv += ["--dns", d]
        else:
            argv += ["--no-dhcp-dns", "--no-dhcp-search"]
        if dns_forward:
            argv += ["--dns-forward", dns_forward]
        if not map_gateway:
            argv += ["--no-map-gw"]
        if ipv4_only:
            argv += ["--ipv4-only"]
        if runas is not None:
            argv += ["--runas", str(runas)]
        argv += ["--tcp-ports", ",".join(map(str, tcp_ports)) if tcp_ports else "none"]
        argv += ["--udp-ports", ",".join(map(str, udp_ports)) if udp_ports else "none"]
        argv += list(extra_args)
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.argv = argv
        self._logf = open(self.log_path, "wb")
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf,
                                          stderr=subprocess.STDOUT, close_fds=True,
                                          preexec_fn=_die_with_parent)
        except OSError as e:
            self._logf.close()
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise BackendUnavailable(f"cannot start passt ({e}): {INSTALL_HINT}") from e
        self.pid = self._proc.pid
        self._finalizer = weakref.finalize(self, _stop_child, self._proc, self._tmp)
        _live.add(self)
        try:
            self._connect(start_timeout)
        except BaseException:
            self.close()
            raise
        self.log.info("%s: passt pid %d on %s (guest %s/%s via %s)", self.name, self.pid,
                      self.socket_path, address, netmask, gateway)

    # -- start-up ---------------------------------------------------------------------------------
    def log_tail(self, n: int = 2000) -> str:
        """The last lines passt printed (its syslog noise removed)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip() and "to syslog" not in ln]
        return "\n".join(lines)[-n:]

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rc = self._proc.poll()  # type: ignore[union-attr]  # started before _connect
            if rc is not None:
                self.exit_status = rc
                raise PeerUnreachable(f"passt exited with status {rc} before accepting a "
                                      f"connection: {self.log_tail() or '(no output)'}")
            if os.path.exists(self.socket_path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                try:
                    s.connect(self.socket_path)
                except OSError as e:
                    s.close()
                    last = e
                else:
                    s.setblocking(False)
                    self._epoll.register(s.fileno(), select.EPOLLIN)
                    for opt, size in ((socket.SO_SNDBUF, 4 << 20), (socket.SO_RCVBUF, 4 << 20)):
                        try:
                            s.setsockopt(socket.SOL_SOCKET, opt, size)
                        except OSError:
                            pass
                    self._sock = s
                    return
            if time.monotonic() > deadline:
                raise PeerUnreachable(f"passt did not accept a connection on {self.socket_path} "
                                      f"within {timeout} s ({last}): {self.log_tail()}")
            time.sleep(0.01)

    # -- failure ----------------------------------------------------------------------------------
    def _gone(self, why: str) -> None:
        if self.error is not None:
            return
        rc = self._proc.poll() if self._proc is not None else None
        if rc is None and self._proc is not None:
            try:
                rc = self._proc.wait(0.2)
            except subprocess.TimeoutExpired:
                rc = None
        self.exit_status = rc
        status = f"exit status {rc}" if rc is not None else "still running"
        self.error = PeerGone(f"passt (pid {self.pid}) is gone: {why}; {status}. "
                              f"Its last output: {self.log_tail(600) or '(none)'}")
        self.conditions.hit("link:peer_gone", "%s: %s", self.name, self.error)
        if self._sock is not None:
            try:
                self._epoll.unregister(self._sock.fileno())
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    @property
    def child_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- contract ---------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        return not self.closed and self.error is None

    def fileno(self) -> Optional[int]:
        """An epoll fd holding the socket: readable when passt has sent something. It stays the
        same number after passt is gone (never readable then), so a host loop that took it once
        can keep selecting on it."""
        return None if self.closed else self._epoll.fileno()

    def _flush(self) -> None:
        out = self._out
        while out:
            try:
                n = self._sock.send(out)  # type: ignore[union-attr]  # callers saw the socket
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._gone(f"write: {e}")
                return
            del out[:n]

    def send(self, frame: bytes, t_ns: int) -> bool:
        if self.closed:
            return self._tx_fail("closed")
        if self.error is not None or self._sock is None:
            return self._tx_fail("peer_gone", str(self.error))
        n = len(frame)
        if n == 60 and self.trim_padding:
            frame = _unpad(frame)
            if len(frame) != n:
                self.padding_trimmed += 1
                n = len(frame)
        if n > MAX_FRAME:
            return self._tx_fail("too_big", f"{n} bytes")
        if self._out and len(self._out) + n + 4 > self._out_limit:
            self._flush()
            if len(self._out) + n + 4 > self._out_limit:
                return self._tx_fail("eagain", "passt is not reading (output buffer full)")
        self._out += _LEN.pack(n)
        self._out += frame
        self._flush()
        if self.error is not None:  # _flush() may have set it
            return self._tx_fail("peer_gone", str(self.error))  # type: ignore[unreachable]
        self._tx_ok(frame)
        return True

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        out: list[Packet] = []
        if self.closed or self._sock is None:
            return out
        if self._out:
            self._flush()
        buf, view = self._in, memoryview(self._rxbuf)
        try:
            while True:
                out.extend(self._parse(now_ns, limit - len(out)))
                if len(out) >= limit:
                    break
                try:
                    n = self._sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    self._gone(f"read: {e}")
                    break
                if n == 0:
                    self._gone("the socket reached end of file")
                    break
                buf += view[:n]
        finally:
            view.release()
        return out

    def _parse(self, now_ns: int, limit: int) -> list[Packet]:
        out: list[Packet] = []
        buf, pos = self._in, 0
        end = len(buf)
        while len(out) < limit and end - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME or n == 0:
                self.rx_errors["bad_length"] = self.rx_errors.get("bad_length", 0) + 1
                self._gone(f"protocol error: frame length {n}")
                buf.clear()
                return out
            if end - pos - 4 < n:
                break
            frame = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            if n < 14:
                self.rx_errors["runt"] = self.rx_errors.get("runt", 0) + 1
                continue
            self._rx(frame)
            out.append(Packet(now_ns, frame, None))
        if pos:
            del buf[:pos]
        return out

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s.update(pid=self.pid if self._proc else None, child_running=self.child_running,
                 exit_status=self.exit_status, error=str(self.error) if self.error else None,
                 rx_errors=dict(self.rx_errors), out_buffered=len(self._out),
                 padding_trimmed=self.padding_trimmed,
                 socket=getattr(self, "socket_path", None))
        return s

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._epoll.close()
        if self._proc is not None:
            if self.exit_status is None:
                _stop_child(self._proc, None)
                self.exit_status = self._proc.returncode
            if self._finalizer is not None:
                self._finalizer.detach()
            shutil.rmtree(self._tmp, ignore_errors=True)  # type: ignore[arg-type]  # set with _proc
        try:
            self._logf.close()
        except AttributeError:
            pass
        _live.discard(self)


def _unpad(frame: bytes) -> bytes:
    """A minimum-size (60-byte) IPv4/IPv6 frame cut to the length its IP header gives.

    The card pads short frames to 60 bytes as the wire requires; passt 0.0~git20230309 takes
    the padding of a bare TCP ACK for payload and resets the connection."""
    et = (frame[12] << 8) | frame[13]
    if et == 0x0800 and frame[14] >> 4 == 4:
        end = 14 + ((frame[16] << 8) | frame[17])
    elif et == 0x86DD and frame[14] >> 4 == 6:
        end = 54 + ((frame[18] << 8) | frame[19])
    else:
        return frame
    return frame[:end] if 34 <= end < len(frame) else frame


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (a crash leaves no passt behind)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass
    os.setpgrp()  # own process group: a terminal's Ctrl-C reaches the bridge, which stops passt


__all__ = ["Passt", "PeerGone", "PeerUnreachable", "INSTALL_HINT"]
