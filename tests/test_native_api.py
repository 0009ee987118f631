"""native API: error types, IMPLEMENTATION, and hand-built cases for each rule of native/SPEC.md,
checked on both the C core (through ``native``) and the oracle, with checksums verified by the
independent builders in tests/packets.py."""
import array
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import native
from native import oracle
from tests import packets as P

from conftest import requires_package

ROOT = Path(__file__).resolve().parent.parent
IMPLS = [pytest.param(native, id="native"), pytest.param(oracle, id="oracle")]


def tcp_flags(frame, l4=34):
    return frame[l4 + 13]


def tcp_seq(frame, l4=34):
    return struct.unpack_from("!I", frame, l4 + 4)[0]


def ip_id(frame, l3=14):
    return struct.unpack_from("!H", frame, l3 + 4)[0]


def ip_total(frame, l3=14):
    return struct.unpack_from("!H", frame, l3 + 2)[0]


# --- the API surface -------------------------------------------------------------------------


def test_every_error_code_has_its_own_valueerror_subclass_with_code_and_reason():
    codes = sorted(native.ERRORS)
    assert codes == list(range(-15, 0))
    for code, cls in native.ERRORS.items():
        assert issubclass(cls, native.SegmentError) and issubclass(cls, ValueError)
        exc = native.error_for(code)
        assert isinstance(exc, cls) and exc.code == code and exc.reason
    names = {cls.__name__ for cls in native.ERRORS.values()}
    assert {"TruncatedError", "UrgError", "OutSpaceError", "TableSpaceError", "ArgError"} <= names


def test_implementation_is_c_when_the_extension_is_built():
    if os.environ.get("A2065_NATIVE", "").lower() == "python":
        pytest.skip("A2065_NATIVE=python forces the oracle")
    assert native.IMPLEMENTATION == "c", "the C core did not load: 'make venv' builds it (build-essential)"
    info = native.impl_info()
    assert info["checksum"] in ("avx2", "portable") and info["crc32"] in ("pclmul", "slice8")


def _python(code, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("A2065_NATIVE", "A2065_NATIVE_LIB")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=60)


def test_a2065_native_python_forces_the_oracle():
    r = _python("import native; print(native.IMPLEMENTATION, native.crc32(b'abc'))", A2065_NATIVE="python")
    assert r.stdout.split() == ["python", str(zlib.crc32(b"abc"))]


def test_import_without_the_extension_falls_back_to_the_oracle_with_a_warning():
    code = ("import sys, logging; logging.basicConfig(); sys.modules['native._native'] = None\n"
            "import native; print(native.IMPLEMENTATION); print(native.segment(b'x' * 70)[0][:2])")
    r = _python(code)
    assert r.stdout.splitlines() == ["python", "b'xx'"]
    assert "oracle" in r.stderr and "WARNING" in r.stderr


def test_fcs_is_the_little_endian_crc32():
    assert native.fcs(b"123456789") == (0xCBF43926).to_bytes(4, "little")


@pytest.mark.parametrize("impl", IMPLS)
def test_checksum_of_the_rfc1071_example(impl):
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert impl.checksum(data) == ~0xDDF2 & 0xFFFF
    assert impl.checksum(data, 0x220D) == 0  # adding the complement gives all ones


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_arguments_raise_arg_error(impl):
    frame = P.tcp_frame(b"x")
    with pytest.raises(native.ArgError):
        impl.segment(frame, csum=7)
    with pytest.raises(native.ArgError):
        impl.segment(frame, mss=-1)
    with pytest.raises(native.ArgError):
        impl.segment(b"\0" * ((1 << 20) + 1))
    with pytest.raises(native.ArgError):
        impl.checksum(b"", -1)


