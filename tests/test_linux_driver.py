"""The real Linux A2065 driver (a2065.c from Debian's linux-source-6.1, unmodified) on the 68000.

Each scenario boots the driver on machine68k in its own process with the card(s) on the Zorro
bus (a2065/drivers/linux/runner.py). Expected frames, padding, FCS and filter hashes are built here
with zlib, independently of the shim and of the chip model.
"""
import os
import shutil
import struct
import zlib

import pytest

from conftest import require_package, requires_package, which, importable  # noqa: E402

pytestmark = [
    requires_package("machine68k", importable("machine68k"), "the 68000 CPU core"),
    requires_package("gcc-m68k-linux-gnu", which("m68k-linux-gnu-gcc"), "compiles the driver"),
    requires_package("binutils-m68k-linux-gnu", which("m68k-linux-gnu-objcopy")),
]

from a2065.drivers import linux as L  # noqa: E402
from a2065.drivers.linux.runner import run_scenario  # noqa: E402


def _source_present() -> bool:
    try:
        L.source_tarball()
    except L.SourceMissing:
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def driver_image():
    """The driver built from the installed linux-source-6.1 (skips naming it when missing)."""
    require_package("linux-source-6.1", _source_present, "the real a2065.c, extracted at test time")
    return L.build()

MAC = bytes.fromhex("008010123456")     # OUI 00:80:10 + serial 0x123456 (reference §1)
PEER = bytes.fromhex("020000000001")
BCAST = b"\xff" * 6
TIMINGS = ["wire", "fast"]

# CSR0 values (reference §3)
STOP, INIT, STRT, IDON, INEA = 0x0004, 0x0001, 0x0002, 0x0100, 0x0040
RUNNING = 0x0073                        # INEA|RXON|TXON|STRT|INIT: Linux's "csr0 is 73"


def frame(dst, src, n, seed=0, ethertype=b"\x08\x00"):
    body = bytes((i * 7 + seed) & 0xFF for i in range(max(0, n - 14)))
    return (dst + src + ethertype + body)[:n]


def wire_frame(f):
    """What the chip puts on the wire for a frame the driver padded: 60 bytes minimum + FCS."""
    f = f + bytes(max(0, 60 - len(f)))
    return f + struct.pack("<I", zlib.crc32(f))


def with_fcs(f):
    return f + struct.pack("<I", zlib.crc32(f))


def script(steps, **kw):
    return run_scenario("script", {"steps": steps, **kw})


def hx(frames):
    return [f.hex() for f in frames]


def tx_of(step, card=0):
    return [bytes.fromhex(h) for i, h in step["tx"] if i == card]


def rx_of(step, dev=0):
    return [bytes.fromhex(h) for d, h in step["rx"] if d == dev]


# ------------------------------------------------------------------------------- probe

def test_the_driver_probes_through_zorro_autoconfig_and_takes_its_mac_from_the_serial():
    r = script([], serials=[0x00ABCDEF])
    assert r["hostif"]["zorro_boards"] == 1 and r["hostif"]["ndev"] == 1
    assert r["bases"] == [0xE90000]                   # first 64 KB I/O slot (reference §2)
    nd = r["netdevs"][0]
    assert nd["name"] == "eth0" and nd["mac"] == "008010abcdef"
    assert nd["base_addr"] == 0xE94000 and nd["mem_start"] == 0xE98000
    assert nd["watchdog_timeo"] == 5 * 100 and nd["stats_addr_ok"]
    assert "eth0: A2065 at 0x00e90000, Ethernet Address 00:80:10:ab:cd:ef" in r["log"]
    assert r["invalid_accesses"] == []


def test_the_driver_gives_an_ameristar_board_the_ameristar_oui():
    r = script([], serials=[0x00000102], variant="ameristar")
    assert r["netdevs"][0]["mac"] == "00009f000102"


# ------------------------------------------------------------------------------- open / close

