"""The freestanding 68000 driver (a2065/drivers/m68k) on machine68k with the card attached.

Every scenario runs in its own interpreter (machine68k keeps one CPU per process): the runner
returns JSON. Expected replies are built here, independently of the 68000 code, with their
checksums and FCS, and compared byte for byte.
"""
import shutil
import struct
import zlib

import pytest

from conftest import importable, requires_package, which  # noqa: E402

pytestmark = [
    requires_package("machine68k", importable("machine68k"), "the 68000 CPU core"),
    requires_package("gcc-m68k-linux-gnu", which("m68k-linux-gnu-gcc"), "compiles the 68000 driver"),
    requires_package("binutils-m68k-linux-gnu", which("m68k-linux-gnu-objcopy")),
]

from a2065.drivers.m68k import (FL_NETBSD, ST_NO_BOARD, ST_RUNNING, build,  # noqa: E402
                        mailbox_param_bytes)
from a2065.drivers.m68k.runner import run_scenario  # noqa: E402

IP = bytes((10, 0, 2, 15))
PEER_IP = bytes((10, 0, 2, 2))
PEER_MAC = bytes.fromhex("020000000001")
CARD_MAC = bytes.fromhex("008010123456")   # OUI 00:80:10 + serial 0x123456
BCAST = b"\xff" * 6


# ---------------------------------------------------------------- independent frame builders

def rfc1071(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pad60(frame: bytes) -> bytes:
    return frame + bytes(max(0, 60 - len(frame)))


def with_fcs(frame: bytes) -> bytes:
    return frame + struct.pack("<I", zlib.crc32(frame))


def arp_request(target_ip=IP, sender_mac=PEER_MAC, sender_ip=PEER_IP) -> bytes:
    return (BCAST + sender_mac + b"\x08\x06"
            + struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1)
            + sender_mac + sender_ip + bytes(6) + target_ip)


def arp_reply_expected(sender_mac=PEER_MAC, sender_ip=PEER_IP) -> bytes:
    return pad60(sender_mac + CARD_MAC + b"\x08\x06"
                 + struct.pack(">HHBBH", 1, 0x0800, 6, 4, 2)
                 + CARD_MAC + IP + sender_mac + sender_ip)


def ipv4(src, dst, payload, *, ident, proto=1, ttl=64, tos=0, frag=0, bad_csum=False):
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, frag, ttl, proto, 0,
                      src, dst)
    c = rfc1071(hdr) ^ (0x5555 if bad_csum else 0)
    return hdr[:10] + struct.pack(">H", c) + hdr[12:] + payload


def icmp(type_, ident, seq, data, *, bad_csum=False):
    m = struct.pack(">BBHHH", type_, 0, 0, ident, seq) + data
    c = rfc1071(m) ^ (0x1111 if bad_csum else 0)
    return m[:2] + struct.pack(">H", c) + m[4:]


def ping(seq, data=bytes(range(56)), *, dst_ip=IP, dst_mac=CARD_MAC, ident=0x4242, tos=0,
         bad_icmp=False, bad_ip=False):
    return (dst_mac + PEER_MAC + b"\x08\x00"
            + ipv4(PEER_IP, dst_ip, icmp(8, 0x1234, seq, data, bad_csum=bad_icmp), ident=ident,
                   tos=tos, ttl=63, bad_csum=bad_ip))


def echo_reply_expected(seq, data=bytes(range(56)), *, ident=0x4242, tos=0):
    """What the program promises (see driver.c do_ipv4): identification and TOS echoed, flags
    and fragment offset 0, TTL 64, addresses swapped, ICMP type 0, data echoed."""
    return pad60(PEER_MAC + CARD_MAC + b"\x08\x00"
                 + ipv4(IP, PEER_IP, icmp(0, 0x1234, seq, data), ident=ident, tos=tos))


def tx_frames(result):
    return [bytes.fromhex(t["frame"]) for t in result["tx"]]


def run_driver(frames, **kw):
    args = {"frames": [f.hex() for f in frames], **kw}
    return run_scenario("driver", args)


# ---------------------------------------------------------------- module-wide runs

