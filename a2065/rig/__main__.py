"""``python -m a2065.rig TOOL ...``: the rig's endpoint tools (tcp-send, tcp-recv, udp-send, udp-recv)."""
import sys

from .core import main

sys.exit(main())