@pytest.mark.parametrize("timing", TIMINGS)
def test_open_stops_loads_the_csrs_inits_acks_idon_and_starts_and_close_stops(timing):
    r = script([{"op": "open"}, {"op": "close"},
                {"op": "offer", "frames": hx([frame(MAC, PEER, 100)]), "paced": False},
                {"op": "open"},
                {"op": "offer", "frames": hx([frame(MAC, PEER, 100, seed=1)])},
                {"op": "send", "frames": hx([frame(PEER, MAC, 100, seed=2)])}],
               timing=timing, trace=True)
    opened, closed, offered_closed, reopened, rx, tx = r["steps"]
    assert opened["ret"] == 0 and opened["csr0"] == [RUNNING]
    t = opened["trace"]
    writes = [(a, v) for a, v in t if a in ("rap", "w")]
    # lance_open: STOP, CSR1 = 0x8000 (init block at LANCE 0x8000), CSR2 = 0, CSR3 = BSWP
    assert writes[:8] == [("rap", 0), ("w", STOP), ("rap", 1), ("w", 0x8000), ("rap", 2),
                          ("w", 0), ("rap", 3), ("w", 0x0004)]
    assert ("w", INIT) in writes and ("w", IDON) in writes and ("w", INEA | STRT) in writes
    i_init = writes.index(("w", INIT))
    assert writes.index(("w", IDON)) > i_init and writes.index(("w", INEA | STRT)) > i_init
    # the core programs the receive mode after ndo_open: a second STOP + INIT (set_multicast)
    assert writes.count(("w", INIT)) == 2
    assert r["rx_ring"][0][:2] == [0x8018, 16] and r["tx_ring"][0][:2] == [0x8098, 4]
    assert r["padr"] == [MAC.hex()] and r["mode"] == [0]
    assert closed["ret"] == 0 and closed["csr0"] == [STOP]
    assert offered_closed["statuses"] == ["RX_OFF"] and offered_closed["rx"] == []
    assert reopened["ret"] == 0 and reopened["csr0"] == [RUNNING]
    assert rx_of(rx) == [frame(MAC, PEER, 100, seed=1)]
    assert tx_of(tx) == [wire_frame(frame(PEER, MAC, 100, seed=2))]
    assert r["invalid_accesses"] == []


# ------------------------------------------------------------------------------- transmit / receive

@pytest.mark.parametrize("timing", TIMINGS)
def test_every_length_from_14_to_1514_leaves_padded_to_60_with_its_fcs(timing):
    frames = [frame(PEER, MAC, n, seed=n) for n in range(14, 1515)]
    r = script([{"op": "open"}, {"op": "send", "frames": hx(frames)}], timing=timing)
    assert tx_of(r["steps"][1]) == [wire_frame(f) for f in frames]
    st = r["stats"][0]
    assert st["tx_packets"] == len(frames) and st["tx_errors"] == 0
    assert st["tx_bytes"] == sum(max(60, len(f)) for f in frames)


@pytest.mark.parametrize("timing", TIMINGS)
def test_every_length_from_60_to_1514_arrives_byte_exact_through_netif_rx(timing):
    frames = [frame(MAC, PEER, n, seed=n) for n in range(60, 1515)]
    r = script([{"op": "open"}, {"op": "offer", "frames": hx(frames)}], timing=timing)
    step = r["steps"][1]
    assert set(step["statuses"]) == {"ACCEPTED"}
    assert rx_of(step) == frames
    st = r["stats"][0]
    assert st["rx_packets"] == len(frames) and st["rx_bytes"] == sum(map(len, frames))
    assert st["rx_errors"] == st["rx_dropped"] == 0 and r["hostif"]["skb_fail"] == 0


@pytest.mark.parametrize("timing", TIMINGS)
def test_frames_with_a_bad_fcs_are_counted_as_crc_errors_and_reception_goes_on(timing):
    good = [frame(MAC, PEER, 200, seed=i) for i in range(3)]
    bad = [frame(MAC, PEER, 300, seed=10 + i) for i in range(4)]
    offered = [with_fcs(good[0])] + [f + b"\xde\xad\xbe\xef" for f in bad] + \
              [with_fcs(g) for g in good[1:]]
    r = script([{"op": "open"}, {"op": "offer", "frames": hx(offered), "has_fcs": True},
                {"op": "offer", "frames": hx([frame(MAC, PEER, 1514, seed=99)])}], timing=timing)
    st = r["stats"][0]
    assert st["rx_crc_errors"] == 4 and st["rx_errors"] == 4
    assert rx_of(r["steps"][1]) == good
    assert rx_of(r["steps"][2]) == [frame(MAC, PEER, 1514, seed=99)]
    assert r["steps"][2]["csr0"] == [RUNNING]


