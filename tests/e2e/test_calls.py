"""Calls through Hotline end to end: a caller dials a number, the queue offers the call to an
agent's registered phone, both hear each other, the call is recorded and reported; and what
happens when the agent's phone does not answer, is busy or is not there, or the caller gives
up while waiting."""

from __future__ import annotations

import math
import time
import wave
from collections.abc import Callable
from pathlib import Path

from .peers import (
    PhoneFactory,
    Sipp,
    assert_tone,
    duration_s,
    pcmu_pcap,
    rms,
)
from .server import CallCenter, agent_phone, sip_client, sipp_phone, wait_until

TONE_RMS = 0.3 / math.sqrt(2)  # the test tones are sines at 0.3 of full scale
CALLER_HZ, AGENT_HZ, SECOND_AGENT_HZ = 440, 1000, 1500
Tone = Callable[..., Path]


def test_sipp_caller_and_agent_hear_each_other_and_the_call_is_recorded_and_reported(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
    tmp_path: Path,
) -> None:
    wrap_up = 1.0
    queue = center.queue(wrap_up=wrap_up)
    agent = center.agent(queue)
    phone = agent_phone(center, phones, tone(AGENT_HZ), agent)
    audio_s = 5.0
    pcap = pcmu_pcap(tone(CALLER_HZ, audio_s), tmp_path / "caller.pcap")

    dialled = time.monotonic()
    caller = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                  service=queue.did, keys={"pcap": str(pcap)},
                  duration_ms=round(audio_s * 1000), timeout_s=30).start()
    phone.wait("CALL_ESTABLISHED")
    answered = time.monotonic()
    phone.wait("CALL_CLOSED", timeout=20)  # the caller's BYE, passed on to the agent
    closed = time.monotonic()
    result = caller.wait()
    assert result.ok, result.summary()

    # the agent heard the caller
    (heard,) = phone.recordings("dec")
    assert_tone(heard, CALLER_HZ, 0.5, 2.5, level=TONE_RMS)

    # the CDR, once the agent's wrap-up ended: who answered, how long it waited and talked
    cdr = center.wait_cdr(queue, outcome="answered", recording=True)
    assert cdr["agent"] == agent.code
    assert cdr["number"] == "sipp"  # the caller's From user
    assert cdr["caller"]["did"] == queue.did
    assert 0 <= cdr["wait"] <= answered - dialled + 0.2, (cdr, answered - dialled)
    assert abs(cdr["talk"] - (closed - answered)) <= 0.5, (cdr, closed - answered)
    assert abs(cdr["wrap"] - wrap_up) <= 0.5, cdr

    # the recording: caller on the left, agent on the right, for the whole conversation
    wav = center.admin.download(f"/calls/{cdr['call_id']}/recording", tmp_path / "call.wav")
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
    assert abs(duration_s(wav) - cdr["talk"]) <= 0.5, (duration_s(wav), cdr)
    assert_tone(wav, CALLER_HZ, 0.5, 2.5, channel=0, level=TONE_RMS)
    assert_tone(wav, AGENT_HZ, 0.5, 2.5, channel=1, level=TONE_RMS)

    # the wallboard counts it, and the agent went through wrap-up back to ready
    stats = center.queue_stats(queue)
    assert (stats["offered_today"], stats["answered_today"], stats["abandoned_today"]) == (
        1, 1, 0), stats
    states = [e["state"] for e in center.events.matching(type="agent_state_changed",
                                                         agent=agent.code)]
    assert states[-3:] == ["busy", "wrap_up", "ready"], states
    center.wait_media_released()


