"""Campaign 3 (faults) at the card level: backend errors in the middle of a run, seen through the
whole stack (backend -> Bridge -> Am7990 on an A2065 -> Linux-style driver).

What hardware would report: a transmit the backend refuses (link down, EAGAIN, ENOBUFS, device
gone) is TMD3.LCAR in the frame's descriptor, which the driver counts as a carrier error; in
`hardware` delivery a frame for which the guest has no receive descriptor is CSR0.MISS. The bridge
and the backend log each condition once, not per frame; traffic resumes by itself when the fault
clears. The backend-level halves (counting, reasons, recorder cut-back) are in
tests/test_backend_*.py; these tests add the card.
"""
from __future__ import annotations

import io
import logging

import pytest

from a2065.runners.replay import Runner
from pcap_backend.backends.cable import VirtualCable
from pcap_backend.backends.pcapng_io import PcapngRecorder, PcapngReplay, iter_pcapng
from pcap_backend.base import Backend, CaptureFormatError

from bridge_helpers import PEER_MAC, ipv4_tcp
from conftest import library_loads, requires_package

CARD = bytes.fromhex("008010123456")


def _frame(i: int, dst=CARD, src=PEER_MAC) -> bytes:
    return ipv4_tcp(i.to_bytes(4, "big") * 100, dst_mac=dst, src_mac=src, seq=1000 + 400 * i)


class Card:
    """Runner around a backend, with what the guest received and a clock."""

    def __init__(self, backend, delivery="lossless"):
        self.got = []
        self.r = Runner(backend, delivery=delivery, mac=CARD,
                        on_receive=lambda f, t: self.got.append(f))
        self.now = self.r.now

    def run(self, ns=2_000_000, steps=4):
        for _ in range(steps):
            self.now += ns // steps
            self.r.step(self.now)

    def send(self, n, start=0):
        ok = 0
        for i in range(n):
            f = _frame(start + i, dst=PEER_MAC, src=CARD)
            if self.r.driver.send(f):
                ok += 1
            self.run(200_000, 1)  # the driver reaps as the chip completes
        self.run()
        return ok

    @property
    def lcar(self):
        return self.r.chip.counters.tx_lcar


def _messages(caplog, logger_prefix):
    return [r.getMessage() for r in caplog.records if r.name.startswith(logger_prefix)]


def test_a_cable_unplugged_mid_run_gives_lcar_logs_once_and_traffic_resumes_when_replugged(caplog):
    peer, end = VirtualCable.pair(bit_rate=None)
    card = Card(end)
    card.send(4)
    assert len(peer.poll(card.now, 100)) == 4 and card.lcar == 0
    with caplog.at_level(logging.INFO, logger="a2065"):
        peer.set_link(False)
        card.send(10, start=4)
        for i in range(5):
            assert not peer.send(_frame(i), card.now)  # nothing reaches the card either
        card.run()
        assert card.lcar == 10
        assert card.r.driver.counters.tx_errors["carrier"] == 10
        assert card.r.bridge.stats()["tx_failed"] == 10
        assert len([m for m in _messages(caplog, "a2065.bridge") if "refused" in m]) == 1
        assert len([m for m in _messages(caplog, "a2065.backend.cable.b")
                    if "transmit failing" in m]) == 1  # the card's end, once for ten frames
        peer.set_link(True)
        card.send(3, start=20)
    assert len(peer.poll(card.now, 100)) == 3 and card.lcar == 10
    for i in range(5):
        assert peer.send(_frame(i), card.now)
    card.run()
    assert [f[:len(_frame(i))] for i, f in zip(range(5), card.got)] == [_frame(i) for i in range(5)]
    assert card.r.chip.counters_balanced()


class Flaky(Backend):
    """A backend over a cable end whose sends fail with `reason` while `failing` is set (as a
    live backend reports EAGAIN / ENOBUFS / a removed device)."""

    name = "flaky"

    def __init__(self, end, reason):
        super().__init__()
        self.end, self.reason, self.failing = end, reason, False

    def send(self, frame, t_ns):
        if self.failing:
            return self._tx_fail(self.reason)
        ok = self.end.send(frame, t_ns)
        if ok:
            self._tx_ok(frame)
        return ok

    def poll(self, now_ns, limit=64):
        return self.end.poll(now_ns, limit)

    def next_deadline(self):
        return self.end.next_deadline()


