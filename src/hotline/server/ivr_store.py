"""IVR configuration as stored: flows (every saved version kept) and prompts (audio rendered
by the TTS engine or uploaded), with the checks both pass before they are stored.

Plain functions on a Session, usable without HTTP (the demo's seeding calls them; the API's
handlers too). They raise ``ApiError`` carrying the same field errors the API returns, write
the audit log, and never commit: the caller commits, then tells the SIP side to reload.
"""

from __future__ import annotations

import io
import re
import threading
import time
import wave
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from hotline.db.schema import (
    AuditEntry,
    BusinessHours,
    EmergencyAnnouncement,
    IvrFlow,
    Prompt,
    Queue,
)
from hotline.ivr.flow import (
    LANGUAGES,
    FlowDefinition,
    FlowError,
    Hours,
    QueueNode,
    parse_flow,
    references,
)
from hotline.media import tts
from hotline.server.problems import ApiError, invalid_fields

RATE = 8000  # prompts are 8 kHz mono 16-bit, as the media engine plays them
MAX_PROMPT_SECONDS = 300.0
MAX_TEXT = 1000
LANGUAGE_NAMES = {"zh": "简体中文", "en": "English"}

# ---------------------------------------------------------------------- shared
_renders = 0
_renders_lock = threading.Lock()


def render_count() -> int:
    """How many times the TTS engine was asked to render since the process started: the
    proof that an unchanged text is served from the database, not rendered again."""
    return _renders


def _render(text: str, language: str) -> npt.NDArray[np.int16]:
    global _renders
    with _renders_lock:
        _renders += 1
    return np.asarray(tts.render(text, language))


