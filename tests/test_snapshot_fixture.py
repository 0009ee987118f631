"""The committed v1 snapshot fixture loads and the card continues from it."""
import pathlib

from a2065 import A2065
from a2065 import snapshot as snap

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures/snapshots/a2065-v1-running-rx.snap"
PEER = bytes.fromhex("020000000007")
RX_RING, RX_BUFS, TX_RING, TX_BUFS, BUF = 0x8018, 0x80B8, 0x8098, 0xE138, 1544


def frame(n, seed):  # the frames fixtures/snapshots/make_a2065_v1.py received
    return (b"\xff" * 6 + PEER + b"\x08\x00" + bytes((i * 7 + seed) & 0xFF for i in range(n)))[:n]


def load(**kw):
    return A2065.from_snapshot(snap.load(FIXTURE), strict=True, **kw)


def rmd(b, i):
    return [b.read16(RX_RING + 8 * i + 2 * k) for k in range(4)]


def test_the_v1_fixture_loads_as_the_card_it_was_made_from():
    b = load()
    assert b.configured and b.base == 0xE90000 and b.timing == "wire"
    assert b.mac == bytes.fromhex("008010123456") and b.now == 250_000
    assert b.irq_asserted
    b.write16(0x4002, 0)
    assert b.read16(0x4000) == 0x04F3  # RINT|INTR|INEA|RXON|TXON|STRT|INIT
    d0 = rmd(b, 0)
    assert d0[1] & 0x8000 == 0 and d0[1] & 0x0300 == 0x0300 and d0[3] == 104  # STP|ENP, MCNT
    assert bytes(b.read8(RX_BUFS + i) for i in range(100)) == frame(100, 1)
    assert rmd(b, 1)[1] & 0x8000  # descriptor 1 still owned by the chip
    assert b.next_deadline() == 449_600  # frame 2 in flight


def test_the_card_restored_from_the_fixture_receives_acknowledges_and_transmits():
    sent, edges = [], []
    b = load(transmit=lambda f, t: sent.append((t, f)) or True, irq=edges.append)
    b.advance_to(500_000)
    d1 = rmd(b, 1)
    assert d1[1] & 0x8000 == 0 and d1[3] == 304
    assert bytes(b.ram[RX_BUFS + BUF - 0x8000:RX_BUFS + BUF - 0x8000 + 300]) == frame(300, 2)
    b.write16(0x4002, 0)
    b.write16(0x4000, 0x0440)  # ack RINT, keep INEA
    assert edges == [False] and not b.irq_asserted
    out = bytes.fromhex("020000000007") + b.mac + b"\x08\x06" + bytes(46)
    b.ram[TX_BUFS - 0x8000:TX_BUFS - 0x8000 + 60] = out
    b.write16(TX_RING + 4, (-60) & 0xFFFF)
    b.write16(TX_RING + 6, 0)
    b.write8(TX_RING + 2, 0x83)  # OWN|STP|ENP
    b.write16(0x4000, 0x0048, now=510_000)  # INEA|TDMD
    b.advance_to(700_000)
    assert len(sent) == 1 and sent[0][1][:60] == out and len(sent[0][1]) == 64
    assert edges == [False, True] and b.read16(0x4000) & 0x0200  # TINT


def test_the_fixture_bytes_are_what_this_build_writes_for_the_same_state():
    data = FIXTURE.read_bytes()
    assert snap.CURRENT_VERSION == 1  # when v2 arrives, keep this fixture and add a v2 one
    assert snap.to_bytes(snap.from_bytes(data)) == data


def test_every_committed_snapshot_fixture_loads_into_a_running_card():
    fixtures = sorted(FIXTURE.parent.glob("*.snap"))
    assert FIXTURE in fixtures
    for path in fixtures:
        state = snap.load(path)
        assert state["version"] == snap.CURRENT_VERSION
        b = A2065.from_snapshot(state, strict=True)
        assert b.lance.snapshot()["version"] == snap.CHIP_STATE_VERSION[snap.CURRENT_VERSION]
        b.advance_to(b.now + 2_000_000)  # it runs on: events, polls
        assert b.stats["chip_errors"] == 0, path
