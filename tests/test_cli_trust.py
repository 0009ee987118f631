"""The a2065 command as a careful user probes it (issue 14): no silent loss, no destroyed input,
honest exit codes, one-line errors, the inputs users have, help that is complete."""
from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from a2065.cli.main import build_parser
from conftest import library_loads, require_package, which
from pcap_backend.capfile import iter_capture, pcapng_header, pcapng_packet

ROOT = Path(__file__).resolve().parent.parent
TCP4 = ROOT / "fixtures" / "captures" / "tcp4_tso.pcapng"
UDP4 = ROOT / "fixtures" / "captures" / "udp4_gso.pcapng"
TCP4_SHA = "ab044d16b4313f7c"  # the first hex digits of the SHA-256 in tcp4_tso.pcapng's comment


def a2065(*args, cwd=None, timeout=120, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "a2065", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=timeout, **kw)


def one_error_line(stderr: str, command: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith(f"a2065 {command}: error: ")]
    assert lines and "Traceback" not in stderr, stderr
    return lines[0]


def udp_to(ns: str, ip: str, count: int = 3, gap: float = 0.3, size: int = 5) -> None:
    """A few UDP datagrams from namespace `ns` to `ip` (the kernel ARPs for it first)."""
    import socket
    from pcap_backend.netns import in_netns
    with in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        for _ in range(count):
            try:
                s.sendto(b"a2065"[:size].ljust(size, b"."), (ip, 9))
            except OSError:  # an ICMP error from an earlier datagram: sending went through
                pass
            time.sleep(gap)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def classic_pcap(path, nsec: bool, big_endian: bool = False):
    """The fixture's packets as classic pcap, written here with struct (an encoder of its own)."""
    e = ">" if big_endian else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for cf in iter_capture(TCP4):
        sec, ns = divmod(cf.ts_ns, 1_000_000_000)
        out.append(struct.pack(e + "IIII", sec, ns if nsec else ns // 1000, len(cf.frame), len(cf.frame))
                   + cf.frame)
    Path(path).write_bytes(b"".join(out))


# -- 1. no silent loss, no destroyed input ----------------------------------------------------

def test_recording_onto_the_input_is_refused_with_exit_2_and_the_input_is_unchanged(tmp_path):
    cap = tmp_path / "x.pcapng"
    shutil.copy(TCP4, cap)
    before = sha(cap)
    for target in (cap, tmp_path / "." / "x.pcapng"):
        r = a2065("replay", cap, "--record", target)
        assert r.returncode == 2
        assert "input file" in one_error_line(r.stderr, "replay")
    link = tmp_path / "alias.pcapng"
    link.symlink_to(cap)
    assert a2065("replay", cap, "--record", link).returncode == 2
    assert sha(cap) == before


def test_recording_into_a_directory_or_a_missing_directory_is_a_one_line_usage_error(tmp_path):
    for target, words in ((tmp_path, "is a directory"), (tmp_path / "no" / "x.pcapng", "does not exist")):
        r = a2065("replay", TCP4, "--record", target)
        assert r.returncode == 2 and words in one_error_line(r.stderr, "replay")


@pytest.mark.root
def test_a_full_disk_while_recording_exits_1_with_a_one_line_enospc_message_and_a_json_field(tmp_path):
    from test_backend_pcapng import small_tmpfs
    with small_tmpfs(tmp_path / "small", "40k") as mnt:
        r = a2065("replay", TCP4, "--record", mnt / "rec.pcapng", "--json")
        assert r.returncode == 1
        assert "ENOSPC" in one_error_line(r.stderr, "replay")
        doc = json.loads(r.stdout)
        assert "ENOSPC" in doc["record_error"] and doc["ok"] is False
        # what was written is a clean file up to the last complete block
        assert len(list(iter_capture(mnt / "rec.pcapng"))) > 0


def test_a_recording_nobody_may_write_is_a_usage_error_before_the_replay_runs(tmp_path):
    require_package("util-linux", which("setpriv"), "setpriv")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cmd = [sys.executable, "-m", "a2065", "replay", str(TCP4), "--record", str(locked / "r.pcapng")]
    else:
        locked = Path(tempfile.mkdtemp(prefix="a2065-locked-"))
        os.chmod(locked, 0o755)  # root's: not writable by uid 65534
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
               "a2065", "replay", str(TCP4), "--record", str(locked / "r.pcapng")]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 2 and "not writable" in one_error_line(r.stderr, "replay")
        assert not (locked / "r.pcapng").exists()
    finally:
        if os.geteuid() == 0:
            shutil.rmtree(locked)


