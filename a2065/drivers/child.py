"""Child Python processes of the tooling, importing this same tree (a checkout or site-packages).

The 68000 scenarios run one per process (machine68k's CPU state is global C data): each runs as
``python -m MODULE ...`` and prints its JSON result as its last line (``run_module``). The rigs
start their endpoint tools and card processes inside namespaces with ``child_env()`` and ``ROOT``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Optional, Sequence

#: the tree this package runs from (a checkout or site-packages): the children's PYTHONPATH and cwd
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env() -> dict[str, str]:
    """This process's environment with ROOT first on PYTHONPATH, so a child imports this tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_module(module: str, argv: Sequence[str] = (), *, stdin: Optional[str] = None,
               timeout: float = 300, what: str = "") -> Any:
    """Run ``python -m module *argv`` (with `stdin`); return the JSON of its last output line.

    A non-zero exit raises RuntimeError with the tail of the child's stderr."""
    p = subprocess.run([sys.executable, "-m", module, *argv], input=stdin, capture_output=True,
                       text=True, timeout=timeout, env=child_env(), cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{what or module} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])
