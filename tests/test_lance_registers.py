"""RAP/RDP, CSR0 bit semantics, CSR1-3 access rules, IRQ line (ref: reference §3, §8)."""
import pytest

from lance import CSR0, CSR3, MODE, Am7990, RamDma
from lance.testing import Rig, frame


def fresh():
    return Am7990(RamDma(bytearray(32768)))


def test_reset_value_of_csr0_is_stop_only():
    assert fresh().csr0 == 0x0004


def test_rap_selects_with_bits_1_0_and_reads_back():
    c = fresh()
    c.write_rap(0xFFFE)
    assert c.read_rap() == 2
    c.write_rap(5)
    assert c.read_rap() == 1


def test_rap_is_not_changed_by_stop():
    r = Rig()
    r.chip.write_rap(3)
    r.chip.write_rap(0)
    r.chip.write_rdp(CSR0.STOP)
    r.chip.write_rap(2)
    r.chip.write_rdp(CSR0.STOP)  # CSR2 write, not CSR0
    assert r.chip.read_rap() == 2


def test_reset_pin_clears_rap_and_stops():
    r = Rig()
    r.init()
    r.chip.write_rap(3)
    r.chip.reset()
    assert r.chip.read_rap() == 0
    assert r.csr0 == 0x0004


def test_csr1_to_3_are_writable_and_readable_while_stopped():
    r = Rig()
    r.csr_write(1, 0x8001)
    r.csr_write(2, 0x00AB)
    r.csr_write(3, 0xFFFF)
    assert r.csr_read(1) == 0x8000  # bit 0 forced 0 (word-aligned init block)
    assert r.csr_read(2) == 0x00AB
    assert r.csr_read(3) == 0x0007  # BSWP|ACON|BCON, reserved bits read 0


def test_csr1_to_3_writes_are_ignored_while_running():
    r = Rig()
    r.init()
    r.csr_write(1, 0x1234)
    r.csr_write(2, 0x0012)
    r.csr_write(3, 0)
    assert r.csr_read(1) == 0x8000
    assert r.csr_read(2) == 0
    assert r.csr_read(3) == CSR3.BSWP


def test_csr1_to_3_read_their_stored_value_while_running():
    r = Rig()
    r.init()
    assert (r.csr_read(1), r.csr_read(2), r.csr_read(3)) == (0x8000, 0, 4)


def test_csr3_bits_acon_and_bcon_are_stored():
    r = Rig()
    r.csr_write(3, CSR3.ACON | CSR3.BCON)
    assert r.csr_read(3) == 3


def test_idle_running_csr0_reads_0x0073():
    r = Rig()
    r.init()
    assert r.csr0 == 0x0073


def test_init_sets_idon_and_intr_and_clears_stop():
    r = Rig()
    r.init(start=False)
    assert r.csr0 == CSR0.INIT | CSR0.IDON | CSR0.INTR


def test_idon_is_visible_on_the_first_csr0_read_after_init():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.write_init_block()
    r.csr_write(0, CSR0.INIT)
    assert r.chip.read_rdp() & CSR0.IDON


def test_writing_idon_clears_it_and_init_still_reads_back():
    r = Rig()
    r.init(start=False)
    r.csr_write(0, CSR0.IDON)
    assert r.csr0 == CSR0.INIT


def test_writing_zero_to_status_bits_has_no_effect():
    r = Rig()
    r.init(start=False)
    r.csr_write(0, 0)
    assert r.csr0 & CSR0.IDON


@pytest.mark.parametrize("bit", ["RINT", "TINT", "MISS", "BABL"])
def test_each_status_bit_is_write_one_to_clear(bit):
    r = Rig()
    r.init()
    r.chip._csr0 |= CSR0[bit]
    r.csr_write(0, CSR0.INEA)
    assert r.csr0 & CSR0[bit]
    r.csr_write(0, CSR0.INEA | CSR0[bit])
    assert not r.csr0 & CSR0[bit]


def test_cerr_and_merr_are_write_one_to_clear():
    r = Rig()
    r.init()
    r.chip._csr0 |= CSR0.CERR | CSR0.MERR
    r.csr_write(0, CSR0.CERR | CSR0.MERR)
    assert not r.csr0 & (CSR0.CERR | CSR0.MERR | CSR0.ERR)


def test_err_is_derived_from_babl_cerr_miss_merr():
    r = Rig()
    r.init()
    for b in (CSR0.BABL, CSR0.CERR, CSR0.MISS, CSR0.MERR):
        r.chip._csr0 |= b
        assert r.csr0 & CSR0.ERR
        r.csr_write(0, b)
        assert not r.csr0 & CSR0.ERR


def test_intr_is_derived_and_cerr_does_not_set_it():
    r = Rig()
    r.init()
    r.chip._csr0 |= CSR0.CERR
    assert not r.csr0 & CSR0.INTR
    r.csr_write(0, CSR0.CERR)
    for b in (CSR0.BABL, CSR0.MISS, CSR0.MERR, CSR0.RINT, CSR0.TINT, CSR0.IDON):
        r.chip._csr0 |= b
        assert r.csr0 & CSR0.INTR
        r.csr_write(0, b)
        assert not r.csr0 & CSR0.INTR


