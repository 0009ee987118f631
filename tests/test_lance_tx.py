"""Transmit ring: polls, TDMD, chains, FCS, errors, descriptor write order (ref: reference §5, §9)."""
from lance import CSR0, MODE, TMD1, TMD3
from lance.testing import RecordingDma, Rig, fcs, frame
from lance.timing import TX_POLL_NS


def test_tdmd_transmits_before_next_poll():
    r = Rig()
    r.init()
    f = frame(length=60)
    r.queue_tx(0, f, tdmd=True)
    assert r.sent == [(f + fcs(f), 0)]


def test_tdmd_transmit_completes_inside_the_csr0_write_in_fast_mode():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert not r.tmd(0)[1] & TMD1.OWN
    assert r.csr0 & CSR0.TINT


def test_owned_descriptor_without_tdmd_is_sent_at_the_1_6_ms_poll():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60))
    assert r.chip.next_deadline() == TX_POLL_NS
    r.chip.advance_to(TX_POLL_NS - 1)
    assert r.sent == []
    r.chip.advance_to(TX_POLL_NS)
    assert len(r.sent) == 1 and r.sent[0][1] == TX_POLL_NS


def test_the_idle_poll_repeats_every_1_6_ms():
    r = Rig()
    r.init()
    r.chip.advance_to(TX_POLL_NS)
    assert r.chip.next_deadline() == 2 * TX_POLL_NS
    r.queue_tx(0, frame(length=60))
    r.chip.advance_to(2 * TX_POLL_NS)
    assert len(r.sent) == 1


def test_no_poll_is_scheduled_while_stopped_or_with_dtx():
    r = Rig()
    assert r.chip.next_deadline() is None
    r = Rig(mode=MODE.DTX)
    r.init()
    assert r.chip.next_deadline() is None


def test_strt_does_not_poll_at_once():
    r = Rig()
    r.init(start=False)
    r.queue_tx(0, frame(length=60))
    r.csr_write(0, CSR0.IDON)
    r.csr_write(0, CSR0.INEA | CSR0.STRT)
    assert r.sent == []


def test_the_chip_stays_on_a_descriptor_it_does_not_own():
    r = Rig()
    r.init()
    r.queue_tx(1, frame(length=60))  # owned, but index 0 is not
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    r.chip.advance_to(5 * TX_POLL_NS)
    assert r.sent == [] and r.chip.tx_ring[2] == 0
    r.queue_tx(0, frame(length=61), tdmd=True)
    assert [len(s[0]) for s in r.sent] == [65, 64]


def test_back_to_back_frames_go_out_in_one_poll():
    r = Rig()
    r.init()
    for i in range(4):
        r.queue_tx(i, frame(length=60 + i))
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    assert [len(s[0]) for s in r.sent] == [64, 65, 66, 67]
    assert r.chip.tx_ring[2] == 0


def test_fcs_is_appended_little_endian():
    r = Rig()
    r.init()
    f = frame(length=100)
    r.queue_tx(0, f, tdmd=True)
    assert r.sent[0][0][-4:] == fcs(f)


def test_dtcr_sends_the_buffer_without_appending_fcs():
    r = Rig(mode=MODE.DTCR)
    r.init()
    f = frame(length=64)
    r.queue_tx(0, f, tdmd=True)
    assert r.sent[0][0] == f


def test_the_chip_does_not_pad_short_frames():
    r = Rig()
    r.init()
    r.queue_tx(0, b"\x01" * 20, tdmd=True)
    assert len(r.sent[0][0]) == 24


def test_tmd1_keeps_stp_enp_hadr_and_clears_own():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    w1 = r.tmd(0)[1]
    assert w1 & 0xFF == (r.tx_bufs[0] >> 16) & 0xFF
    assert w1 & 0xFF00 == TMD1.STP | TMD1.ENP


def test_collision_free_network_gives_zero_status_bits():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    w1, w3 = r.tmd(0)[1], r.tmd(0)[3]
    assert not w1 & (TMD1.ERR | TMD1.MORE | TMD1.ONE | TMD1.DEF)
    assert w3 == 0  # BUFF UFLO LCOL LCAR RTRY TDR all 0


def test_stale_status_bits_in_tmd1_are_cleared_by_the_chip():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60))
    r.w16(r.tdra + 2, r.r16(r.tdra + 2) | TMD1.MORE | TMD1.ONE | TMD1.DEF | TMD1.ERR)
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    assert not r.tmd(0)[1] & (TMD1.ERR | TMD1.MORE | TMD1.ONE | TMD1.DEF | TMD1.OWN)


def test_tint_is_set_per_frame():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.csr0 & CSR0.TINT
    r.csr_write(0, CSR0.INEA | CSR0.TINT)
    r.queue_tx(1, frame(length=60), tdmd=True)
    assert r.csr0 & CSR0.TINT


def test_tmd3_is_written_before_tmd1_and_own_is_cleared_last():
    r = Rig()
    log = []
    r.chip.dma = RecordingDma(r.ram, log)
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    a = r.tdra & 0x7FFF
    assert log == [(a + 6, 0), (a + 2, r.tmd(0)[1])]


def test_a_chain_stp_to_enp_is_sent_as_one_frame_and_every_descriptor_released():
    r = Rig()
    r.init()
    f = frame(length=300)
    r.queue_tx(2, f[200:], own=True, stp=False, enp=True)
    r.queue_tx(1, f[100:200], own=True, stp=False, enp=False)
    r.queue_tx(0, f[:100], own=True, stp=True, enp=False, tdmd=True)
    assert r.sent[0][0] == f + fcs(f)
    assert [bool(r.tmd(i)[1] & TMD1.OWN) for i in range(3)] == [False] * 3
    assert r.chip.tx_ring[2] == 3
    assert r.chip.counters.tx_frames == 1


