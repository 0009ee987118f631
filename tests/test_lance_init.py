"""Init block decoding (ref: reference §4) and ring setup."""
from lance import CSR0, MODE
from lance.layouts import encode_init
from lance.testing import Rig, frame


def test_init_reads_mode_from_word_0():
    r = Rig(mode=MODE.PROM | MODE.DRX)
    r.init(start=False)
    assert r.chip.mode == MODE.PROM | MODE.DRX


def test_padr_byte_0_is_the_low_byte_of_word_1():
    r = Rig()
    r.csr_write(1, 0x8000)
    # words as a 68k stores them: (mac[1]<<8)|mac[0], ...
    r.put(0x8000, bytes([0, 0, 0x80, 0x00, 0x12, 0x10, 0x56, 0x34]) + bytes(16))
    r.csr_write(0, CSR0.INIT)
    assert r.chip.padr == bytes.fromhex("008010123456")


def test_padr_is_at_init_block_offset_3_for_mac_byte_0_on_the_68k():
    r = Rig()
    r.init(start=False)
    assert r.get(0x8003, 1) == b"\x00" and r.get(0x8002, 1) == b"\x80"


def test_ladrf_words_map_to_bits_16i_to_16i_plus_15():
    r = Rig(ladrf=0x8000_0000_0000_0001)
    r.init(start=False)
    assert r.chip.ladrf == 0x8000_0000_0000_0001
    assert r.r16(0x8008) == 1 and r.r16(0x800E) == 0x8000


def test_ring_base_low_three_bits_are_ignored():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.put(0x8000, encode_init(rdra=0x8127, rlen=8, tdra=0x12345F, tlen=2))
    r.csr_write(0, CSR0.INIT)
    assert r.chip.rx_ring == (0x8120, 8, 0)
    assert r.chip.tx_ring == (0x123458, 2, 0)


def test_ring_length_is_two_to_the_rlen_field():
    for log2 in range(8):
        r = Rig()
        r.csr_write(1, 0x8000)
        r.put(0x8000, encode_init(rdra=0x8100, rlen=1 << log2, tdra=0x8200, tlen=1 << (7 - log2)))
        r.csr_write(0, CSR0.INIT)
        assert r.chip.rx_ring[1] == 1 << log2
        assert r.chip.tx_ring[1] == 1 << (7 - log2)


def test_ring_reserved_bits_12_to_8_are_ignored():
    r = Rig()
    r.csr_write(1, 0x8000)
    r.put(0x8000, encode_init(rdra=0x8100, rlen=4, tdra=0x8200, tlen=4))
    r.w16(0x8000 + 18, r.r16(0x8000 + 18) | 0x1F00)
    r.csr_write(0, CSR0.INIT)
    assert r.chip.rx_ring == (0x8100, 4, 0)


def test_init_block_address_uses_csr2_low_byte_and_csr1():
    r = Rig(iadr=0x12_8100)
    r.init(start=False)
    assert r.chip.iadr == 0x12_8100
    assert r.chip.padr == r.padr


def test_init_block_is_read_with_big_endian_words_regardless_of_bswp():
    r = Rig(bswp=False, mode=MODE.PROM)
    r.init(start=False)
    assert r.chip.mode == MODE.PROM and r.chip.padr == r.padr


def test_init_rewinds_the_ring_indexes():
    r = Rig()
    r.init()
    r.chip.receive(frame())
    r.queue_tx(0, frame(length=60), tdmd=True)
    assert r.chip.rx_ring[2] == 1 and r.chip.tx_ring[2] == 1
    r.csr_write(0, CSR0.STOP)
    assert r.chip.rx_ring[2] == 1  # STOP alone keeps them; the next INIT rewinds
    r.init()
    assert r.chip.rx_ring[2] == 0 and r.chip.tx_ring[2] == 0


def test_init_block_wrapping_past_the_end_of_ram_does_not_raise():
    r = Rig(iadr=0xFFF0)
    r.init(start=False)
    assert r.csr0 & CSR0.IDON


def test_linux_bring_up_sequence_reaches_0x0073_with_no_init_interrupt():
    r = Rig()
    r.csr_write(0, CSR0.STOP)
    r.csr_write(1, 0x8000)
    r.csr_write(2, 0)
    r.csr_write(3, 4)
    r.chip.write_rap(0)
    r.write_init_block()
    r.write_rings()
    r.chip.write_rdp(CSR0.INIT)
    for _ in range(100):
        if r.chip.read_rdp() & (CSR0.IDON | CSR0.ERR):
            break
    assert r.chip.read_rdp() & CSR0.IDON
    r.chip.write_rdp(CSR0.IDON)
    r.chip.write_rdp(CSR0.INEA | CSR0.STRT)
    assert r.chip.read_rdp() == 0x0073
    assert r.irq_edges == []


def test_netbsd_bring_up_writes_inea_strt_idon_in_one_write():
    r = Rig()
    r.init(start=False)
    r.csr_write(0, CSR0.INEA | CSR0.STRT | CSR0.IDON)
    assert r.csr0 == 0x0073 and r.irq_edges == []
