"""One machine68k CPU per process (its state is global C data): each 68000 scenario runs as
``python -m MODULE ...`` in a fresh interpreter that prints its JSON result as its last line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Optional, Sequence

#: the tree this package runs from (a checkout or site-packages), for the child's PYTHONPATH
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_module(module: str, argv: Sequence[str] = (), *, stdin: Optional[str] = None,
               timeout: float = 300, what: str = "") -> Any:
    """Run ``python -m module *argv`` (with `stdin`); return the JSON of its last output line.

    A non-zero exit raises RuntimeError with the tail of the child's stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", module, *argv], input=stdin, capture_output=True,
                       text=True, timeout=timeout, env=env, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{what or module} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])
