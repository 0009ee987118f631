"""The real Linux A2065 driver (``drivers/net/ethernet/amd/a2065.c``), unmodified, on the 68000.

The driver source is never part of this tree: ``extract_driver()`` takes ``a2065.c`` and
``a2065.h`` out of the kernel source tarball that Debian's ``linux-source-6.1`` package installs,
into a cache outside the tree, at build time. Everything else is this project's own code:

* ``kshim.h`` / ``kshim.c``: the kernel as the driver sees it (types, the structures it touches,
  inline helpers, ~25 functions: skbs, net devices, IRQs, timers, CRC-32, Zorro autoconfig);
* ``kmain.c``: a mini kernel loop (dev_open/close, rx mode, transmit queue, watchdog, timers);
* ``crt0.S``, ``link.ld``: vectors, start-up, the flat image at $000000 in 256 KiB of RAM;
* ``hostif.h``: the RAM block shared with the host (``HOSTIF`` below mirrors it);
* ``runner.py``: scenarios, one machine68k process each.

Every ``#include <...>`` of the driver is answered by a generated stand-in that includes
``kshim.h``. Build products go to the cache, keyed by the hash of all inputs.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..cross import CROSS, BuildError, compiler, link_flat, tools  # noqa: F401  (re-exported)

SRC_DIR = Path(__file__).resolve().parent
SOURCES = ("crt0.S", "kshim.c", "kmain.c", "kshim.h", "hostif.h", "link.ld")
PACKAGE = "linux-source-6.1"
DRIVER_MEMBERS = ("drivers/net/ethernet/amd/a2065.c", "drivers/net/ethernet/amd/a2065.h")
CFLAGS = ["-m68000", "-Os", "-ffreestanding", "-nostdlib", "-fno-pic", "-fno-strict-aliasing",
          "-fno-common", "-Wall", "-Wno-unused-function", "-Wno-array-bounds", '-DKBUILD_MODNAME="a2065"']
LDFLAGS = ["-Wl,--build-id=none", "-Wl,-e,_start", "-Wl,-z,noexecstack",
           "-Wl,--no-warn-rwx-segments"]

RAM_KIB = 256
HI_ADDR = 0x0400
HI_MAGIC = 0x4C4E5831       # 'LNX1'
HI_VERSION = 1
HS_BOOT, HS_READY, HS_FAULT = 0x0001, 0x0003, 0x00EF
HC_OPEN, HC_CLOSE, HC_SET_RX_MODE, HC_REMOVE = 1, 2, 3, 4
IFF_PROMISC, IFF_ALLMULTI = 0x100, 0x200
HZ = 100
SLOT = struct.Struct(">IIHH")  # struct hi_slot: skb, data, len, dev

#: name -> (offset from HI_ADDR, struct format); mirrors struct hostif in hostif.h
HOSTIF = {
    "magic": (0x00, ">I"), "version": (0x04, ">H"), "state": (0x06, ">H"),
    "jiffies": (0x08, ">I"), "cmd": (0x0C, ">H"), "cmd_result": (0x0E, ">h"),
    "cmd_arg": (0x10, ">I"), "ndev": (0x14, ">H"), "fault_vector": (0x16, ">H"),
    "fault_pc": (0x18, ">I"), "log_buf": (0x1C, ">I"), "log_head": (0x20, ">I"),
    "log_size": (0x24, ">I"), "dev0": (0x28, ">I"), "dev1": (0x2C, ">I"),
    "stats0": (0x30, ">I"), "stats1": (0x34, ">I"), "txq": (0x38, ">I"),
    "txq_slots": (0x3C, ">H"), "txq_head": (0x40, ">I"), "txq_tail": (0x44, ">I"),
    "rxq": (0x48, ">I"), "rxq_slots": (0x4C, ">H"), "rxq_head": (0x50, ">I"),
    "rxq_tail": (0x54, ">I"), "mc_count": (0x58, ">H"), "dev_flags": (0x5A, ">H"),
    "mc_addrs": (0x5C, ">I"), "mc_max": (0x60, ">H"), "zorro_boards": (0x62, ">H"),
    "irqs": (0x64, ">I"), "irq_unclaimed": (0x68, ">I"), "tx_timeouts": (0x6C, ">I"),
    "rx_host_drops": (0x70, ">I"), "skb_fail": (0x74, ">I"), "loops": (0x78, ">I"),
    "probe_result": (0x7C, ">i"), "xmit_calls": (0x80, ">I"), "timer_runs": (0x84, ">I"),
    "skb_free": (0x88, ">I"), "zorro_bases": (0x8C, ">I"),
}
HOSTIF_SIZE = 0x90

#: struct net_device_stats (kshim.h): unsigned long fields in this order
STATS_FIELDS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
                "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
                "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
                "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
                "tx_heartbeat_errors", "tx_window_errors")


class SourceMissing(BuildError):
    """The kernel source package is not installed (the message names it)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()
    return Path(base) / "a2065-linux-driver"


