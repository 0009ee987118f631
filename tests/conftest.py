"""Shared test configuration.

Tests marked ``root`` need root privileges and network namespaces; they skip with a reason
elsewhere. Hypothesis profiles: ``ci`` (default, bounded) and ``thorough`` (HYPOTHESIS_PROFILE=thorough).
"""
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _netns_reason():
    if os.geteuid() != 0:
        return "needs root (network namespaces, TAP, raw sockets)"
    if shutil.which("ip") is None:
        return "needs iproute2 (apt-get install iproute2)"
    name = f"a2065probe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create network namespaces here: {r.stderr.strip()}"
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
