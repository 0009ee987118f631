"""The configured A2065's access table: every width at every region, edge cases, INT2, reset."""
import pytest

from a2065 import A2065, mac_for
from a2065.drivers import LinuxA2065Driver

CSR0_STOP = 0x0004
BROADCAST = b"\xff" * 6


def configured(**kw):
    b = A2065(strict=True, **kw)
    b.write16(0x48, 0xE900)
    assert b.configured
    return b


def frame(src=b"\x02\0\0\0\0\x01", n=60):
    return BROADCAST + src + b"\x08\x06" + bytes((i & 0xFF for i in range(n - 14)))


# -- the table itself --------------------------------------------------------------------------

def test_the_access_table_covers_all_64k_without_holes_or_overlaps():
    rows = A2065.ACCESS_TABLE
    assert rows[0][0] == 0 and rows[-1][1] == 0xFFFF
    for (s0, e0, *_), (s1, *_r) in zip(rows, rows[1:]):
        assert s1 == e0 + 1
    assert [r[2] for r in rows] == ["unmapped-low", "RDP", "RAP", "unmapped-high", "RAM"]


@pytest.mark.parametrize("offset,name", [
    (0x0000, "unmapped-low"), (0x3FFF, "unmapped-low"), (0x4000, "RDP"), (0x4001, "RDP"),
    (0x4002, "RAP"), (0x4003, "RAP"), (0x4004, "unmapped-high"), (0x7FFF, "unmapped-high"),
    (0x8000, "RAM"), (0xFFFF, "RAM"), (0x18000, "RAM"), (-1, "RAM")])
def test_region_names_the_row_that_decodes_an_offset(offset, name):
    assert A2065.region(offset) == name


# -- unmapped rows -----------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0x0000, 0x0002, 0x1234, 0x3FFC, 0x4004, 0x4006, 0x5000,
                                    0x7FFC])
def test_unmapped_offsets_read_zero_at_every_width_and_ignore_writes(offset):
    b = configured()
    b.write16(0x4002, 1)  # RAP = 1, so a stray register write would be visible
    before_ram = bytes(b.ram)
    for width, v in ((8, 0xA5), (16, 0xA5A5), (32, 0xA5A5A5A5)):
        getattr(b, f"write{width}")(offset, v)
        assert getattr(b, f"read{width}")(offset) == 0
    assert bytes(b.ram) == before_ram
    assert b.read16(0x4002) == 1 and b.lance.csr1 == 0


def test_the_unmapped_low_area_does_not_show_the_autoconfig_image_after_configuration():
    b = configured()
    assert [b.read16(o) for o in range(0, 0x80, 2)] == [0] * 64


# -- registers ---------------------------------------------------------------------------------

def test_rap_and_rdp_take_word_accesses_and_select_csrs():
    b = configured()
    b.write16(0x4002, 1)
    assert b.read16(0x4002) == 1
    b.write16(0x4000, 0x8000)
    b.write16(0x4002, 2)
    b.write16(0x4000, 0x00AB)
    b.write16(0x4002, 3)
    b.write16(0x4000, 0x0004)
    b.write16(0x4002, 0)
    assert b.read16(0x4000) == CSR0_STOP
    assert (b.lance.csr1, b.lance.csr2, b.lance.csr3) == (0x8000, 0x00AB, 0x0004)
    b.write16(0x4002, 1)
    assert b.read16(0x4000) == 0x8000


def test_byte_reads_of_a_register_return_the_matching_half_of_the_word():
    b = configured()
    b.write16(0x4002, 1)
    b.write16(0x4000, 0x8A02)
    assert (b.read8(0x4000), b.read8(0x4001)) == (0x8A, 0x02)
    assert (b.read8(0x4002), b.read8(0x4003)) == (0x00, 0x01)


def test_byte_writes_to_a_register_are_ignored_and_counted():
    b = configured()
    b.write16(0x4002, 1)
    b.write16(0x4000, 0x1234)
    for off in (0x4000, 0x4001, 0x4002, 0x4003):
        b.write8(off, 0xFF)
    assert b.read16(0x4002) == 1 and b.read16(0x4000) == 0x1234
    assert b.stats["byte_register_writes"] == 4


