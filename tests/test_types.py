"""The public API is typed (issue 16): py.typed in each package, and mypy --strict passes on the
modules `[tool.mypy] files` lists in pyproject.toml (the card, the chip, the C core's wrapper, the
host side; not the tooling beside them).

mypy comes with the test extra; CI installs it, so these run there.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import importable, require_package

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_PACKAGES = ("a2065", "lance", "native", "pcap_backend")
#: what is not public API, so not listed for mypy: tooling, fuzz targets, the cffi build script
NOT_CHECKED = ("a2065/drivers/", "a2065/runners/", "a2065/cli/", "a2065/rig/", "a2065/__main__.py",
               "native/fuzz/", "native/_build.py", "pcap_backend/fuzz/")


def _mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    require_package("mypy", importable("mypy"), "the type check of the public API")
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                           "--config-file", str(ROOT / "pyproject.toml"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=900)


def _config() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        require_package("tomli", importable("tomli"), "reading pyproject.toml on Python 3.10")
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_carries_a_py_typed_marker():
    for package in PUBLIC_PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package
    package_data = _config()["tool"]["setuptools"]["package-data"]
    for package in PUBLIC_PACKAGES:
        assert "py.typed" in package_data.get(package, []), package


def test_every_public_module_is_in_the_strict_list():
    listed = _config()["tool"]["mypy"]["files"]
    assert _config()["tool"]["mypy"]["strict"] is True

    def covered(rel: str) -> bool:
        return any(rel == f or rel.startswith(f.rstrip("/") + "/") for f in listed)

    missing = []
    for package in PUBLIC_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(NOT_CHECKED) and not covered(rel):
                missing.append(rel)
    assert missing == [], "public modules mypy does not check: add them to [tool.mypy] files"


def test_the_public_modules_pass_mypy_strict():
    r = _mypy()
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "Success: no issues found" in r.stdout


def test_a_program_that_passes_the_board_where_the_chip_belongs_fails_the_type_check(tmp_path):
    """The annotations say what to pass: a user's mistakes are type errors before they run."""
    program = tmp_path / "embedding.py"
    program.write_text(
        "from a2065 import A2065\n"
        "from pcap_backend import Bridge, Null\n"
        "card = A2065(serial=0x00123456)\n"
        "ok = Bridge(Null(), card.lance)\n"            # right: the chip
        "mac: str = str(card.mac)\n"
        "word: int = card.read16(0x4000)\n"
        "bad = Bridge(Null(), card)\n"                 # wrong: the board
        "A2065(serial='0x123456')\n"                   # wrong: a str serial
    )
    r = _mypy(str(program))
    errors = [line for line in r.stdout.splitlines() if ": error:" in line]
    assert r.returncode == 1, r.stdout + r.stderr
    assert [int(line.split(":")[1]) for line in errors] == [7, 8], r.stdout
    assert '"A2065"' in errors[0] and "ChipPort" in errors[0]
    assert "serial" in errors[1] and '"str"' in errors[1]
