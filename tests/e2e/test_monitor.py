"""A supervisor steps into a live call from their own phone: listen, whisper (coach), barge in,
take over. Three baresip phones each play their own tone — caller 440 Hz, agent 1000 Hz,
supervisor 1500 Hz — so what each party heard in each phase is read off its recording by
which tones are in it."""

from __future__ import annotations

import secrets
import time
import wave
from collections.abc import Callable
from pathlib import Path

from .peers import PhoneFactory, Registration, band_energy_fraction, duration_s, rms
from .server import CallCenter, agent_phone, wait_until

Tone = Callable[..., Path]
LONG = 90.0  # seconds of microphone: baresip hangs up when its file ends
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440, 1000, 1500
PHASE = 3.0  # seconds in each mode


TOLERANCE = 1.0  # seconds: phones' recordings start late and absorb jitter


def runs(recording: Path, tones: tuple[float, ...], channel: int | None = None,
         step: float = 0.25) -> list[tuple[set[float], float]]:
    """The recording as runs of which ``tones`` are in it (each with at least 15 % of the
    energy in a ``step``), with their lengths in seconds; runs shorter than half a second
    (the instant a mode changes) are left out."""
    total = duration_s(recording)
    found: list[tuple[set[float], float]] = []
    t = 0.0
    while t + step <= total:
        heard = {hz for hz in tones
                 if band_energy_fraction(recording, hz, 25.0, t, t + step, channel) >= 0.15}
        if found and found[-1][0] == heard:
            found[-1] = (heard, found[-1][1] + step)
        else:
            found.append((heard, step))
        t += step
    kept: list[tuple[set[float], float]] = []
    for heard, length in found:
        if length < 0.5 or not heard:
            continue
        if kept and kept[-1][0] == heard:
            kept[-1] = (heard, kept[-1][1] + length)
        else:
            kept.append((heard, length))
    return kept


def test_supervisor_listens_whispers_barges_in_and_takes_over_from_their_phone(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    # a supervisor of the queue, with a phone of their own
    name, password = f"sup-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password,
                                 "role": "supervisor", "queues": [queue.id]}, expect=201)
    sip_password = secrets.token_urlsafe(12)
    # a short name: baresip cuts its recordings' file names at a fixed length
    phone = center.admin.put(f"/users/{name}/phone", {"username": f"s{secrets.token_hex(2)}",
                                                      "password": sip_password})
    supervisor_set = phones(phone["username"], tone(SUPERVISOR_HZ, LONG),
                            registration=Registration(center.server.sip_port, sip_password))
    supervisor_set.wait_registered()
    supervisor = center.server.login(name, password)

    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    agent_set.wait("CALL_ESTABLISHED")
    answered = time.monotonic()
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]

    # another supervisor's request is refused: the call is not in their queues
    r = center.admin.http.put(f"/calls/{call_id}/monitor", json={"mode": "listen"})
    assert r.status_code == 409, r.text  # the admin has no phone of their own

    phases: dict[str, float] = {}
    state = supervisor.put(f"/calls/{call_id}/monitor", {"mode": "listen"})
    assert state["state"] == "ringing"
    supervisor_set.wait("CALL_ESTABLISHED")
    phases["listen"] = time.monotonic()
    for mode in ("whisper", "barge", "take_over"):
        time.sleep(PHASE)
        phases[mode] = time.monotonic()
        assert supervisor.put(f"/calls/{call_id}/monitor", {"mode": mode})["mode"] == mode
    agent_set.wait("CALL_CLOSED")  # taken over: the agent's phone is hung up
    center.wait_agent_state(agent, "wrap_up")
    time.sleep(PHASE)
    caller.hangup()
    supervisor_set.wait("CALL_CLOSED")

    (caller_heard,) = caller.recordings("dec")
    (agent_heard,) = agent_set.recordings("dec")
    (supervisor_heard,) = supervisor_set.recordings("dec")
    listen = phases["whisper"] - phases["listen"]
    whisper = phases["barge"] - phases["whisper"]
    barge = phases["take_over"] - phases["barge"]
    c, a, s = CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ
    # What each heard, in order, with how long (a phone's recording is its received audio
    # end to end, so it is read by content, not by the wall clock).
    caller_runs = runs(caller_heard, (c, a, s))
    assert [tones for tones, _ in caller_runs] == [{a}, {a, s}, {s}], caller_runs
    assert caller_runs[0][1] >= listen + whisper - TOLERANCE  # unheard, then coaching only
    assert abs(caller_runs[1][1] - barge) <= TOLERANCE  # all three, then the supervisor alone
    agent_runs = runs(agent_heard, (c, a, s))
    assert [tones for tones, _ in agent_runs] == [{c}, {c, s}], agent_runs
    assert agent_runs[0][1] >= listen - TOLERANCE
    assert abs(agent_runs[1][1] - (whisper + barge)) <= TOLERANCE  # coached, then barged
    supervisor_runs = runs(supervisor_heard, (c, a, s))
    assert [tones for tones, _ in supervisor_runs] == [{c, a}, {c}], supervisor_runs
    assert abs(supervisor_runs[0][1] - (listen + whisper + barge)) <= TOLERANCE

    modes = [e["mode"] for e in center.events.matching(type="call_monitored", call=call_id)]
    assert modes == ["listen", "whisper", "barge", "take_over"], modes
    # the call's recording: the caller on the left throughout; the center's side on the right
    # (the agent, with the coaching supervisor), the supervisor alone once they took over
    cdr = wait_until(lambda: [c for c in center.cdrs(queue) if c.get("recording")], 15,
                     "the recording to be linked")[0]
    assert cdr["agent"] == agent.code
    wav = center.admin.download(f"/calls/{cdr['call_id']}/recording", tmp_path / "call.wav")
    with wave.open(str(wav)) as w:  # as long as the call, the supervisor's part included
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - (time.monotonic() - answered)) <= 5.0, seconds
    assert [t for t, _ in runs(wav, (c,), channel=0)] == [{c}]  # the caller, throughout
    right = runs(wav, (a, s), channel=1)
    assert [t for t, _ in right] == [{a}, {a, s}, {s}], right
    assert abs(right[1][1] - (whisper + barge)) <= TOLERANCE
    center.wait_media_released()


