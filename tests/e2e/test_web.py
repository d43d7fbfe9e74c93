"""The screens in a real browser (Debian's Chromium driven by Playwright, no browser download)
against the real server with the demo's simulated traffic: an agent signs in, goes ready,
gets a call with its screen-pop, answers, hangs up and wraps up with a disposition; the
wallboard shows what /stats/realtime says; the language switches; roles are kept to their
screens. Screenshots of each screen in both languages are kept in ``artifacts/web/``."""

from __future__ import annotations

import secrets
from typing import Any

from playwright.sync_api import Browser, expect

from .browser import agent_user, choose, fits, new_page, shoot, sign_in, unlabelled
from .server import CallCenter, wait_until


def label(item: dict[str, Any]) -> str:
    """A configured item's English name, as the screens show it (its code without one)."""
    return str((item.get("labels") or {}).get("en") or item["code"])


def test_an_agent_takes_a_call_from_the_desktop_with_its_screen_pop(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue(wrap_up=120.0)  # the agent ends wrap-up by hand
    code, name, password = agent_user(center, queue)
    disposition = center.admin.get("/dispositions")[0]["code"]
    page = new_page(browser, "zh-CN")  # a Chinese browser: the screens start in 中文
    sign_in(page, center.server.url, name, password)
    expect(page).to_have_url(f"{center.server.url}/#/agent")
    state = page.locator("[data-test=agent-state]")
    expect(state).to_contain_text("未签入")
    page.click("[data-test=login-agent]")
    expect(state).to_contain_text("未就绪")
    page.click("[data-test=ready]")
    expect(state).to_contain_text("就绪")
    assert center.admin.get(f"/agents/{code}/state")["state"] == "ready"
    shoot(page, "agent-desktop-zh")

    number = f"138{secrets.randbelow(10**8):08d}"  # no other test's caller: a first call
    call = center.admin.post("/calls", {"queue": queue.id, "number": number,
                                        "data": {"name": "张伟", "vip": "1"}}, expect=201)
    pop = page.locator("[data-test=screen-pop]")
    expect(pop).to_contain_text(number)
    expect(page.locator("[data-test=history]")).to_contain_text("该号码首次来电")
    expect(page.locator("[data-test=customer]")).to_have_text("张伟")
    expect(page.locator("[data-test=vip]")).to_be_visible()
    expect(page.locator("[data-test=call-state]")).to_have_text("振铃")
    shoot(page, "agent-screen-pop-zh")
    page.keyboard.press("Alt+A")  # the shortcut answers
    expect(page.locator("[data-test=call-state]")).to_have_text("通话中")
    assert center.admin.get(f"/agents/{code}/state")["state"] == "busy"

    page.click("[data-test=language] >> text=English")  # switch, and it is remembered
    expect(state).to_contain_text("On a call")
    expect(page.locator("[data-test=language] .is-active")).to_contain_text("English")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "agent-on-call-en")
    page.click("[data-test=hangup]")
    expect(state).to_contain_text("Wrap-up")
    choose(page, page.locator("[data-test=disposition]"),
           label(center.admin.get(f"/dispositions/{disposition}")))
    page.click("[data-test=wrap-done]")
    expect(state).to_contain_text("Ready")
    cdr = wait_until(lambda: [r for r in center.cdrs(queue) if r["call_id"] == call["call"]
                              and r["outcome"] == "answered"], 10, "the call's CDR")[0]
    assert cdr["disposition"] == disposition
    assert cdr["agent"] == code
    page.reload()
    expect(page.locator("[data-test=language] .is-active")).to_contain_text("English")
    expect(page.locator("[data-test=today]")).to_contain_text("1")  # one call answered today
    # The same customer calls again: the screen-pop shows the earlier call and how it ended.
    again = center.admin.post("/calls", {"queue": queue.id, "number": number}, expect=201)
    history = page.locator("[data-test=history]")
    expect(history).to_contain_text(code)
    expect(history).to_contain_text(label(center.admin.get(f"/dispositions/{disposition}")))
    shoot(page, "agent-screen-pop-history-en")
    center.admin.post(f"/calls/{again['call']}/abandon")
    page.context.close()


def test_the_wallboard_shows_the_realtime_figures_in_both_languages(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue()
    for _ in range(2):  # two callers wait: nobody serves the queue
        center.admin.post("/calls", {"queue": queue.id, "number": "13900000000"}, expect=201)
    for lang, title in (("zh-CN", "今日服务"), ("en-US", "Service today")):
        page = new_page(browser, lang)
        sign_in(page, center.server.url, "admin", center.server.password)
        page.goto(f"{center.server.url}/#/wallboard")
        expect(page.locator("h1")).to_have_text(title)
        tile = page.locator(f"[data-queue='{queue.id}']")
        expected: dict[str, Any] = center.queue_stats(queue)
        expect(tile.locator("[data-field=waiting]")).to_have_text(str(expected["waiting"]))
        expect(tile.locator("[data-field=answered]")).to_have_text(
            str(expected["answered_today"]))
        assert expected["waiting"] == 2
        page.set_viewport_size({"width": 1920, "height": 1080})
        shoot(page, f"wallboard-{lang[:2]}")
        page.context.close()
    for call in center.admin.get("/calls", queue=queue.id):
        center.admin.post(f"/calls/{call['call']}/abandon")


def test_each_role_is_kept_to_its_screens(center: CallCenter, browser: Browser) -> None:
    zh = new_page(browser, "zh-CN")
    zh.goto(f"{center.server.url}/#/login")
    expect(zh.locator("[data-test=login-submit]")).to_have_text("登录")
    assert unlabelled(zh) == []
    shoot(zh, "login-zh")
    zh.context.close()
    page = new_page(browser, "en-US")
    page.goto(f"{center.server.url}/#/agent")  # signed out: to the sign-in page first
    expect(page).to_have_url(f"{center.server.url}/#/login?next=/agent")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong-password")
    page.click("[data-test=login-submit]")
    expect(page.locator("[data-test=login-error]")).to_contain_text("Wrong")
    shoot(page, "login-en")
    page.fill("input[name=password]", center.server.password)
    page.click("[data-test=login-submit]")
    expect(page.locator("[data-test=forbidden]")).to_be_visible()  # the desk is for agents
    shoot(page, "forbidden-en")
    page.click("[data-test=logout]")
    expect(page).to_have_url(f"{center.server.url}/#/login")
    page.context.close()
