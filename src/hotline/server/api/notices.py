"""Notices: a supervisor's message to the agents on the floor ("system X is down, tell callers
we will call back"), to everyone or to some teams. Stored, pushed on the CTI stream at once
(type ``notice``) and listed by ``GET /notices`` for a desktop that opens later, until it
expires or its author withdraws it."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy import select

from hotline.db.schema import Notice
from hotline.server.api.control import _tenant
from hotline.server.catalog import Code, Model
from hotline.server.problems import forbidden, invalid, not_found
from hotline.server.security import Principal
from hotline.server.state import Caller, ServerState, State, Supervisor, audit

router = APIRouter(tags=["notices"])


class NoticeIn(Model):
    text: str = Field(min_length=1, max_length=1000)
    teams: list[Code] = Field(
        default_factory=list,
        max_length=100,
        description="the teams whose agents see it; empty: every agent (a supervisor's: "
        "the teams they lead)",
    )
    level: Literal["info", "warning", "urgent"] = "info"
    minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="how long it stays up")


def _out(n: Notice) -> dict[str, Any]:
    return {
        "id": n.id,
        "text": n.text,
        "teams": n.teams,
        "level": n.level,
        "author": n.author,
        "created_at": n.created_at,
        "expires_at": n.expires_at,
    }


def _audience(caller: Principal, teams: list[str]) -> list[str]:
    """A supervisor speaks to the teams it leads only; an admin to anyone."""
    if caller.role == "admin":
        return sorted(set(teams))
    if not teams:
        if not caller.teams:
            raise forbidden("you lead no team")
        return sorted(caller.teams)
    foreign = sorted(set(teams) - caller.teams)
    if foreign:
        raise invalid("body.teams", f"not a team you lead: {', '.join(foreign)}")
    return sorted(set(teams))


def _sees(caller: Principal, state: ServerState, teams: list[str]) -> bool:
    if caller.role == "agent":
        if not teams:
            return True
        team = _tenant(state, caller).teams.get(caller.agent or "")
        return team in teams
    if caller.role == "supervisor":
        return not teams or bool(caller.teams.intersection(teams))
    return True


@router.post("/notices", status_code=201)
async def post_notice(body: NoticeIn, caller: Supervisor, state: State) -> dict[str, Any]:
    teams = _audience(caller, body.teams)
    tenant = _tenant(state, caller)

    def write() -> dict[str, Any]:
        now = time.time()
        with state.sessions() as db:
            row = Notice(tenant_id=caller.tenant_id, author=caller.username, text=body.text,
                         teams=teams, level=body.level, created_at=now,
                         expires_at=now + body.minutes * 60)
            db.add(row)
            db.flush()
            audit(db, caller, "notice.post", str(row.id), teams=teams or None)
            db.commit()
            return _out(row)

    notice = await run_in_threadpool(write)  # stored before anyone is told
    state.hub.notice(tenant, {"type": "notice", **notice}, frozenset(teams))
    return notice


@router.get("/notices")
async def list_notices(caller: Caller, state: State) -> list[dict[str, Any]]:
    """The notices up now that the caller sees, newest first."""

    def read() -> list[Notice]:
        with state.sessions() as db:
            return list(db.scalars(
                select(Notice)
                .where(Notice.tenant_id == caller.tenant_id, Notice.expires_at > time.time())
                .order_by(Notice.id.desc())
                .limit(200)
            ))

    return [_out(n) for n in await run_in_threadpool(read) if _sees(caller, state, n.teams)]


@router.delete("/notices/{notice_id}", status_code=204)
async def withdraw_notice(
    notice_id: Annotated[int, PathParam(ge=1, le=2**62)], caller: Supervisor, state: State
) -> None:
    """Its author or an admin takes it down; desktops drop it (``notice_withdrawn``)."""
    tenant = _tenant(state, caller)

    def write() -> list[str]:
        with state.sessions() as db:
            row = db.get(Notice, notice_id)
            if row is None or row.tenant_id != caller.tenant_id:
                raise not_found(f"notice {notice_id}")
            if caller.role != "admin" and row.author != caller.username:
                raise forbidden("only its author or an admin withdraws a notice")
            teams = list(row.teams)
            row.expires_at = min(row.expires_at, time.time())
            audit(db, caller, "notice.withdraw", str(notice_id))
            db.commit()
            return teams

    teams = await run_in_threadpool(write)
    state.hub.notice(tenant, {"type": "notice_withdrawn", "id": notice_id}, frozenset(teams))
