"""IVR: flows (versioned), prompts (TTS or uploaded recordings), emergency announcements and
the voicemails callers leave.

Flows and prompts are checked and stored by ``hotline.server.ivr_store`` (shared with the
demo's seeding); these handlers add roles, tenants, commits and the SIP side's reload. Every
change is committed first, then the SIP side re-reads what callers meet.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import Field
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from hotline.db.schema import (
    VOICEMAIL_WHERE,
    EmergencyAnnouncement,
    InboundRoute,
    IvrFlow,
    Prompt,
    Queue,
    StoredEvent,
)
from hotline.ivr.flow import LANGUAGES, Language
from hotline.media.wav import PromptError, load_prompt
from hotline.server import ivr_store
from hotline.server.api.config import _row, telephony_changed
from hotline.server.api.reports import _when
from hotline.server.api.telephony import Listener, _recording_file
from hotline.server.catalog import Code, Labels, Model, check_text
from hotline.server.problems import ApiError, forbidden, invalid, invalid_fields, not_found
from hotline.server.security import Principal
from hotline.server.state import DB, Admin, ServerState, State, Supervisor, audit

router = APIRouter(tags=["ivr"])

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CodePath = Annotated[str, PathParam(pattern=CODE)]
Version = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
# What uploads of a WAV file are sent as (a browser's Blob of unknown type: octet-stream); the
# content decides, read by the prompt loader.
WAV_TYPES = ("audio/wav", "audio/x-wav", "application/octet-stream")
MAX_UPLOAD = 20 * 1024 * 1024


# ---------------------------------------------------------------------- flows
class FlowIn(Model):
    definition: dict[str, Any] = Field(
        description="the flow: start, nodes, lists, max_steps (see hotline.ivr.flow)"
    )
    labels: Labels = Field(default_factory=dict)


def _flow_out(row: IvrFlow, definition: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"code": row.code, "version": row.version}
    if definition:
        out["definition"] = row.definition
    out.update(labels=row.labels, created_at=row.created_at, created_by=row.created_by)
    return out


def _flow_routes(db: Session, tenant_id: int, code: str | None = None) -> dict[str, list[str]]:
    """flow code -> the numbers routed to it."""
    query = select(InboundRoute.flow, InboundRoute.did).where(
        InboundRoute.tenant_id == tenant_id, InboundRoute.flow.is_not(None)
    )
    if code is not None:
        query = query.where(InboundRoute.flow == code)
    out: dict[str, list[str]] = {}
    for flow, did in db.execute(query.order_by(InboundRoute.did)):
        out.setdefault(str(flow), []).append(did)
    return out


def _latest(db: Session, tenant_id: int, code: str) -> IvrFlow:
    row = ivr_store.latest_flow(db, tenant_id, code)
    if row is None:
        raise not_found(f"IVR flow {code!r}")
    return row


def _flow_saved(
    db: Session, state: ServerState, row: IvrFlow, version_before: int | None
) -> dict[str, Any]:
    db.commit()
    if row.version != version_before:
        telephony_changed(state)
    return _flow_out(row)


@router.put("/ivr/flows/{code}")
def save_flow(code: CodePath, body: FlowIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    """Check a flow (its graph, and that every prompt it plays exists in both languages, every
    queue and business-hours calendar it names exists) and store it as a new version; saving
    it unchanged adds none. Calls already in the IVR finish on the version they started."""
    before = ivr_store.latest_flow(db, caller.tenant_id, code)
    row = ivr_store.store_flow(
        db, caller.tenant_id, code, body.definition, caller.username, body.labels
    )
    return _flow_saved(db, state, row, before.version if before else None)


@router.get("/ivr/flows")
def list_flows(caller: Admin, db: DB) -> list[dict[str, Any]]:
    """Each flow's latest version (without its definition) and the numbers routed to it."""
    routes = _flow_routes(db, caller.tenant_id)
    return [
        {**_flow_out(row, definition=False), "routes": routes.get(row.code, [])}
        for row in ivr_store.latest_flows(db, caller.tenant_id)
    ]


