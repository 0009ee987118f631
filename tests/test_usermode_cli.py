"""`a2065 bridge --backend passt|slirp|vde`: usage errors, and a live run through libslirp.

The live run happens in a namespace of its own (loopback only): the CLI's guest TAP is there, so
that namespace's kernel is the guest; it gets a lease through the card from libslirp and fetches
1 MB from a server on the same namespace's 127.0.0.1 at the gateway address 10.0.2.2.
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

from test_usermode_rig import ROOT, UDHCPC_SCRIPT, recv_all, sha_stream, tcp_server

from conftest import library_loads, require_package, which


def a2065(*args, **kw):
    return subprocess.run([sys.executable, "-m", "a2065", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, **kw)


def test_bridge_vde_without_a_switch_directory_is_a_usage_error_that_says_what_to_give():
    r = a2065("bridge", "--backend", "vde", "--duration", "1")
    assert r.returncode == 2 and "vde_switch control directory" in r.stderr


def test_bridge_vde_with_no_switch_there_fails_naming_vde_switch():
    r = a2065("bridge", "--backend", "vde", "--iface", f"/tmp/no-switch-{os.getpid()}",
              "--duration", "1")
    assert r.returncode == 1 and "vde_switch" in r.stderr and "Traceback" not in r.stderr


def test_bridge_forward_spec_that_is_not_proto_and_ports_is_a_usage_error():
    r = a2065("bridge", "--backend", "slirp", "--forward", "tcp:http", "--duration", "1")
    assert r.returncode == 2 and "tcp|udp:HOST_PORT" in r.stderr


@pytest.mark.root
def test_bridge_slirp_gives_the_guest_kernel_a_lease_and_a_download_then_stops_on_ctrl_c(tmp_path):
    from netns import in_netns, netns, run, unique
    require_package("libslirp0", library_loads("slirp", "load_libslirp"))
    require_package("udhcpc", which("udhcpc"), "the guest's DHCP client")
    tap = unique("a2ct")
    with netns("a2uc") as ns:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "a2065", "bridge",
                              "--backend", "slirp", "--timing", "fast", "--guest-tap", tap,
                              "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(200):
                if run(["ip", "link", "show", tap], ns=ns, check=False).returncode == 0:
                    break
                time.sleep(0.05)
            run(["sysctl", "-qw", f"net.ipv6.conf.{tap}.disable_ipv6=1"], ns=ns, check=False)
            run(["ip", "link", "set", tap, "address", "00:80:10:12:34:56", "up"], ns=ns)
            udhcpc = shutil.which("udhcpc")
            script = tmp_path / "udhcpc.sh"
            script.write_text(UDHCPC_SCRIPT)
            script.chmod(0o755)
            r = run([udhcpc, "-i", tap, "-f", "-q", "-n", "-t", "10", "-T", "1", "-A", "1",
                     "-s", str(script)], ns=ns, check=False, timeout=30)
            assert r.returncode == 0 and "lease 10.0.2.15/24 router 10.0.2.2" in r.stdout, \
                r.stdout + r.stderr
            data, sha = sha_stream(1 << 20, seed=5)
            with in_netns(ns):
                srv = socket.socket()
                cli = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            th, res = tcp_server(srv, send=data)
            cli.settimeout(30)
            cli.bind(("10.0.2.15", 0))  # leave through the TAP, not the namespace's loopback
            cli.connect(("10.0.2.2", srv.getsockname()[1]))
            n, got = recv_all(cli)
            cli.close()
            th.join(10)
            assert n == len(data) and got == sha
        finally:
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    st = json.loads(out)
    assert st["interrupted"] is True
    assert st["backend"]["backend"] == "slirp" and st["backend"]["rx_bytes"] >= 1 << 20
    assert st["bridge"]["missed"] == 0
