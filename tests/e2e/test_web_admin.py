"""The administration screens in a real browser against the real server: an admin sets up a
skill, a queue with its ACD options, an agent with skills, users, business hours and (as a
platform admin) a tenant, and the API then holds what the screens showed; a bad value gets
the server's own error under its field; deleting asks first; other roles are kept out.
Screenshots of every screen in both languages are kept in ``artifacts/web/``."""

from __future__ import annotations

import re
import secrets

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from .browser import agent_user, fits, new_page, shoot, sign_in, unlabelled
from .server import API, CallCenter, wait_until

PAGES = ("users", "agents", "skills", "queues", "reasons", "dispositions", "hours")


def admin_page(browser: Browser, center: CallCenter, lang: str) -> Page:
    page = new_page(browser, lang)
    sign_in(page, center.server.url, "admin", center.server.password)
    expect(page).to_have_url(f"{center.server.url}/#/monitor")  # signed in: the admin's home
    return page


def open_admin(page: Page, center: CallCenter, name: str) -> None:
    page.goto(f"{center.server.url}/#/admin/{name}")  # (a new hash: no page load to wait for)
    expect(page.locator(f"[data-test=menu-{name}]")).to_have_class(re.compile("is-active"))
    expect(page.locator("[data-test=table]")).to_be_visible()


def dialog(page: Page) -> Locator:
    return page.locator(".el-dialog:visible")


def field(page: Page, test: str) -> Locator:
    """The input of a form field: an el-input gives it the attributes, others wrap it."""
    return dialog(page).locator(f"input[data-test={test}], [data-test={test}] input").first


def fill(page: Page, test: str, value: str) -> None:
    field(page, test).fill(value)


def choose(page: Page, test: str, option: str) -> None:
    """Opens a select and picks the option whose text contains ``option``."""
    dialog(page).locator(f"[data-test={test}]").click()
    page.locator(".el-select-dropdown__item:visible", has_text=option).first.click()


def error_of(page: Page, item: str) -> Locator:
    return dialog(page).locator(f"[data-test={item}] .el-form-item__error")


def save(page: Page) -> None:
    dialog(page).locator("[data-test=save]").click()


def saved(page: Page) -> None:
    expect(page.locator(".el-dialog:visible")).to_have_count(0)


def platform_password(center: CallCenter) -> str:
    """The platform admin's password, generated and printed when the server first started."""
    found = re.search(r"platform admin: tenant 'platform', user 'admin', password (\S+)",
                      center.server.log_text())
    assert found, "the server did not print the platform admin's password"
    return found.group(1)


