"""IVR configuration through the HTTP API, as administrators, supervisors and the SIP side rely
on it: flows (versioned, checked against the tenant's prompts, queues and calendars), prompts
(spoken by the real TTS engine, or uploaded as WAV), emergency announcements, routes to a flow,
and the voicemails callers leave; with their role and tenant rules, and the migration that adds
them. Every test runs against a real server app in process, on SQLite and on PostgreSQL.

The SIP side is the stand-in of test_telephony_api: it counts its reloads."""

from __future__ import annotations

import io
import json
import math
import struct
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from hotline.db.database import open_database
from hotline.db.schema import (
    Base,
    EmergencyAnnouncement,
    InboundRoute,
    IvrFlow,
    Prompt,
    StoredEvent,
)
from hotline.server import ivr_store
from hotline.server.problems import ApiError
from test_server_api import (
    Actor,
    Center,
    Server,
    invalid,
    new_tenant,
    ok,
    problem,
)
from test_telephony_api import (  # the server with its SIP stand-in, and cheap hashing
    alembic,
    cheap_hashing,  # noqa: F401 - an autouse fixture
    hotline,
    rows,
    server,  # noqa: F401 - a fixture
    sip,
    tenant_id,
    write_wav,
)

WELCOME = {"zh": "您好，欢迎致电。", "en": "Hello, and thank you for calling."}


@pytest.fixture
def center(server: Server) -> Center:  # noqa: F811 - the imported fixture
    """The acme tenant of test_server_api, with a business-hours calendar ``office``."""
    c = Center(server)
    office = {"code": "office", "weekly": {"mon": [["08:00", "20:00"]]}}
    ok(c.admin.post("/business-hours", json=office), 201)
    return c


# ---------------------------------------------------------------------- helpers
def tone(seconds: float, rate: int = 8000, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def add_prompt(center: Center, code: str, languages: tuple[str, ...] = ("zh", "en")) -> None:
    """A prompt stored as the API would store an upload (no TTS: for tests about flows)."""
    with hotline(center).sessions() as db:
        for language in languages:
            db.add(
                Prompt(
                    tenant_id=tenant_id(center, "acme"),
                    code=code,
                    language=language,
                    source="upload",
                    text=None,
                    audio=ivr_store.pcm_bytes(tone(0.5)),
                    engine=None,
                    labels={},
                    updated_at=time.time(),
                    updated_by="test",
                )
            )
        db.commit()


def flow(**changes: Any) -> dict[str, Any]:
    """A small valid flow: office hours, a menu (1 sales, 2 English), the queue, a goodbye."""
    nodes: dict[str, Any] = {
        "hours": {"type": "hours", "hours": "office", "open": "main_menu", "closed": "closed"},
        "main_menu": {
            "type": "menu",
            "prompt": "welcome",
            "options": {"1": "sales", "2": "english"},
            "on_failure": "sales",
        },
        "english": {"type": "set", "values": {"language": "en"}, "next": "main_menu"},
        "sales": {"type": "queue", "queue": "sales", "greeting": "hold"},
        "closed": {"type": "hangup", "prompt": "closed"},
    }
    for name, node in changes.items():
        if node is None:
            del nodes[name]
        else:
            nodes[name] = {**nodes.get(name, {}), **node}
    return {"start": "hours", "nodes": nodes}


def with_prompts(center: Center) -> None:
    for code in ("welcome", "hold", "closed"):
        add_prompt(center, code)


def wav_file(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def read_wav(data: bytes) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(data), "rb") as w:
        assert w.getsampwidth() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), frames


def upload(who: Actor, code: str, language: str, data: bytes, **kw: Any) -> Any:
    headers = {"Content-Type": kw.pop("content_type", "audio/wav")}
    return who.put(f"/ivr/prompts/{code}/{language}/audio", content=data, headers=headers, **kw)


def audit_of(center: Center, prefix: str) -> list[dict[str, Any]]:
    return [e for e in center.audit() if e["action"].startswith(prefix)]


