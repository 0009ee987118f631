"""Commodore A2065 Zorro II Ethernet card (AMD Am7990 LANCE); see docs/architecture.md.

``from a2065 import A2065, ZorroChain`` -- the board and the autoconfig chain.
"""
from .autoconfig import RamCard, ZorroChain
from .board import A2065, mac_for
from .mac import MacAddress

__all__ = ["A2065", "ZorroChain", "RamCard", "mac_for", "MacAddress"]