def test_a_long_access_at_4000_is_rdp_then_rap_high_word_first():
    b = configured()
    b.write16(0x4002, 1)
    b.write32(0x4000, 0x8000_0002)  # CSR1 <- 0x8000, then RAP <- 2
    assert b.lance.csr1 == 0x8000 and b.read16(0x4002) == 2
    b.write16(0x4002, 1)
    assert b.read32(0x4000) == (0x8000 << 16) | 1


def test_rap_keeps_only_bits_1_0():
    b = configured()
    b.write16(0x4002, 0xFFFF)
    assert b.read16(0x4002) == 3


# -- RAM ---------------------------------------------------------------------------------------

def test_ram_takes_bytes_words_and_longs_in_big_endian_lanes():
    b = configured()
    b.write32(0x8000, 0x11223344)
    assert b.ram[0:4] == bytes.fromhex("11223344")
    assert [b.read8(0x8000 + i) for i in range(4)] == [0x11, 0x22, 0x33, 0x44]
    assert (b.read16(0x8000), b.read16(0x8002)) == (0x1122, 0x3344)
    b.write8(0x8001, 0xAA)
    b.write16(0x8002, 0xBBCC)
    assert b.read32(0x8000) == 0x11AABBCC


def test_the_last_ram_word_and_byte_are_reachable():
    b = configured()
    b.write16(0xFFFE, 0xCAFE)
    b.write8(0xFFFD, 0x7E)
    assert b.ram[-3:] == b"\x7e\xca\xfe"
    b.write32(0xFFFC, 0x01020304)
    assert b.read32(0xFFFC) == 0x01020304


def test_a_long_read_at_fffe_wraps_its_low_word_to_offset_zero():
    b = configured()
    b.write16(0xFFFE, 0xBEEF)
    assert b.read32(0xFFFE) == 0xBEEF_0000
    b.write32(0xFFFE, 0x1234_5678)  # low word goes to $0000: unmapped, ignored
    assert b.read16(0xFFFE) == 0x1234 and b.read16(0) == 0


def test_an_odd_word_offset_is_answered_as_the_aligned_word():
    b = configured()
    b.write16(0x8001, 0x1234)
    assert b.ram[0:2] == b"\x12\x34"
    assert b.read16(0x8001) == 0x1234
    b.write32(0x8005, 0xAABBCCDD)
    assert b.ram[4:8] == bytes.fromhex("aabbccdd")


def test_offsets_outside_64k_alias_modulo_64k():
    b = configured()
    b.write16(0x18000, 0x4242)
    assert b.read16(0x8000) == 0x4242
    assert b.read16(-0x8000) == 0x4242
    b.write8(-1, 0x99)
    assert b.ram[-1] == 0x99


def test_values_are_masked_to_the_access_width():
    b = configured()
    b.write8(0x8000, 0x1FF)
    b.write16(0x8002, 0x12345)
    b.write32(0x8004, -1)
    assert b.ram[0] == 0xFF and b.ram[2:4] == b"\x23\x45" and b.ram[4:8] == b"\xff" * 4


def test_lance_dma_addresses_map_to_ram_modulo_32k():
    b = configured()
    b.dma.write16(0x008010, 0xBEEF)
    assert b.read16(0x8010) == 0xBEEF
    b.dma.write16(0xFF0012, 0x1234)  # any 24-bit address wraps to RAM[addr & 0x7FFF]
    assert b.read16(0x8012) == 0x1234
    assert b.dma.read16(0x0010) == 0xBEEF


# -- time --------------------------------------------------------------------------------------

def test_now_on_an_access_catches_the_chip_up_first_and_never_goes_back():
    b = configured()
    b.read16(0x8000, now=5_000)
    assert b.lance.now == 5_000 and b.now == 5_000
    b.write16(0x8000, 1, now=1_000)
    assert b.now == 5_000
    b.write8(0x4000, 0, now=7_000)
    assert b.now == 7_000