# ---------------------------------------------------------------------- flows
def test_flows_are_versioned_and_restored(center: Center) -> None:
    admin, side = center.admin, sip(center)
    with_prompts(center)
    labels = {"zh-CN": "主菜单", "en": "Main menu"}
    reloads = side.reloads
    v1 = ok(admin.put("/ivr/flows/main", json={"definition": flow(), "labels": labels}))
    assert (v1["code"], v1["version"], v1["labels"], v1["created_by"]) == (
        "main", 1, labels, "boss"
    )
    # Stored complete, defaults included, as the engine will read it.
    assert v1["definition"]["nodes"]["main_menu"]["retries"] == 2
    assert v1["definition"]["max_steps"] == 200
    assert side.reloads == reloads + 1

    # The same again adds no version (and does not reload the switch).
    again = ok(admin.put("/ivr/flows/main", json={"definition": flow(), "labels": labels}))
    assert again == v1
    assert side.reloads == reloads + 1
    # Defaults written out are the same definition.
    ok(admin.put("/ivr/flows/main", json={"definition": v1["definition"], "labels": labels}))
    assert len(rows(center, IvrFlow)) == 1

    changed = flow(main_menu={"retries": 3})
    v2 = ok(admin.put("/ivr/flows/main", json={"definition": changed, "labels": labels}))
    assert v2["version"] == 2 and v2["definition"]["nodes"]["main_menu"]["retries"] == 3
    # A change of labels only is a version too.
    v3 = ok(admin.put("/ivr/flows/main", json={"definition": changed}))
    assert (v3["version"], v3["labels"]) == (3, {})

    v4 = ok(admin.post("/ivr/flows/main/restore/1"))
    assert v4["version"] == 4
    assert (v4["definition"], v4["labels"]) == (v1["definition"], labels)
    assert side.reloads == reloads + 4
    # Restoring what is already current adds nothing.
    assert ok(admin.post("/ivr/flows/main/restore/4"))["version"] == 4
    problem(admin.post("/ivr/flows/main/restore/9"), 404)
    problem(admin.post("/ivr/flows/nope/restore/1"), 404)

    assert ok(admin.get("/ivr/flows/main"))["version"] == 4
    old = ok(admin.get("/ivr/flows/main", params={"version": 2}))
    assert (old["version"], old["definition"]) == (2, v2["definition"])
    problem(admin.get("/ivr/flows/main", params={"version": 5}), 404)
    versions = ok(admin.get("/ivr/flows/main/versions"))
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert all("definition" not in v for v in versions)
    problem(admin.get("/ivr/flows/nope/versions"), 404)

    other = flow(hours=None) | {"start": "main_menu"}
    ok(admin.put("/ivr/flows/other", json={"definition": other}))
    listed = ok(admin.get("/ivr/flows"))
    assert [(f["code"], f["version"], f["routes"]) for f in listed] == [
        ("main", 4, []),
        ("other", 1, []),
    ]
    assert "definition" not in listed[0] and listed[0]["labels"] == labels

    saves = [
        (e["action"], e["target"], e["detail"].get("version"), e["detail"].get("restored"))
        for e in audit_of(center, "ivr_flow.")
    ]
    assert saves == [
        ("ivr_flow.save", "other", 1, None),
        ("ivr_flow.restore", "main", 4, 1),
        ("ivr_flow.save", "main", 3, None),
        ("ivr_flow.save", "main", 2, None),
        ("ivr_flow.save", "main", 1, None),
    ]

    # The platform admin acts in the tenant by naming it.
    platform = center.server.acting_in("acme")
    assert ok(platform.put("/ivr/flows/main", json={"definition": changed}))["version"] == 5
    assert ok(admin.get("/ivr/flows/main"))["created_by"] == "platform/admin"

    ok(admin.delete("/ivr/flows/other"), 204)
    problem(admin.get("/ivr/flows/other"), 404)
    problem(admin.delete("/ivr/flows/other"), 404)
    assert audit_of(center, "ivr_flow.")[0]["action"] == "ivr_flow.delete"
    assert {r["code"] for r in rows(center, IvrFlow)} == {"main"}


def test_an_invalid_flow_names_its_nodes(center: Center) -> None:
    admin = center.admin
    with_prompts(center)

    def put(definition: dict[str, Any]) -> Any:
        return admin.put("/ivr/flows/main", json={"definition": definition})

    # A menu option leading nowhere.
    body = invalid(
        put(flow(main_menu={"options": {"1": "sales", "3": "nowhere"}})),
        "body.definition.nodes.main_menu.options.3",
    )
    (error,) = body["errors"]
    assert error["node"] == "main_menu" and "nowhere" in error["message"]
    # A prompt that does not exist, a queue, a calendar: each named where it is used.
    body = invalid(
        put(flow(main_menu={"prompt": "nope"})), "body.definition.nodes.main_menu.prompt"
    )
    assert "'nope'" in body["errors"][0]["message"]
    invalid(put(flow(sales={"queue": "nope"})), "body.definition.nodes.sales.queue")
    invalid(put(flow(hours={"hours": "nope"})), "body.definition.nodes.hours.hours")
    # Every problem at once, one error per node using a missing prompt.
    two = flow(
        main_menu={"prompt": "nope", "invalid_prompt": "nope2"},
        closed={"prompt": "nope"},
        sales={"queue": "gone"},
    )
    fields = {e["field"] for e in problem(put(two), 422)["errors"]}
    assert fields == {
        "body.definition.nodes.main_menu.prompt",
        "body.definition.nodes.main_menu.invalid_prompt",
        "body.definition.nodes.closed.prompt",
        "body.definition.nodes.sales.queue",
    }
    # A prompt must exist in both languages.
    add_prompt(center, "zh_only", ("zh",))
    body = invalid(put(flow(closed={"prompt": "zh_only"})), "body.definition.nodes.closed.prompt")
    assert "English" in body["detail"]
    # Shape errors (pydantic) and graph errors name the node too.
    invalid(put(flow(main_menu={"on_failure": None})), "body.definition.nodes.main_menu.on_failure")
    invalid(put(flow(sales={"type": "nope"})), "body.definition.nodes.sales")
    invalid(put({**flow(), "start": "nowhere"}), "body.definition.start")
    invalid(put({"start": "x", "nodes": {}}), "body.definition.nodes")
    loop = flow(english={"next": "english2"}, english2={"type": "set", "values": {"a": "1"},
                                                         "next": "english"})
    invalid(put(loop), "body.definition.nodes.english")
    invalid(admin.put("/ivr/flows/main", json={"definition": flow(), "extra": 1}), "body.extra")
    invalid(admin.put("/ivr/flows/bad code", json={"definition": flow()}), "path.code")
    # Nothing was stored.
    problem(admin.get("/ivr/flows/main"), 404)
    assert rows(center, IvrFlow) == []


