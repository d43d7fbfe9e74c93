"""Attended transfer and conference on real phones: the agent consults a colleague while the
caller holds, the three talk together, and the agent hangs up, leaving the caller with the
colleague; or the agent consults an outside number, takes the caller back, and then hands the
caller over to it. Each phone plays its own tone, so who heard whom is read off recordings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .peers import PhoneFactory, Registration, band_energy_fraction
from .server import CallCenter, agent_phone
from .test_monitor import TOLERANCE, runs
from .test_outbound import carrier_trunk

Tone = Callable[..., Path]
LONG = 90.0  # seconds of microphone: baresip hangs up when its file ends
CALLER_HZ, AGENT_HZ, COLLEAGUE_HZ = 440, 1000, 1500
PHASE = 3.0


def test_consult_a_colleague_then_conference_then_the_agent_leaves_them_talking(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent, colleague = center.agent(queue), center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(queue))
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    # the colleague's phone comes now (so the caller went to the agent), logging them in
    colleague_set = phones(colleague.username, tone(COLLEAGUE_HZ, LONG),
                           registration=Registration(center.server.sip_port,
                                                     colleague.password))
    center.wait_agent_state(colleague, "ready")
    time.sleep(PHASE)

    marks = {}
    state = center.admin.post(f"/calls/{call_id}/consult", {"agent": colleague.code})
    assert state["consult"] == {"agent": colleague.code, "number": None, "state": "ringing"}
    colleague_set.wait("CALL_ESTABLISHED")
    marks["consult"] = time.monotonic()
    assert center.agent_state(colleague)["state"] == "busy"  # nothing else is offered
    time.sleep(PHASE)
    conf = center.admin.post(f"/calls/{call_id}/consult/conference")
    assert conf["consult"]["state"] == "conference"
    marks["conference"] = time.monotonic()
    time.sleep(PHASE)
    agent_set.hangup()  # the agent leaves: the caller stays with the colleague
    marks["handed_over"] = time.monotonic()
    moved = center.events.wait_for(type="call_transferred", call=call_id)
    assert moved["to_agent"] == colleague.code
    center.wait_agent_state(agent, "wrap_up")
    time.sleep(PHASE)
    caller.hangup()
    colleague_set.wait("CALL_CLOSED")
    center.wait_agent_state(colleague, "wrap_up")

    consult = marks["conference"] - marks["consult"]
    conference = marks["handed_over"] - marks["conference"]
    c, a, b = CALLER_HZ, AGENT_HZ, COLLEAGUE_HZ
    (caller_heard,) = caller.recordings("dec")
    caller_runs = runs(caller_heard, (a, b))  # (music on hold in between: neither tone)
    assert [t for t, _ in caller_runs] == [{a}, {a, b}, {b}], caller_runs
    assert caller_runs[0][1] <= PHASE + 2 * TOLERANCE  # the agent went quiet on hold
    assert abs(caller_runs[1][1] - conference) <= TOLERANCE
    (agent_heard,) = agent_set.recordings("dec")
    agent_runs = runs(agent_heard, (c, b))
    assert [t for t, _ in agent_runs] == [{c}, {b}, {c, b}], agent_runs
    assert abs(agent_runs[1][1] - consult) <= TOLERANCE  # the caller unheard meanwhile
    (colleague_heard,) = colleague_set.recordings("dec")
    colleague_runs = runs(colleague_heard, (c, a))
    assert [t for t, _ in colleague_runs] == [{a}, {c, a}, {c}], colleague_runs
    assert abs(colleague_runs[0][1] - consult) <= TOLERANCE

    new_segment = moved["to_call"]
    cdrs = {r["call_id"]: r for r in center.cdrs(queue)}
    assert cdrs[new_segment]["transferred_from"] == call_id
    assert cdrs[new_segment]["agent"] == colleague.code
    kinds = [e["how"] for e in center.events.matching(type="consult_ended", call=call_id)]
    assert kinds == ["transferred"]
    assert center.events.matching(type="call_conferenced", call=call_id)
    center.wait_media_released()


def test_consult_an_outside_number_take_the_caller_back_then_hand_them_over(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    outside = phones("80005", tone(COLLEAGUE_HZ, LONG))
    trunk = carrier_trunk(center, outside.sip_port)
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(queue))
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    time.sleep(2.0)

    center.admin.post(f"/calls/{call_id}/consult", {"number": "80005", "trunk": trunk})
    outside.wait("CALL_ESTABLISHED")
    time.sleep(2.0)
    center.admin.call("DELETE", f"/calls/{call_id}/consult")  # the caller back with the agent
    outside.wait("CALL_CLOSED")
    back = time.monotonic()
    assert center.admin.get(f"/calls/{call_id}")["held"] is False
    time.sleep(PHASE)
    # a blind transfer is refused while consulting; the attended one goes through
    center.admin.post(f"/calls/{call_id}/consult", {"number": "80005", "trunk": trunk})
    outside.wait("CALL_ESTABLISHED")
    center.admin.call("POST", f"/calls/{call_id}/transfer", body={"queue": queue.id},
                      expect=409)
    time.sleep(1.0)
    done = center.admin.post(f"/calls/{call_id}/consult/transfer")
    assert (done["number"], done["to_call"]) == ("80005", None)
    agent_set.wait("CALL_CLOSED")
    handed = time.monotonic()
    center.wait_agent_state(agent, "wrap_up")
    time.sleep(PHASE)
    caller.hangup()
    outside.wait("CALL_CLOSED")

    c, a, b = CALLER_HZ, AGENT_HZ, COLLEAGUE_HZ
    (caller_heard,) = caller.recordings("dec")
    caller_runs = runs(caller_heard, (a, b))
    assert [t for t, _ in caller_runs] == [{a}, {b}], caller_runs  # never both at once
    assert caller_runs[0][1] >= PHASE - TOLERANCE  # the agent again after the first consult
    assert caller_runs[1][1] >= PHASE - TOLERANCE  # then the outside party
    _, second = outside.recordings("dec")
    assert band_energy_fraction(second, c, 25.0, 2.0, 2.0 + PHASE - 1.0) >= 0.9
    hows = [e["how"] for e in center.events.matching(type="consult_ended", call=call_id)]
    assert hows == ["cancelled", "transferred"]
    center.admin.post(f"/agents/{agent.code}/wrap-up", {})  # the agent's after-call work
    cdr = center.wait_cdr(queue, outcome="transferred")
    assert cdr["cause"] == "external"
    assert handed - back >= PHASE
    center.admin.call("DELETE", f"/trunks/{trunk}", expect=204)
    center.wait_media_released()
