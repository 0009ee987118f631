"""Integer-nanosecond time arithmetic for the 10 Mb/s wire (ref: 802.3, reference §9).

No floats and no clock: callers pass emulated time in ns.
"""

BIT_NS = 100  # one bit at 10 Mb/s
BYTE_NS = 800  # one byte
PREAMBLE_BYTES = 8  # 7 preamble + 1 SFD = 6.4 us
IFG_NS = 9_600  # inter-frame gap, 96 bit times
SLOT_NS = 51_200  # slot time, 512 bit times
TX_POLL_NS = 1_600_000  # idle transmit ring poll period (ref: M TX_POLL_PERIOD, TME quoting DS)
MAX_FRAME = 1518  # 802.3 maximum frame incl. FCS
MIN_FRAME = 64  # 802.3 minimum frame incl. FCS
FCS_LEN = 4


def wire_ns(len_with_fcs: int) -> int:
    """Time from the first preamble bit to the last FCS bit: (len + 8) * 800 ns."""
    return (int(len_with_fcs) + PREAMBLE_BYTES) * BYTE_NS


def frame_period_ns(len_with_fcs: int) -> int:
    """Wire time plus the inter-frame gap: the minimum start-to-start spacing of frames."""
    return wire_ns(len_with_fcs) + IFG_NS


def ns_from_cycles(cycles: int, hz: int) -> int:
    """Convert CPU cycles at ``hz`` to ns with integer math (floor)."""
    hz = int(hz)
    if hz <= 0:
        raise ValueError("hz must be positive")
    return int(cycles) * 1_000_000_000 // hz


def cycles_from_ns(ns: int, hz: int) -> int:
    """Convert ns to CPU cycles at ``hz`` with integer math (floor)."""
    hz = int(hz)
    if hz <= 0:
        raise ValueError("hz must be positive")
    return int(ns) * hz // 1_000_000_000
