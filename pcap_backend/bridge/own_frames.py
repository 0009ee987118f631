"""Own-frame filter: a host interface may hand back the frames the card sent (a capture sees both
directions, another card on the same cable, a reflecting switch). A received frame whose source
MAC is the card's own is dropped (``own_frame``), unless the chip is in external loopback (MODE
LOOP without INTL), where the card is meant to hear itself."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..base import ChipPort

if TYPE_CHECKING:
    from lance.buffers import BytesLike

__all__ = ["OwnFrames"]

# MODE register bits (lance/csr.py MODE.LOOP / MODE.INTL; Am7990 datasheet, CSR15)
MODE_LOOP = 0x0004
MODE_INTL = 0x0040


class OwnFrames:
    """The card's MAC: `mac` when given, else the chip's PADR once INIT loaded one, else the
    source MAC of the first frame the card sends (`learn_from_transmit`)."""

    def __init__(self, chip: ChipPort, mac: Optional[BytesLike]) -> None:
        self.chip = chip
        self.mac = bytes(mac) if mac is not None else None

    def card_mac(self) -> Optional[bytes]:
        if self.mac is not None:
            return self.mac
        v = self.chip.padr
        if len(v) == 6 and any(v):
            return bytes(v)
        return None

    def learn_from_transmit(self, frame: BytesLike) -> None:
        if self.mac is None and len(frame) >= 12 and self.card_mac() is None:
            self.mac = bytes(frame[6:12])

    def is_own(self, frame: BytesLike) -> bool:
        mac = self.mac if self.mac is not None else self.card_mac()
        if mac is None or frame[6:12] != mac:
            return False
        mode = self.chip.mode
        return not (mode & MODE_LOOP and not mode & MODE_INTL)
