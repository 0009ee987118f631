"""Runners: a card, a backend, the bridge and a driver driven together through time (tooling).

* ``replay``: ``Runner`` in event-driven emulated time (deterministic: replay, tests, demo),
  ``read_capture`` and ``StreamCollector`` for captures (the replay backend ``CaptureReplay`` is
  pcap_backend's, re-exported).
* ``multi``: ``MultiCard``, the one real-time loop: N ``Card``s, each with its own backend and guest.
* ``live``: ``LiveBridge``, that loop with one card: behind ``a2065 bridge`` and the end-to-end rig.
* ``guest``: the guest side of a live card (``open_guest_tap``, ``GuestMulticast``, ``GuestCounters``).
"""
