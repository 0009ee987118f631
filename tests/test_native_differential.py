"""The C core against its pure-Python twin (native/oracle.py): same frames byte for byte, or the
same error code, on generated super-packets; checksum and CRC against naive versions and zlib.

Also run under AddressSanitizer/UBSan by tests/test_native_api.py (tools/build_asan.sh).
"""
import array
import os
import random
import struct
import zlib

import pytest
from hypothesis import event, example, given, strategies as st

import native
from native import oracle
from tests import packets as P

# The C core is built by `make venv` with build-essential (always there); A2065_NATIVE=python
# switches it off on purpose, and then there is nothing to compare.
pytestmark = pytest.mark.skipif(
    os.environ.get("A2065_NATIVE", "").lower() == "python", reason="A2065_NATIVE=python forces the oracle"
)


def _paths():
    """Every checksum/CRC code path this CPU can run: (wide checksum, PCLMUL CRC)."""
    combos = [(w, c) for w in (True, False) for c in (True, False)]
    ok = []
    for w, c in combos:
        if native._set_impl(w, c):
            ok.append((w, c))
    native._set_impl(*ok[0])
    return ok


PATHS = _paths() if native.IMPLEMENTATION == "c" else [(False, False)]


def on_every_path(check):
    """Run check() once per checksum/CRC code path, then restore the default path."""
    try:
        for path in PATHS:
            native._set_impl(*path)
            check()
    finally:
        native._set_impl(*PATHS[0])


# --- checksum and CRC ------------------------------------------------------------------------