def test_a_replay_recording_carries_the_captures_own_real_world_timestamps_in_ns(tmp_path):
    out = tmp_path / "rec.pcapng"
    r = a2065("replay", TCP4, "--record", out)
    assert r.returncode == 0, r.stderr
    src = [c.ts_ns for c in iter_capture(TCP4)]
    got = [c.ts_ns for c in iter_capture(out)]
    assert min(got) == min(src) and time.gmtime(min(got) / 1e9).tm_year == 2026
    assert max(got) <= max(src) + 10**9


# -- 2. exit codes, and no traceback ------------------------------------------------------------

def test_a_stream_that_does_not_verify_exits_1_naming_the_mismatch(tmp_path):
    data = bytearray(TCP4.read_bytes())
    cfs = list(iter_capture(TCP4))
    big = max(range(len(cfs)), key=lambda i: len(cfs[i].frame))
    payload = bytes(cfs[big].frame)
    i = data.find(payload)
    data[i + len(payload) - 1] ^= 0xFF  # one payload byte of the largest super-packet
    bad = tmp_path / "flipped.pcapng"
    bad.write_bytes(bytes(data))
    r = a2065("replay", bad, "--json")
    assert r.returncode == 1
    assert "MISMATCH" in one_error_line(r.stderr, "replay")
    doc = json.loads(r.stdout)
    assert doc["verified"] is False and doc["ok"] is False


@pytest.mark.parametrize("args,words", [
    (["bridge", "--iface", "lo", "--mac", "ff:ff:ff:ff:ff:ff"], "broadcast"),
    (["bridge", "--iface", "lo", "--mac", "01:00:5e:00:00:01"], "multicast"),
    (["bridge", "--iface", "lo", "--mac", "00:00:00:00:00:00"], "not a usable"),
    (["replay", str(TCP4), "--mac", "01:00:5e:00:00:01"], "multicast"),
    (["bridge", "--iface", "lo", "--duration", "-1"], "positive"),
    (["bridge", "--iface", "lo", "--duration", "nan"], "positive"),
    (["bridge", "--iface", "lo", "--forward", "tcp:8080"], "passt or slirp"),
    (["bridge", "--backend", "slirp", "--forward", "tcp:99999"], "1-65535"),
    (["bridge", "--backend", "slirp", "--iface", "eth0"], "not used"),
    (["bridge", "--iface", "x" * 16], "interface name"),
    (["bridge", "--iface", "lo", "--netns", "a65-no-such-ns"], "no such network namespace"),
    (["bridge", "--iface", "lo", "--guest-netns", "a65-no-such-ns"], "no such network namespace"),
    (["bridge", "--iface", "lo", "--record", "/a65-no-such-dir/r.pcapng"], "does not exist"),
    (["inspect", "/"], "is a directory"),
    (["bench", "--only", "native,warp"], "warp"),
])
def test_every_bad_argument_is_exit_2_with_one_line_naming_the_problem(args, words):
    r = a2065(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and words in r.stderr


@pytest.mark.root
def test_usage_errors_are_caught_before_anything_is_opened_no_tap_appears():
    from pcap_backend.netns import netns, run
    with netns("a2ue") as ns:
        for bad in (["--mac", "01:00:5e:00:00:01"], ["--duration", "0"],
                    ["--record", "/a65-no-such-dir/r.pcapng"], ["--forward", "tcp:80"]):
            r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "a2065", "bridge",
                                "--backend", "tap", "--iface", "a65probe0", "--guest-tap",
                                "a65probe1", *bad], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            links = run(["ip", "-br", "link"], ns=ns).stdout
            assert "a65probe" not in links


