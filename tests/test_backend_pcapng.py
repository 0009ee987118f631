"""pcapng replay and recorder: timing, metadata, round trips, damaged files, full disks, tshark."""
import contextlib
import errno
import io
import logging
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pcapng
import pytest
from hypothesis import given, strategies as st
from pcapng import blocks

from pcap_backend import CaptureFormatError, Packet, PacketMeta, VirtualCable
from pcap_backend.backends.pcapng_io import PcapngRecorder, PcapngReplay
from pcap_backend.capfile import iter_capture as iter_pcapng, pcapng_header as file_header
from pcap_backend.capfile import pcapng_packet as epb
from pcap_backend.base import GSO_TCPV4

from conftest import require_package, which

ROOT = Path(__file__).resolve().parent.parent
TCP4 = ROOT / "fixtures" / "captures" / "tcp4_tso.pcapng"
# python-pcapng warns about option types while decoding mutated files; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def frames(n, size=60):
    return [bytes([i & 0xFF]) * 6 + b"\x02\xa2\x06\x05\x00\x01\x08\x00" + bytes([i & 0xFF]) * (size - 14)
            for i in range(n)]


def write_small(path, pkts, t0=1_000, step=1_000):
    with PcapngRecorder(path) as rec:
        for i, f in enumerate(pkts):
            rec.record(t0 + i * step, f, outgoing=bool(i & 1))
    return Path(path).read_bytes()


def drain(replay, now=10**18):
    out = []
    while True:
        got = replay.poll(now, limit=1000)
        if not got:
            return out
        out += got


def tshark_ok(path):
    require_package("tshark", which("tshark"), "reads the file as a second, independent parser")
    r = subprocess.run(["tshark", "-r", str(path)], capture_output=True, text=True, timeout=120)
    text = (r.stdout + r.stderr).lower()
    assert r.returncode == 0, r.stderr
    assert "malformed" not in text and "error" not in text, text[-2000:]
    return r.stdout


# -- replay ----------------------------------------------------------------------------------


def test_replaying_a_real_capture_then_recording_it_is_byte_identical_in_data_order_and_metadata(tmp_path):
    out = tmp_path / "rt.pcapng"
    replay = PcapngReplay(TCP4, timing="recorded", start_ns=5_000_000)
    with PcapngRecorder(out, replay) as rec:
        got = drain(rec)
    src = list(iter_pcapng(TCP4))
    back = list(iter_pcapng(out))
    assert len(got) == len(src) == len(back) == 95
    assert [b.frame for b in back] == [s.frame for s in src]
    assert [b.meta for b in back] == [s.meta for s in src]
    # timestamps: the first at start_ns, the others at their recorded offsets, in ns
    assert [b.ts_ns for b in back] == [5_000_000 + s.ts_ns - src[0].ts_ns for s in src]
    assert all(b.outgoing is False for b in back)  # what the card received is inbound
    tshark_ok(out)


def test_the_fixture_super_packets_replay_with_the_kernels_gso_metadata():
    pk = drain(PcapngReplay(TCP4, timing="asap"))
    big = [p for p in pk if len(p.frame) > 1514]
    assert len(big) == 45
    assert all(p.meta.gso_type == GSO_TCPV4 and p.meta.gso_size == 1448 and p.meta.csum_partial
               for p in big)


def test_a_direction_filter_replays_only_the_frames_sent_by_the_capturing_side():
    r = PcapngReplay(TCP4, timing="asap", directions={"out"})
    assert len(drain(r)) == 51
    assert r.stats()["rx_skipped"] == 44


def test_recorded_timing_releases_each_frame_at_its_offset_from_start_ns(tmp_path):
    p = tmp_path / "t.pcapng"
    write_small(p, frames(3), t0=10_000, step=2_500)
    r = PcapngReplay(p, timing="recorded", start_ns=1_000_000)
    assert r.next_deadline() == 1_000_000
    assert r.poll(999_999) == []
    assert [x.arrival_ns for x in r.poll(1_002_500)] == [1_000_000, 1_002_500]
    assert r.next_deadline() == 1_005_000
    assert [x.arrival_ns for x in r.poll(2_000_000)] == [1_005_000]
    assert r.next_deadline() is None and r.exhausted


def test_asap_timing_offers_every_frame_at_the_poll_time_bounded_by_limit(tmp_path):
    p = tmp_path / "t.pcapng"
    write_small(p, frames(10), step=10**9)
    r = PcapngReplay(p, timing="asap", start_ns=100)
    assert r.poll(99) == []
    a = r.poll(100, limit=4)
    assert [x.arrival_ns for x in a] == [100] * 4
    assert len(r.poll(200)) == 6 and r.poll(300) == []


