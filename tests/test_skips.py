"""The skip rule (issue 16): a test skips only for a missing package or privilege, through the one
helper in tests/conftest.py, and names what to install; A2065_STRICT=1 (CI) makes a skip a failure."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SAMPLE = '''
import pytest
from conftest import importable, library_loads, require_package, requires_package

@requires_package("a2065-no-such-deb", False)
def test_mark():
    pass

def test_inline():
    require_package("a2065-other-deb", lambda: False, "for the sample")

@requires_package("machine68k", importable("a2065_no_such_module"))
def test_pip():
    pass

def missing_library():
    from pcap_backend.base import BackendUnavailable
    raise BackendUnavailable("libslirp not found: apt-get install libslirp0")

def test_typed_missing_library():
    require_package("libslirp0", {slirp_check})

def test_present():
    require_package("a2065-present", True)
'''


def _pytest(tmp_path, strict: bool, slirp_check: str = "missing_library"):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE.replace("{slirp_check}", slirp_check))
    env = {k: v for k, v in os.environ.items() if k != "A2065_STRICT"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if strict:
        env["A2065_STRICT"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "-p", "no:xdist", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_a_missing_package_skips_and_names_the_package_and_the_command_that_installs_it(tmp_path):
    r = _pytest(tmp_path, strict=False)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "1 passed, 4 skipped" in out
    assert "needs the Debian package a2065-no-such-deb: apt-get install a2065-no-such-deb" in out
    assert "needs the Debian package a2065-other-deb (for the sample): apt-get install a2065-other-deb" in out
    assert "needs the Python package machine68k: pip install machine68k" in out
    assert "needs the Debian package libslirp0: apt-get install libslirp0" in out


def test_in_strict_mode_every_skip_is_a_failure_that_still_says_what_to_install(tmp_path):
    r = _pytest(tmp_path, strict=True)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    last = out.splitlines()[-1]   # a mark's skip happens in setup, so pytest reports it as an error
    assert "2 failed, 1 passed, 2 errors" in last and "skipped" not in last
    assert out.count("A2065_STRICT=1 turns this skip into a failure") == 4
    assert "apt-get install a2065-no-such-deb" in out and "pip install machine68k" in out


def test_a_check_that_fails_for_another_reason_than_a_missing_library_is_a_failure_not_a_skip(tmp_path):
    # a loader that does not exist raises AttributeError: a bug, never "not installed"
    r = _pytest(tmp_path, strict=False, slirp_check='library_loads("slirp", "load_libslirp_missing")')
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "1 failed, 1 passed, 3 skipped" in out.splitlines()[-1]
    assert "test_typed_missing_library" in out and "AttributeError" in out and "load_libslirp_missing" in out


# the only skips allowed outside the helper: privilege, and the oracle forced by A2065_NATIVE=python
ALLOWED = re.compile(r"A2065_NATIVE|needs root|user namespaces")
SKIPS = re.compile(r"pytest\.skip\(|importorskip\(|mark\.skipif\(|mark\.skip\(")


def test_every_skip_in_the_suite_goes_through_the_helper_or_is_for_privilege():
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name in ("conftest.py", "test_skips.py"):
            continue
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if SKIPS.search(line) and not ALLOWED.search(" ".join(lines[max(0, i - 2):i + 3])):
                offenders.append(f"{path.name}:{i + 1}: {line.strip()}")
    assert offenders == [], "use requires_package/require_package from tests/conftest.py:\n" + \
        "\n".join(offenders)
