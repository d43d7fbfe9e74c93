"""Reports and call records as files a person opens: the Excel workbook (``format=xlsx``) and
CSV hold the same rows and values as the JSON, with numbers as numbers, times as Excel dates
and durations as Excel times; the call records' files hold every matching call, not a page,
and only those the user may see. Against a real server app on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from hotline.server import security
from hotline.server.app import Settings, create_app
from hotline.server.export import DURATIONS, STAMPS
from test_server_api import PLATFORM_PASSWORD, Actor, Center, Server, invalid, ok

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at a test cost: these tests log in several users."""
    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def center(db_url: str) -> Iterator[Center]:
    settings = Settings(db_url=db_url, admin_password=PLATFORM_PASSWORD, say=lambda s: None)
    with TestClient(create_app(settings)) as client:
        yield Center(Server(client))


def traffic(center: Center) -> None:
    """Sales: two calls answered (one by each agent), one abandoned; support: one answered;
    then both agents log out."""
    alice, bob, admin = center.alice, center.bob, center.admin
    ok(alice.post("/agents/A1/login", json={"ready": True}))
    ok(bob.post("/agents/A2/login", json={"ready": True}))
    for number in ("13800000001", "13800000002"):
        cid = center.call("sales", number)["call"]
        who = alice if ok(admin.get(f"/calls/{cid}"))["agents"] == ["A1"] else bob
        ok(who.post(f"/calls/{cid}/answer"))
        ok(who.post(f"/calls/{cid}/hangup"))
    ok(alice.post("/agents/A1/not-ready", json={"reason": "break"}))
    ok(bob.post("/agents/A2/not-ready", json={"reason": "break"}))
    ok(admin.post(f"/calls/{center.call('sales', '13800000003')['call']}/abandon"))
    ok(bob.post("/agents/A2/ready"))
    cid = center.call("support", "13800000004")["call"]
    ok(bob.post(f"/calls/{cid}/answer"))
    ok(bob.post(f"/calls/{cid}/hangup"))
    for who, code in ((alice, "A1"), (bob, "A2")):  # logged out: their figures stop growing
        ok(who.post(f"/agents/{code}/logout", json={}))


def workbook(r: httpx.Response, sheet: str) -> Worksheet:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    disposition = r.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="{sheet}') and disposition.endswith(
        '.xlsx"'
    ), disposition
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == [sheet]
    ws = book[sheet]
    assert isinstance(ws, Worksheet)
    return ws


def local(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value).astimezone().replace(tzinfo=None)
    return datetime.fromtimestamp(value)


