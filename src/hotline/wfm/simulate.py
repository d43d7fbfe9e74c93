"""Simulate a schedule before publishing it: the rostered agents and the forecast traffic
run through the production ACD on the simulator's virtual clock, reported per forecast
interval next to the Erlang requirement, so a planner sees where the plan fails.

Erlang sizes each interval as if it were in steady state with exactly its own agents; the
simulation carries queues across interval edges, has agents finish their call before a
break, and varies like real days do (hence replications and a confidence interval)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hotline.sim.runner import Simulation
from hotline.sim.scenario import Scenario
from hotline.wfm.activities import Activity
from hotline.wfm.commands import _activities, _fail, _reading, _seconds, _write_csv
from hotline.wfm.erlang import ErlangInputError, required_agents
from hotline.wfm.staffing import ForecastError, Interval, interval_length, read_forecast

QUEUE = "calls"
HANDLE_DISTS = ("exponential", "lognormal", "gamma", "constant")
COLUMNS = ["interval_start", "calls", "aht", "scheduled", "required", "offered", "answered",
           "abandoned", "short_abandoned", "service_level", "sl_low", "sl_high", "asa",
           "below_target"]


class ScheduleInputError(ValueError):
    """Roster and forecast that cannot be simulated together; ``option`` names the input."""

    def __init__(self, option: str, detail: str) -> None:
        super().__init__(detail)
        self.option = option
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Horizon:
    """Simulated time 0 and the forecast's place on the grid of ``period``-second buckets
    (the simulator's metric intervals) that starts there."""

    origin: datetime
    period: float
    buckets: list[int]  # per forecast row
    end: float  # the end of the last forecast interval, in simulated seconds

    def seconds(self, t: datetime) -> float:
        return (t - self.origin).total_seconds()


def horizon(roster: Sequence[Activity], forecast: Sequence[Interval], period: float) -> Horizon:
    """Time 0 is the first forecast interval, moved back by whole intervals if the roster
    starts earlier, so the buckets stay on the forecast's grid."""
    first = forecast[0].start
    aware = {first.tzinfo is not None} | {a.start.tzinfo is not None for a in roster}
    if len(aware) > 1:
        raise ScheduleInputError(
            "--roster", "give UTC offsets in both the roster and the forecast, or in neither"
        )
    earliest = min([first, *(a.start for a in roster)])
    lead = math.ceil((first - earliest).total_seconds() / period)
    origin = first - timedelta(seconds=lead * period)
    buckets = []
    for row in forecast:
        pos = (row.start - origin).total_seconds() / period
        if abs(pos - round(pos)) > 1e-9:
            raise ScheduleInputError(
                "--forecast",
                f"interval_start {row.start.isoformat()} is not on the {period:g}-second grid "
                f"of {first.isoformat()}",
            )
        buckets.append(round(pos))
    return Horizon(origin, period, buckets, (buckets[-1] + 1) * period)


Step = tuple[float, str, str | None]  # (simulated seconds, agent state, reason)


def agent_plans(roster: Sequence[Activity], h: Horizon) -> dict[str, list[Step]]:
    """Each agent's states: ready in ``work``, not ready with the activity as the reason in
    anything else, logged out in the gaps (time off); rows must be sorted by agent, start."""
    plans: dict[str, list[Step]] = {}
    last_end: dict[str, float] = {}
    for a in roster:
        plan = plans.setdefault(a.agent, [])
        start, end = h.seconds(a.start), h.seconds(a.end)
        if plan and start > last_end[a.agent]:
            plan.append((last_end[a.agent], "logged_out", "time off"))
        state, reason = ("ready", None) if a.kind == "work" else ("not_ready", a.kind)
        if not plan or plan[-1][1:] != (state, reason):
            plan.append((start, state, reason))
        last_end[a.agent] = end
    for agent, plan in plans.items():
        plan.append((last_end[agent], "logged_out", "time off"))
    return plans


def on_phones(roster: Sequence[Activity], h: Horizon) -> list[float]:
    """Agents in ``work`` per forecast interval, averaged over the interval (a 15-minute
    break in a 30-minute interval removes half an agent)."""
    width = h.buckets[-1] + 1
    seconds = [0.0] * width
    for a in roster:
        if a.kind != "work":
            continue
        start, end = h.seconds(a.start), min(h.seconds(a.end), h.end)
        b = int(start // h.period)
        while b < width and b * h.period < end:
            lo, hi = max(start, b * h.period), min(end, (b + 1) * h.period)
            seconds[b] += max(0.0, hi - lo)
            b += 1
    return [seconds[b] / h.period for b in h.buckets]


def scenario(
    roster: Sequence[Activity],
    forecast: Sequence[Interval],
    h: Horizon,
    *,
    aht: float,
    handle_dist: str = "exponential",
    handle_cv: float = 1.0,
    patience: float | None = None,
    sl_time: float = 20.0,
    seed: int = 0,
) -> Scenario:
    """One queue every rostered agent takes; traffic steps at each forecast row (a zero
    step where the forecast has a gap) and stops at the end of its last interval."""
    steps: list[dict[str, Any]] = []
    for row, b in zip(forecast, h.buckets, strict=True):
        at = b * h.period
        if steps and steps[-1]["at"] + h.period < at:  # a gap in the forecast: no calls
            steps.append({"at": steps[-1]["at"] + h.period, "calls_per_hour": 0.0})
        steps.append({"at": at, "calls_per_hour": row.calls * 3600.0 / h.period,
                      "aht": row.aht if row.aht is not None else aht})
    handle: dict[str, Any] = {"dist": handle_dist, "mean": aht, "value": aht}
    if handle_dist in ("lognormal", "gamma"):
        handle["sd"] = handle_cv * aht
    groups = [
        {"group": agent, "count": 1, "ids": [agent],
         "plan": [{"at": at, "state": state, "reason": reason} for at, state, reason in plan]}
        for agent, plan in agent_plans(roster, h).items()
    ]
    return Scenario.model_validate({
        "name": "schedule",
        "seed": seed,
        "duration": h.end,
        "interval": h.period,
        "service_level": {"threshold": sl_time},
        "queues": [{"id": QUEUE}],
        "traffic": [{
            "queue": QUEUE,
            "timeline": steps,
            "handle_time": handle,
            "patience": None if patience is None else {"dist": "exponential", "mean": patience},
        }],
        "agents": groups or [{"group": "nobody", "count": 0}],
    })


def _t975(n: int) -> float:
    from scipy.stats import t  # only when there are replications to summarise

    return float(t.ppf(0.975, n - 1))


def _summary(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95 % confidence interval (Student t) of one figure over replications."""
    if not values:
        return None, None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = _t975(len(values)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def simulate_schedule(
    roster: Sequence[Activity],
    forecast: Sequence[Interval],
    *,
    period: float,
    aht: float | None,
    handle_dist: str = "exponential",
    handle_cv: float = 1.0,
    patience: float | None = None,
    sl_time: float = 20.0,
    sl_target: float = 0.8,
    seed: int = 0,
    replications: int = 1,
) -> dict[str, Any]:
    """Per forecast interval: the roster's agents on the phones, Erlang's requirement, and
    the simulated calls, service level (mean and 95 % interval over replications) and ASA;
    plus the whole horizon's figures."""
    if replications < 1:
        raise ScheduleInputError("--replications", "must be ≥ 1")
    if handle_dist not in HANDLE_DISTS:
        raise ScheduleInputError("--handle-dist", f"{handle_dist!r}: one of "
                                 f"{', '.join(HANDLE_DISTS)}")
    if not handle_cv > 0:
        raise ScheduleInputError("--handle-cv", "must be > 0")
    if aht is None:
        missing = next((r for r in forecast if r.aht is None), None)
        if missing is not None:
            raise ScheduleInputError(
                "--aht", f"{missing.start.isoformat()} has no aht in the file: give --aht")
        aht = statistics.fmean(r.aht for r in forecast if r.aht is not None)
    h = horizon(roster, forecast, period)
    required = []
    for row in forecast:
        try:
            required.append(required_agents(
                calls=row.calls, period=period, aht=row.aht if row.aht is not None else aht,
                sl_time=sl_time, sl_target=sl_target, patience=patience).agents)
        except ErlangInputError as exc:
            raise ScheduleInputError("--" + exc.param.replace("_", "-"), exc.detail) from None
    spec = scenario(roster, forecast, h, aht=aht, handle_dist=handle_dist,
                    handle_cv=handle_cv, patience=patience, sl_time=sl_time, seed=seed)
    runs: list[dict[int, dict[str, Any]]] = []
    totals: list[dict[str, Any]] = []
    for rep in range(replications):
        metrics = Simulation(spec, seed=seed + rep).run().metrics
        runs.append({round(r["start"] / period): r for r in metrics.intervals()})
        totals.append(metrics.total())
    scheduled = on_phones(roster, h)
    rows = []
    for i, (row, b) in enumerate(zip(forecast, h.buckets, strict=True)):
        kpis = [run[b] for run in runs if b in run]

        def mean(key: str, kpis: list[dict[str, Any]] = kpis) -> float | None:
            values = [k[key] for k in kpis if k[key] is not None]
            return statistics.fmean(values) if values else None

        def count(key: str, kpis: list[dict[str, Any]] = kpis) -> float:
            return sum(k[key] for k in kpis) / replications  # a run without calls had 0

        sl, low, high = _summary([k["service_level"] for k in kpis
                                  if k["service_level"] is not None])
        rows.append({
            "interval_start": row.start.isoformat(),
            "calls": row.calls,
            "aht": row.aht if row.aht is not None else aht,
            "scheduled": scheduled[i],
            "required": required[i],
            "offered": count("offered"),
            "answered": count("answered"),
            "abandoned": count("abandoned"),
            "short_abandoned": count("short_abandoned"),
            "service_level": sl,
            "sl_low": low,
            "sl_high": high,
            "asa": mean("asa"),
            "below_target": sl is not None and sl < sl_target,
        })
    sl, low, high = _summary([t["service_level"] for t in totals
                              if t["service_level"] is not None])
    asas = [t["asa"] for t in totals if t["asa"] is not None]
    return {
        "origin": h.origin.isoformat(),
        "interval": period,
        "model": "erlang_c" if patience is None else "erlang_a",
        "sl_time": sl_time,
        "sl_target": sl_target,
        "seeds": [seed + r for r in range(replications)],
        "agents": len(spec.agents) if roster else 0,
        "total": {
            "offered": statistics.fmean(t["offered"] for t in totals),
            "answered": statistics.fmean(t["answered"] for t in totals),
            "abandoned": statistics.fmean(t["abandoned"] for t in totals),
            "service_level": sl,
            "sl_low": low,
            "sl_high": high,
            "asa": statistics.fmean(asas) if asas else None,
            "intervals_below_target": sum(r["below_target"] for r in rows),
        },
        "intervals": rows,
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _range(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.0%}–{high:.0%}"


def _report(result: dict[str, Any], worst: int) -> None:
    console = Console()
    if not console.is_terminal:
        console.width = 120  # a report piped to a file keeps its columns
    total = result["total"]
    rows = result["intervals"]
    reps = len(result["seeds"])
    spread = _range(total["sl_low"], total["sl_high"])
    noise = f" (95% interval {spread})" if spread else ""
    console.print(f"[bold]{result['agents']} agents, {len(rows)} intervals of "
                  f"{result['interval'] / 60:g} min, {reps} run{'s' if reps > 1 else ''}; "
                  f"required agents by {result['model'].replace('_', ' ').title()}[/bold]")
    summary = Table(show_header=False)
    summary.add_column("metric", style="bold")
    summary.add_column("value", justify="right")
    summary.add_row("Calls offered", f"{total['offered']:,.0f}")
    summary.add_row("Answered", f"{total['answered']:,.0f}")
    summary.add_row("Abandoned", f"{total['abandoned']:,.0f}")
    summary.add_row(f"Service level ({result['sl_time']:g} s)", _pct(total["service_level"])
                    + noise)
    summary.add_row("ASA", "—" if total["asa"] is None else f"{total['asa']:.1f} s")
    below = total["intervals_below_target"]
    summary.add_row(f"Intervals below {result['sl_target']:.0%}",
                    f"[red]{below}[/red]" if below else "0")
    console.print(summary)
    days: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        days.setdefault(r["interval_start"][:10], []).append(r)
    per_day = Table(title="Per day", title_justify="left")
    for name in ("day", "calls offered", "intervals below target", "lowest SL"):
        per_day.add_column(name, justify="left" if name == "day" else "right")
    for day, day_rows in days.items():
        sls = [r["service_level"] for r in day_rows if r["service_level"] is not None]
        per_day.add_row(day, f"{sum(r['offered'] for r in day_rows):,.0f}",
                        str(sum(r["below_target"] for r in day_rows)),
                        _pct(min(sls) if sls else None))
    console.print(per_day)
    failing = sorted((r for r in rows if r["service_level"] is not None),
                     key=lambda r: r["service_level"])[:worst]
    if not failing:
        return
    title = f"Worst {len(failing)} intervals" if len(failing) > 1 else "Worst interval"
    table = Table(title=title, title_justify="left")
    names = ["interval", "offered", "on phones", "required", "SL", "ASA", "abandoned"]
    if reps > 1:
        names.insert(5, "95% interval")
    for name in names:
        table.add_column(name, justify="left" if name == "interval" else "right")
    for r in failing:
        flag = "red" if r["below_target"] else "green"
        cells = [r["interval_start"], f"{r['offered']:.1f}", f"{r['scheduled']:.2f}",
                 str(r["required"]), f"[{flag}]{_pct(r['service_level'])}[/{flag}]",
                 "—" if r["asa"] is None else f"{r['asa']:.0f} s", f"{r['abandoned']:.1f}"]
        if reps > 1:
            cells.insert(5, _range(r["sl_low"], r["sl_high"]))
        table.add_row(*cells)
    console.print(table)


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def simulate(
    roster_file: Annotated[
        Path, typer.Option("--roster", help="Roster CSV: agent, start, end, activity.")
    ],
    forecast_file: Annotated[
        Path, typer.Option("--forecast", help="Forecast CSV: interval_start, calls[, aht].")
    ],
    aht: Annotated[
        str | None, typer.Option(help="Handle time where the file has no aht, e.g. 300, 5m.")
    ] = None,
    handle_dist: Annotated[
        str, typer.Option(help="Handle times: exponential, lognormal, gamma or constant.")
    ] = "exponential",
    handle_cv: Annotated[
        float, typer.Option(help="Handle time's sd / mean for lognormal and gamma.")
    ] = 1.0,
    patience: Annotated[
        str | None, typer.Option(help="Mean caller patience (exponential); default: "
                                 "callers never hang up.")
    ] = None,
    sl_time: Annotated[str, typer.Option(help="Service level threshold, e.g. 20s.")] = "20s",
    sl_target: Annotated[
        float, typer.Option(help="Share of offered calls to answer within --sl-time (0-1].")
    ] = 0.8,
    seed: Annotated[int, typer.Option(help="Random seed of the first replication.")] = 0,
    replications: Annotated[
        int, typer.Option(help="Runs with seeds seed, seed+1, ...: mean and 95% interval.")
    ] = 1,
    interval: Annotated[
        str | None, typer.Option(help="Interval length (default: the forecast's usual step).")
    ] = None,
    worst: Annotated[int, typer.Option(help="How many of the worst intervals to list.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write the intervals to this CSV.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Simulate a roster against a forecast: service level per interval, where it fails."""
    with _reading("--forecast", forecast_file):
        rows = read_forecast(forecast_file.read_text(encoding="utf-8-sig"))
        period = _seconds("--interval", interval) if interval else interval_length(rows)
    roster = _activities("--roster", roster_file)
    try:
        result = simulate_schedule(
            roster, rows, period=period,
            aht=None if aht is None else _seconds("--aht", aht),
            handle_dist=handle_dist, handle_cv=handle_cv,
            patience=None if patience is None else _seconds("--patience", patience),
            sl_time=_seconds("--sl-time", sl_time), sl_target=sl_target,
            seed=seed, replications=replications,
        )
    except ScheduleInputError as exc:
        raise _fail(exc.option, exc.detail) from None
    except ForecastError as exc:
        raise _fail("--forecast", exc) from None
    if out is not None:
        _write_csv(out, COLUMNS, ([_csv_value(r[k]) for k in COLUMNS]
                                  for r in result["intervals"]))
    if json_output:
        typer.echo(json.dumps(result))
    else:
        _report(result, worst)