def audit_entry(
    db: Session, tenant_id: int, actor: str, action: str, target: str, **detail: object
) -> None:
    """``state.audit`` for callers without a Principal (the demo's seeding names itself)."""
    db.add(
        AuditEntry(
            tenant_id=tenant_id,
            ts=time.time(),
            actor=actor[:64],
            action=action,
            target=target,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )


def pcm_bytes(samples: npt.ArrayLike) -> bytes:
    """Audio as stored: raw 16-bit little-endian mono samples."""
    array = np.asarray(samples).reshape(-1)
    if array.dtype != np.int16:
        array = np.clip(np.rint(array), -32768, 32767).astype(np.int16)
    return array.astype("<i2").tobytes()


def seconds(pcm: bytes | int) -> float:
    """Duration of stored audio (its bytes, or their count)."""
    size = pcm if isinstance(pcm, int) else len(pcm)
    return round(size / (2 * RATE), 3)


def wav_bytes(pcm: bytes) -> bytes:
    """Stored audio as a WAV file (8 kHz 16-bit mono) a person can play back."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return out.getvalue()


def _too_long(pcm: bytes) -> str | None:
    length = seconds(pcm)
    if length > MAX_PROMPT_SECONDS:
        return f"a prompt is at most 5 minutes; this one is {length:.0f} seconds"
    return None


# ---------------------------------------------------------------------- prompts
def prompt_languages(db: Session, tenant_id: int, codes: set[str]) -> dict[str, set[str]]:
    """The languages each of these prompt codes exists in (codes that do not exist: absent)."""
    out: dict[str, set[str]] = {}
    if not codes:
        return out
    rows = db.execute(
        select(Prompt.code, Prompt.language).where(
            Prompt.tenant_id == tenant_id, Prompt.code.in_(sorted(codes))
        )
    )
    for code, language in rows:
        out.setdefault(code, set()).add(language)
    return out


def prompt_missing(languages: set[str] | None, code: str) -> str | None:
    """Why a prompt cannot be used (it must exist in every language), or None."""
    if not languages:
        return f"prompt {code!r} does not exist (create it under /ivr/prompts)"
    missing = [LANGUAGE_NAMES[lang] for lang in LANGUAGES if lang not in languages]
    if missing:
        return f"prompt {code!r} has no {' or '.join(missing)} version"
    return None


def _clean_text(text: str) -> str | None:
    """The text as stored (stripped), or None when it is not acceptable."""
    text = text.strip()
    return text if text and len(text) <= MAX_TEXT else None


def save_prompt(
    db: Session,
    tenant_id: int,
    code: str,
    texts: Mapping[str, str | None],
    actor: str,
    labels: Mapping[Any, str] | None = None,
) -> list[str]:
    """Create or update a prompt spoken by the TTS engine; returns the languages rendered.

    A new prompt needs a text in every language; an existing one keeps the languages left
    out (or None). A language is rendered again only when its text or the engine's voice
    (``tts.engine_id``) changed: the stored audio is the cache. A recording that was uploaded
    is kept as long as the text given is its transcript. Rendering is blocking CPU work: call
    this from a worker thread. Nothing is written before every language has rendered."""
    rows = {
        r.language: r
        for r in db.scalars(
            select(Prompt)
            .where(Prompt.tenant_id == tenant_id, Prompt.code == code)
            .options(defer(Prompt.audio))  # up to 10 MB that this does not need to read
        )
    }
    errors: list[dict[str, str]] = []
    given: dict[str, str] = {}
    for language, text in texts.items():
        if language not in LANGUAGES:
            errors.append({"field": f"body.{language}", "message": "not a language of prompts"})
        elif text is not None:
            cleaned = _clean_text(text)
            if cleaned is None:
                errors.append(
                    {
                        "field": f"body.{language}.text",
                        "message": f"must be 1 to {MAX_TEXT} characters, not only spaces",
                    }
                )
            else:
                given[language] = cleaned
    if not rows:
        for language in LANGUAGES:
            if language not in texts or texts[language] is None:
                errors.append(
                    {
                        "field": f"body.{language}",
                        "message": "required for a new prompt: every prompt exists in "
                        "简体中文 and English",
                    }
                )
    if errors:
        raise invalid_fields(errors)

    todo: dict[str, tuple[str, str]] = {}  # language -> (text, engine)
    for language, text in given.items():
        try:
            engine = tts.engine_id(language)
        except tts.TtsError as err:
            errors.append({"field": f"body.{language}", "message": str(err)})
            continue
        row = rows.get(language)
        if row is not None and row.text == text and (
            row.source == "upload" or row.engine == engine
        ):
            continue
        todo[language] = (text, engine)
    audio: dict[str, bytes] = {}
    for language, (text, _) in todo.items():
        try:
            pcm = pcm_bytes(_render(text, language))
        except tts.TtsError as err:
            errors.append({"field": f"body.{language}", "message": str(err)})
            continue
        problem = "the engine gave no audio" if not pcm else _too_long(pcm)
        if problem is not None:
            errors.append({"field": f"body.{language}", "message": problem})
        audio[language] = pcm
    if errors:
        raise invalid_fields(errors)

    now = time.time()
    old_labels = next(iter(rows.values())).labels if rows else {}
    new_labels = {str(k): v for k, v in labels.items()} if labels is not None else old_labels
    for language, (text, engine) in todo.items():
        row = rows.get(language)
        if row is None:
            row = rows[language] = Prompt(tenant_id=tenant_id, code=code, language=language)
            db.add(row)
        row.source, row.text, row.engine = "tts", text, engine
        row.audio = audio[language]
        row.updated_at, row.updated_by = now, actor
    labels_changed = new_labels != old_labels
    for row in rows.values():
        row.labels = new_labels
    if todo or labels_changed:
        audit_entry(
            db,
            tenant_id,
            actor,
            "prompt.save",
            code,
            rendered=sorted(todo) or None,
            texts={lang: text for lang, (text, _) in sorted(todo.items())} or None,
            labels=new_labels if labels_changed else None,
        )
    return sorted(todo)


def store_upload(
    db: Session,
    tenant_id: int,
    code: str,
    language: str,
    pcm: bytes,
    actor: str,
    text: str | None = None,
) -> Prompt:
    """Replace a language of an existing prompt with a recording (8 kHz int16 samples).
    ``text`` is its transcript; without one, the prompt's text so far is kept as such."""
    row = db.scalar(
        select(Prompt).where(
            Prompt.tenant_id == tenant_id, Prompt.code == code, Prompt.language == language
        )
    )
    if row is None:
        raise ApiError(
            404, "Not Found", f"prompt {code!r} not found (create it with its texts first)"
        )
    problem = "empty audio" if not pcm else _too_long(pcm)
    if problem is not None:
        raise invalid_fields([{"field": "body", "message": problem}])
    if text is not None:
        cleaned = _clean_text(text)
        if cleaned is None:
            raise invalid_fields(
                [{"field": "query.text", "message": f"must be 1 to {MAX_TEXT} characters"}]
            )
        row.text = cleaned
    row.source, row.engine, row.audio = "upload", None, pcm
    row.updated_at, row.updated_by = time.time(), actor
    audit_entry(
        db, tenant_id, actor, "prompt.upload", f"{code}/{language}", seconds=seconds(pcm)
    )
    return row


def prompt_users(db: Session, tenant_id: int, code: str) -> list[str]:
    """What keeps a prompt from being deleted: the flows whose latest version plays it, and
    the enabled emergency announcements."""
    users = [
        f"flow {flow.code}"
        for flow in latest_flows(db, tenant_id)
        if code in flow_prompts(flow.definition)
    ]
    announcements = db.scalars(
        select(EmergencyAnnouncement).where(
            EmergencyAnnouncement.tenant_id == tenant_id,
            EmergencyAnnouncement.prompt == code,
            EmergencyAnnouncement.enabled.is_(True),
        )
    )
    users += [f"the emergency announcement of {a.scope} {a.target}" for a in announcements]
    return users


# ---------------------------------------------------------------------- flows
_EXIT = re.compile(r"^(option|rule) (\S+)$")


def _flow_field(node: str, field: str, prefix: str) -> str:
    """A problem's place as an API field: ``body.definition.nodes.menu.options.3``."""
    if node == "flow":
        return f"{prefix}.{field}" if field else prefix
    exit_ = _EXIT.match(field)
    if exit_ is not None:  # check_graph names exits as the editor shows them
        kind, key = exit_.groups()
        field = f"options.{key}" if kind == "option" else f"rules.{int(key) - 1}"
    path = f"{prefix}.nodes.{node}"
    return f"{path}.{field}" if field else path


def _uses(flow: FlowDefinition, kind: str, code: str) -> list[tuple[str, str]]:
    """Every (node, field) of the flow that names this prompt, queue or calendar."""
    out = []
    for name, node in flow.nodes.items():
        if kind == "prompts":
            if code not in node.prompts():
                continue
            fields = [f for f in type(node).model_fields if "prompt" in f or f == "greeting"]
        elif kind == "queues":
            if not isinstance(node, QueueNode) or node.queue != code:
                continue
            fields = ["queue"]
        else:
            if not isinstance(node, Hours) or node.hours != code:
                continue
            fields = ["hours"]
        field = next((f for f in fields if getattr(node, f, None) == code), "")
        out.append((name, field))
    return out


def check_references(
    db: Session, tenant_id: int, flow: FlowDefinition, prefix: str = "body.definition"
) -> list[dict[str, str]]:
    """The flow's uses of the tenant's configuration that do not exist: prompts (in every
    language), queues and business hours, each named at every node that uses it."""
    refs = references(flow)
    problems: list[tuple[str, str, str]] = []  # kind, code, message
    languages = prompt_languages(db, tenant_id, set(refs["prompts"]))
    for code in refs["prompts"]:
        message = prompt_missing(languages.get(code), code)
        if message is not None:
            problems.append(("prompts", code, message))
    tables = (("queues", Queue, "queue"), ("hours", BusinessHours, "business hours"))
    for kind, table, what in tables:
        wanted = sorted(refs[kind])
        known = (
            set(
                db.scalars(
                    select(table.code).where(  # type: ignore[attr-defined]
                        table.tenant_id == tenant_id,  # type: ignore[attr-defined]
                        table.code.in_(wanted),  # type: ignore[attr-defined]
                    )
                )
            )
            if wanted
            else set()
        )
        problems += [(kind, c, f"unknown {what} {c!r}") for c in wanted if c not in known]
    errors = []
    for kind, code, message in problems:
        for node, field in _uses(flow, kind, code):
            errors.append(
                {"field": _flow_field(node, field, prefix), "node": node, "message": message}
            )
    return errors


def validate_flow(
    db: Session, tenant_id: int, definition: Any, prefix: str = "body.definition"
) -> FlowDefinition:
    """The flow parsed and checked against the tenant, or a 422 naming each bad node."""
    try:
        flow = parse_flow(definition)
    except FlowError as err:
        raise invalid_fields(
            [
                {
                    "field": _flow_field(p["node"], p["field"], prefix),
                    "node": p["node"],
                    "message": p["message"],
                }
                for p in err.problems
            ]
        ) from None
    errors = check_references(db, tenant_id, flow, prefix)
    if errors:
        raise invalid_fields(errors)
    return flow


def latest_flow(db: Session, tenant_id: int, code: str) -> IvrFlow | None:
    return db.scalar(
        select(IvrFlow)
        .where(IvrFlow.tenant_id == tenant_id, IvrFlow.code == code)
        .order_by(IvrFlow.version.desc())
        .limit(1)
    )


def latest_flows(db: Session, tenant_id: int) -> list[IvrFlow]:
    """The latest version of each of the tenant's flows, by code."""
    latest = (
        select(IvrFlow.code, func.max(IvrFlow.version).label("version"))
        .where(IvrFlow.tenant_id == tenant_id)
        .group_by(IvrFlow.code)
        .subquery()
    )
    return list(
        db.scalars(
            select(IvrFlow)
            .join(
                latest, (IvrFlow.code == latest.c.code) & (IvrFlow.version == latest.c.version)
            )
            .where(IvrFlow.tenant_id == tenant_id)
            .order_by(IvrFlow.code)
        )
    )


def flows_using(db: Session, tenant_id: int, kind: str, code: str) -> list[str]:
    """The flows whose latest version uses this queue or calendar (``kind``: "queues" or
    "hours"), as "flow F (node N)": what keeps it from being deleted."""
    users = []
    for row in latest_flows(db, tenant_id):
        try:
            refs = references(FlowDefinition.model_validate(row.definition))
        except ValidationError:
            continue
        node = refs[kind].get(code)
        if node is not None:
            users.append(f"flow {row.code} (node {node})")
    return users


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def flow_prompts(definition: dict[str, Any]) -> set[str]:
    """The prompts a stored flow plays. A definition that no longer parses (a rule tightened
    since it was saved) is taken to play any code it mentions: deleting stays safe."""
    try:
        return set(references(FlowDefinition.model_validate(definition))["prompts"])
    except ValidationError:
        return _strings(definition)


def flow_hours(definition: dict[str, Any]) -> set[str]:
    """The business-hours calendars a stored flow branches on (none for a definition that no
    longer parses: the switch does not run it)."""
    try:
        return set(references(FlowDefinition.model_validate(definition))["hours"])
    except ValidationError:
        return set()


def store_flow(
    db: Session,
    tenant_id: int,
    code: str,
    definition: Any,
    actor: str,
    labels: Mapping[Any, str] | None = None,
    action: str = "ivr_flow.save",
    **detail: object,
) -> IvrFlow:
    """Validate and store a flow as its next version; the latest version when nothing changed
    (the same definition and labels). Audited as ``action`` with the version."""
    flow = validate_flow(db, tenant_id, definition)
    stored = flow.model_dump(mode="json", exclude_defaults=False)
    new_labels = {str(k): v for k, v in (labels or {}).items()}
    latest = latest_flow(db, tenant_id, code)
    if latest is not None and latest.definition == stored and latest.labels == new_labels:
        return latest
    row = IvrFlow(
        tenant_id=tenant_id,
        code=code,
        version=(latest.version if latest is not None else 0) + 1,
        definition=stored,
        labels=new_labels,
        created_at=time.time(),
        created_by=actor,
    )
    db.add(row)
    db.flush()
    audit_entry(db, tenant_id, actor, action, code, version=row.version, **detail)
    return row


def save_flow(
    db: Session,
    tenant_id: int,
    code: str,
    definition: Any,
    actor: str,
    labels: Mapping[Any, str] | None = None,
) -> int:
    """Validate a flow (its shape, its graph, and the prompts, queues and business hours it
    uses) and store it as a new version unless it is unchanged; returns the version."""
    return store_flow(db, tenant_id, code, definition, actor, labels).version
