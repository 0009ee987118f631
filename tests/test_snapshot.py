"""Board snapshots: plain data, construct bytes, upgrades, and identical behaviour after restore."""
import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2065 import A2065
from a2065 import snapshot as snap
from a2065.drivers import LinuxA2065Driver

BROADCAST = b"\xff" * 6
PEER = bytes.fromhex("020000000007")


def frame(dst, n, seed=0):
    body = bytes(((i + seed) & 0xFF) for i in range(max(0, n - 14)))
    return (dst + PEER + b"\x08\x00" + body)[:max(n, 14)]


def running_board(timing="fast", **kw):
    b = A2065(strict=True, timing=timing, **kw)
    b.write16(0x48, 0xE900)
    drv = LinuxA2065Driver(b)
    drv.open()
    return b, drv


# -- plain data and bytes ----------------------------------------------------------------------

def test_a_board_snapshot_is_plain_data_with_every_documented_section():
    b, drv = running_board(serial=0x00ABCDEF)
    b.lance.receive(frame(BROADCAST, 100))
    s = b.snapshot()
    assert s["format"] == "a2065-board" and s["version"] == 1
    assert s["serial"] == 0x00ABCDEF and s["variant"] == "commodore" and s["timing"] == "fast"
    assert s["autoconfig"] == {"state": "configured", "base": 0xE90000, "latch": 0}
    assert s["ram"] == bytes(b.ram) and len(s["ram"]) == 0x8000
    assert s["time_ns"] == b.now and s["irq_level"] is True
    assert s["chip"] == b.lance.snapshot()
    assert s["pending_events"] == {"next_deadline": b.next_deadline()}
    assert snap.from_bytes(snap.to_bytes(s)) == s


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=16),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4)),
    max_leaves=20)


@given(value=plain)
def test_any_plain_value_survives_the_construct_encoding_exactly(value):
    state = {"format": snap.FORMAT, "version": 1, "x": value}
    back = snap.from_bytes(snap.to_bytes(state))
    assert back == state
    assert type(back["x"]) is type(value)


def test_bytes_start_with_the_magic_and_the_version():
    data = snap.to_bytes({"format": snap.FORMAT, "version": 1})
    assert data[:8] == b"A2065SNP" and data[8:10] == b"\x00\x01"


def test_a_corrupted_snapshot_is_refused_with_a_snapshot_error():
    data = bytearray(snap.to_bytes(running_board()[0].snapshot()))
    data[100] ^= 0x40
    with pytest.raises(snap.SnapshotError):
        snap.from_bytes(bytes(data))
    with pytest.raises(snap.SnapshotError):
        snap.from_bytes(b"NOTASNAP" + bytes(data[8:]))
    with pytest.raises(snap.SnapshotError):
        snap.from_bytes(bytes(data[:50]))


def test_floats_are_not_snapshot_data():
    with pytest.raises(snap.SnapshotError):
        snap.to_bytes({"format": snap.FORMAT, "version": 1, "t": 1.5})


def test_a_snapshot_from_a_newer_version_is_refused():
    state = dict(running_board()[0].snapshot(), version=2)
    with pytest.raises(snap.SnapshotError):
        snap.from_bytes(snap.to_bytes(state))
    with pytest.raises(snap.SnapshotError):
        A2065.from_snapshot(state)


def test_the_upgrade_chain_applies_one_step_per_old_version_in_order(monkeypatch):
    steps = []

    def one_to_two(s):
        steps.append(1)
        return dict(s, version=2, added_in_2=True)

    def two_to_three(s):
        steps.append(2)
        return dict(s, version=3, renamed=s.pop("old"))

    monkeypatch.setattr(snap, "CURRENT_VERSION", 3)
    monkeypatch.setattr(snap, "UPGRADES", {1: one_to_two, 2: two_to_three})
    out = snap.upgrade({"format": snap.FORMAT, "version": 1, "old": 7})
    assert steps == [1, 2]
    assert out == {"format": snap.FORMAT, "version": 3, "added_in_2": True, "renamed": 7}
    assert snap.upgrade({"format": snap.FORMAT, "version": 2, "old": 1})["version"] == 3