def assert_same(ws: Worksheet, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """The sheet is a header row and then ``rows``, value for value, in Excel's own types."""
    table = list(ws.iter_rows(values_only=True))
    assert list(table[0]) == columns
    assert len(table) - 1 == len(rows)
    for cells, row in zip(table[1:], rows, strict=True):
        for name, cell in zip(columns, cells, strict=True):
            want = row[name]
            if want is None:
                assert cell is None, (name, cell)
            elif name in STAMPS:
                assert isinstance(cell, datetime), (name, cell)
                assert abs((cell - local(want)).total_seconds()) < 0.001, (name, cell, want)
            elif name in DURATIONS:
                assert isinstance(cell, timedelta), (name, cell)  # shown [h]:mm:ss
                # (openpyxl reads a duration back to the hundredth of a second)
                assert cell.total_seconds() == pytest.approx(want, abs=0.02), (name, cell)
            elif isinstance(want, (int, float)) and not isinstance(want, bool):
                assert isinstance(cell, (int, float)), (name, cell)  # a number, not text
                assert cell == pytest.approx(want), (name, cell, want)
            elif isinstance(want, dict):
                assert json.loads(str(cell)) == want
            else:
                assert cell == want, (name, cell, want)
    # widths set for the content (Excel's default shows a date as ####)
    assert (ws.column_dimensions["A"].width or 0) >= 19


def test_excel_reports_hold_the_rows_and_values_of_the_json(center: Center) -> None:
    start = time.time()
    traffic(center)
    admin = center.admin
    t0 = (start // 900) * 900 - 900
    window = {"from": str(t0), "to": str(t0 + 3600), "interval": "15m"}
    for report, key in (("queues", "queue"), ("agents", "agent")):
        data = ok(admin.get(f"/reports/{report}", params=window))
        assert data["rows"], report
        ws = workbook(admin.get(f"/reports/{report}", params={**window, "format": "xlsx"}), report)
        assert_same(ws, data["columns"], data["rows"])
        everyone = {r[key] for r in data["rows"]}
        assert everyone == ({"sales", "support"} if key == "queue" else {"A1", "A2"})
        # one queue's or agent's rows: what the screen shows, and what its files hold
        one = sorted(everyone)[0]
        only = ok(admin.get(f"/reports/{report}", params={**window, key: one}))["rows"]
        assert only == [r for r in data["rows"] if r[key] == one]
        ws = workbook(admin.get(f"/reports/{report}", params={**window, key: one,
                                                               "format": "xlsx"}), report)
        assert_same(ws, data["columns"], only)

    # Whole days: one row per queue for today, the sums of its quarter hours.
    midnight = datetime.fromtimestamp(start).replace(hour=0, minute=0, second=0, microsecond=0)
    day = {"from": midnight.isoformat(), "to": str(midnight.timestamp() + 86400),
           "interval": "1d"}
    daily = ok(admin.get("/reports/queues", params=day))["rows"]
    assert [(r["interval_start"], r["queue"], r["offered"], r["answered"]) for r in daily] == [
        (midnight.astimezone().isoformat(), "sales", 3, 2),
        (midnight.astimezone().isoformat(), "support", 1, 1),
    ]
    ws = workbook(admin.get("/reports/queues", params={**day, "format": "xlsx"}), "queues")
    assert_same(ws, ok(admin.get("/reports/queues", params=day))["columns"], daily)


def test_an_empty_excel_report_still_has_its_header_row(center: Center) -> None:
    now = time.time()
    window = {"from": str(now - 7200), "to": str(now - 3600), "format": "xlsx"}
    ws = workbook(center.admin.get("/reports/agents", params=window), "agents")
    header = next(ws.iter_rows(values_only=True))
    assert {"interval_start", "agent", "answered", "occupancy"} <= set(header)


def all_cdrs(actor: Actor, **params: Any) -> list[dict[str, Any]]:
    return ok(actor.get("/cdrs", params={**params, "page_size": 1000}))["items"]  # type: ignore[no-any-return]


def test_call_records_files_hold_every_matching_call_the_user_may_see(center: Center) -> None:
    traffic(center)
    admin, sup = center.admin, center.sup
    ok(admin.post(f"/calls/{center.call('vip', '13800000005')['call']}/abandon"))  # not sup's
    everything = all_cdrs(admin)
    assert len(everything) == 5

    # one page of JSON at a time, but the whole search in one file, newest first
    r = admin.get("/cdrs", params={"format": "xlsx", "page_size": 1})
    ws = workbook(r, "cdrs")
    columns = [c.value for c in next(ws.iter_rows(max_row=1))]
    assert_same(ws, columns, everything)
    assert "recording" in columns and "outcome" in columns

    # CSV: the same calls, the times ISO 8601, the caller's data as JSON
    r = admin.get("/cdrs", params={"format": "csv", "queue": "sales"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    sales = all_cdrs(admin, queue="sales")
    assert [t["call_id"] for t in table] == [c["call_id"] for c in sales]
    assert sorted(t["number"] for t in table) == ["13800000001", "13800000002", "13800000003"]
    for t, c in zip(table, sales, strict=True):
        assert datetime.fromisoformat(t["arrived_at"]).timestamp() == pytest.approx(
            c["arrived_at"], abs=1)
        assert t["outcome"] == c["outcome"]
        assert json.loads(t["caller"]) == c["caller"]

    # a supervisor's file has only the calls of its queues and teams, as its search does
    mine = all_cdrs(sup)
    ws = workbook(sup.get("/cdrs", params={"format": "xlsx"}), "cdrs")
    assert_same(ws, columns, mine)
    assert len(mine) == 4 and "13800000005" not in {c["number"] for c in mine}
    assert invalid(admin.get("/cdrs", params={"format": "pdf"}), "query.format")
