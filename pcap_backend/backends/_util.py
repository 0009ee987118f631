"""Small helpers shared by the live backends (interface flags, errno → reason, cffi loading)."""
from __future__ import annotations

import errno
import fcntl
import socket
import struct
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

T = TypeVar("T")

SIOCGIFFLAGS = 0x8913
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
IFF_RUNNING = 0x40  # operational: carrier present

# errno -> tx_failed reason (one name per condition so each is logged once)
TX_REASONS = {
    errno.EAGAIN: "eagain",
    errno.ENOBUFS: "enobufs",
    errno.ENETDOWN: "link_down",
    errno.ENXIO: "no_device",
    errno.ENODEV: "no_device",
    errno.EMSGSIZE: "too_big",
    errno.EIO: "link_down",
    errno.EINVAL: "invalid",
    errno.EPERM: "permission",
    errno.EACCES: "permission",
}


def tx_reason(e: OSError) -> str:
    code = e.errno if e.errno is not None else -1  # an OSError raised without an errno
    return TX_REASONS.get(code, errno.errorcode.get(code, "oserror").lower())


def interface_flags(sock: socket.socket, ifname: str) -> Optional[int]:
    """IFF_* flags of `ifname` in the socket's namespace, or None if it is gone."""
    try:
        r = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", ifname.encode()[:15], 0))
    except OSError:
        return None
    flags: int = struct.unpack_from("16sH", r)[1]
    return flags


def interface_running(sock: socket.socket, ifname: str) -> bool:
    f = interface_flags(sock, ifname)
    return f is not None and (f & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING)


def interface_index(sock: socket.socket, ifname: str) -> Optional[int]:
    """ifindex of `ifname` in the socket's namespace, or None if there is no such interface."""
    try:
        r = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, struct.pack("16si20x", ifname.encode()[:15], 0))
    except OSError:
        return None
    index: int = struct.unpack_from("16si", r)[1]
    return index


# errnos with which a send/receive on a live interface can say the device is gone (ENETDOWN also
# means only "link down": the caller checks whether the bound ifindex still exists)
GONE_ERRNOS = {errno.ENXIO, errno.ENODEV, errno.ENETDOWN}


def check_ifname(ifname: str) -> None:
    if not isinstance(ifname, str) or not ifname or len(ifname.encode()) > 15 or "/" in ifname:
        from ..base import NoSuchInterface

        raise NoSuchInterface(f"invalid interface name {ifname!r} (1-15 characters, no '/')")


def load_cffi_library(what: str, cdef: str, names: Union[str, Sequence[str]], install_hint: str,
                      probe: Callable[[Any, Any], T], cache: dict[tuple[str, ...], Any]) -> T:
    """Load a C library with cffi in ABI mode (no compiler, no binding package).

    `names`: one soname or a sequence tried in order. `probe(ffi, lib)` checks the library is the
    right one (an OSError or AttributeError means it is not: the next name is tried) and returns
    what the loader hands out; that value is kept in `cache` under the names, so each library is
    opened and cdef'd once per process. BackendUnavailable says what was tried and what to install.
    """
    key = (names,) if isinstance(names, str) else tuple(names)
    if key in cache:
        cached: T = cache[key]
        return cached
    from ..base import BackendUnavailable

    try:
        import cffi
    except ImportError as e:  # pragma: no cover - cffi is a dependency
        raise BackendUnavailable(f"cffi is missing: pip install cffi ({e})") from e
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    errors = []
    for n in key:
        try:
            lib = ffi.dlopen(n)
            value = probe(ffi, lib)
        except (OSError, AttributeError) as e:
            errors.append(f"{n}: {e}")
            continue
        cache[key] = value
        return value
    raise BackendUnavailable(f"{what} not found (tried {', '.join(key)}): {install_hint}; "
                             + "; ".join(errors))
