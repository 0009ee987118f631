"""Drivers that play the guest's operating system against the card (tooling, not the card).

* ``a2065.drivers`` (this package, from ``pydriver``): register-level Python drivers that behave
  like the Linux and NetBSD drivers, used by tests, benchmarks, the demo and the rigs.
* ``a2065.drivers.m68k``: a freestanding 68000 program (C + start-up code) built with Debian's
  cross compiler and run on machine68k against the card.
"""
from .pydriver import *  # noqa: F401,F403
from .pydriver import __all__  # noqa: F401
