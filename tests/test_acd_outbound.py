"""Agents' calls out (click-to-call) in the ACD: the agent is kept from inbound calls while
dialling and talking, returns to the state it called from, and the queue's inbound figures
never see the call."""

from __future__ import annotations

import pytest

from hotline.acd.config import AgentConfig, QueueConfig
from hotline.acd.engine import ACD, ACDError
from hotline.cms.cdr import CdrFold
from hotline.cms.metrics import Metrics, ServiceLevelConfig
from hotline.events.types import (
    AgentStateChanged,
    CallEnded,
    Event,
    OutboundAnswered,
    OutboundDialed,
    OutboundEnded,
    OutboundFailed,
    WrapUpEnded,
)
from test_acd_engine import Driver, offered, state


def center(wrap_up: float = 10.0) -> tuple[ACD, Driver, list[Event]]:
    acd = ACD([QueueConfig("sales", wrap_up=wrap_up), QueueConfig("cards")],
              [AgentConfig("a", skills={"sales": 1}), AgentConfig("b", skills={"sales": 1})])
    return acd, Driver(acd), []


def drain(d: Driver, log: list[Event]) -> list[Event]:
    events, _ = d.take()
    log.extend(events)
    return events


def test_agent_is_busy_while_calling_out_and_gets_no_inbound_call() -> None:
    """While the agent's call out rings and talks, an inbound caller goes to another agent
    (or waits): never offered to the agent on the phone."""
    acd, d, log = center()
    d.login(0, "a")
    d.login(0, "b")
    drain(d, log)
    d.dial(1, "o1", "a", "13800138000")
    events = drain(d, log)
    assert events == [
        OutboundDialed(1, "o1", "sales", "a", "13800138000"),
        AgentStateChanged(1, "a", "busy", "ready", "outbound"),
    ]
    assert acd.call_info("o1")["direction"] == "outbound"  # type: ignore[index]
    assert acd.call_info("o1")["state"] == "dialing"  # type: ignore[index]
    d.call_arrived(2, "in1", "sales")
    _, commands = d.take()
    assert offered(commands) == [("in1", "b")]
    d.outbound_answered(9, "o1")
    assert drain(d, log) == [OutboundAnswered(9, "o1", "sales", "a", 8)]
    assert acd.call_info("o1")["state"] == "connected"  # type: ignore[index]
    d.hold(20, "o1")
    d.unhold(25, "o1")
    d.hangup(69, "o1")
    events = drain(d, log)
    assert OutboundEnded(69, "o1", "sales", "a", 55, 5) in events
    assert not [e for e in events if isinstance(e, CallEnded)]
    assert state(acd, "a") == "wrap_up"
    d.advance(79)  # the queue's 10 s wrap-up
    events = drain(d, log)
    assert WrapUpEnded(79, "o1", "sales", "a", 10) in events
    assert state(acd, "a") == "ready"


def test_calling_from_not_ready_returns_to_the_same_reason() -> None:
    """An agent doing outbound work while not ready (e.g. 'follow-up') is back in that state
    after the call, not made ready by it."""
    acd, d, _log = center(wrap_up=0)
    d.login(0, "a", ready=False, reason="follow-up")
    d.dial(1, "o1", "a", "010-1", "cards")
    assert acd.call_info("o1")["queue"] == "cards"  # type: ignore[index]
    d.outbound_answered(3, "o1")
    d.hangup(30, "o1")
    assert acd.agent_state("a") == ("not_ready", "follow-up")


def test_unreached_number_frees_the_agent_at_once() -> None:
    acd, d, log = center()
    d.login(0, "a")
    d.dial(1, "o1", "a", "13800138000")
    d.outbound_failed(31, "o1", "no_answer")
    events = drain(d, log)
    assert OutboundFailed(31, "o1", "sales", "a", "no_answer", 30) in events
    assert state(acd, "a") == "ready"  # no wrap-up: nothing was said
    assert acd.call_info("o1") is None
    # The agent hung up before the customer answered: the call is cancelled.
    d.dial(40, "o2", "a", "13800138000")
    d.hangup(45, "o2")
    assert OutboundFailed(45, "o2", "sales", "a", "cancelled", 5) in drain(d, log)
    assert state(acd, "a") == "ready"


def test_break_asked_for_during_a_call_out_applies_after_it() -> None:
    acd, d, _log = center(wrap_up=0)
    d.login(0, "a")
    d.dial(1, "o1", "a", "1")
    d.set_not_ready(2, "a", "lunch")
    assert state(acd, "a") == "busy"
    d.outbound_answered(3, "o1")
    d.hangup(10, "o1")
    assert acd.agent_state("a") == ("not_ready", "lunch")


@pytest.mark.parametrize("busy_with", ["ringing", "talking", "wrap_up", "logged_out"])
def test_agent_must_be_free_to_call_out(busy_with: str) -> None:
    acd, d, _log = center()
    if busy_with != "logged_out":
        d.login(0, "a")
        d.call_arrived(1, "in1", "sales")
        if busy_with != "ringing":
            d.answer(2, "in1", "a")
        if busy_with == "wrap_up":
            d.hangup(3, "in1")
    with pytest.raises(ACDError):
        d.dial(4, "o1", "a", "1")
    with pytest.raises(ACDError):
        d.dial(4, "o1", "b", "1")  # b never logged in
    with pytest.raises(ACDError):
        acd.outbound_answered(5, "in1")  # not a call out


def test_calls_out_stay_out_of_queue_figures_and_have_a_cdr() -> None:
    """Service level, offered and AHT of the queue count inbound callers only; the agent's
    outbound work is counted per agent, and its time is occupied time."""
    _acd, d, log = center()
    d.login(0, "a")
    d.login(0, "b")
    drain(d, log)
    d.dial(10, "o1", "a", "13800138000")
    d.outbound_answered(20, "o1")
    d.hangup(80, "o1")
    d.advance(90)
    d.dial(100, "o2", "a", "13900139000")
    d.outbound_failed(130, "o2", "busy")
    d.call_arrived(140, "in1", "sales")
    d.answer(145, "in1", "b")
    d.hangup(205, "in1")
    d.advance(215)
    drain(d, log)

    m = Metrics(ServiceLevelConfig(threshold=20), interval=3600, origin=0)
    m.feed_all(log)
    sales = m.queues()["sales"]
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (1, 1, 0)
    assert sales["aht"] == pytest.approx(60 + 10)
    agents = m.agents(now=215)
    assert (agents["a"]["outbound"], agents["a"]["outbound_reached"]) == (2, 1)
    assert agents["a"]["outbound_talk_time"] == pytest.approx(60)
    assert (agents["a"]["answered"], agents["a"]["talk_time"]) == (0, 0)
    # dialling 10..90 (ring, talk, wrap) and 100..130: busy or wrap-up, hence occupied
    assert agents["a"]["occupied_time"] == pytest.approx(80 + 30)

    fold = CdrFold()
    cdrs: dict[str, dict[str, object]] = {}
    for e in log:
        change = fold.feed(e)
        if change is not None:
            cdrs.setdefault(change[0], {}).update(change[1])
    assert cdrs["o1"] == {
        "direction": "outbound", "queue": "sales", "final_queue": "sales",
        "number": "13800138000", "agent": "a", "arrived_at": 10, "answered_at": 20,
        "wait": 10, "ended_at": 80, "talk": 60, "hold": 0, "wrap": 10, "outcome": "answered",
    }
    assert cdrs["o2"]["outcome"] == "not_reached"
    assert cdrs["o2"]["cause"] == "busy"
    assert "direction" not in cdrs["in1"]  # the column's default: inbound
