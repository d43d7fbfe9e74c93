"""The IVR end to end: real callers (baresip, SIPp) key their way through menus by RFC 4733
DTMF, wait with position announcements, take a callback, leave a voicemail, and meet the
emergency announcement; and the demo's own number speaks its menus and reaches a phone.

Prompts are uploaded as pure tones (one frequency each, clear of the music on hold's notes),
so what a caller heard is read off its recording by frequency; announcements spoken by the TTS
engine are found in the recording by correlating it with the same sentence rendered here.
"""

from __future__ import annotations

import io
import math
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hotline.media import g711, speech_numbers, tts
from hotline.server import demo

from .peers import (
    PhoneFactory,
    Registration,
    Sipp,
    band_energy_fraction,
    duration_s,
    pcmu_pcap,
    read_wav,
)
from .server import DEMO_PASSWORD, CallCenter, Queue, agent_phone, wait_until

Tone = Callable[..., Path]
LONG = 90.0  # seconds of microphone: baresip hangs up when its file ends
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440, 1000, 1500
RATE = 8000


# ---------------------------------------------------------------------- helpers
def tone_pcm(freq_hz: float, seconds: float) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    pcm = np.round(0.3 * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def tone_prompt(center: CallCenter, code: str, zh_hz: float, en_hz: float | None = None,
                seconds: float = 1.5) -> None:
    """A prompt whose recordings are tones: ``zh_hz`` in Chinese, ``en_hz`` in English."""
    center.admin.put(f"/ivr/prompts/{code}", {"zh": {"text": f"{code} 提示"},
                                              "en": {"text": f"{code} prompt"}})
    for language, hz in (("zh", zh_hz), ("en", en_hz or zh_hz)):
        r = center.admin.http.put(f"/ivr/prompts/{code}/{language}/audio",
                                  content=tone_pcm(hz, seconds),
                                  headers={"Content-Type": "audio/wav"})
        assert r.status_code == 200, r.text


_flows = iter(range(1, 10_000))


def ivr_number(center: CallCenter, definition: dict[str, Any], language: str = "zh") -> str:
    """Save the flow and route a new number to it; returns the SIP URI callers dial."""
    n = next(_flows)
    code, did = f"e2e-flow-{n}", f"62{n:03d}{int(time.time()) % 1000:03d}"
    saved = center.admin.put(f"/ivr/flows/{code}", {"definition": definition})
    assert saved["version"] >= 1
    center.admin.put(f"/routes/{did}", {"flow": code, "language": language})
    return f"sip:{did}@127.0.0.1:{center.server.sip_port}"


def tone_spans(path: Path, freq_hz: float, share: float = 0.6,
               window: float = 0.1) -> list[tuple[float, float]]:
    """Where ``path`` holds the tone: (start, end) s of runs of windows whose energy is mostly
    (``share``) within ±20 Hz of ``freq_hz``."""
    data, rate = read_wav(path)
    total = len(data) / rate
    spans: list[tuple[float, float]] = []
    t = 0.0
    while t + window <= total:
        try:
            hit = band_energy_fraction(path, freq_hz, 20.0, t, t + window) >= share
        except ValueError:
            hit = False
        if hit:
            if spans and abs(spans[-1][1] - t) < 1e-6:
                spans[-1] = (spans[-1][0], t + window)
            else:
                spans.append((t, t + window))
        t += window
    return spans


def heard(path: Path, freq_hz: float, at_least: float = 0.5) -> bool:
    return any(end - start >= at_least for start, end in tone_spans(path, freq_hz))


def through_phone(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """What a caller's recording holds of ``pcm``: G.711 µ-law both ways, as floats."""
    return g711.decode("PCMU", g711.encode("PCMU", pcm)).astype(np.float64) / 32768.0


def occurrences(path: Path, speech: npt.NDArray[np.int16], threshold: float = 0.7
                ) -> list[float]:
    """Start times (s) where ``speech`` appears in the recording: peaks of the normalised
    cross-correlation above ``threshold``, at least the speech's length apart."""
    data, rate = read_wav(path)
    assert rate == RATE, rate
    x = data.mean(axis=1)
    s = through_phone(speech)
    n = len(s)
    if len(x) < n:
        return []
    corr = np.correlate(x, s, mode="valid")
    energy = np.convolve(x * x, np.ones(n), mode="valid")
    norm = corr / (np.sqrt(np.maximum(energy, 1e-12)) * math.sqrt(float(s @ s)))
    found: list[float] = []
    order = np.argsort(norm)[::-1]
    for i in order:
        if norm[i] < threshold:
            break
        if all(abs(i - round(f * rate)) >= n for f in found):
            found.append(i / rate)
    return sorted(found)


def stored_prompt(center: CallCenter, code: str, language: str, tmp_path: Path
                  ) -> npt.NDArray[np.int16]:
    """The prompt's audio as the server stores and plays it."""
    wav = center.admin.download(f"/ivr/prompts/{code}/{language}/audio",
                                tmp_path / f"{code}-{language}.wav")
    with wave.open(str(wav)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


# ---------------------------------------------------------------------- tests
def test_caller_keys_through_a_two_level_menu_in_english_to_the_right_queue(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    first, second = center.queue(wrap_up=1.0), center.queue(wrap_up=1.0)
    agent_a, agent_b = center.agent(first), center.agent(second)
    phone_a = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent_a)
    phone_b = agent_phone(center, phones, tone(AGENT_HZ, LONG), agent_b)
    tone_prompt(center, "t-welcome", 300)
    tone_prompt(center, "t-main", 380, 3000)
    tone_prompt(center, "t-sub", 450, 2600)
    uri = ivr_number(center, {"start": "language", "nodes": {
        "language": {"type": "menu", "prompt": "t-welcome", "options": {"1": "zh", "2": "en"},
                     "on_failure": "zh"},
        "zh": {"type": "set", "values": {"language": "zh"}, "next": "main"},
        "en": {"type": "set", "values": {"language": "en"}, "next": "main"},
        "main": {"type": "menu", "prompt": "t-main", "options": {"1": "a", "2": "sub"},
                 "on_failure": "a"},
        "sub": {"type": "menu", "prompt": "t-sub", "options": {"1": "b", "2": "a"},
                "on_failure": "a"},
        "a": {"type": "queue", "queue": first.id, "announce_every": None},
        "b": {"type": "queue", "queue": second.id, "announce_every": None},
    }})
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(uri)
    caller.wait("CALL_ESTABLISHED")
    time.sleep(2.5)  # the greeting (1.5 s) played out; the menu waits
    caller.send_dtmf("2")  # English
    time.sleep(2.5)
    caller.send_dtmf("2")  # the sub-menu
    time.sleep(2.5)
    caller.send_dtmf("1")  # the second queue
    phone_b.wait("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.5)
    caller.hangup()
    phone_b.wait("CALL_CLOSED")

    assert not [e for e in phone_a.events if e.get("type") == "CALL_INCOMING"]
    cdr = center.wait_cdr(second, outcome="answered")
    assert cdr["agent"] == agent_b.code
    assert cdr["caller"]["language"] == "en"
    ended = center.events.wait_for(type="ivr_ended", call=cdr["call_id"])
    assert ended["outcome"] == "queued" and ended["queue"] == second.id
    assert ended["path"] == ["language", "en", "main", "sub", "b"]
    assert ended["language"] == "en"

    (recording,) = caller.recordings("dec")
    assert heard(recording, 300)  # the greeting
    assert heard(recording, 3000) and heard(recording, 2600)  # both menus, in English
    assert not heard(recording, 380, 0.2) and not heard(recording, 450, 0.2)  # no Chinese
    center.wait_media_released()


def test_waiting_callers_hear_their_position_every_period_and_can_take_a_callback(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
    tmp_path: Path,
) -> None:
    queue: Queue = center.queue()  # nobody serves it: calls wait
    every = 10.0
    tone_prompt(center, "t-offer", 3300, seconds=1.0)
    tone_prompt(center, "t-confirm", 2500, seconds=1.0)
    uri = ivr_number(center, {"start": "q", "nodes": {
        "q": {"type": "queue", "queue": queue.id, "announce_every": every,
              "announce": ["position"], "first_announcement": 0, "callback_key": "9",
              "callback_prompt": "t-offer", "callback_confirm": "t-confirm"}}})
    did = uri.split(":")[1].split("@")[0]

    # the first caller waits for the whole test (SIPp: its audio lasts 40 s)
    pcap = pcmu_pcap(tone(CALLER_HZ, 40), tmp_path / "first.pcap")
    first = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                 service=did, keys={"pcap": str(pcap)}, duration_ms=40_000,
                 timeout_s=60).start()
    wait_until(lambda: center.queue_stats(queue)["waiting"] == 1, 10, "the first caller")
    number = "86001"  # the caller's number (its phone's name): the one called back
    caller = phones(number, tone(CALLER_HZ, LONG))
    caller.dial(uri)
    caller.wait("CALL_ESTABLISHED")
    established = time.monotonic()
    time.sleep(2.6 * every)  # three announcements: at 0, 10 and 20 s
    caller.send_dtmf("9")
    caller.wait("CALL_CLOSED", timeout=10)  # Hotline confirms, then hangs up
    closed = time.monotonic()

    requested = center.events.wait_for(type="callback_requested", queue=queue.id)
    assert requested["call"] != ""
    (recording,) = caller.recordings("dec")
    spoken = tts.render(speech_numbers.say_position(2, "zh"), "zh")
    starts = occurrences(recording, spoken)
    assert len(starts) == 3, starts
    gaps = np.diff(starts)
    assert all(abs(g - every) <= 0.5 for g in gaps), starts  # every 10 s, start to start
    assert starts[0] <= 2.0, starts  # the first one at once
    speech_s = len(spoken) / RATE
    offers = tone_spans(recording, 3300)
    for start in starts:  # each announcement ends with the callback offer
        assert any(abs(o[0] - (start + speech_s)) <= 0.3 for o in offers), (start, offers)
    confirm = [s for s in tone_spans(recording, 2500) if s[1] - s[0] >= 0.7]
    assert confirm and confirm[-1][0] >= starts[-1], (confirm, starts)
    assert closed - established <= 2.6 * every + 5
    # An agent comes: the first caller is served, then the callback's turn comes: the agent's
    # phone rings, then the caller's number through the tenant's trunk (to the caller's phone).
    trunk = "e2e-callbacks"
    center.admin.post("/trunks", {"code": trunk, "outbound": f"127.0.0.1:{caller.sip_port}"},
                      expect=201)
    agent = center.agent(queue)
    agent_set = phones(agent.username, tone(AGENT_HZ, LONG),  # it logs the agent in
                       registration=Registration(center.server.sip_port, agent.password))
    answered = center.events.wait_for(type="call_answered", call=requested["call"], timeout=60)
    assert answered["agent"] == agent.code
    caller.wait("CALL_ESTABLISHED", timeout=10)
    time.sleep(2.0)
    caller.hangup()
    agent_set.wait("CALL_CLOSED")
    _, called_back = caller.recordings("dec")
    assert heard(called_back, AGENT_HZ)
    (cdr,) = center.admin.get("/cdrs", number=number)["items"]
    assert (cdr["call_id"], cdr["agent"]) == (requested["call"], agent.code)
    wait_until(lambda: center.admin.get("/cdrs", number=number)["items"][0]["outcome"]
               == "answered", 15, "the callback's CDR to close")
    center.admin.call("DELETE", f"/trunks/{trunk}", expect=204)
    first.stop()


def test_voicemail_after_the_emergency_notice_is_recorded_and_listed(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    queue = center.queue()
    tone_prompt(center, "t-outage", 250, seconds=1.0)
    tone_prompt(center, "t-menu", 380)
    tone_prompt(center, "t-record", 2700, seconds=1.0)
    tone_prompt(center, "t-thanks", 2900, seconds=1.0)
    mailbox = queue.id
    uri = ivr_number(center, {"start": "menu", "nodes": {
        "menu": {"type": "menu", "prompt": "t-menu", "options": {"0": "vm", "1": "q"},
                 "on_failure": "q"},
        "q": {"type": "queue", "queue": queue.id, "announce_every": None},
        "vm": {"type": "voicemail", "prompt": "t-record", "mailbox": mailbox,
               "max_seconds": 30, "done_prompt": "t-thanks"}}})
    did = uri.split(":")[1].split("@")[0]
    center.admin.put(f"/ivr/emergency/did/{did}", {"prompt": "t-outage", "enabled": True})
    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(uri)
    caller.wait("CALL_ESTABLISHED")
    time.sleep(3.0)  # the notice (1 s), then the menu (1.5 s)
    caller.send_dtmf("0")
    time.sleep(1.5 + 3.0)  # the record prompt and beep, then three seconds of message
    caller.send_dtmf("#")
    caller.wait("CALL_CLOSED", timeout=10)  # thanked, then hung up by Hotline
    center.admin.put(f"/ivr/emergency/did/{did}", {"prompt": "t-outage", "enabled": False})

    (recording,) = caller.recordings("dec")
    notice, menu = tone_spans(recording, 250), tone_spans(recording, 380)
    assert notice and menu and notice[0][0] < menu[0][0]  # the notice comes first
    assert heard(recording, 2700) and heard(recording, 2900)
    listed = wait_until(lambda: center.admin.get("/ivr/voicemails", mailbox=mailbox),
                        10, "the voicemail to be listed")
    (item,) = listed
    assert item["number"] == "caller"
    assert 2.0 <= item["duration"] <= 4.5, item
    wav = center.admin.download(f"/ivr/voicemails/{item['id']}/audio", tmp_path / "vm.wav")
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, RATE)
    mid = item["duration"] / 2
    assert band_energy_fraction(wav, CALLER_HZ, 20.0, mid - 0.5, mid + 0.5) >= 0.9
    ended = center.events.wait_for(type="ivr_ended", outcome="voicemail")
    assert ended["path"] == ["menu", "vm"]
    center.wait_media_released()


def test_the_demo_number_speaks_english_a_softphone_answers_and_the_supervisor_joins(
    center: CallCenter, phones: PhoneFactory, tone: Tone, tmp_path: Path,
) -> None:
    code, extension = demo.PHONE_AGENTS[0]
    phone = phones(extension, tone(AGENT_HZ, LONG),
                   registration=Registration(center.server.sip_port, DEMO_PASSWORD))
    phone.wait_registered()
    wait_until(lambda: center.admin.get(f"/agents/{code}/state")["state"] == "ready", 10,
               f"{code} logged in by its phone")
    caller = phones("democaller", tone(CALLER_HZ, LONG))
    caller.dial(f"sip:{demo.PHONE_DID}@127.0.0.1:{center.server.sip_port}")
    caller.wait("CALL_ESTABLISHED")
    time.sleep(1.0)
    caller.send_dtmf("2")  # English, while the greeting plays
    time.sleep(9.0)  # the English main menu, spoken
    caller.send_dtmf("1")  # general enquiries: the phone queue
    phone.wait("CALL_ESTABLISHED", timeout=20)
    call_id = center.events.wait_for(type="call_answered", agent=code)["call"]
    # the demo's supervisor listens from their own phone, then barges in
    supervisor_set = phones(demo.SUPERVISOR_PHONE, tone(SUPERVISOR_HZ, LONG),
                            registration=Registration(center.server.sip_port, DEMO_PASSWORD))
    supervisor_set.wait_registered()
    supervisor = center.server.login("supervisor")
    supervisor.put(f"/calls/{call_id}/monitor", {"mode": "listen"})
    supervisor_set.wait("CALL_ESTABLISHED")
    listening = time.monotonic()
    time.sleep(2.5)
    supervisor.put(f"/calls/{call_id}/monitor", {"mode": "barge"})
    barged = time.monotonic()
    time.sleep(2.5)
    caller.hangup()
    phone.wait("CALL_CLOSED")
    supervisor_set.wait("CALL_CLOSED")
    (heard_by_supervisor,) = supervisor_set.recordings("dec")
    for hz in (CALLER_HZ, AGENT_HZ):
        assert band_energy_fraction(heard_by_supervisor, hz, 25.0, 0.8,
                                    barged - listening - 0.3) >= 0.25
    (heard_by_agent,) = phone.recordings("dec")
    end = duration_s(heard_by_agent)
    assert band_energy_fraction(heard_by_agent, SUPERVISOR_HZ, 25.0, end - 1.8, end - 0.3) >= 0.25

    (recording,) = caller.recordings("dec")
    english = stored_prompt(center, "main_menu", "en", tmp_path)
    chinese = stored_prompt(center, "main_menu", "zh", tmp_path)
    assert occurrences(recording, english), "the English menu was not heard"
    assert not occurrences(recording, chinese)
    ended = center.events.wait_for(type="ivr_ended", queue=demo.PHONE_QUEUE)
    assert ended["flow"] == demo.DEMO_FLOW and ended["language"] == "en"
    center.wait_media_released()


def test_a_transfer_node_rings_one_agent_or_an_outside_number_and_goes_on_if_refused(
    center: CallCenter, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=1.0)
    boss = center.agent(queue)  # logged out at first: a transfer to them is refused
    outside = phones("80006", tone(SUPERVISOR_HZ, LONG))
    trunk = "e2e-ivr-out"  # the tenant's only trunk out while this test runs
    center.admin.post("/trunks", {"code": trunk, "outbound": f"127.0.0.1:{outside.sip_port}"},
                      expect=201)
    uri = ivr_number(center, {"start": "boss", "nodes": {
        "boss": {"type": "transfer", "extension": boss.username, "queue": queue.id,
                 "on_failure": "branch"},
        "branch": {"type": "transfer", "number": "80006", "on_failure": "q"},
        "q": {"type": "queue", "queue": queue.id, "announce_every": None}}})

    caller = phones("caller", tone(CALLER_HZ, LONG))
    caller.dial(uri)
    caller.wait("CALL_ESTABLISHED")
    outside.wait("CALL_ESTABLISHED", timeout=10)  # the boss was not there: the branch office
    connected = time.monotonic()
    time.sleep(3.0)
    caller.hangup()
    outside.wait("CALL_CLOSED")
    heard_at = connected - time.monotonic()  # (negative: seconds before the end)
    (recording,) = caller.recordings("dec")
    end = duration_s(recording)
    assert band_energy_fraction(recording, SUPERVISOR_HZ, 25.0, end + heard_at + 0.8,
                                end - 0.5) >= 0.9
    refused = center.events.wait_for(type="call_rejected", queue=queue.id)
    assert refused["reason"] == "agent_unavailable"
    ended = wait_until(lambda: [e for e in center.events.matching(type="ivr_ended")
                                if e.get("path") == ["boss", "branch"]], 10, "the IVR's end")
    assert ended[0]["outcome"] == "transferred"

    boss_set = agent_phone(center, phones, tone(AGENT_HZ, LONG), boss)  # now the boss is in
    second = phones("second", tone(CALLER_HZ, LONG))
    second.dial(uri)
    boss_set.wait("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.0)
    second.hangup()
    boss_set.wait("CALL_CLOSED")
    answered = wait_until(lambda: [c for c in center.cdrs(queue) if c["outcome"] == "answered"],
                          10, "the boss's call to be wrapped up")
    assert [c["agent"] for c in answered] == [boss.code]
    calls_out = [e for e in outside.events if e.get("type") == "CALL_ESTABLISHED"]
    assert len(calls_out) == 1  # the second caller went to the boss only
    center.admin.call("DELETE", f"/trunks/{trunk}", expect=204)
    center.wait_media_released()
