"""Zorro II autoconfig of the A2065: image, inversion, latch, shut-up, reset, chains."""
import pytest

from a2065 import A2065, RamCard, ZorroChain
from a2065.autoconfig import (E_EXPANSIONBASE, ERT_SIZE_CODES, Autoconfig, decode_nibbles,
                              rom_bytes)

# Raw nibbles (as read, inversion applied) at $00, $02, ... $7E for the Commodore A2065 with
# serial 0x00123456, written out by hand from reference section 2 (er_Type C1 not inverted,
# product 70 -> 8,F; flags 00 -> F,F; reserved 00 -> F,F; manufacturer 0202 -> F,D,F,D;
# serial 00123456 -> F,F,E,D,C,B,A,9; InitDiagVec and reserved -> F; ec_Interrupt $40/$42 -> 0,0).
COMMODORE_NIBBLES = "C18FFFFFFDFDFFEDCBA9" + "F" * 12 + "00" + "F" * 30


def board(**kw):
    return A2065(strict=True, **kw)


def configure_all(chain):
    """What the OS does: read each board at $E80000, verify, place it, write $4A then $48."""
    io_next, mem_next, placed = 0xE90000, 0x200000, []
    for _ in range(16):
        def rd(off):
            return chain.read8(E_EXPANSIONBASE + off)
        rom = decode_nibbles(rd)
        manufacturer = (rom[4] << 8) | rom[5]
        if manufacturer in (0, 0xFFFF):
            break
        assert all(decode_nibbles(rd) == rom for _ in range(11))  # AROS verification passes
        size = {v: k for k, v in ERT_SIZE_CODES.items()}[rom[0] & 7]
        if rom[0] & 0x20:
            base, mem_next = mem_next, mem_next + size
        else:
            base, io_next = io_next, io_next + size
        chain.write8(E_EXPANSIONBASE + 0x4A, ((base >> 16) & 0xF) << 4)
        chain.write8(E_EXPANSIONBASE + 0x48, (base >> 16) & 0xFF)
        placed.append((manufacturer, rom[1], base))
    return placed


def test_every_nibble_of_the_commodore_image_matches_the_hand_written_table():
    b = board(serial=0x00123456)
    got = "".join("%X" % (b.read8(off) >> 4) for off in range(0, 0x80, 2))
    assert got == COMMODORE_NIBBLES


def test_only_nibbles_at_00_02_40_42_are_stored_uninverted():
    logical = bytes(range(0x11, 0x11 + 16))
    ac = Autoconfig(logical)
    for off in range(0, 0x80, 2):
        n = off >> 2
        plain = (logical[n] if n < 16 else 0)
        plain = (plain >> 4) if off & 2 == 0 else plain & 0xF
        expected = plain if off in (0x00, 0x02, 0x40, 0x42) else plain ^ 0xF
        assert ac.nibble(off) == expected, hex(off)


def test_the_nibble_is_on_d15_d12_and_every_other_line_reads_one():
    b = board()
    for off in range(0, 0x80, 2):
        nib = b.read8(off) >> 4
        assert b.read8(off) == (nib << 4) | 0x0F
        assert b.read8(off + 1) == 0xFF
        assert b.read16(off) == (nib << 12) | 0x0FFF
        assert b.read32(off & ~3) == (b.read16(off & ~3) << 16) | b.read16((off & ~3) + 2)


def test_offsets_past_the_rom_in_the_window_read_all_ones():
    b = board()
    for off in (0x80, 0x81, 0x100, 0x4000, 0x8000, 0xFFFE):
        assert b.read8(off) == 0xFF
        assert b.read16(off) == 0xFFFF


def test_the_os_reads_back_type_product_manufacturer_and_serial():
    b = board(serial=0x10ABCDEF)
    rom = decode_nibbles(b.read8)
    assert rom == bytes([0xC1, 0x70, 0, 0, 0x02, 0x02, 0x10, 0xAB, 0xCD, 0xEF, 0, 0, 0, 0, 0, 0])


def test_the_ameristar_variant_has_its_own_manufacturer_product_and_oui():
    b = board(variant="ameristar", serial=0x00ABCDEF)
    rom = decode_nibbles(b.read8)
    assert rom[0] == 0xC1 and rom[1] == 0x01 and rom[4:6] == b"\x04\x1d"
    assert b.mac == bytes.fromhex("00009fabcdef")


