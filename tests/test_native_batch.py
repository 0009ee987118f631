"""The native core's batch and hot-path APIs: fcs_frames, Segmenter.take, the 128-bit and 256-bit
carry-less CRC paths and the aligned/fused checksum paths against zlib and the oracle.

(tests/test_native_differential.py covers the default paths; here every selectable CRC level,
including the 128-bit PCLMULQDQ path that a CPU with VPCLMULQDQ does not choose by default.)
"""
import array
import os
import random
import zlib

import pytest

import native
from native import oracle
from tests import packets as P

C = native.IMPLEMENTATION == "c"


def _levels():
    """(wide checksum, crc level) pairs this CPU can run; crc level 2 = 128-bit PCLMULQDQ."""
    if not C:
        return [(False, False)]
    ok = [(w, c) for w in (True, False) for c in (1, 2, 0) if native._set_impl(w, c)]
    native._set_impl(True, True) or native._set_impl(False, False)
    return ok


LEVELS = _levels()


@pytest.fixture(params=LEVELS, ids=lambda p: f"wide{int(p[0])}-crc{int(p[1])}")
def level(request):
    if C:
        assert native._set_impl(*request.param)
    yield request.param
    if C:
        native._set_impl(True, True) or native._set_impl(False, False)


def test_crc32_equals_zlib_for_every_length_up_to_600_and_frame_sizes(level):
    rng = random.Random(7)
    buf = rng.randbytes(70000)
    for n in list(range(0, 600)) + [1514, 1518, 4095, 4096, 65535, 65536, 69000]:
        for skip in (0, 1, 13, 31):
            data = buf[skip:skip + n]
            assert native.crc32(memoryview(buf)[skip:skip + n], 0x1234) == zlib.crc32(data, 0x1234), (n, skip)


def test_checksum_equals_oracle_at_every_alignment(level):
    rng = random.Random(8)
    buf = bytearray(rng.randbytes(70000))
    for n in (0, 1, 2, 127, 128, 129, 1499, 1500, 1501, 65535, 65536):
        for skip in range(0, 34):
            v = memoryview(buf)[skip:skip + n]
            assert native.checksum(v, 5) == oracle.checksum(bytes(v), 5), (n, skip)


SUPERS = [
    (P.tcp_frame(random.Random(1).randbytes(64000), tcp_options=P.ts_option()), dict(gso_size=1448)),
    (P.tcp_frame(random.Random(2).randbytes(30001), version=6, csum="partial"),
     dict(mss=1000, csum=native.CSUM_PARTIAL)),
    (P.tcp_frame(random.Random(3).randbytes(9999), vlans=[(0x8100, 5)], ip_options=b"\x94\x04\0\0"), dict()),
    (P.udp_frame(random.Random(4).randbytes(20000), version=4), dict(gso_size=1201)),
    (P.udp_frame(random.Random(5).randbytes(20001), version=6), dict(gso_size=1400)),
    (P.udp_frame(b"\xff" * 7777, version=6), dict(gso_size=1000)),
]


@pytest.mark.parametrize("fcs", [False, True])
@pytest.mark.parametrize("idx", range(len(SUPERS)))
def test_segment_equals_oracle_on_every_path(level, idx, fcs):
    frame, kw = SUPERS[idx]
    assert native.segment(frame, append_fcs=fcs, **kw) == oracle.segment(frame, append_fcs=fcs, **kw)


def test_fcs_frames_writes_each_frames_fcs_after_it():
    s = native.Segmenter()
    frame, kw = SUPERS[0]
    n = s.run(frame, **kw)  # frames without FCS, back to back
    frames = s.frames(n)
    buf = bytearray(sum(len(f) + 4 for f in frames) + 10)
    table = array.array("I")
    off = 0
    for f in frames:
        buf[off:off + len(f)] = f
        table.extend((off, len(f)))
        off += len(f) + 4
    assert native.fcs_frames(buf, table) == n
    assert [bytes(buf[o:o + ln + 4]) for o, ln in zip(table[0::2], table[1::2])] == \
        native.segment(frame, append_fcs=True, **kw)
    assert all(native.crc32(buf[o:o + ln + 4]) == 0x2144DF1C for o, ln in zip(table[0::2], table[1::2]))


def test_fcs_frames_takes_a_count_and_refuses_an_entry_past_the_buffer_before_writing():
    buf = bytearray(range(200))
    table = array.array("I", [0, 60, 64, 60, 190, 10])  # the last FCS would end at 204
    before = bytes(buf)
    with pytest.raises(native.ArgError):
        native.fcs_frames(buf, table)
    assert bytes(buf) == before
    assert native.fcs_frames(buf, table, 2) == 2
    assert bytes(buf[60:64]) == native.fcs(before[:60])
    assert bytes(buf[124:128]) == native.fcs(before[64:124])
    assert buf[128:] == before[128:]
    with pytest.raises(native.ArgError):
        native.fcs_frames(buf, table, 4)
    with pytest.raises((native.ArgError, TypeError, BufferError, ValueError)):
        native.fcs_frames(bytes(200), table, 1)  # read-only


def test_take_survives_the_next_run_and_equals_frames():
    s = native.Segmenter()
    a, kw = SUPERS[0]
    b, kwb = SUPERS[3]
    n = s.run(a, **kw)
    expect = s.frames(n)
    taken = s.take(n)
    assert [bytes(v) for v in taken] == expect
    s.run(b, **kwb)
    assert [bytes(v) for v in taken] == expect
    assert all(v.readonly for v in taken)
    assert s.take(0) == []


def test_out_of_range_arguments_are_arg_errors():
    s = native.Segmenter()
    frame, _ = SUPERS[0]
    for kw in (dict(gso_size=-1), dict(mss=2**32), dict(csum_start=-5), dict(csum_offset=2**40),
               dict(csum=2**40)):
        with pytest.raises(native.ArgError):
            s.run(frame, **kw)
    with pytest.raises(native.ArgError):
        native.crc32(b"abc", -1)
    with pytest.raises(native.ArgError):
        native.checksum(b"abc", 2**32)
    assert native.fcs(bytearray(b"abc")) == zlib.crc32(b"abc").to_bytes(4, "little")


@pytest.mark.skipif(os.environ.get("A2065_NATIVE", "").lower() == "python",
                    reason="A2065_NATIVE=python forces the oracle")
def test_impl_info_names_the_fold_width():
    info = native.impl_info()
    assert info["crc32"] in ("pclmul", "slice8")
    assert info["crc32_fold"] in ("0", "128", "256")
    assert native._set_impl(False, False)
    assert native.impl_info()["crc32_fold"] == "0"
    assert not native._set_impl(False, 3)
    native._set_impl(True, True) or native._set_impl(False, False)
