"""`a2065 bridge` live: a real kernel's TCP through AF_PACKET, the bridge, the emulated card, the
Linux-style driver and a guest TAP (root: two namespaces joined by veth, removed afterwards)."""
from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys

import pytest

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
    from netns import bridged_namespaces
    with bridged_namespaces("a2c", duration=60, card_mac=CARD_MAC) as t:
        ns_a, ns_b, bridge = t.ns_a, t.ns_b, t.bridge
        server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        t.procs.append(server)
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