# ---------------------------------------------------------------------- prompts
def test_prompts_are_rendered_once_per_text(center: Center) -> None:
    admin, sup, side = center.admin, center.sup, sip(center)
    # A new prompt needs both languages.
    only_zh = {"zh": {"text": WELCOME["zh"]}}
    body = invalid(admin.put("/ivr/prompts/welcome", json=only_zh), "body.en")
    assert "English" in body["detail"]
    invalid(admin.put("/ivr/prompts/welcome", json={}), "body.zh")
    invalid(
        admin.put("/ivr/prompts/welcome", json={"zh": {"text": "  "}, "en": {"text": "x"}}),
        "body.zh.text",
    )
    long = {"zh": {"text": "长" * 1001}, "en": {"text": "x"}}
    invalid(admin.put("/ivr/prompts/welcome", json=long), "body.zh.text")
    invalid(admin.put("/ivr/prompts/welcome", json={**long, "fr": {"text": "x"}}), "body.fr")
    assert rows(center, Prompt) == []

    renders, reloads = ivr_store.render_count(), side.reloads
    labels = {"zh-CN": "欢迎语", "en": "Welcome"}
    texts = {lang: {"text": f" {t} "} for lang, t in WELCOME.items()}
    created = ok(admin.put("/ivr/prompts/welcome", json={**texts, "labels": labels}))
    assert ivr_store.render_count() == renders + 2
    assert side.reloads == reloads + 1
    assert (created["code"], created["labels"]) == ("welcome", labels)
    for language in ("zh", "en"):
        part = created[language]
        assert (part["source"], part["text"]) == ("tts", WELCOME[language])
        assert part["updated_by"] == "boss"
        assert part["engine"]
        # A short sentence, spoken: more than half a second, less than half a minute.
        assert 0.5 < part["seconds"] < 30, part
        r = sup.get(f"/ivr/prompts/welcome/{language}/audio")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        rate, channels, samples = read_wav(r.content)
        assert (rate, channels) == (8000, 1)
        assert len(samples) / 8000 == pytest.approx(part["seconds"], abs=0.001)
        assert np.sqrt(np.mean(samples.astype(float) ** 2)) > 100  # speech, not silence

    # The same texts again: nothing is rendered, nothing changes.
    same = ok(admin.put("/ivr/prompts/welcome", json=texts))
    assert same == created
    assert ivr_store.render_count() == renders + 2 and side.reloads == reloads + 1
    stored = {r["language"]: r for r in rows(center, Prompt)}

    # A changed text is rendered again, that language only; a language left out is kept.
    new_en = "Welcome to the hotline."
    changed = ok(admin.put("/ivr/prompts/welcome", json={"en": {"text": new_en}}))
    assert ivr_store.render_count() == renders + 3 and side.reloads == reloads + 2
    assert changed["zh"] == created["zh"] and changed["labels"] == labels
    assert changed["en"]["text"] == new_en
    assert changed["en"]["updated_at"] > created["en"]["updated_at"]
    after = {r["language"]: r for r in rows(center, Prompt)}
    assert after["zh"]["audio"] == stored["zh"]["audio"]
    assert after["en"]["audio"] != stored["en"]["audio"]
    # Labels alone change no audio.
    relabelled = ok(admin.put("/ivr/prompts/welcome", json={"labels": {"en": "Hello"}}))
    assert relabelled["labels"] == {"en": "Hello"}
    assert ivr_store.render_count() == renders + 3

    assert [p["code"] for p in ok(sup.get("/ivr/prompts"))] == ["welcome"]
    assert ok(sup.get("/ivr/prompts/welcome")) == relabelled
    problem(sup.get("/ivr/prompts/nope"), 404)
    problem(sup.get("/ivr/prompts/nope/zh/audio"), 404)
    problem(admin.get("/ivr/prompts/welcome/fr/audio"), 422)
    saves = [(e["target"], e["detail"].get("rendered")) for e in audit_of(center, "prompt.")]
    assert saves == [("welcome", None), ("welcome", ["en"]), ("welcome", ["en", "zh"])]


