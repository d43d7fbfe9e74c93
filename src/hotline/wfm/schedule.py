"""Shift scheduling: how many agents work which shift on which day, with breaks placed and
weekly tours, to cover a requirement at least cost — a mixed-integer program solved by HiGHS.

The model (one column per decision; integer unless said):

- ``x[t,d,s]``: agents of tour type ``t`` working shift template ``s`` on day ``d``;
- ``b[t,d,s,k,o]``: how many of those take their break ``k`` at offset ``o`` from the shift
  start (explicit break placement; each break's placements sum to ``x``);
- ``y[t,p]``: agents of tour type ``t`` on days-off pattern ``p``; each day the shifts of a
  tour type equal the agents whose pattern works that day, so every agent of a pattern works
  exactly one shift on each of its working days;
- ``u[i]``, ``o[i]`` (continuous): agents short of / over the requirement in interval ``i``.

Rest rows keep the day-to-day assignment possible: for each day and start time, the shifts
starting by then need no more agents than ended early enough the day before or were off.

Coverage counts the share of each interval an agent is on the phones, so 15-minute breaks in
30-minute intervals and shifts that start off the grid are exact. Shifts may cross midnight;
on a whole number of weeks the horizon wraps (the week repeats: Sunday night's shift covers
Monday morning), otherwise time past the end is dropped. The solver runs single-threaded with
a time limit and reports the objective, its best bound and the gap.

The solution is turned into *lines*: one anonymous agent's week (pattern, a shift each
working day, breaks), built day by day by an assignment that keeps the rest between shifts
and steady start times; ``roster`` then puts named agents on the lines.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Annotated, Any, Literal

import highspy
import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csc_array

from hotline.durations import parse_duration
from hotline.sim.scenario import format_validation_error, parse_clock, read_yaml_mapping
from hotline.wfm.activities import Activity
from hotline.wfm.staffing import ForecastError, Interval, interval_length

_DAY = 86400.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RulesError(ValueError):
    """Rules that cannot be scheduled with; the message names the file and the field."""


class ScheduleError(ValueError):
    """The solver found no schedule (infeasible rules, or no solution within the limit)."""


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError(f"not a duration: {value!r}")


def _clock(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"not a time of day: {value!r} (use 'HH:MM')")
    day, seconds = parse_clock(value)
    if day is not None:
        raise ValueError(f"a shift start is a time of day without weekday: {value!r}")
    return seconds


def _list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


Duration = Annotated[float, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _starts(value: Any) -> tuple[float, ...]:
    """'07:00', a list of such, or {from, to, step} ranges (inclusive) → seconds of day."""
    out: list[float] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            if set(item) != {"from", "to", "step"}:
                raise ValueError("a range of starts has exactly 'from', 'to' and 'step'")
            first, last, step = _clock(item["from"]), _clock(item["to"]), _duration(item["step"])
            if step <= 0:
                raise ValueError("the step of a range of starts must be > 0")
            if last < first:
                raise ValueError("'to' is before 'from' (a range over midnight is two ranges)")
            out.extend(first + i * step for i in range(int((last - first) // step) + 1))
        else:
            out.append(_clock(item))
    if not out:
        raise ValueError("give at least one start")
    return tuple(sorted(set(out)))


class BreakSpec(_Model):
    """A break starts between ``earliest`` and ``latest`` after the shift starts."""

    duration: Annotated[Duration, Field(gt=0)]
    earliest: Duration
    latest: Duration
    paid: bool = True
    kind: Literal["break", "meal"] | None = None  # default: paid → break, unpaid → meal

    @model_validator(mode="after")
    def _check(self) -> BreakSpec:
        if self.latest < self.earliest:
            raise ValueError("latest must not be before earliest")
        return self

    @property
    def activity(self) -> str:
        return self.kind or ("break" if self.paid else "meal")


class ShiftSpec(_Model):
    name: str = Field(min_length=1)
    starts: Annotated[tuple[float, ...], BeforeValidator(_starts)] = Field(alias="start")
    lengths: Annotated[list[Duration], BeforeValidator(_list)] = Field(
        alias="length", min_length=1
    )
    breaks: list[BreakSpec] = []
    days: list[Literal[WEEKDAYS]] | None = None  # type: ignore[valid-type]
    cost_per_hour: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ShiftSpec:
        for length in self.lengths:
            if not 0 < length <= _DAY:
                raise ValueError(f"length {length:g} s must be > 0 and at most a day")
            end = 0.0
            for i, brk in enumerate(self.breaks):
                if brk.earliest < end:
                    raise ValueError(
                        f"breaks.{i}: its window must start after the previous break's latest "
                        "end (breaks are listed in the order they are taken)"
                    )
                end = brk.latest + brk.duration
            if end > length:
                raise ValueError(f"the breaks' windows end after the {length / 3600:g} h shift")
        return self


class TourSpec(_Model):
    """A weekly pattern of working days that some agents follow."""

    name: str = Field(min_length=1)
    working_days: int = Field(ge=1, le=7)
    consecutive_days_off: bool = True
    shifts: list[str] | None = None  # names of shift templates; default: all
    max_agents: int | None = Field(None, ge=0)
    min_agents: int = Field(0, ge=0)


class CostSpec(_Model):
    paid_hour: float = Field(1.0, ge=0)
    #: per agent-hour short of the requirement; None: the requirement is a hard constraint
    under_coverage: float | None = Field(None, ge=0)
    #: per agent-hour over the requirement (besides the paid hours themselves)
    over_coverage: float = Field(0.0, ge=0)


class SolverSpec(_Model):
    time_limit: Duration = 120.0
    gap: float = Field(0.01, ge=0, lt=1)


class Rules(_Model):
    interval: Duration | None = None  # default: the requirement file's step
    break_step: Duration = 900.0
    min_rest: Duration = 11 * 3600.0
    shifts: list[ShiftSpec] = Field(min_length=1)
    tours: list[TourSpec] = []
    costs: CostSpec = CostSpec(paid_hour=1.0, under_coverage=None, over_coverage=0.0)
    solver: SolverSpec = SolverSpec(time_limit=120.0, gap=0.01)

    @model_validator(mode="after")
    def _names(self) -> Rules:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"shift names must be unique: {names}")
        tours = [t.name for t in self.tours]
        if len(set(tours)) != len(tours):
            raise ValueError(f"tour names must be unique: {tours}")
        for i, tour in enumerate(self.tours):
            for name in tour.shifts or ():
                if name not in names:
                    raise ValueError(f"tours.{i}.shifts: {name!r} is not a shift")
        if self.break_step <= 0:
            raise ValueError("break_step must be > 0")
        return self


def load_rules(path: str | Path) -> Rules:
    path = Path(path)
    data = read_yaml_mapping(path, RulesError, "rules")
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"{path}: {format_validation_error(exc)}") from None


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Template:
    """One shift template: a name, a start time of day and a length."""

    name: str
    start: float  # seconds after midnight
    length: float
    breaks: tuple[BreakSpec, ...]
    days: frozenset[int]
    hourly: float

    @property
    def paid_hours(self) -> float:
        return (self.length - sum(b.duration for b in self.breaks if not b.paid)) / 3600.0

    @property
    def label(self) -> str:
        h, m = divmod(int(self.start // 60), 60)
        return f"{self.name} {h:02d}:{m:02d}+{self.length / 3600:g}h"


def templates(rules: Rules) -> list[Template]:
    out: dict[tuple[str, float, float], Template] = {}
    for spec in rules.shifts:
        days = frozenset(
            range(7) if spec.days is None else (WEEKDAYS.index(d) for d in spec.days)
        )
        hourly = rules.costs.paid_hour if spec.cost_per_hour is None else spec.cost_per_hour
        for start in spec.starts:
            for length in sorted(set(spec.lengths)):
                out[spec.name, start, length] = Template(
                    spec.name, start, length, tuple(spec.breaks), days, hourly
                )
    return list(out.values())


def days_off_patterns(working_days: int, consecutive: bool) -> list[tuple[int, ...]]:
    """Working weekdays (0 = Monday) of each pattern; consecutive days off wrap Sun→Mon."""
    off = 7 - working_days
    if off == 0:
        return [tuple(range(7))]
    if consecutive:
        offs = [{(first + i) % 7 for i in range(off)} for first in range(7)]
    else:
        offs = [set(c) for c in combinations(range(7), off)]
    return [tuple(d for d in range(7) if d not in o) for o in offs]


@dataclass(slots=True)
class Requirement:
    """Agents required per interval over whole days from midnight of the first row's day."""

    start: datetime  # midnight of the first day
    interval: float
    need: np.ndarray  # agents per interval, 0 where the file has no row

    @property
    def days(self) -> int:
        return round(len(self.need) * self.interval / _DAY)

    def interval_start(self, i: int) -> datetime:
        return self.start + timedelta(seconds=i * self.interval)