def test_baresip_caller_hears_the_agent(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    queue = center.queue(wrap_up=1.0)
    agent = center.agent(queue)
    phone = agent_phone(center, phones, tone(AGENT_HZ), agent)
    caller = phones("caller", tone(CALLER_HZ))

    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")  # Hotline answers at once
    phone.wait("CALL_ESTABLISHED")
    time.sleep(3)  # the conversation
    phone.hangup()  # the agent ends it: Hotline passes the BYE on to the caller
    caller.wait("CALL_CLOSED")

    (caller_heard,) = caller.recordings("dec")
    (agent_heard,) = phone.recordings("dec")
    end = duration_s(caller_heard)
    assert_tone(caller_heard, AGENT_HZ, end - 2.5, end - 0.5, level=TONE_RMS)
    assert_tone(agent_heard, CALLER_HZ, 0.5, 2.5, level=TONE_RMS)
    cdr = center.wait_cdr(queue, outcome="answered", recording=True)
    assert cdr["agent"] == agent.code
    assert cdr["number"] == "caller"
    wav = center.admin.download(f"/calls/{cdr['call_id']}/recording", tmp_path / "call.wav")
    assert_tone(wav, CALLER_HZ, 0.5, 2.5, channel=0, level=TONE_RMS)
    assert_tone(wav, AGENT_HZ, 0.5, 2.5, channel=1, level=TONE_RMS)
    center.wait_media_released()


def test_unanswered_phone_is_cancelled_after_the_ring_timeout_and_the_next_agent_answers(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    ring_timeout = 3.0
    queue = center.queue(ring_timeout=ring_timeout, wrap_up=1.0)
    away, there = center.agent(queue), center.agent(queue)
    # longest idle first: the agent whose phone will not be answered is offered the call
    away_phone = agent_phone(center, phones, tone(AGENT_HZ), away, "manual")
    there_phone = agent_phone(center, phones, tone(AGENT_HZ), there)
    caller = phones("caller", tone(CALLER_HZ))

    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    away_phone.wait("CALL_INCOMING")
    rang = time.monotonic()
    away_phone.wait("CALL_CLOSED", timeout=ring_timeout + 5)  # Hotline's CANCEL
    rang_for = time.monotonic() - rang
    there_phone.wait("CALL_ESTABLISHED", timeout=5)
    assert abs(rang_for - ring_timeout) <= 0.5, rang_for
    time.sleep(3)  # the conversation
    caller.hangup()
    there_phone.wait("CALL_CLOSED")

    # the agent who did not answer is not offered calls until they say they are back
    state = center.agent_state(away)
    assert (state["state"], state["reason"]) == ("not_ready", "no answer"), state
    cancelled = center.events.wait_for(type="offer_cancelled", agent=away.code)
    assert cancelled["reason"] == "no_answer", cancelled
    cdr = center.wait_cdr(queue, outcome="answered")
    assert cdr["agent"] == there.code
    assert cdr["wait"] >= ring_timeout, cdr
    assert center.agent_report(away).get("rona") == 1, center.agent_report(away)
    assert center.agent_report(there).get("rona", 0) == 0, center.agent_report(there)
    assert center.agent_report(there).get("answered") == 1, center.agent_report(there)

    # the caller heard music while it rang, then the agent who answered, who heard them
    (caller_heard,) = caller.recordings("dec")
    assert rms(caller_heard, start_s=0.5, end_s=ring_timeout - 0.5) > 0.01
    end = duration_s(caller_heard)
    assert_tone(caller_heard, AGENT_HZ, end - 2.5, end - 0.5, level=TONE_RMS)
    (there_heard,) = there_phone.recordings("dec")
    assert_tone(there_heard, CALLER_HZ, 0.5, 2.5, level=TONE_RMS)
    assert not away_phone.recordings("dec")  # it never answered
    center.wait_media_released()  # the cancelled INVITE's port too, whenever its 487 came


def test_busy_phone_makes_its_agent_not_ready_and_the_next_agent_gets_the_call(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
) -> None:
    queue = center.queue(wrap_up=1.0)
    busy, there = center.agent(queue), center.agent(queue)
    with sipp_phone(center, sipp, busy, "uas_busy.xml") as busy_phone:  # longest idle
        there_phone = agent_phone(center, phones, tone(AGENT_HZ), there)
        caller = phones("caller", tone(CALLER_HZ))
        caller.dial(center.did_uri(queue))
        result = busy_phone.wait(timeout=10)
        assert result.ok, result.summary()  # INVITE, 486 Busy Here, ACK
        there_phone.wait("CALL_ESTABLISHED")
        state = center.agent_state(busy)
        assert (state["state"], state["reason"]) == ("not_ready", "phone_busy"), state
        time.sleep(2)  # the conversation
        caller.hangup()
        there_phone.wait("CALL_CLOSED")

    cancelled = center.events.wait_for(type="offer_cancelled", agent=busy.code)
    assert cancelled["reason"] == "phone_busy", cancelled
    cdr = center.wait_cdr(queue, outcome="answered")
    assert cdr["agent"] == there.code
    (heard,) = caller.recordings("dec")
    end = duration_s(heard)
    assert_tone(heard, AGENT_HZ, end - 1.5, end - 0.5, level=TONE_RMS)
    center.wait_media_released()


def test_agent_whose_phone_is_not_registered_is_skipped_for_one_whose_phone_is(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=1.0)
    phoneless, there = center.agent(queue), center.agent(queue)
    # logged in at the desk (longest idle), but its phone is off
    center.admin.post(f"/agents/{phoneless.code}/login", {"ready": True})
    assert not center.admin.get(f"/agents/{phoneless.code}/phone")["registered"]
    there_phone = agent_phone(center, phones, tone(AGENT_HZ), there)
    caller = phones("caller", tone(CALLER_HZ))

    caller.dial(center.did_uri(queue))
    there_phone.wait("CALL_ESTABLISHED")
    state = center.agent_state(phoneless)
    assert (state["state"], state["reason"]) == ("not_ready", "phone_unregistered"), state
    time.sleep(2)  # the conversation
    caller.hangup()
    there_phone.wait("CALL_CLOSED")

    cancelled = center.events.wait_for(type="offer_cancelled", agent=phoneless.code)
    assert cancelled["reason"] == "phone_unregistered", cancelled
    cdr = center.wait_cdr(queue, outcome="answered")
    assert cdr["agent"] == there.code
    (heard,) = there_phone.recordings("dec")
    assert_tone(heard, CALLER_HZ, 0.5, 1.5, level=TONE_RMS)
    center.wait_media_released()


def test_caller_who_hangs_up_while_queued_is_counted_abandoned(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    # nobody is logged in to the queue; a caller who gives up within short_abandon (default
    # 5 s) is a "short abandon", left out of abandoned_today: this one gives up sooner
    queue = center.queue(short_abandon=0.5)
    caller = phones("caller", tone(CALLER_HZ))

    dialled = time.monotonic()
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")  # answered by Hotline: music on hold
    (waiting,) = wait_until(lambda: center.admin.get("/calls", queue=queue.id), 5,
                            f"the call in {queue.id}")
    assert waiting["state"] == "waiting", waiting
    time.sleep(2)  # listening to the music
    caller.hangup()
    gave_up = time.monotonic()

    cdr = center.wait_cdr(queue, outcome="abandoned")
    assert cdr["agent"] is None and cdr["call_id"] == waiting["call"], cdr
    assert abs(cdr["wait"] - (gave_up - dialled)) <= 0.5, (cdr, gave_up - dialled)
    stats = center.queue_stats(queue)
    assert (stats["offered_today"], stats["answered_today"], stats["abandoned_today"]) == (
        1, 0, 1), stats
    assert center.admin.get("/calls", queue=queue.id) == []
    # the caller heard music all along, never silence
    (heard,) = caller.recordings("dec")
    for second in range(int(duration_s(heard))):
        assert rms(heard, start_s=second, end_s=second + 1) > 0.01, f"silence at {second} s"
    center.wait_media_released()


def test_phone_unregistering_with_expires_0_logs_its_agent_out(center: CallCenter) -> None:
    queue = center.queue()
    agent = center.agent(queue)
    with sip_client(center.server) as phone:
        assert [r.status for r in phone.register(agent.username, agent.password)] == [401, 200]
        registered = center.events.wait_for(type="phone_registered", agent=agent.code)
        assert registered["contact"] == f"sip:{agent.username}@{phone.host}:{phone.port}"
        center.wait_agent_state(agent, "ready")
        assert center.admin.get(f"/agents/{agent.code}/phone")["registered"]

        answers = phone.register(agent.username, agent.password, expires=0)
        assert [r.status for r in answers] == [401, 200], [r.start for r in answers]
        assert answers[-1].all("contact") == []  # no binding left

    gone = center.events.wait_for(type="phone_unregistered", agent=agent.code)
    assert gone["reason"] == "unregistered", gone
    state = center.wait_agent_state(agent, "logged_out")
    assert state["reason"] == "phone_unregistered", state
    assert not center.admin.get(f"/agents/{agent.code}/phone")["registered"]


def test_agent_transfers_the_caller_to_another_queue_whose_agent_then_talks_to_them(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    first_queue, second_queue = center.queue(wrap_up=1.0), center.queue(wrap_up=1.0)
    first, second = center.agent(first_queue), center.agent(second_queue)
    first_phone = agent_phone(center, phones, tone(AGENT_HZ), first)
    second_phone = agent_phone(center, phones, tone(SECOND_AGENT_HZ), second)
    caller = phones("caller", tone(CALLER_HZ))

    caller.dial(center.did_uri(first_queue))
    first_phone.wait("CALL_ESTABLISHED")
    time.sleep(2)  # the first conversation
    (offered,) = center.events.matching(type="call_offered", agent=first.code)
    moved = center.admin.post(f"/calls/{offered['call']}/transfer", {"queue": second_queue.id})
    first_phone.wait("CALL_CLOSED")  # the first agent is released...
    second_phone.wait("CALL_ESTABLISHED", timeout=10)  # ...and the caller rings the second
    time.sleep(3)  # the second conversation
    caller.hangup()
    second_phone.wait("CALL_CLOSED")

    # the caller heard the second agent at the end; the second agent heard the caller
    (caller_heard,) = caller.recordings("dec")
    end = duration_s(caller_heard)
    assert_tone(caller_heard, SECOND_AGENT_HZ, end - 2.5, end - 0.5, level=TONE_RMS)
    (second_heard,) = second_phone.recordings("dec")
    assert_tone(second_heard, CALLER_HZ, 0.5, 2.5, level=TONE_RMS)

    # two CDRs, the second continuing the first, each with its own recording of its agent
    before = center.wait_cdr(first_queue, outcome="transferred", recording=True)
    after = center.wait_cdr(second_queue, outcome="answered", recording=True)
    assert (before["agent"], after["agent"]) == (first.code, second.code)
    assert after["call_id"] == moved["call"] and after["transferred_from"] == before["call_id"]
    for cdr, agent_hz in ((before, AGENT_HZ), (after, SECOND_AGENT_HZ)):
        wav = center.admin.download(f"/calls/{cdr['call_id']}/recording",
                                    tmp_path / f"{cdr['call_id']}.wav")
        assert_tone(wav, CALLER_HZ, 0.5, 1.5, channel=0, level=TONE_RMS)
        assert_tone(wav, agent_hz, 0.5, 1.5, channel=1, level=TONE_RMS)
    center.wait_agent_state(first, "ready")
    center.wait_media_released()
