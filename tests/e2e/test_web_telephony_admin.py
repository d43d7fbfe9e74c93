"""The telephony and IVR administration screens in a real browser against the real server: an
admin builds an IVR flow in the structured editor (and sees the server's errors at the node),
restores an older version, uploads a WAV prompt and plays it back, has a prompt spoken by the
TTS engine, creates a trunk and a number route, and sets an agent's SIP password, which is
never shown back. Each screen is shot in both languages (``artifacts/web/admin-*``)."""

from __future__ import annotations

import io
import re
import secrets
import wave

import numpy as np
from playwright.sync_api import Browser, Locator, Page, expect

from .browser import fits, new_page, shoot, sign_in, unlabelled
from .server import CallCenter


def admin_page(browser: Browser, center: CallCenter, lang: str, screen: str) -> Page:
    page = new_page(browser, lang)
    sign_in(page, center.server.url, "admin", center.server.password)
    expect(page).to_have_url(re.compile(r"#/monitor"))
    page.goto(f"{center.server.url}/#/admin/{screen}")
    return page


def choose(page: Page, select: Locator, text: str) -> None:
    """Pick the option showing ``text`` in an Element Plus select."""
    select.click()
    page.locator(".el-select-dropdown__item:visible", has_text=text).first.click()
    expect(page.locator(".el-select__popper:visible")).to_have_count(0)  # closed: the next


def confirm(page: Page) -> None:
    page.locator(".el-message-box:visible .el-message-box__btns button").last.click()