def test_an_uploaded_recording_is_stored_at_8_khz(center: Center) -> None:
    admin, side = center.admin, sip(center)
    add_prompt(center, "hold")
    before = {r["language"]: r for r in rows(center, Prompt)}
    reloads = side.reloads

    # 1.5 s of 44.1 kHz stereo (a tone on the left, silence on the right).
    left = tone(1.5, rate=44100)
    stereo = np.column_stack([left, np.zeros_like(left)]).reshape(-1)
    r = upload(admin, "hold", "en", wav_file(stereo, 44100, 2), params={"text": "Please hold."})
    body = ok(r)
    assert (body["en"]["source"], body["en"]["text"], body["en"]["engine"]) == (
        "upload", "Please hold.", None
    )
    assert body["en"]["seconds"] == pytest.approx(1.5, abs=0.01)
    assert body["zh"] == ok(admin.get("/ivr/prompts/hold"))["zh"]
    assert side.reloads == reloads + 1
    rate, channels, samples = read_wav(admin.get("/ivr/prompts/hold/en/audio").content)
    assert (rate, channels) == (8000, 1)
    assert len(samples) / 8000 == pytest.approx(1.5, abs=0.01)
    # The channels were averaged: the tone at half its level.
    assert np.abs(samples).max() == pytest.approx(4000, rel=0.05)
    uploaded = ok(admin.get("/ivr/prompts/hold"))

    # Audio that is not usable changes nothing, and says why.
    for bad, why in (
        (b"not a wav file at all", "not a RIFF/WAVE file"),
        (wav_file(tone(0.5), 8000)[:60], "truncated"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x55\x00\x01\x00"
         + struct.pack("<IIHH", 8000, 1000, 1, 0), "MPEG Layer 3"),
        (b"", "not a RIFF/WAVE file"),
    ):
        body = invalid(upload(admin, "hold", "en", bad), "body")
        assert why in body["detail"], body
    # Longer than 5 minutes (a header check: 6 minutes of 8-bit audio at 1 kHz).
    six_minutes = 6 * 60 * 1000
    data = (
        b"RIFF" + struct.pack("<I", 36 + six_minutes) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 1000, 1000, 1, 8)
        + b"data" + struct.pack("<I", six_minutes) + b"\x80" * six_minutes
    )
    assert "5 minutes" in invalid(upload(admin, "hold", "zh", data), "body")["detail"]
    problem(upload(admin, "hold", "en", wav_file(tone(1), 8000), content_type="audio/mpeg"), 415)
    problem(upload(admin, "hold", "en", b"x" * (20 * 1024 * 1024 + 1)), 413)
    assert ok(admin.get("/ivr/prompts/hold")) == uploaded
    assert side.reloads == reloads + 1
    after = {r["language"]: r for r in rows(center, Prompt)}
    assert after["zh"] == before["zh"]
    # audio/x-wav is a WAV too, and so is one sent as bytes; no ?text= keeps the transcript.
    one_second = wav_file(tone(1), 8000)
    ok(upload(admin, "hold", "zh", one_second, content_type="application/octet-stream"))
    two_seconds = wav_file(tone(2, rate=16000), 16000)
    body = ok(upload(admin, "hold", "en", two_seconds, content_type="audio/x-wav"))
    assert body["en"]["seconds"] == pytest.approx(2, abs=0.01)
    assert body["en"]["text"] == "Please hold."

    # A prompt must exist before a recording replaces one of its languages.
    problem(upload(admin, "nope", "en", wav_file(tone(1), 8000)), 404)
    problem(upload(admin, "hold", "fr", wav_file(tone(1), 8000)), 422)
    uploads = [(e["target"], e["detail"]["seconds"]) for e in audit_of(center, "prompt.upload")]
    assert uploads == [("hold/en", 2.0), ("hold/zh", 1.0), ("hold/en", 1.5)]


def test_a_recording_stays_until_its_text_changes(center: Center) -> None:
    """Saving the same texts again (the demo's seeding does, on every start) keeps an uploaded
    recording whose transcript they are; a new text is spoken by the engine instead."""
    admin = center.admin
    ok(admin.put("/ivr/prompts/welcome", json={k: {"text": v} for k, v in WELCOME.items()}))
    ok(upload(admin, "welcome", "zh", wav_file(tone(3), 8000)))
    renders = ivr_store.render_count()
    same = ok(admin.put("/ivr/prompts/welcome", json={"zh": {"text": WELCOME["zh"]}}))
    assert (same["zh"]["source"], same["zh"]["seconds"]) == ("upload", 3.0)
    assert ivr_store.render_count() == renders
    new = ok(admin.put("/ivr/prompts/welcome", json={"zh": {"text": "您好。"}}))
    assert (new["zh"]["source"], new["zh"]["text"]) == ("tts", "您好。")
    assert new["zh"]["seconds"] != 3.0 and ivr_store.render_count() == renders + 1