def test_the_mac_is_the_oui_followed_by_the_low_24_bits_of_the_serial():
    assert board(serial=0x10123456).mac == bytes.fromhex("008010123456")


def test_repeated_reads_of_the_whole_window_are_equal_and_change_nothing():
    b = board()
    first = [b.read16(o) for o in range(0, 0x100, 2)]
    for _ in range(12):
        assert [b.read16(o) for o in range(0, 0x100, 2)] == first
        assert [b.read8(o) for o in range(0, 0x100)] == [b.read8(o) for o in range(0, 0x100)]
    assert b.autoconfig.snapshot() == {"state": "unconfigured", "base": None, "latch": 0}


def test_writing_4a_then_48_configures_the_board_at_that_base_and_reports_it():
    seen = []
    b = board(on_configured=seen.append)
    b.write8(0x4A, 0x90)
    assert not b.configured and seen == []
    b.write8(0x48, 0xE9)
    assert b.configured and b.base == 0xE90000 and seen == [0xE90000]
    b.write16(0x8000, 0x1234)  # now offsets are relative to the base: RAM
    assert b.read16(0x8000) == 0x1234 and b.read8(0x0000) == 0


def test_the_low_nibble_latch_holds_the_last_4a_write_until_48():
    b = board()
    b.write8(0x4A, 0x30)
    b.read16(0x4A)
    b.write8(0x4A, 0xA0)
    b.write8(0x48, 0x20)
    assert b.base == 0x2A0000


def test_48_alone_uses_a_latch_of_zero_and_ignores_its_own_low_nibble():
    b = board()
    b.write8(0x48, 0xEF)
    assert b.base == 0xE00000


def test_a_word_write_at_48_configures_at_the_high_byte():
    b = board()
    b.write16(0x48, 0xEA00)
    assert b.configured and b.base == 0xEA0000


def test_a_word_write_at_4a_latches_d15_d12():
    b = board()
    b.write16(0x4A, 0x5000)
    b.write8(0x48, 0xE0)
    assert b.base == 0xE50000


def test_writes_elsewhere_in_the_window_change_nothing():
    b = board()
    image = [b.read16(o) for o in range(0, 0x80, 2)]
    for off in list(range(0, 0x48, 2)) + [0x50, 0x7E, 0x100, 0x8000]:
        b.write8(off, 0x5A)
        b.write16(off, 0xA5A5)
    assert not b.configured and not b.shut_up
    assert [b.read16(o) for o in range(0, 0x80, 2)] == image


@pytest.mark.parametrize("width", [8, 16, 32])
def test_a_write_at_4c_shuts_the_board_up(width):
    b = board()
    getattr(b, f"write{width}")(0x4C, 0)
    assert b.shut_up and not b.configured
    assert b.read16(0) == 0xFFFF and b.read8(0x8000) == 0xFF
    b.write8(0x48, 0xE9)
    assert not b.configured


def test_reset_returns_a_configured_board_to_the_window_and_keeps_its_ram():
    b = board()
    b.write16(0x48, 0xE900)
    b.write16(0x8000, 0xBEEF)
    b.reset()
    assert not b.configured and b.base is None
    assert b.read16(0) == 0xCFFF
    b.write16(0x48, 0xE900)
    assert b.read16(0x8000) == 0xBEEF


def test_reset_also_lifts_a_shut_up():
    b = board()
    b.write8(0x4C, 0)
    b.reset()
    assert not b.shut_up and b.read16(0) == 0xCFFF


def test_two_a2065s_configure_one_after_another_at_e80000():
    one, two = board(serial=1), board(serial=2)
    chain = ZorroChain([one, two])
    assert configure_all(chain) == [(0x0202, 0x70, 0xE90000), (0x0202, 0x70, 0xEA0000)]
    chain.write16(0xE98000, 0x1111)
    chain.write16(0xEA8000, 0x2222)
    assert one.ram[:2] == b"\x11\x11" and two.ram[:2] == b"\x22\x22"
    assert chain.read16(0xE80000) == 0xFFFF  # nobody left in the window
    assert one.mac != two.mac


