"""Runners: a card, a backend, the bridge and a driver driven together through time (tooling).

* ``replay``: ``Runner`` in event-driven emulated time (deterministic: replay, tests, demo) and
  ``CaptureReplay``/``StreamCollector`` for captures.
* ``live``: ``LiveBridge``, the real-time loop behind ``a2065 bridge`` and the end-to-end rig.
"""