def test_a_prompt_in_use_cannot_be_deleted(center: Center) -> None:
    admin = center.admin
    with_prompts(center)
    add_prompt(center, "old")
    ok(admin.put("/ivr/flows/main", json={"definition": flow(closed={"prompt": "old"})}))
    ok(admin.put("/ivr/flows/main", json={"definition": flow()}))
    body = problem(admin.delete("/ivr/prompts/hold"), 409)
    assert "flow main" in body["detail"]
    # Only the latest version counts: "old" was played by version 1 only.
    ok(admin.delete("/ivr/prompts/old"), 204)
    problem(admin.get("/ivr/prompts/old"), 404)
    problem(admin.delete("/ivr/prompts/old"), 404)
    # ... so restoring version 1 now fails, naming the node.
    invalid(admin.post("/ivr/flows/main/restore/1"), "body.definition.nodes.closed.prompt")

    add_prompt(center, "storm")
    ok(admin.put("/ivr/emergency/queue/sales", json={"prompt": "storm", "enabled": True}))
    assert "emergency" in problem(admin.delete("/ivr/prompts/storm"), 409)["detail"]
    ok(admin.put("/ivr/emergency/queue/sales", json={"enabled": False}))
    ok(admin.delete("/ivr/prompts/storm"), 204)
    assert {r["code"] for r in rows(center, Prompt)} == {"welcome", "hold", "closed"}
    assert audit_of(center, "prompt.")[0]["action"] == "prompt.delete"


# ---------------------------------------------------------------------- routes
def test_a_number_can_go_to_a_flow(center: Center) -> None:
    admin, side = center.admin, sip(center)
    with_prompts(center)
    ok(admin.put("/ivr/flows/main", json={"definition": flow()}))
    did = "4008001234"
    body = ok(admin.put(f"/routes/{did}", json={"flow": "main", "language": "en"}))
    assert (body["queue"], body["flow"], body["language"]) == (None, "main", "en")
    assert ok(admin.get(f"/routes/{did}")) == body
    stored = next(r for r in rows(center, InboundRoute) if r["did"] == did)
    assert (stored["queue"], stored["flow"], stored["language"]) == (None, "main", "en")
    assert did in side.routes
    queue_route = ok(admin.put("/routes/4008005678", json={"queue": "sales"}))
    assert (queue_route["flow"], queue_route["language"]) == (None, "zh")

    invalid(admin.put(f"/routes/{did}", json={"flow": "main", "queue": "sales"}), "body.flow")
    invalid(admin.put(f"/routes/{did}", json={"language": "en"}), "body.queue")
    invalid(admin.put(f"/routes/{did}", json={"flow": "nope"}), "body.flow")
    invalid(admin.put(f"/routes/{did}", json={"flow": "main", "language": "fr"}), "body.language")
    assert ok(admin.get(f"/routes/{did}")) == body

    assert ok(admin.get("/ivr/flows"))[0]["routes"] == [did]
    assert ok(admin.get("/ivr/flows/main"))["routes"] == [did]
    assert did in problem(admin.delete("/ivr/flows/main"), 409)["detail"]
    back = ok(admin.put(f"/routes/{did}", json={"queue": "support"}))
    assert (back["queue"], back["flow"], back["language"]) == ("support", None, "zh")
    ok(admin.delete("/ivr/flows/main"), 204)
    detail = [e["detail"] for e in audit_of(center, "route.")]
    assert detail[-1] == {"flow": "main", "language": "en"}
    assert detail[0] == {"queue": "support", "language": "zh"}


