"""Rostering: put named agents on the schedule's lines (one anonymous agent's week each).

A line suits an agent when the agent has the skill, the line's paid hours are within the
agent's contract, it works none of the agent's unavailable days and its shifts fit the
agent's daily availability; among the assignments that staff the most lines, the one with
the least preference cost is chosen (an assignment problem, solved exactly). Lines nobody
suits stay open and are reported with the reason, as are agents left without a line.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hotline.wfm.activities import Activity

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNSUITED = 1e9
_PAID = {"work", "break", "meeting", "training"}  # a meal is unpaid
_WINDOW = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)$")


class RosterError(ValueError):
    """An agents file that cannot be used: says the line and the column."""


@dataclass(frozen=True, slots=True)
class AgentContract:
    agent: str
    skills: dict[str, int]
    min_hours: float | None = None
    max_hours: float | None = None
    unavailable_days: frozenset[int] = frozenset()  # weekdays
    unavailable_dates: frozenset[date] = frozenset()
    window: tuple[float, float] | None = None  # seconds of day; end < start crosses midnight
    prefer_start: float | None = None  # seconds of day
    prefer_off: frozenset[int] = frozenset()


@dataclass(slots=True)
class Shift:
    start: datetime
    end: datetime


@dataclass(slots=True)
class LineWeek:
    """A schedule line read back from its activities."""

    name: str
    activities: list[Activity] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)
    paid_hours: float = 0.0


def lines_of(activities: list[Activity]) -> list[LineWeek]:
    """Group activities by line; back-to-back activities make one shift."""
    lines: dict[str, LineWeek] = {}
    for a in sorted(activities, key=lambda a: (a.agent, a.start)):
        line = lines.setdefault(a.agent, LineWeek(a.agent))
        line.activities.append(a)
        if a.kind in _PAID:
            line.paid_hours += a.seconds / 3600.0
        if line.shifts and line.shifts[-1].end == a.start:
            line.shifts[-1].end = a.end
        else:
            line.shifts.append(Shift(a.start, a.end))
    return list(lines.values())


def _seconds_of_day(t: datetime) -> float:
    return t.hour * 3600.0 + t.minute * 60.0 + t.second


def _hours(line: int, column: str, raw: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise RosterError(f"line {line}: {column} {raw!r} is not a number of hours") from None
    if not 0 <= value <= 168:
        raise RosterError(f"line {line}: {column} must be between 0 and 168 hours")
    return value


def _clock(line: int, column: str, raw: str) -> float:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", raw.strip())
    if not match:
        raise RosterError(f"line {line}: {column} {raw!r} is not a time of day HH:MM")
    return int(match.group(1)) * 3600.0 + int(match.group(2)) * 60.0


def _days(line: int, column: str, raw: str) -> tuple[frozenset[int], frozenset[date]]:
    days, dates = set(), set()
    for item in re.split(r"[\s;,]+", raw.strip().lower()):
        if not item:
            continue
        if item[:3] in WEEKDAYS:
            days.add(WEEKDAYS.index(item[:3]))
            continue
        try:
            dates.add(date.fromisoformat(item))
        except ValueError:
            raise RosterError(
                f"line {line}: {column}: {item!r} is neither a weekday (mon…sun) nor a date "
                "YYYY-MM-DD"
            ) from None
    return frozenset(days), frozenset(dates)


def read_agents(text: str) -> list[AgentContract]:
    """Agents CSV: ``agent`` plus any of ``skills`` ("support:3 sales"), ``min_hours``,
    ``max_hours`` (paid hours over the schedule), ``unavailable`` (weekdays and dates),
    ``available`` ("08:00-18:00" daily), ``prefer_start`` ("09:00"), ``prefer_off``
    (weekdays)."""
    reader = csv.DictReader(io.StringIO(text))
    if "agent" not in (reader.fieldnames or ()):
        raise RosterError("line 1: missing column agent")
    known = {"agent", "skills", "min_hours", "max_hours", "unavailable", "available",
             "prefer_start", "prefer_off"}
    unknown = set(reader.fieldnames or ()) - known
    if unknown:
        raise RosterError(f"line 1: unknown column(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(known))})")
    agents: list[AgentContract] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        def get(column: str, row: dict[str, Any] = row) -> str:
            return (row.get(column) or "").strip()

        name = get("agent")
        if not name:
            raise RosterError(f"line {line}: agent is empty")
        if name in seen:
            raise RosterError(f"line {line}: agent {name!r} is listed twice")
        seen.add(name)
        skills: dict[str, int] = {}
        for item in re.split(r"[\s;,]+", get("skills")):
            if not item:
                continue
            skill, _, level = item.partition(":")
            if not level:
                skills[skill] = 1
            elif level.isdigit() and 1 <= int(level) <= 10:
                skills[skill] = int(level)
            else:
                raise RosterError(f"line {line}: skills: {item!r} needs a level 1-10")
        low, high = _hours(line, "min_hours", get("min_hours")), _hours(
            line, "max_hours", get("max_hours"))
        if low is not None and high is not None and low > high:
            raise RosterError(f"line {line}: min_hours is above max_hours")
        days, dates = _days(line, "unavailable", get("unavailable"))
        window = None
        if get("available"):
            match = _WINDOW.match(get("available"))
            if not match:
                raise RosterError(f"line {line}: available {get('available')!r} is not "
                                  "HH:MM-HH:MM")
            a, b = (int(match.group(i)) * 3600.0 + int(match.group(i + 1)) * 60.0
                    for i in (1, 3))
            window = (a, b)
        prefer = _clock(line, "prefer_start", get("prefer_start")) if get("prefer_start") \
            else None
        off, off_dates = _days(line, "prefer_off", get("prefer_off"))
        if off_dates:
            raise RosterError(f"line {line}: prefer_off takes weekdays")
        agents.append(AgentContract(name, skills, low, high, days, dates, window, prefer, off))
    if not agents:
        raise RosterError("no agents")
    return agents


def _fits_window(shift: Shift, window: tuple[float, float]) -> bool:
    a, b = window
    start = _seconds_of_day(shift.start)
    length = (shift.end - shift.start).total_seconds()
    span = b - a if b > a else b + 86400.0 - a
    offset = (start - a) % 86400.0
    return offset + length <= span + 1e-6


#: Why an agent cannot take a line: a code with its figures (the web page words it in the
#: user's language) and the English the command line prints.
REASONS = {
    "skill": "lack skill {skill}",
    "rest": "would rest only {hours:g} h after their last shift",
    "under_contract": "need at least {hours:g} h ({line:g} h is too few)",
    "over_contract": "work at most {hours:g} h ({line:g} h is too many)",
    "unavailable": "are unavailable on {date}",
    "outside_hours": "are not available for the {day} {time} shift",
    "taken": "who suit it took other lines",
}


def reason_text(reason: dict[str, Any]) -> str:
    """``{"reason": code, "agents": n, ...figures}`` in English."""
    return f"{reason['agents']} agent(s) " + REASONS[reason["reason"]].format(**reason)


def suitability(agent: AgentContract, line: LineWeek, skill: str | None,
                worked_until: datetime | None = None, min_rest: float = 0.0
                ) -> tuple[str, tuple[tuple[str, Any], ...]] | None:
    """Why ``agent`` cannot work ``line`` (a code and its figures), or None when they can.
    ``worked_until``: the end of the agent's last shift before this schedule (its first
    shift must leave the rest)."""
    if skill is not None and skill not in agent.skills:
        return "skill", (("skill", skill),)
    if worked_until is not None and line.shifts:
        rest = (line.shifts[0].start - worked_until).total_seconds()
        if rest < min_rest:
            return "rest", (("hours", round(max(rest, 0) / 3600, 2)),)
    hours = round(line.paid_hours, 2)
    if agent.min_hours is not None and line.paid_hours < agent.min_hours - 1e-6:
        return "under_contract", (("hours", agent.min_hours), ("line", hours))
    if agent.max_hours is not None and line.paid_hours > agent.max_hours + 1e-6:
        return "over_contract", (("hours", agent.max_hours), ("line", hours))
    for shift in line.shifts:
        day = shift.start.date()
        if day.weekday() in agent.unavailable_days or day in agent.unavailable_dates:
            return "unavailable", (("date", day.isoformat()),)
        if agent.window is not None and not _fits_window(shift, agent.window):
            return "outside_hours", (("day", WEEKDAYS[day.weekday()]),
                                     ("time", f"{shift.start:%H:%M}"))
    return None


def preference_cost(agent: AgentContract, line: LineWeek) -> float:
    """Hours away from the preferred start, averaged over shifts, plus 4 per shift on a day
    the agent prefers off (a day off is worth about half a shift of start-time drift)."""
    cost = 0.0
    if agent.prefer_start is not None and line.shifts:
        drift = 0.0
        for shift in line.shifts:
            d = abs(_seconds_of_day(shift.start) - agent.prefer_start)
            drift += min(d, 86400.0 - d) / 3600.0
        cost += drift / len(line.shifts)
    cost += 4.0 * sum(s.start.weekday() in agent.prefer_off for s in line.shifts)
    return cost


@dataclass(slots=True)
class Roster:
    activities: list[Activity]
    assigned: dict[str, str]  # line → agent
    open_lines: dict[str, list[dict[str, Any]]]  # line → why nobody took it (REASONS)
    idle_agents: list[str]
    preference_cost: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "assigned": self.assigned,
            "open_lines": self.open_lines,
            "idle_agents": self.idle_agents,
            "preference_cost": self.preference_cost,
        }


def assign(lines: list[LineWeek], agents: list[AgentContract], skill: str | None = None,
           worked_until: dict[str, datetime] | None = None,
           min_rest: float = 11 * 3600.0) -> Roster:
    """``worked_until``: when each agent's last shift before the schedule ends (e.g. from
    the roster published for the days before), kept ``min_rest`` from its first shift."""
    cost = np.full((len(agents), len(lines)), _UNSUITED)
    reasons: dict[str, Counter[tuple[str, tuple[tuple[str, Any], ...]]]] = defaultdict(Counter)
    for i, agent in enumerate(agents):
        for j, line in enumerate(lines):
            why = suitability(agent, line, skill, (worked_until or {}).get(agent.agent),
                              min_rest)
            if why is None:
                cost[i, j] = preference_cost(agent, line)
            else:
                reasons[line.name][why] += 1
    rows, cols = linear_sum_assignment(cost)
    assigned: dict[str, str] = {}
    total = 0.0
    for i, j in zip(rows, cols, strict=True):
        if cost[i, j] < _UNSUITED:
            assigned[lines[j].name] = agents[i].agent
            total += float(cost[i, j])
    taken = set(assigned.values())
    open_lines = {}
    for j, line in enumerate(lines):
        if line.name in assigned:
            continue
        explained = [{"reason": code, "agents": n, **dict(figures)}
                     for (code, figures), n in reasons[line.name].most_common(3)]
        suited = int((cost[:, j] < _UNSUITED).sum())
        if suited:
            explained.append({"reason": "taken", "agents": suited})
        open_lines[line.name] = explained
    activities = [
        Activity(assigned[a.agent], a.start, a.end, a.kind)
        for line in lines if line.name in assigned for a in line.activities
    ]
    activities.sort(key=lambda a: (a.agent, a.start))
    idle = [a.agent for a in agents if a.agent not in taken]
    return Roster(activities, assigned, open_lines, idle, total)

