"""KPI formulas of docs/metrics.md, checked on small hand-built event streams."""

from __future__ import annotations

import json

import pytest

from hotline.cms.metrics import Metrics, Realtime, ServiceLevelConfig
from hotline.events.types import (
    EVENT_TYPES,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallOffered,
    CallOverflowed,
    CallQueued,
    Event,
    WrapUpEnded,
    event_from_dict,
)

SL = ServiceLevelConfig(threshold=20.0, short_abandon=5.0)


def answered_call(
    call: str, queue: str, t0: float, wait: float, talk: float, hold: float, wrap: float
) -> list[Event]:
    t1 = t0 + wait
    t2 = t1 + talk + hold
    return [
        CallQueued(t0, call, queue, 0, 1, 0.0),
        CallOffered(t1, call, queue, "a1"),
        CallAnswered(t1, call, queue, "a1", wait),
        CallEnded(t2, call, queue, "a1", talk, hold),
        WrapUpEnded(t2 + wrap, call, queue, "a1", wrap),
    ]


def abandoned_call(call: str, queue: str, t0: float, wait: float) -> list[Event]:
    return [CallQueued(t0, call, queue, 0, 1, 0.0), CallAbandoned(t0 + wait, call, queue, wait)]


def five_calls() -> list[Event]:
    """Two answered (waits 10 s and 30 s), abandons after 3 s (short), 15 s and 60 s."""
    events = [
        *answered_call("a", "q", 0.0, 10.0, 90.0, 10.0, 10.0),
        *answered_call("b", "q", 0.0, 30.0, 60.0, 0.0, 0.0),
        *abandoned_call("c", "q", 1.0, 3.0),
        *abandoned_call("d", "q", 2.0, 15.0),
        *abandoned_call("e", "q", 3.0, 60.0),
    ]
    return sorted(events, key=lambda e: e.t)


def kpis(events: list[Event], sl: ServiceLevelConfig = SL) -> dict:
    m = Metrics(sl)
    m.feed_all(events)
    return m.queues()["q"]


def test_standard_service_level_excludes_short_abandons() -> None:
    q = kpis(five_calls())
    assert (q["offered"], q["answered"], q["abandoned"], q["short_abandoned"]) == (5, 2, 2, 1)
    base = 5 - 1  # offered − short abandons
    assert q["service_level"] == pytest.approx(1 / base)  # only call a was answered ≤ 20 s
    assert q["abandon_rate"] == pytest.approx(2 / base)
    assert q["asa"] == pytest.approx((10 + 30) / 2)
    assert q["aht"] == pytest.approx(((90 + 10 + 10) + (60 + 0 + 0)) / 2)
    assert q["max_wait"] == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("asterisk", 1 / 2),  # answered in SL / answered
        ("asterisk2", 1 / (2 + 2)),  # answered in SL / (answered + abandoned)
        ("abandons_met", (1 + 1) / 4),  # call d abandoned within 20 s counts as met
    ],
)
def test_service_level_variants(variant: str, expected: float) -> None:
    sl = ServiceLevelConfig(threshold=20.0, short_abandon=5.0, variant=variant)
    assert kpis(five_calls(), sl)["service_level"] == pytest.approx(expected)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        ServiceLevelConfig(variant="made-up")


def test_per_queue_service_level_threshold() -> None:
    m = Metrics(SL, {"q": ServiceLevelConfig(threshold=40.0, short_abandon=5.0)})
    m.feed_all(five_calls())
    assert m.queues()["q"]["service_level"] == pytest.approx(2 / 4)  # both answers ≤ 40 s


def test_no_calls_gives_no_ratio_rather_than_a_made_up_one() -> None:
    m = Metrics(SL)
    m.feed_all([CallQueued(0.0, "x", "q", 0, 1, 0.0), CallAbandoned(2.0, "x", "q", 2.0)])
    q = m.queues()["q"]
    assert q["service_level"] is None and q["asa"] is None and q["aht"] is None


def test_calls_count_in_the_interval_they_entered_the_queue() -> None:
    m = Metrics(SL, interval=1800.0)
    m.feed_all(answered_call("late", "q", 1790.0, 25.0, 100.0, 0.0, 0.0))
    rows = m.intervals()
    assert [(r["start"], r["offered"], r["answered"]) for r in rows] == [(0.0, 1, 1)]


