"""The supervisor's monitor in a real browser against the real server: agents' states arrive
within a second of changing, a VIP caller waiting raises an alert and can be moved to another
queue, the supervisor forces an agent's state, and a notice reaches the agent's desktop and is
withdrawn from it. Agents cannot open the monitor or the administration."""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from playwright.sync_api import Browser, expect

from .browser import agent_user, choose, fits, new_page, shoot, sign_in, unlabelled
from .server import CallCenter, Queue, wait_until


def _local(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds_from_now).astimezone().isoformat()


def supervisor_user(center: CallCenter, team: str, queues: list[Queue]) -> tuple[str, str]:
    name, password = f"sup{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password, "role": "supervisor",
                                 "teams": [team], "queues": [q.id for q in queues]}, expect=201)
    return name, password


def test_a_supervisor_watches_the_floor_and_acts_on_it(
    center: CallCenter, browser: Browser,
) -> None:
    queue, other = center.queue(), center.queue()
    code, agent_name, agent_password = agent_user(center, queue)
    team = center.admin.get(f"/agents/{code}")["team"]
    sup_name, sup_password = supervisor_user(center, team, [queue, other])
    reason = center.admin.get("/reason-codes")[0]["code"]

    page = new_page(browser, "zh-CN")
    sign_in(page, center.server.url, sup_name, sup_password)
    expect(page).to_have_url(f"{center.server.url}/#/monitor")  # a supervisor's home
    tile = page.locator(f"[data-agent='{code}']")
    expect(tile).to_have_attribute("data-state", "logged_out")

    # The state change is on the screen within a second of the agent's action.
    center.admin.post(f"/agents/{code}/login", {"ready": True})
    acted = time.monotonic()
    expect(tile).to_have_attribute("data-state", "ready", timeout=1000)
    assert time.monotonic() - acted < 1.0
    expect(tile.locator("[data-field=state]")).to_have_text("就绪")

    # Rostered to work now: ready is in adherence, shown on the tile as it is published.
    hour = 3600
    span = {"from": _local(-hour), "to": _local(hour)}
    center.admin.call("PUT", "/wfm/roster", body=[
        {"agent": code, "start": span["from"], "end": span["to"], "activity": "work"}], **span)
    adherence = tile.locator("[data-field=adherence]")
    expect(adherence).to_have_attribute("data-adherence", "in")
    expect(adherence).to_contain_text("工作")

    # The supervisor forces the agent not ready (with a reason), then ready again.
    tile.click()
    actions = page.locator("[data-test=agent-actions]")
    actions.locator("[data-test=force-not-ready]").click()
    expect(tile).to_have_attribute("data-state", "not_ready")
    state = center.admin.get(f"/agents/{code}/state")
    assert (state["state"], state["reason"]) == ("not_ready", reason)
    # Not ready during scheduled work: out of adherence, on the tile and in the summary.
    expect(adherence).to_have_attribute("data-adherence", "out")
    expect(adherence).to_contain_text("未遵守排班")
    expect(page.locator("[data-test=adh-out] b")).not_to_have_text("0")

    # Nobody is ready: a VIP caller waits, shows in the list and raises an alert.
    call = center.admin.post("/calls", {"queue": queue.id, "number": "13700000002",
                                        "data": {"vip": "1"}}, expect=201)["call"]
    row = page.locator(f"[data-test=waiting-calls] [data-call='{call}']")
    expect(row).to_contain_text("13700000002")
    expect(page.locator("[data-test=alerts]")).to_contain_text("VIP")
    expect(page.locator(f"[data-queue='{queue.id}']")).to_be_visible()
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "monitor-zh")

    # Move it to the other queue.
    row.locator("[data-test=move]").click()
    choose(page, page.locator("[data-test=move-queue]"), other.id)
    page.click("[data-test=move-confirm]")
    wait_until(lambda: center.admin.get(f"/calls/{call}")["queue"] == other.id, 5,
               "the call moved")

    actions.locator("[data-test=force-ready]").click()
    expect(tile).to_have_attribute("data-state", "ready")
    assert center.admin.get(f"/agents/{code}/state")["state"] == "ready"
    expect(adherence).to_have_attribute("data-adherence", "in")

    # A notice to the team reaches the agent's open desktop, and goes when withdrawn.
    desk = new_page(browser, "en-US")
    sign_in(desk, center.server.url, agent_name, agent_password)
    expect(desk).to_have_url(f"{center.server.url}/#/agent")
    text = f"系统升级，请登记回访 {secrets.token_hex(2)}"
    page.fill("[data-test=notice-text]", text)
    page.click("[data-test=notice-send]")
    expect(desk.locator("[data-test=notices]")).to_contain_text(text)
    notice = next(n for n in center.admin.get("/notices") if n["text"] == text)
    assert notice["author"] == sup_name and notice["teams"] == [team]  # the teams it leads
    shoot(desk, "agent-notice-en")
    page.locator(f"[data-notice='{notice['id']}'] [data-test=withdraw]").click()
    expect(desk.locator(f"[data-notice='{notice['id']}']")).to_have_count(0)

    # The agent can open neither the monitor nor the administration.
    for screen in ("monitor", "admin/queues"):
        desk.goto(f"{center.server.url}/#/{screen}")
        expect(desk.locator("[data-test=forbidden]")).to_be_visible()

    page.click("[data-test=language] >> text=English")
    expect(tile.locator("[data-field=state]")).to_have_text("Ready")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "monitor-en")
    center.admin.post(f"/calls/{call}/abandon")
    center.admin.post(f"/agents/{code}/logout", {})
    page.context.close()
    desk.context.close()


def test_the_demo_supervisor_sees_every_agent_they_lead_on_the_live_floor(
    center: CallCenter, browser: Browser,
) -> None:
    teams = set(center.admin.get("/users/supervisor")["teams"])
    led = [a["code"] for a in center.admin.get("/agents") if a["team"] in teams]
    assert led, "the demo's supervisor leads the demo's agents"
    for lang in ("zh-CN", "en-US"):
        page = new_page(browser, lang)
        sign_in(page, center.server.url, "supervisor", center.server.password)
        expect(page.locator("[data-agent]")).to_have_count(len(led))
        for code in led[:3]:
            expect(page.locator(f"[data-agent='{code}']")).to_be_visible()
        assert fits(page)
        assert unlabelled(page) == []
        shoot(page, f"monitor-floor-{lang[:2]}")
        page.context.close()
