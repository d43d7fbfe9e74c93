"""The history screens in a real browser against the real server: the interval report shows
what /reports says and saves it as CSV and Excel with the same rows; the call records search
finds a call by its number and plays its recording (a real call between baresip phones);
a planner cannot open the call records. Screenshots in both languages in ``artifacts/web/``."""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect

from .browser import agent_user, fits, new_page, shoot, sign_in, unlabelled
from .peers import PhoneFactory
from .server import CallCenter, Queue, agent_phone, wait_until

Tone = Callable[..., Path]


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def duration(x: float | None) -> str:
    if x is None:
        return "—"
    h, rest = divmod(round(x), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


SHOWN: dict[str, Callable[[Any], str]] = {
    "offered": str, "answered": str, "abandoned": str, "service_level": pct, "asa": duration,
    "aht": duration, "abandon_rate": pct, "max_wait": duration,
}


def today() -> dict[str, str]:
    """The range the screens open with: today, midnight to midnight, in local time."""
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return {"from": str(midnight.timestamp()),
            "to": str((midnight + timedelta(days=1)).timestamp())}


def pick(page: Page, select: str, text: str) -> None:
    """Chooses ``text`` in an Element Plus select (typing filters its options)."""
    page.click(f"[data-test={select}]")
    page.keyboard.type(text)
    page.locator(".el-select-dropdown__item:visible", has_text=text).first.click()


def traffic(center: CallCenter, queue: Queue) -> None:
    """Two calls to ``queue``: one an agent answers and ends, one the caller gives up on."""
    code, name, password = agent_user(center, queue)
    agent = center.server.login(name, password)
    agent.post(f"/agents/{code}/login", {"ready": True})
    call = center.admin.post("/calls", {"queue": queue.id, "number": "13700000001"}, expect=201)
    wait_until(lambda: call["call"] == center.admin.get(f"/agents/{code}/state").get("call"),
               10, "the call offered to the agent")
    agent.post(f"/calls/{call['call']}/answer")
    time.sleep(1.5)
    agent.post(f"/calls/{call['call']}/hangup")
    agent.post(f"/agents/{code}/logout", {})
    gone = center.admin.post("/calls", {"queue": queue.id, "number": "13700000002"}, expect=201)
    time.sleep(1.5)  # longer than the queue's short abandon: it counts as abandoned
    center.admin.post(f"/calls/{gone['call']}/abandon")
    agent.close()


def test_the_queue_report_shows_and_exports_what_the_api_reports(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue(short_abandon=0.5)
    traffic(center, queue)
    expected = center.admin.get("/reports/queues", **today(), interval="30m", queue=queue.id)
    rows = expected["rows"]
    assert sum(r["offered"] for r in rows) == 2 and sum(r["abandoned"] for r in rows) == 1

    page = new_page(browser, "zh-CN")
    sign_in(page, center.server.url, "admin", center.server.password)
    page.goto(f"{center.server.url}/#/reports")
    expect(page.locator("h1")).to_have_text("时段报表")
    pick(page, "queue-filter", queue.id)
    table = page.locator("[data-test=report-table] .el-table__body-wrapper tbody tr")
    expect(table).to_have_count(len(rows))
    for tr, row in zip(table.all(), rows, strict=True):
        expect(tr.locator("[data-field=who]")).to_have_attribute("data-id", queue.id)
        for key, show in SHOWN.items():
            expect(tr.locator(f"[data-field={key}]")).to_have_text(show(row[key]))
    totals = page.locator("[data-test=report-table] .el-table__footer-wrapper td")
    expect(totals.nth(0)).to_have_text("合计")
    expect(totals.nth(2)).to_have_text("2")  # offered, after interval and queue
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "reports-queues-zh")

    # the files hold the same rows as the report
    with page.expect_download() as got:
        page.click("[data-test=export-csv]")
    assert got.value.suggested_filename.startswith("queues-")
    assert got.value.suggested_filename.endswith(".csv")
    saved = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))
    assert saved == [{k: "" if row[k] is None else str(row[k]) for k in expected["columns"]}
                     for row in rows]
    with page.expect_download() as got:
        page.click("[data-test=export-xlsx]")
    assert got.value.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(got.value.path()).read_bytes()))["queues"]
    header, *cells = sheet.iter_rows(values_only=True)
    assert list(header) == expected["columns"]
    assert len(cells) == len(rows)
    for line, row in zip(cells, rows, strict=True):
        got_row = dict(zip(header, line, strict=True))
        assert got_row["queue"] == queue.id
        for key in ("offered", "answered", "abandoned", "short_abandoned"):
            assert got_row[key] == row[key], key
        assert got_row["interval_start"] == datetime.fromisoformat(
            row["interval_start"]).astimezone().replace(tzinfo=None)

    page.click("[data-test=language] >> text=English")
    expect(page.locator("h1")).to_have_text("Interval reports")
    expect(page.locator("[data-test=report-table] thead")).to_contain_text("Service level")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "reports-queues-en")
    page.click("[data-test=by-agent]")
    expect(page.locator("[data-test=report-table] thead")).to_contain_text("Occupancy")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "reports-agents-en")
    page.context.close()


