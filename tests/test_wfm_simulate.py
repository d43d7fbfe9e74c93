"""`hotline wfm simulate`: a roster and a forecast through the simulator, as a planner relies
on it: Erlang-sized staffing gives Erlang's service level, nobody on the phones gives none,
a break removes capacity from exactly its intervals, and bad files get one clear line."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from hotline.cli import app
from hotline.events.types import AgentStateChanged, CallAnswered, CallOffered, Event
from hotline.sim.runner import Simulation
from hotline.sim.scenario import Scenario
from hotline.wfm.activities import Activity, read_activities
from hotline.wfm.erlang import evaluate, required_agents
from hotline.wfm.simulate import (
    COLUMNS,
    ScheduleInputError,
    agent_plans,
    horizon,
    on_phones,
    scenario,
    simulate_schedule,
)
from hotline.wfm.staffing import Interval, read_forecast

T0 = datetime(2025, 3, 3, 8, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def forecast(calls: list[float], period: float = 1800, aht: list[float] | None = None
             ) -> list[Interval]:
    lines = ["interval_start,calls,aht"]
    for i, c in enumerate(calls):
        lines.append(f"{at(i * period).isoformat()},{c},{'' if aht is None else aht[i]}")
    return read_forecast("\n".join(lines) + "\n")


def roster_csv(rows: list[tuple[str, float, float, str]]) -> str:
    lines = ["agent,start,end,activity"]
    lines += [f"{a},{at(s).isoformat()},{at(e).isoformat()},{k}" for a, s, e, k in rows]
    return "\n".join(lines) + "\n"


def roster(rows: list[tuple[str, float, float, str]]) -> list[Activity]:
    return read_activities(roster_csv(rows))


def staffed(counts: list[int], period: float = 1800) -> list[Activity]:
    """counts[i] agents working through interval i (one row per agent and interval)."""
    return roster([(f"a{a}", i * period, (i + 1) * period, "work")
                   for i, n in enumerate(counts) for a in range(n)])


def test_erlang_staffing_gives_erlang_service_level() -> None:
    """Steady traffic with Erlang C's head count: the simulated service level over the day
    matches Erlang C's for that head count (≥ the target), within the spread of the
    replications (the run starts empty, a warm-up of minutes in 8 hours)."""
    calls, period, aht = 100, 1800, 180
    n = required_agents(calls=calls, period=period, aht=aht, sl_time=20, sl_target=0.8).agents
    expected = evaluate(calls=calls, period=period, aht=aht, agents=n, sl_time=20).service_level
    assert expected >= 0.8
    reps = 10
    result = simulate_schedule(staffed([n] * 16), forecast([calls] * 16), period=period,
                               aht=aht, replications=reps, seed=1)
    total = result["total"]
    half = (total["sl_high"] - total["sl_low"]) / 2  # t(0.975, 9) ≈ 2.26 standard errors
    assert half < 0.1  # the replications pin the mean down
    assert abs(total["service_level"] - expected) < 2 * half  # ≈ 4.5 standard errors
    assert total["answered"] / reps == pytest.approx(total["offered"] / reps, abs=5)
    assert all(r["required"] == n and r["scheduled"] == n for r in result["intervals"])
    # The whole day's offered calls are Poisson(1600) per run: within 4 sd of its mean.
    assert abs(total["offered"] - 1600) < 4 * math.sqrt(1600 / reps)


def test_interval_with_nobody_rostered_has_no_service_and_is_flagged() -> None:
    """The roster ends an interval before the forecast: every call of the last interval is
    abandoned (callers are patient 60 s on average), none answered, SL 0, flagged."""
    result = simulate_schedule(staffed([10, 10, 0]), forecast([60, 60, 60]), period=1800,
                               aht=180, patience=60, seed=3)
    last = result["intervals"][-1]
    assert last["scheduled"] == 0 and last["required"] > 0
    assert last["offered"] > 0 and last["answered"] == 0
    assert last["abandoned"] + last["short_abandoned"] == last["offered"]
    assert last["service_level"] == 0.0 and last["below_target"]
    assert not any(r["below_target"] for r in result["intervals"][:2])


def test_gap_in_the_middle_of_the_day() -> None:
    """Nobody in the middle interval: only callers arriving in its last 20 s can be answered
    in time (by the agents coming back), ≈ 1 % of its calls; the intervals around are fine."""
    result = simulate_schedule(staffed([10, 0, 10]), forecast([120, 120, 120]), period=1800,
                               aht=120, patience=60, seed=5)
    gap = result["intervals"][1]
    assert gap["scheduled"] == 0 and gap["below_target"]
    assert gap["service_level"] is not None and gap["service_level"] < 0.05
    assert [r["below_target"] for r in result["intervals"]] == [False, True, False]


def test_break_takes_capacity_out_of_exactly_its_intervals() -> None:
    rows = [("ann", 0, 2700, "work"), ("ann", 2700, 3600, "break"), ("ann", 3600, 7200, "work"),
            ("bob", 0, 7200, "work")]
    fifteen = horizon(roster(rows), forecast([10] * 8, period=900), 900)
    assert on_phones(roster(rows), fifteen) == [2, 2, 2, 1, 2, 2, 2, 2]
    thirty = horizon(roster(rows), forecast([10] * 4, period=1800), 1800)
    assert on_phones(roster(rows), thirty) == [2, 1.5, 2, 2]


def test_agent_on_a_call_finishes_it_before_the_break() -> None:
    """Overloaded (always busy) agents: Ann's break starts when her call at 08:45 ends, she
    takes no call until 09:00, and then she is ready again at once."""
    rows = [("ann", 0, 2700, "work"), ("ann", 2700, 3600, "break"), ("ann", 3600, 7200, "work"),
            ("bob", 0, 7200, "work")]
    acts, fc = roster(rows), forecast([60] * 8, period=900)
    h = horizon(acts, fc, 900)
    spec = scenario(acts, fc, h, aht=300, handle_dist="constant")
    events: list[Event] = []
    Simulation(spec, seed=2, on_event=events.append).run()
    ann = [e for e in events if isinstance(e, AgentStateChanged) and e.agent == "ann"]
    on_break = next(e for e in ann if e.state == "not_ready")
    assert on_break.reason == "break"
    busy_at_break = [e for e in ann if e.t <= 2700][-1]
    assert busy_at_break.state == "busy"  # the premise: she was on a call at 08:45
    answered = max(e.t for e in events if isinstance(e, CallAnswered) and e.agent == "ann"
                   and e.t <= 2700)
    assert on_break.t == pytest.approx(answered + 300)  # her 300 s call, then the break
    back = ann[ann.index(on_break) + 1]
    assert (back.t, back.state) == (3600, "ready")
    assert not [e for e in events if isinstance(e, CallOffered) and e.agent == "ann"
                and 2700 <= e.t < 3600]


def test_roster_becomes_login_not_ready_and_logout() -> None:
    rows = [("cat", 0, 3600, "work"), ("cat", 3600, 4500, "meeting"),
            ("cat", 4500, 5400, "work"), ("cat", 5400, 7200, "work"),
            ("cat", 90000, 93600, "training"), ("cat", 93600, 97200, "work")]
    acts = roster(rows)
    h = horizon(acts, forecast([0, 0]), 1800)
    assert agent_plans(acts, h) == {"cat": [
        (0, "ready", None), (3600, "not_ready", "meeting"), (4500, "ready", None),
        (7200, "logged_out", "time off"), (90000, "not_ready", "training"),
        (93600, "ready", None), (97200, "logged_out", "time off"),
    ]}
    events: list[Event] = []
    Simulation(scenario(acts, forecast([0, 0]), h, aht=300), on_event=events.append).run()
    states = [(e.t, e.state, e.reason) for e in events if isinstance(e, AgentStateChanged)]
    assert states == [(0, "ready", None), (3600, "not_ready", "meeting"), (4500, "ready", None),
                      (7200, "logged_out", "time off"), (90000, "not_ready", "training"),
                      (93600, "ready", None), (97200, "logged_out", "time off")]


def test_roster_earlier_than_forecast_moves_time_zero_back_on_the_grid() -> None:
    acts = roster([("dan", -2000, 3600, "work")])
    h = horizon(acts, forecast([5, 5], period=900), 900)
    assert h.origin == at(-2700) and h.buckets == [3, 4]


def test_timeline_traffic_follows_the_forecast_rows() -> None:
    """Calls per interval are Poisson with the row's mean (none in an empty row or a gap in
    the file) and handle times have the row's AHT."""
    rows = [Interval(at(0), 200, 120), Interval(at(1800), 0, 300),  # 09:00 is missing
            Interval(at(5400), 400, 240), Interval(at(7200), 60, 600),
            Interval(at(9000), 100, 300)]
    acts = staffed([40] * 6)
    h = horizon(acts, rows, 1800)
    assert h.buckets == [0, 1, 3, 4, 5]
    result = Simulation(scenario(acts, rows, h, aht=300), seed=4).run()
    per = {round(r["start"] / 1800): r for r in result.metrics.intervals()}
    assert 1 not in per and 2 not in per  # no calls in the empty row or in the gap
    for row, b in zip(rows, h.buckets, strict=True):
        if row.calls == 0:
            continue
        offered, aht = per[b]["offered"], per[b]["aht"]
        assert abs(offered - row.calls) < 4 * math.sqrt(row.calls)
        assert row.aht is not None
        assert abs(aht - row.aht) < 4 * row.aht / math.sqrt(offered)  # exponential: sd = mean


