"""Shared pieces of the user-mode backends (passt, libslirp, VDE): typed errors, the factory.

    from pcap_backend.backends.usermode import make_usermode_backend
    backend = make_usermode_backend("slirp", hostfwd=[("tcp", "127.0.0.1", 8022, 22)])

Errors (all `BackendError`): `BackendUnavailable` names the Debian package when a library or
program is missing; `PeerUnreachable` when the daemon/switch cannot be reached at open;
`PeerGone` (a `PeerUnreachable`) is what a backend records (``backend.error``) and logs once when
the daemon exits or the switch goes away while running: the link is then down, sends fail with
reason ``peer_gone`` and `raise_if_failed()` raises it.
"""
from __future__ import annotations

from typing import Any

from ..base import Backend, BackendError

__all__ = ["PeerUnreachable", "PeerGone", "make_usermode_backend"]

class PeerUnreachable(BackendError):
    """The daemon (passt) or switch (VDE) could not be started or reached."""


class PeerGone(PeerUnreachable):
    """The daemon exited or the switch closed the connection while the backend was open."""


def make_usermode_backend(name: str, **opts: Any) -> Backend:
    """Build a user-mode backend by name through the one registry (`pcap_backend.backends.
    open_backend`): "passt" -> `Passt(**opts)`, "slirp" -> `Slirp(**opts)`, "vde" -> `Vde(**opts)`."""
    from .registry import USERMODE_BACKENDS, backend_class
    if name not in USERMODE_BACKENDS:
        raise ValueError(f"unknown user-mode backend {name!r} (one of {', '.join(USERMODE_BACKENDS)})")
    return backend_class(name)(**opts)
