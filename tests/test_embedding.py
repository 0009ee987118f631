"""Embedding guides the user (issue 16): MACs print as people write them, and a wrong constructor
argument is refused at once with a message that says what to pass."""
from __future__ import annotations

import pickle

import pytest

from a2065 import A2065, MacAddress, RamCard, ZorroChain, mac_for
from a2065.adapters.generic import GenericAdapter
from pcap_backend import Bridge, VirtualCable


def test_a_cards_mac_prints_as_colon_hex_and_still_equals_its_six_bytes():
    mac = A2065(serial=0x00123456).mac
    assert str(mac) == "00:80:10:12:34:56" and f"{mac}" == "00:80:10:12:34:56"
    assert repr(mac) == "MacAddress('00:80:10:12:34:56')"
    assert mac == bytes.fromhex("008010123456") and hash(mac) == hash(bytes.fromhex("008010123456"))
    assert isinstance(mac, bytes) and mac[3:] == b"\x12\x34\x56"
    assert pickle.loads(pickle.dumps(mac)) == mac and str(pickle.loads(pickle.dumps(mac))) == str(mac)


def test_the_ameristar_oui_and_any_serial_print_the_same_way():
    assert str(mac_for(0x00ABCDEF, "ameristar")) == "00:00:9f:ab:cd:ef"
    assert str(A2065(serial=0x10ABCDEF).mac) == "00:80:10:ab:cd:ef"   # low 24 bits (W's top byte 0x10)


@pytest.mark.parametrize("text", ["00:80:10:12:34:56", "00-80-10-12-34-56", "008010123456",
                                  "00:80:10:12:34:56 "])
def test_a_mac_address_parses_the_usual_spellings(text):
    assert MacAddress(text) == bytes.fromhex("008010123456")


@pytest.mark.parametrize("bad, error", [("00:80:10:12:34", ValueError), ("00:80:10:12:34:5g", ValueError),
                                        ("00:80-10:12:34:56", ValueError), (b"\x00" * 5, ValueError),
                                        (0x008010123456, TypeError)])
def test_a_mac_address_refuses_what_is_not_six_bytes_and_says_how_to_write_one(bad, error):
    with pytest.raises(error, match="00:80:10:12:34:56|6 bytes"):
        MacAddress(bad)


@pytest.mark.parametrize("serial", [2**40, 2**32, -1])
def test_a_serial_outside_the_32_bit_er_serialnumber_is_refused_with_what_to_pass(serial):
    with pytest.raises(ValueError, match=r"0\.\.0xFFFFFFFF.*00:80:10:12:34:56"):
        A2065(serial=serial)
    with pytest.raises(ValueError, match=r"0\.\.0xFFFFFFFF"):
        mac_for(serial)


@pytest.mark.parametrize("serial", ["0x123456", 1.5, None, True])
def test_a_serial_that_is_not_an_int_is_a_type_error_with_an_example(serial):
    with pytest.raises(TypeError, match="serial=0x00123456"):
        A2065(serial=serial)


def test_the_largest_serial_still_works_and_gives_the_low_24_bits():
    assert A2065(serial=0xFFFFFFFF).mac == bytes.fromhex("008010ffffff")


def test_a_single_card_where_the_adapter_wants_a_list_says_pass_a_list():
    card = A2065()
    with pytest.raises(TypeError, match=r"pass \[card\]"):
        GenericAdapter(card, cpu_hz=7_093_790)
    with pytest.raises(TypeError, match=r"pass \[card\]"):
        ZorroChain(card)


def test_the_chip_where_the_adapter_wants_a_board_says_pass_the_card():
    card = A2065()
    with pytest.raises(TypeError, match="card's chip: pass the card itself"):
        GenericAdapter([card.lance], cpu_hz=7_093_790)
    with pytest.raises(TypeError, match=r"list of boards.*int"):
        ZorroChain(7)


def test_a_list_of_boards_still_builds_the_chain_in_order():
    one, ram = A2065(serial=1), RamCard()
    assert GenericAdapter([one, ram], cpu_hz=7_093_790).chain.boards == [one, ram]
    assert GenericAdapter((b for b in [one]), cpu_hz=7_093_790).chain.boards == [one]


def test_the_board_where_the_bridge_wants_the_chip_says_pass_card_lance():
    card = A2065()
    _, end = VirtualCable.pair()
    with pytest.raises(TypeError, match=r"pass Bridge\(backend, card\.lance\)"):
        Bridge(end, card)
    with pytest.raises(TypeError, match=r"no receive, rx_ready, rx_idle_at.*card\.lance"):
        Bridge(end, object())
    assert Bridge(end, card.lance).chip is card.lance


def test_the_readmes_configure_writes_bring_the_card_up_and_it_receives_a_frame():
    """README "The configure writes", step by step, through the bus as a CPU would do them."""
    from lance.layouts import bcnt_word, encode_desc, encode_init

    card = A2065(serial=0x00123456, strict=True)
    zorro = GenericAdapter([card], cpu_hz=7_093_790)
    assert zorro.read16(0xE80000) >> 12 == 0xC                    # er_Type $C1, high nibble
    zorro.write16(0xE80048, 0xE900)                                 # 1. base $E90000
    assert card.configured and card.base == 0xE90000
    base = card.base

    def csr(n, v):
        zorro.write16(base + 0x4002, n)                             # RAP
        zorro.write16(base + 0x4000, v)                             # RDP

    csr(0, 0x0004)                                                  # 2. STOP
    csr(1, 0x8000)
    csr(2, 0x0000)
    csr(3, 0x0004)                                                  # BSWP
    rx_ring, rx_buf = 0x8018, 0x8100                                # 3. LANCE addresses
    block = encode_init(mode=0, padr=card.mac, ladrf=0, rdra=rx_ring, rlen=1, tdra=0x8020, tlen=1)
    desc = encode_desc(rx_buf & 0xFFFF, 0x8000 | (rx_buf >> 16), bcnt_word(1536), 0)
    for i in range(0, 24, 2):
        zorro.write16(base + 0x8000 + i, int.from_bytes(block[i:i + 2], "big"))
    for i in range(0, 8, 2):
        zorro.write16(base + 0x8018 + i, int.from_bytes(desc[i:i + 2], "big"))
    csr(0, 0x0001)                                                  # 4. INIT
    assert zorro.read16(base + 0x4000) & 0x0100                     # IDON
    csr(0, 0x0100)
    csr(0, 0x0042)                                                  # INEA | STRT
    frame = bytes(card.mac) + bytes.fromhex("020000000001") + b"\x88\xb5" + bytes(range(46))
    card.lance.receive(frame)
    zorro.catch_up(1_000_000)
    assert zorro.irq_level() == 2 and zorro.read16(base + 0x4000) & 0x0400      # INT2, RINT
    assert bytes(card.ram[0x100:0x100 + len(frame)]) == frame
