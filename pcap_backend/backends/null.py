"""Null backend: no cable. The link is down, every transmit fails (the chip reports LCAR)."""
from __future__ import annotations

from ..base import Backend, Packet


class Null(Backend):
    name = "null"

    @property
    def link_up(self) -> bool:
        return False

    def send(self, frame: bytes, t_ns: int) -> bool:
        return self._tx_fail("link_down", "null backend has no cable")

    def poll(self, now_ns: int, limit: int = 64) -> list[Packet]:
        return []
