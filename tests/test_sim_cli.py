"""`hotline sim` as a user runs it: the sample scenario, bad files, event files, profiles."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hotline.events.types import CallArrived, Event, event_from_dict
from hotline.sim.runner import Simulation
from hotline.sim.scenario import Scenario, ScenarioError, load_scenario

DEMO = Path(__file__).parents[1] / "src" / "hotline" / "scenarios" / "demo-bank.yaml"
KPI_KEYS = {
    "offered", "answered", "abandoned", "short_abandoned", "service_level", "asa", "aht",
    "abandon_rate", "max_wait",
}  # fmt: skip


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def demo_json() -> dict:
    proc = hotline("sim", str(DEMO), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_sample_scenario_report_has_the_documented_shape(demo_json: dict) -> None:
    report = demo_json
    assert report["scenario"] == "demo-bank" and report["seed"] == 7
    assert set(report["total"]) >= KPI_KEYS
    assert set(report["queues"]) == {"general", "vip"}
    for m in report["queues"].values():
        assert set(m) >= KPI_KEYS
    assert len(report["agents"]) == 36
    for a in report["agents"].values():
        assert {"answered", "talk_time", "occupancy"} <= set(a)
        assert 0.0 <= a["occupancy"] <= 1.0
    rows = report["intervals"]
    assert {r["start"] for r in rows} == {i * 1800.0 for i in range(16)}  # 8 h in 30 min slots
    for r in rows:
        assert set(r) >= KPI_KEYS and r["queue"] in ("general", "vip")
    # The parts add up: per-interval offered sums to the queue totals, queues to the center.
    for q, m in report["queues"].items():
        assert sum(r["offered"] for r in rows if r["queue"] == q) == m["offered"]
    assert sum(m["answered"] for m in report["queues"].values()) == report["total"]["answered"]
    # 660 calls/h for 8 h: the Poisson count is within 5 standard deviations of 5280.
    assert abs(report["total"]["offered"] - 5280) < 5 * math.sqrt(5280)


def test_sample_scenario_text_report_and_progress() -> None:
    proc = hotline("sim", str(DEMO))
    assert proc.returncode == 0, proc.stderr
    assert "general" in proc.stdout and "vip" in proc.stdout and "SL" in proc.stdout
    assert "100%" in proc.stderr  # the progress bar reached the end


def test_seed_option_overrides_the_file_and_runs_are_reproducible(demo_json: dict) -> None:
    again = json.loads(hotline("sim", str(DEMO), "--json").stdout)
    assert again == demo_json
    other = json.loads(hotline("sim", str(DEMO), "--json", "--seed", "8").stdout)
    assert other["seed"] == 8 and other["total"] != demo_json["total"]


def test_events_file_holds_every_event_as_json_lines(tmp_path: Path, demo_json: dict) -> None:
    out = tmp_path / "events.jsonl"
    proc = hotline("sim", str(DEMO), "--json", "--events", str(out))
    assert proc.returncode == 0
    events = [event_from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    queued = sum(1 for e in events if e.type == "call_queued")
    assert queued == sum(m["offered"] for m in demo_json["queues"].values())
    times = [e.t for e in events]
    assert times == sorted(times)


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def demo_dict() -> dict:
    return yaml.safe_load(DEMO.read_text())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["queues"][0].update(strategy="fastest"), "queues.0.strategy"),
        (lambda d: d.update(duration="ten minutes"), "duration: not a duration"),
        (lambda d: d.pop("duration"), "duration: Field required"),
        (lambda d: d["traffic"][0].update(queue="nope"), "traffic.0.queue: 'nope' is not a queue"),
        (lambda d: d["agents"][0]["skills"].update(general=11), "agents.0.skills.general"),
        (
            lambda d: d["traffic"][1].update(handle_time={"dist": "lognormal", "mean": 60}),
            "traffic.1.handle_time: Value error, lognormal needs 'sd' > 0",
        ),
        (lambda d: d["queues"][0].update(colour="red"), "queues.0.colour: Extra inputs"),
        (lambda d: d["queues"][0].update(max_wait="60s"), "max_wait and exit go together"),
        (lambda d: d["traffic"][0].update(profile={"25:00": 3}), "not a time of day"),
    ],
)
def test_bad_scenario_gets_one_clear_error_naming_the_field(
    tmp_path: Path, change, expected: str
) -> None:
    data = demo_dict()
    change(data)
    proc = hotline("sim", str(write(tmp_path, data)))
    assert proc.returncode == 2
    assert expected.replace("Value error, ", "") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    proc = hotline("sim", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr
    proc = hotline("sim", str(write(tmp_path, "name: x\nqueues: [\n")))
    assert proc.returncode == 2 and "not valid YAML at line" in proc.stderr
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(write(tmp_path, "- just a list"))


def run_collecting(data: dict) -> tuple[list[Event], dict]:
    events: list[Event] = []
    result = Simulation(Scenario.model_validate(data), on_event=events.append).run()
    return events, result.to_dict()


def base(**traffic: object) -> dict:
    return {
        "duration": "2h",
        "queues": [{"id": "q"}],
        "traffic": [{"queue": "q", "handle_time": "60s", **traffic}],
        "agents": [{"group": "a", "count": 50}],
    }


def test_day_profile_shapes_arrivals() -> None:
    """No calls while the profile says 0/h; 3600/h afterwards (Poisson: mean 3600, sd 60)."""
    events, _ = run_collecting(base(profile={"00:00": 0, "01:00": 3600}))
    arrivals = [e.t for e in events if isinstance(e, CallArrived)]
    assert min(arrivals) >= 3600.0
    assert abs(len(arrivals) - 3600) < 5 * 60


def test_profile_follows_the_scenario_start_clock() -> None:
    """Starting at 07:00, a profile opening at 08:00 has its first call after one hour."""
    data = base(profile={"08:00": 1800, "20:00": 0})
    data["start"] = "07:00"
    events, _ = run_collecting(data)
    arrivals = [e.t for e in events if isinstance(e, CallArrived)]
    assert min(arrivals) >= 3600.0 and abs(len(arrivals) - 1800) < 5 * math.sqrt(1800)


def test_week_profile_uses_weekday_keys() -> None:
    data = base(profile={"Mon 00:00": 0, "Tue 00:00": 7200})
    data.update(start="Mon 23:00")
    events, _ = run_collecting(data)
    arrivals = [e.t for e in events if isinstance(e, CallArrived)]
    assert min(arrivals) >= 3600.0 and abs(len(arrivals) - 7200) < 5 * math.sqrt(7200)


def test_agents_take_no_calls_outside_shift_or_on_break() -> None:
    data = {
        "duration": "2h",
        "queues": [{"id": "q"}],
        "traffic": [{"queue": "q", "calls_per_hour": 400, "handle_time": "30s"}],
        "agents": [
            {"group": "day", "count": 5, "shift": {"start": "30m", "end": "90m"},
             "breaks": [{"start": "60m", "duration": "10m", "reason": "coffee"}]},
            {"group": "all", "count": 5},
        ],
    }  # fmt: skip
    events, _ = run_collecting(data)
    answered = [(e.t, e.agent) for e in events if e.type == "call_answered"]
    day = [t for t, agent in answered if agent.startswith("day-")]
    assert day and all(1800 <= t <= 5400 for t in day)
    assert not [t for t in day if 3600 < t < 4200]  # break: nothing new answered
    reasons = {
        e.reason for e in events if e.type == "agent_state_changed" and e.state == "not_ready"
    }
    assert "coffee" in reasons


def test_all_distributions_have_the_stated_mean() -> None:
    """Handle time means (AHT with no wrap-up) within 5 standard errors of the stated mean."""
    cases = {
        "exponential": ({"dist": "exponential", "mean": "100s"}, 100.0, 100.0),
        "lognormal": ({"dist": "lognormal", "mean": "100s", "sd": "50s"}, 100.0, 50.0),
        "gamma": ({"dist": "gamma", "mean": "100s", "sd": "30s"}, 100.0, 30.0),
        "constant": ({"dist": "constant", "value": "100s"}, 100.0, 0.0),
        "empirical": ({"dist": "empirical", "values": [50, "150s"]}, 100.0, 50.0),
    }
    for name, (dist, mean, sd) in cases.items():
        data = base(calls_per_hour=3600)
        data["traffic"][0]["handle_time"] = dist
        data["agents"][0]["count"] = 200
        _, report = run_collecting(data)
        n = report["total"]["answered"]
        assert abs(report["total"]["aht"] - mean) <= 5 * sd / math.sqrt(n) + 1e-9, name