def test_timestamps_that_go_backwards_never_make_arrivals_go_backwards(tmp_path):
    p = tmp_path / "b.pcapng"
    p.write_bytes(file_header() + b"".join(epb(t, f, None) for t, f in zip([500, 100, 900], frames(3))))
    got = drain(PcapngReplay(p))
    assert [x.arrival_ns for x in got] == [0, 0, 400]


def _library_file(path, tsresol, units, link_type=1, extra_ifaces=()):
    """Write with python-pcapng's own writer (an encoder independent of ours)."""
    shb = blocks.SectionHeader(options={"shb_userappl": "test"})
    opts = {"if_name": "x"}
    if tsresol is not None:
        opts["if_tsresol"] = bytes([tsresol])
    shb.new_member(blocks.InterfaceDescription, link_type=link_type, snaplen=65535, options=opts)
    for lt in extra_ifaces:
        shb.new_member(blocks.InterfaceDescription, link_type=lt, snaplen=65535, options={})
    with open(path, "wb") as f:
        w = pcapng.FileWriter(f, shb)
        for i, (iface, u) in enumerate(units):
            pkt = frames(i + 1)[i]
            b = shb.new_member(blocks.EnhancedPacket, interface_id=iface, packet_data=pkt,
                               packet_len=len(pkt))
            b.timestamp_high, b.timestamp_low = u >> 32, u & 0xFFFFFFFF
            w.write_block(b)


@pytest.mark.parametrize("tsresol,units,expect_ns", [
    (None, [1_000_000, 1_000_250], [0, 250_000]),        # default: microseconds
    (6, [7, 9], [0, 2_000]),
    (9, [10**12, 10**12 + 123], [0, 123]),               # nanoseconds
    (3, [5, 6], [0, 1_000_000]),                          # milliseconds
    (12, [0, 5_000], [0, 5]),                             # picoseconds
    (0x80 | 10, [0, 1024], [0, 1_000_000_000]),           # 2^-10 s
    (0x80 | 20, [0, 1], [0, 953]),                        # 2^-20 s
])
def test_interface_timestamp_resolution_is_honoured(tmp_path, tsresol, units, expect_ns):
    p = tmp_path / "r.pcapng"
    _library_file(p, tsresol, [(0, u) for u in units])
    assert [x.arrival_ns for x in drain(PcapngReplay(p))] == expect_ns


def test_a_non_ethernet_interface_gives_a_clear_error_after_the_ethernet_frames_before_it(tmp_path):
    p = tmp_path / "l.pcapng"
    _library_file(p, 9, [(0, 1), (0, 2), (1, 3), (0, 4)], extra_ifaces=[101])
    r = PcapngReplay(p, timing="asap")
    assert len(r.poll(0, limit=100)) == 2
    with pytest.raises(CaptureFormatError, match="link type 101"):
        r.poll(0)
    assert r.poll(0) == []
    assert r.stats()["rx_frames"] == 2 and "link type" in r.stats()["format_error"]


