"""A supervisor steps into a live call from their own phone: listen, whisper (coach), barge in,
take over. Three baresip phones each play their own tone — caller 440 Hz, agent 1000 Hz,
supervisor 1500 Hz — so what each party heard in each phase is read off its recording by
which tones are in it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .peers import PhoneFactory, Registration, band_energy_fraction, rms
from .server import CallCenter, agent_phone, wait_until

Tone = Callable[..., Path]
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440, 1000, 1500
PHASE = 3.0  # seconds in each mode
MARGIN = 0.8  # seconds skipped at the start of a phase (the change, the jitter queue)


def share(recording: Path, hz: float, start: float, end: float) -> float:
    return band_energy_fraction(recording, hz, 25.0, start, end)


def test_supervisor_listens_whispers_barges_in_and_takes_over_from_their_phone(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent = center.agent(queue)
    agent_set = agent_phone(center, phones, tone(AGENT_HZ), agent)
    # a supervisor of the queue, with a phone of their own
    name, password = f"sup-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password,
                                 "role": "supervisor", "queues": [queue.id]}, expect=201)
    sip_password = secrets.token_urlsafe(12)
    # a short name: baresip cuts its recordings' file names at a fixed length
    phone = center.admin.put(f"/users/{name}/phone", {"username": f"s{secrets.token_hex(2)}",
                                                      "password": sip_password})
    supervisor_set = phones(phone["username"], tone(SUPERVISOR_HZ),
                            registration=Registration(center.server.sip_port, sip_password))
    supervisor_set.wait_registered()
    supervisor = center.server.login(name, password)

    caller = phones("caller", tone(CALLER_HZ))
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    caller_start = time.monotonic()
    agent_set.wait("CALL_ESTABLISHED")
    agent_start = time.monotonic()
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]

    # another supervisor's request is refused: the call is not in their queues
    r = center.admin.http.put(f"/calls/{call_id}/monitor", json={"mode": "listen"})
    assert r.status_code == 409, r.text  # the admin has no phone of their own

    phases: dict[str, float] = {}
    state = supervisor.put(f"/calls/{call_id}/monitor", {"mode": "listen"})
    assert state["state"] == "ringing"
    supervisor_set.wait("CALL_ESTABLISHED")
    supervisor_start = time.monotonic()
    phases["listen"] = supervisor_start
    for mode in ("whisper", "barge", "take_over"):
        time.sleep(PHASE)
        phases[mode] = time.monotonic()
        assert supervisor.put(f"/calls/{call_id}/monitor", {"mode": mode})["mode"] == mode
    agent_set.wait("CALL_CLOSED")  # taken over: the agent's phone is hung up
    center.wait_agent_state(agent, "wrap_up")
    time.sleep(PHASE)
    end = time.monotonic()
    caller.hangup()
    supervisor_set.wait("CALL_CLOSED")

    (caller_heard,) = caller.recordings("dec")
    (agent_heard,) = agent_set.recordings("dec")
    (supervisor_heard,) = supervisor_set.recordings("dec")
    bounds = {"listen": (phases["listen"], phases["whisper"]),
              "whisper": (phases["whisper"], phases["barge"]),
              "barge": (phases["barge"], phases["take_over"]),
              "take_over": (phases["take_over"], end)}

    def window(phase: str, started: float) -> tuple[float, float]:
        a, b = bounds[phase]
        return a - started + MARGIN, b - started - 0.3

    # (recording, its start) -> per phase: tones that must be heard / must not be
    expected = {
        "caller": (caller_heard, caller_start, {
            "listen": ({AGENT_HZ}, {SUPERVISOR_HZ}),
            "whisper": ({AGENT_HZ}, {SUPERVISOR_HZ}),
            "barge": ({AGENT_HZ, SUPERVISOR_HZ}, set()),
            "take_over": ({SUPERVISOR_HZ}, {AGENT_HZ}),
        }),
        "agent": (agent_heard, agent_start, {
            "listen": ({CALLER_HZ}, {SUPERVISOR_HZ}),
            "whisper": ({CALLER_HZ, SUPERVISOR_HZ}, set()),
            "barge": ({CALLER_HZ, SUPERVISOR_HZ}, set()),
        }),
        "supervisor": (supervisor_heard, supervisor_start, {
            "listen": ({CALLER_HZ, AGENT_HZ}, set()),
            "whisper": ({CALLER_HZ, AGENT_HZ}, set()),
            "barge": ({CALLER_HZ, AGENT_HZ}, set()),
            "take_over": ({CALLER_HZ}, {AGENT_HZ}),
        }),
    }
    for who, (recording, started, by_phase) in expected.items():
        for phase, (heard, unheard) in by_phase.items():
            a, b = window(phase, started)
            for hz in heard:
                got = share(recording, hz, a, b)
                assert got >= 0.25, f"{who} did not hear {hz} Hz while {phase}: {got:.3f}"
            for hz in unheard:
                got = share(recording, hz, a, b)
                assert got <= 0.02, f"{who} heard {hz} Hz while {phase}: {got:.3f}"

    modes = [e["mode"] for e in center.events.matching(type="call_monitored", call=call_id)]
    assert modes == ["listen", "whisper", "barge", "take_over"], modes
    # the call's recording: the caller on the left throughout; the center's side on the right
    # (the agent, with the coaching supervisor), the supervisor alone once they took over
    cdr = wait_until(lambda: [c for c in center.cdrs(queue) if c.get("recording")], 15,
                     "the recording to be linked")[0]
    assert cdr["agent"] == agent.code
    wav = center.admin.download(f"/calls/{cdr['call_id']}/recording", tmp_path / "call.wav")
    rec_start = agent_start  # the recording begins when the agent answers
    a, b = window("listen", rec_start)
    assert band_energy_fraction(wav, CALLER_HZ, 25.0, a, b, channel=0) >= 0.9
    assert band_energy_fraction(wav, AGENT_HZ, 25.0, a, b, channel=1) >= 0.9
    a, b = window("whisper", rec_start)
    assert band_energy_fraction(wav, SUPERVISOR_HZ, 25.0, a, b, channel=1) >= 0.25
    a, b = window("take_over", rec_start)
    assert band_energy_fraction(wav, SUPERVISOR_HZ, 25.0, a, b, channel=1) >= 0.9
    assert band_energy_fraction(wav, CALLER_HZ, 25.0, a, b, channel=0) >= 0.9
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
    agent_set = agent_phone(center, phones, tone(AGENT_HZ), agent)
    me = center.server.login("admin")

    # on demand: nothing is recorded until asked; a pause leaves silence in the file
    caller = phones("caller", tone(CALLER_HZ))
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
    caller2 = phones("caller2", tone(CALLER_HZ))
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
