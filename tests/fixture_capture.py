"""Loader for the real-kernel captures in fixtures/captures/ (see its README.md).

Each capture is pcapng (if_tsresol 9) written by tools/make_tcp_capture.py; every Enhanced Packet
Block carries the virtio_net_hdr the kernel attached to the frame, as a JSON `opt_comment`:
``{"dir": "out"|"in", "flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset"}``.

    from fixture_capture import load, CAPTURES   # tests/ is on sys.path under pytest
    pkts = load("tcp4")                     # list[CapturedPacket]
    CAPTURES["tcp4"].sha256                  # SHA-256 of the TCP byte stream the sender sent

`read_pcapng(data: bytes)` is the one parsing path (also the atheris target's subject): any
malformed input raises `CaptureFormatError` (a ValueError) and nothing else.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pcapng
from pcapng import blocks
from pcapng.exceptions import PcapngException

ROOT = Path(__file__).resolve().parent.parent
CAPTURE_DIR = ROOT / "fixtures" / "captures"

# virtio_net_hdr constants (include/uapi/linux/virtio_net.h)
VNET_NEEDS_CSUM = 1
VNET_DATA_VALID = 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4 = 0, 1, 3, 4, 5

# native.CSUM_* values (docs/architecture.md / native/SPEC.md), repeated so this module stands alone
CSUM_NONE, CSUM_PARTIAL, CSUM_DETECT = 0, 1, 2


class CaptureFormatError(ValueError):
    """The bytes are not a pcapng file this loader can read."""


@dataclass(frozen=True)
class Capture:
    file: str
    kind: str          # "tcp" or "udp"
    family: int        # 4 or 6
    stream_bytes: int  # length of the byte stream the sender sent
    sha256: str        # SHA-256 of that stream (TCP: the byte stream; UDP: the datagrams in order)
    seed: int = 2065

    @property
    def path(self) -> Path:
        return CAPTURE_DIR / self.file

    def stream(self) -> bytes:
        """Regenerate the sent stream (random.Random(seed).randbytes(n)); hashes to `sha256`."""
        return random.Random(self.seed).randbytes(self.stream_bytes)


_SHA_2M = "ab044d16b4313f7c7af311727c47f9208f9c67e62b43feabca72a57890a7f96e"
CAPTURES = {
    "tcp4": Capture("tcp4_tso.pcapng", "tcp", 4, 2097152, _SHA_2M),
    "tcp6": Capture("tcp6_tso.pcapng", "tcp", 6, 2097152, _SHA_2M),
    "udp4": Capture("udp4_gso.pcapng", "udp", 4, 140000,
                    "ba72f26904dbeb6edcd165f684b0708cd45398dc4375f6bc1bc71691f694c1f0"),
}


class CapturedPacket(NamedTuple):
    ts_ns: int
    frame: bytes
    outgoing: bool | None      # epb_flags direction; None if not recorded
    meta: dict | None          # the virtio_net_hdr JSON, None if the block has no such comment

    @property
    def gso_size(self) -> int:
        return self.meta["gso_size"] if self.meta and self.meta.get("gso_type") else 0

    @property
    def gso_type(self) -> int:
        return self.meta.get("gso_type", 0) if self.meta else 0

    @property
    def csum_partial(self) -> bool:
        return bool(self.meta and self.meta.get("flags", 0) & VNET_NEEDS_CSUM)

    def segment_kwargs(self) -> dict:
        """Keyword arguments for native.segment() that say what the kernel told us."""
        m = self.meta or {}
        return {
            "gso_size": self.gso_size,
            "csum": CSUM_PARTIAL if self.csum_partial else CSUM_NONE,
            "csum_start": m.get("csum_start", 0) if self.csum_partial else 0,
            "csum_offset": m.get("csum_offset", 0) if self.csum_partial else 0,
        }


_META_KEYS = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset")


def _parse_meta(comment) -> dict | None:
    if not isinstance(comment, str):
        return None
    try:
        meta = json.loads(comment)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in _META_KEYS):
        return None
    return meta


def read_pcapng(data: bytes) -> list[CapturedPacket]:
    """Parse pcapng bytes into packets. Raises CaptureFormatError (only) on malformed input.

    Timestamps are converted to ns from the interface's if_tsresol (default 10^-6).
    """
    out: list[CapturedPacket] = []
    try:
        scanner = pcapng.FileScanner(io.BytesIO(data))
        for block in scanner:
            if isinstance(block, blocks.EnhancedPacket):
                pkt = bytes(block.packet_data)
                ts_units = (block.timestamp_high << 32) | block.timestamp_low
                ns = _ts_to_ns(ts_units, block.interface.options.get("if_tsresol"))
                direction = None
                if "epb_flags" in block.options:
                    inout = int(block.options["epb_flags"]) & 3  # bits 0-1: 1 inbound, 2 outbound
                    direction = {1: False, 2: True}.get(inout)
                meta = _parse_meta(block.options.get("opt_comment"))
                out.append(CapturedPacket(ns, pkt, direction, meta))
            elif isinstance(block, blocks.SimplePacket):
                out.append(CapturedPacket(0, bytes(block.packet_data), None, None))
    except CaptureFormatError:
        raise
    # python-pcapng raises its own exceptions for bad files, but on hostile bytes its decoders also
    # let struct/unicode/index/key/type errors and recursion through, and OSError from
    # socket.inet_ntoa on a short address option (found by native/fuzz/fuzz_pcapng.py, kept in
    # fixtures/regressions/). The input is bytes in memory, so an OSError here is never I/O: all
    # of them mean "this is not a file we can read".
    except (PcapngException, struct.error, ValueError, IndexError, KeyError, TypeError,
            AttributeError, OverflowError, EOFError, RecursionError, MemoryError, RuntimeError,
            OSError) as e:
        raise CaptureFormatError(f"{type(e).__name__}: {e}") from e
    return out


def _ts_to_ns(units: int, tsresol) -> int:
    if tsresol is None:
        return units * 1000
    if isinstance(tsresol, (bytes, bytearray)):
        tsresol = tsresol[0] if tsresol else 6
    if not isinstance(tsresol, int):
        raise CaptureFormatError(f"bad if_tsresol {tsresol!r}")
    if tsresol & 0x80:
        exp = tsresol & 0x7F
        if exp > 64:
            raise CaptureFormatError(f"if_tsresol 2^-{exp} unsupported")
        return (units * 1_000_000_000) >> exp
    if tsresol > 30:
        raise CaptureFormatError(f"if_tsresol 10^-{tsresol} unsupported")
    if tsresol >= 9:
        return units // 10 ** (tsresol - 9)
    return units * 10 ** (9 - tsresol)


def load(name: str) -> list[CapturedPacket]:
    """All packets of capture `name` (a key of CAPTURES) in file order."""
    return read_pcapng(CAPTURES[name].path.read_bytes())


def expected_sha256(name: str) -> str:
    return CAPTURES[name].sha256


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