def requirement(rows: list[Interval], interval: float | None) -> Requirement:
    """Place each row's agents (read into ``calls`` by ``read_forecast(text, column)``) on a
    whole-day grid; rows off the grid are an error."""
    step = interval if interval is not None else interval_length(rows)
    if step <= 0 or _DAY % step:
        raise ForecastError(f"the interval ({step:g} s) must divide a day")
    first = rows[0].start
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    last = rows[-1].start
    days = (last.date() - start.date()).days + 1
    per_day = int(_DAY // step)
    need = np.zeros(days * per_day)
    for row in rows:
        offset = (row.start - start).total_seconds()
        slot, rest = divmod(offset, step)
        if rest:
            raise ForecastError(f"{row.start.isoformat()} is not on the {step:g} s grid")
        need[int(slot)] = row.calls
    return Requirement(start, step, need)


@dataclass(slots=True)
class ShiftAssignment:
    """``count`` agents of one tour type work one template on one day; ``breaks[k]`` lists
    the offset (seconds from the shift start) of break ``k`` for each of them."""

    tour: str
    day: int
    template: Template
    count: int
    breaks: list[list[float]]


@dataclass(slots=True)
class Line:
    """One anonymous agent's week: what ``roster`` puts a named agent on."""

    name: str
    tour: str
    working_days: tuple[int, ...]  # weekday numbers
    shifts: dict[int, tuple[Template, list[float]]] = field(default_factory=dict)  # day →

    def paid_hours(self) -> float:
        return sum(t.paid_hours for t, _ in self.shifts.values())


@dataclass(slots=True)
class Schedule:
    status: str  # "optimal", "time limit", ...
    objective: float
    bound: float
    gap: float
    seconds: float
    variables: int
    constraints: int
    requirement: Requirement
    assignments: list[ShiftAssignment]
    lines: list[Line]
    coverage: np.ndarray
    rest_violations: int

    def summary(self) -> dict[str, Any]:
        need, cov, step_h = self.requirement.need, self.coverage, self.requirement.interval / 3600
        short = np.maximum(need - cov, 0.0)
        over = np.maximum(cov - need, 0.0)
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "seconds": self.seconds,
            "variables": self.variables,
            "constraints": self.constraints,
            "agents": len(self.lines),
            "paid_hours": sum(line.paid_hours() for line in self.lines),
            "required_agent_hours": float(need.sum() * step_h),
            "scheduled_agent_hours": float(cov.sum() * step_h),
            "short_agent_hours": float(short.sum() * step_h),
            "over_agent_hours": float(over.sum() * step_h),
            "intervals_short": int((short > 1e-6).sum()),
            "rest_violations": self.rest_violations,
        }

    def shifts(self) -> list[dict[str, Any]]:
        base = self.requirement.start
        return [{"tour": a.tour, "shift": a.template.name,
                 "start": (base + timedelta(days=a.day, seconds=a.template.start)).isoformat(),
                 "hours": a.template.length / 3600, "count": a.count}
                for a in self.assignments]

    def activities(self) -> list[Activity]:
        """Each line's week as dated activities: work split around its breaks."""
        out: list[Activity] = []
        base = self.requirement.start
        for line in self.lines:
            for day in sorted(line.shifts):
                tmpl, offsets = line.shifts[day]
                begin = base + timedelta(days=day, seconds=tmpl.start)
                cursor = begin
                for brk, offset in zip(tmpl.breaks, offsets, strict=True):
                    b0 = begin + timedelta(seconds=offset)
                    b1 = b0 + timedelta(seconds=brk.duration)
                    if b0 > cursor:
                        out.append(Activity(line.name, cursor, b0, "work"))
                    out.append(Activity(line.name, b0, b1, brk.activity))
                    cursor = b1
                end = begin + timedelta(seconds=tmpl.length)
                if end > cursor:
                    out.append(Activity(line.name, cursor, end, "work"))
        return out


