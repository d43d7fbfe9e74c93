"""The screens drive real phones (baresip): from the desktop an agent consults a colleague
(whose phone rings and answers) while the caller holds, joins all three, then completes the
transfer; from the monitor a supervisor listens to an agent's call on their own phone, then
whispers, then leaves. What each phone heard is checked in test_consult.py and
test_monitor.py; here, that the screens' buttons do it and show it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from .browser import choose, new_page, shoot, sign_in
from .peers import PhoneFactory, Registration
from .server import Agent, CallCenter, agent_phone

Tone = Callable[..., Path]


def desktop_user(center: CallCenter, agent: Agent) -> tuple[str, str]:
    """A user account for ``agent`` (made with a phone by ``center.agent``), to sign in."""
    name, password = f"desk{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password, "role": "agent"},
                      expect=201)
    spec = center.admin.get(f"/agents/{agent.code}")
    center.admin.put(f"/agents/{agent.code}", {**spec, "user": name})
    return name, password


def test_an_agent_consults_a_colleague_conferences_and_transfers_from_the_desktop(
    center: CallCenter, phones: PhoneFactory, tone: Tone, browser: Browser,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent, colleague = center.agent(queue), center.agent(queue)
    name, password = desktop_user(center, agent)
    page = new_page(browser, "en-US")
    sign_in(page, center.server.url, name, password)
    expect(page).to_have_url(f"{center.server.url}/#/agent")

    agent_set = agent_phone(center, phones, tone(1000, 60), agent)
    caller = phones("caller", tone(440, 60))
    caller.dial(center.did_uri(queue))
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    expect(page.locator("[data-test=call-state]")).to_have_text("Connected")
    colleague_set = phones(colleague.username, tone(1500, 60), registration=Registration(
        center.server.sip_port, colleague.password))
    center.wait_agent_state(colleague, "ready")

    page.click("[data-test=transfer]")
    page.click("[data-test=mode-consult]")
    choose(page, page.locator("[data-test=colleague]"), colleague.code)
    page.click("[data-test=transfer-go]")
    consult = page.locator("[data-test=consult]")
    expect(consult).to_contain_text(f"Consulting {colleague.code}")
    colleague_set.wait("CALL_ESTABLISHED")
    assert center.agent_state(colleague)["state"] == "busy"
    shoot(page, "agent-consult-en")

    page.click("[data-test=consult-conference]")
    expect(consult).to_contain_text(f"Conference with {colleague.code}")
    center.events.wait_for(type="call_conferenced", call=call_id)

    page.click("[data-test=consult-transfer]")
    moved = center.events.wait_for(type="call_transferred", call=call_id)
    assert moved["to_agent"] == colleague.code
    center.wait_agent_state(agent, "wrap_up")
    expect(page.locator("[data-test=agent-state]")).to_contain_text("Wrap-up")
    caller.hangup()
    colleague_set.wait("CALL_CLOSED")
    page.context.close()


def test_a_supervisor_listens_and_whispers_from_the_monitor(
    center: CallCenter, phones: PhoneFactory, tone: Tone, browser: Browser,
) -> None:
    queue = center.queue(wrap_up=30.0)
    agent = center.agent(queue)
    team = f"t{secrets.token_hex(2)}"
    spec = center.admin.get(f"/agents/{agent.code}")
    center.admin.put(f"/agents/{agent.code}", {**spec, "team": team})
    name, password = f"sup{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    center.admin.post("/users", {"username": name, "password": password, "role": "supervisor",
                                 "teams": [team], "queues": [queue.id]}, expect=201)
    sip_password = secrets.token_urlsafe(12)
    phone = center.admin.put(f"/users/{name}/phone", {"username": f"s{secrets.token_hex(2)}",
                                                      "password": sip_password})
    supervisor_set = phones(phone["username"], tone(1500, 60),
                            registration=Registration(center.server.sip_port, sip_password))
    supervisor_set.wait_registered()
    agent_set = agent_phone(center, phones, tone(1000, 60), agent)
    page = new_page(browser, "zh-CN")
    sign_in(page, center.server.url, name, password)
    tile = page.locator(f"[data-agent='{agent.code}']")
    expect(tile).to_have_attribute("data-state", "ready")

    caller = phones("caller", tone(440, 60))
    caller.dial(center.did_uri(queue))
    agent_set.wait("CALL_ESTABLISHED")
    call_id = center.events.wait_for(type="call_answered", agent=agent.code)["call"]
    expect(tile).to_have_attribute("data-state", "busy")
    expect(tile).to_contain_text("caller")  # the number on the call, under the agent
    tile.click()
    page.click("[data-test=monitor-listen]")
    supervisor_set.wait("CALL_ESTABLISHED")  # the supervisor's own phone rang and answered
    center.events.wait_for(type="call_monitored", call=call_id, mode="listen")
    shoot(page, "monitor-listening-zh")
    page.click("[data-test=monitor-whisper]")
    center.events.wait_for(type="call_monitored", call=call_id, mode="whisper")
    page.click("[data-test=monitor-stop]")
    supervisor_set.wait("CALL_CLOSED")
    time.sleep(0.5)
    assert center.agent_state(agent)["state"] == "busy"  # the agent's call goes on
    caller.hangup()
    agent_set.wait("CALL_CLOSED")
    page.context.close()
