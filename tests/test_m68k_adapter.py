"""The machine68k adapter: exceptions in callbacks, bus errors, one machine per process, timing.

Each machine runs in its own interpreter (``a2065.drivers.m68k.runner``); these tests read its JSON.
"""
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import importable, requires_package, which  # noqa: E402

pytestmark = [
    requires_package("machine68k", importable("machine68k"), "the 68000 CPU core"),
    requires_package("gcc-m68k-linux-gnu", which("m68k-linux-gnu-gcc"), "compiles the 68000 driver"),
    requires_package("binutils-m68k-linux-gnu", which("m68k-linux-gnu-objcopy")),
]

from lance.timing import cycles_to_ns_floor, ns_to_cycles_ceil  # noqa: E402
from a2065.drivers.m68k import ST_FAULT, ST_RUNNING  # noqa: E402
from a2065.drivers.m68k.runner import run_scenario  # noqa: E402

ARP_FOR_US = bytes.fromhex("ffffffffffff" "020000000001" "0806" "0001080006040001"
                           "020000000001" "0a000202" "000000000000" "0a00020f")


def test_machine68k_itself_reraises_a_callback_exception_after_that_instruction():
    r = run_scenario("native_error")
    assert r["raised"] == {"type": "KeyError", "message": "'raised inside r16'"}
    assert r["callback_calls"] == 1
    assert r["pc"] == 0x406          # past the 6-byte move.w $E90000,d0
    assert r["d1"] == 0              # and it stopped there: moveq #1,d1 never ran


def test_an_exception_raised_inside_a_card_callback_surfaces_from_run_and_the_machine_goes_on():
    r = run_scenario("callback_error", {"frame": ARP_FOR_US.hex()})
    assert r["booted"]
    assert r["raised"] == {"type": "ValueError", "message": "injected failure in read_rdp"}
    assert r["errors_raised"] == 1
    assert r["chip_now"] == r["now_ns"]              # the card was caught up before the raise
    after = r["mailbox_after"]
    assert after["state"] == ST_RUNNING               # a second run() continues normally
    assert after["arp_replies"] == 1 and after["tx_frames"] == 1
    assert after["last_csr0"] == 0xFFFF               # the failed read answered all ones


def test_an_access_to_nothing_becomes_a_68000_bus_error_through_vector_2():
    r = run_scenario("bus_error")
    assert r["booted"] and r["bus_errors"] == 1
    assert [(rw, addr) for _, rw, _, addr in r["invalid"]] == [("R", 0xC00000)]
    mb = r["mailbox"]
    assert mb["state"] == ST_FAULT and mb["fault_vector"] == 2
    assert mb["fault_pc"] == 0x8006                   # stacked PC: after tst.w $C00000


def test_a_second_machine_in_one_process_is_refused():
    code = textwrap.dedent("""
        from a2065.adapters.machine68k import Machine68kHost
        Machine68kHost()
        try:
            Machine68kHost()
        except RuntimeError as e:
            print("refused:", "one CPU per process" in str(e))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "refused: True", p.stderr


def test_cycle_time_conversion_is_integer_and_its_inverse_reaches_the_deadline():
    hz = 7_093_790
    assert cycles_to_ns_floor(7_093_790, hz) == 1_000_000_000
    assert cycles_to_ns_floor(1, hz) == 140                    # floor of 140.97
    for ns in (0, 1, 140, 141, 1_600_000, 123_456_789):
        c = ns_to_cycles_ceil(ns, hz)
        assert cycles_to_ns_floor(c, hz) >= ns > cycles_to_ns_floor(c - 1, hz) or ns == 0


def test_card_time_follows_cpu_cycles_exactly_after_a_run():
    r = run_scenario("driver", {"frames": [ARP_FOR_US.hex()], "settle_cycles": 123_457})
    assert r["chip_now"] == r["now_ns"] == cycles_to_ns_floor(r["cycles"], 7_093_790)


def test_an_idle_card_takes_no_interrupts_and_cuts_no_cpu_slice_at_its_tx_polls():
    with_card = run_scenario("idle", {"cycles": 2_000_000, "card": True})
    without = run_scenario("idle", {"cycles": 2_000_000, "card": False})
    assert with_card["state"] == ST_RUNNING and without["state"] != ST_RUNNING
    assert with_card["interrupts"] == 0
    # the idle loop is exactly 2 instructions; both machines ran it for the same cycles
    assert with_card["instructions"] == without["instructions"] > 0
    # 2 M cycles = 282 ms = 176 TX polls of 1.6 ms, none of which can send anything: they run
    # at catch-up without ending a slice (issue 17), so slices end at max_slice_cycles as
    # without the card (the card's bring-up writes end a few more)
    assert with_card["slices"] <= without["slices"] + 4
    assert with_card["slices"] < 282_000_000 // 1_600_000


def test_the_reset_instruction_unconfigures_the_card_and_the_driver_configures_it_again():
    r = run_scenario("reset_instruction")
    assert r["booted"] and r["before"] == ["configured"]
    assert r["bus_resets"] == 1 and r["after_reset"] == ["unconfigured"]
    assert r["window"] == [0xCF, 0x1F, 0x8F, 0xFF]   # er_Type C1, er_Product 0x70 inverted
    assert r["old_base_rap"] == 0xFFFF                # the old base is open bus now
    assert r["rebooted"] and r["states"] == ["configured"]
    assert r["mailbox"]["base"] == 0xE90000 and r["mailbox"]["boards"] == 1
    assert r["csr0"] == 0x0073
