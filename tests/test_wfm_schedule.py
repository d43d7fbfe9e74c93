"""Shift scheduling and rostering (issue 7): the schedule a planner gets covers what it says
it covers — checked from the activities file it writes, not from the solver's numbers — keeps
tours, breaks, rests and contracts, and costs no more than any other schedule would."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm.activities import Activity, read_activities, write_activities
from hotline.wfm.roster import AgentContract, assign, lines_of, read_agents
from hotline.wfm.schedule import (
    Rules,
    ScheduleError,
    days_off_patterns,
    requirement,
    short_rests,
    solve,
)
from hotline.wfm.staffing import Interval

MONDAY = datetime(2026, 12, 7)
STEP = 1800.0


def rules(**fields: object) -> Rules:
    return Rules.model_validate(fields)


def need_of(values: dict[tuple[int, float], float], days: int) -> list[Interval]:
    """Intervals over ``days`` from MONDAY: ``values[(day, hour)]`` agents, else 0."""
    out = []
    for i in range(days * 48):
        t = MONDAY + timedelta(seconds=i * STEP)
        out.append(Interval(t, values.get((i // 48, (i % 48) / 2), 0.0), None))
    return out


def on_phones(activities: list[Activity], start: datetime, n: int, wrap: bool) -> np.ndarray:
    """Agents working per interval, from the activities alone (time past the end wraps to
    the start when the horizon repeats)."""
    out = np.zeros(n)
    for a in activities:
        if a.kind != "work":
            continue
        t0 = (a.start - start).total_seconds()
        t1 = (a.end - start).total_seconds()
        t = t0
        while t < t1 - 1e-9:
            i = int(t // STEP)
            edge = min(t1, (i + 1) * STEP)
            if wrap:
                out[i % n] += (edge - t) / STEP
            elif i < n:
                out[i] += (edge - t) / STEP
            t = edge
    return out


def test_cheapest_schedule_matches_exhaustive_search() -> None:
    """A day with a morning peak, three templates: the program's cost is the least over every
    combination of shift counts that covers the requirement."""
    spec = rules(shifts=[
        {"name": "early", "start": ["06:00", "08:00"], "length": "8h"},
        {"name": "short", "start": "10:00", "length": "4h", "cost_per_hour": 1.25},
    ])
    need = {(0, h / 2): v for h, v in zip(range(12, 32), [1] * 4 + [3] * 8 + [2] * 8,
                                           strict=True)}
    rows = need_of(need, 1)
    req = requirement(rows, None)
    schedule = solve(spec, req)
    # Exhaustive: counts of (06:00 8h, 08:00 8h, 10:00 4h), each 0..4.
    starts = [(6.0, 8.0, 8.0), (8.0, 8.0, 8.0), (10.0, 4.0, 5.0)]  # start h, length h, cost
    best = np.inf
    for counts in itertools.product(range(5), repeat=3):
        cover = np.zeros(48)
        for (s, length, _), k in zip(starts, counts, strict=True):
            cover[int(s * 2):int((s + length) * 2)] += k
        if (cover >= req.need).all():
            best = min(best, sum(k * c for (_, _, c), k in zip(starts, counts, strict=True)))
    assert schedule.status == "optimal" and best < np.inf
    assert schedule.objective == pytest.approx(best)
    assert schedule.bound <= schedule.objective + 1e-6
    assert (on_phones(schedule.activities(), MONDAY, 48, False) >= req.need - 1e-9).all()


def test_breaks_are_placed_in_their_windows_and_coverage_holds_around_them() -> None:
    spec = rules(break_step="15m", shifts=[{
        "name": "day", "start": {"from": "07:00", "to": "10:00", "step": "30m"},
        "length": "8h30m",
        "breaks": [{"duration": "15m", "earliest": "1h30m", "latest": "2h30m"},
                   {"duration": "30m", "earliest": "3h30m", "latest": "5h", "paid": False}],
    }])
    need = {(0, h / 2): 4.0 for h in range(18, 32)} | {(0, h / 2): 2.0 for h in range(32, 36)}
    rows = need_of(need, 1)
    req = requirement(rows, None)
    schedule = solve(spec, req)
    acts = schedule.activities()
    assert (on_phones(acts, MONDAY, 48, False) >= req.need - 1e-9).all()
    by_line: dict[str, list[Activity]] = {}
    for a in acts:
        by_line.setdefault(a.agent, []).append(a)
    for line in by_line.values():
        begin = line[0].start
        breaks = [a for a in line if a.kind != "work"]
        assert [a.kind for a in breaks] == ["break", "meal"]
        first, meal = ((a.start - begin).total_seconds() / 3600 for a in breaks)
        assert 1.5 <= first <= 2.5 and 3.5 <= meal <= 5.0
        assert line[-1].end - begin == timedelta(hours=8, minutes=30)
    # Paid hours: the meal is unpaid, so each shift costs 8 h.
    assert schedule.summary()["paid_hours"] == pytest.approx(8.0 * len(by_line))


def test_tours_give_five_shifts_and_two_days_off_together() -> None:
    spec = rules(
        shifts=[{"name": "day", "start": ["08:00", "12:00"], "length": "8h"}],
        tours=[{"name": "full-time", "working_days": 5, "consecutive_days_off": True}],
    )
    weekday_need = {(d, h / 2): (3.0 if d < 5 else 1.0) for d in range(7) for h in range(16, 40)}
    rows = need_of(weekday_need, 7)
    req = requirement(rows, None)
    schedule = solve(spec, req)
    assert (on_phones(schedule.activities(), MONDAY, 7 * 48, True) >= req.need - 1e-9).all()
    patterns = set(days_off_patterns(5, True))
    for line in schedule.lines:
        assert len(line.shifts) == 5
        assert tuple(sorted(line.shifts)) in patterns  # Monday is day 0 of this horizon
    # Weekdays need 3 all day, weekends 1: at least 3 agents work each weekday.
    assert len(schedule.lines) >= 3


def test_night_shifts_cross_midnight_and_the_week_wraps() -> None:
    """A night service 22:00–06:00 every night: Sunday's night shift covers Monday 00:00–06:00
    of the repeating week, and no shift is needed that starts on Monday before 06:00."""
    spec = rules(
        min_rest="8h",
        shifts=[{"name": "night", "start": "22:00", "length": "8h"}],
        tours=[{"name": "nights", "working_days": 5}],
    )
    need = {(d, h / 2): 2.0 for d in range(7) for h in itertools.chain(range(0, 12),
                                                                        range(44, 48))}
    rows = need_of(need, 7)
    req = requirement(rows, None)
    schedule = solve(spec, req)
    acts = schedule.activities()
    assert any(a.end > MONDAY + timedelta(days=7) for a in acts)  # Sunday night runs over
    assert (on_phones(acts, MONDAY, 7 * 48, True) >= req.need - 1e-9).all()
    assert not any(a.start.date() == MONDAY.date() and a.start.hour < 6 for a in acts)
    # 2 agents every night of 7, each working 5: 14 shifts need at least 3 agents.
    assert len(schedule.lines) == 3
    assert schedule.rest_violations == 0


def test_rest_between_shifts_is_kept() -> None:
    """A late shift (16–24) one day and an early one (06–16) the next would leave 6 hours'
    rest; with 11 hours required the lines keep them apart (recomputed from the lines)."""
    spec = rules(
        min_rest="11h",
        shifts=[{"name": "early", "start": "06:00", "length": "10h"},
                {"name": "late", "start": "16:00", "length": "8h"}],
        tours=[{"name": "full-time", "working_days": 5}],
    )
    need = {(d, h / 2): 2.0 for d in range(7) for h in range(12, 48)}
    rows = need_of(need, 7)
    req = requirement(rows, None)
    schedule = solve(spec, req)
    assert schedule.rest_violations == 0
    assert sum(short_rests(line, 7, True, 11 * 3600) for line in schedule.lines) == 0
    assert any(t.name == "late" for line in schedule.lines for t, _ in line.shifts.values())


def test_shortfall_is_bought_when_cheaper_than_a_shift() -> None:
    """One half-hour needing one agent: a whole 8 h shift costs 8, leaving the half hour
    short costs under_coverage × 0.5 h. The cheaper wins, and a hard requirement hires."""
    shifts = [{"name": "day", "start": "08:00", "length": "8h"}]
    rows = need_of({(0, 9.0): 1.0}, 1)
    req = requirement(rows, None)
    soft = solve(rules(shifts=shifts, costs={"under_coverage": 4.0}), req)
    assert soft.objective == pytest.approx(4.0 * 0.5)
    assert soft.summary()["short_agent_hours"] == pytest.approx(0.5)
    assert not soft.lines
    hard = solve(rules(shifts=shifts), req)
    assert hard.objective == pytest.approx(8.0)


def test_requirement_no_shift_can_cover_is_reported() -> None:
    rows = need_of({(0, 3.0): 1.0}, 1)  # 03:00, but shifts run 08:00–16:00
    req = requirement(rows, None)
    with pytest.raises(ScheduleError, match="under_coverage"):
        solve(rules(shifts=[{"name": "day", "start": "08:00", "length": "8h"}]), req)


def test_rostering_respects_skills_contracts_availability_and_preferences() -> None:
    day = MONDAY
    acts = [
        Activity("line-1", day.replace(hour=7), day.replace(hour=15), "work"),
        Activity("line-2", day.replace(hour=14), day.replace(hour=22), "work"),
        Activity("line-3", day + timedelta(days=5, hours=9), day + timedelta(days=5, hours=13),
                 "work"),
    ]
    lines = lines_of(acts)
    people = [
        AgentContract("ann", {"support": 2}, prefer_start=15 * 3600.0),
        AgentContract("bob", {"support": 1}, window=(6 * 3600.0, 16 * 3600.0)),
        AgentContract("cat", {"sales": 1}),
        AgentContract("dan", {"support": 1}, max_hours=6.0, unavailable_days=frozenset({5})),
    ]
    result = assign(lines, people, "support")
    # bob can only work the early line (his hours end at 16:00); ann prefers the late start;
    # dan could take line-3 by hours but not on Saturday; cat lacks the skill.
    assert result.assigned == {"line-1": "bob", "line-2": "ann"}
    assert result.open_lines["line-3"] == [
        {"reason": "skill", "agents": 1, "skill": "support"},  # cat
        {"reason": "unavailable", "agents": 1, "date": "2026-12-12"},  # dan, a Saturday
        {"reason": "taken", "agents": 2}]  # ann and bob suit it but have the other lines
    assert sorted(result.idle_agents) == ["cat", "dan"]
    assert {a.agent for a in result.activities} == {"ann", "bob"}


def test_rostering_keeps_the_rest_after_the_previous_roster() -> None:
    """Ann worked until 23:00 on Sunday: with 11 hours' rest she cannot start at 07:00 on
    Monday, but can take the line starting at 14:00; Bob, who was off, takes the early one."""
    day = MONDAY
    lines = lines_of([
        Activity("early", day.replace(hour=7), day.replace(hour=15), "work"),
        Activity("late", day.replace(hour=14), day.replace(hour=22), "work"),
    ])
    ann = AgentContract("ann", {}, prefer_start=7 * 3600.0)  # she would rather start early
    bob = AgentContract("bob", {}, prefer_start=14 * 3600.0)
    worked = {"ann": day - timedelta(hours=1)}
    assert assign(lines, [ann, bob]).assigned == {"early": "ann", "late": "bob"}
    assert assign(lines, [ann, bob], worked_until=worked).assigned == {
        "early": "bob", "late": "ann"}
    alone = assign(lines, [ann], worked_until=worked)
    assert alone.assigned == {"late": "ann"}
    assert alone.open_lines["early"] == [{"reason": "rest", "agents": 1, "hours": 8}]


def test_agents_file_errors_name_the_line() -> None:
    from hotline.wfm.roster import RosterError

    with pytest.raises(RosterError, match="line 3: available"):
        read_agents("agent,available\nann,08:00-16:00\nbob,8am-4pm\n")
    with pytest.raises(RosterError, match="line 2: unavailable"):
        read_agents("agent,unavailable\nann,someday\n")
    with pytest.raises(RosterError, match="listed twice"):
        read_agents("agent\nann\nann\n")
    agents = read_agents("agent,skills,min_hours,max_hours,unavailable\n"
                         "ann,support:3 sales,30,40,sun 2026-12-24\n")
    assert agents[0].skills == {"support": 3, "sales": 1}
    assert agents[0].unavailable_days == frozenset({6})


def _write_rules(path: Path) -> None:
    path.write_text(yaml.safe_dump({
        "shifts": [{"name": "day", "start": {"from": "07:00", "to": "11:00", "step": "1h"},
                    "length": "8h",
                    "breaks": [{"duration": "30m", "earliest": "3h", "latest": "5h",
                                "paid": False}]}],
        "tours": [{"name": "full-time", "working_days": 5}],
        "solver": {"time_limit": "60s"},
    }))


def test_planner_goes_from_requirement_to_roster_on_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    req = tmp_path / "req.csv"
    lines = ["interval_start,positions"]
    for d in range(7):
        for h in range(16, 36):
            t = MONDAY + timedelta(days=d, minutes=30 * h)
            lines.append(f"{t.isoformat()},{3 if d < 5 else 1}")
    req.write_text("\n".join(lines) + "\n")
    _write_rules(tmp_path / "rules.yaml")
    sched = tmp_path / "schedule.csv"
    result = runner.invoke(app, ["wfm", "schedule", "--requirements", str(req), "--rules",
                                 str(tmp_path / "rules.yaml"), "--out", str(sched), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert summary["short_agent_hours"] == 0
    assert 0 <= summary["gap"] <= 0.01 and summary["bound"] <= summary["objective"] + 1e-6
    activities = read_activities(sched.read_text())
    assert len({a.agent for a in activities}) == summary["agents"]
    agents = tmp_path / "agents.csv"
    agents.write_text("agent,skills,max_hours\n" + "".join(
        f"agent-{i},support,40\n" for i in range(summary["agents"] + 2)))
    roster = tmp_path / "roster.csv"
    result = runner.invoke(app, ["wfm", "roster", "--schedule", str(sched), "--agents",
                                 str(agents), "--skill", "support", "--out", str(roster)])
    assert result.exit_code == 0, result.output
    named = read_activities(roster.read_text())
    assert len({a.agent for a in named}) == summary["agents"]
    assert all(a.agent.startswith("agent-") for a in named)
    # The roster is the schedule with names: same activities, same times.
    assert sorted((a.start, a.end, a.kind) for a in named) == \
        sorted((a.start, a.end, a.kind) for a in activities)
    assert write_activities(named).startswith("agent,start,end,activity\n")


def test_bad_rules_and_requirements_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    req = tmp_path / "req.csv"
    req.write_text("interval_start,positions\n2026-12-07T08:00,2\n2026-12-07T08:30,x\n")
    good = tmp_path / "rules.yaml"
    _write_rules(good)
    bad = tmp_path / "bad.yaml"
    bad.write_text("shifts:\n  - name: day\n    start: '25:00'\n    length: 8h\n")
    result = runner.invoke(app, ["wfm", "schedule", "--requirements", str(req),
                                 "--rules", str(bad)])
    assert result.exit_code == 2
    assert "shifts.0.start" in result.stderr and "25:00" in result.stderr
    result = runner.invoke(app, ["wfm", "schedule", "--requirements", str(req),
                                 "--rules", str(good)])
    assert result.exit_code == 2
    assert "line 3: positions" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    req.write_text("interval_start,positions\n2026-12-07T08:00,2\n2026-12-07T08:30,2\n")
    for option, value in (("--gap", "1.5"), ("--time-limit", "0s")):
        result = runner.invoke(app, ["wfm", "schedule", "--requirements", str(req),
                                     "--rules", str(good), option, value])
        assert result.exit_code == 2 and option in result.stderr
