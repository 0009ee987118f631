"""Receive ring: storing, padding, FCS, MISS, chaining, BUFF, write order (ref: reference §5)."""
from lance import CSR0, MODE, RMD1, RxStatus
from lance.dma import RamDma
from lance.testing import RecordingDma, Rig, fcs, frame, running


def test_a_frame_is_stored_with_its_fcs_after_the_data():
    r = running()
    f = frame(length=100)
    assert r.chip.receive(f) is RxStatus.ACCEPTED
    assert r.rx_data(0, 104) == f + fcs(f)


def test_mcnt_counts_the_fcs():
    r = running()
    r.chip.receive(frame(length=100))
    assert r.rmd(0)[3] == 104


def test_frames_under_60_bytes_are_padded_to_60_before_the_fcs():
    r = running()
    f = frame(length=42)
    r.chip.receive(f)
    padded = f + bytes(18)
    assert r.rmd(0)[3] == 64
    assert r.rx_data(0) == padded + fcs(padded)


def test_rmd1_gets_stp_and_enp_keeps_hadr_and_clears_own():
    r = running()
    r.chip.receive(frame())
    w1 = r.rmd(0)[1]
    assert w1 & 0xFF00 == RMD1.STP | RMD1.ENP
    assert w1 & 0xFF == (r.rx_bufs[0] >> 16) & 0xFF


def test_rint_is_set_when_a_frame_is_stored():
    r = running()
    r.chip.receive(frame())
    assert r.csr0 & CSR0.RINT and r.csr0 & CSR0.INTR


def test_frames_fill_successive_descriptors_and_the_ring_wraps():
    r = running()
    mcnts = []
    for i in range(6):
        r.chip.receive(frame(length=60 + i))
        mcnts.append(r.rmd(i % 4)[3])
        r.give_back_rx(i % 4)
    assert mcnts == [64, 65, 66, 67, 68, 69]
    assert r.chip.rx_ring[2] == 2


def test_rmd3_is_written_before_rmd1_and_own_is_cleared_last():
    r = Rig()
    log = []
    r.chip.dma = RecordingDma(r.ram, log)
    r.init()
    r.chip.receive(frame())
    a = r.rdra & 0x7FFF
    assert log == [(a + 6, 64), (a + 2, r.rmd(0)[1])]
    assert not r.rmd(0)[1] & RMD1.OWN


def test_no_owned_descriptor_drops_the_frame_and_sets_miss_without_rint():
    r = Rig()
    r.init(rx_own=False)
    assert r.chip.receive(frame()) is RxStatus.MISSED
    assert r.csr0 & CSR0.MISS and r.csr0 & CSR0.ERR and r.csr0 & CSR0.INTR
    assert not r.csr0 & CSR0.RINT
    assert r.chip.rx_ring[2] == 0 and r.chip.counters.rx_missed == 1


def test_the_receiver_stays_on_a_descriptor_it_does_not_own():
    r = Rig()
    r.init(rx_own=False)
    r.set_rmd(1, own=True)
    r.chip.receive(frame())
    assert r.chip.rx_ring[2] == 0 and r.rmd(1)[1] & RMD1.OWN


def test_receiver_off_returns_rx_off():
    r = Rig()
    assert r.chip.receive(frame()) is RxStatus.RX_OFF
    r = running(mode=MODE.DRX)
    assert r.chip.receive(frame()) is RxStatus.RX_OFF
    assert r.chip.counters.rx_dropped_off == 1


def test_frames_over_1540_bytes_without_fcs_are_too_long_and_tagged_full_size_frames_pass():
    # the Am7990 has no receive limit; the model's bound keeps a frame in one 1544-byte buffer
    r = running()
    assert r.chip.receive(frame(length=1541)) is RxStatus.TOO_LONG
    assert r.chip.receive(frame(length=1540)) is RxStatus.ACCEPTED
    assert r.chip.receive(frame(length=1518)) is RxStatus.ACCEPTED    # 802.1Q full size
    assert r.chip.counters.rx_dropped_too_long == 1


def test_frames_with_fcs_over_1544_bytes_are_too_long():
    r = running()
    f = frame(length=1541)
    assert r.chip.receive(f + fcs(f), has_fcs=True) is RxStatus.TOO_LONG
    f = frame(length=1540)
    assert r.chip.receive(f + fcs(f), has_fcs=True) is RxStatus.ACCEPTED


def test_frames_with_fcs_under_64_bytes_are_runts():
    r = running()
    f = frame(length=59)
    assert r.chip.receive(f + fcs(f), has_fcs=True) is RxStatus.RUNT


def test_a_frame_with_a_good_fcs_is_stored_as_given():
    r = running()
    f = frame(length=80)
    r.chip.receive(f + fcs(f), has_fcs=True)
    assert r.rx_data(0) == f + fcs(f) and not r.rmd(0)[1] & RMD1.ERR


def test_a_frame_with_a_bad_fcs_sets_crc_and_err_in_the_enp_descriptor():
    r = running()
    f = frame(length=80)
    r.chip.receive(f + b"\0\0\0\0", has_fcs=True)
    w1 = r.rmd(0)[1]
    assert w1 & RMD1.CRC and w1 & RMD1.ERR and w1 & RMD1.ENP
    assert r.rmd(0)[3] == 84
    assert r.chip.counters.rx_crc_errors == 1