@pytest.mark.parametrize("reason", ["eagain", "enobufs", "no_device"])
def test_inject_errors_mid_run_are_lcar_at_the_card_logged_once_and_sending_resumes(reason, caplog):
    peer, end = VirtualCable.pair(bit_rate=None)
    be = Flaky(end, reason)
    card = Card(be)
    card.send(2)
    with caplog.at_level(logging.INFO, logger="a2065"):
        be.failing = True
        card.send(12, start=2)
        assert card.lcar == 12 and be.stats()["tx_failed"] == {reason: 12}
        be.failing = False
        assert card.send(3, start=20) == 3
    assert card.lcar == 12
    assert len(peer.poll(card.now, 100)) == 5
    backend_msgs = _messages(caplog, "a2065.backend")
    assert len([m for m in backend_msgs if "transmit failing" in m]) == 1
    assert len([m for m in backend_msgs if "cleared after 12" in m]) == 1


class Raising(Flaky):
    """A backend that breaks the contract and raises OSError from send()."""

    def send(self, frame, t_ns):
        if self.failing:
            raise OSError(105, "No buffer space available")
        return super().send(frame, t_ns)


def test_a_backend_raising_on_send_is_lcar_at_the_card_and_logged_once(caplog):
    peer, end = VirtualCable.pair(bit_rate=None)
    be = Raising(end, "enobufs")
    card = Card(be)
    be.failing = True
    with caplog.at_level(logging.INFO, logger="a2065"):
        card.send(6)
    assert card.lcar == 6
    assert len([m for m in _messages(caplog, "a2065.bridge") if "raised on send" in m]) == 1
    be.failing = False
    assert card.send(2, start=10) == 2 and card.lcar == 6


def test_hardware_delivery_reports_miss_when_the_guest_holds_every_descriptor_and_recovers(caplog):
    peer, end = VirtualCable.pair(bit_rate=None)
    card = Card(end, delivery="hardware")
    ring = card.r.driver.n_rx
    for i in range(ring + 10):
        peer.send(_frame(i), card.now)
    with caplog.at_level(logging.INFO, logger="a2065.bridge"):
        # the guest is busy: board and bridge run, the driver does not
        card.now += 1_000_000
        card.r.board.advance_to(card.now)
        card.r.bridge.service(card.now)
    c = card.r.chip.counters
    assert c.rx_delivered == ring and c.rx_missed == 10
    assert card.r.chip.csr0 & 0x1000  # CSR0.MISS, as the hardware shows it
    assert card.r.bridge.stats()["dropped"] == {"missed": 10}
    assert len([m for m in _messages(caplog, "a2065.bridge") if "MISS" in m]) == 1
    card.run()  # the guest handles its ring and gives the descriptors back
    assert len(card.got) == ring
    for i in range(5):
        peer.send(_frame(100 + i), card.now)
    card.run()
    assert len(card.got) == ring + 5 and card.r.chip.counters.rx_missed == 10
    assert card.r.chip.counters_balanced()


def _capture(tmp_path, n):
    path = tmp_path / "in.pcapng"
    with PcapngRecorder(path) as rec:
        for i in range(n):
            rec.record(1_000_000 * i, _frame(i), False)
    return path


@pytest.mark.parametrize("strict", [True, False])
def test_a_capture_truncated_mid_block_delivers_every_complete_frame_to_the_guest_then_stops(
        tmp_path, strict):
    path = _capture(tmp_path, 12)
    data = path.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 50])  # inside the last packet block
    complete = len(list(iter_pcapng(io.BytesIO(data)))) - 1
    card = Card(PcapngReplay(cut, strict=strict))
    if strict:
        with pytest.raises(CaptureFormatError):
            card.run(20_000_000, 40)
    else:
        card.run(20_000_000, 40)
        assert card.r.backend.stats()["format_error"]
    card.run(20_000_000, 40)  # the card keeps running after the capture ended
    assert [f[:len(_frame(i))] for i, f in enumerate(card.got)] == [_frame(i) for i in range(complete)]
    assert card.r.chip.counters_balanced()


class FullDisk(io.BytesIO):
    full = False

    def write(self, b):
        if self.full:
            super().write(bytes(b)[:5])
            raise OSError(28, "No space left on device")
        return super().write(b)


