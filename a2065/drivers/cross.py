"""The 68000 cross toolchain both 68000 programs are built with (our driver in ``m68k/`` and the
real Linux driver in ``linux/``): Debian's ``gcc-m68k-linux-gnu`` and ``binutils-m68k-linux-gnu``.

``link_flat`` compiles and links with gcc, then keeps the named sections as a flat binary
(objcopy), writing into a fresh temporary directory and moving the results into place atomically,
so parallel builders of the same cached image agree.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

CROSS = os.environ.get("A2065_M68K_CROSS", "m68k-linux-gnu-")


class BuildError(RuntimeError):
    """The cross compiler is missing or failed."""


def compiler() -> str | None:
    """Path of the cross compiler, or None if it is not installed."""
    return shutil.which(CROSS + "gcc")


def tools() -> tuple[str, str]:
    """(gcc, objcopy) of the cross toolchain, or BuildError naming the Debian package."""
    gcc = compiler()
    if gcc is None:
        raise BuildError(f"{CROSS}gcc not found (Debian: apt-get install gcc-m68k-linux-gnu)")
    objcopy = shutil.which(CROSS + "objcopy")
    if objcopy is None:
        raise BuildError(f"{CROSS}objcopy not found (apt-get install binutils-m68k-linux-gnu)")
    return gcc, objcopy


def link_flat(out: Path, stem: str, gcc_args: Sequence[str], sections: Sequence[str], *,
              cwd: Path | None = None, keep: Sequence[str] = ()) -> Path:
    """Run ``gcc *gcc_args -o TMP/stem.elf``, then objcopy `sections` into ``out/stem.bin``.

    ``out/stem.elf`` is kept beside the binary, and so is each file of `keep` that gcc wrote into
    the temporary directory (``{tmp}`` in `gcc_args` names it, e.g. a map file). gcc's warnings go
    to ``out/warnings.txt``. Returns the binary's path."""
    gcc, objcopy = tools()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out))
    try:
        elf = tmp / f"{stem}.elf"
        cmd = [gcc, *(a.replace("{tmp}", str(tmp)) for a in gcc_args), "-o", str(elf)]
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"{' '.join(cmd)}\n{r.stderr}")
        (tmp / "warnings.txt").write_text(r.stderr)
        binary = tmp / f"{stem}.bin"
        sect = [a for s in sections for a in ("-j", s)]
        r = subprocess.run([objcopy, "-O", "binary", *sect, str(elf), str(binary)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(r.stderr)
        for name in (f"{stem}.elf", "warnings.txt", *keep):
            os.replace(tmp / name, out / name)
        os.replace(binary, out / f"{stem}.bin")   # last: its presence means the build is complete
        return out / f"{stem}.bin"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
