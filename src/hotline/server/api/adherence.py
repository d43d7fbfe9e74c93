"""Workforce management on the floor: publish the roster, watch adherence live, and report
adherence, conformance and shrinkage for a period (formulas in docs/metrics.md).

Live figures come from the tenant's ``AdherenceEngine`` fed by the server's own event stream;
period figures from a fresh engine fed the stored events, so both judge by the same rules.
Times without an offset are the tenant's time zone (or the server's when it has none).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from hotline.events.types import AgentStateChanged
from hotline.server.adherence import DAY, LiveAdherence, RosterOverlap, Row, roster_slots
from hotline.server.api.control import _tenant
from hotline.server.catalog import Code, Model
from hotline.server.export import table
from hotline.server.live import Tenant
from hotline.server.problems import ApiError, field_errors, invalid, invalid_fields
from hotline.server.security import Principal
from hotline.server.state import Caller, Roles, ServerState, State
from hotline.wfm.activities import (
    Activity,
    ActivityError,
    read_activities,
    write_activities,
)
from hotline.wfm.adherence import (
    AdherenceEngine,
    Key,
    Slot,
    adherence_figures,
    shrinkage_figures,
    total,
)

router = APIRouter(tags=["wfm"])
Planner = Annotated[Principal, Depends(Roles("admin", "planner"))]
Watcher = Annotated[Principal, Depends(Roles("admin", "planner", "supervisor"))]
MAX_SPAN = 93 * DAY
MAX_ROWS = 200_000
MAX_BODY = 20 * 1024 * 1024
LOOKBACK = DAY  # an agent's state at a period's start: its last change in the day before
_STATE_CHANGED = AgentStateChanged(0.0, "", "", "").type


class ActivityIn(Model):
    agent: Code
    start: datetime
    end: datetime
    activity: Literal["work", "break", "meal", "meeting", "training"]


_ACTIVITIES = TypeAdapter(list[ActivityIn])


# ---------------------------------------------------------------------- times
def _zone(tenant: Tenant) -> tzinfo | None:
    return tenant.tz


def _stamp(moment: datetime, tz: tzinfo | None) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment.timestamp()


def _when(value: str, name: str, tz: tzinfo | None) -> float:
    """ISO 8601 (the tenant's time when no offset is given) or Unix seconds."""
    try:
        try:
            t = _stamp(datetime.fromisoformat(value), tz)
        except ValueError:
            t = float(value)
        if not math.isfinite(t) or not 0 <= t < 1e11:
            raise ValueError(value)
        return t
    except (ValueError, OverflowError, OSError):
        raise invalid(f"query.{name}", "not an ISO 8601 time or Unix seconds") from None


def _span(tenant: Tenant, start: str, end: str) -> tuple[float, float]:
    tz = _zone(tenant)
    t0, t1 = _when(start, "from", tz), _when(end, "to", tz)
    if t1 <= t0:
        raise invalid("query.to", "must be after 'from'")
    if t1 - t0 > MAX_SPAN:
        raise invalid("query.to", "at most 93 days at once")
    return t0, t1


def _iso(t: float, tz: tzinfo | None) -> str:
    moment = datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t)
    return moment.astimezone(tz).isoformat(timespec="seconds")


def _visible(caller: Principal, tenant: Tenant) -> Callable[[str], bool]:
    """Which agents' figures the caller sees: supervisors their teams', agents their own."""
    if caller.role == "supervisor":
        return lambda code: tenant.teams.get(code) in caller.teams
    if caller.role == "agent":
        return lambda code: code == caller.agent
    return lambda code: True


def _live(state: ServerState) -> LiveAdherence:
    if state.adherence is None:
        raise ApiError(503, "Service Unavailable", "adherence is not running")
    return state.adherence


# ---------------------------------------------------------------------- roster
def _row(where: str, agent: str, start: datetime, end: datetime, kind: str,
         tz: tzinfo | None) -> Row:
    times = []
    for name, moment in (("start", start), ("end", end)):
        try:
            times.append(_stamp(moment, tz))
        except (ValueError, OverflowError, OSError):
            raise invalid(f"{where}.{name}", "not a time this server can represent") from None
    return (where, agent, times[0], times[1], kind)


def _parse_roster(kind: str, raw: bytes, tz: tzinfo | None) -> list[Row]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid("body", "not UTF-8 text") from None
    if kind == "text/csv":
        try:
            activities = read_activities(text)
        except ActivityError as err:
            raise invalid("body", str(err)) from None
        lines: dict[tuple[str, datetime], int] = {}  # (agent, start) -> line, to name rows
        for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            key = ((row["agent"] or "").strip(), datetime.fromisoformat(row["start"].strip()))
            lines.setdefault(key, line)
        return [_row(f"body.line {lines[(a.agent, a.start)]}", a.agent, a.start, a.end, a.kind,
                     tz) for a in activities]
    try:
        items = _ACTIVITIES.validate_python(json.loads(text))
    except json.JSONDecodeError as err:
        raise invalid("body", f"not JSON: {err.msg} at line {err.lineno}") from None
    except ValidationError as err:
        raise invalid_fields(field_errors(err.errors(), ("body",))) from None
    return [_row(f"body.{i}", a.agent, a.start, a.end, a.activity, tz)
            for i, a in enumerate(items)]