MIXED = [
    ("arp for us", arp_request(), arp_reply_expected()),
    ("arp for another host", arp_request(target_ip=bytes((10, 0, 2, 99))), None),
    ("ping 1", ping(1), echo_reply_expected(1)),
    ("ping with odd-length data", ping(2, b"odd-length payload!", ident=7, tos=0x10),
     echo_reply_expected(2, b"odd-length payload!", ident=7, tos=0x10)),
    ("ping for another ip", ping(3, dst_ip=bytes((10, 0, 2, 98))), None),
    ("ping with a bad icmp checksum", ping(4, bad_icmp=True), None),
    ("ping with a bad ip checksum", ping(5, bad_ip=True), None),
    ("ping to another mac", ping(6, dst_mac=bytes.fromhex("020000000099")), None),
    ("ping of 1400 bytes", ping(7, bytes(i * 7 & 0xFF for i in range(1400))),
     echo_reply_expected(7, bytes(i * 7 & 0xFF for i in range(1400)))),
    ("ping 8", ping(8), echo_reply_expected(8)),
]


# 300 000 cycles (42 ms at 7.09 MHz) between frames: the 1400-byte echo keeps the 68000 busy for
# well over 10 ms (two checksums and a copy through the card's RAM), so frames never overlap and
# each RINT and TINT gets an interrupt of its own.
SPACED = {"spacing_cycles": 300_000, "settle_cycles": 300_000}


@pytest.fixture(scope="module")
def linux_run():
    build()
    return run_driver([f for _, f, _ in MIXED], **SPACED)


@pytest.fixture(scope="module")
def netbsd_run():
    build()
    return run_driver([f for _, f, _ in MIXED], flags=FL_NETBSD, **SPACED)


# ---------------------------------------------------------------- tests

def test_the_program_builds_into_a_flat_image_with_its_mailbox_magic():
    from a2065.drivers.m68k import MB_MAGIC, image
    data = image(build())
    ssp, pc = struct.unpack_from(">II", data, 0)
    vec26 = struct.unpack_from(">I", data, 26 * 4)[0]
    assert ssp == 0x10000 and 0x500 <= pc < len(data) and 0x500 <= vec26 < len(data)
    assert struct.unpack_from(">I", data, 0x400)[0] == MB_MAGIC
    assert set(mailbox_param_bytes(ip=1)) == {0x408, 0x40C}


@pytest.mark.parametrize("run", ["linux_run", "netbsd_run"])
def test_driver_configures_the_card_at_e90000_and_starts_it(run, request):
    r = request.getfixturevalue(run)
    boot = r["boot"]
    assert boot["booted"] and boot["mailbox"]["state"] == ST_RUNNING
    assert boot["mailbox"]["base"] == 0xE90000 and r["bases"] == [0xE90000]
    assert boot["mailbox"]["boards"] == 1
    assert boot["mailbox"]["mac"] == CARD_MAC.hex(":")
    assert r["padr"] == CARD_MAC.hex()                 # PADR written in the LANCE's byte order
    assert r["csr0"] == 0x0073                         # INEA|RXON|TXON|STRT|INIT, idle
    assert 1 <= boot["mailbox"]["init_polls"] <= 100
    assert boot["irq_edges"] == 0                      # neither style takes an IDON interrupt


@pytest.mark.parametrize("run", ["linux_run", "netbsd_run"])
def test_driver_answers_arp_and_echo_requests_byte_for_byte(run, request):
    r = request.getfixturevalue(run)
    expected = [e for _, _, e in MIXED if e is not None]
    got = tx_frames(r)
    assert [g[:-4] for g in got] == expected
    for g in got:                                      # the chip appended a correct FCS
        assert g == with_fcs(g[:-4])


@pytest.mark.parametrize("run", ["linux_run", "netbsd_run"])
def test_driver_counts_every_frame_and_loses_none(run, request):
    r = request.getfixturevalue(run)
    mb = r["mailbox"]
    n_replies = sum(1 for *_, e in MIXED if e is not None)
    delivered = [name for (name, _, _), st in zip(MIXED, r["statuses"]) if st == "ACCEPTED"]
    assert r["statuses"].count("FILTERED") == 1        # only the frame to another MAC
    assert len(delivered) == len(MIXED) - 1
    assert mb["rx_frames"] == len(delivered) == r["chip_counters"]["rx_delivered"]
    assert mb["arp_replies"] == 1 and mb["echo_replies"] == n_replies - 1
    assert mb["tx_queued"] == mb["tx_frames"] == n_replies == r["chip_counters"]["tx_frames"]
    assert mb["errors"] == 2                           # the two bad checksums
    assert mb["ignored"] == 2                          # ARP and ping for other addresses
    assert mb["tx_full"] == 0 and mb["misses"] == 0 and mb["fault_vector"] == 0
    assert mb["reinits"] == 0 and mb["spurious"] == 0


