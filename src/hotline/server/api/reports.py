"""History: interval reports per queue and per agent from the stored events (computed by the
metrics module, the same code as the simulator's reports), and call detail records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import ColumnElement, func, or_, select

from hotline.cms.metrics import Metrics, ServiceLevelConfig, Tally
from hotline.db.schema import Agent, CallRecord
from hotline.server.api.control import _tenant
from hotline.server.export import table
from hotline.server.problems import forbidden, invalid
from hotline.server.security import Principal
from hotline.server.state import DB, Caller, ServerState, State

router = APIRouter(tags=["reports"])
INTERVALS = {"15m": 900.0, "30m": 1800.0, "60m": 3600.0, "1d": 86400.0}
Format = Literal["json", "csv", "xlsx"]
MAX_SPAN = 93 * 86400.0


def _when(value: str, name: str) -> float:
    """ISO 8601 (local time when no offset is given) or Unix seconds."""
    try:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            t = float(value)
        else:
            if stamp.tzinfo is None:
                stamp = stamp.astimezone()
            t = stamp.timestamp()
        if not math.isfinite(t) or not 0 <= t < 1e11:
            raise ValueError(value)
        return t
    except (ValueError, OverflowError, OSError):
        raise invalid(f"query.{name}", "not an ISO 8601 time or Unix seconds") from None


def _span(start: str, end: str) -> tuple[float, float]:
    t0, t1 = _when(start, "from"), _when(end, "to")
    if t1 <= t0:
        raise invalid("query.to", "must be after 'from'")
    if t1 - t0 > MAX_SPAN:
        raise invalid("query.to", "at most 93 days per report")
    return t0, t1


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _filename(name: str, t0: float, t1: float) -> str:
    """``queues-20250301-0000-20250302-0000``: the report and its range, in local time."""
    return "-".join([name, *(datetime.fromtimestamp(t).strftime("%Y%m%d-%H%M") for t in (t0, t1))])


QUEUE_COLUMNS = ["interval_start", "queue", *Tally().kpis(ServiceLevelConfig())]
AGENT_COLUMNS = [
    "interval_start",
    "agent",
    "team",
    "answered",
    "talk_time",
    "logged_in_time",
    "not_ready_time",
    "rona",
    "outbound",
    "outbound_reached",
    "outbound_talk_time",
    "staffed_time",
    "occupied_time",
    "occupancy",
]


def _metrics(state: ServerState, caller: Principal, t0: float, step: float) -> Metrics:
    tenant = _tenant(state, caller)
    return Metrics(ServiceLevelConfig(), tenant.service_levels, interval=step, origin=t0)


@dataclass
class ReportQuery:
    """The query every interval report takes: ``[from, to)``, interval length (``1d``: 24 hours
    from ``from``), format."""

    start: float
    end: float
    step: float
    format: str


def report_query(
    from_: str = Query(..., alias="from"),
    to: str = Query(...),
    interval: Literal["15m", "30m", "60m", "1d"] = "30m",
    format: Format = "json",
) -> ReportQuery:
    t0, t1 = _span(from_, to)
    return ReportQuery(t0, t1, INTERVALS[interval], format)


Report = Annotated[ReportQuery, Depends(report_query)]


@router.get("/reports/queues")
async def queue_report(
    caller: Caller,
    state: State,
    query: Report,
    queue: str | None = Query(None, max_length=64, description="this queue only"),
) -> Any:
    if caller.role == "agent":
        raise forbidden("queue reports are for supervisors, QA, planners and admins")
    t0, t1 = query.start, query.end
    metrics = _metrics(state, caller, t0, query.step)

    def compute() -> list[dict[str, Any]]:
        metrics.feed_all(state.center.store.read(caller.tenant_id, t0, t1))
        rows = []
        for row in metrics.intervals():
            if caller.role == "supervisor" and row["queue"] not in caller.queues:
                continue
            if queue is not None and row["queue"] != queue:
                continue
            rows.append({"interval_start": _iso(row.pop("start")), **row})
        return rows

    rows = await run_in_threadpool(compute)
    name = _filename("queues", t0, t1)
    return await run_in_threadpool(table, rows, query.format, name, QUEUE_COLUMNS)


_AGENT_CUMULATIVE = (
    "answered",
    "talk_time",
    "logged_in_time",
    "not_ready_time",
    "rona",
    "outbound",
    "outbound_reached",
    "outbound_talk_time",
    "staffed_time",
    "occupied_time",
)


@router.get("/reports/agents")
async def agent_report(
    caller: Caller,
    state: State,
    query: Report,
    agent: str | None = Query(None, max_length=64, description="this agent only"),
) -> Any:
    """Per agent and interval: calls answered, talk, logged-in and not-ready time, occupancy.
    Agents get their own rows only."""
    t0, t1 = query.start, min(query.end, state.center.clock())
    step = query.step
    tenant = _tenant(state, caller)
    metrics = _metrics(state, caller, t0, step)

    def visible(code: str) -> bool:
        if agent is not None and code != agent:
            return False
        if caller.role == "agent":
            return code == caller.agent
        if caller.role == "supervisor":
            return tenant.teams.get(code) in caller.teams
        return True

    def compute() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        previous: dict[str, dict[str, Any]] = {}
        boundary = t0 + step

        def close(start: float, end: float) -> None:
            current = metrics.agents(now=end)
            for code, figures in sorted(current.items()):
                before = previous.get(code, {})
                diff = {k: figures[k] - before.get(k, 0) for k in _AGENT_CUMULATIVE}
                if visible(code) and any(diff.values()):
                    staffed = diff["staffed_time"]
                    rows.append(
                        {
                            "interval_start": _iso(start),
                            "agent": code,
                            "team": tenant.teams.get(code),
                            **diff,
                            "occupancy": diff["occupied_time"] / staffed if staffed else None,
                        }
                    )
            previous.clear()
            previous.update(current)

        for e in state.center.store.read(caller.tenant_id, t0, t1):
            while e.t >= boundary:
                close(boundary - step, boundary)
                boundary += step
            metrics.feed(e)
        horizon = min(t1, state.center.clock())  # no figures for time not yet passed
        while boundary - step < horizon:
            close(boundary - step, min(boundary, horizon))
            boundary += step
        return rows

    rows = await run_in_threadpool(compute)
    name = _filename("agents", query.start, query.end)
    return await run_in_threadpool(table, rows, query.format, name, AGENT_COLUMNS)


def supervised_calls(caller: Principal) -> ColumnElement[bool]:
    """The CDRs a supervisor may see: calls that ended in its queues, or that an agent of its
    teams handled."""
    team_agents = select(Agent.code).where(
        Agent.tenant_id == caller.tenant_id, Agent.team.in_(sorted(caller.teams))
    )
    return or_(CallRecord.final_queue.in_(sorted(caller.queues)), CallRecord.agent.in_(team_agents))


CDR_COLUMNS = [
    "call_id",
    "direction",
    "queue",
    "final_queue",
    "number",
    "caller",
    "arrived_at",
    "answered_at",
    "ended_at",
    "agent",
    "wait",
    "talk",
    "hold",
    "wrap",
    "outcome",
    "cause",
    "disposition",
    "note",
    "transferred_from",
    "recording",
]
EXPORT_LIMIT = 100_000  # CDRs in one CSV or Excel file


@router.get("/cdrs", response_model=None)
def cdrs(
    caller: Caller,
    db: DB,
    state: State,
    from_: str | None = Query(None, alias="from"),
    to: str | None = None,
    queue: str | None = Query(None, max_length=64, description="the queue the call ended in"),
    agent: str | None = Query(None, max_length=64),
    number: str | None = Query(None, max_length=64),
    outcome: str | None = Query(None, max_length=32),
    direction: Literal["inbound", "outbound"] | None = None,
    page: int = Query(1, ge=1, le=100000),
    page_size: int = Query(50, ge=1, le=1000),
    format: Format = "json",
) -> dict[str, Any] | Response:
    """Call detail records, newest first. Agents see their own calls; supervisors those of
    their queues and teams. ``recording`` tells whether ``/calls/{id}/recording`` has one.
    ``format=csv|xlsx``: every matching call in one file (no paging), up to 100,000."""
    query = select(CallRecord).where(CallRecord.tenant_id == caller.tenant_id)
    if from_ is not None:
        query = query.where(CallRecord.arrived_at >= _when(from_, "from"))
    if to is not None:
        query = query.where(CallRecord.arrived_at < _when(to, "to"))
    if queue is not None:
        query = query.where(CallRecord.final_queue == queue)  # where the call ended up
    if agent is not None:
        query = query.where(CallRecord.agent == agent)
    if number is not None:
        query = query.where(CallRecord.number == number)
    if outcome is not None:
        query = query.where(CallRecord.outcome == outcome)
    if direction is not None:
        query = query.where(CallRecord.direction == direction)
    if caller.role == "agent":
        query = query.where(CallRecord.agent == (caller.agent or ""))
    elif caller.role == "supervisor":
        query = query.where(supervised_calls(caller))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    query = query.order_by(CallRecord.arrived_at.desc(), CallRecord.id.desc())
    if format == "json":
        query = query.offset((page - 1) * page_size).limit(page_size)
    elif total > EXPORT_LIMIT:
        raise invalid("query.from", f"{total} calls: at most {EXPORT_LIMIT} per file")
    items = [
        {**{f: getattr(r, f) for f in CDR_COLUMNS[:-1]}, "recording": r.recording is not None}
        for r in db.scalars(query)
    ]
    if format != "json":
        return table(items, format, "cdrs", CDR_COLUMNS)
    return {"total": total, "page": page, "page_size": page_size, "items": items}
