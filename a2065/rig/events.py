"""A child process that reports JSON events, one per line on stdout ({"event": NAME, ...}),
collected by a thread; its stderr goes to a log file the errors quote. The card processes of the
VDE and vxvde rigs are such children (their final counters come as the "final" event after
SIGTERM)."""
from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from typing import Any, Sequence

from a2065.drivers.child import ROOT, child_env



class EventChild:
    """``argv`` started importing this tree (``child_env``); ``name`` labels its errors."""

    def __init__(self, argv: Sequence[str], err_path: str, name: str):
        self.name = name
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self.err_path = err_path
        self._err = open(err_path, "w")
        self.proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=self._err,
                                     text=True, cwd=ROOT, env=child_env())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            with self._cv:
                self.events.append(doc)
                self._cv.notify_all()
        with self._cv:
            self.events.append({"event": "exit"})
            self._cv.notify_all()

    def stderr(self) -> str:
        """The last 3000 characters the child wrote to stderr."""
        self._err.flush()
        with open(self.err_path) as f:
            return f.read()[-3000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_event(self, name: str, timeout: float = 15.0, after: int = 0) -> dict[str, Any]:
        """The first `name` event with index >= `after` (AssertionError quoting the child's
        stderr if it does not come in `timeout` s, or if the child exits first)."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for ev in self.events[after:]:
                    if ev.get("event") == name:
                        return ev
                    if ev.get("event") == "exit":
                        raise AssertionError(f"{self.name} exited ({self.proc.poll()}): "
                                             f"{self.stderr()}")
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no {name} event in {timeout} s; "
                                         f"events {self.events}; stderr {self.stderr()}")
                self._cv.wait(left)

    def finish(self, timeout: float = 15.0) -> dict[str, Any]:
        """SIGTERM: the child ends its loop and reports its counters as the "final" event."""
        if self.alive():
            self.proc.terminate()
        st: dict[str, Any] = self.wait_event("final", timeout)["stats"]
        self.proc.wait(timeout)
        return st

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(10)
        self._reader.join(5)
        self._err.close()