class _Columns:
    """Column-wise sparse model built up one column at a time."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.upper: list[float] = []
        self.integer: list[int] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []

    def add(self, cost: float, entries: list[tuple[int, float]], *, integer: bool = True,
            upper: float = math.inf) -> int:
        j = len(self.cost)
        self.cost.append(cost)
        self.upper.append(upper)
        self.integer.append(1 if integer else 0)
        for row, val in entries:
            self.rows.append(row)
            self.cols.append(j)
            self.vals.append(val)
        return j

    def entry(self, column: int, row: int, value: float) -> None:
        self.rows.append(row)
        self.cols.append(column)
        self.vals.append(value)


def _spread(a: float, b: float, step: float, n: int, wrap: bool) -> list[tuple[int, float]]:
    """Share of each interval that [a, b) seconds of the horizon covers."""
    out: list[tuple[int, float]] = []
    horizon = n * step
    i = int(a // step)
    while a < b - 1e-9:
        edge = min(b, (i + 1) * step)
        idx = i % n if wrap else i
        if 0 <= idx < n and (wrap or a < horizon):
            out.append((idx, (edge - a) / step))
        a, i = edge, i + 1
    merged: dict[int, float] = defaultdict(float)
    for idx, share in out:
        merged[idx] += share
    return list(merged.items())


@dataclass(slots=True)
class _Shift:
    """A column x[t,d,s] and its break-placement columns."""

    tour: str
    day: int
    template: Template
    column: int
    placements: list[list[tuple[int, float]]]  # per break: (column, offset)


def solve(rules: Rules, req: Requirement, *, time_limit: float | None = None,
          gap: float | None = None) -> Schedule:
    """Build and solve the program; raises ScheduleError when there is no schedule."""
    step, n, days = req.interval, len(req.need), req.days
    wrap = days % 7 == 0
    weekday0 = req.start.weekday()
    step_h = step / 3600.0
    cols = _Columns()
    # Rows 0..n-1: coverage + short − over = need.
    row_lb: list[float] = [float(v) for v in req.need]
    row_ub: list[float] = list(row_lb)

    def new_row(lb: float, ub: float) -> int:
        row_lb.append(lb)
        row_ub.append(ub)
        return len(row_lb) - 1

    def covered(a: float, b: float, sign: float) -> list[tuple[int, float]]:
        return [(i, sign * s) for i, s in _spread(a, b, step, n, wrap)]

    shifts: list[_Shift] = []
    patterns: list[tuple[str, tuple[int, ...], int]] = []  # tour, weekdays, y column
    tmpls = templates(rules)
    tour_list: list[TourSpec | None] = [*rules.tours] or [None]
    for tour in tour_list:
        tname = tour.name if tour else "daily"
        link = {d: new_row(0.0, 0.0) for d in range(days)} if tour else {}
        for d in range(days):
            weekday = (weekday0 + d) % 7
            for t in tmpls:
                if weekday not in t.days or (tour and tour.shifts and t.name not in tour.shifts):
                    continue
                begin = d * _DAY + t.start
                entries = covered(begin, begin + t.length, 1.0)
                if not entries:
                    continue
                break_rows = [new_row(0.0, 0.0) for _ in t.breaks]
                entries.extend((r, -1.0) for r in break_rows)
                if tour:
                    entries.append((link[d], 1.0))
                column = cols.add(t.paid_hours * t.hourly, entries)
                placements = []
                for brk, row in zip(t.breaks, break_rows, strict=True):
                    options = []
                    for offset in np.arange(brk.earliest, brk.latest + 1e-6, rules.break_step):
                        b0 = begin + float(offset)
                        lost = covered(b0, b0 + brk.duration, -1.0)
                        options.append((cols.add(0.0, [*lost, (row, 1.0)]), float(offset)))
                    placements.append(options)
                shifts.append(_Shift(tname, d, t, column, placements))
        if tour:
            rest_rows = _rest_rows(cols, shifts, tname, days, wrap, rules.min_rest, new_row)
            total = new_row(float(tour.min_agents),
                            math.inf if tour.max_agents is None else float(tour.max_agents))
            for pattern in days_off_patterns(tour.working_days, tour.consecutive_days_off):
                works = [(weekday0 + d) % 7 in pattern for d in range(days)]
                entries = [(link[d], -1.0) for d in range(days) if works[d]]
                # On a day after a day off, the rest rows count this agent as rested.
                entries.extend((row, -1.0) for d, row in rest_rows
                               if works[d] and not works[d - 1])
                patterns.append((tname, pattern, cols.add(0.0, [*entries, (total, 1.0)])))
    under = rules.costs.under_coverage
    for i in range(n):
        if under is not None:
            cols.add(under * step_h, [(i, 1.0)], integer=False)
        cols.add(rules.costs.over_coverage * step_h, [(i, -1.0)], integer=False)

    m, nv = len(row_lb), len(cols.cost)
    matrix = csc_array((cols.vals, (cols.rows, cols.cols)), shape=(m, nv))
    limit = rules.solver.time_limit if time_limit is None else time_limit
    rel_gap = rules.solver.gap if gap is None else gap
    t0 = time.perf_counter()
    result = _highs(np.array(cols.cost), matrix, np.array(cols.upper), np.array(row_lb),
                    np.array(row_ub), cols.integer, limit, rel_gap)
    seconds = time.perf_counter() - t0
    values = np.rint(result.x).astype(int)
    assignments: list[ShiftAssignment] = []
    for sh in shifts:
        count = int(values[sh.column])
        if count > 0:
            offsets = [sorted(o for j, o in options for _ in range(int(values[j])))
                       for options in sh.placements]
            assignments.append(ShiftAssignment(sh.tour, sh.day, sh.template, count, offsets))
    counts = {(tour, pattern): int(values[j]) for tour, pattern, j in patterns}
    lines, violations = build_lines(req, assignments, counts, rules.min_rest)
    gap_value = (result.objective - result.bound) / abs(result.objective) \
        if result.objective else 0.0
    return Schedule(result.status, result.objective, result.bound, max(gap_value, 0.0),
                    seconds, nv, m, req,
                    assignments, lines, coverage(req, wrap, assignments), violations)


def _rest_rows(cols: _Columns, shifts: list[_Shift], tour: str, days: int, wrap: bool,
               min_rest: float, new_row: Any) -> list[tuple[int, int]]:
    """Rows that make the rest between consecutive days achievable (Hall's condition for
    the day-to-day assignment, whose compatibilities are nested): for each day ``d`` and
    start time ``τ``, the shifts starting by ``τ`` need at most as many agents as ended early
    enough the day before plus those who were off. Returns (day, row) pairs; the pattern
    columns add themselves to the rows of the days they come back from a day off."""
    by_day: dict[int, list[_Shift]] = defaultdict(list)
    for sh in shifts:
        if sh.tour == tour:
            by_day[sh.day].append(sh)
    rows: list[tuple[int, int]] = []
    for d in range(days):
        prev = d - 1 if d > 0 else (days - 1 if wrap else None)
        if prev is None or not by_day[d] or not by_day[prev]:
            continue
        ends = [sh.template.start + sh.template.length for sh in by_day[prev]]
        for tau in sorted({sh.template.start for sh in by_day[d]}):
            if _DAY + tau - min_rest >= max(ends):
                break  # every shift of the day before ended early enough
            row = new_row(-math.inf, 0.0)
            for sh in by_day[d]:
                if sh.template.start <= tau:
                    cols.entry(sh.column, row, 1.0)
            for sh, end in zip(by_day[prev], ends, strict=True):
                if end <= _DAY + tau - min_rest:
                    cols.entry(sh.column, row, -1.0)
            rows.append((d, row))
    return rows


@dataclass(frozen=True, slots=True)
class _Solution:
    status: str
    x: np.ndarray
    objective: float
    bound: float


_banner_shown = threading.Lock()


def _quiet_highs() -> highspy.Highs:
    """HiGHS prints its banner to the process's stdout when the first solver is created,
    before any option can silence it; that would corrupt ``--json`` output, so the first one
    is made with file descriptor 1 pointed at /dev/null."""
    if not _banner_shown.acquire(blocking=False):
        return highspy.Highs()
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _highs(cost: np.ndarray, matrix: csc_array, upper: np.ndarray, row_lb: np.ndarray,
           row_ub: np.ndarray, integer: list[int], time_limit: float, gap: float) -> _Solution:
    """Solve min cost·x, row_lb ≤ A x ≤ row_ub, 0 ≤ x ≤ upper with HiGHS on one thread."""
    h = _quiet_highs()
    for name, value in (("output_flag", False), ("threads", 1), ("time_limit", time_limit),
                        ("mip_rel_gap", gap)):
        h.setOptionValue(name, value)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, np.zeros(len(cost)), upper
    lp.row_lower_, lp.row_upper_ = row_lb, row_ub
    a = lp.a_matrix_
    a.format_ = highspy.MatrixFormat.kColwise
    a.num_col_, a.num_row_ = lp.num_col_, lp.num_row_
    a.start_, a.index_, a.value_ = matrix.indptr, matrix.indices, matrix.data
    kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
    lp.integrality_ = [kinds[v] for v in integer]
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kInfeasible:
        raise ScheduleError(
            "no schedule covers the requirement under these rules: allow shortfalls with "
            "costs.under_coverage, or add shifts or tours"
        )
    if info.primal_solution_status != 2:  # no feasible solution
        raise ScheduleError(f"no schedule found within {time_limit:g} s "
                            f"({h.modelStatusToString(status)})")
    # HiGHS says "optimal" once the gap is within mip_rel_gap; say which.
    exact = info.mip_gap <= 1e-9
    names = {highspy.HighsModelStatus.kOptimal: "optimal" if exact else "within gap",
             highspy.HighsModelStatus.kTimeLimit: "time limit"}
    return _Solution(names.get(status, h.modelStatusToString(status)),
                     np.array(h.getSolution().col_value), info.objective_function_value,
                     info.mip_dual_bound)


def coverage(req: Requirement, wrap: bool, assignments: list[ShiftAssignment]) -> np.ndarray:
    """Agents on the phones per interval (fractions where a break or shift edge splits one)."""
    n, step = len(req.need), req.interval
    out = np.zeros(n)
    for a in assignments:
        begin = a.day * _DAY + a.template.start
        for i, s in _spread(begin, begin + a.template.length, step, n, wrap):
            out[i] += s * a.count
        for brk, offsets in zip(a.template.breaks, a.breaks, strict=True):
            for offset in offsets:
                b0 = begin + offset
                for i, s in _spread(b0, b0 + brk.duration, step, n, wrap):
                    out[i] -= s
    return out


def build_lines(req: Requirement, assignments: list[ShiftAssignment],
                counts: dict[tuple[str, tuple[int, ...]], int],
                min_rest: float) -> tuple[list[Line], int]:
    """Give each agent of a days-off pattern one of the day's shifts, day by day, by a
    minimum-cost assignment: a rest shorter than ``min_rest`` costs more than anything else,
    then a start time far from the agent's previous one. Returns the lines and how many
    rests between consecutive shifts are still short after swapping shifts between agents of
    a tour on the same day (the day-by-day assignment cannot see two days ahead). Without
    tours every shift is a line."""
    weekday0 = req.start.weekday()
    units: dict[tuple[str, int], list[tuple[Template, list[float]]]] = defaultdict(list)
    for a in assignments:
        for j in range(a.count):
            units[a.tour, a.day].append((a.template, [offs[j] for offs in a.breaks]))
    lines: list[Line] = []
    last_end: dict[int, float] = {}  # line index → end of its latest shift (horizon seconds)
    last_start: dict[int, float] = {}
    tours = sorted({tour for tour, _ in counts})
    for tour in tours:
        first = len(lines)
        for (t, pattern), count in sorted(counts.items()):
            if t == tour:
                lines.extend(Line("", tour, pattern) for _ in range(count))
        for d in range(req.days):
            weekday, tomorrow = (weekday0 + d) % 7, (weekday0 + d + 1) % 7
            todays = [li for li in range(first, len(lines)) if weekday in lines[li].working_days]
            work = units.get((tour, d), [])
            if len(work) != len(todays):  # the program's day link makes these equal
                raise ScheduleError(f"internal: {len(work)} shifts for {len(todays)} agents")
            if not work:
                continue
            cost = np.zeros((len(todays), len(work)))
            for r, li in enumerate(todays):
                for c, (tmpl, _) in enumerate(work):
                    start = d * _DAY + tmpl.start
                    if li in last_end and start - last_end[li] < min_rest:
                        cost[r, c] += 1e6
                    if li in last_start:
                        cost[r, c] += abs(tmpl.start - last_start[li]) / 3600.0
                    if tomorrow in lines[li].working_days:  # leave late ends to those off
                        cost[r, c] += 100.0 * (tmpl.start + tmpl.length) / _DAY
            rows, cs = linear_sum_assignment(cost)
            for r, c in zip(rows, cs, strict=True):
                li = todays[r]
                tmpl, offsets = work[c]
                start = d * _DAY + tmpl.start
                lines[li].shifts[d] = (tmpl, offsets)
                last_end[li] = start + tmpl.length
                last_start[li] = tmpl.start
    violations = _repair(lines, req.days, req.days % 7 == 0, min_rest)
    for (tour, d), work in sorted(units.items()):
        if tour == "daily":
            for tmpl, offsets in work:
                lines.append(Line("", tour, ((weekday0 + d) % 7,), {d: (tmpl, offsets)}))
    lines.sort(key=lambda line: (line.tour, min((d * _DAY + t.start for d, (t, _) in
                                                 line.shifts.items()), default=0.0)))
    width = max(3, len(str(len(lines))))
    for k, line in enumerate(lines, start=1):
        line.name = f"line-{k:0{width}d}"
    return lines, violations



def short_rests(line: Line, days: int, wrap: bool, min_rest: float) -> int:
    """Shifts on consecutive days of ``line`` with less than ``min_rest`` between them."""
    count = 0
    for d, (tmpl, _) in line.shifts.items():
        nxt = d + 1 if d + 1 < days else (0 if wrap else None)
        if nxt is None or nxt not in line.shifts:
            continue
        following = line.shifts[nxt][0]
        gap = (d + 1) * _DAY + following.start - (d * _DAY + tmpl.start + tmpl.length)
        count += gap < min_rest
    return count


def _repair(lines: list[Line], days: int, wrap: bool, min_rest: float) -> int:
    """Swap one day's shifts, or the rest of the week from that day, between two agents of
    a tour while that lowers their short rests; returns the short rests left."""
    def short(li: int) -> int:
        return short_rests(lines[li], days, wrap, min_rest)

    def swap(a: Line, b: Line, span: list[int]) -> None:
        for e in span:
            if e in a.shifts:
                a.shifts[e], b.shifts[e] = b.shifts[e], a.shifts[e]

    improved = True
    while improved:
        improved = False
        for a in range(len(lines)):
            for d in sorted(lines[a].shifts):
                if not short(a):
                    break
                for b in range(len(lines)):
                    la, lb = lines[a], lines[b]
                    if b == a or lb.tour != la.tour or d not in lb.shifts:
                        continue
                    tail = list(range(d, days))
                    spans = [[d]]
                    if all((e in la.shifts) == (e in lb.shifts) for e in tail):
                        spans.append(tail)
                    for span in spans:
                        before = short(a) + short(b)
                        swap(la, lb, span)
                        if short(a) + short(b) < before:
                            improved = True
                            break
                        swap(la, lb, span)
                    if not short(a):
                        break
    return sum(short(li) for li in range(len(lines)))
