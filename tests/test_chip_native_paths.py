"""The chip's per-frame paths through native.lance_paths: the C functions over a plain bytearray
RAM, the oracle's twins otherwise; both do exactly what the general paths do."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lance.chip as chip_mod
import native
from lance import MODE
from lance.testing import Rig, frame
from native import oracle
from tests.test_lance_hot_paths import SlowRamDma, run_both_and_compare, tx_ops


def twin_paths(ram, out):
    return ram, out, oracle.lance_rx_store, oracle.lance_tx_take


def pair_with(monkeypatch, paths, **kw):
    monkeypatch.setattr(chip_mod, "_lance_paths", paths)
    fast, slow = Rig(**kw), Rig(**kw)
    slow.chip.dma = SlowRamDma(slow.ram)
    assert fast.chip._ram is not None and slow.chip._ram is None
    return fast, slow


@settings(max_examples=60, deadline=None)
@given(ops=tx_ops, dtcr=st.booleans(), tx_buf=st.sampled_from([1544, 100]))
def test_the_hot_paths_over_the_oracle_twins_do_what_the_general_paths_do(ops, dtcr, tx_buf):
    with pytest.MonkeyPatch.context() as mp:
        fast, slow = pair_with(mp, twin_paths, mode=MODE.DTCR if dtcr else 0, tx_buf=tx_buf)
        assert fast.chip._ram_paths[0] is fast.ram
        run_both_and_compare(fast, slow, ops)


@pytest.mark.parametrize("paths", [native.lance_paths, twin_paths], ids=["native", "twins"])
@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "memoryview_of_words", "bytes"])
def test_a_received_frame_of_any_buffer_type_is_stored_as_the_general_path_stores_it(
        monkeypatch, paths, kind):
    fast, slow = pair_with(monkeypatch, paths)
    for r in (fast, slow):
        r.init()
        for n in (60, 61, 1514, 1540, 1541):
            f = frame(length=n)
            data = {"bytearray": bytearray(f), "memoryview": memoryview(f)[:],
                    "memoryview_of_words": memoryview(f[:n & ~1]).cast("H"), "bytes": f}[kind]
            r.chip.receive(data)
            r.chip.receive(frame(dst=b"\x02" * 6, length=n))  # filtered
    assert fast.ram == slow.ram and len(fast.ram) == 32768
    assert fast.chip.snapshot() == slow.chip.snapshot()
    c = fast.chip.counters  # 1541 bytes is over the receive limit: dropped, not filtered
    assert kind == "memoryview_of_words" or c.rx_delivered == 4 and c.rx_filtered == 4 and c.rx_dropped_too_long >= 1


@pytest.mark.skipif(native.IMPLEMENTATION != "c", reason="the C core is not built "
                    "(A2065_NATIVE=python, or no compiler: apt-get install build-essential)")
def test_a_plain_bytearray_ram_gets_the_c_functions_and_a_subclass_the_oracle_twins():
    class WatchedRam(bytearray):
        pass

    r = Rig()
    assert r.chip._ram_paths[2] is native.lib.a2065_lance_rx_store
    assert isinstance(r.chip._ram_paths[0], native.ffi.CData)
    w = Rig()
    w.ram = WatchedRam(w.ram)
    w.chip.dma = type(w.dma)(w.ram, 0x7FFF)
    assert w.chip._ram_paths[2] is oracle.lance_rx_store and w.chip._ram_paths[0] is w.ram


def test_the_chip_ram_cannot_be_resized_while_the_chip_uses_it_and_can_after():
    r = Rig()
    if native.IMPLEMENTATION == "c" and os.environ.get("A2065_NATIVE", "") != "python":
        with pytest.raises(BufferError):
            r.ram.extend(b"\0")
    r.chip.dma = SlowRamDma(bytearray(32768))  # the old RAM's handle is dropped
    r.ram.extend(b"\0")
    assert len(r.ram) == 32769