# ---------------------------------------------------------------------- emergency
def test_emergency_announcements_by_supervisors_of_the_queue(center: Center) -> None:
    admin, sup, side = center.admin, center.sup, sip(center)
    add_prompt(center, "storm")
    ok(admin.put("/routes/4008001234", json={"queue": "vip"}))
    reloads = side.reloads

    # sup supervises sales and support, not vip.
    on = ok(sup.put("/ivr/emergency/queue/sales", json={"prompt": "storm", "enabled": True}))
    assert (on["scope"], on["target"], on["prompt"], on["enabled"], on["updated_by"]) == (
        "queue", "sales", "storm", True, "sup"
    )
    assert side.reloads == reloads + 1
    problem(sup.put("/ivr/emergency/queue/vip", json={"prompt": "storm", "enabled": True}), 403)
    # Any number of the tenant.
    ok(sup.put("/ivr/emergency/did/4008001234", json={"prompt": "storm", "enabled": True}))
    ok(admin.put("/ivr/emergency/queue/vip", json={"prompt": "storm", "enabled": True}))
    # Off again, keeping its prompt.
    off = ok(sup.put("/ivr/emergency/queue/sales", json={"enabled": False}))
    assert (off["prompt"], off["enabled"]) == ("storm", False)

    invalid(sup.put("/ivr/emergency/did/4009999999", json={"prompt": "storm", "enabled": True}),
            "path.target")
    invalid(admin.put("/ivr/emergency/queue/nope", json={"prompt": "storm", "enabled": True}),
            "path.target")
    invalid(admin.put("/ivr/emergency/queue/sales", json={"prompt": "nope", "enabled": True}),
            "body.prompt")
    add_prompt(center, "zh_only", ("zh",))
    invalid(admin.put("/ivr/emergency/queue/sales", json={"prompt": "zh_only", "enabled": True}),
            "body.prompt")
    invalid(admin.put("/ivr/emergency/queue/support", json={"enabled": True}), "body.prompt")
    invalid(admin.put("/ivr/emergency/queue/sales", json={"prompt": "storm"}), "body.enabled")
    problem(admin.put("/ivr/emergency/team/red", json={"prompt": "storm", "enabled": True}), 422)

    listed = ok(sup.get("/ivr/emergency"))
    assert [(e["scope"], e["target"], e["enabled"]) for e in listed] == [
        ("did", "4008001234", True),
        ("queue", "sales", False),
        ("queue", "vip", True),
    ]
    assert ok(admin.get("/ivr/emergency")) == listed
    entries = [
        (e["actor"], e["action"], e["target"], e["detail"]["prompt"])
        for e in audit_of(center, "emergency.")
    ]
    assert entries == [
        ("sup", "emergency.disable", "queue/sales", "storm"),
        ("boss", "emergency.enable", "queue/vip", "storm"),
        ("sup", "emergency.enable", "did/4008001234", "storm"),
        ("sup", "emergency.enable", "queue/sales", "storm"),
    ]
    assert len(rows(center, EmergencyAnnouncement)) == 3
    for who in (center.qa, center.planner, center.alice):
        problem(who.put("/ivr/emergency/queue/sales", json={"enabled": False}), 403)
        problem(who.get("/ivr/emergency"), 403)


# ---------------------------------------------------------------------- voicemails
def add_voicemail(
    center: Center, slug: str, call: str, mailbox: str, recording: str, t: float, **data: Any
) -> int:
    """A voicemail_left event as the switch stores it. Its seq is far above the live store's,
    which keeps its own count of the tenant's events."""
    tid = tenant_id(center, slug)
    with hotline(center).sessions() as db:
        seq = 1_000_000 + (db.scalar(
            select(func.count()).select_from(StoredEvent).where(StoredEvent.tenant_id == tid)
        ) or 0)
        event = {"type": "voicemail_left", "t": t, "call": call, "mailbox": mailbox,
                 "recording": recording, "duration": 4.5, **data}
        db.add(StoredEvent(tenant_id=tid, seq=seq, ts=t, type="voicemail_left", call_id=call,
                           data=json.dumps(event)))
        db.commit()
    return seq


def test_voicemails_are_listed_and_played(center: Center, tmp_path: Path) -> None:
    admin, state = center.admin, hotline(center)
    assert state.recordings is not None
    audio = write_wav(state.recordings / "voicemail" / "vm-1.wav")
    write_wav(state.recordings / "voicemail" / "vm-2.wav", seconds=0.2)
    now = time.time()
    first = add_voicemail(center, "acme", "c1", "sales", "voicemail/vm-1.wav", now - 3600,
                          number="13800000000", language="zh")
    second = add_voicemail(center, "acme", "c2", "support", "voicemail/vm-2.wav", now - 60,
                           language="en")
    listed = ok(admin.get("/ivr/voicemails"))
    assert [v["id"] for v in listed] == [second, first]
    assert listed[1] == {
        "id": first,
        "call": "c1",
        "mailbox": "sales",
        "number": "13800000000",
        "duration": 4.5,
        "language": "zh",
        "at": now - 3600,
        "recording": f"/api/v1/ivr/voicemails/{first}/audio",
    }
    assert listed[0]["number"] is None
    assert [v["call"] for v in ok(admin.get("/ivr/voicemails", params={"mailbox": "sales"}))] == [
        "c1"
    ]
    assert ok(admin.get("/ivr/voicemails", params={"mailbox": "nope"})) == []
    assert [v["call"] for v in ok(admin.get("/ivr/voicemails", params={"limit": 1}))] == ["c2"]
    since = {"since": str(now - 600)}
    assert [v["call"] for v in ok(admin.get("/ivr/voicemails", params=since))] == ["c2"]
    until = {"until": str(now - 600)}
    assert [v["call"] for v in ok(admin.get("/ivr/voicemails", params=until))] == ["c1"]
    invalid(admin.get("/ivr/voicemails", params={"since": "soon"}), "query.since")

    for who in (admin, center.sup, center.qa, center.server.acting_in("acme")):
        r = who.get(f"/ivr/voicemails/{first}/audio")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/wav" and r.content == audio
    assert len(ok(center.qa.get("/ivr/voicemails"))) == 2
    # a supervisor hears only the messages for their own queues (sales, support here)
    other = add_voicemail(center, "acme", "c3", "billing", "voicemail/vm-2.wav", now - 30)
    assert other in {v["id"] for v in ok(admin.get("/ivr/voicemails"))}
    assert other not in {v["id"] for v in ok(center.sup.get("/ivr/voicemails"))}
    problem(center.sup.get(f"/ivr/voicemails/{other}/audio"), 404)
    assert len(ok(center.qa.get("/ivr/voicemails"))) == 3
    for who in (center.alice, center.bob, center.planner):
        problem(who.get("/ivr/voicemails"), 403)
        problem(who.get(f"/ivr/voicemails/{first}/audio"), 403)
    problem(admin.get("/ivr/voicemails/999/audio"), 404)
    # Another kind of event is no voicemail.
    with state.sessions() as db:
        seq = db.scalar(
            select(func.min(StoredEvent.seq)).where(
                StoredEvent.tenant_id == tenant_id(center, "acme"),
                StoredEvent.type != "voicemail_left",
            )
        )
    if seq is not None:
        problem(admin.get(f"/ivr/voicemails/{seq}/audio"), 404)

    # A recording name never reaches outside the recordings directory.
    secret = tmp_path / "outside.wav"
    write_wav(secret, seconds=0.3)
    (state.recordings / "link.wav").symlink_to(secret)
    crafted = ["../outside.wav", "voicemail/../../outside.wav", str(secret), "link.wav",
               "voicemail", "missing.wav"]
    for i, name in enumerate(crafted):
        seq = add_voicemail(center, "acme", f"x{i}", "sales", name, now)
        r = admin.get(f"/ivr/voicemails/{seq}/audio")
        problem(r, 404)
        assert secret.read_bytes() not in r.content


