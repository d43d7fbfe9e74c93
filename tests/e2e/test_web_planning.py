"""The planner's page in a real browser against the real server: from an uploaded history to
a forecast, the staffing it needs, shifts and a roster of named agents, each step fed by the
one before; what the page shows is what the API answers for the same inputs (the page's own
requests replayed); the roster simulated, and published as the server then holds it. In both
languages, at 1366×768, every control named. An agent cannot open the page. Screenshots in
``artifacts/web/``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from hotline.wfm.synthetic import history

from .browser import agent_user, fits, new_page, shoot, sign_in, unlabelled
from .server import CallCenter

RULES = """\
interval: 30m
break_step: 15m
min_rest: 11h
shifts:
  - name: early
    start: {from: "08:00", to: "10:00", step: 1h}
    length: 8h
    breaks:
      - {duration: 30m, earliest: 3h, latest: 5h, paid: false}
  - name: late
    start: ["12:00"]
    length: 8h
    breaks:
      - {duration: 30m, earliest: 3h, latest: 5h, paid: false}
tours:
  - name: full-time
    working_days: 5
    consecutive_days_off: true
costs:
  paid_hour: 1.0
  under_coverage: 3.0
solver:
  time_limit: 60s
  gap: 0.0
"""

METHODS_ZH = {"seasonal-naive": "同上周", "historical-average": "历史平均",
              "profile": "日总量 × 日内分布", "trend": "趋势"}


def history_csv(weeks: int = 6) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["interval_start", "calls"])
    for r in history(weeks):
        writer.writerow([r.start.isoformat(), f"{r.calls:g}"])
    return out.getvalue()


def num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def check(page: Page, name: str) -> None:
    """The step fits the smallest screen, names every control, and is kept as a picture."""
    assert fits(page), name
    assert unlabelled(page) == [], name
    shoot(page, name)


def posted(page: Page, path: str, click: str) -> tuple[dict[str, Any], Any]:
    """Clicks ``click`` and returns the JSON the page sent to ``path`` and the response."""
    with page.expect_response(lambda r: r.url.split("?")[0].endswith(path)
                              and r.request.method in ("POST", "PUT"),
                              timeout=180_000) as got:
        page.click(click)
    response = got.value
    return json.loads(response.request.post_data or "null"), response


def test_a_planner_goes_from_history_to_a_roster(
    center: CallCenter, browser: Browser, tmp_path: Path,
) -> None:
    planner = center.server.login("planner")
    text = history_csv()
    upload = tmp_path / "history.csv"
    upload.write_text(text)

    page = new_page(browser, "zh-CN")
    sign_in(page, center.server.url, "planner", center.server.password)
    expect(page).to_have_url(f"{center.server.url}/#/planning")  # the planner's home
    expect(page.locator("h1")).to_have_text("排班规划")

    # 1. forecast from the uploaded history
    page.click("[data-test=source-file]")
    page.set_input_files("[data-test=history-file]", str(upload))
    expect(page.locator("[data-test=file-name]")).to_have_text("history.csv")
    body, _ = posted(page, "/wfm/forecast", "[data-test=run-forecast]")
    assert body == {"horizon": "7d", "method": "auto", "holidays": [], "history": text}
    fc = planner.post("/wfm/forecast", body)
    expect(page.locator("[data-test=chosen-method]")).to_have_attribute("data-method", fc["method"])
    expect(page.locator("[data-test=chosen-method]")).to_have_text(METHODS_ZH[fc["method"]])
    expect(page.locator("[data-test=forecast-rows]")).to_have_text(str(len(fc["forecast"])))
    expect(page.locator("[data-test=total-calls]")).to_have_text(
        f"{sum(r['calls'] for r in fc['forecast']):.0f}")
    rows = page.locator("[data-test=backtest] .el-table__body-wrapper tbody tr")
    expect(rows).to_have_count(len(fc["backtest"]))
    for tr, b in zip(rows.all(), fc["backtest"], strict=True):
        expect(tr.locator("[data-field=method]")).to_have_attribute("data-method", b["method"])
        expect(tr.locator("[data-field=mape]")).to_have_text(f"{num(b['mape'])}%")
        expect(tr.locator("[data-test=chosen]")).to_have_count(int(b["method"] == fc["method"]))
    with page.expect_download() as got:
        page.click("[data-test=save-forecast]")
    saved = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    assert [(r["interval_start"], float(r["calls"])) for r in saved] == \
        [(r["interval_start"], r["calls"]) for r in fc["forecast"]]
    check(page, "planning-forecast-zh")

    # 2. staffing for that forecast (no AHT in it: the page asks for one, 5m by default)
    page.click("[data-test=next-forecast]")
    page.fill("[data-test=aht]", "4m")
    body, _ = posted(page, "/wfm/staff", "[data-test=run-staff]")
    sent = list(csv.DictReader(io.StringIO(body["forecast"])))
    assert [(r["interval_start"], float(r["calls"])) for r in sent] == \
        [(r["interval_start"], r["calls"]) for r in fc["forecast"]]
    assert body["aht"] == "4m" and body["sl_target"] == 0.8 and body["shrinkage"] == 0.3
    st = planner.post("/wfm/staff", body)
    expect(page.locator("[data-test=peak-positions]")).to_have_text(
        str(max(r["positions"] for r in st["intervals"])))
    table = page.locator("[data-test=staff-table] .el-table__body-wrapper tbody tr")
    expect(table).to_have_count(len(st["intervals"]))
    for tr, r in list(zip(table.all(), st["intervals"], strict=True))[:40:7]:
        expect(tr.locator("[data-field=agents]")).to_have_text(str(r["agents"]))
        expect(tr.locator("[data-field=positions]")).to_have_text(str(r["positions"]))
    check(page, "planning-staff-zh")

    # 3. shifts: the rules' YAML, a shorter time limit, the busy state while solving
    page.click("[data-test=next-staff]")
    expect(page.locator("[data-test=rules]")).to_have_value(
        (Path(__file__).resolve().parents[2] / "examples/wfm/rules.yaml").read_text())
    page.fill("[data-test=rules]", "shifts: [\n  oops")  # not YAML: said so
    page.click("[data-test=run-schedule]")
    expect(page.locator("[data-test=error]")).to_contain_text("YAML")
    page.fill("[data-test=rules]", RULES.replace("length: 8h\n", "length: 30h\n", 1))
    page.click("[data-test=run-schedule]")  # the server's error names the rule
    expect(page.locator("[data-test=error]")).to_contain_text("shifts.0")
    page.fill("[data-test=rules]", RULES)
    page.fill("[data-test=time-limit] input", "30")
    with page.expect_response(lambda r: "/wfm/schedule" in r.url, timeout=180_000) as got:
        page.click("[data-test=run-schedule]")
        expect(page.locator("[data-test=solving]")).to_be_visible()
    body = json.loads(got.value.request.post_data or "null")
    assert body["time_limit"] == 30 and body["column"] == "positions"
    assert body["rules"]["shifts"][0]["start"] == {"from": "08:00", "to": "10:00", "step": "1h"}
    shown = got.value.json()
    sc = planner.post("/wfm/schedule", body)
    assert sc["status"] == shown["status"] == "optimal"
    assert sc["agents"] == shown["agents"]
    assert round(sc["objective"], 2) == round(shown["objective"], 2)
    summary = page.locator("[data-test=schedule-summary]")
    expect(summary.locator("[data-field=objective]")).to_have_text(num(sc["objective"], 2))
    expect(summary.locator("[data-field=agents]")).to_have_text(str(sc["agents"]))
    expect(summary.locator("[data-field=status]")).to_have_text("optimal")
    expect(summary.locator("[data-field=paid_hours]")).to_have_text(num(sc["paid_hours"]))
    days = page.locator("[data-test=shifts-per-day] .el-table__body-wrapper tbody tr")
    expect(days).to_have_count(len({c["interval_start"][:10] for c in shown["coverage"]}))
    per_day: dict[str, int] = {}
    for s in shown["shifts"]:
        per_day[s["start"][:10]] = per_day.get(s["start"][:10], 0) + s["count"]
    for tr in days.all():
        day = (tr.locator("[data-field=day]").text_content() or "")[:10]
        expect(tr.locator("[data-field=total]")).to_have_text(str(per_day.get(day, 0)))
    check(page, "planning-schedule-zh")

    # 4. the roster: every agent of the tenant, one with a contract too short for any line
    page.click("[data-test=next-schedule]")
    contracts = page.locator("[data-test=contracts] .el-table__body-wrapper tbody tr")
    expect(contracts.first).to_be_visible()
    first = contracts.first.locator("[data-field=agent]").text_content()
    contracts.first.locator("[data-field=max_hours] input").fill("10")
    contracts.first.locator("[data-field=max_hours] input").blur()
    body, response = posted(page, "/wfm/assign", "[data-test=run-roster]")
    assert {"agent": first, "max_hours": 10} in body["agents"]
    assert response.json() == planner.post("/wfm/assign", body)
    ro = response.json()
    assert first in ro["idle_agents"]
    expect(page.locator("[data-test=assigned-count]")).to_have_text(str(len(ro["assigned"])))
    expect(page.locator("[data-test=open-count]")).to_have_text(str(len(ro["open_lines"])))
    grid = page.locator("[data-test=roster-grid] .el-table__body-wrapper tbody tr")
    expect(grid).to_have_count(len(ro["assigned"]) + len(ro["open_lines"]))
    lines = {line: agent for line, agent in ro["assigned"].items()}
    named = grid.locator("[data-field=who]")
    for i in range(len(ro["assigned"])):
        who = named.nth(i)
        assert lines[who.get_attribute("data-line") or ""] == who.text_content()
    if ro["open_lines"]:
        open_rows = page.locator("[data-test=open-lines] .el-table__body-wrapper tbody tr")
        expect(open_rows).to_have_count(len(ro["open_lines"]))
        line = open_rows.first.locator("[data-field=line]").text_content() or ""
        # each reason worded in the page's language, with the server's figures in it
        shown = open_rows.first.locator("[data-field=reason]").text_content() or ""
        assert ro["open_lines"][line]
        for reason in ro["open_lines"][line]:
            for key, value in reason.items():
                if key not in ("reason", "day"):
                    assert (f"{value:g}" if isinstance(value, float | int) else value) in shown
    # an agent's shift on its first working day, as the grid shows it
    agent = sorted(lines.values())[0]
    mine = [a for a in ro["activities"] if a["agent"] == agent]
    start, day = mine[0]["start"], mine[0]["start"][:10]
    row = grid.filter(has=page.locator(f"[data-field=who]:text-is('{agent}')"))
    expect(row.locator(f"[data-day='{day}']")).to_contain_text(start[11:16])
    check(page, "planning-roster-zh")

    # the same page in English keeps every result
    page.click("[data-test=language] >> text=English")
    expect(page.locator("h1")).to_have_text("Planning")
    expect(page.locator("[data-test=tab-roster]")).to_contain_text("Roster")
    expect(page.locator("[data-test=assigned-count]")).to_have_text(str(len(ro["assigned"])))
    check(page, "planning-roster-en")
    page.click("[data-test=tab-schedule]")
    expect(page.locator("[data-test=schedule-summary]")).to_contain_text("Solver status")
    expect(summary.locator("[data-field=objective]")).to_have_text(num(sc["objective"], 2))
    check(page, "planning-schedule-en")
    page.click("[data-test=tab-forecast]")
    expect(page.locator("[data-test=backtest] thead")).to_contain_text("Daily error")
    check(page, "planning-forecast-en")

    # 5. simulation: the roster against the forecast, as the API simulates it
    page.click("[data-test=tab-simulate]")
    page.fill("[data-test=replications] input", "2")
    body, response = posted(page, "/wfm/simulate", "[data-test=run-simulate]")
    assert response.ok, response.text()
    sim = planner.post("/wfm/simulate", body)  # the same request: the same seeds, same result
    below = [r for r in sim["intervals"] if r["below_target"]]
    expect(page.locator("[data-test=below-count]")).to_have_text(str(len(below)))
    expect(page.locator("[data-test=overall-sl]")).to_have_text(
        f"{sim['total']['service_level']:.1%}")
    check(page, "planning-simulate-en")
    # 6. publishing: the server then holds exactly the roster
    page.click("[data-test=tab-publish]")
    page.click("[data-test=publish]")
    with page.expect_response(lambda r: "/wfm/roster" in r.url) as got:
        page.locator(".el-message-box__btns .el-button--primary").click()
    assert got.value.ok, got.value.text()
    expect(page.locator("[data-test=published]")).to_be_visible()
    days = sorted({a["start"][:10] for a in ro["activities"]})
    stored = planner.get("/wfm/roster", **{"from": days[0], "to": days[-1] + "T23:59:59"})
    assert sorted((a["agent"], a["start"][:16], a["activity"]) for a in stored) == sorted(
        (a["agent"], a["start"][:16], a["activity"]) for a in ro["activities"])
    check(page, "planning-publish-en")
    page.context.close()
    planner.close()


def test_an_agent_cannot_open_planning(center: CallCenter, browser: Browser) -> None:
    _, name, password = agent_user(center, center.queue())
    page = new_page(browser, "en-US")
    sign_in(page, center.server.url, name, password)
    expect(page).to_have_url(f"{center.server.url}/#/agent")
    expect(page.locator("nav")).not_to_contain_text("Planning")
    page.goto(f"{center.server.url}/#/planning")
    expect(page.locator("[data-test=forbidden]")).to_be_visible()
    expect(page.locator("[data-test=steps]")).to_have_count(0)
    page.context.close()