@pytest.mark.parametrize("timing", TIMINGS)
def test_a_burst_the_cpu_cannot_take_is_counted_as_missed_and_reception_resumes(timing):
    burst = [frame(MAC, PEER, 64, seed=i) for i in range(40)]
    after = [frame(MAC, PEER, 500, seed=100 + i) for i in range(5)]
    r = script([{"op": "open"},
                {"op": "offer", "frames": hx(burst), "paced": "wire"},
                {"op": "offer", "frames": hx(after)}], timing=timing)
    b = r["steps"][1]
    if timing == "fast":        # in wire timing a frame is stored (or missed) when it has arrived
        assert b["statuses"] == ["ACCEPTED"] * 16 + ["MISSED"] * 24
    assert r["chip_counters"][0]["rx_missed"] == 24          # a ring of 16 (reference §10)
    assert rx_of(b) == burst[:16]
    st = r["stats"][0]
    assert st["rx_errors"] >= 1                     # MISS is counted per interrupt that saw it
    assert rx_of(r["steps"][2]) == after
    assert r["steps"][2]["csr0"] == [RUNNING]


# ------------------------------------------------------------------------------- multicast

def ladrf_bit(addr: bytes) -> int:
    """The Am7990 logical address filter bit of a multicast address (reference §6):
    CRC-32 little-endian without the final inversion, top 6 bits."""
    return (~zlib.crc32(addr) & 0xFFFFFFFF) >> 26


def _groups(n):
    return [bytes((0x01, 0x00, 0x5E, 0x00, i >> 8, i & 0xFF)) for i in range(1, n + 1)]


@pytest.mark.parametrize("timing", TIMINGS)
def test_multicast_filter_is_the_kernels_hash_of_many_groups_then_allmulti_then_promiscuous(timing):
    groups = _groups(40)
    bits = {ladrf_bit(g) for g in groups}
    outside = [bytes((0x01, 0x00, 0x5E, 0x7F, 0, i)) for i in range(256)]
    outside = [g for g in outside if ladrf_bit(g) not in bits][:3]
    assert len(outside) == 3
    other_host = bytes.fromhex("02000000abcd")
    probe = [frame(g, PEER, 80, seed=i) for i, g in enumerate(groups[:8] + outside)] + \
            [frame(other_host, PEER, 80, seed=50), frame(BCAST, PEER, 80, seed=51)]
    r = script([{"op": "open"},
                {"op": "rx_mode", "mc": hx(groups)},
                {"op": "offer", "frames": hx(probe)},
                {"op": "rx_mode", "mc": hx(groups), "flags": L.IFF_ALLMULTI},
                {"op": "offer", "frames": hx(probe)},
                {"op": "rx_mode", "flags": L.IFF_PROMISC},
                {"op": "offer", "frames": hx(probe)}], timing=timing)
    s = r["steps"]
    assert s[1]["ret"] == 0 and s[3]["ret"] == 0 and s[5]["ret"] == 0
    assert s[2]["statuses"] == ["ACCEPTED"] * 8 + ["FILTERED"] * 4 + ["ACCEPTED"]
    assert rx_of(s[2]) == probe[:8] + probe[-1:]
    assert s[4]["statuses"] == ["ACCEPTED"] * 11 + ["FILTERED", "ACCEPTED"]
    assert rx_of(s[4]) == probe[:11] + probe[-1:]
    assert s[6]["statuses"] == ["ACCEPTED"] * 13 and rx_of(s[6]) == probe
    assert r["mode"] == [0x8000]                    # MODE.PROM


@pytest.mark.parametrize("timing", TIMINGS)
def test_the_driver_loads_exactly_the_hashed_filter_bits_into_the_init_block(timing):
    groups = _groups(40)
    r = script([{"op": "open"}, {"op": "rx_mode", "mc": hx(groups)}], timing=timing)
    # LADRF bit h is bit h&15 of the init block word h>>4 (the driver's mcast_table[crc >> 4])
    chip_bits = {h for h in range(64) if (r["ladrf"][0] >> h) & 1}
    assert chip_bits == {ladrf_bit(g) for g in groups}
    assert r["mode"] == [0]