def _cuts(data):
    """Offsets cutting the file: inside each header, right after a block type, mid block."""
    offs, pos = [], 0
    while pos < len(data):
        n = struct.unpack_from("<I", data, pos + 4)[0]
        offs += [pos + 2, pos + 4, pos + 6, pos + n // 2, pos + n - 1]
        pos += n
    return sorted(set(o for o in offs if 0 < o < len(data)))


def test_a_file_cut_anywhere_gives_capture_format_error_after_every_complete_frame(tmp_path):
    pk = frames(4, size=100)
    data = write_small(tmp_path / "full.pcapng", pk)
    header_len = len(file_header())
    epb_len = (len(data) - header_len) // 4
    for cut in _cuts(data):
        p = tmp_path / "cut.pcapng"
        p.write_bytes(data[:cut])
        complete = max(0, (cut - header_len) // epb_len)
        r = PcapngReplay(p, timing="asap")
        got = []
        with pytest.raises(CaptureFormatError, match="truncated"):
            for _ in range(10):
                got += r.poll(0, limit=100)
        assert [x.frame for x in got] == pk[:complete], cut
        assert r.poll(0) == []


def test_a_non_strict_replay_keeps_the_error_in_stats_instead_of_raising(tmp_path, caplog):
    data = write_small(tmp_path / "f.pcapng", frames(3))
    p = tmp_path / "c.pcapng"
    p.write_bytes(data[:-10])
    with caplog.at_level(logging.WARNING):
        r = PcapngReplay(p, timing="asap", strict=False)
        assert len(drain(r)) == 2
    assert "truncated" in r.stats()["format_error"]
    assert len([rec for rec in caplog.records if "truncated" in rec.getMessage()]) == 1


def test_mismatched_block_lengths_are_reported_as_corrupt(tmp_path):
    data = bytearray(write_small(tmp_path / "f.pcapng", frames(2)))
    data[-4:] = struct.pack("<I", 4096)
    p = tmp_path / "m.pcapng"
    p.write_bytes(bytes(data))
    r = PcapngReplay(p, timing="asap")
    assert len(r.poll(0)) == 1
    with pytest.raises(CaptureFormatError, match="length"):
        r.poll(0)


class SpyFile(io.BytesIO):
    biggest = 0

    def read(self, n=-1):
        SpyFile.biggest = max(SpyFile.biggest, n if n is not None and n >= 0 else 1 << 62)
        return super().read(n)


@pytest.mark.parametrize("length", [0xFFFFFFF0, 0x7FFFFFFC, 4 << 20, 13, 8])
def test_absurd_block_lengths_are_rejected_before_anything_is_read_or_allocated(length):
    good = file_header() + epb(1, frames(1)[0], None)
    bad = struct.pack("<II", 6, length) + b"\0" * 64
    SpyFile.biggest = 0
    with pytest.raises(CaptureFormatError, match="length|truncated"):
        got = []
        for cf in iter_pcapng(SpyFile(good + bad)):
            got.append(cf)
    assert len(got) == 1
    assert SpyFile.biggest <= 1 << 20


def test_garbage_that_is_not_pcapng_is_a_capture_format_error(tmp_path):
    p = tmp_path / "g.pcapng"
    p.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(100))  # a classic pcap magic
    with pytest.raises(CaptureFormatError):
        PcapngReplay(p).poll(0)


def _library_read(data: bytes) -> list:
    """(ts_ns, frame, outgoing) per packet as python-pcapng (an independent decoder) reads them,
    up to its first complaint."""
    out = []
    try:
        for b in pcapng.FileScanner(io.BytesIO(data)):
            if isinstance(b, blocks.EnhancedPacket):
                res = b.interface.options.get("if_tsresol") if "if_tsresol" in b.interface.options else None
                units = (b.timestamp_high << 32) | b.timestamp_low
                res = res[0] if isinstance(res, (bytes, bytearray)) else res
                ts = units * 1000 if res is None else (units * 10 ** (9 - res) if res <= 9
                                                        else units // 10 ** (res - 9))
                flags = int(b.options["epb_flags"]) & 3 if "epb_flags" in b.options else 0
                out.append((ts, bytes(b.packet_data), {1: False, 2: True}.get(flags)))
    except Exception:  # noqa: BLE001 - the oracle stops where it stops
        pass
    return out


@given(st.data())
def test_mutated_files_only_ever_raise_capture_format_error(data):
    base = file_header() + b"".join(epb(i, f, bool(i & 1), PacketMeta(1, 1448, True, 34, 16))
                                   for i, f in enumerate(frames(3)))
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    got = []
    try:
        for cf in iter_pcapng(io.BytesIO(bytes(buf[:cut]))):
            got.append(cf)
    except CaptureFormatError:
        pass
    # our reader may reject damage python-pcapng tolerates (or the reverse) but never yields
    # anything else before that point
    lib = _library_read(bytes(buf[:cut]))
    n = min(len(got), len(lib))
    assert [(c.ts_ns, c.frame, c.outgoing) for c in got[:n]] == lib[:n]


@pytest.mark.parametrize("name", ["tcp4_tso", "tcp6_tso", "udp4_gso"])
def test_the_codec_reads_the_fixtures_exactly_as_python_pcapng_does(name):
    path = ROOT / "fixtures" / "captures" / f"{name}.pcapng"
    ours = [(c.ts_ns, c.frame, c.outgoing) for c in iter_pcapng(path)]
    assert ours == _library_read(path.read_bytes()) and len(ours) > 0


def test_send_on_a_replay_is_accepted_counted_and_forwarded_to_a_peer(tmp_path):
    p = tmp_path / "s.pcapng"
    write_small(p, frames(1))
    a, b = VirtualCable.pair(bit_rate=None)
    r = PcapngReplay(p, peer=a)
    assert r.send(b"x" * 60, 5)
    assert b.poll(5)[0].frame == b"x" * 60
    assert r.stats()["tx_frames"] == 1
    assert PcapngReplay(p).send(b"y" * 60, 0)


# -- recorder --------------------------------------------------------------------------------


def test_the_recorder_tees_both_directions_with_direction_flags_and_ns_timestamps(tmp_path):
    out = tmp_path / "tee.pcapng"
    a, b = VirtualCable.pair(bit_rate=None, delay_ns=3)
    meta = PacketMeta(GSO_TCPV4, 1448, True, 34, 16, False)
    with PcapngRecorder(out, a) as rec:
        assert rec.send(frames(1)[0], 1_000_000_001)
        b.send(frames(2)[1], 2_000_000_002)
        assert len(rec.poll(3_000_000_000)) == 1
        rec.record(3_000_000_003, frames(3)[2], outgoing=False, meta=meta)
    back = list(iter_pcapng(out))
    assert [(c.ts_ns, c.outgoing) for c in back] == [
        (1_000_000_001, True), (2_000_000_005, False), (3_000_000_003, False)]
    assert back[2].meta == meta
    text = tshark_ok(out)
    assert text.count("\n") == 3
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.time_epoch",
                        "-e", "frame.packet_flags_direction"], capture_output=True, text=True)
    lines = r.stdout.split("\n")
    assert lines[0].startswith("1.000000001") and lines[1].startswith("2.000000005")
    assert lines[0].split("\t")[1] in ("2", "0x2", "0x00000002") or "out" in lines[0].lower()


