"""AMD Am7990 LANCE model. See docs/architecture.md (lance contract and the "lance/" section)."""
from .chip import Am7990, Counters, RxStatus
from .csr import CSR0, CSR3, MODE, RMD1, TMD1, TMD3
from .dma import DmaPort, RamDma
from .timing import cycles_to_ns_floor, frame_wire_ns, ns_to_cycles_ceil

__all__ = [
    "Am7990", "Counters", "RxStatus", "CSR0", "CSR3", "MODE", "RMD1", "TMD1", "TMD3",
    "DmaPort", "RamDma", "cycles_to_ns_floor", "ns_to_cycles_ceil", "frame_wire_ns",
]