def test_a_missing_upgrade_step_is_an_error_not_a_silent_pass(monkeypatch):
    monkeypatch.setattr(snap, "CURRENT_VERSION", 2)
    monkeypatch.setattr(snap, "UPGRADES", {})
    with pytest.raises(snap.SnapshotError):
        snap.upgrade({"format": snap.FORMAT, "version": 1})


def test_version_1_is_current_and_passes_through_unchanged():
    s = running_board()[0].snapshot()
    assert snap.CURRENT_VERSION == 1 and snap.upgrade(s) == s


# -- restore -----------------------------------------------------------------------------------

def test_from_snapshot_rebuilds_identity_configuration_ram_and_chip():
    b, _ = running_board(serial=0x00112233, variant="ameristar")
    b.write16(0x9000, 0x4242)
    b2 = A2065.from_snapshot(snap.from_bytes(snap.to_bytes(b.snapshot())))
    assert (b2.serial, b2.variant, b2.mac) == (0x00112233, "ameristar", b.mac)
    assert b2.configured and b2.base == 0xE90000
    assert b2.read16(0x9000) == 0x4242 and b2.ram == b.ram
    assert b2.lance.snapshot() == b.lance.snapshot()
    assert b2.snapshot() == b.snapshot()


def test_restore_into_an_existing_board_keeps_its_ram_object_for_the_chip_dma():
    b, _ = running_board()
    b.write16(0x8100, 0xAAAA)
    other = A2065(serial=5, timing="wire")
    ram = other.ram
    other.restore(b.snapshot())
    assert other.ram is ram and other.read16(0x8100) == 0xAAAA
    assert other.lance.dma.read16(0x8100) == 0xAAAA
    assert other.timing == "fast" and other.serial == b.serial
    assert other.read16(0) == 0  # configured: the autoconfig image is gone


def test_an_unconfigured_or_shut_up_board_restores_as_such():
    fresh = A2065()
    back = A2065.from_snapshot(fresh.snapshot())
    assert not back.configured and back.read16(0) == 0xCFFF
    fresh.write8(0x4A, 0x30)  # latch held across the snapshot
    back = A2065.from_snapshot(fresh.snapshot())
    back.write8(0x48, 0xE0)
    assert back.base == 0xE30000
    fresh.write8(0x4C, 0)
    assert A2065.from_snapshot(fresh.snapshot()).shut_up


def test_restoring_a_board_with_its_line_asserted_raises_no_spurious_edge():
    b, _ = running_board()
    b.lance.receive(frame(BROADCAST, 80))
    assert b.irq_asserted
    edges = []
    b2 = A2065.from_snapshot(b.snapshot(), irq=edges.append)
    assert b2.irq_asserted and edges == []  # the host polls irq_asserted after a restore


def test_backends_are_not_saved_and_a_new_transmit_callback_is_wired_at_restore():
    sent = []
    b, drv = running_board()
    s = b.snapshot()
    b2 = A2065.from_snapshot(s, transmit=lambda f, t: sent.append(f) or True)
    drv2 = copy.deepcopy(drv, memo={id(b): b2})
    drv2.send(frame(PEER, 60))
    b2.advance_to(b2.now + 2_000_000)
    assert len(sent) == 1 and sent[0][:60] == frame(PEER, 60)
    assert "transmit" not in repr(sorted(s))


# -- the same future after restore (hypothesis) ------------------------------------------------

ops = st.lists(st.one_of(
    st.tuples(st.just("rx"), st.sampled_from(["bcast", "me", "other"]), st.integers(14, 1514)),
    st.tuples(st.just("tx"), st.integers(14, 1514), st.just(0)),
    st.tuples(st.just("time"), st.integers(0, 3_000_000), st.just(0)),
    st.tuples(st.just("service"), st.just(0), st.just(0)),
), min_size=1, max_size=40)


