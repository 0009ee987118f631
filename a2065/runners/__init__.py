"""Runners: a card, a backend, the bridge and a driver driven together through time (tooling).

* ``replay``: ``Runner`` in event-driven emulated time (deterministic: replay, tests, demo),
  ``read_capture`` and ``StreamCollector`` for captures (the replay backend ``CaptureReplay`` is
  pcap_backend's, re-exported).
* ``live``: ``LiveBridge``, the real-time loop behind ``a2065 bridge`` and the end-to-end rig.
"""