def source_tarball() -> Path:
    """The kernel source tarball of ``linux-source-6.1`` (found through dpkg)."""
    paths = []
    if shutil.which("dpkg"):
        r = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
        if r.returncode == 0:
            paths = [Path(p) for p in r.stdout.split() if re.search(r"\.tar\.(xz|bz2|gz)$", p)]
    for p in paths:
        if p.is_file():
            return p
    raise SourceMissing(f"the Linux A2065 driver source needs Debian's {PACKAGE} package "
                        f"(apt-get install {PACKAGE})")


def source_version() -> str:
    """The installed ``linux-source-6.1`` package version (e.g. '6.1.192-3')."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True,
                       text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise SourceMissing(f"{PACKAGE} is not installed (apt-get install {PACKAGE})")
    return r.stdout.strip()


def extract_driver() -> Path:
    """Extract a2065.c and a2065.h (only those) into the cache; return their directory."""
    tarball = source_tarball()
    st = tarball.stat()
    key = hashlib.sha256(f"{tarball}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir() / f"src-{key}"
    if all((out / Path(m).name).is_file() for m in DRIVER_MEMBERS):
        return out
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out))
    wanted = {m: Path(m).name for m in DRIVER_MEMBERS}
    found = 0
    with tarfile.open(tarball) as tf:
        for member in tf:                      # stream: stop once both are out
            rel = member.name.split("/", 1)[-1]
            if rel in wanted and member.isfile():
                data = tf.extractfile(member).read()
                (tmp / wanted[rel]).write_bytes(data)
                found += 1
                if found == len(wanted):
                    break
    if found != len(wanted):
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceMissing(f"{tarball} has no {', '.join(DRIVER_MEMBERS)}")
    for name in wanted.values():
        os.replace(tmp / name, out / name)      # atomic: parallel extractors agree
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _inputs_hash(driver_dir: Path) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (SRC_DIR / name).read_bytes())
    for m in DRIVER_MEMBERS:
        h.update((driver_dir / Path(m).name).read_bytes())
    h.update(" ".join(CFLAGS + LDFLAGS + [CROSS]).encode())
    return h.hexdigest()[:16]


def _stand_in_headers(driver_c: Path, include: Path) -> list:
    """One stand-in per ``#include <...>`` of the driver, each including kshim.h."""
    names = re.findall(r'^\s*#\s*include\s*<([^>]+)>', driver_c.read_text(), re.M)
    for name in names:
        p = include / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"/* stand-in for <{name}>: the harness's kernel shim */\n"
                     "#include <kshim.h>\n")
    return names


def build() -> Path:
    """Extract the driver, compile it with the shim, link; return the flat binary (cached)."""
    tools()   # BuildError naming the Debian package before anything is extracted
    drv = extract_driver()
    out = cache_dir() / f"build-{_inputs_hash(drv)}"
    binary = out / "a2065-linux.bin"
    if binary.exists():
        return binary
    include = out / f"include-{os.getpid()}"
    try:
        _stand_in_headers(drv / "a2065.c", include)
        return link_flat(out, "a2065-linux",
                         [*CFLAGS, "-I", str(SRC_DIR), "-I", str(include), "-I", str(drv),
                          *LDFLAGS, "-Wl,-T," + str(SRC_DIR / "link.ld"), "-Wl,-Map,{tmp}/map.txt",
                          str(SRC_DIR / "crt0.S"), str(SRC_DIR / "kmain.c"),
                          str(SRC_DIR / "kshim.c"), str(drv / "a2065.c")],
                         (".vectors", ".hostif", ".text", ".data"), keep=("map.txt",))
    finally:
        shutil.rmtree(include, ignore_errors=True)


def image(path: str | os.PathLike | None = None) -> bytes:
    data = Path(path or build()).read_bytes()
    magic, version = struct.unpack_from(">IH", data, HI_ADDR)
    if magic != HI_MAGIC or version != HI_VERSION:
        raise BuildError(f"image host interface magic/version {magic:#x}/{version}")
    return data


def symbols(path: str | os.PathLike | None = None) -> dict:
    """name -> address from the ELF beside the binary (nm)."""
    elf = Path(path or build()).with_suffix(".elf")
    r = subprocess.run([CROSS + "nm", str(elf)], capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = int(parts[0], 16)
    return out


def read_hostif(read_block) -> dict:
    raw = bytes(read_block(HI_ADDR, HOSTIF_SIZE))
    return {name: struct.unpack_from(fmt, raw, off)[0] for name, (off, fmt) in HOSTIF.items()}


def hostif_field(name: str, value: int) -> tuple:
    """(address, bytes) that set one host-written field."""
    off, fmt = HOSTIF[name]
    return HI_ADDR + off, struct.pack(fmt, value)
