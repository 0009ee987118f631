"""a2065.strategies, the public hypothesis strategies: what they generate, and the card (and the
Linux-style driver) under them, the way a user fuzzing their own driver would use them."""
from __future__ import annotations

import zlib

import pytest
from hypothesis import find, given, strategies as st

from a2065 import A2065
from a2065.drivers import LinuxA2065Driver
from a2065.strategies import (BROADCAST, BUS_READS, CARD_MAC, RAM_LANCE_BASE, RingImage, bus_ops,
                              frames, hostile_rings, register_ops, run_bus_ops, run_register_ops)
from lance.layouts import decode_init


@given(frames())
def test_frames_are_ethernet_frames_between_14_and_1514_bytes_with_a_unicast_source(f):
    assert 14 <= len(f) <= 1514
    assert f[6] & 1 == 0                      # source: never a group address


@given(frames(min_size=60, max_size=64, fcs=True))
def test_frames_with_fcs_carry_the_ieee_crc_32_of_the_frame_little_endian(f):
    assert 64 <= len(f) <= 68
    assert f[-4:] == zlib.crc32(f[:-4]).to_bytes(4, "little")


@pytest.mark.parametrize("who, to_them", [
    ("the card", lambda d: d == bytes(CARD_MAC)),
    ("broadcast", lambda d: d == bytes(BROADCAST)),
    ("a multicast group", lambda d: d[0] & 1 and d != bytes(BROADCAST)),
    ("another station", lambda d: not d[0] & 1 and d != bytes(CARD_MAC)),
])
def test_frames_go_to_the_card_broadcast_multicast_and_other_stations(who, to_them):
    assert to_them(find(frames(), lambda f: to_them(f[:6]))[:6])


def test_frames_refuse_a_size_range_that_is_not_an_ethernet_frame():
    with pytest.raises(ValueError, match="min_size"):
        frames(min_size=10)
    with pytest.raises(ValueError, match="min_size"):
        frames(min_size=100, max_size=60)


def test_the_op_runners_refuse_an_op_they_do_not_know():
    card = A2065(strict=True)
    with pytest.raises(ValueError, match="not a bus op"):
        list(run_bus_ops(card, [("r64", 0)]))
    with pytest.raises(ValueError, match="not a register op"):
        list(run_register_ops(card.lance, card.ram, [("jump", 0)]))


@given(hostile_rings())
def test_a_hostile_ring_image_holds_its_init_block_where_it_says(image):
    assert isinstance(image, RingImage) and len(image.ram) == 32768
    off = image.iadr - RAM_LANCE_BASE
    assert 0 <= off <= 32768 - 24 and off % 2 == 0
    assert decode_init(image.ram[off:off + 24]) == image.init
    assert len(repr(image)) < 400             # a failing example stays readable


@given(image=hostile_rings(), arriving=st.lists(frames(max_size=1600), max_size=12),
       steps=st.lists(st.integers(0, 3_000_000), max_size=6), timing=st.sampled_from(["fast", "wire"]))
def test_the_card_started_on_any_hostile_rings_never_raises_and_keeps_its_books(
        image, arriving, steps, timing):
    sent = []
    card = A2065(strict=True, timing=timing, transmit=lambda f, t: sent.append(len(f)) or True)
    card.write16(0x48, 0xE900)                            # configure at $E90000
    image.load_into(card.ram)
    image.start(card.lance)
    chip = card.lance
    # the chip read the init block from the address CSR1/CSR2 gave it
    assert chip.iadr == image.iadr and chip.mode == image.init["mode"]
    assert chip.padr == image.init["padr"] and chip.ladrf == image.init["ladrf"]
    for f in arriving:
        chip.receive(f)
        assert chip.counters_balanced()
    for dt in steps:
        card.advance_to(card.now + dt)
        assert chip.counters_balanced()
    assert len(card.ram) == 32768 and card.stats["chip_errors"] == 0
    assert all(n <= 32768 + 4 for n in sent)              # a TX gather never exceeds the RAM
    assert chip.irq_asserted == bool(chip.csr0 & 0x80 and chip.csr0 & 0x40)


@given(st.lists(frames(dst=CARD_MAC, min_size=60), min_size=1, max_size=40))
def test_the_linux_style_driver_receives_every_frame_sent_to_its_mac_intact_and_in_order(arriving):
    card = A2065(serial=0x00123456, strict=True)
    drv = LinuxA2065Driver(card)
    drv.open()
    for f in arriving:
        card.lance.receive(f)
        drv.interrupt()
    assert list(drv.received) == arriving
    assert drv.counters.rx_errors_total == 0


@given(register_ops(max_size=30))
def test_register_ops_on_a_running_card_never_raise_or_grow_the_ram(ops):
    card = A2065(strict=True)
    LinuxA2065Driver(card).open()
    for op, value in run_register_ops(card.lance, card.ram, ops):
        assert value is None or 0 <= value <= 0xFFFF
        assert len(card.ram) == 32768 and card.lance.counters_balanced()


@given(bus_ops(max_size=60))
def test_bus_ops_read_values_that_fit_the_access_width(ops):
    card = A2065(strict=True)
    card.write16(0x48, 0xE900)
    for op, value in run_bus_ops(card, ops, now=card.now):
        if op[0] in BUS_READS:
            assert 0 <= value < 1 << int(op[0][1:])
        else:
            assert value is None
