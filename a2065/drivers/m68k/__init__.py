"""The freestanding 68000 test driver for the A2065 and its host-side description.

Sources here: ``crt0.S`` (vectors, startup, idle loops, interrupt entry), ``driver.c`` (autoconfig,
LANCE bring-up Linux- or NetBSD-style, ARP/ICMP echo replies), ``mailbox.h`` (the shared RAM
layout), ``link.ld`` and a ``Makefile``. Build products are never committed: ``build()`` compiles
into a cache directory keyed by the sources' hash.

The image is linked at $000000: vector table, mailbox at $0400 (``MAILBOX`` below mirrors
``mailbox.h``), code from $0500, stack at the top of 64 KiB (``RAM_SIZE``).
"""
from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from pathlib import Path

from ..cross import CROSS, BuildError, compiler, link_flat, tools  # noqa: F401  (re-exported)

SRC_DIR = Path(__file__).resolve().parent
SOURCES = ("crt0.S", "driver.c", "mailbox.h", "link.ld")
CFLAGS = ["-m68000", "-Os", "-ffreestanding", "-nostdlib", "-fno-builtin", "-fno-pic",
          "-Wall", "-Wextra", "-Wno-array-bounds"]
LDFLAGS = ["-Wl,-T,link.ld", "-Wl,--build-id=none", "-Wl,-e,_start", "-Wl,-z,noexecstack",
           "-Wl,--no-warn-rwx-segments"]

RAM_SIZE = 0x10000          # the CPU needs at least this much RAM from $000000
LOAD_ADDR = 0x000000
MB_ADDR = 0x0400
MB_MAGIC = 0x41323635       # 'A265'
MB_VERSION = 1

# mailbox.h state codes and flags
ST_BOOT, ST_CONFIGURED, ST_RUNNING = 0x0001, 0x0002, 0x0003
ST_NO_BOARD, ST_INIT_FAIL, ST_FAULT = 0x00E1, 0x00E2, 0x00EF
FL_NETBSD, FL_BUSY_IDLE = 0x0001, 0x0002

#: name -> (offset from MB_ADDR, struct format); mirrors struct mailbox in mailbox.h
MAILBOX = {
    "magic": (0x00, ">I"), "version": (0x04, ">H"), "state": (0x06, ">H"),
    "ip": (0x08, ">I"), "flags": (0x0C, ">H"), "boards": (0x0E, ">H"),
    "base": (0x10, ">I"), "mac": (0x14, "6s"), "init_polls": (0x1A, ">H"),
    "interrupts": (0x1C, ">I"), "rx_frames": (0x20, ">I"), "tx_frames": (0x24, ">I"),
    "arp_replies": (0x28, ">I"), "echo_replies": (0x2C, ">I"), "errors": (0x30, ">I"),
    "ignored": (0x34, ">I"), "tx_full": (0x38, ">I"), "spurious": (0x3C, ">I"),
    "idle": (0x40, ">I"), "last_csr0": (0x44, ">H"), "fault_vector": (0x46, ">H"),
    "fault_pc": (0x48, ">I"), "misses": (0x4C, ">I"), "reinits": (0x50, ">I"),
    "tx_queued": (0x54, ">I"),
}
MAILBOX_SIZE = 0x58


def _sources_hash() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (SRC_DIR / name).read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    return h.hexdigest()[:16]


def build(out_dir: str | os.PathLike | None = None) -> Path:
    """Compile the program; return the path of the flat binary (cached by source hash)."""
    tools()   # BuildError naming the Debian package before anything is made
    out = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / f"a2065-m68k-{_sources_hash()}"
    binary = out / "a2065-driver.bin"
    if binary.exists():
        return binary
    return link_flat(out, "a2065-driver", [*CFLAGS, "-nostdlib", *LDFLAGS, "crt0.S", "driver.c"],
                     (".vectors", ".mailbox", ".text", ".data"), cwd=SRC_DIR)


def image(path: str | os.PathLike | None = None) -> bytes:
    """The flat binary's bytes, checked for the mailbox magic and version."""
    data = Path(path or build()).read_bytes()
    magic, version = struct.unpack_from(">IH", data, MB_ADDR)
    if magic != MB_MAGIC or version != MB_VERSION:
        raise BuildError(f"image mailbox magic/version {magic:#x}/{version} != "
                         f"{MB_MAGIC:#x}/{MB_VERSION}")
    if len(data) > RAM_SIZE - 0x1000:
        raise BuildError("image too large for its RAM")
    return data


def read_mailbox(read_block) -> dict:
    """Decode the mailbox; ``read_block(addr, size) -> bytes`` reads CPU memory."""
    raw = bytes(read_block(MB_ADDR, MAILBOX_SIZE))
    out = {}
    for name, (off, fmt) in MAILBOX.items():
        (v,) = struct.unpack_from(fmt, raw, off)
        out[name] = v.hex(":") if name == "mac" else v
    return out


def mailbox_param_bytes(*, ip: int, flags: int = 0) -> dict:
    """{address: bytes} for the host-written parameters."""
    return {MB_ADDR + MAILBOX["ip"][0]: struct.pack(">I", ip & 0xFFFFFFFF),
            MB_ADDR + MAILBOX["flags"][0]: struct.pack(">H", flags & 0xFFFF)}