def test_scenario_checks_timelines_and_plans() -> None:
    base = {"duration": 3600, "queues": [{"id": "q"}],
            "agents": [{"group": "g", "count": 1}],
            "traffic": [{"queue": "q", "handle_time": 60,
                         "timeline": [{"at": 600, "calls_per_hour": 1},
                                      {"at": 600, "calls_per_hour": 2}]}]}
    with pytest.raises(ValidationError, match="strictly increasing 'at'"):
        Scenario.model_validate(base)
    base["traffic"][0]["timeline"] = [{"at": 0, "calls_per_hour": 1}]  # type: ignore[index]
    base["agents"] = [{"group": "g", "count": 1, "shift": {"start": 0, "end": 60},
                       "plan": [{"at": 0, "state": "ready"}]}]
    with pytest.raises(ValidationError, match="a plan or a shift"):
        Scenario.model_validate(base)
    base["agents"] = [{"group": "g", "count": 1, "ids": ["x"]},
                      {"group": "h", "count": 1, "ids": ["x"]}]
    with pytest.raises(ValidationError, match="more than one group"):
        Scenario.model_validate(base)


def test_inputs_that_cannot_be_simulated() -> None:
    acts = staffed([1])
    with pytest.raises(ScheduleInputError, match="has no aht in the file") as err:
        simulate_schedule(acts, forecast([5]), period=1800, aht=None)
    assert err.value.option == "--aht"
    off_grid = [*forecast([5, 5, 5]), Interval(at(5000), 5, None)]
    with pytest.raises(ScheduleInputError, match="not on the 1800-second grid"):
        simulate_schedule(acts, off_grid, period=1800, aht=300)
    aware = read_activities(roster_csv([("a", 0, 60, "work")]).replace(":00,", ":00+01:00,"))
    with pytest.raises(ScheduleInputError, match="UTC offsets"):
        simulate_schedule(aware, forecast([5]), period=1800, aht=300)


