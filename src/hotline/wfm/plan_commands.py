"""`hotline wfm schedule`, `hotline wfm roster` and `hotline wfm publish`: from agents
required per interval to shifts, from shifts to named agents, and the roster onto the server
(registered by hotline.cli)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hotline.wfm.activities import write_activities
from hotline.wfm.commands import _activities, _fail, _reading, _seconds
from hotline.wfm.roster import RosterError, assign, lines_of, read_agents, reason_text
from hotline.wfm.schedule import (
    WEEKDAYS,
    RulesError,
    Schedule,
    ScheduleError,
    load_rules,
    requirement,
    solve,
)
from hotline.wfm.staffing import read_forecast


def _write(out: Path, text: str) -> None:
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail("--out", f"{out}: {exc.strerror}") from None


def _shift_table(schedule: Schedule) -> Table:
    days = schedule.requirement.days
    start = schedule.requirement.start
    table = Table(title="Agents starting each shift", title_justify="left")
    table.add_column("tour / shift")
    for day in (start.date() + timedelta(days=d) for d in range(days)):
        table.add_column(f"{WEEKDAYS[day.weekday()].title()} {day:%m-%d}", justify="right")
    counts: Counter[tuple[str, str, int]] = Counter()
    for a in schedule.assignments:
        counts[a.tour, a.template.name, a.day] += a.count
    for tour, shift in sorted({(t, s) for t, s, _ in counts}):
        table.add_row(f"{tour} / {shift}",
                      *(str(counts.get((tour, shift, d), "")) for d in range(days)))
    return table


def schedule(
    requirements: Annotated[
        Path, typer.Option(help="Requirement CSV (what `wfm staff --out` writes).")
    ],
    rules: Annotated[Path, typer.Option(help="Shift rules YAML (shifts, breaks, tours, costs).")],
    column: Annotated[
        str, typer.Option(help="Requirement column to cover: positions or agents.")
    ] = "positions",
    time_limit: Annotated[
        str | None, typer.Option(help="Solver time limit (default: the rules', 120s).")
    ] = None,
    gap: Annotated[
        float | None, typer.Option(help="Stop at this relative gap (default: the rules', 0.01).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write each line's week as activities CSV.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Choose how many agents work which shift on which day, with breaks and weekly tours,
    to cover the requirement at least cost (a MIP solved by HiGHS within a time limit)."""
    try:
        spec = load_rules(rules)
    except RulesError as exc:
        raise _fail("--rules", exc) from None
    with _reading("--requirements", requirements):
        rows = read_forecast(requirements.read_text(encoding="utf-8-sig"), column)
        req = requirement(rows, spec.interval)
    limit = None if time_limit is None else _seconds("--time-limit", time_limit)
    if limit is not None and limit <= 0:
        raise _fail("--time-limit", "must be > 0")
    if gap is not None and not 0 <= gap < 1:
        raise _fail("--gap", "a relative gap: at least 0 and below 1, e.g. 0.01")
    try:
        result = solve(spec, req, time_limit=limit, gap=gap)
    except ScheduleError as exc:
        raise _fail("--rules", exc) from None
    if out is not None:
        _write(out, write_activities(result.activities()))
    summary = result.summary()
    if json_output:
        typer.echo(json.dumps({
            **summary,
            "shifts": result.shifts(),
            "coverage": [
                {"interval_start": req.interval_start(i).isoformat(),
                 "required": float(req.need[i]), "scheduled": float(result.coverage[i])}
                for i in range(len(req.need))
            ],
        }))
        return
    console = Console()
    console.print(_shift_table(result))
    tours = Counter(line.tour for line in result.lines)
    console.print(
        f"{summary['status']}: cost {summary['objective']:,.1f}, best bound "
        f"{summary['bound']:,.1f}, gap {summary['gap']:.2%}, {summary['seconds']:.1f} s\n"
        f"{summary['agents']} agents ({', '.join(f'{n} {t}' for t, n in sorted(tours.items()))})"
        f", {summary['paid_hours']:,.1f} paid hours\n"
        f"coverage: {summary['required_agent_hours']:,.1f} agent-hours required, "
        f"{summary['scheduled_agent_hours']:,.1f} scheduled, "
        f"{summary['short_agent_hours']:,.1f} short in {summary['intervals_short']} intervals, "
        f"{summary['over_agent_hours']:,.1f} over"
        + (f"\n{summary['rest_violations']} rest(s) between shifts under the minimum"
           if summary["rest_violations"] else "")
        + (f"\n→ {out}" if out else "")
    )