def test_an_idle_transmitter_poll_is_a_deadline_the_board_reports():
    b = configured()
    drv = LinuxA2065Driver(b)
    drv.open()
    d = b.next_deadline()
    assert d is not None and d > b.now
    b.advance_to(d)
    assert b.now == d and b.next_deadline() > d


# -- INT2 --------------------------------------------------------------------------------------

def test_irq_is_called_on_edges_only_and_matches_the_polled_line():
    edges = []
    b = configured(irq=edges.append)
    drv = LinuxA2065Driver(b)
    drv.open()
    assert edges == [] and not b.irq_asserted  # IDON cleared before INEA (Linux)
    b.lance.receive(frame())
    assert edges == [True] and b.irq_asserted
    b.lance.receive(frame(n=70))  # still asserted: no second edge
    assert edges == [True]
    drv.service()
    assert edges == [True, False] and not b.irq_asserted
    assert len(drv.received) == 2


def test_clearing_inea_drops_the_line_and_setting_it_raises_it_again():
    edges = []
    b = configured(irq=edges.append)
    drv = LinuxA2065Driver(b)
    drv.open()
    b.lance.receive(frame())
    b.write16(0x4002, 0)
    b.write16(0x4000, 0x0000)  # INEA=0, nothing acknowledged
    assert edges == [True, False]
    b.write16(0x4000, 0x0040)
    assert edges == [True, False, True]


def test_mac_is_oui_plus_low_24_bits_of_the_serial():
    assert configured(serial=0xAB123456).mac == bytes.fromhex("008010123456")
    assert mac_for(0x00010203, "ameristar") == bytes.fromhex("00009f010203")


def test_an_unknown_variant_is_refused_at_construction():
    with pytest.raises(ValueError):
        A2065(variant="acme")


# -- reset -------------------------------------------------------------------------------------

def test_bus_reset_unconfigures_the_board_resets_the_chip_and_keeps_ram():
    edges = []
    b = configured(irq=edges.append)
    drv = LinuxA2065Driver(b)
    drv.open()
    b.lance.receive(frame())
    assert b.irq_asserted
    b.write16(0x9000, 0x5555)
    b.reset()
    assert not b.configured and edges == [True, False] and not b.irq_asserted
    b.write16(0x48, 0xEA00)
    assert b.base == 0xEA0000
    assert b.read16(0x4000) == CSR0_STOP and b.read16(0x4002) == 0
    assert b.read16(0x9000) == 0x5555


# -- robustness --------------------------------------------------------------------------------

class _Exploding:
    def __init__(self, ram, *, irq, transmit, timing):
        self.now, self.irq_asserted = 0, False

    def read_rdp(self):
        raise RuntimeError("chip bug")

    write_rdp = read_rap = write_rap = read_rdp

    def advance_to(self, t):
        raise RuntimeError("chip bug")

    def reset(self):
        pass


def test_a_chip_exception_during_a_bus_access_is_contained_and_counted():
    b = A2065(chip_factory=_Exploding)
    b.write16(0x48, 0xE900)
    assert b.read16(0x4000) == 0xFFFF and b.read8(0x4001) == 0xFF
    b.write16(0x4000, 1)
    assert b.read32(0x8000, now=10) == 0xFFFF_0000 | b.read16(0x8002)
    assert b.stats["chip_errors"] == 4


def test_strict_mode_lets_a_chip_exception_through_for_the_test_suite():
    b = A2065(chip_factory=_Exploding, strict=True)
    b.write16(0x48, 0xE900)
    with pytest.raises(RuntimeError):
        b.read16(0x4000)


def test_the_module_docstring_documents_every_row_of_the_access_table():
    import a2065.board as board_module
    doc = board_module.__doc__
    for start, end, name, *_ in A2065.ACCESS_TABLE:
        assert f"${start:04X}" in doc and f"${end:04X}" in doc, name