def test_err_and_intr_cannot_be_written():
    r = Rig()
    r.init()
    r.csr_write(0, CSR0.ERR | CSR0.INTR | CSR0.INEA)
    assert r.csr0 == 0x0073


def test_inea_takes_the_written_value_on_every_write():
    r = Rig()
    r.init()
    r.csr_write(0, 0)
    assert not r.csr0 & CSR0.INEA
    r.csr_write(0, CSR0.INEA)
    assert r.csr0 & CSR0.INEA


def test_inea_write_is_ignored_while_stopped():
    r = Rig()
    r.csr_write(0, CSR0.INEA)
    assert r.csr0 == 0x0004


def test_rxon_and_txon_are_read_only():
    r = Rig()
    r.init()
    r.csr_write(0, CSR0.INEA)  # writing 0 to RXON/TXON
    assert r.csr0 & (CSR0.RXON | CSR0.TXON) == CSR0.RXON | CSR0.TXON


def test_stop_resets_csr0_to_0x0004_and_clears_csr3():
    r = Rig()
    r.init()
    r.chip._csr0 |= CSR0.RINT | CSR0.MISS
    r.csr_write(0, CSR0.STOP | CSR0.INEA)
    assert r.csr0 == 0x0004
    assert r.csr_read(3) == 0
    assert r.csr_read(1) == 0x8000  # CSR1/CSR2 keep their values


def test_stop_overrides_init_and_strt_in_the_same_write():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.write_init_block()
    r.csr_write(0, CSR0.STOP | CSR0.INIT | CSR0.STRT)
    assert r.csr0 == 0x0004


def test_init_and_strt_in_one_write_initialises_and_starts():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.csr_write(3, CSR3.BSWP)
    r.write_init_block()
    r.write_rings()
    r.csr_write(0, CSR0.INIT | CSR0.STRT | CSR0.INEA)
    assert r.csr0 == 0x0073 | CSR0.IDON | CSR0.INTR
    assert r.chip.receive(frame()).name == "ACCEPTED"


def test_strt_without_drx_dtx_sets_rxon_and_txon():
    r = Rig()
    r.init()
    assert r.csr0 & CSR0.RXON and r.csr0 & CSR0.TXON


def test_mode_drx_keeps_the_receiver_off():
    r = Rig(mode=MODE.DRX)
    r.init()
    assert not r.csr0 & CSR0.RXON and r.csr0 & CSR0.TXON


def test_mode_dtx_keeps_the_transmitter_off():
    r = Rig(mode=MODE.DTX)
    r.init()
    assert r.csr0 & CSR0.RXON and not r.csr0 & CSR0.TXON


def test_init_while_running_is_ignored():
    r = Rig()
    r.init()
    r.padr = bytes(6)
    r.write_init_block()
    r.csr_write(0, CSR0.INIT | CSR0.INEA)
    assert r.chip.padr == Rig().padr
    assert not r.csr0 & CSR0.IDON


def test_tdmd_is_ignored_while_stopped():
    r = Rig()
    r.csr_write(0, CSR0.TDMD)
    assert r.csr0 == 0x0004


def test_tdmd_stays_set_while_the_transmitter_is_off():
    r = Rig(mode=MODE.DTX)
    r.init()
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    assert r.csr0 & CSR0.TDMD


def test_tdmd_is_cleared_by_the_poll_it_triggers():
    r = Rig()
    r.init()
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    assert not r.csr0 & CSR0.TDMD


def test_irq_asserts_when_intr_and_inea_and_drops_on_ack():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    assert r.irq_edges == [True] and r.chip.irq_asserted
    r.csr_write(0, CSR0.INEA | CSR0.RINT)
    assert r.irq_edges == [True, False] and not r.chip.irq_asserted


def test_irq_deasserts_when_inea_is_written_zero_and_returns_with_inea():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    r.csr_write(0, 0)
    r.csr_write(0, CSR0.INEA)
    assert r.irq_edges == [True, False, True]


def test_irq_callback_is_called_on_edges_only():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    r.chip.receive(frame())
    assert r.irq_edges == [True]


def test_idon_interrupts_when_inea_is_set_with_init():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.write_init_block()
    r.csr_write(0, CSR0.INIT)
    r.csr_write(0, CSR0.INEA)
    assert r.irq_edges == [True]


def test_stop_drops_the_irq_line():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    r.csr_write(0, CSR0.STOP)
    assert r.irq_edges == [True, False]


def test_register_values_are_masked_to_16_bits():
    r = Rig()
    r.csr_write(1, 0x1_8000)
    assert r.csr_read(1) == 0x8000


def test_two_chips_do_not_share_state():
    a, b = Rig(), Rig()
    a.init()
    assert b.csr0 == 0x0004