def test_a_frame_longer_than_one_buffer_is_chained_stp_first_enp_last():
    r = Rig(rx_buf=128)
    r.init()
    f = frame(length=300)
    assert r.chip.receive(f) is RxStatus.ACCEPTED
    w = [r.rmd(i)[1] & 0xFF00 for i in range(3)]
    assert w == [RMD1.STP, 0, RMD1.ENP]
    stored = r.rx_data(0, 128) + r.rx_data(1, 128) + r.rx_data(2, 48)
    assert stored == f + fcs(f)
    assert r.rmd(2)[3] == 304 and r.rmd(0)[3] == 0  # MCNT only in the ENP descriptor
    assert r.chip.rx_ring[2] == 3


def test_a_chain_break_sets_buff_and_err_and_drops_the_rest():
    r = Rig(rx_buf=128)
    r.init()
    r.set_rmd(1, own=False)
    assert r.chip.receive(frame(length=300)) is RxStatus.ACCEPTED
    w1 = r.rmd(0)[1]
    assert w1 & RMD1.BUFF and w1 & RMD1.ERR and w1 & RMD1.STP and not w1 & RMD1.ENP
    assert not w1 & RMD1.OWN
    assert r.chip.rx_ring[2] == 1  # stays on the unowned next one
    assert r.csr0 & CSR0.RINT and r.csr0 & CSR0.RXON  # receiver stays on (ref: M)
    assert r.chip.counters.rx_dropped_buff == 1


def test_a_ring_of_one_never_chains_into_itself():
    r = Rig(rx_buf=128, rlen=1)
    r.init()
    r.chip.receive(frame(length=300))
    assert r.rmd(0)[1] & RMD1.BUFF


def test_bcnt_zero_means_a_4096_byte_buffer():
    r = running()
    r.w16(r.rdra + 4, 0xF000)
    r.chip.receive(frame(length=1514))
    assert r.rmd(0)[1] & 0xFF00 == RMD1.STP | RMD1.ENP


def test_the_first_buffer_minimum_of_64_is_not_enforced():
    r = Rig(rx_buf=32)
    r.init()
    r.chip.receive(frame(length=60))
    assert r.rmd(0)[1] & 0xFF00 == RMD1.STP and r.rmd(1)[1] & 0xFF00 == RMD1.ENP


def test_bswp_0_stores_frame_bytes_with_pairs_swapped():
    r = running(bswp=False)
    f = frame(length=61)
    r.chip.receive(f)
    whole = f + fcs(f)
    b = r.rx_bufs[0]
    assert bytes(r.ram[r.off((b + i) ^ 1)] for i in range(len(whole))) == whole


def test_bswp_0_keeps_descriptor_words_big_endian():
    r = running(bswp=False)
    r.chip.receive(frame(length=61))
    assert r.rmd(0)[3] == 65


def test_buffers_wrapping_at_32k_wrap_in_ram():
    r = running(iadr=0x8100)
    r.set_rmd(0, buf=0xFFF0)
    f = frame(length=60)
    r.chip.receive(f)
    assert r.get(0xFFF0, 64) == f + fcs(f)


def test_rx_ready_needs_owned_descriptors_holding_length_plus_fcs():
    r = Rig(rx_buf=128)
    r.init()
    assert r.chip.rx_ready(500)  # 4 x 128 = 512 >= 504
    assert not r.chip.rx_ready(510)
    r.set_rmd(1, own=False)
    assert r.chip.rx_ready(124) and not r.chip.rx_ready(125)


def test_rx_ready_is_false_when_the_receiver_is_off():
    r = Rig()
    assert not r.chip.rx_ready(60)


def test_counters_balance_after_a_mix_of_outcomes():
    r = Rig(rx_buf=128, rlen=2)
    r.init()
    c = r.chip
    c.receive(frame())
    c.receive(frame(dst=bytes.fromhex("020000000099")))
    c.receive(frame(length=2000))
    c.receive(frame(length=300))  # chain of 2 then break
    c.receive(frame())
    assert c.counters_balanced()
    assert c.counters.rx_offered == 5


def test_a_frame_may_be_a_memoryview_or_bytearray():
    r = running()
    f = frame(length=70)
    assert r.chip.receive(memoryview(bytearray(f))) is RxStatus.ACCEPTED
    assert r.rx_data(0) == f + fcs(f)


class SlowRamDma(RamDma):
    """A RamDma subclass: the chip uses the generic store path for it."""


def test_the_receive_hot_path_stores_exactly_what_the_generic_path_stores():
    fast, slow = Rig(rx_buf=200), Rig(rx_buf=200)
    slow.chip.dma = SlowRamDma(slow.ram)
    assert fast.chip._ram is not None and slow.chip._ram is None
    for r in (fast, slow):
        r.init()
        r.set_rmd(2, buf=0xFFC0)  # wraps: falls back inside the hot path too
        for i, n in enumerate((10, 60, 190, 196, 197, 400, 1514, 64)):
            r.chip.receive(frame(length=n))
            r.give_back_rx((i + 3) % 4)
    assert fast.ram == slow.ram
    assert fast.chip.snapshot() == slow.chip.snapshot()


def test_dropped_frames_are_reported_by_reason():
    r = running()
    r.chip.receive(frame(length=2000))
    r.chip.receive(bytes(10), has_fcs=True)
    by = r.chip.counters.rx_dropped_by
    assert by["too_long"] == 1 and by["runt"] == 1 and sum(by.values()) == r.chip.counters.rx_dropped
