"""passt and libslirp through the emulated card (issue 9).

Root tests use the guest-namespace rig (tests/test_usermode_rig.py): the guest kernel behind the
card's Python driver gets a DHCP lease, moves 10 MB through the NAT to a server on the host
namespace's loopback (SHA-256 at both ends), and a forwarded port reaches a server in the guest.
The host namespace has only a loopback, so nothing can leave the machine. Unprivileged tests run
the card + backend as uid 65534 (setpriv) in a namespace made for them, with a scripted guest.

Debian packages: passt, libslirp0, udhcpc (optional: a Python DHCP client is used without it),
iproute2, util-linux (setpriv, unshare).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from test_usermode_rig import (GUEST_MAC, ROOT, GuestRig, guest_download, scripted_guest,
                               sha_stream, tcp_server)

from pcap_backend.base import BackendUnavailable
from conftest import library_loads, require_package, requires_package, which
from pcap_backend.backends.usermode import PeerGone, PeerUnreachable, make_usermode_backend


need_slirp = requires_package("libslirp0", library_loads("slirp", "load_libslirp"))
need_passt = requires_package("passt", which("passt"))

TEN_MB = 10 * 1000 * 1000


def _rig_backend(name, **opts):
    if name == "passt":
        return lambda ns: make_usermode_backend("passt", netns=ns, **opts)
    return lambda ns: make_usermode_backend("slirp", **opts)


def own_gateway_address(ns, addr="10.0.2.2"):
    """Give the host namespace the gateway's address on a veth pair that leads nowhere.

    passt relays the guest's ICMP echo to the address the guest pinged, literally (its gateway
    mapping covers TCP/UDP only), through an unprivileged ping socket; in real use that is the
    host's router. The test's host namespace has only a loopback, so it owns the address itself
    and the kernel answers."""
    from netns import run, unique
    a, b = unique("a2gw"), unique("a2gx")
    run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], ns=ns)
    run(["ip", "addr", "add", f"{addr}/32", "dev", a], ns=ns)
    run(["ip", "link", "set", a, "up"], ns=ns)
    run(["ip", "link", "set", b, "up"], ns=ns)


def _download(rig, nbytes):
    # from the host's 127.0.0.1 through the gateway 10.0.2.2, which the NAT maps to it
    n, got, sha, res, _ = guest_download(rig, nbytes, timeout=120, join=30)
    rig.check()
    return n, got, sha, res


def _upload_from_guest(rig, nbytes):
    data, sha = sha_stream(nbytes, seed=3)
    srv = rig.socket_in(rig.host_ns, socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    th, res = tcp_server(srv)
    cli = rig.socket_in(rig.guest_ns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        cli.settimeout(120)
        cli.connect(("10.0.2.2", srv.getsockname()[1]))
        cli.sendall(data)
        cli.shutdown(socket.SHUT_WR)
        cli.recv(1)  # the server closes after reading to EOF
        th.join(60)
    finally:
        cli.close()
    rig.check()
    return sha, res


def _upload_to_guest(rig, host_port, guest_port, nbytes):
    data, sha = sha_stream(nbytes, seed=9)
    srv = rig.socket_in(rig.guest_ns, socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", guest_port))
    srv.listen(1)
    th, res = tcp_server(srv)
    cli = rig.socket_in(rig.host_ns, socket.AF_INET, socket.SOCK_STREAM)
    try:
        cli.settimeout(60)
        for _ in range(50):  # passt/libslirp bind the forwarded port at start-up
            try:
                cli.connect(("127.0.0.1", host_port))
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        cli.sendall(data)
        cli.shutdown(socket.SHUT_WR)
        th.join(60)
    finally:
        cli.close()
    rig.check()
    return sha, res


# ---------------------------------------------------------------------------------------------
# guest kernel behind the card (root)

@pytest.mark.root
@need_slirp
def test_slirp_guest_kernel_leases_an_address_and_downloads_10_mb_intact_from_host_loopback():
    with GuestRig(_rig_backend("slirp")) as rig:
        lease = rig.dhcp()
        assert lease["ip"] == "10.0.2.15" and lease["router"] == "10.0.2.2"
        from test_usermode_vde import kernel_ping
        assert kernel_ping(rig.guest_ns, "10.0.2.2"), "libslirp did not answer the guest's ping"
        n, got, sha, res = _download(rig, TEN_MB)
        assert "error" not in res, res
        assert n == TEN_MB and got == sha
        st = rig.pump.runner.stats()
        assert st["bridge"]["missed"] == 0 and st["bridge"]["dropped_total"] == 0
        assert st["backend"]["rx_bytes"] >= TEN_MB


@pytest.mark.root
@need_slirp
def test_slirp_forwarded_host_port_reaches_a_server_in_the_guest():
    hp, gp = 20000 + os.getpid() % 20000, 8080
    with GuestRig(_rig_backend("slirp", hostfwd=[("tcp", "127.0.0.1", hp, gp)])) as rig:
        rig.dhcp()
        sha, res = _upload_to_guest(rig, hp, gp, 1 << 20)
        assert res.get("sha256") == sha and res["bytes"] == 1 << 20


@pytest.mark.root
@need_passt
def test_passt_guest_kernel_leases_the_configured_address_and_its_ping_is_relayed():
    def make(ns):
        own_gateway_address(ns)
        return make_usermode_backend("passt", netns=ns)

    with GuestRig(make) as rig:
        lease = rig.dhcp()
        assert lease["ip"] == "10.0.2.15" and lease["router"] == "10.0.2.2"
        from test_usermode_vde import kernel_ping
        assert kernel_ping(rig.guest_ns, "10.0.2.2"), "passt did not relay the guest's ping"
        assert rig.backend.link_up and rig.backend.stats()["child_running"]


@pytest.mark.root
@need_passt
def test_passt_guest_kernel_downloads_10_mb_intact_from_host_loopback():
    with GuestRig(_rig_backend("passt")) as rig:
        rig.dhcp()
        n, got, sha, res = _download(rig, TEN_MB)
        assert "error" not in res, res
        assert n == TEN_MB and got == sha
        st = rig.pump.runner.stats()
        assert st["bridge"]["missed"] == 0 and st["bridge"]["dropped_total"] == 0
        # the card pads bare ACKs to 60 bytes; passt gets them cut to their IP length
        assert st["backend"]["padding_trimmed"] > 0


@pytest.mark.root
@need_passt
def test_passt_forwarded_host_port_reaches_a_server_in_the_guest():
    hp = 20000 + (os.getpid() + 7) % 20000
    with GuestRig(_rig_backend("passt", tcp_ports=[f"{hp}:8080"])) as rig:
        rig.dhcp()
        sha, res = _upload_to_guest(rig, hp, 8080, 1 << 20)
        assert res.get("sha256") == sha and res["bytes"] == 1 << 20


@pytest.mark.root
@pytest.mark.parametrize("name", [
    pytest.param("slirp", marks=need_slirp), pytest.param("passt", marks=need_passt)])
def test_guest_kernel_uploads_10_mb_intact_through_the_card_to_a_host_loopback_server(name):
    with GuestRig(_rig_backend(name)) as rig:
        rig.dhcp()
        sha, res = _upload_from_guest(rig, TEN_MB)
        assert "error" not in res, res
        assert res["bytes"] == TEN_MB and res["sha256"] == sha
        st = rig.pump.runner.stats()
        assert st["backend"]["tx_bytes"] >= TEN_MB and st["bridge"]["tx_failed"] == 0


PASST_LONG_UPLOAD = pytest.mark.xfail(
    strict=False, raises=ConnectionResetError,
    reason="passt 0.0~git20230309 resets a guest->host upload about 25 s into it, with no "
           "retransmission, loss or zero window before its RST in passt's own capture; 100 MB "
           "uploads (~10 s) and 800 MB downloads (~32 s) pass")


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize("name", [
    pytest.param("slirp", marks=need_slirp),
    pytest.param("passt", marks=[need_passt, PASST_LONG_UPLOAD])])
def test_long_run_moves_200_mb_each_way_intact_through_the_card(name):
    with GuestRig(_rig_backend(name)) as rig:
        rig.dhcp()
        n, got, sha, res = _download(rig, 200 * 1000 * 1000)
        assert n == 200 * 1000 * 1000 and got == sha, res
        sha, res = _upload_from_guest(rig, 200 * 1000 * 1000)
        assert res.get("sha256") == sha, res
        assert rig.pump.runner.stats()["bridge"]["dropped_total"] == 0


# ---------------------------------------------------------------------------------------------
# without root: card + backend as uid 65534, a scripted guest

def _unprivileged(name, opts=None, *, userns=False):
    """Run the scripted guest in a child that drops to uid 65534 with no capabilities once its
    modules are imported (this interpreter's packages may sit under a 0700 /root); with `userns`
    the child then makes its own user + network namespace as that user (`unshare -Urn`)."""
    from netns import netns, run
    script = os.path.join(ROOT, "tests", "test_usermode_rig.py")
    opts = dict(opts or {}, _drop_to=65534, _userns=userns)
    argv = [sys.executable, script, "scripted", name, json.dumps(opts)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with netns("a2un") as ns:
        if name == "passt":  # libslirp answers pings to its gateway itself: it needs neither
            run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"], ns=ns)
            own_gateway_address(ns)
        if not userns:
            argv = ["ip", "netns", "exec", ns, *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, cwd="/tmp")
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["cap_eff"] == "0000000000000000" or userns
    return out


@pytest.mark.root
@need_slirp
def test_slirp_without_privileges_gives_a_scripted_guest_a_lease_and_answers_its_ping():
    out = _unprivileged("slirp")
    assert out["uid"] == 65534
    assert out["steps"] == ["offer", "ack", "arp", "ping"]
    assert out["ip"] == "10.0.2.15" and out["router"] == "10.0.2.2"


@pytest.mark.root
@need_slirp
def test_slirp_inside_an_unprivileged_users_own_namespaces_answers_the_scripted_guest():
    require_package("util-linux", which("setpriv") and which("unshare"), "setpriv, unshare")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "unshare", "-Urn", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not allowed here: {r.stderr.strip()}")
    out = _unprivileged("slirp", userns=True)
    assert out["steps"] == ["offer", "ack", "arp", "ping"] and out["euid"] == 0


@pytest.mark.root
@need_passt
def test_passt_without_privileges_gives_a_scripted_guest_a_lease_and_answers_its_ping():
    out = _unprivileged("passt")
    assert out["uid"] == 65534
    assert out["steps"][:3] == ["offer", "ack", "arp"]
    assert out["ip"] == "10.0.2.15" and out["mtu"] == 1500
    assert out["dns"] == []  # no resolver offered unless asked for (dns=...)
    assert out["steps"] == ["offer", "ack", "arp", "ping"], out


# ---------------------------------------------------------------------------------------------
# supervision and errors

@need_passt
def test_passt_exit_is_noticed_as_link_down_with_a_typed_error_and_sends_fail_counted():
    from netns import arp_request
    b = make_usermode_backend("passt")
    try:
        assert b.link_up and b.child_running
        os.kill(b.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while b.link_up and time.monotonic() < deadline:
            b.poll(0)
            time.sleep(0.01)
        assert not b.link_up
        assert isinstance(b.error, PeerGone) and "exit status -9" in str(b.error)
        with pytest.raises(PeerGone):
            b.raise_if_failed()
        assert b.send(arp_request(GUEST_MAC, "10.0.2.15", "10.0.2.2"), 0) is False
        assert b.stats()["tx_failed"] == {"peer_gone": 1}
    finally:
        b.close()


@need_passt
def test_passt_close_stops_the_child_and_removes_its_private_socket_directory():
    b = make_usermode_backend("passt")
    pid, path = b.pid, b.socket_path
    assert os.path.exists(path)
    b.close()
    assert not os.path.exists(os.path.dirname(path))
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@need_passt
def test_passt_that_cannot_start_is_peer_unreachable_with_its_own_words():
    with pytest.raises(PeerUnreachable, match="passt exited"):
        make_usermode_backend("passt", extra_args=["--no-such-option"])


def test_passt_missing_program_names_the_debian_package():
    with pytest.raises(BackendUnavailable, match="Debian package passt"):
        make_usermode_backend("passt", passt="/nonexistent/passt")


def test_slirp_missing_library_names_the_debian_package():
    with pytest.raises(BackendUnavailable, match="libslirp0"):
        make_usermode_backend("slirp", library=("libslirp-not-here.so.0",))


def test_unknown_usermode_backend_name_is_a_value_error():
    with pytest.raises(ValueError, match="passt, slirp, vde"):
        make_usermode_backend("tunnel")


@need_slirp
def test_slirp_answers_arp_and_ping_for_the_gateway_through_the_card_with_dns_disabled():
    b = make_usermode_backend("slirp")
    try:
        out = scripted_guest(b, timeout=10)
        st = b.stats()
        assert out["steps"] == ["offer", "ack", "arp", "ping"]
        assert st["config_version"] >= 1 and st["dns"] is False
        assert st["rx_frames"] >= 3 and st["tx_frames"] >= 4
    finally:
        b.close()


@pytest.mark.root
@need_slirp
def test_slirp_with_dns_disabled_lets_no_dns_query_leave_and_opens_no_socket_for_it():
    """In a namespace of its own (loopback only), so even a leak could reach nothing."""
    from netns import in_netns, netns
    from test_usermode_rig import ipv4_udp
    with netns("a2ud") as ns, in_netns(ns):
        b = make_usermode_backend("slirp")
        try:
            out = scripted_guest(b, timeout=10)
            query = (b"\x20\x65\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                     b"\x07example\x03com\x00\x00\x01\x00\x01")
            gw = bytes.fromhex(out["gateway_mac"].replace(":", ""))
            assert b.send(ipv4_udp(GUEST_MAC, gw, out["ip"], "10.0.2.3", 40000, 53, query), 0) \
                is False
            end, got = time.monotonic() + 0.5, []
            while time.monotonic() < end:
                got += b.poll(0)
                time.sleep(0.01)
            assert not [p for p in got if p.frame[23:24] == b"\x11"]  # no UDP came back
            assert "UDP" not in b.connection_info()
            assert b.stats()["tx_failed"] == {"dns_disabled": 1}
        finally:
            b.close()


@need_slirp
def test_slirp_refuses_a_forward_on_a_port_already_in_use():
    from pcap_backend.base import BackendError
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        with pytest.raises(BackendError, match="slirp_add_hostfwd"):
            make_usermode_backend("slirp", hostfwd=[("tcp", "127.0.0.1", s.getsockname()[1], 80)])
    finally:
        s.close()