# ---------------------------------------------------------------------- roles and tenants
def test_agents_and_other_roles_are_refused(center: Center) -> None:
    admin = center.admin
    with_prompts(center)
    ok(admin.put("/ivr/flows/main", json={"definition": flow()}))
    seq = add_voicemail(center, "acme", "c1", "sales", "vm.wav", time.time())
    wav = wav_file(tone(1), 8000)
    for who in (center.alice, center.bob):
        for r in (
            who.put("/ivr/flows/main", json={"definition": flow()}),
            who.get("/ivr/flows"),
            who.get("/ivr/flows/main"),
            who.get("/ivr/flows/main/versions"),
            who.post("/ivr/flows/main/restore/1"),
            who.delete("/ivr/flows/main"),
            who.put("/ivr/prompts/hold", json={"en": {"text": "x"}}),
            upload(who, "hold", "en", wav),
            who.get("/ivr/prompts"),
            who.get("/ivr/prompts/hold"),
            who.get("/ivr/prompts/hold/en/audio"),
            who.delete("/ivr/prompts/hold"),
            who.put("/ivr/emergency/queue/sales", json={"prompt": "hold", "enabled": True}),
            who.get("/ivr/emergency"),
            who.get("/ivr/voicemails"),
            who.get(f"/ivr/voicemails/{seq}/audio"),
        ):
            problem(r, 403)
    # Supervisors and QA read prompts, only admins change flows and prompts.
    for who in (center.sup, center.qa):
        problem(who.put("/ivr/flows/main", json={"definition": flow()}), 403)
        problem(who.get("/ivr/flows"), 403)
        problem(who.put("/ivr/prompts/hold", json={"en": {"text": "x"}}), 403)
        problem(upload(who, "hold", "en", wav), 403)
        problem(who.delete("/ivr/prompts/hold"), 403)
    assert center.sup.get("/ivr/prompts/hold/en/audio").status_code == 200
    problem(center.qa.get("/ivr/prompts"), 403)
    assert len(rows(center, IvrFlow)) == 1 and len(rows(center, Prompt)) == 6


def test_tenants_see_only_their_own(center: Center) -> None:
    admin = center.admin
    with_prompts(center)
    ok(admin.put("/ivr/flows/main", json={"definition": flow()}))
    seq = add_voicemail(center, "acme", "c1", "sales", "vm.wav", time.time())
    write_wav(hotline(center).recordings / "vm.wav")  # type: ignore[operator]
    ok(admin.put("/routes/4008001234", json={"flow": "main"}))
    ok(admin.put("/ivr/emergency/queue/sales", json={"prompt": "hold", "enabled": True}))

    other = new_tenant(center.server, "globex")
    problem(other.get("/ivr/flows/main"), 404)
    problem(other.get("/ivr/flows/main/versions"), 404)
    problem(other.post("/ivr/flows/main/restore/1"), 404)
    problem(other.delete("/ivr/flows/main"), 404)
    problem(other.get("/ivr/prompts/hold"), 404)
    problem(other.get("/ivr/prompts/hold/en/audio"), 404)
    problem(other.delete("/ivr/prompts/hold"), 404)
    problem(upload(other, "hold", "en", wav_file(tone(1), 8000)), 404)
    problem(other.get(f"/ivr/voicemails/{seq}/audio"), 404)
    for path in ("/ivr/flows", "/ivr/prompts", "/ivr/emergency", "/ivr/voicemails"):
        assert ok(other.get(path)) == []
    # Another tenant's prompts, queues and numbers do not exist here.
    ok(other.post("/queues", json={"id": "main"}), 201)
    definition = {"start": "q", "nodes": {"q": {"type": "queue", "queue": "main",
                                                "greeting": "hold"}}}
    invalid(other.put("/ivr/flows/main", json={"definition": definition}),
            "body.definition.nodes.q.greeting")
    invalid(other.put("/routes/4008005678", json={"flow": "main"}), "body.flow")
    invalid(other.put("/ivr/emergency/did/4008001234", json={"enabled": False}), "path.target")
    # Codes are per tenant.
    globex = tenant_id(center, "globex")
    ok(other.put("/ivr/prompts/hold", json={k: {"text": v} for k, v in WELCOME.items()}))
    assert ok(other.put("/ivr/flows/main", json={"definition": definition}))["version"] == 1
    assert ok(admin.get("/ivr/flows/main"))["definition"]["start"] == "hours"
    assert {r["tenant_id"] for r in rows(center, Prompt) if r["code"] == "hold"} == {
        tenant_id(center, "acme"), globex
    }
    # A deleted tenant's IVR goes with it.
    ok(center.server.platform.delete("/tenants/globex"), 204)
    for table in (IvrFlow, Prompt):
        assert {r["tenant_id"] for r in rows(center, table)} == {tenant_id(center, "acme")}


