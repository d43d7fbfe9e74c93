"""Workforce management over HTTP, the CLI's steps for a planner at a browser: a forecast's
history from the stored calls (offered calls and AHT per interval, as the queue reports count
them), a forecast from it or from an uploaded history with the backtest that chose its
method (planners, admins and supervisors, one of their queues at a time); then agents per
interval, the shift schedule and the roster of named agents (planners and admins)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotline.db.schema import Agent, RosterActivity
from hotline.durations import parse_duration
from hotline.server.api.reports import _filename, _when
from hotline.server.catalog import Code, Model
from hotline.server.export import table
from hotline.server.problems import ApiError, field_errors, forbidden, invalid, invalid_fields
from hotline.server.security import Principal
from hotline.server.state import DB, Roles, State
from hotline.wfm.activities import COLUMNS as ACTIVITY_COLUMNS
from hotline.wfm.activities import Activity, ActivityError, read_activities
from hotline.wfm.commands import STAFF_COLUMNS
from hotline.wfm.erlang import ErlangInputError
from hotline.wfm.forecast import METHODS, history, plan
from hotline.wfm.history import COLUMNS, history_rows, passed
from hotline.wfm.roster import RosterError, assign, lines_of, read_agents
from hotline.wfm.schedule import Rules, ScheduleError, requirement, solve
from hotline.wfm.simulate import ScheduleInputError, simulate_schedule
from hotline.wfm.staffing import ForecastError, Interval, interval_length, read_forecast, staff

router = APIRouter(tags=["wfm"])
Planner = Annotated[Principal, Depends(Roles("admin", "supervisor", "planner"))]
INTERVALS = {"15m": 900.0, "30m": 1800.0, "60m": 3600.0}
MAX_SPAN = 371 * 86400.0  # 53 weeks: a year of history with its first week's neighbours
DEFAULT_WEEKS = 10


def _queue(caller: Principal, queue: str | None) -> None:
    if caller.role == "supervisor" and (queue is None or queue not in caller.queues):
        raise forbidden("a supervisor reads the history of one of the queues they supervise")


def _instant(value: str, field: str) -> float:
    try:
        return _when(value, field)
    except ApiError:
        raise invalid(field, "not an ISO 8601 time or Unix seconds") from None


def _span(t0: float, t1: float, field: str) -> None:
    if t1 <= t0:
        raise invalid(field, "must be after 'from'")
    if t1 - t0 > MAX_SPAN:
        raise invalid(field, "at most 371 days (53 weeks) of history")


async def _stored(state: Any, caller: Principal, t0: float, t1: float, step: float,
                  queue: str | None) -> list[dict[str, Any]]:
    end = passed(t0, t1, step, state.center.clock())
    return await run_in_threadpool(
        lambda: history_rows(state.center.store.read(caller.tenant_id, t0, end), start=t0,
                             step=step, queue=queue))


@router.get("/wfm/history")
async def wfm_history(
    caller: Planner,
    state: State,
    from_: str = Query(..., alias="from", description="ISO 8601 (local) or Unix seconds"),
    to: str = Query(..., description="end, excluded; an interval not yet over is left out"),
    queue: str | None = Query(None, max_length=64, description="default: the whole center"),
    interval: Literal["15m", "30m", "60m"] = "30m",
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Calls offered and AHT per interval (``interval_start, calls, aht``): the history file
    ``hotline wfm forecast`` reads. Only intervals with calls are rows."""
    _queue(caller, queue)
    t0, t1 = _when(from_, "from"), _when(to, "to")
    _span(t0, t1, "query.to")
    rows = await _stored(state, caller, t0, t1, INTERVALS[interval], queue)
    return await run_in_threadpool(table, rows, format, _filename("history", t0, t1), COLUMNS)


class ForecastIn(Model):
    horizon: str = Field("7d", max_length=16, description="how far ahead, e.g. 7d, 1d")
    method: str = Field("auto", max_length=32, description=f"auto, {', '.join(METHODS)}")
    holidays: list[date] = Field(
        default_factory=list, max_length=1000,
        description="unknown days in the history; one in the horizon is forecast as past "
        "holidays went relative to the same weekday, or with none as the week's quietest day")
    history: str | None = Field(
        None, max_length=20_000_000,
        description="a history CSV (interval_start, calls[, aht]) instead of the stored calls")
    queue: Code | None = Field(None, description="stored calls of this queue (default: all)")
    from_: str | None = Field(
        None, alias="from", max_length=40,
        description=f"stored calls from (default: {DEFAULT_WEEKS} weeks before 'to')")
    to: str | None = Field(None, max_length=40, description="to (default: today's midnight)")
    interval: Literal["15m", "30m", "60m"] = "30m"


