"""User-mode backends without a network: passt's framing against a stand-in daemon, libslirp's
timer heap on a synthetic clock. No root, no namespaces."""
from __future__ import annotations

import os
import stat
import sys
import textwrap
import time

import pytest

from pcap_backend.backends.usermode import PeerGone

from conftest import library_loads, require_package

FAKE_PASST = textwrap.dedent("""\
    #!{python}
    # Stand-in for passt: binds --socket, then echoes every frame back (qemu framing), written
    # in awkward pieces: the first frame byte by byte, later ones several per write.
    import socket, struct, sys, time
    args = sys.argv[1:]
    path = args[args.index("--socket") + 1]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    c, _ = s.accept()
    buf, out, n = b"", b"", 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        buf += d
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack("!I", buf[:4])[0]:
            k = 4 + struct.unpack("!I", buf[:4])[0]
            frame, buf = buf[:k], buf[k:]
            n += 1
            if frame[4:10] == b"EXIT!!":
                sys.exit(3)
            if n == 1:
                for i in range(len(frame)):
                    c.sendall(frame[i:i + 1])
                    time.sleep(0.001)
            else:
                out += frame
                if n % 3 == 0:
                    c.sendall(out)
                    out = b""
    """)


@pytest.fixture
def fake_passt(tmp_path):
    p = tmp_path / "passt"
    p.write_text(FAKE_PASST.format(python=sys.executable))
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(p)


def _collect(b, n, timeout=5.0):
    got = []
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got += [p.frame for p in b.poll(0)]
        time.sleep(0.002)
    return got


def _frame(i: int, size: int = 100) -> bytes:
    return bytes([2, 0, 0, 0, 0, i]) + bytes(6) + b"\x88\xb5" + bytes([i]) * (size - 14)


def test_passt_frames_split_across_reads_or_packed_together_come_out_whole_and_in_order(fake_passt):
    from pcap_backend.backends.passt import Passt
    b = Passt(passt=fake_passt, runas=str(os.geteuid()))   # ours: works as root and as a user
    try:
        frames = [_frame(i, 60 + 97 * i) for i in range(1, 7)]
        for f in frames:
            assert b.send(f, 0)
        assert _collect(b, 6) == frames
        st = b.stats()
        assert st["rx_frames"] == 6 and st["tx_frames"] == 6 and st["rx_errors"] == {}
    finally:
        b.close()


def test_passt_padding_is_cut_only_from_short_ip_frames(fake_passt):
    from pcap_backend.backends.passt import Passt
    from test_usermode_rig import ipv4_udp
    b = Passt(passt=fake_passt, runas=str(os.geteuid()))   # ours: works as root and as a user
    try:
        small = ipv4_udp(b"\x02" * 6, b"\x04" * 6, "10.0.2.15", "10.0.2.2", 1, 2, b"hi")
        padded = small + bytes(60 - len(small))
        other = _frame(9, 60)  # not IP: left alone
        other2 = _frame(10, 200)
        for f in (padded, other, other2):  # the stand-in holds frames 2 and 3 for one write
            b.send(f, 0)
        assert _collect(b, 3) == [small, other, other2]
        assert b.stats()["padding_trimmed"] == 1
    finally:
        b.close()


def test_passt_daemon_exit_mid_run_is_peer_gone_with_its_exit_status(fake_passt):
    from pcap_backend.backends.passt import Passt
    b = Passt(passt=fake_passt, runas=str(os.geteuid()))   # ours: works as root and as a user
    try:
        fd = b.fileno()
        b.send(b"EXIT!!" + bytes(54), 0)
        end = time.monotonic() + 5
        while b.link_up and time.monotonic() < end:
            b.poll(0)
            time.sleep(0.01)
        assert isinstance(b.error, PeerGone) and "exit status 3" in str(b.error)
        import select
        assert b.fileno() == fd and select.select([fd], [], [], 0)[0] == []  # still selectable
        assert b.send(_frame(1), 0) is False
    finally:
        b.close()
    assert not os.path.exists(b.socket_path)


def test_slirp_timers_fire_in_expiry_order_once_reschedules_win_and_freed_timers_stay_quiet():
    require_package("libslirp0", library_loads("slirp", "load_libslirp"))
    from pcap_backend.backends.slirp import Slirp
    now = [1_000_000_000]
    b = Slirp(clock=lambda: now[0])
    ffi, fired = b.ffi, []
    try:
        cb = ffi.callback("void(void *)", lambda op: fired.append(int(ffi.cast("uintptr_t", op))))
        t1 = b._cbs.timer_new(cb, ffi.cast("void *", 1), ffi.NULL)
        t2 = b._cbs.timer_new(cb, ffi.cast("void *", 2), ffi.NULL)
        t3 = b._cbs.timer_new(cb, ffi.cast("void *", 3), ffi.NULL)
        b._cbs.timer_mod(t1, 1_030, ffi.NULL)   # ms of the backend's clock
        b._cbs.timer_mod(t2, 1_010, ffi.NULL)
        b._cbs.timer_mod(t3, 1_020, ffi.NULL)
        b._cbs.timer_mod(t1, 1_040, ffi.NULL)   # rescheduled later: the 1_030 entry is stale
        b._cbs.timer_free(t3, ffi.NULL)
        b.poll(now[0])
        assert fired == []
        now[0] = 1_035_000_000
        b.poll(now[0])
        assert fired == [2]
        now[0] = 1_040_000_000
        b.poll(now[0])
        b.poll(now[0])
        assert fired == [2, 1] and b.stats()["timers_fired"] == 2
    finally:
        b.close()