@pytest.mark.parametrize("run", ["linux_run", "netbsd_run"])
def test_each_rising_irq_edge_is_one_interrupt_taken_soon_after(run, request):
    r = request.getfixturevalue(run)
    edges = r["irq_edges"]
    levels = [lvl for _, lvl in edges]
    assert levels and levels[0] == 2 and levels[-1] == 0
    assert all(a != b for a, b in zip(levels, levels[1:]))     # strictly alternating edges
    times = [t for t, _ in edges]
    assert times == sorted(times)
    rises = levels.count(2)
    # one RINT per delivered frame and one TINT per reply, each taken in its own interrupt
    n_replies = r["mailbox"]["tx_frames"]
    assert r["mailbox"]["interrupts"] == rises == r["mailbox"]["rx_frames"] + n_replies
    # latency from the edge to the handler's first card access: exception processing plus a
    # few instructions, far below the time between frames (300 000 cycles ~ 42 ms)
    lat = r["irq_latencies_ns"]
    assert len(lat) == rises
    assert all(0 < x < 200_000 for x in lat)


def test_a_burst_of_sixteen_pings_fills_the_rx_ring_and_all_are_answered():
    frames = [ping(100 + i) for i in range(16)]
    r = run_driver(frames, spacing_cycles=0, settle_cycles=2_000_000)
    assert r["statuses"] == ["ACCEPTED"] * 16
    assert [g[:-4] for g in tx_frames(r)] == [echo_reply_expected(100 + i) for i in range(16)]
    mb = r["mailbox"]
    assert mb["rx_frames"] == 16 and mb["echo_replies"] == 16 and mb["tx_frames"] == 16
    assert mb["misses"] == 0 and mb["tx_full"] == 0 and mb["errors"] == 0


def test_a_seventeenth_frame_in_a_burst_is_missed_by_the_chip_and_counted_by_the_driver():
    frames = [ping(200 + i) for i in range(17)]
    r = run_driver(frames, spacing_cycles=0, settle_cycles=2_000_000)
    assert r["statuses"] == ["ACCEPTED"] * 16 + ["MISSED"]
    mb = r["mailbox"]
    assert mb["echo_replies"] == 16 and mb["misses"] >= 1


def test_ping_over_the_virtual_cable_in_wire_timing_comes_back_on_the_cable():
    r = run_driver([arp_request(), ping(1)], via="cable", timing="wire")
    assert r["replies_on_cable"] == [arp_reply_expected().hex(), echo_reply_expected(1).hex()]
    assert r["mailbox"]["tx_frames"] == 2 and r["mailbox"]["rx_frames"] == 2


def test_netbsd_style_answers_the_same_as_linux_style(linux_run, netbsd_run):
    assert [t["frame"] for t in linux_run["tx"]] == [t["frame"] for t in netbsd_run["tx"]]
    assert netbsd_run["mailbox"]["flags"] & FL_NETBSD


def test_driver_reports_no_board_when_the_chain_is_empty():
    r = run_scenario("driver", {"chain": []})
    assert r["boot"]["mailbox"]["state"] == ST_NO_BOARD
    assert r["boot"]["mailbox"]["base"] == 0 and r["boot"]["mailbox"]["boards"] == 0


def test_driver_places_a_ram_card_in_memory_space_and_two_a2065s_in_io_slots():
    r = run_scenario("driver", {"chain": ["ramcard", "a2065", "a2065"]})
    assert r["bases"] == [0x200000, 0xE90000, 0xEA0000]
    mb = r["boot"]["mailbox"]
    assert mb["boards"] == 3 and mb["base"] == 0xE90000 and mb["state"] == ST_RUNNING


