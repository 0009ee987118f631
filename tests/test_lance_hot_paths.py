"""The hot paths (a plain RamDma in fast timing with BSWP=1) do exactly what the general paths do:
same RAM, same frames on the wire at the same times, same registers, counters and IRQ edges."""
from hypothesis import given, settings
from hypothesis import strategies as st

from lance import MODE
from lance.dma import RamDma
from lance.testing import MAC, Rig, frame


class SlowRamDma(RamDma):
    """A RamDma subclass: the chip takes its general paths for it."""


def pair(**kw):
    fast, slow = Rig(**kw), Rig(**kw)
    slow.chip.dma = SlowRamDma(slow.ram)
    assert fast.chip._ram is not None and slow.chip._ram is None
    return fast, slow


tx_ops = st.lists(st.tuples(
    st.sampled_from(["queue", "queue_tdmd", "queue_chain", "no_stp", "ack", "time", "rx", "link"]),
    st.integers(0, 3), st.integers(1, 1600)), max_size=30)


def drive(r, ops):
    for kind, i, n in ops:
        if kind.startswith("queue"):
            r.queue_tx(i, frame(length=n), tdmd=kind == "queue_tdmd")
        elif kind == "queue_chain":
            r.queue_tx(i, frame(length=n), enp=False)
            r.queue_tx((i + 1) & 3, frame(length=60), stp=False, tdmd=True)
        elif kind == "no_stp":
            r.queue_tx(i, frame(length=n), stp=False, tdmd=True)
        elif kind == "ack":
            r.csr_write(0, 0x0640)  # TINT|RINT, keep INEA
            for k in range(4):
                r.give_back_rx(k)
        elif kind == "time":
            r.chip.advance_to(r.chip.now + n * 1000)
        elif kind == "rx":
            r.chip.receive(frame(dst=MAC if i else b"\xff" * 6, length=n))
        else:
            r.link = not r.link


def run_both_and_compare(fast, slow, ops):
    """Initialise both rigs, drive the same `ops` through each, run 5 ms on; then both must have
    sent the same frames, left the same RAM, raised the same IRQ edges and kept the same state."""
    for r in (fast, slow):
        r.init()
        drive(r, ops)
        r.chip.advance_to(r.chip.now + 5_000_000)
    assert fast.sent == slow.sent
    assert fast.ram == slow.ram
    assert fast.irq_edges == slow.irq_edges
    assert fast.chip.snapshot() == slow.chip.snapshot()


@settings(max_examples=80, deadline=None)
@given(ops=tx_ops, dtcr=st.booleans(), tx_buf=st.sampled_from([1544, 100]))
def test_the_hot_paths_send_and_store_exactly_what_the_general_paths_do(ops, dtcr, tx_buf):
    fast, slow = pair(mode=MODE.DTCR if dtcr else 0, tx_buf=tx_buf)
    run_both_and_compare(fast, slow, ops)


def test_a_transmit_callback_that_stops_the_chip_ends_the_hot_path_as_the_general_one():
    results = []
    for r in pair():
        r.init()
        r.transmit_stop = True
        chip = r.chip

        def tx(f, t, r=r, chip=chip):
            r.sent.append((bytes(f), t))
            chip.write_rap(0)
            chip.write_rdp(0x0004)  # STOP from inside the callback
            return True

        chip.transmit = tx
        r.queue_tx(0, frame(length=100))
        r.queue_tx(1, frame(length=100), tdmd=True)
        results.append((r.sent, bytes(r.ram), chip.snapshot()))
    assert results[0] == results[1] and len(results[0][0]) == 1
