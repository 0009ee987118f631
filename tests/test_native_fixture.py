"""native.segment() against real kernel super-packets (fixtures/captures/, see its README.md).

Each captured frame is segmented with the gso_size and checksum state the kernel recorded for it;
the output is checked with the independent decoder in tests/netcheck.py (dpkt + our own RFC 1071
sums), the TCP stream rebuilt from the output frames must hash to the SHA-256 the sender's stream
had, and tshark must read a pcapng of the output with no malformed packet and no checksum error.
"""
from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess

import pytest

import native

from conftest import requires_package, which  # noqa: E402
from fixture_capture import CAPTURES, load  # noqa: E402
from netcheck import ETH_MAX, Decoded  # noqa: E402


def _segment_capture(name: str, *, append_fcs: bool = False) -> list[tuple[int, bytes]]:
    out = []
    for p in load(name):
        kw = p.segment_kwargs()
        kw["csum"] = {0: native.CSUM_NONE, 1: native.CSUM_PARTIAL}[kw["csum"]]
        for f in native.segment(p.frame, append_fcs=append_fcs, **kw):
            out.append((p.ts_ns, f))
    return out


_cache: dict = {}


def segmented(name: str) -> list[tuple[int, bytes]]:
    if name not in _cache:
        _cache[name] = _segment_capture(name)
    return _cache[name]


def _ethertype(frame: bytes) -> int:
    t = struct.unpack_from("!H", frame, 12)[0]
    off = 14
    while t in (0x8100, 0x88A8):
        t = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    return t


def _tcp_stream(frames: list[bytes], dport: int = 5001) -> bytes:
    """Rebuild the byte stream sent to `dport` by sequence number; retransmissions deduplicated."""
    isn = None
    pieces: dict[int, bytes] = {}
    for f in frames:
        if _ethertype(f) not in (0x0800, 0x86DD):
            continue
        d = Decoded(f, has_fcs=False)
        if d.proto != 6:
            continue
        t = d.tcp
        if t.dport != dport:
            continue
        if t.flags & 0x02:  # SYN
            isn = t.seq
            continue
        data = d.tcp_payload()
        if data:
            assert isn is not None, "data before the SYN"
            rel = (t.seq - isn - 1) % 2**32
            if rel in pieces:
                assert pieces[rel] == data, "a retransmission carries different bytes"
            pieces[rel] = data
    stream = bytearray()
    for rel in sorted(pieces):
        data = pieces[rel]
        assert rel <= len(stream), f"hole in the stream at {len(stream)} (next piece at {rel})"
        stream[rel:rel + len(data)] = data
    return bytes(stream)


@pytest.mark.parametrize("name", ["tcp4", "tcp6", "udp4"])
def test_every_frame_of_a_real_capture_leaves_within_1514_bytes_with_valid_checksums(name):
    frames = segmented(name)
    raw = load(name)
    assert any(len(p.frame) > ETH_MAX for p in raw), "the fixture holds no super-packet"
    assert len(frames) > len(raw)
    checked = 0
    for _ts, f in frames:
        assert len(f) <= ETH_MAX, f"frame of {len(f)} B"
        if _ethertype(f) in (0x0800, 0x86DD):
            d = Decoded(f, has_fcs=False)
            if d.proto in (6, 17, 58):
                assert d.checksum_ok(), f"bad L4 checksum in {f[:64].hex()}"
                checked += 1
    assert checked > 0.9 * len(frames)


@pytest.mark.parametrize("name", ["tcp4", "tcp6"])
def test_the_tcp_stream_rebuilt_from_segmented_frames_hashes_to_the_sent_stream(name):
    stream = _tcp_stream([f for _ts, f in segmented(name)])
    assert len(stream) == CAPTURES[name].stream_bytes
    assert hashlib.sha256(stream).hexdigest() == CAPTURES[name].sha256


@pytest.mark.parametrize("name", ["tcp4", "tcp6"])
def test_segmenting_each_super_packet_yields_full_gso_size_segments_but_the_last(name):
    for p in load(name):
        if p.gso_size and len(p.frame) > ETH_MAX:
            out = native.segment(p.frame, gso_size=p.gso_size, csum=native.CSUM_PARTIAL,
                                 csum_start=p.meta["csum_start"], csum_offset=p.meta["csum_offset"])
            sizes = [len(Decoded(f, has_fcs=False).tcp_payload()) for f in out]
            assert all(s == p.gso_size for s in sizes[:-1]) and 0 < sizes[-1] <= p.gso_size
            assert sum(sizes) == len(p.frame) - p.meta["hdr_len"]