def test_an_admin_sets_up_a_skill_a_queue_and_an_agent_through_the_screens(
    center: CallCenter, browser: Browser,
) -> None:
    n = secrets.token_hex(3)
    skill, queue, agent, user = f"web-skill-{n}", f"web-queue-{n}", f"web-agent-{n}", f"web{n}"
    center.admin.post("/users", {"username": user, "password": "Agent-pass-1", "role": "agent"},
                      expect=201)
    page = admin_page(browser, center, "zh-CN")

    open_admin(page, center, "skills")
    page.click("[data-test=create]")
    fill(page, "f-code", "信用卡 skill")  # not a code: the server names the field
    save(page)
    expect(error_of(page, "item-code")).to_contain_text("格式不正确")
    fill(page, "f-code", skill)
    fill(page, "f-label-zh", "测试技能")
    fill(page, "f-label-en", "Test skill")
    save(page)
    saved(page)
    expect(page.locator(f"[data-test=code-{skill}]")).to_be_visible()
    labels = center.admin.get(f"/skills/{skill}")["labels"]
    assert labels == {"zh-CN": "测试技能", "en": "Test skill"}
    page.click("[data-test=create]")  # the same code again: the server's conflict, on the code
    fill(page, "f-code", skill)
    save(page)
    expect(error_of(page, "item-code")).to_contain_text("已存在")
    dialog(page).locator("button", has_text="取消").click()
    saved(page)

    open_admin(page, center, "queues")
    page.click("[data-test=create]")
    fill(page, "f-id", queue)
    fill(page, "f-label-zh", "测试队列")
    page.click("[data-test=tab-routing]")
    choose(page, "f-strategy", "技能等级最高优先")
    dialog(page).locator("[data-test=f-skills-add]").click()
    choose(page, "f-skills-skill-0", f"({skill})")
    fill(page, "f-skills-level-0", "3")
    page.keyboard.press("Tab")
    page.click("[data-test=tab-waiting]")
    fill(page, "f-ring_timeout", "15s")
    dialog(page).locator("[data-test=exit-callback]").click()
    fill(page, "f-max_wait", "2m")
    page.click("[data-test=tab-wrap]")
    fill(page, "f-wrap_up", "30s")
    page.click("[data-test=tab-sl]")
    dialog(page).locator("[data-test=f-own_sl]").click()
    fill(page, "f-sl_threshold", "30s")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-queue-form-zh")
    save(page)
    saved(page)
    expect(page.locator(f"[data-test=code-{queue}]")).to_be_visible()
    q = center.admin.get(f"/queues/{queue}")
    assert q["labels"] == {"zh-CN": "测试队列"}
    assert q["strategy"] == "best-skill"
    assert q["skills"] == {skill: 3}
    assert (q["ring_timeout"], q["max_wait"], q["wrap_up"]) == (15.0, 120.0, 30.0)
    assert q["exit"] == {"overflow": None, "callback": True}
    assert q["service_level"]["threshold"] == 30.0

    open_admin(page, center, "agents")
    page.click("[data-test=create]")
    fill(page, "f-code", agent)
    fill(page, "f-display_name", "王芳")
    choose(page, "f-user", user)
    fill(page, "f-extension", "8899")
    fill(page, "f-team", "web")
    page.keyboard.press("Enter")
    dialog(page).locator("[data-test=f-skills-add]").click()
    choose(page, "f-skills-skill-0", f"({skill})")
    fill(page, "f-skills-level-0", "5")
    page.keyboard.press("Tab")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-agent-form-zh")
    save(page)
    saved(page)
    expect(page.locator(f"[data-test=skills-{agent}]")).to_contain_text("测试技能 · 5")
    a = center.admin.get(f"/agents/{agent}")
    assert (a["user"], a["extension"], a["team"], a["skills"]) == (user, "8899", "web", {skill: 5})
    # the ACD routes the queue's calls to the new agent: its skill meets the queue's level
    agent_api = center.server.login(user, "Agent-pass-1")
    agent_api.post(f"/agents/{agent}/login", {"ready": True})
    call = center.admin.post("/calls", {"queue": queue, "number": "13800000002"}, expect=201)
    wait_until(lambda: center.admin.get(f"/agents/{agent}/state")["state"] == "reserved", 10,
               "the call offered to the new agent")
    center.admin.post(f"/calls/{call['call']}/abandon")
    agent_api.post(f"/agents/{agent}/logout", {})
    agent_api.close()
    page.context.close()


def test_a_bad_value_shows_the_servers_error_next_to_its_field(
    center: CallCenter, browser: Browser,
) -> None:
    page = admin_page(browser, center, "en-US")
    open_admin(page, center, "queues")
    page.click("[data-test=create]")
    queue = f"web-bad-{secrets.token_hex(3)}"
    fill(page, "f-id", queue)
    page.click("[data-test=tab-waiting]")
    fill(page, "f-ring_timeout", "soon")
    page.click("[data-test=tab-basic]")
    save(page)
    # the form turns to the tab with the error, which shows under the field
    expect(error_of(page, "item-ring_timeout")).to_contain_text("Not a duration")
    expect(page.locator("[data-test=tab-waiting]")).to_have_class(re.compile("bad"))
    center.admin.call("GET", f"/queues/{queue}", expect=404)
    shoot(page, "admin-queue-error-en")
    fill(page, "f-ring_timeout", "20s")
    save(page)
    saved(page)
    assert center.admin.get(f"/queues/{queue}")["ring_timeout"] == 20.0

    open_admin(page, center, "hours")  # a time that is no time, on its day
    page.click("[data-test=create]")
    fill(page, "f-code", f"web-hours-{secrets.token_hex(3)}")
    dialog(page).locator("[data-test=f-sat-add]").click()
    fill(page, "f-sat-to-0", "25:00")
    page.keyboard.press("Enter")
    save(page)
    expect(error_of(page, "item-weekly-sat")).to_contain_text("Not in the expected format")
    expect(error_of(page, "item-weekly-mon")).to_have_count(0)
    page.context.close()