# --- TCP segmentation (SPEC 6) ---------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_tcp_super_packet_is_cut_at_the_mss_that_fits_with_contiguous_sequence_numbers(impl):
    payload = bytes(range(256)) * 200  # 51200 bytes
    frame = P.tcp_frame(payload, tcp_options=P.ts_option(), seq=0xFFFFF000,
                        flags=P.ACK | P.PSH | P.FIN | P.CWR, ip={"ident": 0xFFFE})
    frames = impl.segment(frame, append_fcs=True)
    seg = 1514 - (14 + 20 + 32)  # 1448
    assert len(frames) == -(-len(payload) // seg)
    data = b""
    for i, f in enumerate(frames):
        body, fcs = f[:-4], f[-4:]
        assert fcs == native.fcs(body)
        assert len(body) <= 1514
        assert P.ipv4_header_ok(body) and P.l4_checksum_ok(body)
        assert ip_total(body) == len(body) - 14
        assert ip_id(body) == (0xFFFE + i) & 0xFFFF  # wraps
        assert tcp_seq(body) == (0xFFFFF000 + i * seg) & 0xFFFFFFFF
        fl = tcp_flags(body)
        assert bool(fl & P.CWR) == (i == 0)
        assert bool(fl & P.FIN) == bool(fl & P.PSH) == (i == len(frames) - 1)
        assert fl & P.ACK
        assert body[34 + 20:34 + 32] == P.ts_option()
        data += body[66:]
    assert data == payload


@pytest.mark.parametrize("impl", IMPLS)
def test_gso_size_then_mss_choose_the_segment_size(impl):
    frame = P.tcp_frame(b"a" * 1000)
    assert impl.segment(frame) == [frame]  # fits and no size given: unchanged
    by_mss = impl.segment(frame, mss=536)
    assert [len(f) - 54 for f in by_mss] == [536, 464]
    by_gso = impl.segment(frame, gso_size=300, mss=536)
    assert [len(f) - 54 for f in by_gso] == [300, 300, 300, 100]


@pytest.mark.parametrize("impl", IMPLS)
def test_ipv6_tcp_with_extension_headers_gets_payload_length_per_segment(impl):
    ext = [(0, b"\x01\x04\0\0\0\0"), (60, b"\x01\x0c" + b"\0" * 12)]
    frame = P.tcp_frame(b"b" * 5000, version=6, ext_headers=ext, vlans=[(0x8100, 7)])
    frames = impl.segment(frame)
    l3 = 18
    chain = 8 + 16
    for f in frames:
        assert len(f) <= 1518
        plen = struct.unpack_from("!H", f, l3 + 4)[0]
        assert plen == len(f) - l3 - 40
        assert f[12:16] == b"\x81\x00\x00\x07"
    assert sum(len(f) - (l3 + 40 + chain + 20) for f in frames) == 5000
    # the checksum verifies over the pseudo-header with the fixed header's addresses
    for f in frames:
        l4 = l3 + 40 + chain
        seg = f[l4:]
        ph = P.pseudo_header(6, f[l3 + 8:l3 + 24], f[l3 + 24:l3 + 40], 6, len(seg))
        assert P.ones_sum(ph + seg) == 0xFFFF


@pytest.mark.parametrize("impl", IMPLS)
def test_two_vlan_tags_allow_1522_byte_frames(impl):
    frame = P.tcp_frame(b"c" * 4000, vlans=[(0x88A8, 1), (0x8100, 2)])
    frames = impl.segment(frame)
    assert max(len(f) for f in frames) == 1522


@pytest.mark.parametrize("impl", IMPLS)
def test_ethernet_padding_is_trimmed_when_segmenting_and_kept_on_pass_through(impl):
    small = P.tcp_frame(b"d" * 10) + b"\0" * 20
    assert impl.segment(small) == [small]
    big = P.tcp_frame(b"e" * 3000) + b"\xaa" * 7
    frames = impl.segment(big)
    assert all(ip_total(f) == len(f) - 14 for f in frames)


@pytest.mark.parametrize("impl", IMPLS)
def test_big_tcp_total_length_zero_takes_the_captured_length(impl):
    payload = b"f" * 70000
    frame = P.tcp_frame(payload)
    assert ip_total(frame) == 0
    frames = impl.segment(frame)
    assert b"".join(f[54:] for f in frames) == payload
    assert all(P.ipv4_header_ok(f) and P.l4_checksum_ok(f) for f in frames)


@pytest.mark.parametrize("impl", IMPLS)
def test_urg_with_data_to_split_is_refused(impl):
    with pytest.raises(native.UrgError):
        impl.segment(P.tcp_frame(b"g" * 3000, flags=P.ACK | P.URG, urg=5))
    assert len(impl.segment(P.tcp_frame(b"g" * 100, flags=P.ACK | P.URG, urg=5))) == 1


# --- checksum completion (SPEC 8) ------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("build", [P.tcp_frame, P.udp_frame])
def test_partial_checksum_is_completed_only_when_asked_or_detected(impl, version, build):
    partial = build(b"h" * 333, version=version, csum="partial")
    good = build(b"h" * 333, version=version, csum="ok")
    assert not P.l4_checksum_ok(partial)
    assert impl.segment(partial) == [partial]  # CSUM_NONE: unchanged
    assert impl.segment(partial, csum=native.CSUM_PARTIAL) == [good]
    assert impl.segment(partial, csum=native.CSUM_DETECT) == [good]
    assert impl.segment(good, csum=native.CSUM_DETECT) == [good]
    other = build(b"h" * 333, version=version, csum=0x1234)
    assert impl.segment(other, csum=native.CSUM_DETECT) == [other]


@pytest.mark.parametrize("impl", IMPLS)
def test_segmented_frames_get_fresh_checksums_whatever_the_input_checksum(impl):
    for csum in ("partial", "zero", 0xBEEF):
        frames = impl.segment(P.tcp_frame(b"i" * 4000, csum=csum))
        assert all(P.l4_checksum_ok(f) for f in frames)


@pytest.mark.parametrize("impl", IMPLS)
def test_csum_start_and_offset_complete_other_protocols_from_the_host_seed(impl):
    body = b"\x80\0\0\0" + b"j" * 100  # ICMPv6 echo request, checksum at offset 2
    seed = P.ones_sum(P.pseudo_header(6, P.IP6_SRC, P.IP6_DST, 58, len(body)))
    seeded = body[:2] + struct.pack("!H", seed) + body[4:]
    frame = P.eth(P.ipv6(seeded, 58), 0x86DD)
    (out,) = impl.segment(frame, csum=native.CSUM_PARTIAL, csum_start=54, csum_offset=2)
    icmp = out[54:]
    assert P.ones_sum(P.pseudo_header(6, P.IP6_SRC, P.IP6_DST, 58, len(icmp)) + icmp) == 0xFFFF
    # out of range: unchanged
    assert impl.segment(frame, csum=native.CSUM_PARTIAL, csum_start=54, csum_offset=200) == [frame]


# --- UDP (SPEC 7) ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("version", [4, 6])
def test_udp_gso_train_becomes_datagrams_with_their_own_length_and_checksum(impl, version):
    payload = bytes(range(200)) * 31  # 6200
    frame = P.udp_frame(payload, version=version, csum="partial", ip={"ident": 10} if version == 4 else None)
    frames = impl.segment(frame, gso_size=1400)
    assert len(frames) == 5
    l4 = 34 if version == 4 else 54
    out = b""
    for i, f in enumerate(frames):
        assert P.l4_checksum_ok(f)
        assert struct.unpack_from("!H", f, l4 + 4)[0] == len(f) - l4
        if version == 4:
            assert ip_id(f) == 10 + i and P.ipv4_header_ok(f)
        out += f[l4 + 8:]
    assert out == payload


@pytest.mark.parametrize("impl", IMPLS)
def test_udp_gso_frame_holding_one_datagram_passes_through(impl):
    frame = P.udp_frame(b"k" * 100, csum="partial")
    assert impl.segment(frame, gso_size=1400) == [frame]
    assert impl.segment(frame, gso_size=1400, csum=native.CSUM_PARTIAL) == [P.udp_frame(b"k" * 100)]


def _udp_payload_summing_to_zero_checksum(version):
    """A payload whose correct UDP checksum computes to 0 (so it must be sent as 0xFFFF)."""
    probe = P.udp_frame(b"\0\0" + b"r" * 50, version=version, csum="ok")
    l4 = 34 if version == 4 else 54
    c = struct.unpack_from("!H", probe, l4 + 6)[0]
    # adding c to the data makes the sum 0xFFFF, whose complement is 0
    return struct.pack("!H", c) + b"r" * 50


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("version", [4, 6])
def test_udp_checksum_that_computes_to_zero_is_sent_as_all_ones(impl, version):
    payload = _udp_payload_summing_to_zero_checksum(version)
    l4 = 34 if version == 4 else 54
    frame = P.udp_frame(payload, version=version, csum="zero")
    (out,) = impl.segment(frame, csum=native.CSUM_PARTIAL)
    assert struct.unpack_from("!H", out, l4 + 6)[0] == 0xFFFF
    train = P.udp_frame(payload * 2, version=version, csum="zero")
    first = impl.segment(train, gso_size=len(payload))[0]
    assert struct.unpack_from("!H", first, l4 + 6)[0] == 0xFFFF


@pytest.mark.parametrize("impl", IMPLS)
def test_udp_gso_frame_that_fits_is_still_split_into_its_datagrams(impl):
    frames = impl.segment(P.udp_frame(b"k" * 1000), gso_size=500)
    assert [len(f) - 42 for f in frames] == [500, 500]


@pytest.mark.parametrize("impl", IMPLS)
def test_oversized_ipv4_udp_without_df_is_fragmented_like_a_router(impl):
    payload = bytes(range(256)) * 20  # 5120
    lsrr = b"\x83\x07\x04" + bytes(4)  # copied
    rr = b"\x07\x07\x04" + bytes(4)  # not copied
    opts = lsrr + b"\x01" + rr + b"\x01"  # 16 bytes
    frame = P.udp_frame(payload, ip={"flags": 0, "ident": 77}, ip_options=opts, csum="partial")
    frames = impl.segment(frame, csum=native.CSUM_PARTIAL)
    fs = (1500 - 36) & ~7
    body = b""
    for i, f in enumerate(frames):
        ihl = (f[14] & 15) * 4
        assert P.ipv4_header_ok(f) and ip_id(f) == 77
        assert ihl == (36 if i == 0 else 28)  # later fragments: LSRR padded to 8 with EOL
        if i:
            assert f[34:42] == lsrr + b"\0"
        fo = struct.unpack_from("!H", f, 20)[0]
        assert fo & 0x1FFF == i * fs // 8
        assert bool(fo & P.IP_MF) == (i < len(frames) - 1)
        assert ip_total(f) == len(f) - 14
        if i < len(frames) - 1:
            assert ip_total(f) - ihl == fs
        body += f[14 + ihl:]
    udp = body
    assert udp[8:] == payload
    ph = P.pseudo_header(4, P.IP4_SRC, P.IP4_DST, 17, len(udp))
    assert P.ones_sum(ph + udp) == 0xFFFF  # completed before fragmenting


@pytest.mark.parametrize("impl", IMPLS)
def test_oversized_udp_that_may_not_be_fragmented_is_refused(impl):
    with pytest.raises(native.UdpNoSegError):
        impl.segment(P.udp_frame(b"l" * 3000, ip={"flags": P.IP_DF}))
    with pytest.raises(native.UdpNoSegError):
        impl.segment(P.udp_frame(b"l" * 3000, version=6))


# --- errors and pass-through (SPEC 1-5) ------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_each_malformed_or_unsafe_frame_raises_its_error(impl):
    big = b"\0" * 3000
    cases = [
        (native.TruncatedError, b"\0" * 13, {}),
        (native.TruncatedError, P.eth(b"", 0x8100)[:16], {}),  # VLAN tag cut short
        (native.TruncatedError, P.eth(b"\x45" + b"\0" * 18, 0x0800), {}),  # under 20 bytes
        (native.TruncatedError, P.eth(b"\x46" + b"\0" * 19, 0x0800), {}),  # options missing
        (native.TruncatedError, P.eth(b"\x60" + b"\0" * 38, 0x86DD), {}),  # under 40 bytes
        (native.IpHeaderError, P.eth(b"\x45\0\0\x10" + b"\0" * 40, 0x0800), {}),  # total < IHL*4
        (native.MssError, P.udp_frame(big, version=6, ext_headers=[(60, b"\0" * 1000)] * 2),
         {"gso_size": 100}),
        (native.TruncatedError, P.tcp_frame(b"x" * 100)[:60], {}),
        (native.EthertypeError, P.eth(big, 0x88B5), {}),
        (native.VlanError, P.eth(big, 0x88B5, vlans=[(0x8100, 1)] * 3), {}),
        (native.IpHeaderError, P.eth(b"\x55" + b"\0" * 30, 0x0800), {}),
        (native.FragmentError, P.udp_frame(big, ip={"flags": P.IP_MF}), {}),
        (native.ExtHeaderError, P.tcp_frame(big, version=6, ext_headers=[(60, b"")] * 9), {}),
        (native.ProtocolError, P.eth(P.ipv4(big, 1), 0x0800), {}),
        (native.TcpHeaderError, P.eth(P.ipv4(b"\0" * 12 + b"\x40" + b"\0" * 2000, 6), 0x0800), {}),
        (native.UrgError, P.tcp_frame(big, flags=P.URG | P.ACK), {}),
        (native.MssError, P.tcp_frame(big, version=6, ext_headers=[(60, b"\0" * 1000)] * 2), {}),
        (native.UdpHeaderError, P.eth(P.ipv4(b"\0" * 5, 17), 0x0800), {}),
        (native.UdpNoSegError, P.udp_frame(big, ip={"flags": P.IP_DF}), {}),
    ]
    for cls, frame, kw in cases:
        with pytest.raises(cls) as info:
            impl.segment(frame, **kw)
        assert info.value.code == cls.code


@pytest.mark.parametrize("impl", IMPLS)
def test_frames_that_fit_pass_through_whatever_they_carry(impl):
    frames = [
        P.eth(b"\x01" * 100, 0x88B5),  # unknown ethertype
        P.eth(b"\x02" * 100, 0x0806, vlans=[(0x8100, 1)] * 3),  # third tag, small
        P.udp_frame(b"m" * 500, ip={"flags": P.IP_MF}),  # a fragment
        P.eth(P.ipv4(b"\x08\0\0\0" + b"n" * 200, 1), 0x0800),  # ICMP
    ]
    for f in frames:
        assert impl.segment(f) == [f]


@pytest.mark.parametrize("impl", IMPLS)
def test_short_frames_are_padded_to_the_ethernet_minimum_before_the_fcs(impl):
    arp = P.eth(b"\x03" * 28, 0x0806)  # 42 bytes as a host captures its own ARP
    (out,) = impl.segment(arp, append_fcs=True)
    assert len(out) == 64 and out[:42] == arp and out[42:60] == bytes(18)
    assert out[60:] == native.fcs(out[:60])
    frames = impl.segment(P.tcp_frame(b"o" * 1461))  # the last segment carries 1 byte
    assert len(frames[-1]) == 60 and ip_total(frames[-1]) == 41


# --- output space (SPEC 9) -------------------------------------------------------------------


def test_segment_into_reports_table_and_output_space():
    frame = P.tcp_frame(b"p" * 5000)
    table = array.array("I", bytes(8 * 8))
    out = bytearray(10000)
    n = native.segment_into(frame, out, table, append_fcs=True)
    assert n == 4
    assert [tuple(table[2 * i:2 * i + 2]) for i in range(n)] == [
        (0, 1518), (1518, 1518), (3036, 1518), (4554, 678)]
    with pytest.raises(native.TableSpaceError):
        native.segment_into(frame, out, array.array("I", bytes(8 * 3)))
    with pytest.raises(native.OutSpaceError):
        native.segment_into(frame, bytearray(4000), table)
    with pytest.raises(native.OutSpaceError):
        oracle.segment(frame, out_cap=4000)
    with pytest.raises(native.TableSpaceError):
        oracle.segment(frame, table_cap=3)


# --- sanitizers ------------------------------------------------------------------------------


def _asan_runtime():
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    r = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = r.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@requires_package("libasan8", _asan_runtime, "gcc's AddressSanitizer runtime")
def test_differential_subset_passes_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    env = dict(os.environ, A2065_ASAN_K="exactly or small_buffers or c_equals_oracle",
               PYTHON=sys.executable)
    env.pop("A2065_NATIVE", None)
    r = subprocess.run(["sh", str(ROOT / "tools" / "build_asan.sh"), "--run", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert " passed" in r.stdout and "ERROR: AddressSanitizer" not in tail, tail
    assert "runtime error" not in tail, tail
