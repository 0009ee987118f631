"""Emulated machines on several hosts, joined by VDE's distributed plug vxvde (issue 13).

Root: two hosts simulated as two network namespaces on one veth "LAN" (a2065/rig/vde_hosts.py draws
it): four cards per host in two card processes per host (one `MultiCard` loop each, two cards
per loop), each card a `Vde("vxvde://239.98.x.y/port=P/ttl=1")` plug with its guest kernel in a
namespace of its own behind a TAP, and a `vde_plug vxvde://... tap://...` endpoint per host. No
switch process anywhere. The multicast route exists only inside the two host namespaces, which
have no other interface.

Without root: URLs are parsed as libvdeplug parses them; a URL whose plugin is not installed is
BackendUnavailable naming the plugin file, its Debian package and the installed plugins.

Debian packages: libvdeplug2 (library, vxvde and tap plugins), vdeplug (vde_plug), iproute2.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [p for p in (HERE, os.path.dirname(HERE)) if p not in sys.path]

import pytest  # noqa: E402

from pcap_backend.base import BackendUnavailable  # noqa: E402
from conftest import library_loads, require_package, requires_package, which  # noqa: E402


# ---------------------------------------------------------------------------------------------
# URLs and plugins (no root, no network)

def test_urls_split_into_plugin_and_address_as_libvdeplug_splits_them():
    from pcap_backend.backends.vde import parse_url
    assert parse_url("/tmp/sw") == ("vde", "/tmp/sw", "/tmp/sw")
    assert parse_url("vde:///tmp/sw[3]") == ("vde", "/tmp/sw[3]", "vde:///tmp/sw[3]")
    assert parse_url("vxvde://239.1.2.3/port=14879/vni=7") == \
        ("vxvde", "239.1.2.3/port=14879/vni=7", "vxvde://239.1.2.3/port=14879/vni=7")
    assert parse_url("vxvde://").plugin == "vxvde"
    assert parse_url("cmd://ssh h vde_plug vxvde://").address == "ssh h vde_plug vxvde://"
    with pytest.raises(ValueError):
        parse_url("")
    with pytest.raises(ValueError):
        parse_url("vx vde://x")


def test_plugin_packages_name_the_debian_packages():
    from pcap_backend.backends.vde import plugin_package
    assert plugin_package("vxvde") == "libvdeplug2"
    assert plugin_package("vde") == "libvdeplug2"
    assert plugin_package("slirp") == "libvdeplug-slirp"
    assert plugin_package("vlan") == "libvdeplug-vlan"
    assert "no Debian package" in plugin_package("nosuch")


needs_lib = requires_package("libvdeplug2", library_loads("vde", "load_libvdeplug"))


@needs_lib
def test_a_url_whose_plugin_is_not_installed_names_the_plugin_its_package_and_the_installed_ones(
        tmp_path, monkeypatch):
    from pcap_backend.backends.vde import Vde, installed_plugins
    monkeypatch.setenv("VDEPLUGIN_PATH", str(tmp_path))  # an empty plugin directory first
    with pytest.raises(BackendUnavailable) as e:
        Vde("a2065nosuchplugin://x")
    msg = str(e.value)
    assert "a2065nosuchplugin://" in msg and "libvdeplug_a2065nosuchplugin.so" in msg
    assert str(tmp_path) in msg and "installed plugins" in msg
    assert "vde://" in msg and "vde" in installed_plugins()


@needs_lib
def test_installed_plugins_are_the_files_in_the_plugin_directories(tmp_path, monkeypatch):
    from pcap_backend.backends.vde import find_plugin, installed_plugins, plugin_dirs
    (tmp_path / "libvdeplug_a2065fake.so").write_bytes(b"")
    (tmp_path / "notaplugin.so").write_bytes(b"")
    monkeypatch.setenv("VDEPLUGIN_PATH", str(tmp_path))
    assert plugin_dirs()[0] == str(tmp_path)
    assert "a2065fake" in installed_plugins() and "notaplugin" not in installed_plugins()
    assert find_plugin("a2065fake") == str(tmp_path / "libvdeplug_a2065fake.so")


@needs_lib
def test_a_plugin_file_that_does_not_load_is_reported_as_a_broken_install(tmp_path, monkeypatch):
    """libvdeplug finds libvdeplug_NAME.so but cannot dlopen it (here: an empty file)."""
    from pcap_backend.backends.vde import Vde
    (tmp_path / "libvdeplug_a2065broken.so").write_bytes(b"")
    monkeypatch.setenv("VDEPLUGIN_PATH", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="could not load its a2065broken:// plugin"):
        Vde("a2065broken://x")


# ---------------------------------------------------------------------------------------------
# two hosts (root)

def _require_topology():
    """Skip naming the package unless vde_plug and the vxvde/tap plugins are installed."""
    from a2065.rig.vde_hosts import vxvde_missing
    require_package("vdeplug", which("vde_plug"), "vde_plug")
    require_package("libvdeplug2", lambda: vxvde_missing() is None, "the vxvde and tap plugins")


@pytest.fixture
def two_hosts(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, TAP)")
    _require_topology()
    from a2065.rig.vde_hosts import TwoHosts
    with TwoHosts(cards_per_host=4, procs_per_host=2, log_dir=str(tmp_path)) as th:
        yield th


def ping_pairs(th, sources, targets, timeout=8.0):
    from a2065.rig.core import kernel_ping
    missed = []
    for a in sources:
        for b in targets:
            if a is not b and not kernel_ping(a.ns, b.ip, timeout=timeout):
                missed.append((a.index, b.index))
    return missed


def check_mesh(result: dict, nbytes: int) -> None:
    """Every stream arrived whole: bytes equal, SHA-256 equal at both ends and to the stream."""
    from a2065.rig import stream_bytes
    from a2065.rig.vde_hosts import stream_seed
    for (s, d), (sent, got) in result.items():
        assert sent is not None and got is not None, ((s, d), sent, got)
        assert sent["bytes"] == nbytes and got["bytes"] == nbytes and got["eof"], (s, d, sent, got)
        expect = hashlib.sha256(stream_bytes(stream_seed(s, d), nbytes)).hexdigest()
        assert sent["sha256"] == got["sha256"] == expect, (s, d)


def check_loop(st: dict) -> None:
    assert st["error"] is None, st["error"]
    for c in st["cards"]:
        assert c["chip"]["balanced"], c["chip"]
        assert c["chip"]["rx_missed"] == 0 and c["bridge"]["missed"] == 0, c["bridge"]
        assert c["guest"]["to_guest_failed"] == 0, c["guest"]
        assert c["backend"]["tx_failed"] == {}, c["backend"]
        assert c["backend"]["rx_errors"] == {}, c["backend"]
        assert c["backend"]["plugin"] == "vxvde" and c["backend"]["link_up"]
        assert c["driver"]["rx_frames"] == c["bridge"]["delivered"]


@pytest.mark.root
@pytest.mark.parametrize("nbytes", [96_000, pytest.param(4_000_000, marks=pytest.mark.slow)])
def test_eight_guests_on_two_hosts_resolve_ping_and_stream_to_every_other_over_vxvde(
        two_hosts, nbytes):
    """Four cards per host in two processes per host: every guest resolves every other (ARP:
    the card's MAC), pings it, and every pair carries a TCP stream intact (SHA-256 at both ends),
    all 28 streams at once, across the hosts and within each; the two vde_plug TAP endpoints
    reach every guest too."""
    th = two_hosts
    import json
    from netns import run
    from test_usermode_vde import neighbour_mac
    # the multicast stays inside: each host namespace holds only lo, the LAN veth and the TAP
    # of vde_plug, and has no default route
    for h, ns in enumerate(th.host_ns):
        links = {ln["ifname"] for ln in json.loads(run(["ip", "-j", "link", "show"], ns=ns).stdout)}
        assert links == {"lo", th.lan_dev[h], th.endpoint_tap[h]}, links
        routes = json.loads(run(["ip", "-j", "route", "show", "table", "all"], ns=ns).stdout)
        assert not [r for r in routes if r.get("dst") == "default"], routes
    guests = th.guests
    assert len(guests) == 8 and len({g.mac for g in guests}) == 8
    assert sum(len(v) for v in th.cards.values()) == 4
    assert ping_pairs(th, guests, guests) == []
    for a in guests:
        for b in guests:
            if a is not b:
                assert neighbour_mac(a.ns, b.ip) == b.mac, (a.index, b.index)
    # the hosts' own kernels, on the TAPs of vde_plug, reach every guest and each other
    from a2065.rig.core import kernel_ping
    for h, ns in enumerate(th.host_ns):
        for g in guests:
            assert kernel_ping(ns, g.ip, timeout=8), (h, g.index)
        assert kernel_ping(ns, th.endpoint_ip[1 - h], timeout=8), h
    flows = [(a.index, b.index) if (a.index + b.index) % 2 else (b.index, a.index)
             for a in guests for b in guests if a.index < b.index]
    assert len(flows) == 28
    check_mesh(th.mesh(flows, nbytes), nbytes)
    for h in (0, 1):
        for c in th.cards[h]:
            st = c.finish()
            check_loop(st)
            assert len(st["cards"]) == 2
            # each card carried its guest's streams out and in
            for card in st["cards"]:
                assert card["bridge"]["delivered_bytes"] > 3 * nbytes
                assert card["bridge"]["transmitted_bytes"] > 3 * nbytes


@pytest.mark.root
def test_killing_one_hosts_card_processes_leaves_the_other_hosts_streams_alone_and_they_rejoin(
        two_hosts):
    """Streams between host B's guests run while every card process of host A is killed
    (SIGKILL): they complete intact and never stop; B's loops see nothing (no failed transmit,
    no error). Host A's card processes are started again, as a user would: their guests are
    reachable from every guest of B at once (vxvde has no switch to rejoin, the plugs join the
    group again by themselves) and carry streams both ways intact."""
    th = two_hosts
    from a2065.rig import Rig, stream_bytes
    from a2065.rig.core import spawn_tool
    a_guests = [g for g in th.guests if g.host == 0]
    b_guests = [g for g in th.guests if g.host == 1]
    assert ping_pairs(th, th.guests, th.guests) == []
    started = []
    for i, (src, dst) in enumerate(((b_guests[0], b_guests[1]), (b_guests[2], b_guests[3]))):
        port = 5400 + i
        rx = spawn_tool(th.procs, dst.ns, "tcp-recv", "--bind", dst.ip, "--port", port,
                        "--sample-ms", 100)
        tx = spawn_tool(th.procs, src.ns, "tcp-send", "--to", dst.ip, "--port", port,
                        "--seed", 90 + i, "--duration", 8.0)
        started.append(((src.index, dst.index), 90 + i, rx, tx))
    time.sleep(1.0)
    killed_ns = time.monotonic_ns()
    th.kill_cards(0)
    assert ping_pairs(th, b_guests[:1], a_guests, timeout=0.3) == \
        [(b_guests[0].index, g.index) for g in a_guests], "a guest of A answered without its card"
    for c in th.start_cards(0):
        c.wait_event("ready", 60)
    for flow, seed, rx, tx in started:
        got, sent = Rig.result(rx, 60), Rig.result(tx, 60)
        expect = hashlib.sha256(stream_bytes(seed, sent["bytes"])).hexdigest()
        assert got["eof"] and got["bytes"] == sent["bytes"] > 0, (flow, sent, got)
        assert sent["sha256"] == got["sha256"] == expect, flow
        assert sent["start_ns"] < killed_ns < sent["sent_ns"], flow
        # never stopped: no second without bytes arriving, the outage and the restart included.
        # (The bound leaves room for a loaded 2-CPU host starting two card processes at once;
        # a lost frame would cost TCP's retransmission timeout, a B loop touched by A's death
        # an error or a failed transmit, checked below.)
        samples = got["samples"]
        longest, run_, at = 0.0, 0.0, None
        for (t0, n0), (t1, n1) in zip(samples, samples[1:]):
            run_ = run_ + (t1 - t0) / 1e9 if n1 == n0 else 0.0
            if run_ > longest:
                longest, at = run_, (t1 - killed_ns) / 1e9
        assert longest < 2.0, (flow, f"{longest:.2f} s without bytes, ending {at:.2f} s after "
                               "the kill", [c.stderr() for c in th.cards[1]])
    # A's new cards are on the segment again: both ways, every pair across the hosts
    assert ping_pairs(th, a_guests, b_guests) == []
    assert ping_pairs(th, b_guests, a_guests) == []
    flows = [(a_guests[i].index, b_guests[i].index) for i in range(4)] + \
            [(b_guests[i].index, a_guests[(i + 1) % 4].index) for i in range(4)]
    check_mesh(th.mesh(flows, 64_000), 64_000)
    for c in th.cards[1]:          # host B's loops ran through it all untouched
        st = c.finish()
        check_loop(st)
    for c in th.cards[0]:
        check_loop(c.finish())


@pytest.fixture
def two_hosts_no_lan(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, TAP)")
    _require_topology()
    require_package("vdeplug", which("dpipe"), "dpipe")
    from a2065.rig.vde_hosts import TwoHosts
    with TwoHosts(cards_per_host=2, procs_per_host=1, log_dir=str(tmp_path), lan=False) as th:
        yield th


@pytest.mark.root
def test_hosts_without_a_shared_lan_join_through_one_vde_plug_stream_as_over_ssh(
        two_hosts_no_lan):
    """Two hosts with no network between them (each its own vxvde segment): no guest reaches
    the other host. One `dpipe vde_plug URL = vde_plug URL` stream (ip netns exec standing in
    for ssh) joins the segments: every guest then pings every other and TCP streams cross intact.
    Ending the stream splits the segments again; each host keeps working on its own."""
    th = two_hosts_no_lan
    a = [g for g in th.guests if g.host == 0]
    b = [g for g in th.guests if g.host == 1]
    assert ping_pairs(th, a[:1], b, timeout=0.5) == [(a[0].index, g.index) for g in b]
    join = th.join_by_stream(0)
    assert ping_pairs(th, th.guests, th.guests) == [], join.stderr.read1() if join.poll() else ""
    flows = [(a[0].index, b[0].index), (b[1].index, a[1].index), (a[1].index, b[0].index)]
    check_mesh(th.mesh(flows, 200_000), 200_000)
    th.split_stream(join)
    time.sleep(0.2)
    from a2065.rig.core import kernel_ping
    assert not kernel_ping(a[0].ns, b[1].ip, timeout=0.5)
    assert ping_pairs(th, a, a) == [] and ping_pairs(th, b, b) == []
    for h in (0, 1):
        for c in th.cards[h]:
            check_loop(c.finish())


def _children_running(needle: str, known=()) -> list:
    """Pids of this process's children whose command line contains `needle`, but for the
    `known` ones."""
    out = []
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ppid == me and needle in cmd and int(pid) not in known:
            out.append(int(pid))
    return out


@pytest.mark.root
def test_a_card_whose_plug_is_a_command_reaches_the_far_segment_and_restarts_the_command(
        two_hosts_no_lan):
    """A card in host A whose URL is ``cmd://<into host B> vde_plug vxvde://...`` (the card
    itself is the far end's plug, as with ssh): its guest reaches B's guest kernels. When the
    command dies the link goes down with the typed PeerGone (transmits fail as loss of carrier);
    the backend starts the command again by itself and the guest reaches B again."""
    import signal
    th = two_hosts_no_lan
    from a2065 import A2065
    from a2065.runners.multi import MultiCard
    from netns import in_netns
    from pcap_backend.backends.usermode import PeerGone
    from pcap_backend.backends.vde import Vde
    from test_multicard import ScriptedGuest, run_until_reached
    b = [g for g in th.guests if g.host == 1]
    url = f"cmd://ip netns exec {th.host_ns[1]} vde_plug {th.url}"
    with in_netns(th.host_ns[0]):
        be = Vde(url, reconnect_interval=0.2)
    assert be.plugin == "cmd" and be.link_up
    serial = 0x13AF00
    mac = A2065(serial=serial).mac
    guest = ScriptedGuest(mac, "10.98.0.90")
    loop = MultiCard(timing="fast")
    try:
        card = loop.add(be, guest, serial=serial, mac=mac)
        for g in b:
            guest.ask(g.ip)
        run_until_reached(loop, [guest])
        assert guest.reached == {g.ip: g.mac for g in b}
        known = {p.pid for p in th.procs}    # the topology's own vde_plug endpoints
        (pid,) = _children_running("vde_plug", known)
        os.kill(pid, signal.SIGKILL)
        guest.asking.clear()
        guest.reached.clear()
        guest.ask(b[0].ip)
        downs = []
        loop.run(stop=lambda: (downs.append(be.error) if not be.link_up and not downs else None)
                 or (bool(downs) and be.link_up), duration=10)
        assert downs and isinstance(downs[0], PeerGone), (downs, be.stats())
        assert be.link_up and be.reconnects == 1
        run_until_reached(loop, [guest])
        assert guest.reached == {b[0].ip: b[0].mac}
        st = card.stats()
        assert st["chip"]["balanced"]
        assert st["bridge"]["tx_failed"] == sum(st["backend"]["tx_failed"].values()) \
            == st["chip"]["tx_lcar"]
    finally:
        loop.close()
        be.close()
        for pid in _children_running("vde_plug", {p.pid for p in th.procs}):
            os.kill(pid, signal.SIGKILL)