@router.post("/wfm/forecast")
async def wfm_forecast(
    body: ForecastIn, caller: Planner, state: State,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Calls (and AHT, when the history has it) per interval of the horizon, with every
    method's backtest error; ``format=csv`` gives the forecast file ``wfm staff`` reads."""
    if body.method != "auto" and body.method not in METHODS:
        raise invalid("body.method", f"one of auto, {', '.join(METHODS)}")
    if body.history is not None:
        field = "body.history"
        try:
            rows = read_forecast(body.history)
        except ForecastError as exc:
            raise invalid(field, str(exc)) from None
    else:
        field = "body.from"
        _queue(caller, body.queue)
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        t1 = midnight.timestamp() if body.to is None else _instant(body.to, "body.to")
        t0 = (t1 - DEFAULT_WEEKS * 7 * 86400 if body.from_ is None
              else _instant(body.from_, "body.from"))
        _span(t0, t1, "body.to")
        stored = await _stored(state, caller, t0, t1, INTERVALS[body.interval], body.queue)
        if not stored:
            raise invalid(field, "no calls stored in that range")
        rows = [Interval(datetime.fromisoformat(r["interval_start"]), r["calls"], r["aht"])
                for r in stored]
    try:
        seconds = parse_duration(body.horizon)
    except ValueError as exc:
        raise invalid("body.horizon", str(exc)) from None
    try:
        h = history(rows, None if body.history is not None else INTERVALS[body.interval])
        steps = seconds / h.step
        if steps < 1 or steps != int(steps) or steps > 371 * h.day:
            raise invalid("body.horizon", f"a whole number of {h.step:g}-second intervals, "
                          "at most 53 weeks")
        made = await run_in_threadpool(plan, h, int(steps), body.method, set(body.holidays))
    except ForecastError as exc:
        raise invalid(field, str(exc)) from None
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["interval_start", "calls", *(["aht"] if made.with_aht else [])])
        for r in made.intervals:
            writer.writerow([r.start.isoformat(), f"{r.calls:g}",
                             *(["" if r.aht is None else f"{r.aht:g}"] if made.with_aht else [])])
        start = made.intervals[0].start
        name = f"forecast-{start:%Y%m%d-%H%M}"
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return {"interval": h.step, **made.to_dict()}



# --------------------------------------------------------------- staffing, shifts, rosters
Scheduler = Annotated[Principal, Depends(Roles("admin", "planner"))]
MAX_SOLVE = 300.0  # seconds a request may keep one worker thread solving


def _csv_rows(text: str, field: str, column: str = "calls") -> list[Interval]:
    try:
        return read_forecast(text, column)
    except ForecastError as exc:
        raise invalid(field, str(exc)) from None