def test_driver_derives_the_ameristar_mac_from_its_oui():
    r = run_scenario("driver", {"variant": "ameristar", "serial": 0xABCDEF})
    assert r["boot"]["mailbox"]["mac"] == "00:00:9f:ab:cd:ef"
    assert r["padr"] == "00009fabcdef"


# ---------------------------------------------------------------- register access sequences

STOP, INIT, STRT, TDMD, INEA, IDON, RINT, TINT, INTR = (0x0004, 0x0001, 0x0002, 0x0008, 0x0040,
                                                       0x0100, 0x0400, 0x0200, 0x0080)
BSWP = 0x0004


def test_linux_style_brings_the_chip_up_with_linux_register_sequence():
    r = run_scenario("driver", {"trace": True})
    boot = [tuple(x) for x in r["trace"][:r["boot"]["trace_len"]]]
    head, poll, tail = boot[:10], boot[10:-2], boot[-2:]
    assert head == [("rap", 0), ("w", STOP), ("rap", 1), ("w", 0x8000), ("rap", 2), ("w", 0),
                    ("rap", 3), ("w", BSWP), ("rap", 0), ("w", INIT)]
    assert 1 <= len(poll) <= 100 and all(op == "r" for op, _ in poll)
    assert poll[-1][1] & IDON and not poll[-1][1] & 0x8000
    assert tail == [("w", IDON), ("w", INEA | STRT)]          # IDON acked before INEA is set


def test_netbsd_style_writes_rap_before_every_rdp_access_and_starts_in_one_write():
    r = run_scenario("driver", {"trace": True, "flags": FL_NETBSD,
                                "frames": [arp_request().hex(), ping(1).hex()]})
    trace = [tuple(x) for x in r["trace"]]
    for i, (op, _) in enumerate(trace):
        if op in ("r", "w"):
            assert i > 0 and trace[i - 1][0] == "rap", trace[max(0, i - 3):i + 1]
    boot = trace[:r["boot"]["trace_len"]]
    writes = [v for op, v in boot if op == "w"]
    assert writes[0] == STOP and writes[-1] == INEA | STRT | IDON and writes[-2] == INIT
    assert [v for op, v in boot if op == "rap"][:4] == [0, 3, 1, 2]   # CSR3 before CSR1/CSR2
    assert r["mailbox"]["arp_replies"] == 1 and r["mailbox"]["echo_replies"] == 1


def test_linux_style_interrupt_acks_with_inea_clear_and_reenables_it_last():
    r = run_scenario("driver", {"trace": True, "frames": [arp_request().hex()]})
    isr = [tuple(x) for x in r["trace"][r["boot"]["trace_len"]:]]
    assert isr[0] == ("rap", 0) and isr[1][0] == "r"
    csr0 = isr[1][1]
    assert csr0 & INTR and csr0 & RINT and csr0 & INEA
    assert isr[2] == ("w", csr0 & ~(INEA | TDMD | STOP | STRT | INIT))
    assert ("w", INEA | TDMD) in isr                          # the ARP reply was demanded out
    # every interrupt ends by re-enabling INEA with the error/IDON bits, after RAP=0
    ends = [i for i, x in enumerate(isr) if x == ("w", 0x7940)]
    assert len(ends) == r["mailbox"]["interrupts"] == 2
    assert all(isr[i - 1] == ("rap", 0) for i in ends)
    assert isr[-1] == ("w", 0x7940)


def test_wire_timing_replies_leave_after_the_request_has_arrived_and_irqs_stay_paired():
    r = run_driver([arp_request(), ping(1), ping(2)], timing="wire")
    assert [g[:-4] for g in tx_frames(r)] == [arp_reply_expected(), echo_reply_expected(1),
                                            echo_reply_expected(2)]
    mb = r["mailbox"]
    assert mb["interrupts"] == 6 and mb["rx_frames"] == 3 and mb["tx_frames"] == 3
    levels = [lvl for _, lvl in r["irq_edges"]]
    assert levels == [2, 0] * 6
    rises = [t for t, lvl in r["irq_edges"] if lvl]
    for i, tx in enumerate(r["tx"]):      # per frame: RINT, then the reply, then its TINT
        assert rises[2 * i] < tx["t_ns"] <= rises[2 * i + 1]
    assert all(0 < x < 200_000 for x in r["irq_latencies_ns"])
