"""`a2065 bridge` end to end through the rig: IPv6 needs the guest's multicast groups in LADRF.

The command runs inside the rig's `wire` namespace and creates its guest TAP there (the way a
user runs it on one host); the server namespace reaches the guest over the veth, the card and the
TAP. IPv6 neighbour discovery sends solicitations to the guest's solicited-node multicast group,
so the bridge must program the guest kernel's multicast list into the chip's LADRF.
"""
import json
import os
import signal
import subprocess
import sys

import pytest

from a2065.rig import Rig

pytestmark = pytest.mark.root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARD_MAC = "00:80:10:12:34:56"  # the default board (serial 0x123456)


def _run_bridge_and_transfer(ipv6: bool, nbytes: int = 300_000):
    with Rig(ipv6=True) as rig:
        env = dict(os.environ, PYTHONPATH=ROOT)
        cmd = [sys.executable, "-m", "a2065", "bridge"]
        p = subprocess.Popen(["ip", "netns", "exec", rig.ns_wire, *cmd, "--iface", rig.wire_dev,
                              "--guest-tap", rig.tap_name, "--duration", "60", "--json"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            assert rig.wait_for(lambda: p.poll() is not None or rig.run(
                "wire", ["ip", "link", "show", rig.tap_name], check=False).returncode == 0, 15)
            assert p.poll() is None, p.stderr.read()
            w = rig.ns_wire
            rig.run(w, ["ip", "link", "set", rig.tap_name, "address", CARD_MAC])
            rig.run(w, ["sysctl", "-qw", f"net.ipv6.conf.{rig.tap_name}.accept_dad=0"], check=False)
            rig.run(w, ["ip", "addr", "add", f"{rig.guest_ip}/24", "dev", rig.tap_name])
            rig.run(w, ["ip", "-6", "addr", "add", f"{rig.guest_ip6}/64", "dev", rig.tap_name, "nodad"])
            rig.run(w, ["ip", "link", "set", rig.tap_name, "up"])
            dst = rig.guest_ip6 if ipv6 else rig.guest_ip
            rx = rig.spawn("wire", "tcp-recv", "--bind", "::" if ipv6 else "0.0.0.0", "--port", 5050,
                           "--max-seconds", 20)
            tx = rig.spawn("server", "tcp-send", "--to", dst, "--port", 5050, "--bytes", nbytes,
                           "--connect-timeout", 8, "--linger", 10)
            got = Rig.result(rx, timeout=40)
            sent = Rig.result(tx, timeout=40)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return got, sent, p.returncode, out, err


def test_a2065_bridge_carries_ipv6_tcp_because_the_guest_multicast_groups_reach_ladrf():
    got, sent, rc, out, err = _run_bridge_and_transfer(ipv6=True)
    assert rc == 0, err
    assert got["bytes"] == sent["bytes"] == 300_000
    assert got["sha256"] == sent["sha256"]
    st = json.loads(out)
    assert st["bridge"]["frames_in"] == (st["bridge"]["delivered"] + st["bridge"]["queued"]
                                         + st["bridge"]["dropped_total"])
    assert st["interrupted"] is True
    assert any(m.startswith("33:33:ff") for m in st["driver"]["multicast"])


def test_a2065_bridge_on_an_interface_that_does_not_exist_exits_2_and_points_to_ip_link():
    r = subprocess.run([sys.executable, "-m", "a2065", "bridge", "--iface", "a65nosuch0", "--duration", "1"],
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "ip link" in r.stderr and "Traceback" not in r.stderr