# --------------------------------------------------------------------------- the command

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    ros, fc = tmp_path / "roster.csv", tmp_path / "forecast.csv"
    ros.write_text(roster_csv([(f"a{i}", 0, 3600, "work") for i in range(8)]))
    fc.write_text("interval_start,calls\n" + "".join(
        f"{at(i * 1800).isoformat()},{c}\n" for i, c in enumerate([50, 50, 50])))
    return ros, fc


def test_command_writes_intervals_and_flags_the_unstaffed_one(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    ros, fc = files
    out = tmp_path / "out.csv"
    proc = runner.invoke(app, ["wfm", "simulate", "--roster", str(ros), "--forecast", str(fc),
                               "--aht", "3m", "--patience", "1m", "--replications", "3",
                               "--out", str(out), "--json"])
    assert proc.exit_code == 0, proc.output
    report = json.loads(proc.stdout)
    assert report["seeds"] == [0, 1, 2] and report["model"] == "erlang_a"
    assert [r["scheduled"] for r in report["intervals"]] == [8, 8, 0]
    assert [r["below_target"] for r in report["intervals"]][2]
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == COLUMNS and len(table) == 4
    assert table[3][COLUMNS.index("below_target")] == "yes"
    proc = runner.invoke(app, ["wfm", "simulate", "--roster", str(ros), "--forecast", str(fc),
                               "--aht", "180"])
    assert proc.exit_code == 0 and "Worst" in proc.stdout and "Intervals below 80%" in proc.stdout


@pytest.mark.parametrize(("change", "args", "message"), [
    ("missing", [], "error: --roster: "),
    ("bad roster", [], "line 2: activity 'lunch' is not one of"),
    ("bad forecast", [], "error: --forecast: "),
    ("none", ["--replications", "0"], "error: --replications: must be ≥ 1"),
    ("none", ["--handle-dist", "weibull"], "error: --handle-dist: 'weibull'"),
    ("none", ["--sl-target", "1.5"], "error: --sl-target: "),
    ("no aht", [], "error: --aht: "),
])
def test_command_bad_input_is_one_line_and_exit_2(
    files: tuple[Path, Path], change: str, args: list[str], message: str
) -> None:
    ros, fc = files
    if change == "missing":
        ros.unlink()
    elif change == "bad roster":
        ros.write_text(roster_csv([("a", 0, 60, "work")]).replace("work", "lunch"))
    elif change == "bad forecast":
        fc.write_text("interval_start,calls\nmonday,5\n")
    aht = [] if change == "no aht" else ["--aht", "180"]
    proc = runner.invoke(app, ["wfm", "simulate", "--roster", str(ros), "--forecast", str(fc),
                               *aht, *args])
    assert proc.exit_code == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_break_due_during_a_manual_wrap_up_starts_when_it_ends() -> None:
    """With manual wrap-up, the simulated agent ends the wrap-up rather than turning ready,
    so a break that fell due during the call still starts (it used to be cancelled)."""
    spec = Scenario.model_validate({
        "duration": 3600, "queues": [{"id": "q", "auto_ready": False, "wrap_up": 60}],
        "traffic": [{"queue": "q", "calls_per_hour": 200, "handle_time": 300}],
        "agents": [{"group": "g", "count": 1, "ids": ["eve"],
                    "plan": [{"at": 0, "state": "ready"},
                             {"at": 1800, "state": "not_ready", "reason": "break"},
                             {"at": 2700, "state": "ready"}]}],
    })
    events: list[Event] = []
    Simulation(spec, seed=1, on_event=events.append).run()
    eve = [e for e in events if isinstance(e, AgentStateChanged)]
    assert [e for e in eve if e.t <= 1800][-1].state in ("busy", "wrap_up")  # the premise
    after = [e for e in eve if e.t > 1800]
    assert (after[0].state, after[0].reason) == ("not_ready", "break")
    assert after[0].t < 1800 + 300 + 60  # right after that call's wrap-up
    assert (after[1].t, after[1].state) == (2700, "ready")
