"""`hotline erlang`, `hotline wfm forecast`, `hotline wfm staff` and `hotline wfm history`:
forecasting and staffing from the command line (registered by hotline.cli)."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hotline.durations import parse_duration
from hotline.wfm.activities import Activity, ActivityError, read_activities
from hotline.wfm.erlang import ErlangInputError, StaffingResult, evaluate, required_agents
from hotline.wfm.forecast import METHODS, history, plan, read_holidays
from hotline.wfm.staffing import ForecastError, interval_length, read_forecast
from hotline.wfm.staffing import staff as staff_intervals


def _fail(option: str, detail: object) -> typer.Exit:
    """One readable line and exit code 2, the usage-error code, instead of a traceback."""
    typer.echo(f"error: {option}: {detail}", err=True)
    return typer.Exit(2)


def _seconds(option: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise _fail(option, exc) from None


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _table(
    result: StaffingResult, sl_time: float, patience: float | None, shrinkage: float
) -> Table:
    model = "Erlang C" if patience is None else f"Erlang A (mean patience {patience:g} s)"
    table = Table(title=model, show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_row("Traffic", f"{result.traffic_erlangs:.2f} erlangs")
    table.add_row("Agents", str(result.agents))
    table.add_row("Positions", f"{result.positions} (shrinkage {_pct(shrinkage)})")
    table.add_row(f"Service level ({sl_time:g} s)", _pct(result.service_level))
    asa = "unbounded (queue unstable)" if math.isinf(result.asa) else f"{result.asa:.1f} s"
    table.add_row("Average speed of answer", asa)
    table.add_row("Probability of waiting", _pct(result.p_wait))
    table.add_row("Occupancy", _pct(result.occupancy))
    if result.abandon_rate is not None:
        table.add_row("Abandon rate", _pct(result.abandon_rate))
    return table


def erlang(
    calls: Annotated[float, typer.Option(help="Calls offered in one period (may be fractional).")],
    aht: Annotated[str, typer.Option(help="Average handle time, e.g. 180s, 3m.")],
    period: Annotated[str, typer.Option(help="Length of the period the calls arrive in.")] = "30m",
    sl_time: Annotated[str, typer.Option(help="Service level threshold, e.g. 20s.")] = "20s",
    sl_target: Annotated[
        float, typer.Option(help="Share of offered calls to answer within --sl-time (0-1].")
    ] = 0.8,
    patience: Annotated[
        str | None, typer.Option(help="Mean caller patience; switches to Erlang A (abandons).")
    ] = None,
    agents: Annotated[
        int | None, typer.Option(help="Evaluate this head count instead of searching.")
    ] = None,
    shrinkage: Annotated[
        float, typer.Option(help="Share of paid time off the phones, to gross up positions.")
    ] = 0.0,
    max_occupancy: Annotated[
        float, typer.Option(help="Upper bound on agent occupancy when searching (0-1].")
    ] = 1.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Size a queue with Erlang C, or Erlang A when callers abandon (--patience)."""
    period_s, aht_s = _seconds("--period", period), _seconds("--aht", aht)
    sl_time_s = _seconds("--sl-time", sl_time)
    patience_s = None if patience is None else _seconds("--patience", patience)
    try:
        if agents is None:
            result = required_agents(
                calls=calls,
                period=period_s,
                aht=aht_s,
                sl_time=sl_time_s,
                sl_target=sl_target,
                patience=patience_s,
                shrinkage=shrinkage,
                max_occupancy=max_occupancy,
            )
        else:
            result = evaluate(
                calls=calls,
                period=period_s,
                aht=aht_s,
                agents=agents,
                sl_time=sl_time_s,
                patience=patience_s,
                shrinkage=shrinkage,
            )
    except ErlangInputError as exc:
        raise _fail("--" + exc.param.replace("_", "-"), exc.detail) from None
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
    else:
        Console().print(_table(result, sl_time_s, patience_s, shrinkage))


@contextmanager
def _reading(option: str, path: Path) -> Iterator[None]:
    """An interval file that cannot be read or understood: one line naming the option."""
    try:
        yield
    except OSError as exc:
        raise _fail(option, f"{path}: {exc.strerror}") from None
    except (ForecastError, UnicodeDecodeError) as exc:
        raise _fail(option, f"{path}: {exc}") from None