def test_an_admin_deletes_only_after_confirming(center: CallCenter, browser: Browser) -> None:
    code = f"web-disp-{secrets.token_hex(3)}"
    center.admin.post("/dispositions", {"code": code, "labels": {"en": "To delete"}}, expect=201)
    page = admin_page(browser, center, "en-US")
    open_admin(page, center, "dispositions")
    page.click(f"[data-test=delete-{code}]")
    box = page.locator(".el-message-box")
    expect(box).to_contain_text(f"Delete To delete ({code})?")
    box.locator("button", has_text="Cancel").click()
    expect(box).to_be_hidden()
    center.admin.get(f"/dispositions/{code}")  # still there
    page.click(f"[data-test=delete-{code}]")
    box.locator("button", has_text="Delete").click()
    expect(page.locator(f"[data-test=code-{code}]")).to_have_count(0)
    center.admin.call("GET", f"/dispositions/{code}", expect=404)
    page.context.close()


def test_users_get_roles_watched_queues_and_new_passwords(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue()
    name = f"websup{secrets.token_hex(3)}"
    page = admin_page(browser, center, "zh-CN")
    open_admin(page, center, "users")
    page.click("[data-test=create]")
    fill(page, "f-username", name)
    fill(page, "f-display_name", "李班长")
    dialog(page).locator("[data-test=role-supervisor]").click()
    choose(page, "f-queues", f"({queue.id})")
    dialog(page).locator(".el-dialog__title").click()  # closes the list
    fill(page, "f-password", "short")
    save(page)
    expect(error_of(page, "item-password")).to_contain_text("至少 8 个字符")
    fill(page, "f-password", "Supervisor-1")
    expect(error_of(page, "item-password")).to_have_count(0)  # gone once the value changes
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-user-form-zh")
    save(page)
    saved(page)
    expect(page.locator(f"[data-test=role-{name}]")).to_have_text("班长")
    user = center.admin.get(f"/users/{name}")
    assert (user["role"], user["queues"], user["display_name"]) == (
        "supervisor", [queue.id], "李班长")
    center.server.login(name, "Supervisor-1").close()

    page.click(f"[data-test=edit-{name}]")  # a new password: the old one no longer works
    expect(field(page, "f-password")).to_have_value("")
    fill(page, "f-password", "Supervisor-2")
    save(page)
    saved(page)
    old = httpx.post(f"{center.server.url}{API}/auth/login", json={
        "tenant": "demo-bank", "username": name, "password": "Supervisor-1"}, timeout=10)
    assert old.status_code == 401
    page.context.close()

    for username, password in ((name, "Supervisor-2"), agent_user(center, queue)[1:]):
        other = new_page(browser, "zh-CN")  # neither a supervisor nor an agent administers
        sign_in(other, center.server.url, username, password)
        expect(other).not_to_have_url(re.compile("login"))
        other.goto(f"{center.server.url}/#/admin/queues")
        expect(other.locator("[data-test=forbidden]")).to_be_visible()
        expect(other.locator("[data-test=admin-menu]")).to_have_count(0)
        other.context.close()


def test_business_hours_are_edited_as_a_week_and_holidays(
    center: CallCenter, browser: Browser,
) -> None:
    code = f"web-hours-{secrets.token_hex(3)}"
    page = admin_page(browser, center, "zh-CN")
    open_admin(page, center, "hours")
    page.click("[data-test=create]")
    fill(page, "f-code", code)
    dialog(page).locator("[data-test=f-mon-add]").click()  # Monday also 19:00–21:00
    fill(page, "f-mon-from-1", "19:00")
    page.keyboard.press("Enter")
    fill(page, "f-mon-to-1", "21:00")
    page.keyboard.press("Enter")
    dialog(page).locator("[data-test=copy-monday]").click()
    dialog(page).locator("[data-test=f-holiday-add]").click()
    fill(page, "f-holiday-date-0", "2026-10-01")
    page.keyboard.press("Enter")
    fill(page, "f-holiday-name-0", "国庆节")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-hours-form-zh")
    save(page)
    saved(page)
    hours = center.admin.get(f"/business-hours/{code}")
    assert hours["timezone"] == "Asia/Shanghai"
    assert hours["weekly"]["mon"] == [["09:00", "18:00"], ["19:00", "21:00"]]
    assert hours["weekly"]["fri"] == hours["weekly"]["mon"]
    assert hours["weekly"]["sat"] == []
    assert hours["holidays"] == [{"date": "2026-10-01", "name": "国庆节", "hours": []}]
    expect(page.locator("[data-test=table]")).to_contain_text("2026-10-01 国庆节 · 休息")
    page.context.close()


def test_a_platform_admin_creates_and_deletes_a_tenant(
    center: CallCenter, browser: Browser,
) -> None:
    slug = f"web-co-{secrets.token_hex(3)}"
    password = platform_password(center)
    page = new_page(browser, "en-US")
    page.goto(f"{center.server.url}/#/login")
    page.fill("input[name=tenant]", "platform")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", password)
    page.click("[data-test=login-submit]")
    expect(page).not_to_have_url(re.compile("login"))
    open_admin(page, center, "tenants")
    page.click("[data-test=create]")
    fill(page, "f-slug", slug)
    fill(page, "f-name", "Web Test Co")
    fill(page, "f-admin-username", "boss")
    fill(page, "f-admin-password", "Tenant-admin-1")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-tenant-form-en")
    save(page)
    saved(page)
    expect(page.locator(f"[data-test=code-{slug}]")).to_be_visible()
    login = {"tenant": slug, "username": "boss", "password": "Tenant-admin-1"}
    r = httpx.post(f"{center.server.url}{API}/auth/login", json=login, timeout=10)
    assert r.status_code == 200 and r.json()["role"] == "admin"
    for lang, name in (("en", "tenants-en"), ("zh", "tenants-zh")):
        page.click(f"[data-test=language] >> text={'English' if lang == 'en' else '中文'}")
        assert fits(page)
        assert unlabelled(page) == []
        shoot(page, f"admin-{name}")
    page.click(f"[data-test=delete-{slug}]")
    page.locator(".el-message-box button", has_text="删除").click()
    expect(page.locator(f"[data-test=code-{slug}]")).to_have_count(0)
    r = httpx.post(f"{center.server.url}{API}/auth/login", json=login, timeout=10)
    assert r.status_code == 401
    page.context.close()


def test_every_admin_screen_fits_in_both_languages(center: CallCenter, browser: Browser) -> None:
    center.admin.post("/business-hours", {"code": f"web-office-{secrets.token_hex(3)}",
                                          "weekly": {"mon": [["09:00", "18:00"]]}}, expect=201)
    for lang, heading in (("zh-CN", "队列"), ("en-US", "Queues")):
        page = admin_page(browser, center, lang)
        for name in PAGES:
            open_admin(page, center, name)
            expect(page.locator(".el-table__row").first).to_be_visible()  # the demo's data
            assert fits(page), name
            assert unlabelled(page) == [], name
            shoot(page, f"admin-{name}-{lang[:2]}")
        open_admin(page, center, "queues")
        expect(page.locator(".adm-head h2")).to_have_text(heading)
        page.locator("[data-test^=edit-]").first.click()
        for tab in ("routing", "waiting"):
            page.click(f"[data-test=tab-{tab}]")
            assert fits(page)
            assert unlabelled(page) == []
            shoot(page, f"admin-queue-{tab}-{lang[:2]}")
        page.context.close()