def wav(seconds: float, rate: int = 16000, channels: int = 2) -> bytes:
    """A 440 Hz tone as a browser would upload it: not the 8 kHz mono that prompts become."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone, channels).tobytes())
    return out.getvalue()


def test_an_admin_builds_an_ivr_flow_in_the_structured_editor(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue()
    code = f"e2e-flow-{secrets.token_hex(3)}"
    demo = center.admin.get("/ivr/flows/hotline")
    page = admin_page(browser, center, "zh-CN", "ivr")
    expect(page.locator("[data-test=flow-table]")).to_contain_text("演示热线")  # the demo's flow
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-ivr-zh")

    page.click("[data-test=new-flow]")
    page.fill("[data-test=flow-code]", code)
    for node, kind in (("main", "按键菜单"), ("agents", "进入队列")):
        page.fill("[data-test=new-node-id]", node)
        choose(page, page.locator("[data-test=new-node-type]"), kind)
        page.click("[data-test=add-node]")
    main = page.locator("[data-test=node-form-main]")
    choose(page, main.locator("[data-test=field-prompt]"), "main_menu")
    choose(page, main.locator("[data-test=option-target]"), "agents")
    choose(page, main.locator("[data-test=field-on_failure]"), "agents")
    choose(page, page.locator("[data-test=node-form-agents] [data-test=field-queue]"), queue.id)
    page.click("[data-test=save-flow]")
    expect(page.locator(".el-message--success", has_text="版本 1")).to_be_visible()
    flow = center.admin.get(f"/ivr/flows/{code}")
    assert flow["version"] == 1
    definition = flow["definition"]
    assert definition["start"] == "main"  # the first node added starts the flow
    assert definition["nodes"]["main"]["type"] == "menu"
    assert definition["nodes"]["main"]["prompt"] == "main_menu"
    assert definition["nodes"]["main"]["options"] == {"1": "agents"}
    assert definition["nodes"]["main"]["on_failure"] == "agents"
    assert definition["nodes"]["agents"]["queue"] == queue.id

    # A node left incomplete: the server's errors show at that node and its fields, and
    # nothing is stored.
    page.fill("[data-test=new-node-id]", "bye")
    choose(page, page.locator("[data-test=new-node-type]"), "播放提示音")
    page.click("[data-test=add-node]")
    page.click("[data-test=save-flow]")
    expect(page.locator("[data-test=node-error-bye]")).to_be_visible()
    bye = page.locator("[data-test=node-form-bye]")
    expect(bye.locator("[data-field=prompt] .el-form-item__error")).to_contain_text("required")
    expect(bye.locator("[data-field=next] .el-form-item__error")).to_be_visible()
    expect(page.locator("[data-test=node-error-main]")).to_have_count(0)
    assert center.admin.get(f"/ivr/flows/{code}")["version"] == 1
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-ivr-editor-errors-zh")
    page.click("[data-test=remove-bye]")

    # A second version (a name), then the first restored as the third.
    page.fill("[data-test=flow-editor] [data-test=label-zh]", "测试热线")
    page.click("[data-test=save-flow]")
    expect(page.locator(".el-message--success", has_text="版本 2")).to_be_visible()
    assert center.admin.get(f"/ivr/flows/{code}")["labels"] == {"zh-CN": "测试热线"}
    page.click("[data-test=editor-history]")
    page.click("[data-test=restore-1]")
    confirm(page)
    expect(page.locator(".el-message--success", has_text="版本 3")).to_be_visible()
    restored = center.admin.get(f"/ivr/flows/{code}")
    assert restored["version"] == 3 and restored["labels"] == {}
    assert restored["definition"] == definition
    expect(page.locator("[data-test=flow-editor] [data-test=label-zh]")).to_have_value("")

    # The raw JSON view shows the same flow.
    page.click("#tab-json")
    assert '"start": "main"' in page.locator("[data-test=flow-json]").input_value()
    page.click("#tab-nodes")
    page.click("[data-test=back]")
    expect(page.locator("[data-test=flow-table]")).to_contain_text(code)
    page.context.close()

    page = admin_page(browser, center, "en-US", "ivr")
    page.click("[data-test=edit-flow-hotline]")  # the editor keeps all of a flow it did not change
    expect(page.locator("[data-test=node-general]")).to_be_visible()
    page.click("[data-test=save-flow]")
    expect(page.locator(".el-message--success", has_text="No change")).to_be_visible()
    assert center.admin.get("/ivr/flows/hotline")["version"] == demo["version"]
    page.click("[data-test=back]")
    page.click(f"[data-test=edit-flow-{code}]")
    expect(page.locator("[data-test=node-main]")).to_contain_text("Menu")
    page.click("[data-test=node-main] .el-collapse-item__header")
    expect(page.locator("[data-test=node-form-main]")).to_be_visible()
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-ivr-editor-en")
    page.click("[data-test=back]")
    page.click(f"[data-test=delete-flow-{code}]")
    confirm(page)
    expect(page.locator("[data-test=flow-table]")).not_to_contain_text(code)
    center.admin.call("GET", f"/ivr/flows/{code}", expect=404)
    shoot(page, "admin-ivr-en")
    page.context.close()


def test_an_admin_speaks_uploads_and_plays_back_prompts(
    center: CallCenter, browser: Browser, tmp_path,
) -> None:
    code = f"e2e-prompt-{secrets.token_hex(3)}"
    page = admin_page(browser, center, "zh-CN", "prompts")
    page.click("[data-test=new-prompt]")
    page.fill("[data-test=prompt-code]", code)
    page.fill("[data-test=prompt-text-zh]", "您好，欢迎致电。")
    page.fill("[data-test=prompt-text-en]", "Hello, and welcome.")
    page.click("[data-test=save-prompt]")
    expect(page.locator("[data-test=prompt-dialog]")).to_be_hidden(timeout=60_000)
    prompt = center.admin.get(f"/ivr/prompts/{code}")
    for language in ("zh", "en"):
        assert prompt[language]["source"] == "tts" and prompt[language]["seconds"] > 0.5
    expect(page.locator(f"[data-test=source-{code}-zh]")).to_have_text("语音合成")

    recording = tmp_path / "greeting.wav"
    recording.write_bytes(wav(1.5))
    page.click(f"[data-test=upload-{code}-en]")
    page.set_input_files("[data-test=upload-file]", str(recording))
    page.fill("[data-test=upload-text]", "A tone")
    page.click("[data-test=send-upload]")
    expect(page.locator(f"[data-test=source-{code}-en]")).to_have_text("录音")
    prompt = center.admin.get(f"/ivr/prompts/{code}")
    assert prompt["en"]["source"] == "upload" and prompt["en"]["text"] == "A tone"
    assert abs(prompt["en"]["seconds"] - 1.5) < 0.05
    assert prompt["zh"]["source"] == "tts"

    page.click(f"[data-test=play-{code}-en]")
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-test=prompt-audio]');"
        " return a && a.src.startsWith('blob:') && a.duration > 0 }")
    duration = page.evaluate("document.querySelector('[data-test=prompt-audio]').duration")
    assert abs(duration - 1.5) < 0.05  # what the server keeps: the 1.5 s uploaded
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-prompts-zh")
    page.context.close()

    page = admin_page(browser, center, "en-US", "prompts")
    expect(page.locator(f"[data-test=source-{code}-en]")).to_have_text("Recording")
    page.click(f"[data-test=upload-{code}-zh]")  # not a WAV: refused, with the reason shown
    page.set_input_files("[data-test=upload-file]", {"name": "x.wav", "mimeType": "audio/wav",
                                                     "buffer": b"not audio at all"})
    page.click("[data-test=send-upload]")
    expect(page.locator("[data-test=upload-dialog] .el-form-item__error")).to_be_visible()
    assert center.admin.get(f"/ivr/prompts/{code}")["zh"]["source"] == "tts"
    page.locator("[data-test=upload-dialog] .el-dialog__headerbtn").click()
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-prompts-en")
    page.click(f"[data-test=delete-prompt-{code}]")
    confirm(page)
    expect(page.locator("[data-test=prompt-table]")).not_to_contain_text(code)
    center.admin.call("GET", f"/ivr/prompts/{code}", expect=404)
    page.context.close()


def test_an_admin_creates_a_trunk_and_a_number_route(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue()
    code, user, password = (f"e2e-trunk-{secrets.token_hex(3)}", f"e2et{secrets.token_hex(3)}",
                            secrets.token_urlsafe(12))
    page = admin_page(browser, center, "en-US", "trunks")
    page.click("[data-test=new-trunk]")
    page.fill("[data-test=trunk-code]", code)
    page.fill("[data-test=trunk-name]", "Carrier")
    page.fill("[data-test=trunk-allow]", "not-an-address")
    page.click("[data-test=save-trunk]")  # the server's message at the field
    expect(page.locator("[data-test=trunk-dialog] .el-form-item__error")).to_contain_text(
        "not an IP address")
    page.fill("[data-test=trunk-allow]", "192.0.2.0/24\n198.51.100.7")
    page.fill("[data-test=trunk-username]", user)
    page.fill("[data-test=trunk-password]", password)
    page.fill("[data-test=trunk-outbound]", "sip.example.com")
    page.fill("[data-test=trunk-caller-id]", "+861012345678")
    page.click("[data-test=save-trunk]")
    expect(page.locator("[data-test=trunk-table]")).to_contain_text(code)
    trunk = center.admin.get(f"/trunks/{code}")
    assert trunk["allow"] == ["192.0.2.0/24", "198.51.100.7/32"]
    assert trunk["username"] == user and trunk["auth"] == "ip+digest"
    assert trunk["outbound"] == "sip.example.com:5060"
    assert trunk["caller_id"] == "+861012345678"
    page.click(f"[data-test=edit-trunk-{code}]")  # the password is not shown back
    expect(page.locator("[data-test=trunk-password]")).to_have_value("")
    page.fill("[data-test=trunk-name]", "Carrier B")
    page.click("[data-test=save-trunk]")  # no password given: the same username keeps it
    expect(page.locator("[data-test=trunk-table]")).to_contain_text("Carrier B")
    assert center.admin.get(f"/trunks/{code}")["auth"] == "ip+digest"
    assert password not in page.content()
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-trunks-en")
    page.goto(f"{center.server.url}/#/admin/routes")
    did = f"63{secrets.randbelow(10**6):06d}"
    page.click("[data-test=new-route]")
    page.fill("[data-test=route-did]", did)
    choose(page, page.locator("[data-test=route-queue]"), queue.id)
    page.locator("[data-test=route-language]").get_by_text("English").click()
    page.fill("[data-test=route-dialog] [data-test=label-en]", "Sales line")
    page.click("[data-test=save-route]")
    expect(page.locator("[data-test=route-table]")).to_contain_text("Sales line")
    route = center.admin.get(f"/routes/{did}")
    assert (route["queue"], route["flow"], route["language"]) == (queue.id, None, "en")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-routes-en")
    page.context.close()

    page = admin_page(browser, center, "zh-CN", "routes")
    page.click(f"[data-test=edit-route-{did}]")  # to the demo's IVR flow instead
    page.locator("[data-test=route-kind]").get_by_text("IVR 流程").click()
    choose(page, page.locator("[data-test=route-flow]"), "演示热线")
    page.click("[data-test=save-route]")
    expect(page.locator("[data-test=route-dialog]")).to_be_hidden()
    route = center.admin.get(f"/routes/{did}")
    assert (route["flow"], route["queue"]) == ("hotline", None)
    shoot(page, "admin-routes-zh")
    page.click(f"[data-test=delete-route-{did}]")
    confirm(page)
    expect(page.locator("[data-test=route-table]")).not_to_contain_text(did)
    center.admin.call("GET", f"/routes/{did}", expect=404)
    page.goto(f"{center.server.url}/#/admin/trunks")
    expect(page.locator("[data-test=trunk-table]")).to_contain_text(code)
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-trunks-zh")
    page.click(f"[data-test=delete-trunk-{code}]")
    confirm(page)
    expect(page.locator("[data-test=trunk-table]")).not_to_contain_text(code)
    page.context.close()


def test_an_admin_sets_an_agents_sip_password_which_is_never_shown_back(
    center: CallCenter, browser: Browser,
) -> None:
    queue = center.queue()
    n = secrets.token_hex(3)
    agent, extension, password = f"e2e-sip-{n}", f"8{secrets.randbelow(10**6):06d}", \
        secrets.token_urlsafe(12)
    center.admin.post("/agents", {"code": agent, "extension": extension, "team": "e2e",
                                  "skills": {queue.skill: 1}}, expect=201)
    center.admin.call("GET", f"/agents/{agent}/phone", expect=404)
    page = admin_page(browser, center, "zh-CN", "phones")
    page.click("[data-test=new-phone]")
    choose(page, page.locator("[data-test=phone-owner]"), agent)
    expect(page.locator("[data-test=phone-username]")).to_have_attribute(
        "placeholder", extension)  # the username it gets by default
    page.fill("[data-test=phone-password]", "short")
    page.click("[data-test=save-phone]")  # the server's rule, at the field
    expect(page.locator("[data-test=phone-dialog] .el-form-item__error")).to_be_visible()
    page.fill("[data-test=phone-password]", password)
    page.click("[data-test=save-phone]")
    expect(page.locator(f"[data-test=registered-{extension}]")).to_have_text("未注册")
    phone = center.admin.get(f"/agents/{agent}/phone")
    assert phone["username"] == extension and phone["registered"] is False
    assert "password" not in phone and password not in page.content()
    page.click(f"[data-test=password-{extension}]")
    expect(page.locator("[data-test=phone-password]")).to_have_value("")
    expect(page.locator("[data-test=phone-username]")).to_have_value(extension)
    page.click("[data-test=generate-password]")  # a new one replaces it
    new = page.locator("[data-test=phone-password]").input_value()
    assert len(new) == 16
    page.click("[data-test=save-phone]")
    expect(page.locator("[data-test=phone-dialog]")).to_be_hidden()
    assert new not in page.content()
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-phones-zh")
    page.context.close()

    page = admin_page(browser, center, "en-US", "phones")
    expect(page.locator(f"[data-test=registered-{extension}]")).to_have_text("Not registered")
    assert fits(page)
    assert unlabelled(page) == []
    shoot(page, "admin-phones-en")
    page.click(f"[data-test=delete-phone-{extension}]")
    confirm(page)
    expect(page.locator("[data-test=phone-table]")).not_to_contain_text(extension)
    center.admin.call("GET", f"/agents/{agent}/phone", expect=404)
    page.context.close()
