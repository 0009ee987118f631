"""The real-kernel captures that ``a2065 demo`` replays, shipped inside the package.

Three pcapng files recorded on a Linux kernel with TSO/GSO on (super-packets of up to 64 KB, each
with its virtio-net metadata): a 2 MiB TCP stream over IPv4 and over IPv6, and 140,000 B of UDP
with ``UDP_SEGMENT``. How they were made and their stream SHA-256: ``fixtures/captures/README.md``
in the repository (the files here are the same files, installed as package data).

    from a2065.cli.captures import capture_path
    capture_path("tcp4")            # Path to tcp4_tso.pcapng, wherever the package is installed
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: demo name -> file name inside this package
BUNDLED = {"tcp4": "tcp4_tso.pcapng", "tcp6": "tcp6_tso.pcapng", "udp4": "udp4_gso.pcapng"}


def capture_path(name: str) -> Path:
    """The file of the bundled capture ``name`` (a key of ``BUNDLED``), found through
    importlib.resources so it works from a wheel install, an editable install or a checkout.

    Raises ValueError for an unknown name and FileNotFoundError if the installation lost the file.
    """
    if name not in BUNDLED:
        raise ValueError(f"no bundled capture {name!r}; pass one of {', '.join(sorted(BUNDLED))}")
    resource = files(__name__) / BUNDLED[name]
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"the bundled capture {path} is missing from this installation of "
                                "a2065; reinstall the package")
    return path
