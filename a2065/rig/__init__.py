"""Rigs: real Linux network stacks in network namespaces around the card (tooling; needs root).

* ``core``: ``Rig``, three namespaces (server, wire, guest) with the card between them; the
  endpoint tools run as ``python -m a2065.rig TOOL ...`` inside a namespace.
* ``guest``: ``GuestRig``, a guest namespace behind the card and a user-mode backend (passt,
  libslirp, VDE), ``CardPump``, ``guest_download``, ``start_switch``.
* ``veth``: two namespaces joined by veth (``veth_namespaces``), with ``a2065 bridge`` between
  (``bridged_namespaces``), ``tcp_bulk``, ``run_in_ns``.

Tests and benchmarks share these; nothing outside tests/ imports tests/.
"""
from .core import Rig, RigError, StreamPattern, stream_bytes

__all__ = ["Rig", "RigError", "StreamPattern", "stream_bytes"]
