"""The real Linux A2065 driver in the end-to-end rig (issue 15): the host kernel's TCP/IP in the
guest namespace sits on the driver (netif_rx -> TAP, TAP -> ndo_start_xmit), the server's kernel on
the far side of the bridge. Each experiment runs in its own process (one machine68k CPU each).
Goodput is measured by bench/linux_driver.py, not asserted here.
"""
import pytest

# the same requirements and the same built driver as the scenario tests (one definition there)
from test_linux_driver import driver_image, pytestmark as _driver_marks  # noqa: F401

from a2065.drivers.linux.live import run_rig_scenario  # noqa: E402

pytestmark = [*_driver_marks, pytest.mark.root]

FAST_CPU_HZ = 70_937_900     # ten times a PAL 68000: the CPU is not the limit
PAL_HZ = 7_093_790

TRANSFERS = [
    {"dir": "to_guest", "ipv6": False, "port": 5101},
    {"dir": "to_server", "ipv6": False, "port": 5102},
    {"dir": "to_guest", "ipv6": True, "port": 5103},
    {"dir": "to_server", "ipv6": True, "port": 5104},
]


def _check(r, nbytes):
    assert len(r["transfers"]) == len(TRANSFERS)
    for t in r["transfers"]:
        got, sent = t["got"], t["sent"]
        assert sent["bytes"] == nbytes, t
        assert got["eof"] and got["bytes"] == nbytes, t
        assert got["sha256"] == sent["sha256"], t
    st = r["stats"]
    b = st["bridge"]
    assert st["error"] is None
    assert b["frames_in"] == b["delivered"] + b["queued"] + b["dropped_total"]
    assert st["chip_balanced"] and st["chip"]["rx_missed"] == 0
    # every frame the chip took went through the driver's netif_rx to the guest's TAP ...
    assert st["driver"]["rx_packets"] == b["delivered"] == st["guest"]["to_guest"]
    assert st["guest"]["to_guest_failed"] == 0 and st["hostif"]["rx_host_drops"] == 0
    # ... and every frame the guest sent left through ndo_start_xmit onto the wire
    assert st["driver"]["tx_packets"] == b["transmitted"] == st["hostif"]["xmit_calls"]
    assert st["driver"]["rx_errors"] == st["driver"]["tx_errors"] == 0
    assert st["hostif"]["tx_timeouts"] == 0 and st["hostif"]["skb_fail"] == 0
    assert st["guest"]["multicast_updates"] >= 1       # IPv6 needs the solicited-node groups


def test_tcp_both_ways_over_ipv4_and_ipv6_through_the_real_driver_in_wire_timing():
    n = 1_000_000
    r = run_rig_scenario({"cpu_hz": FAST_CPU_HZ, "timing": "wire",
                          "transfers": [{**t, "bytes": n} for t in TRANSFERS]})
    _check(r, n)


@pytest.mark.slow
def test_tcp_both_ways_through_the_real_driver_on_a_7_mhz_68000():
    n = 1_000_000
    r = run_rig_scenario({"cpu_hz": PAL_HZ, "timing": "wire",
                          "transfers": [{**t, "bytes": n} for t in TRANSFERS]})
    _check(r, n)
