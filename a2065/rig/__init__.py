"""The end-to-end rig: real Linux TCP stacks in network namespaces on both sides of the card.

``Rig`` builds three namespaces (server, wire, guest) and runs the card between them; the endpoint
tools run as ``python -m a2065.rig TOOL ...`` inside a namespace. Needs root. See ``core``.
"""
from .core import Rig, RigError, StreamPattern, stream_bytes

__all__ = ["Rig", "RigError", "StreamPattern", "stream_bytes"]
