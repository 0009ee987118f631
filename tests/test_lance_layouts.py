"""construct layouts (cold path) and struct codecs (hot path) agree; BCNT encoding."""
from hypothesis import given, strategies as st

from lance.layouts import (
    INIT_BLOCK, RMD, TMD, bcnt_word, buffer_length, decode_init, decode_rmd, decode_tmd,
    descriptor_summary, encode_init,
)


def plain(c):
    """construct Container -> plain dict (dropping construct's private keys)."""
    if isinstance(c, dict):
        return {k: plain(v) for k, v in c.items() if not k.startswith("_")}
    if isinstance(c, list):
        return [plain(v) for v in c]
    return c


@given(st.binary(min_size=8, max_size=8))
def test_construct_and_struct_decode_receive_descriptors_alike(b):
    assert plain(RMD.parse(b)) == decode_rmd(b)


@given(st.binary(min_size=8, max_size=8))
def test_construct_and_struct_decode_transmit_descriptors_alike(b):
    assert plain(TMD.parse(b)) == decode_tmd(b)


@given(st.binary(min_size=8, max_size=8))
def test_construct_layouts_rebuild_the_same_descriptor_bytes(b):
    assert RMD.build(RMD.parse(b)) == b
    assert TMD.build(TMD.parse(b)) == b


@given(st.binary(min_size=24, max_size=24))
def test_construct_and_struct_decode_init_blocks_alike(b):
    c = INIT_BLOCK.parse(b)
    s = decode_init(b)
    assert c.mode == s["mode"]
    padr = b"".join(bytes((w & 0xFF, w >> 8)) for w in c.padr)
    assert padr == s["padr"]
    assert sum(w << (16 * i) for i, w in enumerate(c.ladrf)) == s["ladrf"]
    assert ((c.rlen.addr_hi << 16) | c.rdra_lo) & ~7 == s["rdra"]
    assert 1 << c.rlen.len_log2 == s["rlen"]
    assert ((c.tlen.addr_hi << 16) | c.tdra_lo) & ~7 == s["tdra"]
    assert 1 << c.tlen.len_log2 == s["tlen"]


@given(st.integers(0, 0xFFFF), st.binary(min_size=6, max_size=6), st.integers(0, 2**64 - 1),
       st.integers(0, 0xFFFFFF), st.integers(0, 7), st.integers(0, 0xFFFFFF), st.integers(0, 7))
def test_encode_init_round_trips_through_decode(mode, padr, ladrf, rdra, rl, tdra, tl):
    d = decode_init(encode_init(mode=mode, padr=padr, ladrf=ladrf, rdra=rdra, rlen=1 << rl,
                                tdra=tdra, tlen=1 << tl))
    assert d == {"mode": mode, "padr": padr, "ladrf": ladrf, "rdra": rdra & ~7,
                 "rlen": 1 << rl, "tdra": tdra & ~7, "tlen": 1 << tl}


def test_bcnt_is_the_twos_complement_of_the_length_with_ones_on_top():
    assert bcnt_word(1544) == 0xF9F8
    assert buffer_length(0xF9F8) == 1544


def test_bcnt_zero_decodes_as_4096():
    assert buffer_length(0xF000) == 4096


@given(st.integers(1, 4096))
def test_bcnt_round_trips_for_every_length(n):
    assert buffer_length(bcnt_word(n)) == n


@given(st.binary(min_size=8, max_size=8))
def test_the_ring_summary_reads_the_same_fields_as_the_descriptor_layouts(b):
    c = RMD.parse(b)
    d = descriptor_summary(b)
    assert d["addr"] == (c.rmd1.hadr << 16) | c.ladr
    assert d["own"] == c.rmd1.own == TMD.parse(b).tmd1.own
    assert d["length"] == buffer_length(b[4] << 8 | b[5])
    assert d["word3"] == int.from_bytes(b[6:8], "big") and d["status"] == b[2]


def test_descriptor_words_are_big_endian_an_owned_rmd_reads_as_owned():
    d = descriptor_summary(bytes.fromhex("80b8 8000 f9f8 0000"))
    assert d == {"addr": 0x0080B8, "own": True, "status": 0x80, "length": 1544, "word3": 0}