def test_an_a2065_next_to_a_ram_card_configures_after_it():
    ram = RamCard(512 << 10)
    card = board()
    chain = ZorroChain([ram, card])
    placed = configure_all(chain)
    assert [p[2] for p in placed] == [0x200000, 0xE90000]
    chain.write32(0x27FFFC, 0xCAFEF00D)
    assert ram.ram[-4:] == bytes.fromhex("cafef00d")
    chain.write16(0xE94002, 0)
    assert chain.read16(0xE94000) == 0x0004  # CSR0 after reset: STOP


def test_a_shut_up_board_passes_the_window_to_the_next_one():
    first, second = board(serial=1), board(serial=2)
    chain = ZorroChain([first, second])
    chain.write8(0xE8004C, 0)
    assert chain.config_board() is second
    rom = decode_nibbles(lambda o: chain.read8(E_EXPANSIONBASE + o))
    assert rom[6:10] == b"\x00\x00\x00\x02"


def test_a_long_write_at_48_configures_one_board_and_its_low_word_reaches_the_next():
    first, second = board(), board()
    chain = ZorroChain([first, second])
    chain.write32(0xE80048, 0xE9005000)  # $48 <- E900, then $4A <- 5000 on the next board
    assert first.base == 0xE90000 and not second.configured
    chain.write8(0xE80048, 0xE0)
    assert second.base == 0xE50000


def test_a_chain_reset_puts_every_board_back_in_the_window_in_order():
    a, b = board(serial=1), board(serial=2)
    chain = ZorroChain([a, b])
    configure_all(chain)
    chain.reset()
    assert chain.config_board() is a and not b.configured


def test_addresses_nobody_decodes_read_all_ones_and_ignore_writes():
    chain = ZorroChain([board()])
    configure_all(chain)
    for addr in (0x000000, 0xE80000, 0xEA0000, 0xFFFFFF):
        chain.write16(addr, 0x1234)
        assert chain.read8(addr) == 0xFF and chain.read16(addr) == 0xFFFF
        assert chain.read32(addr) == 0xFFFFFFFF


def test_rom_bytes_builds_the_expansionrom_struct_in_order():
    assert rom_bytes(er_type=0xC1, product=0x70, manufacturer=0x0202, serial=0x01020304,
                     flags=0x40, init_diag_vec=0x1234) == bytes.fromhex(
        "c1704000" "0202" "01020304" "1234" "00000000")


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(serial=st.integers(0, 0xFFFFFFFF), variant=st.sampled_from(["commodore", "ameristar"]),
       base_byte=st.integers(0, 0xFF), word=st.booleans())
def test_any_serial_reads_back_and_any_base_byte_configures_exactly_there(
        serial, variant, base_byte, word):
    b = board(serial=serial, variant=variant)
    rom = decode_nibbles(b.read8)
    assert rom[6:10] == serial.to_bytes(4, "big") and rom[0] == 0xC1
    assert b.mac[3:] == (serial & 0xFFFFFF).to_bytes(3, "big")
    if word:
        b.write16(0x48, base_byte << 8)
    else:
        b.write8(0x4A, (base_byte & 0xF) << 4)
        b.write8(0x48, base_byte)
    assert b.configured and b.base == base_byte << 16


def test_a_chain_reports_the_earliest_deadline_the_wired_or_of_int2_and_every_edge():
    from a2065.drivers import LinuxA2065Driver
    a, b = A2065(serial=1), A2065(serial=2)
    chain = ZorroChain([a, b, RamCard(size=0x80000)])
    changes = []
    chain.watch_irq(lambda: changes.append(chain.irq_asserted))
    assert chain.next_deadline() is None and chain.now() == 0 and not chain.irq_asserted
    for base in (0xE9, 0xEA):                   # a, then b: each at the next base
        chain.write8(0xE8004A, 0)
        chain.write8(0xE80048, base)
    LinuxA2065Driver(b).open()                 # STRT: b polls its TX ring every 1.6 ms
    assert chain.next_deadline() == b.next_deadline() == 1_600_000
    b.lance.receive(b"\xff" * 6 + bytes(54))    # RINT with INEA: INT2 from b alone
    assert chain.irq_asserted and changes == [True]
    chain.advance_to(2_000_000)
    assert a.now == b.now == chain.now() == 2_000_000