def _seconds(value: str, field: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise invalid(field, str(exc)) from None


class StaffIn(Model):
    forecast: str = Field(max_length=20_000_000,
                          description="forecast CSV: interval_start, calls[, aht]")
    aht: str | None = Field(None, max_length=16, description="where a row has no aht, e.g. 5m")
    sl_time: str = Field("20s", max_length=16)
    sl_target: float = Field(0.8, gt=0, le=1)
    patience: str | None = Field(None, max_length=16, description="Erlang A: mean patience")
    shrinkage: float = Field(0.0, ge=0, lt=1)
    max_occupancy: float = Field(1.0, gt=0, le=1)
    interval: str | None = Field(None, max_length=16, description="default: the file's step")


@router.post("/wfm/staff")
async def wfm_staff(body: StaffIn, caller: Planner, format: Literal["json", "csv"] = "json",
                    ) -> Any:
    """Agents and positions per interval (Erlang C, or A with ``patience``); ``format=csv``
    is the requirement file ``/wfm/schedule`` takes."""
    rows = _csv_rows(body.forecast, "body.forecast")
    try:
        period = (_seconds(body.interval, "body.interval") if body.interval
                  else interval_length(rows))
        result = await run_in_threadpool(
            staff, rows, period=period,
            aht=None if body.aht is None else _seconds(body.aht, "body.aht"),
            sl_time=_seconds(body.sl_time, "body.sl_time"), sl_target=body.sl_target,
            patience=None if body.patience is None else _seconds(body.patience,
                                                                 "body.patience"),
            shrinkage=body.shrinkage, max_occupancy=body.max_occupancy)
    except ForecastError as exc:
        raise invalid("body.forecast", str(exc)) from None
    except ErlangInputError as exc:
        raise invalid(f"body.{exc.param}", exc.detail) from None
    if format == "csv":
        return await run_in_threadpool(table, result, "csv", "requirement", STAFF_COLUMNS)
    return {"interval": period, "intervals": result}


class ScheduleIn(Model):
    requirements: str = Field(max_length=20_000_000,
                              description="requirement CSV: interval_start and the column")
    column: Literal["positions", "agents"] = "positions"
    rules: dict[str, Any] = Field(description="the shift rules (the rules YAML as JSON)")
    time_limit: float | None = Field(None, gt=0, le=MAX_SOLVE,
                                     description="seconds; default the rules', at most 300")


def _activity_rows(activities: list[Activity]) -> list[dict[str, str]]:
    return [{"agent": a.agent, "start": a.start.isoformat(), "end": a.end.isoformat(),
             "activity": a.kind} for a in activities]


@router.post("/wfm/schedule")
async def wfm_schedule(body: ScheduleIn, caller: Scheduler,
                       format: Literal["json", "csv"] = "json") -> Any:
    """Shifts, breaks and tours covering the requirement at least cost (the MIP of
    ``hotline wfm schedule``): the solver's objective, bound and gap, shifts per day,
    coverage per interval, and each line's week as activities (``format=csv``: just those)."""
    try:
        rules = Rules.model_validate(body.rules)
    except ValidationError as exc:
        raise invalid_fields(field_errors(exc.errors(), ("body", "rules"))) from None
    rows = _csv_rows(body.requirements, "body.requirements", body.column)
    try:
        req = requirement(rows, rules.interval)
    except ForecastError as exc:
        raise invalid("body.requirements", str(exc)) from None
    limit = min(body.time_limit or rules.solver.time_limit, MAX_SOLVE)
    try:
        result = await run_in_threadpool(solve, rules, req, time_limit=limit)
    except ScheduleError as exc:
        raise ApiError(422, "No schedule", str(exc)) from None
    activities = _activity_rows(result.activities())
    if format == "csv":
        return await run_in_threadpool(table, activities, "csv", "schedule",
                                       list(ACTIVITY_COLUMNS))
    return {
        **result.summary(),
        "shifts": result.shifts(),
        "coverage": [{"interval_start": req.interval_start(i).isoformat(),
                      "required": float(req.need[i]), "scheduled": float(result.coverage[i])}
                     for i in range(len(req.need))],
        "activities": activities,
    }


class ContractIn(Model):
    agent: Code
    min_hours: float | None = Field(None, ge=0, le=168)
    max_hours: float | None = Field(None, ge=0, le=168)
    unavailable: list[str] = Field(default_factory=list, max_length=400,
                                   description="weekdays (mon…sun) and dates YYYY-MM-DD")
    available: str | None = Field(None, max_length=11, description="daily, e.g. 08:00-18:00")
    prefer_start: str | None = Field(None, max_length=5, description="HH:MM")
    prefer_off: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=list)


class AssignIn(Model):
    schedule: str = Field(max_length=20_000_000,
                          description="the schedule's activities CSV (agent = line)")
    skill: Code | None = Field(None, description="only agents with this skill take lines")
    min_rest: float = Field(11 * 3600.0, ge=0, le=86400,
                            description="seconds between an agent's last published shift "
                            "before the schedule and its first shift in it")
    agents: list[ContractIn] | None = Field(
        None, max_length=20_000,
        description="contracts and wishes of the tenant's agents (default: every agent, "
        "no limits); agents not listed take no line")


def _worked_until(db: Session, caller: Principal, first: datetime, tz: tzinfo | None
                  ) -> dict[str, datetime]:
    """Each agent's end of the last published activity starting in the two days before
    ``first``; naive times are the tenant's local time, as publishing reads them."""
    naive = first.tzinfo is None
    if naive:
        first = first.replace(tzinfo=tz) if tz is not None else first.astimezone()
    t1 = first.timestamp()
    rows = db.execute(select(RosterActivity.agent, func.max(RosterActivity.ends_at)).where(
        RosterActivity.tenant_id == caller.tenant_id,
        RosterActivity.starts_at >= t1 - 2 * 86400, RosterActivity.starts_at < t1,
    ).group_by(RosterActivity.agent))
    out = {}
    for agent, end in rows:
        moment = datetime.fromtimestamp(end, first.tzinfo)
        out[agent] = moment.replace(tzinfo=None) if naive else moment
    return out