def _version(db: Session, tenant_id: int, code: str, version: int) -> IvrFlow:
    found = db.scalar(
        select(IvrFlow).where(
            IvrFlow.tenant_id == tenant_id, IvrFlow.code == code, IvrFlow.version == version
        )
    )
    if found is None:
        raise not_found(f"version {version} of IVR flow {code!r}")
    return found


@router.get("/ivr/flows/{code}")
def get_flow(
    code: CodePath,
    caller: Admin,
    db: DB,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """The latest version, or ``?version=N``."""
    if version is None:
        row = _latest(db, caller.tenant_id, code)
    else:
        row = _version(db, caller.tenant_id, code, version)
    return {**_flow_out(row), "routes": _flow_routes(db, caller.tenant_id, code).get(code, [])}


@router.get("/ivr/flows/{code}/versions")
def flow_versions(code: CodePath, caller: Admin, db: DB) -> list[dict[str, Any]]:
    """Every version, newest first, without definitions."""
    rows = list(
        db.scalars(
            select(IvrFlow)
            .where(IvrFlow.tenant_id == caller.tenant_id, IvrFlow.code == code)
            .order_by(IvrFlow.version.desc())
        )
    )
    if not rows:
        raise not_found(f"IVR flow {code!r}")
    return [_flow_out(r, definition=False) for r in rows]


@router.post("/ivr/flows/{code}/restore/{version}")
def restore_flow(
    code: CodePath, version: Version, caller: Admin, db: DB, state: State
) -> dict[str, Any]:
    """Make an older version current again, as a new version (checked again: a prompt or
    queue it used may be gone since)."""
    old = _version(db, caller.tenant_id, code, version)
    before = _latest(db, caller.tenant_id, code)
    row = ivr_store.store_flow(
        db,
        caller.tenant_id,
        code,
        old.definition,
        caller.username,
        old.labels,
        action="ivr_flow.restore",
        restored=version,
    )
    return _flow_saved(db, state, row, before.version)


@router.delete("/ivr/flows/{code}", status_code=204)
def delete_flow(code: CodePath, caller: Admin, db: DB, state: State) -> None:
    """Delete a flow and all its versions; not while a number is routed to it."""
    latest = _latest(db, caller.tenant_id, code)
    dids = _flow_routes(db, caller.tenant_id, code).get(code, [])
    if dids:
        raise ApiError(
            409,
            "Conflict",
            f"IVR flow {code!r} takes the calls to {', '.join(dids)}: change those routes first",
        )
    db.execute(
        delete(IvrFlow).where(IvrFlow.tenant_id == caller.tenant_id, IvrFlow.code == code)
    )
    audit(db, caller, "ivr_flow.delete", code, version=latest.version)
    db.commit()
    telephony_changed(state)


# ---------------------------------------------------------------------- prompts
class PromptText(Model):
    text: str = Field(max_length=ivr_store.MAX_TEXT, description="what the TTS engine says")


class PromptIn(Model):
    """Texts per language: both to create a prompt; on update, a language left out keeps
    what it has (its text, or its uploaded recording)."""

    zh: PromptText | None = None
    en: PromptText | None = None
    labels: Labels | None = None


_PROMPT_COLUMNS = (
    Prompt.code,
    Prompt.language,
    Prompt.source,
    Prompt.text,
    Prompt.engine,
    Prompt.labels,
    Prompt.updated_at,
    Prompt.updated_by,
    func.length(Prompt.audio).label("size"),
)


def _prompts_out(db: Session, tenant_id: int, code: str | None = None) -> list[dict[str, Any]]:
    """Prompts with, per language, where the audio came from and how long it is (the audio
    itself stays in the database)."""
    query = select(*_PROMPT_COLUMNS).where(Prompt.tenant_id == tenant_id)
    if code is not None:
        query = query.where(Prompt.code == code)
    out: dict[str, dict[str, Any]] = {}
    for r in db.execute(query.order_by(Prompt.code, Prompt.language)):
        item = out.setdefault(r.code, {"code": r.code, "labels": r.labels})
        item[r.language] = {
            "source": r.source,
            "text": r.text,
            "seconds": ivr_store.seconds(int(r.size or 0)),
            "engine": r.engine,
            "updated_at": r.updated_at,
            "updated_by": r.updated_by,
        }
    for item in out.values():
        for language in LANGUAGES:
            item.setdefault(language, None)
    return list(out.values())


def _prompt_out(db: Session, tenant_id: int, code: str) -> dict[str, Any]:
    found = _prompts_out(db, tenant_id, code)
    if not found:
        raise not_found(f"prompt {code!r}")
    return found[0]


@router.put("/ivr/prompts/{code}")
def save_prompt(
    code: CodePath, body: PromptIn, caller: Admin, db: DB, state: State
) -> dict[str, Any]:
    """Create or update a prompt spoken by the TTS engine. Only a language whose text (or the
    engine's voice) changed is rendered again; rendering takes seconds."""
    texts = {
        language: part.text
        for language, part in (("zh", body.zh), ("en", body.en))
        if part is not None
    }
    rendered = ivr_store.save_prompt(
        db, caller.tenant_id, code, texts, caller.username, body.labels
    )
    db.commit()
    if rendered:  # labels are the editors', callers hear no difference
        telephony_changed(state)
    return _prompt_out(db, caller.tenant_id, code)


def _upload(
    state: ServerState,
    caller: Principal,
    code: str,
    language: str,
    data: bytes,
    transcript: str | None,
) -> dict[str, Any]:
    """The upload's CPU and database work, on a worker thread."""
    try:
        check_text(transcript)
    except ValueError as err:
        raise invalid("query.text", str(err)) from None
    with state.sessions() as db:
        exists = db.scalar(
            select(Prompt.id).where(
                Prompt.tenant_id == caller.tenant_id,
                Prompt.code == code,
                Prompt.language == language,
            )
        )
        if exists is None:
            raise not_found(f"prompt {code!r}")
        try:
            samples = load_prompt(data, max_minutes=ivr_store.MAX_PROMPT_SECONDS / 60)
        except PromptError as err:
            raise invalid_fields([{"field": "body", "message": str(err)}]) from None
        ivr_store.store_upload(
            db,
            caller.tenant_id,
            code,
            language,
            ivr_store.pcm_bytes(samples),
            caller.username,
            transcript,
        )
        db.commit()
        telephony_changed(state)
        return _prompt_out(db, caller.tenant_id, code)


@router.put(
    "/ivr/prompts/{code}/{language}/audio",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in WAV_TYPES},
        }
    },
)
async def upload_prompt_audio(
    code: CodePath,
    language: Language,
    request: Request,
    caller: Admin,
    state: State,
    text_: Annotated[
        str | None,
        Query(alias="text", max_length=ivr_store.MAX_TEXT, description="its transcript"),
    ] = None,
) -> dict[str, Any]:
    """Replace one language of a prompt with a recording: a WAV file of any common format
    (resampled to 8 kHz mono), at most 5 minutes and 20 MB, sent as the raw body (audio/wav).
    Bad audio changes nothing."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in WAV_TYPES:
        raise ApiError(415, "Unsupported Media Type", "send the WAV file itself, as audio/wav")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise ApiError(413, "Content Too Large", "a prompt's WAV file is at most 20 MB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise ApiError(413, "Content Too Large", "a prompt's WAV file is at most 20 MB")
        chunks.append(chunk)
    return await run_in_threadpool(
        _upload, state, caller, code, language, b"".join(chunks), text_
    )


@router.get("/ivr/prompts")
def list_prompts(caller: Supervisor, db: DB) -> list[dict[str, Any]]:
    return _prompts_out(db, caller.tenant_id)


@router.get("/ivr/prompts/{code}")
def get_prompt(code: CodePath, caller: Supervisor, db: DB) -> dict[str, Any]:
    return _prompt_out(db, caller.tenant_id, code)


@router.get(
    "/ivr/prompts/{code}/{language}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}, "description": "the prompt as WAV"}},
)
def prompt_audio(code: CodePath, language: Language, caller: Supervisor, db: DB) -> Response:
    """The prompt as callers hear it: 8 kHz 16-bit mono WAV."""
    audio = db.scalar(
        select(Prompt.audio).where(
            Prompt.tenant_id == caller.tenant_id,
            Prompt.code == code,
            Prompt.language == language,
        )
    )
    if audio is None:
        raise not_found(f"prompt {code!r}")
    return Response(
        ivr_store.wav_bytes(audio),
        media_type="audio/wav",
        headers={
            "Content-Disposition": f'inline; filename="{code}-{language}.wav"',
            "Cache-Control": "private, no-store",
        },
    )


@router.delete("/ivr/prompts/{code}", status_code=204)
def delete_prompt(code: CodePath, caller: Admin, db: DB, state: State) -> None:
    """Delete a prompt in every language; not while a flow's latest version or an enabled
    emergency announcement plays it."""
    _prompt_out(db, caller.tenant_id, code)
    users = ivr_store.prompt_users(db, caller.tenant_id, code)
    if users:
        raise ApiError(409, "Conflict", f"prompt {code!r} is played by {', '.join(users)}")
    db.execute(delete(Prompt).where(Prompt.tenant_id == caller.tenant_id, Prompt.code == code))
    audit(db, caller, "prompt.delete", code)
    db.commit()
    telephony_changed(state)


# ---------------------------------------------------------------------- emergency announcements
Scope = Literal["did", "queue"]
Target = Annotated[
    str,
    PathParam(
        pattern=r"^[A-Za-z0-9+*#][A-Za-z0-9_.+*#-]{0,63}$",
        description="the dialled number, or the queue's code",
    ),
]


class EmergencyIn(Model):
    prompt: Code | None = Field(None, description="required to enable")
    enabled: bool


def _emergency_out(row: EmergencyAnnouncement) -> dict[str, Any]:
    return {
        "scope": row.scope,
        "target": row.target,
        "prompt": row.prompt,
        "enabled": row.enabled,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
    }


@router.put("/ivr/emergency/{scope}/{target}")
def set_emergency(
    scope: Scope, target: Target, body: EmergencyIn, caller: Supervisor, db: DB, state: State
) -> dict[str, Any]:
    """Play a prompt to every caller of a number or a queue (or stop). Supervisors may do it
    for the queues they supervise and for any number of the tenant."""
    if scope == "queue":
        if caller.role == "supervisor" and target not in caller.queues:
            raise forbidden(f"queue {target!r} is not one of your queues")
        if _row(db, Queue, caller.tenant_id, target) is None:
            raise invalid("path.target", f"unknown queue {target!r}")
    else:
        routed = db.scalar(
            select(InboundRoute.id).where(
                InboundRoute.tenant_id == caller.tenant_id, InboundRoute.did == target
            )
        )
        if routed is None:
            raise invalid("path.target", f"number {target!r} is not routed")
    row = db.scalar(
        select(EmergencyAnnouncement).where(
            EmergencyAnnouncement.tenant_id == caller.tenant_id,
            EmergencyAnnouncement.scope == scope,
            EmergencyAnnouncement.target == target,
        )
    )
    prompt = body.prompt if body.prompt is not None else (row.prompt if row else None)
    if prompt is None:
        raise invalid("body.prompt", "name the prompt to play")
    if body.prompt is not None or body.enabled:
        languages = ivr_store.prompt_languages(db, caller.tenant_id, {prompt})
        missing = ivr_store.prompt_missing(languages.get(prompt), prompt)
        if missing is not None:
            raise invalid("body.prompt", missing)
    if row is None:
        row = EmergencyAnnouncement(tenant_id=caller.tenant_id, scope=scope, target=target)
        db.add(row)
    row.prompt, row.enabled = prompt, body.enabled
    row.updated_at, row.updated_by = time.time(), caller.username
    action = "emergency.enable" if body.enabled else "emergency.disable"
    audit(db, caller, action, f"{scope}/{target}", scope=scope, prompt=prompt)
    db.commit()
    telephony_changed(state)
    return _emergency_out(row)


@router.get("/ivr/emergency")
def list_emergency(caller: Supervisor, db: DB) -> list[dict[str, Any]]:
    rows = db.scalars(
        select(EmergencyAnnouncement)
        .where(EmergencyAnnouncement.tenant_id == caller.tenant_id)
        .order_by(EmergencyAnnouncement.scope, EmergencyAnnouncement.target)
    )
    return [_emergency_out(r) for r in rows]


# ---------------------------------------------------------------------- voicemails
def _voicemails(tenant_id: int) -> Any:
    # The literal condition lets both databases use the partial index of voicemails.
    return select(StoredEvent.seq, StoredEvent.ts, StoredEvent.data).where(
        StoredEvent.tenant_id == tenant_id, text(VOICEMAIL_WHERE)
    )


def _hears_mailbox(caller: Principal, mailbox: Any) -> bool:
    """Supervisors hear the messages left for their queues, as with call recordings."""
    return caller.role != "supervisor" or mailbox in caller.queues


@router.get("/ivr/voicemails")
def list_voicemails(
    request: Request,
    caller: Listener,
    db: DB,
    mailbox: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 or Unix seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Messages callers left, newest first (admins, supervisors, QA)."""
    query = _voicemails(caller.tenant_id)
    if since is not None:
        query = query.where(StoredEvent.ts >= _when(since, "since"))
    if until is not None:
        query = query.where(StoredEvent.ts < _when(until, "until"))
    out: list[dict[str, Any]] = []
    newest = query.order_by(StoredEvent.ts.desc(), StoredEvent.seq.desc())
    result = db.execute(newest.execution_options(yield_per=500))
    for seq, ts, data in result:
        event = json.loads(data)
        if mailbox is not None and event.get("mailbox") != mailbox:
            continue
        if not _hears_mailbox(caller, event.get("mailbox")):
            continue
        out.append(
            {
                "id": seq,
                "call": event.get("call"),
                "mailbox": event.get("mailbox"),
                "number": event.get("number"),
                "duration": event.get("duration"),
                "language": event.get("language"),
                "at": event.get("t", ts),
                "recording": request.app.url_path_for("voicemail_audio", seq=str(seq))
                if event.get("recording")
                else None,
            }
        )
        if len(out) >= limit:
            break
    result.close()
    return out


@router.get(
    "/ivr/voicemails/{seq}/audio",
    name="voicemail_audio",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "the message"}},
)
def voicemail_audio(
    seq: Annotated[int, PathParam(ge=1, le=2**62)], caller: Listener, db: DB, state: State
) -> FileResponse:
    """The message as WAV; only ever a file inside the recordings directory."""
    data = db.scalar(
        _voicemails(caller.tenant_id).with_only_columns(StoredEvent.data).where(
            StoredEvent.seq == seq
        )
    )
    if data is None or not _hears_mailbox(caller, json.loads(data).get("mailbox")):
        raise not_found(f"voicemail {seq}")
    name = json.loads(data).get("recording")
    path = _recording_file(state.recordings, name if isinstance(name, str) else None)
    if path is None:
        raise not_found(f"recording of voicemail {seq}")
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=f"voicemail-{seq}.wav",
        headers={"Cache-Control": "private, no-store"},
    )
