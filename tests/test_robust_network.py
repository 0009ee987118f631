"""Campaign 2 (hostile network) in the test suite: adversarial frames through the bridge into the
card (tools/campaign_network.py), plus named worst cases one by one.

The libFuzzer/ASan run of segment() and the replay of its regressions live in
tests/test_native_fuzz.py; the atheris pcapng target's brief CI run is in test_robust_files.py.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import campaign_network as cn  # noqa: E402

from a2065.runners.replay import Runner  # noqa: E402
from bridge_helpers import PEER_MAC, ListBackend, ipv4_tcp  # noqa: E402
from pcap_backend.base import Packet, PacketMeta  # noqa: E402

CARD = bytes.fromhex("008010123456")


def test_twenty_thousand_hostile_frames_reach_the_card_only_within_the_wire_maximum():
    r = cn.run(seed=1, frames=20_000, episode_frames=500)
    assert r["frames"] == 20_000 and not r["failures"]
    assert r["max_offered"] <= 1522
    assert r["super_packets"] > 5_000 and r["segments_made"] > 50_000
    assert r["driver_frames"] > 5_000
    # the adversarial headers really hit the refusal paths, each counted under its own name
    for reason in ("EthertypeError", "IpHeaderError", "TruncatedError", "VlanError",
                   "FragmentError", "own_frame", "filtered", "queue_full"):
        assert r["dropped"].get(reason, 0) > 0, (reason, r["dropped"])


def _through_card(frames, *, meta=None, delivery="lossless", syn=None):
    """Each frame once through Runner (board + bridge + Linux driver); returns what the chip was
    offered, what the driver got, and the bridge's stats."""
    backend = ListBackend([Packet(1000 * i, f, meta) for i, f in enumerate(frames)])
    got = []
    runner = Runner(backend, delivery=delivery, mac=CARD, on_receive=lambda f, t: got.append(f))
    offered = []
    real = runner.chip.receive

    def receive(frame, *, has_fcs=False):
        offered.append(bytes(frame))
        return real(frame, has_fcs=has_fcs)

    runner.chip.receive = receive
    if syn is not None:
        runner.driver.send(syn)
    runner.run()
    s = runner.bridge.stats()
    assert s["frames_in"] == s["delivered"] + s["queued"] + s["dropped_total"]
    assert runner.chip.counters_balanced()
    return offered, got, s


def _ipv6(next_header, ext, l4, *, plen=None, src=PEER_MAC, dst=CARD):
    body = ext + l4
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(body) if plen is None else plen, next_header, 64,
                      b"\xfd" + bytes(14) + b"\x02", b"\xfd" + bytes(14) + b"\x01")
    return dst + src + b"\x86\xdd" + hdr + body


def _tcp(flags=0x18, doff=5, payload=b"", urg=0):
    return struct.pack("!HHIIBBHHH", 5001, 40000, 1, 0, doff << 4, flags, 65535, 0, urg) + \
        bytes(max(0, doff * 4 - 20)) + payload


def test_an_ipv6_chain_of_two_hundred_extension_headers_is_dropped_and_counted():
    ext = b"".join(bytes((0 if i < 199 else 6, 0)) + bytes(6) for i in range(200))
    f = _ipv6(0, ext, _tcp(payload=bytes(40_000)))
    offered, got, s = _through_card([f])
    assert offered == [] and got == []
    assert s["dropped_total"] == 1 and s["segment_failures"]


def test_an_ipv6_extension_header_whose_length_runs_past_the_frame_is_dropped_and_counted():
    ext = bytes((6, 255)) + bytes(6)  # claims 2048 bytes
    f = _ipv6(0, ext, _tcp(payload=bytes(1600)))[:1600]
    offered, got, s = _through_card([f])
    assert all(len(x) <= 1514 for x in offered)
    assert s["delivered"] == 0 and s["dropped_total"] == 1


def test_a_tcp_data_offset_past_the_end_of_the_frame_is_dropped_not_split():
    f = ipv4_tcp(bytes(3000), dst_mac=CARD)
    l4 = 14 + 20
    f = f[:l4 + 12] + bytes((15 << 4,)) + f[l4 + 13:]
    f = f[:l4 + 60 - 8]  # doff says 60 bytes of header; the frame ends inside it
    f = f[:16] + struct.pack("!H", len(f) - 14) + f[18:]
    offered, got, s = _through_card([f + bytes(1600)])
    assert all(len(x) <= 1514 for x in offered)
    assert s["delivered"] == 0 and s["dropped_total"] >= 1