def naive_checksum(data: bytes, initial: int = 0) -> int:
    s = initial
    for i in range(0, len(data) - 1, 2):
        s += data[i] << 8 | data[i + 1]
    if len(data) % 2:
        s += data[-1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


blobs = st.one_of(
    st.binary(max_size=300),
    st.integers(0, 70000).flatmap(lambda n: st.integers(0, 2**32 - 1).map(
        lambda seed: random.Random(seed).randbytes(n))),
    st.integers(0, 70000).map(lambda n: b"\xff" * n),
    st.integers(0, 5000).map(lambda n: b"\0" * n),
)


@given(data=blobs, initial=st.one_of(st.just(0), st.integers(0, 2**32 - 1)),
       skip=st.integers(0, 7))
def test_checksum_equals_naive_sum_at_any_alignment_and_length(data, initial, skip):
    buf = bytearray(b"\xa5" * skip + data)
    view = memoryview(buf)[skip:]
    expect = naive_checksum(data, initial) if len(data) < 4096 else oracle.checksum(data, initial)
    assert oracle.checksum(data, initial) == expect

    def check():
        assert native.checksum(view, initial) == expect
        assert native.checksum(data, initial) == expect
    on_every_path(check)


@given(data=blobs, crc=st.one_of(st.just(0), st.integers(0, 2**32 - 1)), skip=st.integers(0, 15))
def test_crc32_equals_zlib_at_any_alignment_length_and_start_value(data, crc, skip):
    buf = bytearray(b"\x5a" * skip + data)
    view = memoryview(buf)[skip:]
    expect = zlib.crc32(data, crc)

    def check():
        assert native.crc32(view, crc) == expect
        assert native.crc32(data, crc) == expect
    on_every_path(check)


@given(data=st.binary(max_size=600), crc=st.integers(0, 2**32 - 1))
def test_oracle_crc32_equals_zlib(data, crc):
    assert oracle.crc32(data, crc) == zlib.crc32(data, crc)


def test_crc32_of_a_frame_with_its_fcs_leaves_the_ethernet_residue():
    frame = bytes(range(256)) * 6
    on_every_path(lambda: native.crc32(frame + native.fcs(frame)) == 0x2144DF1C or pytest.fail())


# --- generated super-packets -----------------------------------------------------------------


def _payload(n, seed):
    return random.Random(seed).randbytes(n)


ipv4_option_sets = st.lists(
    st.sampled_from([
        b"\x01",  # NOP (not copied)
        b"\x07\x07\x04\0\0\0\0",  # record route (not copied)
        b"\x83\x07\x04\x0a\0\0\x09",  # loose source route (copied)
        b"\x94\x04\0\0",  # router alert (copied)
        b"\x44\x08\x05\0\0\0\0\0",  # timestamp (not copied)
        b"\x82\x02",  # a copied option with no data
        b"\x99\x01",  # malformed length
        b"\x83",  # a type byte with no room for its length
        b"\0",  # EOL
    ]),
    max_size=6,
).map(lambda opts: (b"".join(opts) + b"\0" * 40)[:(len(b"".join(opts)) + 3) // 4 * 4][:40])

_ext = st.tuples(st.sampled_from([0, 43, 60]), st.integers(0, 30).map(lambda n: b"\x01" * n))
ext_chains = st.one_of(st.lists(_ext, max_size=3), st.lists(_ext, min_size=7, max_size=9))

lengths = st.one_of(
    st.integers(0, 120), st.integers(1300, 3100), st.integers(3000, 66000),
    st.sampled_from([1448, 1460, 1472, 1480, 1500, 65535 - 52, 64000]),
)


@st.composite
def super_packets(draw):
    """(frame, options) covering SPEC steps 1-9, then maybe corrupted or truncated."""
    version = draw(st.sampled_from([4, 6]))
    kind = draw(st.sampled_from(["tcp", "tcp", "udp", "udp", "other"]))
    ntags = draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 2, 3]))
    vlans = [(draw(st.sampled_from([0x8100, 0x88A8])), draw(st.integers(0, 0xFFFF)))
             for _ in range(ntags)]
    n = draw(lengths)
    payload = _payload(n, draw(st.integers(0, 2**16)))
    csum_kind = draw(st.sampled_from(["ok", "partial", "zero", 0x1234]))
    ip_kw = {}
    ipv6_kw = {}
    ext = []
    ip_options = b""
    if version == 4:
        ip_options = draw(ipv4_option_sets)
        ip_kw["ident"] = draw(st.integers(0, 0xFFFF))
        ip_kw["flags"] = draw(st.sampled_from([0, 0, 0, P.IP_DF, P.IP_DF, P.IP_DF, P.IP_MF, 0x8000]))
        ip_kw["frag_offset"] = draw(st.sampled_from([0] * 10 + [1, 0x1FFF]))
    else:
        ext = draw(ext_chains)
        if draw(st.integers(0, 9)) == 0:
            ext.append((44, b"\0" * 6))
    if kind == "tcp":
        frame = P.tcp_frame(
            payload, version=version, vlans=vlans, csum=csum_kind, ip_options=ip_options,
            ext_headers=ext, ip=ip_kw, ipv6_kw=ipv6_kw,
            tcp_options=draw(st.sampled_from([b"", P.ts_option(7, 9), b"\x01" * 40, b"\x02\x04\x05\xb4"])),
            flags=draw(st.integers(0, 255)), seq=draw(st.integers(0, 2**32 - 1)),
        )
    elif kind == "udp":
        frame = P.udp_frame(payload, version=version, vlans=vlans, csum=csum_kind,
                            ip_options=ip_options, ext_headers=ext, ip=ip_kw, ipv6_kw=ipv6_kw)
    else:
        proto = 1 if version == 4 else 58
        body = b"\x08\0\0\0" + payload
        if version == 4:
            frame = P.eth(P.ipv4(body, proto, options=ip_options, **ip_kw), 0x0800, vlans)
        else:
            frame = P.eth(P.ipv6(body, proto, ext_headers=ext), 0x86DD, vlans)
    frame = bytearray(frame)
    l3 = 14 + 4 * ntags
    # BIG TCP / jumbo style: length field 0 (meaningful only when the frame is over 64 KB)
    if draw(st.integers(0, 7 if len(frame) > 65535 else 30)) == 0 and len(frame) > l3 + 8:
        pos = l3 + 2 if version == 4 else l3 + 4
        frame[pos:pos + 2] = b"\0\0"
    if draw(st.integers(0, 5)) == 0:  # Ethernet padding after the IP packet
        frame += bytes(draw(st.integers(1, 64)))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):  # corruption of any byte
        if frame:
            pos = draw(st.integers(0, min(len(frame) - 1, 200))) if draw(st.booleans()) else \
                draw(st.integers(0, len(frame) - 1))
            frame[pos] = draw(st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:  # truncation anywhere
        frame = frame[:draw(st.integers(0, len(frame)))]
    opts = dict(
        gso_size=draw(st.one_of(st.just(0), st.integers(1, 2000), st.sampled_from([1448, 2**32 - 1]),
                                st.sampled_from([n, n + 1, max(n - 1, 1), max(n // 2, 1)]))),
        mss=draw(st.one_of(st.just(0), st.integers(1, 1600), st.sampled_from([536, 1460]))),
        csum=draw(st.sampled_from([0, 1, 2] * 7 + [3])),
        csum_start=draw(st.one_of(st.integers(0, 80), st.integers(0, 2**32 - 1))),
        csum_offset=draw(st.one_of(st.integers(0, 20), st.integers(0, 2**32 - 1))),
        append_fcs=draw(st.booleans()),
    )
    return bytes(frame), opts


def _run(fn, *args, **kw):
    try:
        return "ok", fn(*args, **kw)
    except native.SegmentError as exc:
        return "err", exc.code


def _oracle_or_limit(frame, opts):
    """The oracle, with the same output limit native.segment() has (SEGMENT_OUT_LIMIT)."""
    return _run(oracle.segment, frame, **opts)


@given(sp=super_packets())
@example(sp=(P.tcp_frame(b"x" * 64000, tcp_options=P.ts_option(), csum="partial"),
             dict(gso_size=1448, append_fcs=True)))
@example(sp=(P.udp_frame(b"x" * 6000, ip={"flags": 0}, ip_options=b"\x83\x03\x04\x01\x07\x03\x04\0"),
             dict()))
def test_segment_c_equals_oracle_on_generated_super_packets(sp):
    frame, opts = sp
    c = _run(native.segment, frame, **opts)
    py = _oracle_or_limit(frame, opts)
    event(f"frames={min(len(py[1]), 3)}" if py[0] == "ok" else f"error={py[1]}")
    if py[0] == "ok" and sum(map(len, py[1])) > native.SEGMENT_OUT_LIMIT:
        assert c == ("err", native.ERR_OUT_SPACE)
    else:
        assert c == py


@given(sp=super_packets(), out_cap=st.integers(0, 8000), table_cap=st.integers(0, 8))
def test_segment_into_small_buffers_fails_like_the_oracle_and_never_writes_past_them(sp, out_cap, table_cap):
    frame, opts = sp
    guard = 64
    out = bytearray(b"\xee" * (out_cap + guard))
    table = array.array("I", [0xEEEEEEEE] * (2 * table_cap + 4))
    c_out = memoryview(out)[:out_cap]
    c_tab = memoryview(table)[:2 * table_cap]
    c = _run(native.segment_into, frame, c_out, c_tab, **opts)
    py = _run(oracle.segment, frame, out_cap=out_cap, table_cap=table_cap, **opts)
    if py[0] == "ok":
        assert c == ("ok", len(py[1]))
        off = 0
        for i, f in enumerate(py[1]):
            assert (table[2 * i], table[2 * i + 1]) == (off, len(f))
            assert out[off:off + len(f)] == f
            off += len(f)
    else:
        assert c == py
    assert out[out_cap:] == b"\xee" * guard
    assert list(table[2 * table_cap:]) == [0xEEEEEEEE] * 4


@given(sp=super_packets())
def test_segment_is_the_same_on_every_checksum_and_crc_path(sp):
    frame, opts = sp
    results = set()

    def check():
        r = _run(native.segment, frame, **opts)
        results.add((r[0], tuple(r[1]) if r[0] == "ok" else r[1]))
    on_every_path(check)
    assert len(results) == 1


def test_segmenter_reuses_its_buffers_and_matches_segment():
    s = native.Segmenter()
    frame = P.tcp_frame(b"q" * 20000, tcp_options=P.ts_option())
    out_id = id(s.out)
    for _ in range(3):
        n = s.run(frame, append_fcs=True)
        assert s.frames(n) == native.segment(frame, append_fcs=True)
        assert [bytes(v) for v in s.views(n)] == s.frames(n)
    assert id(s.out) == out_id


def test_segment_grows_its_buffers_for_many_small_segments():
    frame = P.tcp_frame(b"z" * 30000)
    frames = native.segment(frame, gso_size=10, append_fcs=True)
    assert frames == oracle.segment(frame, gso_size=10, append_fcs=True)
    assert len(frames) == 3000


def test_memoryview_and_bytearray_inputs_give_the_same_result_as_bytes():
    frame = P.udp_frame(b"m" * 4000, version=6)
    expect = native.segment(frame, gso_size=1000)
    assert native.segment(bytearray(frame), gso_size=1000) == expect
    assert native.segment(memoryview(frame), gso_size=1000) == expect
    assert struct.unpack("!H", expect[0][18:20])[0] == 1008  # IPv6 payload length


def _exact(data):
    """A C buffer of exactly len(data) bytes (bytes objects carry a hidden NUL past their end, so
    only exact allocations let AddressSanitizer see a one-byte overrun)."""
    buf = native.ffi.new("uint8_t[]", max(len(data), 1))
    native.ffi.memmove(buf, data, len(data))
    return buf


@given(sp=super_packets(), shrink=st.sampled_from([0, 0, 1, 17]))
def test_segment_stays_inside_exactly_sized_input_output_and_table(sp, shrink):
    frame, opts = sp
    want = _run(oracle.segment, frame, **opts)
    if want[0] == "ok":
        total = sum(map(len, want[1]))
        out_cap, table_cap = max(total - shrink, 0), len(want[1])
    else:
        out_cap, table_cap = 2000, 3
    lib, ffi = native.lib, native.ffi
    out = ffi.new("uint8_t[]", max(out_cap, 1))
    table = ffi.new("uint32_t[]", max(2 * table_cap, 1))
    r = lib.a2065_segment(_exact(frame), len(frame), opts["gso_size"], opts["mss"], opts["csum"],
                          opts["csum_start"], opts["csum_offset"], int(opts["append_fcs"]), out,
                          out_cap, table, table_cap)
    if want[0] == "ok" and shrink == 0:
        assert r == len(want[1])
        assert ffi.buffer(out, out_cap)[:] == b"".join(want[1])
    elif want[0] == "ok":
        assert r == native.ERR_OUT_SPACE
    else:
        assert r == want[1]  # parse errors come before any output


@given(data=blobs, skip=st.integers(0, 3))
def test_checksum_and_crc_stay_inside_exactly_sized_buffers(data, skip):
    data = data[skip:]
    buf = _exact(data)

    def check():
        assert native.lib.a2065_checksum(buf, len(data), 0) == oracle.checksum(data)
        assert native.lib.a2065_crc32(buf, len(data), 0) == zlib.crc32(data)
    on_every_path(check)


def test_checksum_over_a_megabyte_flushes_its_wide_lanes_correctly():
    data = b"\xff\xfe" * (1 << 19) + b"\x01"  # every lane near its maximum, > 8192 vectors
    expect = oracle.checksum(data, 5)
    on_every_path(lambda: native.checksum(data, 5) == expect or pytest.fail())


# --- LANCE descriptor paths (native/SPEC.md "LANCE descriptor paths") ---------------------------

lance_sizes = st.sampled_from([8, 64, 4096, 32768])


@st.composite
def lance_rams(draw):
    """A power-of-two RAM of random bytes with a descriptor at ``desc`` biased towards owned,
    single-buffer (STP|ENP) descriptors whose buffers sometimes run past the end."""
    size = draw(lance_sizes)
    ram = bytearray(random.Random(draw(st.integers(0, 2**32))).randbytes(size))
    desc = draw(st.one_of(st.integers(0, 2**24 - 1), st.integers(0, size // 8).map(lambda i: 8 * i)))
    if draw(st.booleans()) and size >= 8:
        a = desc & (size - 1)
        if a <= size - 8:
            buf = draw(st.integers(0, 2**24 - 1))
            bcnt = draw(st.one_of(st.integers(0, 4096), st.sampled_from([60, 64, 1518, 1544, 4096])))
            w1 = 0x8000 | (draw(st.sampled_from([0x0300, 0x0200, 0x0100, 0x0000])) if
                           draw(st.booleans()) else 0x0300) | (buf >> 16 & 0xFF)
            w1 |= draw(st.sampled_from([0, 0x4000, 0x5C00, 0x2000]))
            struct.pack_into(">4H", ram, a, buf & 0xFFFF, w1, (-bcnt) & 0xFFF | 0xF000,
                             draw(st.integers(0, 0xFFFF)))
    return size, ram, desc


@given(r=lance_rams(), frame=st.one_of(st.binary(max_size=80), st.integers(0, 4200).map(bytes)))
def test_lance_rx_store_writes_the_same_ram_and_returns_the_same_as_the_oracle(r, frame):
    size, ram, desc = r
    py = bytearray(ram)
    expect = oracle.lance_rx_store(py, size, desc, frame, len(frame))
    ffi = native.ffi
    c = bytearray(ram)
    got = native.lib.a2065_lance_rx_store(ffi.from_buffer(c), size, desc, frame, len(frame))
    assert got == expect and c == py
    if expect > 0:  # the frame and its FCS in the buffer, RMD3 = MCNT
        a = desc & (size - 1)
        w0, w1, _, _ = struct.unpack_from(">4H", ram, a)  # as read before the store
        b = ((w1 & 0xFF) << 16 | w0) & (size - 1)
        assert struct.unpack_from(">3H", py, a + 2) == (
            (w1 & 0xFF) | 0x0300, struct.unpack_from(">H", ram, a + 4)[0], len(frame) + 4)
        assert expect == len(frame) + 4
        if b + expect <= a or b >= a + 8:  # (a buffer over its own RMD is overwritten by it)
            stored = py[b:b + expect]
            assert stored[:len(frame)] == frame and zlib.crc32(stored) == 0x2144DF1C
    else:
        assert py == ram


@given(r=lance_rams(), add_fcs=st.booleans())
def test_lance_tx_take_copies_the_same_frame_and_returns_the_same_as_the_oracle(r, add_fcs):
    size, ram, desc = r
    out_py, out_c = bytearray(4100), bytearray(4100)
    expect = oracle.lance_tx_take(ram, size, desc, add_fcs, out_py, len(out_py))
    ffi = native.ffi
    before = bytes(ram)
    got = native.lib.a2065_lance_tx_take(ffi.from_buffer(ram), size, desc, add_fcs,
                                         ffi.from_buffer(out_c), len(out_c))
    assert got == expect and bytes(ram) == before
    if expect > 0:
        n = expect & 0xFFFF
        assert out_c[:n] == out_py[:n]
        a = desc & (size - 1)
        w0, w1, w2, _ = struct.unpack_from(">4H", ram, a)
        assert expect >> 16 == w2 << 16 | w1
        b = ((w1 & 0xFF) << 16 | w0) & (size - 1)
        bcnt = (-w2) & 0xFFF or 4096
        assert out_c[:bcnt] == ram[b:b + bcnt] and n == bcnt + (4 if add_fcs else 0)
        if add_fcs:
            assert zlib.crc32(out_c[:n]) == 0x2144DF1C


def test_lance_paths_refuse_bad_arguments_and_store_a_pinned_frame():
    ffi, lib = native.ffi, native.lib
    ram = bytearray(32768)
    out = bytearray(4100)
    for f, args in ((lib.a2065_lance_rx_store, (ffi.NULL, 32768, 0, b"x" * 60, 60)),
                    (lib.a2065_lance_rx_store, (ffi.from_buffer(ram), 24576, 0, b"x" * 60, 60)),
                    (lib.a2065_lance_tx_take, (ffi.from_buffer(ram), 32768, 0, 1,
                                               ffi.from_buffer(out), 4099))):
        assert f(*args) == native.ERR_ARG
    assert oracle.lance_rx_store(ram, 24576, 0, b"x" * 60, 60) == native.ERR_ARG
    assert oracle.lance_tx_take(ram, 32768, 0, True, out, 4099) == native.ERR_ARG
    # RMD at 0x18: buffer 0x00B8, OWN, BCNT 1544 (0xF9F8); a 60-byte frame -> MCNT 64
    struct.pack_into(">4H", ram, 0x18, 0x00B8, 0x8000, 0xF9F8, 0)
    frame = bytes(range(60))
    assert lib.a2065_lance_rx_store(ffi.from_buffer(ram), 32768, 0x8018, frame, 60) == 64
    assert struct.unpack_from(">4H", ram, 0x18) == (0x00B8, 0x0300, 0xF9F8, 64)
    assert ram[0xB8:0xB8 + 64] == frame + zlib.crc32(frame).to_bytes(4, "little")
    # not owned any more: nothing written
    assert lib.a2065_lance_rx_store(ffi.from_buffer(ram), 32768, 0x8018, frame, 60) == 0
