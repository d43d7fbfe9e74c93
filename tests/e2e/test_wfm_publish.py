"""A planner on the command line, against the real server: forecast → agents per interval →
shifts → named agents → `hotline wfm publish` with an API key; the server then holds exactly
that roster and measures adherence against it live."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm.activities import read_activities

from .server import CallCenter


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, ["wfm", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_planner_publishes_a_roster_from_the_command_line(center: CallCenter,
                                                          tmp_path: Path) -> None:
    queue = center.queue()
    # Calls for the three hours around now (whole half hours), nothing else.
    now = datetime.now()
    start = now.replace(minute=30 if now.minute >= 30 else 0, second=0, microsecond=0) \
        - timedelta(minutes=30)
    forecast = tmp_path / "forecast.csv"
    forecast.write_text("interval_start,calls\n" + "".join(
        f"{start + timedelta(minutes=30 * k):%Y-%m-%dT%H:%M},8\n" for k in range(6)))
    required = tmp_path / "required.csv"
    run("staff", "--forecast", str(forecast), "--aht", "3m", "--interval", "30m",
        "--out", str(required))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({
        "shifts": [{"name": "cover", "start": f"{start:%H:%M}", "length": "3h"}],
        "min_rest": "0s",
    }))
    schedule = tmp_path / "schedule.csv"
    run("schedule", "--requirements", str(required), "--rules", str(rules),
        "--out", str(schedule))
    lines = {a.agent for a in read_activities(schedule.read_text())}
    assert lines
    agents = [center.agent(queue) for _ in range(len(lines) + 1)]  # one too many
    people = tmp_path / "agents.csv"
    people.write_text("agent,skills\n" + "".join(f"{a.code},{queue.skill}\n" for a in agents))
    roster = tmp_path / "roster.csv"
    run("roster", "--schedule", str(schedule), "--agents", str(people), "--skill", queue.skill,
        "--out", str(roster))
    planned = read_activities(roster.read_text())
    assert len({a.agent for a in planned}) == len(lines)
    assert {a.agent for a in planned} < {a.code for a in agents}

    key = center.admin.post("/api-keys", {"name": "planning", "username": "planner"},
                            expect=201)["key"]
    out = run("publish", "--roster", str(roster), "--server", center.server.url,
              "--only-listed", env={"HOTLINE_API_KEY": key})
    assert f"published {len(planned)} activities" in out
    assert key not in out

    day = start.date()
    rows = center.admin.get("/wfm/roster", **{"from": day.isoformat(),
                                              "to": (day + timedelta(days=2)).isoformat()})
    mine = sorted((r["agent"], datetime.fromisoformat(r["start"]).replace(tzinfo=None),
                   r["activity"]) for r in rows if r["agent"] in {a.code for a in agents})
    assert mine == sorted((a.agent, a.start, a.kind) for a in planned)
    assert any(r["agent"] == "agent-001" for r in rows)  # the demo's own roster stays

    live = {a["agent"]: a for a in center.admin.get("/wfm/adherence")["agents"]}
    for a in {p.agent for p in planned}:
        # Scheduled to work now and logged out: out of adherence, as the monitor shows it.
        assert live[a]["activity"] == "work" and live[a]["in_adherence"] is False

    bad = run_failing("publish", "--roster", str(roster), "--server", center.server.url,
                      env={"HOTLINE_API_KEY": "not-a-key"})
    assert "401" in bad and "not-a-key" not in bad


def run_failing(*args: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, ["wfm", *args], env=env)
    assert result.exit_code == 1, result.output
    return result.stderr