# ------------------------------------------------------------------------------- watchdog

@pytest.mark.parametrize("timing", TIMINGS)
def test_a_stalled_transmitter_makes_the_watchdog_reset_the_chip_and_traffic_resumes(timing):
    stuck = [frame(PEER, MAC, 100, seed=i) for i in range(5)]
    later = [frame(PEER, MAC, 300, seed=20 + i) for i in range(3)]
    r = script([{"op": "open"}, {"op": "stall"},
                {"op": "queue", "frames": hx(stuck)},
                {"op": "run", "ms": 4000},
                {"op": "run", "ms": 1500},
                {"op": "send", "frames": hx(later)}], timing=timing)
    s = r["steps"]
    assert s[2]["tx"] == [] and s[3]["tx"] == []
    assert s[3]["hostif"]["tx_timeouts"] == 0            # 4 s: not yet (watchdog_timeo 5 s)
    assert s[4]["hostif"]["tx_timeouts"] == 1
    assert "eth0: transmit timed out, status 0004, reset" in r["log"]
    assert s[4]["csr0"] == [RUNNING]
    # the 3 frames the driver had put in its ring died with the reset; the 2 the queue still
    # held go out after it, then the new ones
    assert tx_of(s[4]) == [wire_frame(f) for f in stuck[3:]]
    assert tx_of(s[5]) == [wire_frame(f) for f in later]


# ------------------------------------------------------------------------------- two boards

@pytest.mark.parametrize("timing", TIMINGS)
def test_two_boards_share_int2_and_each_driver_instance_handles_its_own(timing):
    mac1 = bytes.fromhex("008010000a01")
    mac2 = bytes.fromhex("008010000b02")
    to1 = [frame(mac1, PEER, 200, seed=i) for i in range(6)]
    to2 = [frame(mac2, PEER, 300, seed=10 + i) for i in range(6)]
    steps = [{"op": "open", "dev": 0}, {"op": "open", "dev": 1}]
    # interleave: both cards raise INT2 while the other's frames are pending
    for i in range(6):
        steps.append({"op": "offer", "dev": 0, "frames": hx([to1[i]]), "settle_ms": 0,
                      "drain_ms": 0})
        steps.append({"op": "offer", "dev": 1, "frames": hx([to2[i]]), "settle_ms": 0,
                      "drain_ms": 0})
    steps.append({"op": "run", "ms": 100})
    steps.append({"op": "send", "dev": 0, "frames": hx([frame(PEER, mac1, 100)])})
    steps.append({"op": "send", "dev": 1, "frames": hx([frame(PEER, mac2, 120)])})
    r = script(steps, timing=timing, serials=[0x000A01, 0x000B02])
    assert r["bases"] == [0xE90000, 0xEA0000]
    assert [n["name"] for n in r["netdevs"]] == ["eth0", "eth1"]
    assert [n["mac"] for n in r["netdevs"]] == [mac1.hex(), mac2.hex()]
    rx = [(d, bytes.fromhex(h)) for s in r["steps"] for d, h in s["rx"]]
    assert [f for d, f in rx if d == 0] == to1 and [f for d, f in rx if d == 1] == to2
    assert tx_of(r["steps"][-2], 0) == [wire_frame(frame(PEER, mac1, 100))]
    assert tx_of(r["steps"][-1], 1) == [wire_frame(frame(PEER, mac2, 120))]
    assert r["stats"][0]["rx_packets"] == 6 and r["stats"][1]["rx_packets"] == 6
    assert r["hostif"]["irqs"] > 0


# ------------------------------------------------------------------------------- snapshot

