"""Workforce management over HTTP: a forecast's history from the stored calls (offered calls
and AHT per interval, as the queue reports count them), and a forecast from it or from an
uploaded history, with the backtest that chose its method. For planners, admins and
supervisors (one of their queues at a time)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field

from hotline.durations import parse_duration
from hotline.server.api.reports import _filename, _when
from hotline.server.catalog import Code, Model
from hotline.server.export import table
from hotline.server.problems import ApiError, forbidden, invalid
from hotline.server.security import Principal
from hotline.server.state import Roles, State
from hotline.wfm.forecast import METHODS, history, plan
from hotline.wfm.history import COLUMNS, history_rows, passed
from hotline.wfm.staffing import ForecastError, Interval, read_forecast

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