def test_overflow_counts_per_queue_and_once_for_the_center() -> None:
    events: list[Event] = [
        CallArrived(0.0, "x", "A", 0),
        CallQueued(0.0, "x", "A", 0, 1, 0.0),
        CallOverflowed(60.0, "x", "A", "B", 60.0),
        CallQueued(60.0, "x", "B", 0, 1, 0.0, "A"),
        CallOffered(70.0, "x", "B", "a1"),
        CallAnswered(70.0, "x", "B", "a1", 70.0),
        CallEnded(100.0, "x", "B", "a1", 30.0, 0.0),
        WrapUpEnded(100.0, "x", "B", "a1", 0.0),
    ]
    m = Metrics(SL)
    m.feed_all(events)
    a, b = m.queues()["A"], m.queues()["B"]
    assert (a["offered"], a["overflowed"], a["answered"]) == (1, 1, 0)
    assert (b["offered"], b["answered"], b["asa"]) == (1, 1, 70.0)  # wait from first arrival
    total = m.total()
    assert (total["offered"], total["answered"]) == (1, 1)


def test_agent_occupancy_excludes_not_ready_time() -> None:
    events = [
        AgentStateChanged(0.0, "a1", "ready", "logged_out", queues=("q",)),
        AgentStateChanged(10.0, "a1", "reserved", "ready"),
        AgentStateChanged(10.0, "a1", "busy", "reserved"),
        AgentStateChanged(110.0, "a1", "wrap_up", "busy"),
        AgentStateChanged(120.0, "a1", "ready", "wrap_up"),
        AgentStateChanged(200.0, "a1", "not_ready", "ready", "lunch"),
        AgentStateChanged(300.0, "a1", "logged_out", "not_ready"),
    ]
    m = Metrics(SL)
    m.feed_all(events)
    a = m.agents()["a1"]
    occupied = 100 + 10  # busy + wrap-up
    staffed = 10 + 100 + 10 + 80  # ready + busy + wrap-up + ready
    assert a["occupancy"] == pytest.approx(occupied / staffed)
    assert a["not_ready_time"] == pytest.approx(100.0)
    assert a["logged_in_time"] == pytest.approx(300.0)


def test_streaming_metrics_forget_finished_calls() -> None:
    m = Metrics(SL)
    for i in range(1000):
        m.feed_all(answered_call(f"c{i}", "q", i * 10.0, 1.0, 5.0, 0.0, 1.0))
    assert m.in_flight() == 0
    assert m.total()["answered"] == 1000


def test_ewt_accuracy_compares_announcement_with_actual_wait() -> None:
    events: list[Event] = [
        CallQueued(0.0, "a", "q", 0, 1, 0.0),
        CallOffered(0.0, "a", "q", "x"),  # offered at once: never told to wait, not scored
        CallAnswered(0.0, "a", "q", "x", 0.0),
        CallQueued(10.0, "b", "q", 0, 1, 30.0),
        CallOffered(50.0, "b", "q", "x"),
        CallAnswered(50.0, "b", "q", "x", 40.0),
        CallQueued(60.0, "c", "q", 0, 1, 20.0),
        CallOffered(80.0, "c", "q", "x"),
        CallAnswered(80.0, "c", "q", "x", 20.0),
    ]
    m = Metrics(SL)
    m.feed_all(events)
    acc = m.ewt_accuracy()
    assert acc["calls"] == 2
    assert acc["hotline_mae"] == pytest.approx((abs(30 - 40) + abs(20 - 20)) / 2)
    # Asterisk's holdtime after answers of 0 s then 40 s: 0, then (3*0 + 40)/4 = 10.
    assert acc["asterisk_mae"] == pytest.approx((abs(0 - 40) + abs(10 - 20)) / 2)


def test_realtime_snapshot_counts_waiting_calls_and_agents() -> None:
    rt = Realtime()
    for e in [
        AgentStateChanged(0.0, "a1", "ready", "logged_out", queues=("q",)),
        AgentStateChanged(0.0, "a2", "not_ready", "logged_out", "training", ("q",)),
        CallQueued(5.0, "x", "q", 0, 1, 0.0),
        CallQueued(8.0, "y", "q", 0, 2, 0.0),
        CallOffered(9.0, "y", "q", "a1"),
        AgentStateChanged(9.0, "a1", "reserved", "ready"),
    ]:
        rt.feed(e)
    snap = rt.snapshot(20.0)
    assert snap["queues"]["q"]["waiting"] == 1
    assert snap["queues"]["q"]["longest_wait"] == pytest.approx(15.0)
    assert snap["queues"]["q"]["agents"] == {"reserved": 1, "not_ready": 1}
    assert snap["agents"]["a2"] == {
        "state": "not_ready",
        "reason": "training",
        "time_in_state": 20.0,
    }


def test_every_event_round_trips_through_json() -> None:
    samples = {
        "call_arrived": CallArrived(1.5, "c", "q", 2),
        "call_queued": CallQueued(1.5, "c", "q", 2, 3, 40.0, "other"),
        "agent_state_changed": AgentStateChanged(2.0, "a", "ready", "logged_out", None, ("q",)),
    }
    for name, event in samples.items():
        assert event.type == name
        line = event.to_json()
        assert event_from_dict(json.loads(line)) == event
    assert set(samples) <= set(EVENT_TYPES)
