"""Attended transfer in the ACD: the agent consults a colleague while the caller holds, then
hands the caller over, takes them back, or the colleague hangs up. Agent states must stay
right through all of it (transfers are where other systems leave agents stuck)."""

from __future__ import annotations

import pytest

from hotline.acd.config import AgentConfig, QueueConfig
from hotline.acd.engine import ACD, ACDError
from hotline.cms.metrics import Metrics, ServiceLevelConfig
from hotline.events.types import (
    CallAnswered,
    CallArrived,
    CallHeld,
    CallTransferred,
    CallTransferredOut,
    ConsultEnded,
    ConsultStarted,
    Event,
    WrapUpEnded,
)
from test_acd_engine import Driver, offered, state


def connected() -> tuple[ACD, Driver, list[Event]]:
    """Agents a, b, c (all ready); a caller answered by a at t=2."""
    acd = ACD([QueueConfig("q", wrap_up=5)],
              [AgentConfig(x, skills={"q": 1}) for x in ("a", "b", "c")])
    d = Driver(acd)
    log: list[Event] = []
    for x in ("a", "b", "c"):
        d.login(0, x)
    d.call_arrived(1, "c1", "q")
    events, commands = d.take()
    log.extend(events)
    (agent,) = [ag for c, ag in offered(commands) if c == "c1"]
    assert agent == "a"  # longest idle first: a logged in first
    d.answer(2, "c1", "a")
    log.extend(d.take()[0])
    return acd, d, log


def test_attended_transfer_hands_the_caller_to_the_colleague() -> None:
    acd, d, log = connected()
    d.consult(10, "c1", "b")
    events, _ = d.take()
    assert ConsultStarted(10, "c1", "q", "a", "b", None) in events
    assert CallHeld(10, "c1", "a") in events  # the caller holds meanwhile
    assert acd.agent_state("b") == ("busy", "consult")
    assert acd.call_info("c1")["consult"] == "b"  # type: ignore[index]
    # nothing is offered to b while consulted: a new caller goes to c
    d.call_arrived(11, "c2", "q")
    assert offered(d.take()[1]) == [("c2", "c")]

    d.consult_transfer(30, "c1", "c1b")
    events, _ = d.take()
    log.extend(events)
    assert CallTransferred(30, "c1", "a", "c1b", "q", "b") in events
    assert ConsultEnded(30, "c1", "q", "a", "b", None, "transferred") in events
    assert CallArrived(30, "c1b", "q", 0, None, None) in events
    assert CallAnswered(30, "c1b", "q", "b", 0) in events
    assert state(acd, "a") == "wrap_up" and acd.agent_state("b") == ("busy", None)
    ended = [e for e in events if type(e).__name__ == "CallEnded"]
    assert [(e.call, e.talk, e.hold) for e in ended] == [("c1", 8, 20)]  # type: ignore[attr-defined]
    d.hangup(50, "c1b")
    d.advance(60)
    events, _ = d.take()
    log.extend(events)
    assert WrapUpEnded(35, "c1", "q", "a", 5) in log
    assert WrapUpEnded(55, "c1b", "q", "b", 5) in events
    assert state(acd, "a") == "ready" and state(acd, "b") == "ready"
    # the caller was offered to the queue once; b's part is b's answered call
    m = Metrics(ServiceLevelConfig(), interval=3600, origin=0)
    m.feed_all(log)
    assert m.queues()["q"]["offered"] == 1
    assert m.agents(now=60)["b"]["answered"] == 1


@pytest.mark.parametrize("how", ["cancelled", "failed", "left"])
def test_a_consultation_that_ends_gives_the_caller_back_and_frees_the_colleague(
    how: str,
) -> None:
    acd, d, _ = connected()
    d.set_not_ready(3, "b", "lunch")
    with pytest.raises(ACDError, match="not ready"):
        d.consult(4, "c1", "b")  # only a ready colleague is consulted
    d.set_ready(5, "b")
    d.consult(10, "c1", "b")
    d.consult_end(20, "c1", how)
    assert acd.call_info("c1")["held"] is False  # type: ignore[index]
    assert acd.call_info("c1")["consult"] is None  # type: ignore[index]
    assert state(acd, "b") == "ready" and state(acd, "a") == "busy"
    d.hangup(30, "c1")
    events, _ = d.take()
    (ended,) = [e for e in events if type(e).__name__ == "CallEnded"]
    assert (ended.talk, ended.hold) == (18, 10)  # type: ignore[attr-defined]


def test_the_caller_hanging_up_during_a_consultation_frees_everyone() -> None:
    acd, d, _ = connected()
    d.consult(10, "c1", "b")
    d.hangup(15, "c1")
    events, _ = d.take()
    assert ConsultEnded(15, "c1", "q", "a", "b", None, "caller_left") in events
    assert state(acd, "b") == "ready" and state(acd, "a") == "wrap_up"


def test_consulting_an_outside_number_then_transferring_takes_the_caller_out() -> None:
    acd, d, _ = connected()
    d.consult(10, "c1", number="13800138000")
    assert acd.call_info("c1")["consult"] == "13800138000"  # type: ignore[index]
    with pytest.raises(ACDError):
        d.consult(11, "c1", "b")  # one consultation at a time
    d.consult_transfer(20, "c1", "unused")
    events, _ = d.take()
    assert CallTransferredOut(20, "c1", "q", "a", "13800138000") in events
    assert acd.call_info("c1") is not None and state(acd, "a") == "wrap_up"
    assert "unused" not in [c["call"] for c in acd.calls()]
