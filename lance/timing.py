"""Integer-nanosecond time arithmetic for the 10 Mb/s wire (ref: 802.3, reference §9), and the one
place where CPU cycles and emulated ns are converted (hosts and adapters use these).

No floats and no clock: callers pass emulated time in ns. Conversion names say how they round.
"""

FCS_LEN = 4
BIT_NS = 100  # one bit at 10 Mb/s
BYTE_NS = 800  # one byte
PREAMBLE_BYTES = 8  # 7 preamble + 1 SFD = 6.4 us
IFG_NS = 9_600  # inter-frame gap, 96 bit times
SLOT_NS = 51_200  # slot time, 512 bit times
TX_POLL_NS = 1_600_000  # idle transmit ring poll period (ref: M TX_POLL_PERIOD, TME quoting DS)
MAX_FRAME_WITH_FCS = 1518  # 802.3 maximum frame incl. FCS
MAX_FRAME_WITHOUT_FCS = MAX_FRAME_WITH_FCS - FCS_LEN  # 1514
#: Longest frame the receiver takes, FCS included. The Am7990 has no receive length limit of its
#: own (ref: reference section 5: a longer frame chains into further buffers). This bound is the
#: model's: every frame fits one 1544-byte buffer, the size the Linux driver gives each descriptor
#: (it loops forever on a chained one, reference section 10), and a full-size 802.1Q frame passes.
RX_MAX_FRAME_WITH_FCS = 1544
RX_MAX_FRAME_WITHOUT_FCS = RX_MAX_FRAME_WITH_FCS - FCS_LEN  # 1540
MIN_FRAME_WITH_FCS = 64  # 802.3 minimum frame incl. FCS
MIN_FRAME_WITHOUT_FCS = MIN_FRAME_WITH_FCS - FCS_LEN  # 60: what a sender pads a frame to


def frame_wire_ns(len_with_fcs: int) -> int:
    """Time from the first preamble bit to the last FCS bit at 10 Mb/s: (len + 8) * 800 ns
    (exact)."""
    return (int(len_with_fcs) + PREAMBLE_BYTES) * BYTE_NS


def frame_period_ns(len_with_fcs: int) -> int:
    """Wire time plus the inter-frame gap: the minimum start-to-start spacing of frames."""
    return frame_wire_ns(len_with_fcs) + IFG_NS


def cycles_to_ns_floor(cycles: int, hz: int) -> int:
    """CPU cycles at ``hz`` -> ns, integer math, rounded down."""
    hz = int(hz)
    if hz <= 0:
        raise ValueError("hz must be positive")
    return int(cycles) * 1_000_000_000 // hz


def ns_to_cycles_floor(ns: int, hz: int) -> int:
    """ns -> CPU cycles at ``hz``, integer math, rounded down (the cycles completed by ``ns``)."""
    hz = int(hz)
    if hz <= 0:
        raise ValueError("hz must be positive")
    return int(ns) * hz // 1_000_000_000


def ns_to_cycles_ceil(ns: int, hz: int) -> int:
    """ns -> CPU cycles at ``hz``, rounded up: the fewest cycles whose ``cycles_to_ns_floor``
    reaches ``ns`` (a CPU slice that ends there runs an event due at ``ns`` on time)."""
    hz = int(hz)
    if hz <= 0:
        raise ValueError("hz must be positive")
    return -((-int(ns) * hz) // 1_000_000_000)