@pytest.mark.root
def test_a_bridge_card_mac_the_kernel_refuses_and_a_netns_without_privilege_are_one_line_failures():
    from pcap_backend.netns import netns
    with netns("a2mf") as ns:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-m", "a2065", "bridge", "--iface", "lo", "--netns", ns,
                            "--duration", "1"], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert r.returncode == 1
    line = one_error_line(r.stderr, "bridge")
    assert "Permission" in line or "privilege" in line or "CAP_" in line, line


def test_inspect_of_an_unreadable_file_is_a_one_line_failure_with_exit_1(tmp_path):
    if os.geteuid() == 0:
        require_package("util-linux", which("setpriv"), "setpriv")
    where = Path(tempfile.mkdtemp(prefix="a2065-unreadable-"))  # traversable by every user
    os.chmod(where, 0o755)
    try:
        p = where / "secret.snap"
        p.write_bytes(b"x" * 64)
        p.chmod(0)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        r = subprocess.run(drop + [sys.executable, "-m", "a2065", "inspect", str(p)],
                           capture_output=True, text=True, timeout=60, cwd="/",
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    finally:
        shutil.rmtree(where)
    assert r.returncode == 1
    assert "Permission denied" in one_error_line(r.stderr, "inspect")


def test_messages_say_things_once():
    for backend in ("afpacket", "pcap"):
        r = a2065("bridge", "--backend", backend, "--iface", "a65nosuch0", "--duration", "1")
        assert r.returncode == 2
        line = one_error_line(r.stderr, "bridge")
        assert line.count("ip link") == 1 and line.count("a65nosuch0") == 1
        assert not re.search(r"(\b[\w ]{6,}): \1", line), line  # "X: X"
    r = a2065("inspect", ROOT / "README.md")
    line = one_error_line(r.stderr, "inspect")
    assert line.lower().count("snapshot") == 2  # "is not a readable A2065 snapshot ... snapshot.save"
    r = a2065("bridge", "--help")
    assert "first free number" in r.stdout


# -- 3. the inputs users have ---------------------------------------------------------------

@pytest.mark.parametrize("nsec,big_endian", [(False, False), (True, False), (True, True)])
def test_classic_pcap_in_microseconds_or_nanoseconds_replays_the_same_stream(tmp_path, nsec, big_endian):
    p = tmp_path / "c.pcap"
    classic_pcap(p, nsec, big_endian)
    r = a2065("replay", p, "--direction", "all", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["stream_bytes"] == 2097152
    assert doc["stream_sha256"].startswith(TCP4_SHA)


def test_a_truncated_capture_replays_its_intact_packets_then_says_where_it_was_cut(tmp_path):
    data = TCP4.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:100_000])
    r = a2065("replay", cut, "--json")
    assert r.returncode == 1
    line = one_error_line(r.stderr, "replay")
    assert "cut at byte offset 81,880" in line and "16 intact packets" in line
    doc = json.loads(r.stdout)
    assert doc["guest_frames"] > 0 and "truncated" in doc["capture_error"]
    one_byte_short = tmp_path / "short.pcapng"
    one_byte_short.write_bytes(data[:-1])
    r = a2065("replay", one_byte_short, "--direction", "all", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["frames_offered"] == 94


# -- 5. help and docs ---------------------------------------------------------------------------

def _subparsers():
    p = build_parser()
    action = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_option_of_every_subcommand_has_help_with_its_default():
    for name, sp in _subparsers().items():
        text = sp.format_help()
        for a in sp._actions:
            if not a.option_strings or a.dest == "help":
                continue
            assert a.help, (name, a.option_strings)
            flag = a.nargs == 0
            assert flag or "default" in a.help or a.default not in (None,), (name, a.option_strings)
        assert "%(default)" not in text


def test_the_top_level_help_lists_every_subcommand_and_nothing_unavailable():
    r = a2065("--help")
    assert r.returncode == 0
    for name in _subparsers():
        assert re.search(rf"^\s+{name}\s", r.stdout, re.M), name
    assert "not available" not in r.stdout


def test_the_readme_synopsis_names_every_option_of_every_subcommand():
    readme = (ROOT / "README.md").read_text()
    synopsis = re.search(r"## The command\n\n```\n(.*?)```", readme, re.S).group(1)
    blocks = re.split(r"^(?=a2065 )", synopsis, flags=re.M)
    for name, sp in _subparsers().items():
        block = next(b for b in blocks if b.startswith(f"a2065 {name}"))
        for a in sp._actions:
            for opt in a.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert opt in block, (name, opt)


def test_a_long_replay_shows_progress_on_a_terminal_and_nothing_when_piped(tmp_path):
    long = tmp_path / "long.pcapng"
    cfs = list(iter_capture(TCP4))
    span = cfs[-1].ts_ns - cfs[0].ts_ns + 1_000_000
    with open(long, "wb") as f:
        f.write(pcapng_header())
        for k in range(12):
            for c in cfs:
                f.write(pcapng_packet(c.ts_ns + k * span, c.frame, c.outgoing, c.meta))
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "a2065", "replay", str(long), "--timing", "wire"],
                         stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    seen = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.communicate(timeout=120)
    os.close(master)
    assert re.search(rb"replay \(segment, wire\): [\d,]+/[\d,]+ frames \(\d+%\), [\d,]+ frames/s", seen), seen[-500:]
    r = a2065("replay", long, "--timing", "wire")
    assert "frames/s" not in r.stderr


