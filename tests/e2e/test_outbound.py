"""Calls out through a trunk: click-to-call from the API rings the agent's own phone, then the
customer's number, and bridges them; a number that does not answer, or an agent who gives up,
frees the agent at once. The "carrier" is a baresip phone the trunk points at, whose name is
the customer's number."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .peers import PhoneFactory, band_energy_fraction
from .server import CallCenter, agent_phone, wait_until

Tone = Callable[..., Path]
LONG = 90.0  # seconds of microphone: baresip hangs up when its file ends
CUSTOMER_HZ, AGENT_HZ, RINGBACK_HZ, OUTSIDE_HZ = 440, 1000, 450, 1500
PHASE = 3.0
_trunks = iter(range(1, 10_000))


def carrier_trunk(center: CallCenter, port: int) -> str:
    """A trunk whose calls out go to 127.0.0.1:``port`` (the customer's phone)."""
    code = f"e2e-out-{next(_trunks):04d}"  # (in the order made: the first is the default)
    center.admin.post("/trunks", {"code": code, "outbound": f"127.0.0.1:{port}",
                                  "caller_id": "4008200"}, expect=201)
    return code


def test_click_to_call_rings_the_agent_then_the_customer_and_bridges_them(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=2.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    number = "80001"
    customer = phones(number, tone(CUSTOMER_HZ, LONG))
    trunk = carrier_trunk(center, customer.sip_port)
    offered_before = center.queue_stats(queue)["offered_today"]

    started = center.admin.post(f"/agents/{agent.code}/dial",
                                {"number": number, "trunk": trunk}, expect=201)
    call_id = started["call"]
    assert (started["state"], started["queue"]) == ("dialing", queue.id)
    assert center.agent_state(agent)["state"] == "busy"  # no inbound call is offered now
    agent_set.wait("CALL_ESTABLISHED")
    agent_up = time.monotonic()
    established = customer.wait("CALL_ESTABLISHED")
    assert "4008200" in str(established)  # the trunk's caller id is presented
    customer_up = time.monotonic()
    answered = center.events.wait_for(type="outbound_answered", call=call_id)
    assert answered["agent"] == agent.code
    time.sleep(PHASE)
    customer.hangup()
    agent_set.wait("CALL_CLOSED")
    center.wait_agent_state(agent, "wrap_up")
    center.wait_agent_state(agent, "ready", timeout=10)

    (agent_heard,) = agent_set.recordings("dec")
    a = customer_up - agent_up + 0.8
    assert band_energy_fraction(agent_heard, CUSTOMER_HZ, 25.0, a, a + PHASE - 1.5) >= 0.9
    (customer_heard,) = customer.recordings("dec")
    assert band_energy_fraction(customer_heard, AGENT_HZ, 25.0, 0.8, PHASE - 0.5) >= 0.9

    cdr = center.wait_cdr(queue, outcome="answered")
    assert (cdr["direction"], cdr["number"], cdr["agent"]) == ("outbound", number, agent.code)
    assert abs(cdr["talk"] - PHASE) <= 1.5
    assert center.admin.get("/cdrs", direction="outbound", number=number)["total"] == 1
    # a call out is no inbound call: the queue's offered count did not move
    assert center.queue_stats(queue)["offered_today"] == offered_before
    row = [r for r in center.admin.get(
        "/reports/agents", **{"from": str(center.started_at - 60),
                              "to": str(time.time() + 60)})["rows"] if r["agent"] == agent.code]
    assert sum(r["outbound"] for r in row) == 1 and sum(r["answered"] for r in row) == 0
    center.admin.call("DELETE", f"/trunks/{trunk}", expect=204)
    center.wait_media_released()


def test_a_call_out_the_agent_gives_up_on_or_the_customer_refuses_frees_the_agent(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=30.0)  # a wrap-up would show: there is none without a talk
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    number = "80002"
    customer = phones(number, tone(CUSTOMER_HZ, LONG), answermode="manual")
    trunk = carrier_trunk(center, customer.sip_port)

    first = center.admin.post(f"/agents/{agent.code}/dial",
                              {"number": number, "trunk": trunk}, expect=201)["call"]
    agent_set.wait("CALL_ESTABLISHED")
    customer.wait("CALL_INCOMING")
    time.sleep(2.0)
    agent_set.hangup()  # the agent gives up while it rings: the customer's phone stops
    customer.wait("CALL_CLOSED")
    (ringback,) = agent_set.recordings("dec")  # what the agent heard meanwhile: ringback
    assert band_energy_fraction(ringback, RINGBACK_HZ, 25.0, 0.3, 1.8) >= 0.9
    failed = center.events.wait_for(type="outbound_failed", call=first)
    assert failed["reason"] == "cancelled"
    center.wait_agent_state(agent, "ready", timeout=5)

    second = center.admin.post(f"/agents/{agent.code}/dial",
                               {"number": number, "trunk": trunk}, expect=201)["call"]
    agent_set.wait("CALL_ESTABLISHED")
    customer.wait("CALL_INCOMING")
    customer.hangup()  # the customer declines: 486 Busy Here
    agent_set.wait("CALL_CLOSED")
    failed = center.events.wait_for(type="outbound_failed", call=second)
    assert failed["reason"] == "busy"
    center.wait_agent_state(agent, "ready", timeout=5)
    rows = center.admin.get("/cdrs", direction="outbound", agent=agent.code)["items"]
    assert {(r["call_id"], r["outcome"], r["cause"]) for r in rows} == {
        (first, "not_reached", "cancelled"), (second, "not_reached", "busy")}
    # an unknown trunk is named; a number must be one
    problem = center.admin.call("POST", f"/agents/{agent.code}/dial",
                                body={"number": number, "trunk": "nope"}, expect=409)
    assert "nope" in str(problem)
    center.admin.call("POST", f"/agents/{agent.code}/dial", body={"number": "12ab"},
                      expect=422)
    center.admin.call("DELETE", f"/trunks/{trunk}", expect=204)
    wait_until(lambda: center.agent_state(agent)["state"] == "ready", 5, "agent ready")
    center.wait_media_released()


def test_a_caller_transferred_to_an_outside_number_talks_to_it_or_queues_again(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    """The agent's phone transfers to an outside number that declines: the caller is not
    lost but queues again (and the agent answers again); then the desktop transfers to one
    that answers: the caller talks to it, the agent's part is over."""
    queue = center.queue(wrap_up=1.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    declines = phones("80003", tone(OUTSIDE_HZ, LONG), answermode="manual")
    answers = phones("80004", tone(OUTSIDE_HZ, LONG))
    default = carrier_trunk(center, declines.sip_port)  # the tenant's first trunk out
    other = carrier_trunk(center, answers.sip_port)
    caller = phones("caller", tone(CUSTOMER_HZ, LONG))
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    caller_start = time.monotonic()
    agent_set.wait("CALL_ESTABLISHED")
    first = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    time.sleep(1.0)

    agent_set.request("transfer", f"sip:80003@127.0.0.1:{center.server.sip_port}")  # REFER
    agent_set.wait("CALL_CLOSED", timeout=10)
    out = center.events.wait_for(type="call_transferred_out", call=first)
    assert (out["number"], out["agent"]) == ("80003", agent.code)
    declines.wait("CALL_INCOMING")
    declines.hangup()  # 486: the caller goes back to the queue
    requeued = wait_until(
        lambda: [e for e in center.events.matching(type="call_arrived", queue=queue.id)
                 if e["call"] != first], 10, "the caller back in the queue")[0]
    assert requeued["number"] == "caller"
    center.events.wait_for(type="call_answered", call=requeued["call"], timeout=15)
    time.sleep(1.0)

    center.admin.post(f"/calls/{requeued['call']}/transfer",
                      {"number": "80004", "trunk": other})
    answers.wait("CALL_ESTABLISHED")
    connected = time.monotonic()
    center.wait_agent_state(agent, "wrap_up")
    time.sleep(PHASE)
    caller.hangup()
    answers.wait("CALL_CLOSED")

    (heard,) = caller.recordings("dec")
    a = connected - caller_start + 0.8
    assert band_energy_fraction(heard, OUTSIDE_HZ, 25.0, a, a + PHASE - 1.5) >= 0.9
    rows = {r["call_id"]: r for r in center.cdrs(queue)}
    assert (rows[first]["outcome"], rows[first]["cause"]) == ("transferred", "external")
    wait_until(lambda: {r["call_id"]: r for r in center.cdrs(queue)}[requeued["call"]]
               ["outcome"] == "transferred", 10, "the second segment's CDR")
    for code in (default, other):
        center.admin.call("DELETE", f"/trunks/{code}", expect=204)
    center.wait_media_released()
