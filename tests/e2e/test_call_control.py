"""Call control on the phones: the agent puts the caller on hold from the phone (a re-INVITE
that stops wanting our audio) or from the API, the caller hears music and the ACD counts the
hold time, and both talk again after."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .peers import BaresipPhone, PhoneFactory, band_energy_fraction, rms
from .server import CallCenter, agent_phone, wait_until

Tone = Callable[..., Path]
LONG = 90.0  # seconds of microphone: baresip hangs up when its file ends
CALLER_HZ, AGENT_HZ, OTHER_AGENT_HZ = 440, 1000, 1500
PHASE = 3.0


def remote_offers(phone: BaresipPhone) -> int:
    """SDP offers the phone received (baresip's CALL_REMOTE_SDP events, "offer")."""
    phone.dtmf_received(settle=0.1)  # reads the events that have arrived
    return sum(1 for e in phone.events
               if e.get("type") == "CALL_REMOTE_SDP" and e.get("param") == "offer")


def test_hold_from_the_phone_and_from_the_api_plays_music_to_the_caller(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=1.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    caller_start = time.monotonic()
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    marks = {"talk": time.monotonic()}
    time.sleep(PHASE)
    agent_set.request("hold")  # the phone's hold button: a re-INVITE, sendonly
    center.events.wait_for(type="call_held", call=call_id)
    marks["phone_hold"] = time.monotonic()
    time.sleep(PHASE)
    agent_set.request("resume")
    center.events.wait_for(type="call_resumed", call=call_id)
    marks["talk_again"] = time.monotonic()
    time.sleep(PHASE)
    offers = remote_offers(agent_set)
    center.admin.post(f"/calls/{call_id}/hold")  # the agent desktop's hold
    marks["api_hold"] = time.monotonic()
    # the phone is told (a re-INVITE, sendonly), so it shows the call held
    wait_until(lambda: remote_offers(agent_set) > offers, 5, "a re-INVITE to the phone")
    time.sleep(PHASE)
    center.admin.post(f"/calls/{call_id}/unhold")
    marks["end_hold"] = time.monotonic()
    time.sleep(PHASE)
    end = time.monotonic()
    caller.hangup()
    agent_set.wait("CALL_CLOSED")

    (heard,) = caller.recordings("dec")
    spans = list(marks.items())
    for (name, start), (_, stop) in zip(spans, [*spans[1:], ("end", end)], strict=True):
        a, b = start - caller_start + 0.8, stop - caller_start - 0.3
        agent_share = band_energy_fraction(heard, AGENT_HZ, 25.0, a, b)
        if "hold" in name and name != "end_hold":
            assert agent_share <= 0.02, f"the caller heard the agent on hold ({name})"
            assert rms(heard, None, a, b) > 0.01, f"silence instead of music ({name})"
        else:
            assert agent_share >= 0.9, f"the caller did not hear the agent ({name})"
    cdr = center.wait_cdr(queue, outcome="answered")
    expected_hold = (marks["talk_again"] - marks["phone_hold"]) + (
        marks["end_hold"] - marks["api_hold"])
    assert abs(cdr["hold"] - expected_hold) <= 1.0, (cdr["hold"], expected_hold)
    center.wait_media_released()


def test_the_agents_phone_transfers_the_caller_to_another_queue(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    first, second = center.queue(wrap_up=30.0), center.queue(wrap_up=1.0)
    agent_a, agent_b = center.agent(first), center.agent(second)
    set_a = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent_a)
    set_b = agent_phone(center, phones, tone(OTHER_AGENT_HZ, LONG), agent_b)
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(first))
    caller.wait("CALL_ESTABLISHED")
    caller_start = time.monotonic()
    set_a.wait("CALL_ESTABLISHED")
    first_call = center.events.wait_for(type="call_answered", agent=agent_a.code)["call"]
    time.sleep(2.0)
    # the phone's transfer key, to the number of the second queue (REFER, RFC 3515)
    set_a.request("transfer", f"sip:{second.did}@127.0.0.1:{center.server.sip_port}")
    set_a.wait("CALL_CLOSED", timeout=10)
    set_b.wait("CALL_ESTABLISHED", timeout=10)
    answered = time.monotonic()
    time.sleep(PHASE)
    caller.hangup()
    set_b.wait("CALL_CLOSED")

    moved = center.events.wait_for(type="call_transferred", call=first_call)
    assert moved["queue"] == second.id
    center.wait_agent_state(agent_a, "wrap_up")  # the first agent's segment ended
    cdr = center.wait_cdr(second, outcome="answered")
    assert cdr["agent"] == agent_b.code and cdr["transferred_from"] == first_call
    (heard,) = caller.recordings("dec")
    a, b = answered - caller_start + 0.8, answered - caller_start + PHASE - 0.5
    assert band_energy_fraction(heard, OTHER_AGENT_HZ, 25.0, a, b) >= 0.9
    center.wait_media_released()