@pytest.mark.parametrize("timing", TIMINGS)
def test_a_snapshot_taken_mid_traffic_restores_in_a_new_process_and_the_driver_carries_on(timing):
    out = [frame(PEER, MAC, 1000 + i, seed=i) for i in range(6)]
    inbound = [frame(MAC, PEER, 900 + i, seed=40 + i) for i in range(20)]
    a = script([{"op": "open"},
                {"op": "offer", "frames": hx(inbound[:10]), "paced": "wire", "drain_ms": 0,
                 "settle_ms": 0},
                {"op": "queue", "frames": hx(out), "settle_ms": 1},
                {"op": "save"}], timing=timing)
    state = a["steps"][-1]["state"]
    got_a = [f for s in a["steps"] for f in rx_of(s)]
    sent_a = [f for s in a["steps"] for f in tx_of(s)]
    assert len(sent_a) < len(out) or len(got_a) < 10       # something was still in flight
    b = run_scenario("script", {"resume": state, "steps": [
        {"op": "run", "ms": 200},
        {"op": "offer", "frames": hx(inbound[10:])},
        {"op": "send", "frames": hx([frame(PEER, MAC, 77, seed=77)])}]})
    got_b = [f for s in b["steps"] for f in rx_of(s)]
    sent_b = [f for s in b["steps"] for f in tx_of(s)]
    assert got_a + got_b == inbound
    assert sent_a + sent_b == [wire_frame(f) for f in out] + [wire_frame(frame(PEER, MAC, 77,
                                                                              seed=77))]
    assert b["stats"][0]["rx_packets"] == 20 and b["stats"][0]["tx_packets"] == 7
    assert b["steps"][-1]["csr0"] == [RUNNING]


# ------------------------------------------------------------------------------- receive bound

@pytest.mark.parametrize("timing", TIMINGS)
def test_tagged_full_size_8021q_frames_pass_through_the_real_driver_in_one_buffer(timing):
    def tagged(n, seed):
        f = frame(MAC, PEER, n, seed=seed)
        return f[:12] + b"\x81\x00" + struct.pack(">H", 100 + seed) + f[12:n - 4]
    vlan = [tagged(n, n - 1500) for n in (1515, 1516, 1517, 1518)]
    longest = frame(MAC, PEER, 1540, seed=3)           # 1544 with FCS: exactly one buffer
    too_long = frame(MAC, PEER, 1541, seed=4)
    after = frame(MAC, PEER, 200, seed=5)
    r = script([{"op": "open"},
                {"op": "offer", "frames": hx(vlan + [longest, too_long, after])}], timing=timing)
    s = r["steps"][1]
    assert [len(f) for f in vlan] == [1515, 1516, 1517, 1518]
    assert s["statuses"] == ["ACCEPTED"] * 5 + ["TOO_LONG", "ACCEPTED"]
    assert rx_of(s) == vlan + [longest, after]
    assert r["stats"][0]["rx_errors"] == 0 and r["stats"][0]["rx_over_errors"] == 0
    assert r["chip_counters"][0]["rx_dropped_too_long"] == 1


# ------------------------------------------------------------------------------- harness

def test_the_harness_ram_shortcut_changes_nothing_the_driver_or_the_card_can_see():
    """RamFastPathHost answers A2065 buffer-RAM accesses from board.ram; the generic handlers
    (chip catch-up and deadline check on every access) must give the very same run."""
    out = [frame(PEER, MAC, n, seed=n) for n in (14, 61, 333, 1514)]
    inbound = [frame(MAC, PEER, n, seed=n) for n in (60, 97, 1000, 1514)]
    steps = [{"op": "open"}, {"op": "send", "frames": hx(out)},
             {"op": "offer", "frames": hx(inbound), "paced": "wire"},
             {"op": "rx_mode", "mc": hx(_groups(5))}, {"op": "send", "frames": hx(out)}]
    fast = script(steps, timing="wire")
    slow = script(steps, timing="wire", ram_fast_path=False)
    for key in ("cycles", "now_ns", "stats", "chip_counters", "ladrf", "mmio", "irq_edges",
                "irq_latencies_ns"):
        assert fast[key] == slow[key], key
    for a, b in zip(fast["steps"], slow["steps"]):
        assert (a["tx"], a["rx"], a["csr0"]) == (b["tx"], b["rx"], b["csr0"])
    assert [f for s in fast["steps"] for f in tx_of(s)] == [wire_frame(f) for f in out] * 2


def test_an_idle_kernel_sleeps_in_stop_and_wakes_once_or_twice_per_jiffy():
    r = script([{"op": "open"}, {"op": "run", "ms": 1000}])
    passes = r["steps"][1]["hostif"]["loops"] - r["steps"][0]["hostif"]["loops"]
    # HZ = 100: the doorbell rings 100 times a second; a busy-polling loop would make ~10^5 passes
    assert 90 <= passes <= 300