@router.post("/wfm/assign")
async def wfm_assign(body: AssignIn, caller: Scheduler, db: DB, state: State) -> Any:
    """Named agents on the schedule's lines (``hotline wfm roster``): skills from the
    tenant's agents, contracts and wishes from the body. The result's activities are what
    ``PUT /wfm/roster`` publishes."""
    try:
        lines = lines_of(read_activities(body.schedule))
    except ActivityError as exc:
        raise invalid("body.schedule", str(exc)) from None
    if not lines:
        raise invalid("body.schedule", "no activities")
    skills = {code: dict(sk) for code, sk in db.execute(
        select(Agent.code, Agent.skills).where(Agent.tenant_id == caller.tenant_id))}
    wishes = body.agents if body.agents is not None else [
        ContractIn.model_validate({"agent": code}) for code in sorted(skills)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["agent", "skills", "min_hours", "max_hours", "unavailable", "available",
                     "prefer_start", "prefer_off"])
    for i, w in enumerate(wishes):
        if w.agent not in skills:
            raise invalid(f"body.agents.{i}.agent", f"no agent {w.agent!r} in this tenant")
        writer.writerow([
            w.agent, " ".join(f"{s}:{lv}" for s, lv in skills[w.agent].items()),
            "" if w.min_hours is None else w.min_hours,
            "" if w.max_hours is None else w.max_hours, " ".join(w.unavailable),
            w.available or "", w.prefer_start or "", " ".join(w.prefer_off)])
    try:
        people = read_agents(text.getvalue())
    except RosterError as exc:  # "line n: ..." is the file's row n, the body's agents.(n-2)
        row, _, message = str(exc).partition(": ")
        line = row.removeprefix("line ")
        field = f"body.agents.{int(line) - 2}" if line.isdigit() and int(line) > 1 else \
            "body.agents"
        raise invalid(field, message or str(exc)) from None
    first = min(line.shifts[0].start for line in lines)
    running = state.center.tenants.get(caller.tenant_id)
    worked_until = await run_in_threadpool(_worked_until, db, caller, first,
                                           running.tz if running is not None else None)
    result = await run_in_threadpool(assign, lines, people, body.skill, worked_until,
                                     body.min_rest)
    return {**result.to_dict(), "activities": _activity_rows(result.activities)}


class SimulateIn(Model):
    roster: str = Field(max_length=20_000_000,
                        description="the roster's (or schedule's) activities CSV")
    forecast: str = Field(max_length=20_000_000,
                          description="forecast CSV: interval_start, calls[, aht]")
    aht: str | None = Field(None, max_length=16, description="where a row has no aht")
    patience: str | None = Field(None, max_length=16,
                                 description="mean caller patience (default: never hang up)")
    sl_time: str = Field("20s", max_length=16)
    sl_target: float = Field(0.8, gt=0, le=1)
    replications: int = Field(5, ge=1, le=20, description="seeds; the SL's 95 % interval")
    seed: int = Field(0, ge=0)
    interval: str | None = Field(None, max_length=16, description="default: the file's step")


@router.post("/wfm/simulate")
async def wfm_simulate(body: SimulateIn, caller: Scheduler) -> Any:
    """The roster against the forecast in the simulator (the production ACD on a virtual
    clock), as ``hotline wfm simulate``: per interval the agents on the phones, Erlang's
    requirement, simulated calls, SL with its 95 % interval over the replications, and
    whether it falls below the target."""
    rows = _csv_rows(body.forecast, "body.forecast")
    try:
        roster = read_activities(body.roster)
    except ActivityError as exc:
        raise invalid("body.roster", str(exc)) from None
    try:
        period = (_seconds(body.interval, "body.interval") if body.interval
                  else interval_length(rows))
        return await run_in_threadpool(
            simulate_schedule, roster, rows, period=period,
            aht=None if body.aht is None else _seconds(body.aht, "body.aht"),
            patience=None if body.patience is None else _seconds(body.patience,
                                                                 "body.patience"),
            sl_time=_seconds(body.sl_time, "body.sl_time"), sl_target=body.sl_target,
            seed=body.seed, replications=body.replications)
    except ScheduleInputError as exc:
        raise invalid("body." + exc.option.removeprefix("--").replace("-", "_"),
                      exc.detail) from None
    except ForecastError as exc:
        raise invalid("body.forecast", str(exc)) from None
