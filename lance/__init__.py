"""AMD Am7990 LANCE model. See docs/architecture.md (lance contract and the "lance/" section)."""
from .chip import Am7990, Counters, RxStatus
from .csr import CSR0, CSR3, MODE, RMD1, TMD1, TMD3
from .dma import DmaPort, RamDma
from .timing import ns_from_cycles, wire_ns

__all__ = [
    "Am7990", "Counters", "RxStatus", "CSR0", "CSR3", "MODE", "RMD1", "TMD1", "TMD3",
    "DmaPort", "RamDma", "ns_from_cycles", "wire_ns",
]