def test_a_full_disk_under_the_recorder_never_stops_traffic_through_the_card_and_recording_resumes(
        caplog):
    f = FullDisk()
    peer, end = VirtualCable.pair(bit_rate=None)
    rec = PcapngRecorder(f, end, flush="packet")
    card = Card(rec)
    peer.send(_frame(0), card.now)
    card.run()
    with caplog.at_level(logging.INFO, logger="a2065"):
        f.full = True
        for i in range(1, 21):
            peer.send(_frame(i), card.now)
        card.send(5)
        card.run()
        f.full = False
        peer.send(_frame(21), card.now)
        card.run()
    assert len(card.got) == 22 and len(peer.poll(card.now, 100)) == 5 and card.lcar == 0
    s = rec.stats()
    assert s["record_errors"] >= 25 and s["record_dropped"] >= 25
    warnings = [m for m in _messages(caplog, "a2065.backend") if "ENOSPC" in m or "No space" in m]
    assert len(warnings) == 1
    rec.close()
    back = list(iter_pcapng(io.BytesIO(f.getvalue())))
    assert back[0].frame == _frame(0) and back[-1].frame == _frame(21)


# -- live backends (root, namespaces made here) ----------------------------------------------------

@pytest.mark.root
def test_a_veth_link_down_and_up_under_afpacket_gives_lcar_then_traffic_resumes_by_itself():
    from netns import run, veth_namespaces, in_netns
    from pcap_backend.backends.afpacket import AfPacket

    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a)
        with be:
            card = Card(be)
            assert card.send(2) == 2 and card.lcar == 0
            run(["ip", "link", "set", t.dev_a, "down"], ns=t.ns_a)
            card.send(5, start=2)
            assert card.lcar == 5 and card.r.driver.counters.tx_errors["carrier"] == 5
            run(["ip", "link", "set", t.dev_a, "up"], ns=t.ns_a)
            sent = 0
            for k in range(50):  # the veth needs a moment to report carrier again
                if card.send(1, start=10 + k) and card.lcar == 5:
                    sent += 1
                    if sent == 3:
                        break
            assert sent == 3
            assert be.stats()["tx_frames"] >= 5


@pytest.mark.root
def test_removing_the_interface_under_the_card_is_lcar_on_every_send_and_never_raises():
    from netns import run, veth_namespaces, in_netns
    from pcap_backend.backends.afpacket import AfPacket

    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a)
        with be:
            card = Card(be)
            assert card.send(2) == 2
            run(["ip", "link", "del", t.dev_a], ns=t.ns_a)
            card.send(6, start=2)
            card.run(50_000_000, 20)
            assert card.lcar == 6 and not be.link_up
            assert card.r.chip.counters_balanced()


@pytest.mark.root
@pytest.mark.parametrize("kind", ["afpacket", pytest.param("pcap", marks=requires_package(
    "libpcap0.8", library_loads("pcap", "load_libpcap")))])
def test_an_interface_deleted_and_recreated_by_name_under_the_card_resumes_traffic_by_itself(
        kind, caplog):
    import time

    from netns import in_netns, recreate_veth, run, veth_namespaces
    from pcap_backend.backends.afpacket import AfPacket
    from pcap_backend.backends.pcap import Pcap

    with veth_namespaces() as t:
        with in_netns(t.ns_a):
            be = AfPacket(t.dev_a) if kind == "afpacket" else Pcap(t.dev_a)
        with be, caplog.at_level(logging.INFO, logger="a2065"):
            card = Card(be)
            assert card.send(2) == 2 and card.lcar == 0
            run(["ip", "link", "del", t.dev_a], ns=t.ns_a)
            card.send(6, start=2)
            assert card.lcar == 6 and not be.link_up
            recreate_veth(t)
            with in_netns(t.ns_b):
                far = AfPacket(t.dev_b)  # the new far end sees what the card sends
            with far:
                ok = delivered = 0
                for k in range(1000):  # bounded: the backend looks the name up every 0.5 s
                    before = card.lcar
                    assert card.send(1, start=100 + k) == 1
                    if card.lcar == before:  # the chip sent it: no LCAR
                        ok += 1
                        delivered += 1
                        if ok == 3:
                            break
                    else:
                        ok = 0
                        time.sleep(0.01)
                assert ok == 3
                lcar = card.lcar
                assert card.send(4, start=2000) == 4 and card.lcar == lcar
                got = []
                for _ in range(200):
                    got += [p.frame for p in far.poll(0) if p.frame[6:12] == CARD]
                    if len(got) >= delivered + 4:
                        break
                    time.sleep(0.01)
                assert len(got) == delivered + 4
            s = be.stats()
            assert s["link_lost"] == 1 and s["reopens"] == 1 and be.link_up
            assert s["tx_failed_total"] == card.lcar  # every refused send is one LCAR
            assert card.r.driver.counters.tx_errors["carrier"] == card.lcar
            assert card.r.chip.counters_balanced()
        assert len([m for m in _messages(caplog, "a2065.backend")
                    if "reopening it by name" in m]) == 1