def _check_rows(rows: list[Row], tenant: Tenant, t0: float, t1: float) -> None:
    errors: list[dict[str, str]] = []
    for where, agent, start, end, _ in rows:
        if not tenant.acd.has_agent(agent):
            errors.append({"field": f"{where}.agent", "message": f"unknown agent {agent!r}"})
        if not t0 <= start < t1:
            errors.append({"field": f"{where}.start",
                           "message": "outside the range being published [from, to)"})
        if end <= start:
            errors.append({"field": f"{where}.end", "message": "must be after start"})
        if len(errors) >= 20:
            break
    if errors:
        raise invalid_fields(errors)


@router.put(
    "/wfm/roster",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {
                    "type": "object",
                    "required": ["agent", "start", "end", "activity"],
                    "properties": {
                        "agent": {"type": "string"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time"},
                        "activity": {"type": "string", "enum": [
                            "work", "break", "meal", "meeting", "training"]},
                    },
                }}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def publish_roster(
    request: Request,
    caller: Planner,
    state: State,
    from_: Annotated[str, Query(alias="from", max_length=40)],
    to: Annotated[str, Query(max_length=40)],
    agents: Annotated[Literal["all", "listed"], Query(
        description="whose activities in the range give way: every agent's, or only those "
                    "of the agents in the body (one team's roster)")] = "all",
) -> dict[str, Any]:
    """Publish the activities of ``[from, to)``: every activity starting in that range (of
    every agent, or of the agents listed in the body) is replaced by the body's (a JSON
    list, or ``text/csv`` as ``agent,start,end,activity``). Each must start in the range;
    unknown agents and overlaps are refused, naming the row. Adherence follows at once."""
    tenant = _tenant(state, caller)
    t0, t1 = _span(tenant, from_, to)
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in ("application/json", "text/csv"):
        raise ApiError(415, "Unsupported Media Type", "send application/json or text/csv")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, "Content Too Large", "a roster is at most 20 MB")
    rows = _parse_roster(kind, raw, _zone(tenant))
    if len(rows) > MAX_ROWS:
        raise invalid("body", f"{len(rows)} activities: at most {MAX_ROWS} at once")
    _check_rows(rows, tenant, t0, t1)

    live = _live(state)
    tz = _zone(tenant)
    try:
        slots = await live.publish_roster(tenant, t0, t1, rows,
                                          (caller.tenant_id, caller.username),
                                          f"{_iso(t0, tz)}/{_iso(t1, tz)}", agents == "listed")
    except RosterOverlap as err:
        raise invalid(err.where, err.message) from None
    return {"from": _iso(t0, _zone(tenant)), "to": _iso(t1, _zone(tenant)),
            "activities": len(rows), "agents": len(slots)}


@router.get("/wfm/roster", response_model=None)
async def get_roster(
    caller: Caller,
    state: State,
    from_: Annotated[str, Query(alias="from", max_length=40)],
    to: Annotated[str, Query(max_length=40)],
    agent: Annotated[str | None, Query(max_length=64, description="this agent only")] = None,
    format: Literal["json", "csv"] = "json",
) -> list[dict[str, Any]] | Response:
    """The published activities overlapping ``[from, to)``, by agent then start. Agents see
    their own; supervisors their teams'; planners, QA and admins everyone's."""
    tenant = _tenant(state, caller)
    t0, t1 = _span(tenant, from_, to)
    visible = _visible(caller, tenant)
    tz = _zone(tenant)

    def read() -> dict[str, list[Slot]]:
        with state.sessions() as db:
            return roster_slots(db, tenant.id, t0, t1, [agent] if agent is not None else None)

    slots = await run_in_threadpool(read)
    rows = [
        (code, s) for code in sorted(slots) if visible(code) for s in slots[code]
    ]
    if format == "csv":

        def local(t: float) -> datetime:
            moment = datetime.fromtimestamp(t, tz) if tz is not None else datetime.fromtimestamp(t)
            return moment.astimezone(tz)

        text = write_activities(Activity(code, local(s.start), local(s.end), s.kind)
                                for code, s in rows)
        return Response(text, media_type="text/csv; charset=utf-8")
    return [{"agent": code, "start": _iso(s.start, tz), "end": _iso(s.end, tz),
             "activity": s.kind} for code, s in rows]


# ---------------------------------------------------------------------- adherence
@router.get("/wfm/adherence")
async def live_adherence(caller: Watcher, state: State) -> dict[str, Any]:
    """Now, per agent: the scheduled activity, the state, in adherence or not, for how long
    out, and whether severe. Supervisors see the agents of their teams."""
    tenant = _tenant(state, caller)
    live = _live(state)
    engine = live.engine(tenant)
    now = state.center.clock()
    visible = _visible(caller, tenant)
    agents = []
    counts = {"in_adherence": 0, "out_of_adherence": 0, "severe": 0}
    for code in sorted(tenant.teams):
        if not visible(code):
            continue
        status = engine.status(code, now)
        counts["in_adherence" if status.in_adherence else "out_of_adherence"] += 1
        counts["severe"] += status.severe
        agents.append({**status.to_dict(), "team": tenant.teams.get(code)})
    return {"t": now, "severe_after": tenant.adherence.severe_after, **counts, "agents": agents}


