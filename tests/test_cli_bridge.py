"""`a2065 bridge` live: a real kernel's TCP through AF_PACKET, the bridge, the emulated card, the
Linux-style driver and a guest TAP (root: two namespaces joined by veth, removed afterwards)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CARD_MAC = "00:80:10:12:34:56"   # the default board's MAC (serial 0x123456)

SERVER = """
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.0.2", 5000)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"""

CLIENT = """
import random, socket
data = random.Random(2065).randbytes(int(__import__("sys").argv[1]))
for _ in range(50):
    try:
        c = socket.create_connection(("10.9.0.2", 5000), timeout=10); break
    except OSError:
        __import__("time").sleep(0.1)
c.sendall(data); c.close()
"""


def sh(*argv, ns=None, check=True, **kw):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


@pytest.mark.root
def test_bridge_carries_a_real_tcp_transfer_into_a_guest_tap_intact_and_stops_on_ctrl_c(tmp_path):
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, vh, vb, tap = f"a2ca{tag}", f"a2cb{tag}", f"a2vh{tag}", f"a2vb{tag}", f"a2g{tag}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sh("ip", "netns", "add", ns_a)
    sh("ip", "netns", "add", ns_b)
    procs = []
    try:
        sh("ip", "link", "add", vh, "netns", ns_a, "type", "veth", "peer", "name", vb, "netns", ns_b)
        for ns in (ns_a, ns_b):
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns, check=False)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", "10.9.0.1/24", "dev", vh, ns=ns_a)
        sh("ip", "link", "set", vh, "up", ns=ns_a)
        sh("ip", "link", "set", vb, "up", ns=ns_b)
        bridge = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-m", "a2065", "bridge", "--iface", vb,
             "--guest-tap", tap, "--duration", "60", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(bridge)
        for _ in range(100):
            if sh("ip", "link", "show", tap, ns=ns_b, check=False).returncode == 0:
                break
            time.sleep(0.1)
        sh("ip", "link", "set", tap, "address", CARD_MAC, ns=ns_b)
        sh("ip", "addr", "add", "10.9.0.2/24", "dev", tap, ns=ns_b)
        sh("ip", "link", "set", tap, "up", ns=ns_b)
        server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(server)
        nbytes = 1_000_000
        sh(sys.executable, "-c", CLIENT, str(nbytes), ns=ns_a, timeout=30)
        out, _ = server.communicate(timeout=30)
        n, digest = out.split()
        import random
        assert int(n) == nbytes
        assert digest == hashlib.sha256(random.Random(2065).randbytes(nbytes)).hexdigest()
        bridge.send_signal(signal.SIGINT)   # Ctrl-C: stop cleanly, print the final counters
        bout, berr = bridge.communicate(timeout=30)
        assert bridge.returncode == 0, berr
        assert "Traceback" not in berr
        doc = json.loads(bout)
        assert doc["interrupted"] is True
        st = doc["bridge"]
        assert st["delivered"] > nbytes // 1514 and st["transmitted"] > 0
        assert st["frames_in"] == st["delivered"] + st["queued"] + st["dropped_total"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sh("ip", "netns", "del", ns_a, check=False)
        sh("ip", "netns", "del", ns_b, check=False)