def test_a_chain_break_sets_buff_uflo_err_and_turns_txon_off():
    r = Rig()
    r.init()
    f = frame(length=300)
    r.queue_tx(0, f[:100], stp=True, enp=False, tdmd=True)  # descriptor 1 not owned
    assert r.sent == []
    w1, w3 = r.tmd(0)[1], r.tmd(0)[3]
    assert w3 & (TMD3.BUFF | TMD3.UFLO) == TMD3.BUFF | TMD3.UFLO
    assert w1 & TMD1.ERR and not w1 & TMD1.OWN
    assert not r.csr0 & CSR0.TXON
    assert r.csr0 & CSR0.TINT
    assert r.chip.next_deadline() is None  # transmitter off: no more polls
    assert r.chip.counters.tx_buff == 1


def test_after_a_chain_break_the_chip_stays_on_the_unowned_next_descriptor():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=100), stp=True, enp=False, tdmd=True)
    assert r.chip.tx_ring[2] == 1


def test_strt_while_running_turns_the_transmitter_on_again():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=100), stp=True, enp=False, tdmd=True)
    r.csr_write(0, CSR0.INEA | CSR0.STRT)
    assert r.csr0 & CSR0.TXON
    r.queue_tx(1, frame(length=60), tdmd=True)
    assert len(r.sent) == 1


def test_owned_descriptor_without_stp_is_released_and_skipped():
    r = Rig()
    r.init()
    r.queue_tx(1, frame(length=60))
    r.queue_tx(0, frame(length=60), stp=False, enp=True, tdmd=True)
    assert not r.tmd(0)[1] & TMD1.OWN
    assert len(r.sent) == 1 and r.chip.counters.tx_no_stp == 1


def test_a_chain_longer_than_the_ring_is_a_buffer_error_not_a_loop():
    r = Rig(tlen=1)
    r.init()
    r.queue_tx(0, frame(length=100), stp=True, enp=False, tdmd=True)
    assert r.tmd(0)[3] & TMD3.BUFF and r.sent == []


def test_frames_over_1518_bytes_with_fcs_set_babl_and_are_still_sent():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=1515), tdmd=True)
    assert r.csr0 & CSR0.BABL and r.csr0 & CSR0.ERR
    assert len(r.sent[0][0]) == 1519


def test_a_1514_byte_frame_is_not_babble():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=1514), tdmd=True)
    assert not r.csr0 & CSR0.BABL


def test_link_down_sets_lcar_and_err_and_the_frame_still_completes():
    r = Rig(link=False)
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.tmd(0)[3] == TMD3.LCAR
    assert r.tmd(0)[1] & TMD1.ERR and not r.tmd(0)[1] & TMD1.OWN
    assert r.csr0 & CSR0.TINT and r.csr0 & CSR0.TXON
    assert r.chip.counters.tx_lcar == 1


def test_no_transmit_callback_discards_frames_without_lcar():
    r = Rig(transmit=False)
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.tmd(0)[3] == 0 and r.chip.counters.tx_frames == 1


def test_bcnt_zero_means_4096_bytes():
    r = Rig()
    r.init()
    r.queue_tx(0, frame(length=60))
    r.w16(r.tdra + 4, 0xF000)
    r.csr_write(0, CSR0.INEA | CSR0.TDMD)
    assert len(r.sent[0][0]) == 4100


def test_bswp_0_reads_frame_bytes_with_pairs_swapped():
    r = Rig(bswp=False)
    r.init()
    f = frame(length=61)
    r.queue_tx(0, f, tdmd=True)  # the rig stores byte i at (addr+i)^1
    assert r.sent[0][0][:-4] == f


def test_bswp_0_with_an_odd_buffer_address():
    r = Rig(bswp=False)
    r.init()
    f = frame(length=61)
    r.queue_tx(0, f, buf=r.tx_bufs[0] + 1, tdmd=True)
    assert r.sent[0][0][:-4] == f


def test_buffers_wrapping_at_32k_are_gathered_across_the_wrap():
    r = Rig()
    r.init()
    f = frame(length=100)
    r.queue_tx(0, f, buf=0xFFD0, tdmd=True)
    assert r.sent[0][0][:-4] == f


def test_stop_aborts_nothing_in_fast_mode_and_stops_polling():
    r = Rig()
    r.init()
    r.csr_write(0, CSR0.STOP)
    r.queue_tx(0, frame(length=60))
    r.chip.advance_to(10 * TX_POLL_NS)
    assert r.sent == []


def test_counters_count_frames_bytes_and_errors():
    r = Rig(link=False)
    r.init()
    r.queue_tx(0, frame(length=60), tdmd=True)
    c = r.chip.counters
    assert (c.tx_frames, c.tx_bytes, c.tx_errors, c.tx_lcar) == (1, 64, 1, 1)


def test_bswp_0_chain_with_odd_lengths_is_gathered_in_order():
    r = Rig(bswp=False)
    r.init()
    f = frame(length=201)
    r.queue_tx(1, f[101:], stp=False, enp=True)
    r.queue_tx(0, f[:101], stp=True, enp=False, tdmd=True)
    assert r.sent[0][0][:-4] == f
