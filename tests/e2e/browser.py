"""Helpers for the browser tests: a page at the smallest supported screen, signing in,
screenshots kept as artifacts (``artifacts/web/``), and the layout check."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from .server import CallCenter, Queue

ARTIFACTS = Path(os.environ.get("HOTLINE_ARTIFACTS", "artifacts")) / "web"
SCREEN = {"width": 1366, "height": 768}  # the smallest screen the desktop must fit


def new_page(browser: Browser, lang: str = "zh-CN") -> Page:
    context = browser.new_context(viewport=SCREEN, locale=lang)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/#/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[data-test=login-submit]")


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, SCREEN["height"] - 1)  # no hover state in the picture
    page.wait_for_timeout(400)  # Element Plus's transitions settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def fits(page: Page) -> bool:
    """No horizontal scrolling at the page's width (the layout does not break)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def agent_user(center: CallCenter, queue: Queue) -> tuple[str, str, str]:
    """A new agent of ``queue`` with a user of its own: (agent code, username, password)."""
    name, password = f"web{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password, "role": "agent"},
                      expect=201)
    code = f"W-{name}"
    center.admin.post("/agents", {"code": code, "user": name, "team": "e2e",
                                  "skills": {queue.skill: 1}}, expect=201)
    return code, name, password




UNLABELLED = """() => [
  ...document.querySelectorAll('button, input, select, textarea, [role=button]')]
  .filter((el) => el.offsetParent !== null && el.type !== 'hidden'
    && !el.closest('[aria-hidden=true]'))
  .filter((el) => {
    const text = (e) => (e?.textContent || '').trim()
    const by = (el.getAttribute('aria-labelledby') || '').split(' ')
    const named = el.getAttribute('aria-label') || el.getAttribute('title')
      || el.getAttribute('placeholder') || [...(el.labels || [])].some(text) || text(el)
      || by.some((id) => text(document.getElementById(id)))
    return !named
  })
  .map((el) => el.outerHTML.slice(0, 160))"""


def unlabelled(page: Page) -> list[str]:
    """Visible controls a screen reader could not name (no label, aria-label, title, text)."""
    return list(page.evaluate(UNLABELLED))


def choose(page: Page, select: Locator, text: str) -> None:
    """Pick the option reading exactly ``text`` in an Element Plus select, as a person does:
    once the list has finished opening; then the select shows the choice."""
    select.click()
    popper = page.locator(".el-select__popper:visible")
    expect(popper).to_have_count(1)
    expect(popper).not_to_have_class(re.compile(r"-enter-"))  # the opening transition is over
    exact = re.compile(rf"^\s*{re.escape(text)}\s*$")
    popper.locator(".el-select-dropdown__item", has_text=exact).click()
    expect(select).to_contain_text(text)
