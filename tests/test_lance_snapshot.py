"""snapshot()/restore(): plain data, and a restored chip behaves identically."""
import pytest

from lance import Am7990, CSR0, RamDma
from lance.testing import Rig, frame
from lance.timing import TX_POLL_NS


def is_plain(x):
    if x is None or isinstance(x, (bool, int, str, bytes)):
        return True
    if isinstance(x, list):
        return all(is_plain(v) for v in x)
    if isinstance(x, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in x.items())
    return False


def scenario_start(timing):
    r = Rig(timing=timing, rx_buf=256)
    r.init()
    r.chip.receive(frame(length=600))  # chained in fast mode, in flight in wire mode
    r.queue_tx(0, frame(length=1000))
    r.queue_tx(1, frame(length=70), tdmd=True)
    r.chip.advance_to(300_000)
    return r


def continue_run(chip, ram, sent):
    log = []
    for step in range(12):
        t = chip.now + 150_000
        chip.advance_to(t)
        st = chip.receive(frame(length=60 + step))
        log.append((chip.now, chip.csr0, st.name, bytes(ram), len(sent)))
        chip.write_rap(0)
        chip.write_rdp(CSR0.INEA | CSR0.RINT | CSR0.TINT)
        # return descriptors like a driver
        base, n, _ = chip.rx_ring
        for i in range(n):
            a = (base + 8 * i) & 0x7FFF
            if not ram[a + 2] & 0x80:
                ram[a + 6:a + 8] = b"\0\0"
                ram[a + 2] = 0x80
    chip.advance_to(chip.now + 2 * TX_POLL_NS)
    log.append((chip.now, chip.csr0, bytes(ram), [s for s in sent]))
    return log


@pytest.mark.parametrize("timing", ["fast", "wire"])
def test_snapshot_is_plain_data(timing):
    assert is_plain(scenario_start(timing).chip.snapshot())


@pytest.mark.parametrize("timing", ["fast", "wire"])
def test_a_restored_chip_over_a_copy_of_ram_behaves_identically(timing):
    r = scenario_start(timing)
    snap = r.chip.snapshot()
    ram2 = bytearray(r.ram)
    sent2 = []
    edges2 = []

    def tx2(f, t):
        sent2.append((bytes(f), t))
        return True

    c2 = Am7990(RamDma(ram2), irq=edges2.append, transmit=tx2, timing="fast")
    c2.restore(snap)
    assert c2.snapshot() == snap
    r.sent.clear()
    r.irq_edges.clear()
    a = continue_run(r.chip, r.ram, r.sent)
    b = continue_run(c2, ram2, sent2)
    assert a == b
    assert r.irq_edges == edges2
    assert r.chip.counters == c2.counters


def test_wire_snapshot_includes_in_flight_frames_and_their_times():
    r = Rig(timing="wire")
    r.init()
    r.chip.receive(frame(length=100))
    r.queue_tx(0, frame(length=100), tdmd=True)
    s = r.chip.snapshot()
    assert s["rx_flight"]["at"] == (104 + 8) * 800
    assert s["tx_flight"]["frame"][:100] == frame(length=100)
    assert s["tx_poll_at"] == TX_POLL_NS


def test_restore_rejects_an_unknown_version():
    c = Am7990(RamDma(bytearray(32768)))
    s = c.snapshot()
    s["version"] = 99
    with pytest.raises(ValueError):
        c.restore(s)


def test_restore_keeps_the_irq_level_without_calling_back():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    edges = []
    c2 = Am7990(RamDma(bytearray(r.ram)), irq=edges.append)
    c2.restore(r.chip.snapshot())
    assert c2.irq_asserted and edges == []
    c2.write_rdp(CSR0.INEA | CSR0.RINT)
    assert edges == [False]


def test_restore_takes_the_timing_mode_from_the_snapshot():
    r = Rig(timing="wire")
    r.init()
    r.chip.receive(frame())
    c2 = Am7990(RamDma(bytearray(r.ram)), timing="fast")
    c2.restore(r.chip.snapshot())
    assert c2.timing == "wire" and c2.rx_idle_at() == r.chip.rx_idle_at()