def _activities(option: str, path: Path) -> list[Activity]:
    """A roster or schedule file (``agent,start,end,activity``), or one line naming it."""
    try:
        return read_activities(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise _fail(option, f"{path}: {exc.strerror}") from None
    except (ActivityError, UnicodeDecodeError) as exc:
        raise _fail(option, f"{path}: {exc}") from None


def _write_csv(out: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    try:
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise _fail("--out", f"{out}: {exc.strerror}") from None


STAFF_COLUMNS = ["interval_start", "calls", "aht", "agents", "positions", "service_level",
                 "asa", "occupancy", "abandon_rate"]


def staff(
    forecast: Annotated[Path, typer.Option(help="Forecast CSV: interval_start, calls[, aht].")],
    aht: Annotated[
        str | None, typer.Option(help="Handle time where the file has no aht, e.g. 300, 5m.")
    ] = None,
    sl_time: Annotated[str, typer.Option(help="Service level threshold, e.g. 20s.")] = "20s",
    sl_target: Annotated[
        float, typer.Option(help="Share of offered calls to answer within --sl-time (0-1].")
    ] = 0.8,
    patience: Annotated[
        str | None, typer.Option(help="Mean caller patience; switches to Erlang A (abandons).")
    ] = None,
    shrinkage: Annotated[
        float, typer.Option(help="Share of paid time off the phones, to gross up positions.")
    ] = 0.0,
    max_occupancy: Annotated[
        float, typer.Option(help="Upper bound on agent occupancy (0-1].")
    ] = 1.0,
    interval: Annotated[
        str | None, typer.Option(help="Interval length (default: the file's usual step).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the requirement to this CSV.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Agents required per interval of a forecast (Erlang C, or A with --patience)."""
    with _reading("--forecast", forecast):
        rows = read_forecast(forecast.read_text(encoding="utf-8-sig"))
        period = _seconds("--interval", interval) if interval else interval_length(rows)
    try:
        result = staff_intervals(
            rows,
            period=period,
            aht=None if aht is None else _seconds("--aht", aht),
            sl_time=_seconds("--sl-time", sl_time),
            sl_target=sl_target,
            patience=None if patience is None else _seconds("--patience", patience),
            shrinkage=shrinkage,
            max_occupancy=max_occupancy,
        )
    except ErlangInputError as exc:
        raise _fail("--" + exc.param.replace("_", "-"), exc.detail) from None
    if out is not None:
        _write_csv(out, STAFF_COLUMNS,
                   ([("" if r[k] is None else r[k]) for k in STAFF_COLUMNS] for r in result))
    peak = max(result, key=lambda r: r["positions"])
    hours = sum(r["positions"] for r in result) * period / 3600
    if json_output:
        typer.echo(json.dumps({"interval": period, "intervals": result,
                               "peak_positions": peak["positions"],
                               "position_hours": hours}))
        return
    table = Table(title=f"Agents required per {period / 60:g}-minute interval",
                  title_justify="left")
    for name in ("interval", "calls", "agents", "positions", "SL", "occupancy"):
        table.add_column(name, justify="left" if name == "interval" else "right")
    for r in result:
        table.add_row(r["interval_start"], f"{r['calls']:g}", str(r["agents"]),
                      str(r["positions"]), _pct(r["service_level"]), _pct(r["occupancy"]))
    console = Console()
    console.print(table)
    console.print(f"{len(result)} intervals; peak {peak['positions']} positions at "
                  f"{peak['interval_start']}; {hours:,.1f} position-hours")


HOLIDAYS_HELP = (
    "File of holidays: one ISO date a line, optionally ',name' after it. In the history they "
    "are unknown days (no method learns a normal day from them). A holiday in the horizon is "
    "forecast as the history's past holidays went: its normal forecast times their mean ratio "
    "to the same weekday one and two weeks around them, spread over the day as they were; "
    "with no past holiday in the history, as the quietest day of the week ahead (usually "
    "Sunday). A listed day the history has no rows for is unknown, not closed.")


def forecast(
    history_file: Annotated[
        Path, typer.Option("--history", help="History CSV: interval_start, calls[, aht].")
    ],
    horizon: Annotated[str, typer.Option(help="How far ahead, e.g. 7d, 1d.")] = "7d",
    method: Annotated[
        str, typer.Option(help=f"auto, {', '.join(METHODS)}.")
    ] = "auto",
    holidays: Annotated[Path | None, typer.Option(help=HOLIDAYS_HELP)] = None,
    interval: Annotated[
        str | None, typer.Option(help="Interval length (default: the file's usual step).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the forecast to this CSV (the history's columns: with aht "
                     "when the history has it, the call-weighted mean of the same slot)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Forecast calls per interval; auto picks the method by a backtest on the history."""
    if method != "auto" and method not in METHODS:
        raise _fail("--method", f"{method!r}: one of auto, {', '.join(METHODS)}")
    days = {}
    if holidays is not None:
        with _reading("--holidays", holidays):
            days = read_holidays(holidays.read_text(encoding="utf-8-sig"))
    with _reading("--history", history_file):
        rows = read_forecast(history_file.read_text(encoding="utf-8-sig"))
        h = history(rows, _seconds("--interval", interval) if interval else None)
    steps = _seconds("--horizon", horizon) / h.step
    if steps < 1 or steps != int(steps):
        raise _fail("--horizon", f"must be a whole number of {h.step:g}-second intervals")
    try:
        made = plan(h, int(steps), method, days)
    except ForecastError as exc:
        raise _fail("--method", f"auto: {exc}") from None
    result, chosen = made.intervals, made.method
    if out is not None:
        header = ["interval_start", "calls", *(["aht"] if made.with_aht else [])]
        _write_csv(out, header, ((r.start.isoformat(), f"{r.calls:g}",
                                  *(["" if r.aht is None else f"{r.aht:g}"]
                                    if made.with_aht else []))
                                 for r in result))
    if json_output:
        typer.echo(json.dumps({"interval": h.step, **made.to_dict(days)}))
        return
    table = Table(title="Backtest (rolling origins, the last weeks of the history)",
                  title_justify="left")
    for name in ("method", "interval MAPE", "MAE (calls)", "daily total error"):
        table.add_column(name, justify="left" if name == "method" else "right")
    for a in made.backtest:
        mark = " ←" if a.method == chosen else ""
        table.add_row(a.method + mark, f"{a.mape:.1f}%", f"{a.mae:.2f}", f"{a.daily_error:.1f}%")
    console = Console()
    console.print(table)
    named = ", ".join(f"{d.isoformat()} {days[d]}".strip() for d in made.holidays)
    console.print(f"{chosen}: {len(result)} intervals from {result[0].start.isoformat()}, "
                  f"{sum(r.calls for r in result):,.0f} calls"
                  + (f"; holidays {named}" if named else "") + (f" → {out}" if out else ""))


def _instant(option: str, text: str) -> float:
    """ISO 8601 date or time (local time when no offset is given) as Unix seconds."""
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _fail(option, f"{text!r} is not an ISO 8601 date or time") from None
    return (stamp if stamp.tzinfo else stamp.astimezone()).timestamp()


def history_command(
    tenant: Annotated[str, typer.Option(help="The tenant's slug, e.g. demo-bank.")],
    from_: Annotated[
        str, typer.Option("--from", help="First instant, ISO 8601 local time (a midnight).")
    ],
    to: Annotated[
        str, typer.Option(help="End of the range (excluded; intervals not yet over are left "
                          "out), ISO 8601.")
    ],
    queue: Annotated[
        str | None, typer.Option(help="One queue (default: the whole center, each call once).")
    ] = None,
    interval: Annotated[str, typer.Option(help="Interval length, e.g. 15m, 30m, 1h.")] = "30m",
    db: Annotated[
        str | None,
        typer.Option(help="Database URL (default: SQLite in the data dir); postgresql://..."),
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="Where the embedded database lives.")] = Path(
        "data"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Write the history to this CSV (default: stdout).")
    ] = None,
) -> None:
    """A forecast's history from the server's stored calls: offered calls and AHT per
    interval, as the interval reports count them (interval_start, calls, aht)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from hotline.db.database import DatabaseURLError, normalise_url, open_database
    from hotline.db.schema import Tenant
    from hotline.events.store import EventStore
    from hotline.wfm.history import COLUMNS, history_rows, passed

    t0, t1 = _instant("--from", from_), _instant("--to", to)
    if t1 <= t0:
        raise _fail("--to", "must be after --from")
    step = _seconds("--interval", interval)
    if step <= 0 or 86400 % step:
        raise _fail("--interval", f"{interval!r} must divide a day")
    url = db or f"sqlite:///{(data_dir / 'hotline.db').resolve()}"  # as `hotline serve`
    try:
        url = normalise_url(url)
    except DatabaseURLError as exc:
        raise _fail("--db", exc) from None
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise _fail("--db", f"no database at {url.removeprefix('sqlite:///')}")
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            tenant_id = conn.execute(select(Tenant.id).where(Tenant.slug == tenant)).scalar()
        if tenant_id is None:
            raise _fail("--tenant", f"no tenant {tenant!r} in this database")
        # an interval still running would pass for a quiet one: only those over are read
        events = EventStore(engine).read(tenant_id, t0, passed(t0, t1, step, time.time()))
        rows = history_rows(events, start=t0, step=step, queue=queue)
    except SQLAlchemyError as exc:
        raise _fail("--db", str(exc).splitlines()[0]) from None
    finally:
        engine.dispose()
    lines = ([r[k] if r[k] is not None else "" for k in COLUMNS] for r in rows)
    if out is not None:
        _write_csv(out, COLUMNS, lines)
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(lines)
    if not rows:
        typer.echo(f"note: no calls {'in ' + queue + ' ' if queue else ''}in that range",
                   err=True)