def test_call_records_find_a_call_by_number_and_play_its_recording(
    center: CallCenter, browser: Browser, phones: PhoneFactory, tone: Tone,
) -> None:
    queue = center.queue(wrap_up=1.0)
    agent = center.agent(queue)
    phone = agent_phone(center, phones, tone(1000), agent)
    number = f"139{secrets.randbelow(10**8):08d}"  # the caller's own: found by it alone
    caller = phones(number, tone(440))
    caller.dial(center.did_uri(queue))
    caller.wait("CALL_ESTABLISHED")
    phone.wait("CALL_ESTABLISHED")
    time.sleep(3)  # the conversation
    phone.hangup()
    caller.wait("CALL_CLOSED")
    cdr = center.wait_cdr(queue, outcome="answered", recording=True)
    assert cdr["number"] == number

    page = new_page(browser, "en-US")
    sign_in(page, center.server.url, "admin", center.server.password)
    page.goto(f"{center.server.url}/#/cdrs")
    expect(page.locator("h1")).to_have_text("Call records")
    page.fill("[data-test=number]", number)
    page.click("[data-test=search]")
    rows = page.locator("[data-test=cdr-table] .el-table__body-wrapper tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("[data-field=number]")).to_have_text(number)
    expect(rows.locator("[data-field=outcome]")).to_have_text("Answered")
    expect(rows.locator("[data-field=agent]")).to_have_text(agent.code)
    expect(rows.locator("[data-field=talk]")).to_have_text(duration(cdr["talk"]))
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "cdrs-en")

    rows.locator("[data-test=play]").click()
    audio = page.locator("[data-test=audio]")
    expect(audio).to_be_attached()
    length = page.wait_for_function(
        "() => { const a = document.querySelector('[data-test=audio]');"
        " return a && Number.isFinite(a.duration) && a.duration > 0 && a.duration }",
    ).json_value()
    assert abs(length - cdr["talk"]) <= 1.0, (length, cdr)
    assert (audio.get_attribute("src") or "").startswith("blob:")
    shoot(page, "cdrs-recording-en")
    page.keyboard.press("Escape")

    page.click("[data-test=language] >> text=中文")
    expect(page.locator("h1")).to_have_text("通话记录")
    expect(rows.locator("[data-field=outcome]")).to_have_text("已接通")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "cdrs-zh")
    page.context.close()


def test_a_planner_reads_reports_but_not_call_records(
    center: CallCenter, browser: Browser,
) -> None:
    page = new_page(browser, "en-US")
    sign_in(page, center.server.url, "planner", center.server.password)
    expect(page).to_have_url(f"{center.server.url}/#/planning")  # the planner's home
    page.click("nav >> text=Reports")
    expect(page.locator("[data-test=report-table]")).to_be_visible()
    page.goto(f"{center.server.url}/#/cdrs")
    expect(page.locator("[data-test=forbidden]")).to_be_visible()
    expect(page.locator("[data-test=cdr-table]")).to_have_count(0)
    page.context.close()