class Recorder:
    def __init__(self):
        self.board = None
        self.edges, self.sent = [], []

    def irq(self, level):
        self.edges.append((self.board.now if self.board else None, level))

    def transmit(self, f, t):
        self.sent.append((t, bytes(f)))
        return True


def run(board, drv, rec, ops, t, seed):
    me = board.mac
    for i, (op, a, b) in enumerate(ops):
        if op == "rx":
            dst = {"bcast": BROADCAST, "me": me, "other": PEER}[a]
            board.lance.receive(frame(dst, b, seed + i))
        elif op == "tx":
            drv.send(frame(PEER, a, seed + i))
        elif op == "time":
            t += a
            board.advance_to(t)
        else:
            drv.service(t)
    return t


@settings(max_examples=60)
@given(timing=st.sampled_from(["fast", "wire"]), ops=ops, data=st.data())
def test_a_board_restored_at_a_random_point_behaves_exactly_like_the_original(timing, ops, data):
    cut = data.draw(st.integers(0, len(ops)), label="cut")
    rec1 = Recorder()
    b1, drv1 = running_board(timing, irq=rec1.irq, transmit=rec1.transmit)
    rec1.board = b1
    t = run(b1, drv1, rec1, ops[:cut], b1.now, 0)

    state = snap.from_bytes(snap.to_bytes(b1.snapshot()))
    rec2 = Recorder()
    b2 = A2065.from_snapshot(state, irq=rec2.irq, transmit=rec2.transmit, strict=True)
    rec2.board = b2
    drv2 = copy.deepcopy(drv1, memo={id(b1): b2})
    assert b2.irq_asserted == b1.irq_asserted
    n_edges, n_sent = len(rec1.edges), len(rec1.sent)

    tail = ops[cut:] + [("time", 5_000_000, 0), ("service", 0, 0), ("time", 5_000_000, 0)]
    t1 = run(b1, drv1, rec1, tail, t, cut)
    t2 = run(b2, drv2, rec2, tail, t, cut)
    assert t1 == t2
    assert rec1.edges[n_edges:] == rec2.edges
    assert rec1.sent[n_sent:] == rec2.sent
    assert b1.ram == b2.ram
    assert b1.snapshot() == b2.snapshot()
    assert list(drv1.received) == list(drv2.received)


# -- one version chain for the card, the chip's part included ----------------------------------

def test_the_current_card_version_holds_the_chip_layout_this_build_restores():
    from lance.chip import STATE_VERSION
    s = running_board()[0].snapshot()
    assert snap.CHIP_STATE_VERSION[snap.CURRENT_VERSION] == STATE_VERSION == s["chip"]["version"]


def test_an_upgrade_step_can_change_the_chip_layout_and_the_chip_part_is_checked(monkeypatch):
    def one_to_two(s):  # a hypothetical chip change: "rx_idle_at" renamed, chip layout 2
        chip = dict(s["chip"], version=2)
        chip["rx_free_at"] = chip.pop("rx_idle_at")
        return dict(s, version=2, chip=chip)

    v1 = running_board()[0].snapshot()
    monkeypatch.setattr(snap, "CURRENT_VERSION", 2)
    monkeypatch.setattr(snap, "CHIP_STATE_VERSION", {1: 1, 2: 2})
    monkeypatch.setattr(snap, "UPGRADES", {1: one_to_two})
    out = snap.upgrade(v1)
    assert out["version"] == 2 and out["chip"]["version"] == 2
    assert out["chip"]["rx_free_at"] == v1["chip"]["rx_idle_at"] and "rx_idle_at" not in out["chip"]
    monkeypatch.setattr(snap, "UPGRADES", {1: lambda s: dict(s, version=2)})  # forgets the chip
    with pytest.raises(snap.SnapshotError, match="chip state version"):
        snap.upgrade(v1)


def test_a_card_snapshot_whose_chip_part_has_another_layout_is_refused():
    s = running_board()[0].snapshot()
    s["chip"]["version"] = 7
    with pytest.raises(snap.SnapshotError):
        snap.from_bytes(snap.to_bytes(s))
    with pytest.raises(snap.SnapshotError):
        A2065.from_snapshot(s)
