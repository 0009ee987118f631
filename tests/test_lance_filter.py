"""Address filter and LADRF hash (ref: reference §6)."""
from hypothesis import given, strategies as st

from lance import MODE, RxStatus
from lance.filter import BROADCAST, accepts, ladrf_from_addresses, ladrf_hash, ladrf_words
from lance.testing import MAC, Rig, frame


def crc_le_bitwise(data):
    """CRC-32, reflected poly 0xEDB88320, init all ones, no final inversion: the hash the
    Linux driver builds its multicast table with (computed bit by bit from the definition)."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(8):
            if (crc ^ (byte >> bit)) & 1:
                crc = (crc >> 1) ^ 0xEDB88320
            else:
                crc >>= 1
    return crc


def linux_style_table(addresses):
    table = [0, 0, 0, 0]
    for a in addresses:
        h = crc_le_bitwise(a) >> 26
        table[h >> 4] |= 1 << (h & 15)
    return tuple(table)


@given(st.binary(min_size=6, max_size=6))
def test_ladrf_hash_equals_the_noninverted_reflected_crc_top_six_bits(dst):
    assert ladrf_hash(dst) == crc_le_bitwise(dst) >> 26


@given(st.lists(st.binary(min_size=6, max_size=6), max_size=8))
def test_ladrf_words_match_the_linux_multicast_table_construction(addrs):
    assert ladrf_words(ladrf_from_addresses(addrs)) == linux_style_table(addrs)


def test_all_hosts_group_hashes_to_a_known_bit():
    # 01:00:5e:00:00:01 -> CRC-LE top bits, computed independently above
    a = bytes.fromhex("01005e000001")
    assert ladrf_hash(a) == crc_le_bitwise(a) >> 26


def test_unicast_to_padr_is_accepted():
    assert accepts(MAC, MAC, 0, False)


def test_unicast_to_another_address_is_rejected():
    assert not accepts(bytes.fromhex("008010123457"), MAC, 0, False)


def test_broadcast_is_always_accepted_even_with_ladrf_zero():
    assert accepts(BROADCAST, MAC, 0, False)


def test_multicast_is_rejected_when_its_ladrf_bit_is_clear():
    g = bytes.fromhex("01005e000001")
    assert not accepts(g, MAC, 0, False)
    assert not accepts(g, MAC, ~(1 << ladrf_hash(g)) & (2**64 - 1), False)


def test_multicast_is_accepted_when_its_ladrf_bit_is_set():
    g = bytes.fromhex("01005e000001")
    assert accepts(g, MAC, 1 << ladrf_hash(g), False)


def test_prom_accepts_everything():
    assert accepts(bytes.fromhex("0a0b0c0d0e0f"), MAC, 0, True)
    assert accepts(bytes.fromhex("0b0b0c0d0e0f"), MAC, 0, True)


def test_a_group_address_equal_to_padr_with_the_ig_bit_is_not_unicast():
    g = bytes([MAC[0] | 1]) + MAC[1:]
    assert not accepts(g, MAC, 0, False)


def test_chip_filters_foreign_unicast_and_counts_it():
    r = Rig()
    r.init()
    assert r.chip.receive(frame(dst=bytes.fromhex("020000000099"))) is RxStatus.FILTERED
    assert r.chip.counters.rx_filtered == 1 and r.chip.rx_ring[2] == 0


def test_chip_accepts_hashed_multicast_through_the_init_block_ladrf():
    g = bytes.fromhex("333300000001")
    r = Rig(ladrf=ladrf_from_addresses([g]))
    r.init()
    assert r.chip.receive(frame(dst=g)) is RxStatus.ACCEPTED
    other = next(bytes([0x33, 0x33, 0, 0, 0, i]) for i in range(2, 256)
                 if ladrf_hash(bytes([0x33, 0x33, 0, 0, 0, i])) != ladrf_hash(g))
    assert r.chip.receive(frame(dst=other)) is RxStatus.FILTERED


def test_chip_in_prom_mode_accepts_foreign_unicast():
    r = Rig(mode=MODE.PROM)
    r.init()
    assert r.chip.receive(frame(dst=bytes.fromhex("020000000099"))) is RxStatus.ACCEPTED


def test_chip_with_all_ones_ladrf_accepts_every_multicast():
    r = Rig(ladrf=2**64 - 1)
    r.init()
    for i in range(20):
        assert r.chip.receive(frame(dst=bytes([1, 2, 3, 4, 5, i]))) is not RxStatus.FILTERED
        r.give_back_rx(r.chip.rx_ring[2] - 1 & 3)


addresses = st.one_of(
    st.just(MAC), st.just(BROADCAST), st.binary(min_size=6, max_size=6),
    st.binary(min_size=5, max_size=5).map(lambda b: b"\x01" + b),  # group addresses
)


@given(dst=addresses, ladrf=st.integers(0, 2**64 - 1), prom=st.booleans(), bswp=st.booleans(),
       timing=st.sampled_from(["fast", "wire"]))
def test_the_chip_takes_exactly_the_frames_the_filter_function_accepts(dst, ladrf, prom, bswp,
                                                                      timing):
    r = Rig(ladrf=ladrf, mode=MODE.PROM if prom else 0, bswp=bswp, timing=timing)
    r.init()
    st_ = r.chip.receive(frame(dst=dst, length=100))
    assert (st_ is not RxStatus.FILTERED) == accepts(dst, MAC, ladrf, prom)


def test_a_restored_chip_filters_with_the_restored_padr_and_ladrf():
    g = bytes.fromhex("01005e0000fb")
    r = Rig(padr=bytes.fromhex("020000000042"), ladrf=1 << ladrf_hash(g))
    r.init()
    fresh = Rig()
    fresh.init()
    fresh.chip.restore(r.chip.snapshot())
    assert fresh.chip.receive(frame(dst=g)) is RxStatus.ACCEPTED
    assert fresh.chip.receive(frame(dst=bytes.fromhex("020000000042"))) is RxStatus.ACCEPTED
    assert fresh.chip.receive(frame(dst=MAC)) is RxStatus.FILTERED


def test_a_destination_shorter_than_six_bytes_is_taken_only_in_prom():
    assert not accepts(b"\x01\x02", MAC, 2**64 - 1, False)
    assert accepts(b"\x01\x02", MAC, 0, True)