def test_the_udp_demo_speaks_of_a_udp_stream_and_not_of_the_tcp_limit(tmp_path):
    r = a2065("demo", "--capture", "udp4", "--out", tmp_path, "--no-m68k")
    assert r.returncode == 0, r.stderr
    assert "UDP stream" in r.stdout and "TCP" not in r.stdout


def test_version_prints_the_package_version():
    r = a2065("--version")
    assert r.returncode == 0 and r.stdout.startswith("a2065 ")


# -- 1 and 4 live: flushed recordings, the rootless recipe -----------------------------------

@pytest.mark.root
def test_a_live_recording_is_readable_while_running_and_after_sigkill_with_wall_clock_times(tmp_path):
    from a2065.rig.veth import bridged_namespaces
    rec = tmp_path / "live.pcapng"
    t0 = time.time_ns()
    with bridged_namespaces("a2fl", ["--record", str(rec), "--timing", "fast"], duration=60) as t:
        udp_to(t.ns_a, "10.9.0.2")
        time.sleep(1.5)  # at most one flush interval (0.5 s) plus slack
        seen = list(iter_capture(rec))
        assert len(seen) >= 2 and all(c.outgoing is not None for c in seen)
        t.bridge.send_signal(signal.SIGKILL)
        t.bridge.wait(10)
    after = list(iter_capture(rec))
    assert len(after) >= len(seen)
    assert all(t0 - 10**9 <= c.ts_ns <= time.time_ns() for c in after)


@pytest.mark.root
def test_a_live_recording_that_fills_its_disk_stops_the_bridge_with_exit_1_and_says_enospc(tmp_path):
    from a2065.rig.veth import bridged_namespaces
    from test_backend_pcapng import small_tmpfs
    with small_tmpfs(tmp_path / "small", "8k") as mnt:
        with bridged_namespaces("a2fd", ["--record", str(mnt / "live.pcapng"), "--timing", "fast"],
                                duration=30) as t:
            udp_to(t.ns_a, "10.9.0.2", count=12, gap=0.1, size=1400)
            out, err = t.bridge.communicate(timeout=30)
            code = t.bridge.returncode
        assert code == 1, err
        assert "ENOSPC" in one_error_line(err, "bridge")
        assert "ENOSPC" in json.loads(out)["record_error"]
        assert len(list(iter_capture(mnt / "live.pcapng"))) > 0  # intact up to the last block


