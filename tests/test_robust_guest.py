"""Campaign 1 (hostile guest) in the test suite.

* A hypothesis state machine over the same rules as tools/campaign_guest.py (each rule draws its
  values through `DrawChooser`, so hypothesis shrinks a finding to a short list of actions).
* The seeded campaign itself for 100,000 steps (the CI size; ~20-40 s), and a guard test that
  proves the guards catch what they are there to catch.

Invariants are the campaign's (`World.check`): no exception escapes, RAM never read or written
outside its 32 KB nor resized, DMA walks bounded, IRQ line == INTR && INEA with alternating
edges, counters add up.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import campaign_guest as cg  # noqa: E402

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"


class DrawChooser:
    """The chooser interface over hypothesis's data.draw."""

    def __init__(self, data):
        self.data = data

    def int(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))

    def bool(self, p=0.5):
        return self.data.draw(st.booleans())

    def bytes(self, n):
        return self.data.draw(st.binary(min_size=n, max_size=n))


class HostileGuest(RuleBasedStateMachine):
    @initialize(data=st.data(), counting=st.booleans(), timing=st.sampled_from(["fast", "wire"]),
                start=st.sampled_from(["cold", "configured", "driver"]))
    def setup(self, data, counting, timing, start):
        self.w = cg.World(DrawChooser(data), counting=counting, timing=timing)
        if start != "cold":
            self.w.ensure_configured()
        if start == "driver":
            self.w.a_driver_open(self.w.ch)

    def _do(self, data, kind):
        w = self.w
        w.ch.data = data
        ops0 = w.dma.ops if w.counting else 0
        polls0 = w.chip.counters.polls
        w.act(kind)
        w.check(ops0, polls0)


def _make_rule(kind):
    def r(self, data):
        self._do(data, kind)
    r.__name__ = f"rule_{kind}"
    return rule(data=st.data())(r)


for _kind, _w in cg.ACTIONS:
    setattr(HostileGuest, f"rule_{_kind}", _make_rule(_kind))

TestHostileGuestStateMachine = HostileGuest.TestCase
TestHostileGuestStateMachine.settings = settings(
    max_examples=400 if THOROUGH else 60, stateful_step_count=80 if THOROUGH else 40,
    deadline=None)


def test_a_hundred_thousand_seeded_hostile_guest_steps_break_no_invariant():
    r = cg.run(seed=1, steps=100_000, episode_steps=2000)
    assert r["steps"] == 100_000 and not r["failures"]
    assert r["rx_offered"] > 10_000 and r["tx_frames"] > 1_000 and r["rx_delivered"] > 500
    assert 0 < r["max_ops_step"] <= cg.WALK_BOUND


def test_the_guarded_ram_refuses_reads_writes_and_resizes_outside_the_32_kb():
    g = cg.GuardedRam(bytes(cg.RAM_SIZE))
    for bad in (lambda: g[cg.RAM_SIZE], lambda: g[-1], lambda: g[0x7FF0:0x8004],
                lambda: g.__setitem__(slice(0x7FFE, 0x8002), b"abcd"),
                lambda: g.__setitem__(slice(0, 4), b"toolong"),
                lambda: g.__setitem__(-2, 1)):
        with pytest.raises(cg.InvariantError):
            bad()
    g[0x7FFC:0x8000] = b"abcd"
    assert g[0x7FFC:0x8000] == b"abcd" and len(g) == cg.RAM_SIZE


def test_a_campaign_failure_names_the_seed_and_episode_that_replay_it(monkeypatch):
    def broken(self, ch):
        raise RuntimeError("boom")
    monkeypatch.setattr(cg.World, "a_time", broken)
    with pytest.raises(cg.CampaignFailure) as e:
        cg.run_episode(5, 3, 500)
    assert "--seed 5 --episode 3" in str(e.value)
