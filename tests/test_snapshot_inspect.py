"""`a2065 inspect` shows a snapshot's descriptors as the chip reads them: big-endian words
whatever CSR3.BSWP says (BSWP swaps frame bytes only, never descriptors; ref: L-7990, M)."""
import json
import os
import pathlib
import subprocess
import sys

from a2065 import A2065
from a2065 import snapshot as snap
from a2065.cli.main import _inspect_doc
from a2065.drivers import LinuxA2065Driver
from lance.csr import CSR3

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures/snapshots/a2065-v1-running-rx.snap"
RX_BUFS, TX_BUFS, BUF = 0x80B8, 0xE138, 1544  # the Linux layout the fixture was made with


def test_inspect_shows_the_fixtures_chip_owned_rx_descriptors_at_their_buffers():
    doc = _inspect_doc(snap.load(FIXTURE))
    rx = doc["rx_ring"]["descriptors"]
    assert len(rx) == 16
    assert rx[0]["own"] == "host" and rx[0]["addr"] == RX_BUFS and rx[0]["mcnt_or_tmd3"] == 104
    assert rx[0]["flags"] == "0x03"  # STP|ENP
    for i in range(1, 16):
        assert rx[i]["own"] == "chip", i
        assert rx[i]["addr"] == RX_BUFS + BUF * i, i
        assert rx[i]["bcnt"] == BUF
    tx = doc["tx_ring"]["descriptors"]
    assert [d["addr"] for d in tx] == [TX_BUFS + BUF * i for i in range(4)]
    assert all(d["own"] == "host" for d in tx)


def test_inspect_decodes_descriptors_big_endian_when_bswp_is_clear():
    board = A2065(strict=True)
    drv = LinuxA2065Driver(board)
    drv.open()
    state = board.snapshot()
    assert state["chip"]["csr3"] & CSR3.BSWP
    state["chip"]["csr3"] &= ~CSR3.BSWP  # same RAM: descriptors do not depend on BSWP
    doc = _inspect_doc(state)
    rx = doc["rx_ring"]["descriptors"]
    assert all(d["own"] == "chip" for d in rx)
    assert [d["addr"] for d in rx] == [RX_BUFS + BUF * i for i in range(16)]


def test_the_inspect_command_counts_the_fixtures_chip_owned_rx_descriptors():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "a2065", "inspect", str(FIXTURE)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "15 owned by the chip" in r.stdout
    j = json.loads(subprocess.run([sys.executable, "-m", "a2065", "inspect", str(FIXTURE),
                                   "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=120).stdout)
    assert j["rx_ring"]["descriptors"][1]["addr"] == RX_BUFS + BUF