def test_frames_the_inner_backend_refuses_are_counted_not_recorded(tmp_path):
    out = tmp_path / "n.pcapng"
    from pcap_backend import Null

    with PcapngRecorder(out, Null()) as rec:
        assert rec.send(frames(1)[0], 0) is False
        assert not rec.link_up
    assert rec.stats()["tx_failed"] == {"inner_refused": 1}
    assert list(iter_pcapng(out)) == []


def test_super_packets_up_to_64k_and_over_snaplen_frames_are_written_readably(tmp_path):
    out = tmp_path / "big.pcapng"
    big = frames(1, size=65_226)[0]
    huge = frames(1, size=300_000)[0]
    with PcapngRecorder(out) as rec:
        rec.record(1, big, True)
        rec.record(2, huge, True)
    back = list(iter_pcapng(out))
    assert back[0].frame == big and back[1].frame == huge[:262144]
    tshark_ok(out)


class FullDisk(io.BytesIO):
    """A file that refuses writes with ENOSPC while `full` is set, like a full file system."""

    full = False

    def write(self, b):
        if self.full:
            # a real disk may take part of a block first; the recorder must cut it off again
            super().write(bytes(b)[:7])
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(b)


def test_a_full_disk_is_counted_logged_once_never_breaks_traffic_and_recording_resumes(caplog):
    f = FullDisk()
    a, b = VirtualCable.pair(bit_rate=None)
    rec = PcapngRecorder(f, a, flush="packet")
    rec.send(frames(1)[0], 1)
    f.full = True
    with caplog.at_level(logging.INFO, logger="a2065.backend"):
        for i in range(50):
            assert rec.send(frames(60)[i], 10 + i)  # traffic continues
            b.send(frames(60)[i], 10 + i)
            assert len(rec.poll(10 + i)) == 1
    s = rec.stats()
    assert s["record_errors"] == 100 and s["record_dropped"] == 100
    assert s["tx_frames"] == 51 and s["rx_frames"] == 50
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ENOSPC" in warnings[0].getMessage()
    f.full = False
    rec.send(frames(2)[1], 1000)
    rec.close()
    back = list(iter_pcapng(io.BytesIO(f.getvalue())))
    assert [(c.ts_ns, c.frame) for c in back] == [(1, frames(1)[0]), (1000, frames(2)[1])]
    assert rec.stats()["recorded_frames"] == 2


def test_a_recorder_whose_header_could_not_be_written_writes_it_when_the_disk_frees():
    f = FullDisk()
    f.full = True
    rec = PcapngRecorder(f)
    rec.record(5, frames(1)[0], False)
    rec.flush()
    f.full = False
    rec.record(6, frames(2)[1], False)
    rec.close()
    assert [c.ts_ns for c in iter_pcapng(io.BytesIO(f.getvalue()))] == [6]


@contextlib.contextmanager
def small_tmpfs(mnt: Path, size: str = "64k"):
    """A tmpfs of `size` at `mnt` (root) for the duration of the block: a disk that fills up."""
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"needs root that may mount a tmpfs: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.root
def test_a_recorder_on_a_really_full_tmpfs_keeps_traffic_flowing_and_its_file_reads_cleanly(tmp_path):
    with small_tmpfs(tmp_path / "small") as mnt:
        a, b = VirtualCable.pair(bit_rate=None)
        rec = PcapngRecorder(mnt / "rec.pcapng", a, flush="packet")
        for i in range(200):
            assert rec.send(frames(1, size=1500)[0], i)
        s = rec.stats()
        assert s["tx_frames"] == 200 and s["record_errors"] > 0
        assert s["recorded_frames"] + s["record_dropped"] == 200
        rec.close()
        back = list(iter_pcapng(mnt / "rec.pcapng"))
        assert len(back) == s["recorded_frames"] > 0
        shutil.copy(mnt / "rec.pcapng", tmp_path / "copy.pcapng")
        tshark_ok(tmp_path / "copy.pcapng")
