"""A forecast's history from the server's stored calls, as planners rely on it: the same
offered counts and AHT per interval as the queue report, only intervals that are over, the
same file from the API and from `hotline wfm history`, and a forecast from it (or from an
uploaded history) with its backtest; who may ask. On SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm import synthetic
from hotline.wfm.forecast import METHODS
from hotline.wfm.staffing import read_forecast
from test_server_api import (  # the server under test, as the API tests build it
    Actor,
    Center,
    center,  # noqa: F401 - a fixture
    cheap_hashing,  # noqa: F401 - an autouse fixture
    invalid,
    ok,
    problem,
    server,  # noqa: F401 - a fixture
    wait_until,
)

MARGIN = 15.0  # seconds left in the first interval to make the calls in


def answered(c: Center, queue: str) -> None:
    cid = c.call(queue)["call"]
    agent = ok(c.admin.get(f"/calls/{cid}"))["agents"][0]
    who: Actor = c.alice if agent == "A1" else c.bob
    ok(who.post(f"/calls/{cid}/answer"))
    ok(who.post(f"/calls/{cid}/hangup"))


def test_history_counts_what_the_queue_report_counts(center: Center,  # noqa: F811
                                                      db_url: str) -> None:
    admin = center.admin
    t0 = time.time() - 900 + MARGIN  # the first 15-minute interval ends MARGIN s from now
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))
    for queue in ("sales", "sales", "support"):
        answered(center, queue)
    gone = center.call("sales")["call"]  # the caller hangs up at once: offered all the same
    ok(admin.post(f"/calls/{gone}/abandon"))
    assert time.time() < t0 + 900, "the calls took longer than the margin"
    window = {"from": str(t0), "to": str(t0 + 1800), "interval": "15m"}
    report = ok(admin.get("/reports/queues", params=window))["rows"]
    # the interval has not ended: the history leaves it out rather than call it quiet
    assert ok(admin.get("/wfm/history", params=window))["rows"] == []
    wait_until(lambda: time.time() > t0 + 900, timeout=MARGIN + 5, what="the interval's end")
    answered(center, "sales")  # in the next interval, still running: not in the history

    rows = ok(admin.get("/wfm/history", params=window))["rows"]
    first = [r for r in report if r["interval_start"] == rows[0]["interval_start"]]
    assert len(rows) == 1 and first
    assert rows[0]["calls"] == sum(r["offered"] for r in first) == 4
    handled = [r for r in first if r["aht"] is not None]
    center_aht = (sum(r["aht"] * r["answered"] for r in handled)
                  / sum(r["answered"] for r in handled))
    assert rows[0]["aht"] is not None and abs(rows[0]["aht"] - center_aht) <= 1e-9
    sales = ok(admin.get("/wfm/history", params={**window, "queue": "sales"}))["rows"]
    [sales_report] = [r for r in first if r["queue"] == "sales"]
    assert [(r["calls"], r["aht"]) for r in sales] == [
        (sales_report["offered"], sales_report["aht"])]

    # the CSV is a history file, the same as the command line writes from the database
    text = admin.get("/wfm/history", params={**window, "format": "csv"}).text
    [parsed] = read_forecast(text)
    assert parsed.calls == 4 and parsed.aht == rows[0]["aht"]
    result = CliRunner().invoke(app, ["wfm", "history", "--db", db_url, "--tenant", "acme",
                                      "--from", _iso(t0), "--to", _iso(t0 + 1800),
                                      "--interval", "15m"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == list(csv.reader(io.StringIO(text)))

    # a forecast from the stored calls: one interval is too little to backtest, not to
    # forecast with a named method
    stored = {"from": str(t0), "to": str(t0 + 1800), "interval": "15m", "horizon": "1d"}
    invalid(admin.post("/wfm/forecast", json=stored), "body.from")
    body = ok(admin.post("/wfm/forecast", json={**stored, "method": "seasonal-naive"}))
    assert body["backtest"] == [] and len(body["forecast"]) == 96
    assert all("aht" in f for f in body["forecast"])  # the stored history has AHT


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat()


def test_who_may_read_the_history(center: Center) -> None:  # noqa: F811
    now = time.time()
    window = {"from": str(now - 7 * 86400), "to": str(now)}
    for actor in (center.alice, center.qa):
        problem(actor.get("/wfm/history", params=window), 403)
    problem(center.sup.get("/wfm/history", params=window), 403)  # which of their queues?
    problem(center.sup.get("/wfm/history", params={**window, "queue": "vip"}), 403)
    ok(center.sup.get("/wfm/history", params={**window, "queue": "sales"}))
    ok(center.planner.get("/wfm/history", params=window))
    invalid(center.planner.get("/wfm/history", params={**window, "from": "last week"}),
            "query.from")
    invalid(center.planner.get("/wfm/history",
                               params={**window, "from": str(now - 400 * 86400)}), "query.to")


def as_csv(rows: list[Any]) -> str:
    return "interval_start,calls\n" + "".join(f"{r.start.isoformat()},{r.calls:g}\n"
                                              for r in rows)


def test_forecast_from_an_uploaded_history_or_the_stored_calls(
        center: Center) -> None:  # noqa: F811
    planner = center.planner
    upload = {"history": as_csv(synthetic.history(6)), "horizon": "1d",
              "holidays": ["2026-02-16"]}
    body = ok(planner.post("/wfm/forecast", json=upload))
    assert {a["method"] for a in body["backtest"]} == set(METHODS)
    assert body["method"] == min(body["backtest"], key=lambda a: a["mape"])["method"]
    assert len(body["forecast"]) == 48 and body["holidays"] == [
        {"date": "2026-02-16", "name": ""}]
    r = planner.post("/wfm/forecast", json=upload, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert [x.calls for x in read_forecast(r.text)] == [f["calls"] for f in body["forecast"]]
    invalid(planner.post("/wfm/forecast", json={**upload, "method": "tarot"}), "body.method")
    invalid(planner.post("/wfm/forecast", json={**upload, "history": "when,calls\n"}),
            "body.history")
    invalid(planner.post("/wfm/forecast", json={**upload, "horizon": "7m"}), "body.horizon")

    problem(center.alice.post("/wfm/forecast", json=upload), 403)
    problem(center.sup.post("/wfm/forecast", json={"queue": "vip"}), 403)


RULES = {
    "shifts": [{"name": "day", "start": ["08:00", "09:00"], "length": "8h30m",
                "breaks": [{"duration": "30m", "earliest": "3h", "latest": "5h",
                            "paid": False}]}],
    "tours": [{"name": "full-time", "working_days": 5}],
    "solver": {"time_limit": "60s"},
}


def test_planner_goes_from_forecast_to_a_named_roster(center: Center) -> None:  # noqa: F811
    """Forecast → agents per interval → shifts → named agents, each step's output the next
    one's input as a planner's browser would pass it on; a support line goes to the agent
    with the support skill."""
    planner = center.planner
    monday = datetime(2026, 12, 7)
    forecast = "interval_start,calls\n" + "".join(
        f"{monday + timedelta(days=d, hours=9, minutes=30 * k):%Y-%m-%dT%H:%M},12\n"
        for d in range(5) for k in range(16))
    r = planner.post("/wfm/staff", json={"forecast": forecast, "aht": "5m"},
                     params={"format": "csv"})
    assert r.status_code == 200, r.text
    need = read_forecast(r.text, "positions")
    assert {x.calls for x in need} == {
        ok(planner.post("/wfm/staff", json={"forecast": forecast, "aht": "5m"}))
        ["intervals"][0]["positions"]}
    body = ok(planner.post("/wfm/schedule", json={"requirements": r.text, "rules": RULES}))
    assert body["short_agent_hours"] == 0 and body["bound"] <= body["objective"] + 1e-6
    per_interval = {c["interval_start"]: c for c in body["coverage"]}
    for x in need:
        assert per_interval[x.start.isoformat()]["scheduled"] >= x.calls
    lines = {a["agent"] for a in body["activities"]}
    schedule_csv = planner.post("/wfm/schedule", json={"requirements": r.text,
                                                       "rules": RULES},
                                params={"format": "csv"}).text
    roster = ok(planner.post("/wfm/assign", json={"schedule": schedule_csv,
                                                  "skill": "support"}))
    # Only A2 has the support skill: one line is staffed by A2, the others stay open.
    assert list(roster["assigned"].values()) == ["A2"]
    assert set(roster["open_lines"]) | set(roster["assigned"]) == lines
    assert {a["agent"] for a in roster["activities"]} == {"A2"}
    contracts = ok(planner.post("/wfm/assign", json={
        "schedule": schedule_csv, "agents": [{"agent": "A1", "max_hours": 10}]}))
    assert contracts["assigned"] == {} and contracts["idle_agents"] == ["A1"]

    # A2 worked Sunday until 23:00 (published): no line starting before 10:00 on Monday.
    ok(planner.put("/wfm/roster", json=[{"agent": "A2", "start": "2026-12-06T15:00",
                                         "end": "2026-12-06T23:00", "activity": "work"}],
                   params={"from": "2026-12-06", "to": "2026-12-07"}))
    rested = ok(planner.post("/wfm/assign", json={"schedule": schedule_csv,
                                                  "skill": "support"}))
    firsts = {a["agent"]: min(b["start"] for b in body["activities"]
                              if b["agent"] == a["agent"]) for a in body["activities"]}
    for line in rested["assigned"]:
        assert firsts[line] >= "2026-12-07T10:00"
    for line, first in firsts.items():
        if first < "2026-12-07T10:00":
            assert line in rested["open_lines"]
            assert "rest" in {r["reason"] for r in rested["open_lines"][line]}
    ok(planner.put("/wfm/roster", json=[], params={"from": "2026-12-06", "to": "2026-12-07"}))

    # Simulated: A2 alone against a forecast that needs several agents fails every interval,
    # and the agents on the phones per interval are the roster's work time in it.
    roster_csv = "agent,start,end,activity\n" + "".join(
        f"{a['agent']},{a['start']},{a['end']},{a['activity']}\n" for a in roster["activities"])
    sim = ok(planner.post("/wfm/simulate", json={"roster": roster_csv, "forecast": forecast,
                                                 "aht": "5m", "replications": 2}))
    rows = read_forecast(forecast)
    assert [r["interval_start"] for r in sim["intervals"]] == [x.start.isoformat()
                                                               for x in rows]
    for r in sim["intervals"]:
        t0 = datetime.fromisoformat(r["interval_start"])
        t1 = t0 + timedelta(minutes=30)
        work = sum(max(0.0, (min(t1, datetime.fromisoformat(a["end"]))
                             - max(t0, datetime.fromisoformat(a["start"]))).total_seconds())
                   for a in roster["activities"] if a["activity"] == "work") / 1800
        assert r["scheduled"] == pytest.approx(work)
        assert r["required"] > r["scheduled"] and r["below_target"]
    invalid(planner.post("/wfm/simulate", json={"roster": "agent\n", "forecast": forecast}),
            "body.roster")

    # Published: the server holds the roster and measures adherence against it.
    span = {"from": "2026-12-07", "to": "2026-12-12"}
    published = ok(planner.put("/wfm/roster", json=roster["activities"], params=span))
    assert published["activities"] == len(roster["activities"])
    assert ok(planner.get("/wfm/roster", params=span)) and all(
        a["agent"] == "A2" for a in ok(planner.get("/wfm/roster", params=span)))


def test_scheduling_input_errors_name_the_field(center: Center) -> None:  # noqa: F811
    planner = center.planner
    req = "interval_start,positions\n2026-12-07T09:00,2\n2026-12-07T09:30,2\n"
    invalid(planner.post("/wfm/schedule", json={"requirements": req, "rules": {
        "shifts": [{"name": "day", "start": "26:00", "length": "8h"}]}}),
        "body.rules.shifts.0.start")
    invalid(planner.post("/wfm/schedule", json={"requirements": "interval_start\n",
                                                "rules": RULES}), "body.requirements")
    r = planner.post("/wfm/schedule", json={"requirements": req.replace("09:", "03:"),
                                            "rules": RULES})
    assert r.status_code == 422 and "under_coverage" in r.json()["detail"]
    invalid(planner.post("/wfm/assign", json={"schedule": "agent,start\n"}), "body.schedule")
    invalid(planner.post("/wfm/assign", json={
        "schedule": "agent,start,end,activity\nline-1,2026-12-07T09:00,2026-12-07T17:00,work\n",
        "agents": [{"agent": "ZZ"}]}), "body.agents.0.agent")
    invalid(planner.post("/wfm/assign", json={
        "schedule": "agent,start,end,activity\nline-1,2026-12-07T09:00,2026-12-07T17:00,work\n",
        "agents": [{"agent": "A1", "available": "9am-5pm"}]}), "body.agents.0")
    for who in (center.sup, center.alice, center.qa):
        problem(who.post("/wfm/schedule", json={"requirements": req, "rules": RULES}), 403)
        problem(who.post("/wfm/assign", json={"schedule": "agent\n"}), 403)