def test_a_lying_ipv4_total_length_never_makes_frames_from_bytes_that_do_not_exist():
    f = ipv4_tcp(bytes(3000), dst_mac=CARD)
    f = f[:16] + struct.pack("!H", 65535) + f[18:]
    offered, got, s = _through_card([f])
    assert offered == [] and s["delivered"] == 0
    assert s["dropped_total"] == 1 and s["segment_failures"], s["dropped"]


@pytest.mark.parametrize("flags", [0x03, 0x23, 0x21, 0x3F], ids=["syn-fin", "syn-fin-urg", "urg-fin", "all"])
def test_super_packets_with_syn_fin_or_urg_reach_the_card_only_as_wire_sized_frames(flags):
    f = ipv4_tcp(bytes(20_000), dst_mac=CARD, flags=flags)
    offered, got, s = _through_card([f], meta=PacketMeta(1, 1448, False, 0, 0, True))
    assert all(60 <= len(x) <= 1514 for x in offered)
    assert all(len(x) <= 1514 for x in got)
    assert s["delivered"] + s["dropped_total"] == s["frames_in"] >= 1


def test_an_mss_of_zero_learned_from_the_guest_syn_is_not_used_to_split_a_stream():
    syn = ipv4_tcp(b"", dst_mac=PEER_MAC, src_mac=CARD, src="10.0.0.1", dst="10.0.0.2",
                   sport=40000, dport=5001, flags=0x02, options=b"\x02\x04\x00\x00")
    f = ipv4_tcp(bytes(8000), dst_mac=CARD)
    offered, got, s = _through_card([f], syn=syn)
    assert all(len(x) <= 1514 for x in offered)
    assert s["delivered"] + s["dropped_total"] >= 1


def test_eight_stacked_vlan_tags_on_a_super_packet_are_dropped_and_counted():
    f = ipv4_tcp(bytes(9000), dst_mac=CARD)
    f = f[:12] + struct.pack("!HH", 0x88A8, 1) * 8 + f[12:]
    offered, got, s = _through_card([f])
    assert offered == [] and s["dropped"].get("VlanError") == 1


@pytest.mark.parametrize("size", [0, 1, 13, 14, 1515, 65535])
def test_junk_frames_of_any_size_never_reach_the_card_over_the_wire_maximum(size):
    f = (CARD + PEER_MAC + b"\x88\xb5" + bytes(65535))[:size]
    offered, got, s = _through_card([f], delivery="hardware")
    assert all(60 <= len(x) <= 1514 for x in offered)
    assert s["frames_in"] == 1


def test_gso_metadata_that_lies_about_offsets_is_refused_not_trusted():
    f = ipv4_tcp(bytes(10_000), dst_mac=CARD)
    meta = PacketMeta(1, 65535, True, 65535, 65535, False)
    offered, got, s = _through_card([f], meta=meta)
    assert all(len(x) <= 1514 for x in offered)
    assert s["dropped_total"] + s["delivered"] >= 1


def test_hostile_frames_through_the_bridge_run_clean_on_the_asan_and_ubsan_build_of_the_c_core(
        tmp_path):
    import os
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    from conftest import require_package, which
    require_package("build-essential", which(os.environ.get("CC", "gcc")), "the sanitized build")
    r = subprocess.run(["sh", str(root / "tools" / "build_asan.sh"), str(tmp_path)], cwd=root,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHON=sys.executable))
    require_package("libasan8", r.returncode != 77, r.stderr.strip())
    assert r.returncode == 0, r.stderr[-2000:]
    so = next((tmp_path / "native").glob("_native*.so"))
    libasan = subprocess.run([os.environ.get("CC", "gcc"), "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, A2065_NATIVE_LIB=str(so), LD_PRELOAD=libasan, PYTHONMALLOC="malloc",
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    env.pop("A2065_NATIVE", None)
    code = ("import native, json; assert native.IMPLEMENTATION == 'c', native.IMPLEMENTATION; "
            "from tools import campaign_network as cn; r = cn.run(seed=4, frames=3000); "
            "print(json.dumps({'frames': r['frames'], 'segments': r['segments_made'], "
            "'failures': r['failures']}))")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    tail = (p.stdout + p.stderr)[-3000:]
    assert p.returncode == 0, tail
    assert "AddressSanitizer" not in tail and "runtime error" not in tail, tail
    assert '"failures": []' in p.stdout and '"frames": 3000' in p.stdout, tail
