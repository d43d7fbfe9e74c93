"""Every ACD feature at once, under load, checked against invariants a supervisor relies on:
no call is lost or served twice, agents follow their state machine, skills are respected."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from hotline.events.types import Event
from hotline.sim.runner import Simulation
from hotline.sim.scenario import load_scenario

SCENARIO = Path(__file__).parent / "scenarios" / "features.yaml"
TERMINAL = {"wrap_up_ended", "call_abandoned", "call_rejected", "callback_failed"}


@pytest.fixture(scope="module", params=[0, 1, 2])
def run(request: pytest.FixtureRequest) -> tuple[list[Event], dict]:
    events: list[Event] = []
    spec = load_scenario(SCENARIO)
    result = Simulation(spec, seed=request.param, on_event=events.append).run()
    return events, result.to_dict()


def test_every_feature_was_exercised(run: tuple[list[Event], dict]) -> None:
    events, _ = run
    seen = Counter(e.type for e in events)
    for kind in ("call_overflowed", "callback_requested", "call_rejected", "offer_cancelled",
                 "call_abandoned", "wrap_up_ended"):  # fmt: skip
        assert seen[kind] > 0, kind
    reasons = Counter(e.reason for e in events if e.type == "offer_cancelled")
    assert reasons["no_answer"] > 0 and reasons["answered_elsewhere"] > 0


def test_every_call_ends_exactly_once(run: tuple[list[Event], dict]) -> None:
    events, report = run
    ends: Counter[str] = Counter()
    arrived = set()
    for e in events:
        if e.type == "call_arrived":
            arrived.add(e.call)
        elif e.type in TERMINAL:
            ends[e.call] += 1
    assert report["unfinished_calls"] == 0
    assert set(ends) == arrived and set(ends.values()) == {1}
    answered = [e.call for e in events if e.type == "call_answered"]
    assert len(answered) == len(set(answered))


def test_agents_follow_their_state_machine(run: tuple[list[Event], dict]) -> None:
    events, _ = run
    state: dict[str, str] = defaultdict(lambda: "logged_out")
    on_call: dict[str, str | None] = {}
    allowed = {
        "logged_out": {"ready", "not_ready"},
        "ready": {"reserved", "not_ready", "logged_out"},
        "not_ready": {"ready", "logged_out", "not_ready"},
        "reserved": {"busy", "ready", "not_ready", "logged_out"},
        "busy": {"wrap_up", "ready", "not_ready", "logged_out"},
        "wrap_up": {"ready", "not_ready", "logged_out"},
    }
    last_t = 0.0
    for e in events:
        assert e.t >= last_t
        last_t = e.t
        if e.type == "agent_state_changed":
            assert e.prev == state[e.agent], e
            assert e.state in allowed[e.prev], e
            state[e.agent] = e.state
        elif e.type == "call_offered":
            assert state[e.agent] == "reserved", e
        elif e.type == "call_answered":
            assert on_call.get(e.agent) is None, "agent on two calls at once"
            on_call[e.agent] = e.call
        elif e.type == "call_ended":
            assert on_call.pop(e.agent) == e.call
    assert set(state.values()) == {"logged_out"}


def test_calls_only_reach_agents_with_the_skills(run: tuple[list[Event], dict]) -> None:
    events, _ = run
    spec = load_scenario(SCENARIO)
    skills = {aid: g.skills for g in spec.agents for aid in g.agent_ids()}
    tiers = {q.id: [q.skills, *(r.skills for r in q.relax)] for q in spec.queues}
    for e in events:
        if e.type == "call_answered":
            have = skills[e.agent]
            assert any(
                all(have.get(s, 0) >= lvl for s, lvl in req.items()) for req in tiers[e.queue]
            ), e


def test_overflowed_calls_keep_their_original_arrival(run: tuple[list[Event], dict]) -> None:
    events, _ = run
    arrival = {e.call: e.t for e in events if e.type == "call_arrived"}
    overflowed = {e.call for e in events if e.type == "call_overflowed"}
    for e in events:
        if e.type == "call_answered" and e.call in overflowed:
            assert e.wait == pytest.approx(e.t - arrival[e.call])
