"""Telephony: agents' SIP phone accounts, trunks, inbound routes, and call recordings.

Passwords are never stored: a phone account or trunk keeps only the digest HA1s for the SIP
realm (RFC 7616), which is all a registrar needs, so changing the realm means setting the
passwords again. A phone registers with only a username and password, and a call arrives
naming only the dialled number: SIP usernames (phones' and trunks' together) and DIDs are
unique across all tenants, and a conflict never says which tenant holds the name.
Every change is committed first, then the SIP side re-reads the directory.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import AfterValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.calls.directory import split_hostport
from hotline.db.schema import (
    Agent,
    CallRecord,
    InboundRoute,
    PhoneAccount,
    Queue,
    Trunk,
    User,
)
from hotline.ivr.flow import Language
from hotline.server.api.config import _agent_row, _one, _row, _unique, telephony_changed
from hotline.server.api.reports import supervised_calls
from hotline.server.catalog import Code, Labels, Model
from hotline.server.ivr_store import latest_flow
from hotline.server.problems import ApiError, forbidden, invalid, not_found
from hotline.server.security import Principal
from hotline.server.state import DB, Admin, Caller, Roles, ServerState, State, Supervisor, audit
from hotline.sip import digest

router = APIRouter()

SIP_USER = r"^[A-Za-z0-9._-]{1,64}$"
SIP_NAME = re.compile(SIP_USER)
SipUser = Annotated[str, Field(pattern=SIP_USER, description="SIP user part")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Did = Annotated[
    str,
    PathParam(
        pattern=r"^[A-Za-z0-9+*#]{1,32}$", description="the dialled number (a SIP user part)"
    ),
]
Listener = Annotated[Principal, Depends(Roles("admin", "qa", "supervisor"))]
MONITORS = {"admin", "supervisor"}  # roles that may listen to, coach or join calls


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network (CIDR)") from None


Cidr = Annotated[str, Field(max_length=64), AfterValidator(_cidr)]


def _hostport(value: str) -> str:
    host, port = split_hostport(value)
    if not re.fullmatch(r"[A-Za-z0-9.:-]+", host):
        raise ValueError(f"{host!r} is not a host name or IP address")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


HostPort = Annotated[str, Field(max_length=255, description="host[:port], UDP; port 5060 "
                                "by default"), AfterValidator(_hostport)]
CallerId = Annotated[str, Field(pattern=r"^\+?[0-9]{1,31}$",
                                description="the number callers out present")]


class PhoneIn(Model):
    username: SipUser | None = None  # default: the agent's extension, else its code
    password: Password


class TrunkIn(Model):
    code: Code
    name: str = Field("", max_length=200)
    allow: list[Cidr] = Field(default_factory=list, max_length=256)
    username: SipUser | None = None
    password: Password | None = None  # on replace, may be left out to keep the same username's
    active: bool = True
    outbound: HostPort | None = Field(
        None, description="where calls out (click-to-call, callbacks) are sent; without it the "
        "trunk only brings calls in")
    caller_id: CallerId | None = None


class RouteIn(Model):
    """Exactly one of ``queue`` and ``flow`` (an IVR flow: calls take its latest version)."""

    queue: Code | None = None
    flow: Code | None = None
    language: Language = Field("zh", description="the language calls start in")
    labels: Labels = Field(default_factory=dict)


def _ha1s(state: ServerState, username: str, password: str) -> tuple[str, str]:
    realm = state.sip_realm
    return (
        digest.ha1("MD5", username, realm, password),
        digest.ha1("SHA-256", username, realm, password),
    )


def _username_free(
    db: Session, username: str, phone: int | None = None, trunk: int | None = None
) -> None:
    """Phones and trunks share one namespace: the SIP side looks a digest username up once."""
    phone_id = db.scalar(select(PhoneAccount.id).where(PhoneAccount.username == username))
    trunk_id = db.scalar(select(Trunk.id).where(Trunk.username == username))
    if (phone_id is not None and phone_id != phone) or (trunk_id is not None and trunk_id != trunk):
        raise ApiError(409, "Conflict", f"SIP username {username!r} is already taken")


# ---------------------------------------------------------------------- phone accounts
def _registrations(state: ServerState, usernames: list[str]) -> dict[str, list[dict[str, Any]]]:
    telephony = state.telephony
    if telephony is None or not usernames:
        return {u: [] for u in usernames}
    # Asked on the event loop, where the registrar keeps its bindings.
    return anyio.from_thread.run_sync(lambda: {u: telephony.phone_status(u) for u in usernames})


def _phones_out(state: ServerState, rows: list[PhoneAccount]) -> list[dict[str, Any]]:
    status = _registrations(state, [r.username for r in rows])
    return [
        {
            "agent": r.agent,
            "user": r.user,
            "username": r.username,
            "realm": state.sip_realm,
            "registered": bool(status[r.username]),
            "registrations": status[r.username],
        }
        for r in rows
    ]


def _phone_row(db: Session, tenant_id: int, agent: str) -> PhoneAccount | None:
    return db.scalar(
        select(PhoneAccount).where(PhoneAccount.tenant_id == tenant_id, PhoneAccount.agent == agent)
    )


def _sees_agent(caller: Principal, agent: Agent) -> None:
    """Admins see every agent's phone, supervisors those of their teams, a user its own."""
    if caller.role == "admin" or caller.agent == agent.code:
        return
    if caller.role == "supervisor":
        if agent.team is None or agent.team not in caller.teams:
            raise forbidden(f"agent {agent.code!r} is not in your teams")
        return
    if caller.role == "agent":
        raise forbidden("agents see only their own phone")
    raise forbidden()


