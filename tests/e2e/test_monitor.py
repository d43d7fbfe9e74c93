"""A supervisor steps into a live call from their own phone: listen, whisper (coach), barge in,
take over. Three baresip phones each play their own tone — caller 440 Hz, agent 1000 Hz,
supervisor 1500 Hz — so what each party heard in each phase is read off its recording by
which tones are in it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .peers import PhoneFactory, Registration, band_energy_fraction
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
