"""Shared test configuration.

A test skips for one of two reasons only: a system (or PyPI) package it needs is missing, or it needs
root. Both go through the helpers here, so the skip message always says what to install or grant:

    from conftest import requires_package, require_package, which
    pytestmark = requires_package("tshark", which("tshark"))          # a mark (module or test)
    require_package("libslirp0", slirp_loads)                         # inside a test or fixture

``check`` is a bool, or a callable returning one (called once, at collection for the mark). A
callable may also raise ``pcap_backend.base.BackendUnavailable`` (the typed "library not found"
error of the library loaders): that counts as missing; any other exception is a real failure and
propagates.

Strict mode (``A2065_STRICT=1``, set by ``.ci/run``, which installs every package and runs as root):
every skip is reported as a failure, so CI proves that every test ran.

Tests marked ``root`` need root and network namespaces (iproute2). Hypothesis profiles: ``ci``
(default, bounded) and ``thorough`` (HYPOTHESIS_PROFILE=thorough).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STRICT = os.environ.get("A2065_STRICT", "") not in ("", "0")

#: packages that come from PyPI (installed by `make venv` through the test/m68k extras); every
#: other name is a Debian package.
PIP_PACKAGES = {"machine68k", "atheris", "matplotlib", "mypy", "tomli"}


def _is_pip_package(package: str) -> bool:
    return package in PIP_PACKAGES


def package_reason(package: str, what: str = "") -> str:
    """The one wording of a missing-package skip: the package and the command that installs it."""
    how = f"pip install {package}" if _is_pip_package(package) else f"apt-get install {package}"
    kind = "the Python package" if _is_pip_package(package) else "the Debian package"
    return f"needs {kind} {package}{f' ({what})' if what else ''}: {how}"


def _present(check: object) -> bool:
    if callable(check):
        from pcap_backend.base import BackendUnavailable
        try:
            check = check()
        except BackendUnavailable:
            return False
    return bool(check)


def requires_package(package: str, check: object, what: str = ""):
    """A mark that skips the test (or module, as ``pytestmark``) unless ``check`` holds."""
    return pytest.mark.skipif(not _present(check), reason=package_reason(package, what))


def require_package(package: str, check: object, what: str = "") -> None:
    """Inside a test or fixture: skip now unless ``check`` holds."""
    if not _present(check):
        try:   # report the test's location, not this line's (pytest's keyword, private but stable)
            exc = pytest.skip.Exception(package_reason(package, what), _use_item_location=True)
        except TypeError:  # pragma: no cover - a pytest without it
            exc = pytest.skip.Exception(package_reason(package, what))
        raise exc


def which(program: str) -> Callable[[], bool]:
    """A check: ``program`` is on PATH and executable."""
    return lambda: shutil.which(program) is not None


def importable(module: str) -> Callable[[], bool]:
    """A check: the Python module imports (ImportError only; anything else is a failure)."""
    def check() -> bool:
        import importlib
        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return True
    return check


def library_loads(module: str, loader: str) -> Callable[[], bool]:
    """A check: ``pcap_backend.backends.<module>.<loader>()`` opens its C library (its typed
    BackendUnavailable means missing; any other error fails the test that asked)."""
    def check() -> bool:
        import importlib
        getattr(importlib.import_module(f"pcap_backend.backends.{module}"), loader)()
        return True
    return check


def requires_root(what: str = "network namespaces, TAP, raw sockets"):
    """A mark for a test that needs root."""
    return pytest.mark.skipif(os.geteuid() != 0, reason=f"needs root ({what})")


def _netns_reason():
    if os.geteuid() != 0:
        return "needs root (network namespaces, TAP, raw sockets)"
    if shutil.which("ip") is None:
        return package_reason("iproute2", "ip netns")
    name = f"a2065probe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"needs root that may create network namespaces: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


_ROOT_REASON = None
_ROOT_CHECKED = False


def pytest_collection_modifyitems(config, items):
    global _ROOT_REASON, _ROOT_CHECKED
    for item in items:
        if "root" in item.keywords:
            if not _ROOT_CHECKED:
                _ROOT_REASON = _netns_reason()
                _ROOT_CHECKED = True
            if _ROOT_REASON:
                item.add_marker(pytest.mark.skip(reason=_ROOT_REASON))


def pytest_report_header(config):
    return ("A2065_STRICT=1: a skipped test counts as failed (every package must be installed, "
            "run as root)" if STRICT else None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"A2065_STRICT=1 turns this skip into a failure: {reason}\n"
                           "(CI installs every package and runs as root, so nothing may skip)")