@router.put("/agents/{code}/phone", tags=["telephony"])
def set_phone(code: str, body: PhoneIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    """Create or replace the agent's phone account (a new password each time)."""
    agent = _agent_row(db, caller.tenant_id, code)
    username = body.username or agent.extension or agent.code
    if SIP_NAME.fullmatch(username) is None:  # an extension may hold '*', '#' or '+'
        raise invalid("body.username", f"extension {username!r} is not a SIP username: give one")
    row = _phone_row(db, caller.tenant_id, code)
    return _save_phone(db, state, caller, row, username, body.password, "phone", code,
                       agent=code)


def _save_phone(db: Session, state: ServerState, caller: Principal, row: PhoneAccount | None,
                username: str, password: str, tag: str, target: str,
                **owner: str) -> dict[str, Any]:
    """Create or replace a phone account (``owner``: agent= or user=) with a new password."""
    _username_free(db, username, phone=row.id if row else None)
    md5, sha256 = _ha1s(state, username, password)
    now = time.time()
    if row is None:
        row = PhoneAccount(tenant_id=caller.tenant_id, created_at=now, **owner)
        db.add(row)
        action = f"{tag}.create"
    else:
        action = f"{tag}.update"
    row.username, row.ha1_md5, row.ha1_sha256, row.updated_at = username, md5, sha256, now
    audit(db, caller, action, target, username=username)
    db.commit()
    telephony_changed(state)
    return _phones_out(state, [row])[0]


@router.get("/agents/{code}/phone", tags=["telephony"])
def get_phone(code: str, caller: Caller, db: DB, state: State) -> dict[str, Any]:
    agent = _agent_row(db, caller.tenant_id, code)
    _sees_agent(caller, agent)
    row = _phone_row(db, caller.tenant_id, code)
    if row is None:
        raise not_found(f"phone account of agent {code!r}")
    return _phones_out(state, [row])[0]


@router.delete("/agents/{code}/phone", status_code=204, tags=["telephony"])
def delete_phone(code: str, caller: Admin, db: DB, state: State) -> None:
    _agent_row(db, caller.tenant_id, code)
    _delete_phone(db, state, caller, _phone_row(db, caller.tenant_id, code), "phone", code,
                  f"agent {code!r}")


def _delete_phone(db: Session, state: ServerState, caller: Principal, row: PhoneAccount | None,
                  tag: str, target: str, whose: str) -> None:
    if row is None:
        raise not_found(f"phone account of {whose}")
    db.delete(row)
    audit(db, caller, f"{tag}.delete", target, username=row.username)
    db.commit()
    telephony_changed(state)


def _user_row(db: Session, tenant_id: int, username: str) -> User:
    user = db.scalar(select(User).where(User.tenant_id == tenant_id, User.username == username))
    if user is None:
        raise not_found(f"user {username!r}")
    return user


def _user_phone_row(db: Session, tenant_id: int, username: str) -> PhoneAccount | None:
    return db.scalar(select(PhoneAccount).where(PhoneAccount.tenant_id == tenant_id,
                                                PhoneAccount.user == username))


@router.put("/users/{username}/phone", tags=["telephony"])
def set_user_phone(username: str, body: PhoneIn, caller: Admin, db: DB,
                   state: State) -> dict[str, Any]:
    """A supervisor's (or admin's) own phone: the one Hotline calls when they listen to,
    coach, join or take over a call."""
    user = _user_row(db, caller.tenant_id, username)
    if user.role not in MONITORS:
        raise invalid("path.username", f"a {user.role} does not monitor calls: only "
                      f"{' and '.join(sorted(MONITORS))} have monitoring phones")
    sip_user = body.username or username
    if SIP_NAME.fullmatch(sip_user) is None:
        raise invalid("body.username", f"{sip_user!r} is not a SIP username: give one")
    row = _user_phone_row(db, caller.tenant_id, username)
    return _save_phone(db, state, caller, row, sip_user, body.password, "user_phone", username,
                       user=username)


@router.get("/users/{username}/phone", tags=["telephony"])
def get_user_phone(username: str, caller: Caller, db: DB, state: State) -> dict[str, Any]:
    if caller.role != "admin" and caller.username != username:
        raise forbidden("only admins see other users' phones")
    _user_row(db, caller.tenant_id, username)
    row = _user_phone_row(db, caller.tenant_id, username)
    if row is None:
        raise not_found(f"phone account of user {username!r}")
    return _phones_out(state, [row])[0]


@router.delete("/users/{username}/phone", status_code=204, tags=["telephony"])
def delete_user_phone(username: str, caller: Admin, db: DB, state: State) -> None:
    _user_row(db, caller.tenant_id, username)
    _delete_phone(db, state, caller, _user_phone_row(db, caller.tenant_id, username),
                  "user_phone", username, f"user {username!r}")


@router.get("/phones", tags=["telephony"])
def list_phones(caller: Supervisor, db: DB, state: State) -> list[dict[str, Any]]:
    """Every phone account and whether it is registered (supervisors: their teams' agents)."""
    query = select(PhoneAccount).where(PhoneAccount.tenant_id == caller.tenant_id)
    if caller.role == "supervisor":
        query = query.where(
            PhoneAccount.agent.in_(
                select(Agent.code).where(
                    Agent.tenant_id == caller.tenant_id, Agent.team.in_(sorted(caller.teams))
                )
            )
        )
    return _phones_out(state, list(db.scalars(query.order_by(PhoneAccount.agent))))


# ---------------------------------------------------------------------- trunks
def _trunk_out(t: Trunk) -> dict[str, Any]:
    kinds = [k for k, used in (("ip", bool(t.allow)), ("digest", t.username is not None)) if used]
    return {
        "code": t.code,
        "name": t.name,
        "allow": t.allow,
        "username": t.username,
        "auth": "+".join(kinds),
        "active": t.active,
        "outbound": t.outbound,
        "caller_id": t.caller_id,
        "created_at": t.created_at,
    }


def _trunk_row(db: Session, tenant_id: int, code: str) -> Trunk:
    return _one(db, Trunk, tenant_id, code, "trunk")  # type: ignore[no-any-return]


def _save_trunk(
    db: Session, state: ServerState, caller: Principal, body: TrunkIn, row: Trunk | None
) -> dict[str, Any]:
    if body.password is not None and body.username is None:
        raise invalid("body.username", "a password needs a username")
    if not body.allow and body.username is None and body.outbound is None:
        raise invalid(
            "body.allow", "give the addresses the trunk sends from, a username and password, "
            "or where calls out go (outbound)"
        )
    # The HA1s hash the username in: only an unchanged username keeps its password.
    if (
        body.username is not None
        and body.password is None
        and (row is None or row.username != body.username)
    ):
        raise invalid("body.password", "required with a new username")
    if body.username is not None:
        _username_free(db, body.username, trunk=row.id if row else None)
    if row is None:
        row = Trunk(tenant_id=caller.tenant_id, code=body.code, created_at=time.time())
        db.add(row)
        action = "trunk.create"
    else:
        action = "trunk.update"
    row.name = body.name
    row.allow = list(dict.fromkeys(body.allow))
    row.active = body.active
    row.outbound, row.caller_id = body.outbound, body.caller_id
    if body.username is None:
        row.username = row.ha1_md5 = row.ha1_sha256 = None
    elif body.password is not None:
        row.username = body.username
        row.ha1_md5, row.ha1_sha256 = _ha1s(state, body.username, body.password)
    audit(
        db,
        caller,
        action,
        body.code,
        name=body.name,
        allow=row.allow,
        username=body.username,
        active=body.active,
        outbound=body.outbound,
        caller_id=body.caller_id,
        password_changed=True if body.password is not None else None,
    )
    db.commit()
    telephony_changed(state)
    return _trunk_out(row)


@router.get("/trunks", tags=["telephony"])
def list_trunks(caller: Admin, db: DB) -> list[dict[str, Any]]:
    rows = db.scalars(select(Trunk).where(Trunk.tenant_id == caller.tenant_id).order_by(Trunk.code))
    return [_trunk_out(t) for t in rows]


@router.post("/trunks", status_code=201, tags=["telephony"])
def create_trunk(body: TrunkIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    _unique(db, Trunk, caller.tenant_id, body.code, "trunk")
    return _save_trunk(db, state, caller, body, None)


@router.get("/trunks/{code}", tags=["telephony"])
def get_trunk(code: str, caller: Admin, db: DB) -> dict[str, Any]:
    return _trunk_out(_trunk_row(db, caller.tenant_id, code))


@router.put("/trunks/{code}", tags=["telephony"])
def replace_trunk(code: str, body: TrunkIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    """Replace a trunk; leaving out the password keeps it when the username stays the same."""
    if body.code != code:
        raise invalid("body.code", "must match the trunk in the path")
    return _save_trunk(db, state, caller, body, _trunk_row(db, caller.tenant_id, code))


@router.delete("/trunks/{code}", status_code=204, tags=["telephony"])
def delete_trunk(code: str, caller: Admin, db: DB, state: State) -> None:
    db.delete(_trunk_row(db, caller.tenant_id, code))
    audit(db, caller, "trunk.delete", code)
    db.commit()
    telephony_changed(state)


# ---------------------------------------------------------------------- inbound routes
def _route_out(r: InboundRoute) -> dict[str, Any]:
    return {
        "did": r.did,
        "queue": r.queue,
        "flow": r.flow,
        "language": r.language,
        "labels": r.labels,
        "created_at": r.created_at,
    }


def _route_row(db: Session, tenant_id: int, did: str) -> InboundRoute:
    row = db.scalar(
        select(InboundRoute).where(InboundRoute.tenant_id == tenant_id, InboundRoute.did == did)
    )
    if row is None:
        raise not_found(f"route {did!r}")
    return row


@router.get("/routes", tags=["telephony"])
def list_routes(caller: Supervisor, db: DB) -> list[dict[str, Any]]:
    rows = db.scalars(
        select(InboundRoute)
        .where(InboundRoute.tenant_id == caller.tenant_id)
        .order_by(InboundRoute.did)
    )
    return [_route_out(r) for r in rows]


@router.get("/routes/{did}", tags=["telephony"])
def get_route(did: Did, caller: Supervisor, db: DB) -> dict[str, Any]:
    return _route_out(_route_row(db, caller.tenant_id, did))


@router.put("/routes/{did}", tags=["telephony"])
def set_route(did: Did, body: RouteIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    """Send the calls to this number to a queue or an IVR flow of the tenant (creates or
    replaces)."""
    if body.queue is None and body.flow is None:
        raise invalid("body.queue", "give the queue or the IVR flow (flow) that takes the calls")
    if body.queue is not None and body.flow is not None:
        raise invalid("body.flow", "a number goes to a queue or to an IVR flow, not both")
    if body.queue is not None and _row(db, Queue, caller.tenant_id, body.queue) is None:
        raise invalid("body.queue", f"unknown queue {body.queue!r}")
    if body.flow is not None and latest_flow(db, caller.tenant_id, body.flow) is None:
        raise invalid("body.flow", f"unknown IVR flow {body.flow!r}")
    row = db.scalar(select(InboundRoute).where(InboundRoute.did == did))
    if row is not None and row.tenant_id != caller.tenant_id:
        raise ApiError(409, "Conflict", f"number {did!r} is already routed elsewhere")
    if row is None:
        row = InboundRoute(tenant_id=caller.tenant_id, did=did, created_at=time.time())
        db.add(row)
        action = "route.create"
    else:
        action = "route.update"
    row.queue, row.flow, row.language = body.queue, body.flow, body.language
    row.labels = {str(k): v for k, v in body.labels.items()}
    audit(db, caller, action, did, queue=body.queue, flow=body.flow, language=body.language)
    db.commit()
    telephony_changed(state)
    return _route_out(row)


@router.delete("/routes/{did}", status_code=204, tags=["telephony"])
def delete_route(did: Did, caller: Admin, db: DB, state: State) -> None:
    db.delete(_route_row(db, caller.tenant_id, did))
    audit(db, caller, "route.delete", did)
    db.commit()
    telephony_changed(state)


# ---------------------------------------------------------------------- recordings
def _recording_file(root: Path | None, name: str | None) -> Path | None:
    """The recording's file, if it exists inside the recordings directory (a stored name that
    climbs out with ``..``, is absolute or follows a link outside, gets nothing)."""
    if root is None or not name:
        return None
    try:
        base = root.resolve()
        path = (base / name).resolve()
        if path.is_relative_to(base) and path.is_file():
            return path
    except (OSError, ValueError):  # ValueError: a NUL in the name
        pass
    return None


@router.get(
    "/calls/{call_id}/recording",
    tags=["telephony"],
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "the call's recording"}},
)
def call_recording(call_id: str, caller: Listener, db: DB, state: State) -> FileResponse:
    """The call's recording, as WAV (admins, QA; supervisors: calls of their queues and
    teams). Agents cannot listen to recordings."""
    query = select(CallRecord).where(
        CallRecord.tenant_id == caller.tenant_id, CallRecord.call_id == call_id
    )
    if caller.role == "supervisor":
        query = query.where(supervised_calls(caller))
    cdr = db.scalar(query)
    if cdr is None:
        raise not_found(f"call {call_id!r}")
    path = _recording_file(state.recordings, cdr.recording)
    if path is None:
        raise not_found(f"recording of call {call_id!r}")
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=f"{call_id}.wav",
        headers={"Cache-Control": "private, no-store"},
    )