def roster(
    schedule_file: Annotated[
        Path, typer.Option("--schedule", help="The schedule's activities CSV (`wfm schedule`).")
    ],
    agents: Annotated[
        Path, typer.Option(help="Agents CSV: agent, skills, min_hours, max_hours, unavailable, "
                                "available, prefer_start, prefer_off.")
    ],
    skill: Annotated[
        str | None, typer.Option(help="Only agents with this skill may take the lines.")
    ] = None,
    previous: Annotated[
        Path | None, typer.Option(help="The roster before this one (activities CSV): each "
                                       "agent's first shift keeps --min-rest after it.")
    ] = None,
    min_rest: Annotated[
        str, typer.Option(help="Rest after an agent's last shift in --previous.")
    ] = "11h",
    out: Annotated[Path | None, typer.Option(help="Write the roster as activities CSV.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Put named agents on the schedule's lines, respecting skills, contracted hours,
    availability, the rest after their previous roster, and preferences; lines nobody can
    take stay open."""
    lines = lines_of(_activities("--schedule", schedule_file))
    try:
        people = read_agents(agents.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise _fail("--agents", f"{agents}: {exc.strerror}") from None
    except (RosterError, UnicodeDecodeError) as exc:
        raise _fail("--agents", f"{agents}: {exc}") from None
    if not lines:
        raise _fail("--schedule", f"{schedule_file}: no activities")
    worked_until: dict[str, datetime] = {}
    if previous is not None:
        first = min(line.shifts[0].start for line in lines)
        for a in _activities("--previous", previous):
            if (a.start.tzinfo is None) != (first.tzinfo is None):
                raise _fail("--previous", f"{previous}: its times and the schedule's must "
                            "both have a UTC offset or both have none")
            if a.start < first:
                worked_until[a.agent] = max(a.end, worked_until.get(a.agent, a.end))
    result = assign(lines, people, skill, worked_until, _seconds("--min-rest", min_rest))
    if out is not None:
        _write(out, write_activities(result.activities))
    if json_output:
        typer.echo(json.dumps(result.to_dict()))
        return
    console = Console()
    table = Table(title="Roster", title_justify="left")
    for name in ("agent", "line", "days", "paid hours", "first start"):
        table.add_column(name, justify="right" if name == "paid hours" else "left")
    by_name = {line.name: line for line in lines}
    for name, agent in sorted(result.assigned.items(), key=lambda kv: kv[1]):
        line = by_name[name]
        days = " ".join(WEEKDAYS[s.start.weekday()] for s in line.shifts)
        table.add_row(agent, name, days, f"{line.paid_hours:g}",
                      f"{line.shifts[0].start:%a %H:%M}")
    console.print(table)
    for name, why in result.open_lines.items():
        text = "; ".join(reason_text(r) for r in why) or "no agents"
        console.print(f"[yellow]open[/] {name} ({by_name[name].paid_hours:g} h): {text}")
    if result.idle_agents:
        console.print(f"without a line: {', '.join(result.idle_agents)}")
    console.print(f"{len(result.assigned)} of {len(lines)} lines staffed"
                  + (f" → {out}" if out else ""))


def publish(
    roster_file: Annotated[
        Path, typer.Option("--roster", help="The roster's activities CSV (`wfm roster`).")
    ],
    server: Annotated[
        str, typer.Option(envvar="HOTLINE_SERVER", help="The Hotline server's base URL.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option(envvar="HOTLINE_API_KEY", show_default=False,
                          help="An API key of a planner or admin (best from the environment).")
    ] = "",
    from_: Annotated[
        str | None, typer.Option("--from", help="Replace from (default: the roster's first day).")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Replace until, excluded (default: after its last day).")
    ] = None,
    only_listed: Annotated[
        bool, typer.Option(help="Replace only the roster's own agents' activities (one "
                                "team's roster), not every agent's in the range.")
    ] = False,
) -> None:
    """Publish a roster to the server: its activities replace those starting in [from, to)
    and adherence is measured against them at once (PUT /api/v1/wfm/roster)."""
    if not api_key:
        raise _fail("--api-key", "give a planner's API key (or set HOTLINE_API_KEY)")
    activities = _activities("--roster", roster_file)
    if not activities:
        raise _fail("--roster", f"{roster_file}: no activities")
    first = min(a.start for a in activities).date()
    last = max(a.start for a in activities).date() + timedelta(days=1)
    query = urllib.parse.urlencode({"from": from_ or first.isoformat(),
                                    "to": to or last.isoformat(),
                                    "agents": "listed" if only_listed else "all"})
    url = f"{server.rstrip('/')}/api/v1/wfm/roster?{query}"
    request = urllib.request.Request(
        url, data=write_activities(activities).encode(), method="PUT",
        headers={"Content-Type": "text/csv; charset=utf-8", "X-API-Key": api_key})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.load(exc).get("detail") or exc.reason
        except ValueError:
            detail = exc.reason
        typer.echo(f"error: the server refused the roster ({exc.code}): {detail}", err=True)
        raise typer.Exit(1) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        typer.echo(f"error: cannot reach {server}: {reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"published {body['activities']} activities of {body['agents']} agents "
               f"for {body['from']} – {body['to']}")