def test_recording_paused_for_a_card_number_and_private_queues_neither_recorded_nor_heard(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    on_demand, private = center.queue(wrap_up=1.0), center.queue(wrap_up=1.0)
    center.admin.call("PATCH", f"/queues/{on_demand.id}", body={"recording": "on_demand"})
    center.admin.call("PATCH", f"/queues/{private.id}", body={"recording": "never"})
    agent = center.agent(on_demand)
    center.admin.call("PUT", f"/agents/{agent.code}",
                      body={**center.admin.get(f"/agents/{agent.code}"),
                            "skills": {on_demand.skill: 1, private.skill: 1}})
    agent_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent)
    me = center.server.login("admin")

    # on demand: nothing is recorded until asked; a pause leaves silence in the file
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(center.did_uri(on_demand))
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    time.sleep(1.0)
    assert me.put(f"/calls/{call_id}/recording", {"state": "on"})["recording"] == "on"
    started = time.monotonic()
    time.sleep(2.0)
    assert me.put(f"/calls/{call_id}/recording", {"state": "paused"})["recording"] == "paused"
    paused = time.monotonic()
    time.sleep(2.0)
    assert me.put(f"/calls/{call_id}/recording", {"state": "on"})["recording"] == "on"
    resumed = time.monotonic()
    time.sleep(2.0)
    caller.hangup()
    agent_set.wait("CALL_CLOSED")
    cdr = center.wait_cdr(on_demand, outcome="answered", recording=True)
    wav = center.admin.download(f"/calls/{cdr['call_id']}/recording", tmp_path / "od.wav")
    mid = (paused - started + 0.3, resumed - started - 0.3)
    for channel, hz in ((0, CALLER_HZ), (1, AGENT_HZ)):
        assert band_energy_fraction(wav, hz, 25.0, 0.3, paused - started - 0.3,
                                    channel=channel) >= 0.9
        assert band_energy_fraction(wav, hz, 25.0, resumed - started + 0.3,
                                    resumed - started + 1.5, channel=channel) >= 0.9
        assert rms(wav, channel, *mid) < 0.001, "audio was kept while paused"
    changes = [e["state"] for e in center.events.matching(type="call_recording_changed",
                                                          call=call_id)]
    assert changes == ["started", "paused", "resumed"], changes
    center.wait_agent_state(agent, "ready", timeout=15)

    # private: never recorded, and no supervisor may listen
    caller2 = phones("caller2", tone(CALLER_HZ, LONG))
    caller2.dial(center.did_uri(private))
    agent_set.wait("CALL_ESTABLISHED")
    call2 = wait_until(lambda: [e["call"] for e in center.events.matching(
        type="call_answered", agent=agent.code) if e["call"] != call_id], 10, "the call")[0]
    r = me.http.put(f"/calls/{call2}/recording", json={"state": "on"})
    assert r.status_code == 403, r.text
    r = me.http.put(f"/calls/{call2}/monitor", json={"mode": "listen"})
    assert r.status_code == 403, r.text
    time.sleep(1.0)
    caller2.hangup()
    cdr2 = center.wait_cdr(private, outcome="answered")
    assert not cdr2.get("recording")
    center.wait_media_released()
