"""The one registry of backends: open a backend by name (``a2065 bridge --backend NAME``).

    from pcap_backend.backends import open_backend, REGISTRY
    b = open_backend("afpacket", "eth0")                       # a host interface
    b = open_backend("slirp", forwards=[("tcp", 8022, 22)])    # user-mode NAT, no interface
    b = open_backend("vde", "/tmp/vde.ctl")                    # a vde_switch control directory

A new backend is one file in this package plus one `REGISTRY` line (module, class, what its
``iface`` argument names, a one-line summary; a NAT backend also says how port forwards become
its constructor options). Modules load on first use (by name, so this module imports none of
them), and a missing library only matters to the backend that needs it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Sequence

if TYPE_CHECKING:
    from ..base import Backend

__all__ = ["REGISTRY", "USERMODE_BACKENDS", "BackendKind", "open_backend", "backend_class",
           "Forward"]

#: A port forward of the NAT backends: (protocol "tcp"/"udp", host port, guest port).
Forward = tuple[str, int, int]

_PACKAGE = __name__.rpartition(".")[0]


def _passt_forwards(fwd: Sequence[Forward]) -> dict[str, Any]:
    return {"tcp_ports": [f"{h}:{g}" for p, h, g in fwd if p == "tcp"],
            "udp_ports": [f"{h}:{g}" for p, h, g in fwd if p == "udp"]}


def _slirp_forwards(fwd: Sequence[Forward]) -> dict[str, Any]:
    return {"hostfwd": [(p, "127.0.0.1", h, g) for p, h, g in fwd]}


class BackendKind(NamedTuple):
    module: str                  # file in this package
    cls: str                     # the Backend class in it
    iface: Optional[str]         # what the iface argument names ("interface", "switch"), or None
    summary: str
    forwards: Optional[Callable[[Sequence[Forward]], dict[str, Any]]] = None  # (proto, host, guest) -> options


REGISTRY = {
    "afpacket": BackendKind("afpacket", "AfPacket", "interface",
                            "AF_PACKET on a host interface (Linux; exact super-packet metadata)"),
    "pcap": BackendKind("pcap", "Pcap", "interface", "libpcap on a host interface"),
    "tap": BackendKind("tap", "Tap", "interface", "a TAP device as the host side (created if missing)"),
    "passt": BackendKind("passt", "Passt", None, "user-mode NAT through passt (no root)",
                         _passt_forwards),
    "slirp": BackendKind("slirp", "Slirp", None, "user-mode NAT through libslirp (no root)",
                         _slirp_forwards),
    "vde": BackendKind("vde", "Vde", "switch", "a plug of a VDE network (--iface: a vde_switch "
                       "directory or a libvdeplug 4 URL: vde:///path, vxvde://group, ...)"),
}
USERMODE_BACKENDS = ("passt", "slirp", "vde")


def _kind(name: str) -> BackendKind:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r} (one of {', '.join(REGISTRY)})") from None


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered as `name` (its module is imported now)."""
    kind = _kind(name)
    cls: type[Backend] = getattr(importlib.import_module(f"{_PACKAGE}.{kind.module}"), kind.cls)
    return cls


def open_backend(name: str, iface: Optional[str] = None, *, forwards: Sequence[Forward] = (),
                 open_in_netns: Optional[str] = None, **opts: Any) -> Backend:
    """Open the backend registered as `name`. iface: the host interface (afpacket, pcap, tap) or
    the switch's control directory (vde); not used by passt/slirp. forwards: (proto, host_port,
    guest_port) tuples for the NAT backends. open_in_netns: open it inside that network namespace
    (the calling thread returns to its own afterwards; passt's own `netns` option is different).
    Raises ValueError for an unknown name, a missing iface or forwards a backend cannot do, and
    the backend's own BackendError subclasses."""
    kind = _kind(name)
    if kind.iface is not None and not iface:
        raise ValueError(f"backend {name} needs {'a host interface' if kind.iface == 'interface' else 'a switch directory'}")
    if forwards:
        if kind.forwards is None:
            raise ValueError(f"backend {name} has no port forwards (only {', '.join(n for n, k in REGISTRY.items() if k.forwards)})")
        opts.update(kind.forwards(forwards))
    cls: Callable[..., Backend] = backend_class(name)  # each class has its own arguments
    from ..netns import in_netns
    with in_netns(open_in_netns):
        if kind.iface == "interface":
            return cls(iface, **opts)
        if kind.iface == "switch":
            return cls(switch=iface, **opts)
        return cls(**opts)