def test_the_udp_gso_capture_becomes_its_100_datagrams_in_order():
    data = b""
    count = 0
    for _ts, f in segmented("udp4"):
        if _ethertype(f) != 0x0800:
            continue
        d = Decoded(f, has_fcs=False)
        if d.proto == 17 and struct.unpack_from("!H", d.l4, 2)[0] == 5001:
            assert len(d.l4) == 8 + 1400
            data += d.l4[8:]
            count += 1
    assert count == 100
    assert hashlib.sha256(data).hexdigest() == CAPTURES["udp4"].sha256


def test_every_output_frame_carries_a_correct_fcs_when_asked():
    import zlib

    for _ts, f in _segment_capture("tcp4", append_fcs=True):
        assert len(f) <= ETH_MAX + 4
        assert f[-4:] == zlib.crc32(f[:-4]).to_bytes(4, "little")
        assert zlib.crc32(f) == 0x2144DF1C  # the CRC-32 residue over frame + FCS


def _write_pcapng(path, frames):
    from pcapng import FileWriter, blocks

    shb = blocks.SectionHeader(options={"shb_userappl": "a2065 tests"})
    shb.new_member(blocks.InterfaceDescription, link_type=1, snaplen=262144,
                   options={"if_name": "a2065", "if_tsresol": b"\x09"})
    with open(path, "wb") as fh:
        w = FileWriter(fh, shb)
        for ts, f in frames:
            epb = shb.new_member(blocks.EnhancedPacket, interface_id=0, packet_data=f,
                                 packet_len=len(f), options={"epb_flags": 0})
            epb.timestamp_high, epb.timestamp_low = ts >> 32, ts & 0xFFFFFFFF
            w.write_block(epb)


TSHARK_FIELDS = ["frame.number", "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                 "icmpv6.checksum.status", "_ws.malformed", "_ws.expert.severity",
                 "_ws.expert.message"]
EXPERT_ERROR = 0x00800000
# TCP analysis warnings that would mean the segments do not form a clean stream (the one warning
# the original flow does carry, "window ... is now completely full", is a property of the flow)
SEQUENCE_TROUBLE = ("previous segment not captured", "Retransmission", "Out-Of-Order",
                    "ACKed segment that wasn't captured", "Spurious", "Dup ACK")


def _tshark_problems(path) -> tuple[int, list[str]]:
    args = ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
            "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            # the payload is random bytes: show it as data, not to heuristics (RTCP) as "malformed"
            "-d", "udp.port==5001,data", "-d", "tcp.port==5001,data",
            "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    for f in TSHARK_FIELDS:
        args += ["-e", f]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    problems, rows = [], 0
    for line in r.stdout.splitlines():
        rows += 1
        num, ipst, tcpst, udpst, icmpst, malformed, sev, msg = line.split("|")
        # checksum status: 0 bad, 1 good, 2 unverified
        for name, st in (("ip", ipst), ("tcp", tcpst), ("udp", udpst), ("icmpv6", icmpst)):
            if "0" in st.split(","):
                problems.append(f"frame {num}: bad {name} checksum ({msg})")
        if malformed:
            problems.append(f"frame {num}: malformed ({msg})")
        if sev and any(int(s) >= EXPERT_ERROR for s in sev.split(",") if s):
            problems.append(f"frame {num}: expert error ({msg})")
        for bad in SEQUENCE_TROUBLE:
            if bad in msg:
                problems.append(f"frame {num}: {bad}")
    return rows, problems


needs_tshark = requires_package("tshark", which("tshark"), "an independent dissector")


@needs_tshark
@pytest.mark.parametrize("name", ["tcp4", "tcp6", "udp4"])
def test_tshark_reads_the_segmented_capture_with_no_malformed_frame_and_no_checksum_error(
        name, tmp_path):
    frames = segmented(name)
    path = tmp_path / f"{name}_segmented.pcapng"
    _write_pcapng(path, frames)
    rows, problems = _tshark_problems(path)
    assert rows == len(frames)
    assert problems == []


@needs_tshark
def test_tshark_check_is_sensitive_it_flags_the_raw_capture_with_partial_checksums(tmp_path):
    # the unsegmented capture holds only pseudo-header sums: tshark must call them bad
    path = tmp_path / "raw.pcapng"
    _write_pcapng(path, [(p.ts_ns, p.frame) for p in load("tcp4")])
    rows, problems = _tshark_problems(path)
    assert any("bad tcp checksum" in p for p in problems)


@needs_tshark
def test_tshark_check_is_sensitive_it_flags_a_segmented_stream_missing_one_frame(tmp_path):
    frames = segmented("tcp4")
    path = tmp_path / "gap.pcapng"
    _write_pcapng(path, frames[:200] + frames[201:])
    _rows, problems = _tshark_problems(path)
    assert any("captured" in p for p in problems)