@pytest.mark.root
def test_the_rootless_recipe_of_security_md_works_as_an_unprivileged_user(tmp_path):
    """SECURITY.md, "A pre-made persistent TAP owned by the user", run as uid 65534 with no
    capabilities, in a namespace; /dev/net/tun readable and writable by the user as the recipe
    requires (a private device node, bound over it in a mount namespace of the child only)."""
    for tool in ("setpriv", "unshare"):
        require_package("util-linux", which(tool), tool)
    require_package("libslirp0", library_loads("slirp", "load_libslirp"))
    text = (ROOT / "SECURITY.md").read_text()
    recipe = re.search(r"3\. \*\*A pre-made persistent TAP.*?```sh\n(.*?)```", text, re.S).group(1)
    lines = [ln.split("#")[0].strip() for ln in recipe.strip().splitlines()]
    assert lines[0] == 'sudo ip tuntap add dev a2065g0 mode tap user "$USER"'
    from pcap_backend.netns import netns, run
    dev = Path(tempfile.mkdtemp(prefix="a2065-tun-"))
    try:
        with netns("a2rl") as ns:
            run(["ip", "link", "set", "lo", "up"], ns=ns)
            for ln in lines:
                if ln.startswith("sudo "):  # the administrator's part, for user 65534
                    argv = ln[5:].replace('"$USER"', "65534").split()
                    run(argv, ns=ns)
            bridge_cmd = [ln for ln in lines if ln.startswith("a2065 bridge")][0].split()[2:]
            run(["ip", "addr", "add", "10.0.2.15/24", "dev", "a2065g0"], ns=ns)
            shell = (f"mount -t tmpfs none {dev} && mknod -m 666 {dev}/tun c 10 200 && "
                     f"mount --bind {dev}/tun /dev/net/tun && exec setpriv --reuid=65534 "
                     f"--regid=65534 --clear-groups {sys.executable} -m a2065 bridge "
                     f"{' '.join(bridge_cmd)} --duration 4 --json")
            p = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "-m", "--propagation",
                                  "private", "sh", "-c", shell], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd="/",
                                 env=dict(os.environ, PYTHONPATH=str(ROOT)))
            time.sleep(1.5)
            udp_to(ns, "10.0.2.2")
            out, err = p.communicate(timeout=60)
    finally:
        shutil.rmtree(dev, ignore_errors=True)
    assert p.returncode == 0, err
    assert "Traceback" not in err
    st = json.loads(out)
    # the guest kernel's ARP went out through the card and libslirp's answer came back to it
    assert st["guest"]["from_guest"] > 0 and st["guest"]["to_guest"] > 0


def test_inspect_decodes_descriptors_big_endian_whatever_bswp_says(tmp_path):
    """BSWP swaps buffer bytes only; a running card with BSWP=0 still owns its RX descriptors
    (the old decoder read them little-endian and showed them host-owned at wrong addresses)."""
    from a2065 import snapshot
    state = snapshot.from_bytes((ROOT / "fixtures" / "snapshots" / "a2065-v1-running-rx.snap").read_bytes())
    docs = []
    for bswp in (4, 0):
        state["chip"]["csr3"] = (state["chip"]["csr3"] & ~4) | bswp
        p = tmp_path / f"bswp{bswp}.snap"
        p.write_bytes(snapshot.to_bytes(state))
        r = a2065("inspect", p, "--json")
        assert r.returncode == 0, r.stderr
        docs.append(json.loads(r.stdout)["rx_ring"]["descriptors"])
    assert docs[0] == docs[1]
    chip_owned = [d for d in docs[1] if d["own"] == "chip"]
    assert chip_owned and all(0x8000 <= d["addr"] < 0x10000 and d["bcnt"] == 1544 for d in chip_owned)