def _period_tallies(state: ServerState, tenant: Tenant, t0: float, t1: float
                    ) -> dict[str, dict[Key, float]]:
    """A fresh engine fed the roster and the stored state changes: each agent's time per
    (activity, state, reason) within ``[t0, min(t1, now))``."""
    engine = AdherenceEngine(tenant.adherence, count_from=t0)
    end = min(t1, state.center.clock())
    if end <= t0:
        return {}
    start = t0 - LOOKBACK
    with state.sessions() as db:
        slots = roster_slots(db, tenant.id, start, t1)
    engine.replace(start, -math.inf, math.inf, slots)
    for e in state.center.store.read(tenant.id, start, end, types=[_STATE_CHANGED]):
        engine.feed(e)
    return engine.tallies(end)


async def _figures(
    caller: Principal, state: ServerState, from_: str, to: str, agent: str | None,
    figures: Callable[[dict[Key, float]], dict[str, Any]],
) -> dict[str, Any]:
    tenant = _tenant(state, caller)
    t0, t1 = _span(tenant, from_, to)
    tallies = await run_in_threadpool(_period_tallies, state, tenant, t0, t1)
    visible = _visible(caller, tenant)
    shown = {
        code: tally for code, tally in sorted(tallies.items())
        if visible(code) and (agent is None or code == agent)
    }
    tz = _zone(tenant)
    return {
        "from": _iso(t0, tz),
        "to": _iso(t1, tz),
        "agents": [{"agent": code, "team": tenant.teams.get(code), **figures(tally)}
                   for code, tally in shown.items()],
        "total": figures(total(shown.values())),
    }


ADHERENCE_COLUMNS = ["agent", "team", "scheduled_time", "adherent_time", "adherence",
                     "scheduled_paid_time", "worked_time", "conformance",
                     "unscheduled_logged_in_time"]


def _flat(figures: dict[str, Any]) -> dict[str, Any]:
    """Shrinkage's nested parts as columns (``not_ready_<reason>_time``/``_share``)."""
    out = {k: v for k, v in figures.items() if k not in ("not_ready", "logged_out")}
    for reason, part in figures.get("not_ready", {}).items():
        out[f"not_ready_{reason}_time"], out[f"not_ready_{reason}_share"] = \
            part["time"], part["share"]
    if "logged_out" in figures:
        out["logged_out_time"] = figures["logged_out"]["time"]
        out["logged_out_share"] = figures["logged_out"]["share"]
    return out


async def _table(report: dict[str, Any], fmt: str, name: str,
                 columns: list[str] | None = None) -> Any:
    """The report as JSON, or one row per agent and a total row as CSV or Excel."""
    if fmt == "json":
        return report
    rows = [_flat(r) for r in report["agents"]]
    rows.append({"agent": "total", "team": None, **_flat(report["total"])})
    if columns is None:
        extra = sorted({k for r in rows for k in r} - {"agent", "team"},
                       key=lambda k: (not k.startswith(("paid", "available", "shrinkage")), k))
        columns = ["agent", "team", *extra]
    stamp = f"{report['from'][:10]}-{report['to'][:10]}"
    return await run_in_threadpool(table, rows, fmt, f"{name}-{stamp}", columns)


@router.get("/wfm/adherence/report")
async def adherence_report(
    caller: Watcher,
    state: State,
    from_: Annotated[str, Query(alias="from", max_length=40)],
    to: Annotated[str, Query(max_length=40)],
    agent: Annotated[str | None, Query(max_length=64, description="this agent only")] = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Any:
    """Per agent and in total over ``[from, to)`` (time not yet passed excluded):
    adherence = time in adherence / scheduled time; conformance = logged-in time /
    scheduled paid time (work, break, meeting, training). CSV/Excel: a row per agent and
    a total row."""
    rules = _tenant(state, caller).adherence
    report = await _figures(caller, state, from_, to, agent,
                            lambda tally: adherence_figures(tally, rules))
    return await _table(report, format, "adherence", ADHERENCE_COLUMNS)


@router.get("/wfm/shrinkage")
async def shrinkage(
    caller: Watcher,
    state: State,
    from_: Annotated[str, Query(alias="from", max_length=40)],
    to: Annotated[str, Query(max_length=40)],
    agent: Annotated[str | None, Query(max_length=64, description="this agent only")] = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Any:
    """Shrinkage measured from agents' states over ``[from, to)``: the share of paid time
    (scheduled paid, or logged in) not on the phones, by not-ready reason and logged out.
    CSV/Excel: a row per agent and a total row, a time and a share column per reason."""
    report = await _figures(caller, state, from_, to, agent, shrinkage_figures)
    return await _table(report, format, "shrinkage")