# ---------------------------------------------------------------------- without HTTP
def test_the_functions_the_demo_seeds_with(center: Center) -> None:
    state, tid = hotline(center), tenant_id(center, "acme")
    with state.sessions() as db:
        rendered = ivr_store.save_prompt(db, tid, "welcome", WELCOME, "seed")
        assert rendered == ["en", "zh"]
        assert ivr_store.save_prompt(db, tid, "welcome", WELCOME, "seed") == []
        with pytest.raises(ApiError) as refused:
            ivr_store.save_flow(db, tid, "main", flow(), "seed")
        fields = {e["field"] for e in refused.value.extra["errors"]}
        assert fields == {"body.definition.nodes.sales.greeting",
                          "body.definition.nodes.closed.prompt"}
        definition = flow(sales={"greeting": "welcome"}, closed={"prompt": "welcome"})
        assert ivr_store.save_flow(db, tid, "main", definition, "seed", {"en": "Main"}) == 1
        assert ivr_store.save_flow(db, tid, "main", definition, "seed", {"en": "Main"}) == 1
        db.commit()
    assert ok(center.admin.get("/ivr/flows/main"))["created_by"] == "seed"
    assert [e["actor"] for e in audit_of(center, "ivr_flow.")] == ["seed"]


# ---------------------------------------------------------------------- migration
def test_the_ivr_migration_upgrades_a_database_in_use(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        alembic(engine, "upgrade", "0003")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO tenants (slug, name, settings, created_at) VALUES ('t', 't', '{}', 1)"
            ))
            conn.execute(text(
                "INSERT INTO inbound_routes (tenant_id, did, queue, labels, created_at)"
                " VALUES (1, '4008001234', 'sales', '{}', 1.0)"
            ))
        alembic(engine, "upgrade", "head")
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT did, queue, flow, language FROM inbound_routes")
            ).all() == [("4008001234", "sales", None, "zh")]
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        # A route has a queue or a flow, never both nor neither.
        for queue, flow_ in (("'sales'", "'main'"), ("NULL", "NULL")):
            with pytest.raises(Exception, match=r"(?i)check"), engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO inbound_routes (tenant_id, did, queue, flow, language, labels,"
                    f" created_at) VALUES (1, '1', {queue}, {flow_}, 'zh', '{{}}', 1.0)"
                ))
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO inbound_routes (tenant_id, did, flow, labels, created_at)"
                " VALUES (1, '4008005678', 'main', '{}', 1.0)"
            ))
        names = {i["name"] for i in inspect(engine).get_indexes("events")}
        assert "ix_events_tenant_voicemails" in names
        alembic(engine, "downgrade", "0003")
        tables = set(inspect(engine).get_table_names())
        assert not {"ivr_flows", "prompts", "emergency_announcements"} & tables
        columns = {c["name"] for c in inspect(engine).get_columns("inbound_routes")}
        assert not {"flow", "language"} & columns
        with engine.connect() as conn:
            # The route to a flow had nowhere to go back to.
            assert conn.execute(text("SELECT did, queue FROM inbound_routes")).all() == [
                ("4008001234", "sales")
            ]
        alembic(engine, "upgrade", "head")
    finally:
        engine.dispose()


def test_prompt_durations_are_checked() -> None:
    assert ivr_store.seconds(16000) == 1.0
    assert ivr_store.seconds(ivr_store.pcm_bytes(tone(2.5))) == 2.5
    rate, channels, samples = read_wav(ivr_store.wav_bytes(ivr_store.pcm_bytes(tone(0.25))))
    assert (rate, channels, len(samples)) == (8000, 1, 2000)
    assert math.isclose(float(np.abs(samples).max()), 8000, rel_tol=0.01)
