"""The IVR engine under a virtual clock: what a caller hears and where their keys take them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.ivr.engine import (
    BEEP,
    POSITION,
    WAIT,
    Action,
    Disconnect,
    Enqueue,
    IvrRun,
    PlayMusic,
    PlayPrompts,
    RequestCallback,
    StartLookup,
    StartRecording,
    StopPlaying,
    StopRecording,
    TransferCall,
)
from hotline.ivr.flow import FlowError, parse_flow, references
from hotline.ivr.hours import Calendar

BANK: dict[str, Any] = {
    "start": "welcome",
    "lists": {"vip": ["13800000001"]},
    "nodes": {
        "welcome": {"type": "play", "prompt": "welcome", "next": "vip"},
        "vip": {"type": "branch", "rules": [{"variable": "caller", "in_list": "vip",
                                              "next": "vip_queue"}], "default": "language"},
        "language": {"type": "menu", "prompt": "choose_language",
                     "options": {"1": "zh", "2": "en"}, "on_failure": "zh"},
        "zh": {"type": "set", "values": {"language": "zh"}, "next": "main"},
        "en": {"type": "set", "values": {"language": "en"}, "next": "main"},
        "main": {"type": "menu", "prompt": "main_menu", "invalid_prompt": "invalid",
                 "options": {"1": "cards", "2": "account", "0": "message"},
                 "timeout": 5, "retries": 2, "on_failure": "goodbye"},
        "cards": {"type": "menu", "prompt": "cards_menu",
                  "options": {"1": "q_lost", "2": "q_cards"}, "on_failure": "q_cards"},
        "account": {"type": "collect", "prompt": "enter_account", "variable": "account",
                    "min_digits": 6, "max_digits": 8, "invalid_prompt": "invalid",
                    "next": "q_cards", "on_failure": "goodbye"},
        "q_lost": {"type": "queue", "queue": "lost", "priority": 5,
                   "announce_every": 30, "callback_key": "9",
                   "callback_prompt": "press9", "callback_confirm": "cb_ok"},
        "q_cards": {"type": "queue", "queue": "cards", "greeting": "please_wait",
                    "announce_every": 60},
        "vip_queue": {"type": "queue", "queue": "vip", "announce_every": None},
        "message": {"type": "voicemail", "prompt": "leave_message", "mailbox": "cards",
                    "max_seconds": 60, "done_prompt": "thanks"},
        "goodbye": {"type": "hangup", "prompt": "goodbye"},
    },
}


def run_of(flow: dict[str, Any], **variables: str) -> IvrRun:
    return IvrRun(parse_flow(flow), {"caller": "13900000000", "did": "400", **variables})


def plays(actions: list[Action]) -> list[tuple[str, ...]]:
    return [a.segments for a in actions if isinstance(a, PlayPrompts)]


def finish(run: IvrRun, actions: list[Action], now: float) -> list[Action]:
    """The prompt that ``actions`` started plays to its end."""
    played = [a for a in actions if isinstance(a, PlayPrompts)]
    assert played, actions
    return run.prompt_ended(now, played[-1].id)


def test_two_level_menu_reaches_the_right_queue_in_the_chosen_language() -> None:
    run = run_of(BANK)
    a = run.start(0.0)
    assert plays(a) == [("welcome",)]
    a = finish(run, a, 3.0)
    assert plays(a) == [("choose_language",)]
    a = run.digit(4.0, "2")  # English: barges in on the language prompt
    assert isinstance(a[0], StopPlaying)
    assert plays(a) == [("main_menu",)] and a[-1].language == "en"  # type: ignore[union-attr]
    a = finish(run, a, 10.0)
    a = run.digit(11.0, "1")
    assert plays(a) == [("cards_menu",)]
    a = run.digit(12.0, "1")
    enqueue = [x for x in a if isinstance(x, Enqueue)]
    assert enqueue and enqueue[0].queue == "lost" and enqueue[0].priority == 5
    assert enqueue[0].data["language"] == "en" and enqueue[0].data["caller"] == "13900000000"
    assert run.path == ["welcome", "vip", "language", "en", "main", "cards", "q_lost"]
    assert run.outcome == "queued"


def test_keys_typed_ahead_skip_the_menus_prompts() -> None:
    run = run_of(BANK)
    greeting = run.start(0.0)
    for key in "112":  # keyed during the greeting
        assert run.digit(0.5, key) == []
    a = finish(run, greeting, 3.0)
    assert plays(a) == [("please_wait", POSITION, WAIT)]  # the queue's, no menu's prompt
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["cards"]
    assert run.variables["language"] == "zh"


def test_invalid_key_and_silence_are_retried_then_fail_over() -> None:
    run = run_of(BANK)
    run.start(0.0)
    finish(run, [PlayPrompts((), "zh", 1)], 1.0)
    a = run.digit(1.5, "1")
    a = finish(run, a, 2.0)  # main menu played out; the caller keys 7
    a = run.digit(3.0, "7")
    assert plays(a) == [("invalid", "main_menu")]
    a = finish(run, a, 6.0)
    assert run.deadline == 11.0
    assert run.timer(10.9) == []  # early: nothing
    a = run.timer(11.0)  # silence: the second retry
    assert plays(a) == [("invalid", "main_menu")]
    a = finish(run, a, 14.0)
    a = run.timer(19.0)  # retries (2) used up: on_failure
    assert plays(a) == [("goodbye",)]
    a = finish(run, a, 21.0)
    assert a == [Disconnect("hangup")] and run.finished


def test_a_stopped_prompts_late_end_is_ignored() -> None:
    run = run_of(BANK)
    a = run.start(0.0)
    a = finish(run, a, 1.0)
    stale = next(x for x in a if isinstance(x, PlayPrompts)).id
    a = run.digit(1.2, "1")  # Chinese, barging in
    assert plays(a) == [("main_menu",)]
    assert run.prompt_ended(2.0, stale) == []
    assert run.deadline is None  # the main menu's own prompt still plays


def test_collect_digits_with_terminator_length_and_validation() -> None:
    run = run_of(BANK, language="zh")
    run.node_id = "main"
    run.state = "menu"
    a = run.digit(0.0, "2")
    assert plays(a) == [("enter_account",)]
    a = run.digit(1.0, "1")  # barges in
    assert isinstance(a[0], StopPlaying)
    for k in "2345":
        assert run.digit(2.0, k) == []
    a = run.digit(3.0, "#")  # only 5 digits: too short
    assert plays(a) == [("invalid", "enter_account")]
    a = finish(run, a, 5.0)
    for k in "1234567":
        run.digit(6.0, k)
    assert run.deadline == 6.0 + 3.0  # the pause after the last digit ends the entry
    a = run.timer(9.0)
    assert run.variables["account"] == "1234567"
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["cards"]
    assert [x.data["account"] for x in a if isinstance(x, Enqueue)] == ["1234567"]


def test_collect_ends_at_max_digits() -> None:
    flow = {"start": "c", "nodes": {
        "c": {"type": "collect", "prompt": "p", "variable": "pin", "max_digits": 4,
              "terminator": None, "pattern": "[0-9]{4}", "next": "bye", "on_failure": "bye"},
        "bye": {"type": "hangup"}}}
    run = run_of(flow)
    run.start(0.0)
    for k in "987":
        run.digit(1.0, k)
    a = run.digit(1.0, "6")
    assert run.variables["pin"] == "9876" and a == [Disconnect("hangup")]


def test_vip_list_branch_skips_the_menus() -> None:
    run = run_of(BANK, caller="13800000001")
    a = finish(run, run.start(0.0), 3.0)
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["vip"]
    assert run.deadline is None  # that queue makes no announcements


def test_queue_announcements_every_n_seconds_and_callback_key() -> None:
    run = run_of(BANK)
    run.node_id = "cards"
    run.state = "menu"
    run._prompt_over = True
    a = run.digit(100.0, "1")
    assert [type(x) for x in a] == [Enqueue, PlayMusic]
    assert run.deadline == 100.0  # first announcement at once
    a = run.timer(100.0)
    assert plays(a) == [(POSITION, WAIT, "press9")]
    a = finish(run, a, 106.0)
    assert a == [PlayMusic()] and run.deadline == 130.0  # every 30 s, start to start
    a = run.timer(130.0)
    assert plays(a) == [(POSITION, WAIT, "press9")]
    a = finish(run, a, 158.0)  # an announcement longer than the gap: still some music
    assert a == [PlayMusic()] and run.deadline == 163.0
    assert run.digit(159.0, "5") == []
    assert run.digit(160.0, "9") == [RequestCallback()]
    assert run.digit(160.2, "9") == []  # pressed again while it is asked: nothing more
    a = run.callback_accepted(160.5)
    assert plays(a) == [("cb_ok",)]
    assert finish(run, a, 163.0) == [Disconnect("callback")]


def test_greeting_then_announcements_and_answer_stops_them() -> None:
    run = run_of(BANK)
    run.node_id, run.state, run._prompt_over = "cards", "menu", True
    a = run.digit(0.0, "2")
    assert plays(a) == [("please_wait", POSITION, WAIT)]
    a = finish(run, a, 8.0)
    assert a == [PlayMusic()] and run.deadline == 60.0
    run.left_queue()
    assert run.deadline is None and run.timer(60.0) == []


def test_voicemail_records_until_hash_or_max_length() -> None:
    run = run_of(BANK)
    run.node_id, run.state, run._prompt_over = "main", "menu", True
    a = run.digit(0.0, "0")
    assert plays(a) == [("leave_message", BEEP)]
    a = finish(run, a, 4.0)
    assert a == [StartRecording("cards", 60.0)] and run.deadline == 64.0
    a = run.digit(20.0, "#")
    assert a[0] == StopRecording() and plays(a) == [("thanks",)]
    assert finish(run, a, 22.0) == [Disconnect("voicemail")]
    run2 = run_of(BANK)
    run2.node_id, run2.state, run2._prompt_over = "main", "menu", True
    finish(run2, run2.digit(0.0, "0"), 4.0)
    a = run2.timer(64.0)
    assert a[0] == StopRecording() and plays(a) == [("thanks",)]


def test_business_hours_branch_in_the_calendars_time_zone() -> None:
    flow = {"start": "h", "nodes": {
        "h": {"type": "hours", "hours": "office", "open": "q", "closed": "closed",
              "holiday": "hol"},
        "q": {"type": "queue", "queue": "cards", "announce_every": None},
        "closed": {"type": "hangup", "prompt": "closed"},
        "hol": {"type": "hangup", "prompt": "holiday"}}}
    cal = Calendar.from_config("Asia/Shanghai", {"mon": [["09:00", "18:00"]]},
                               [{"date": "2026-10-01"},
                                {"date": "2026-12-31", "hours": [["09:00", "12:00"]]}])
    shanghai = ZoneInfo("Asia/Shanghai")

    def outcome(when: datetime) -> list[tuple[str, ...]] | str:
        run = IvrRun(parse_flow(flow), {}, {"office": cal}, wall_offset=when.timestamp())
        a = run.start(0.0)
        return next(x.queue for x in a if isinstance(x, Enqueue)) if run.queue else plays(a)

    assert outcome(datetime(2026, 11, 23, 9, 0, tzinfo=shanghai)) == "cards"  # a Monday
    assert outcome(datetime(2026, 11, 23, 17, 59, tzinfo=shanghai)) == "cards"
    assert outcome(datetime(2026, 11, 23, 18, 0, tzinfo=shanghai)) == [("closed",)]
    # 09:30 in Shanghai is 01:30 UTC: the calendar's zone decides, not the server's
    assert outcome(datetime(2026, 11, 23, 1, 30, tzinfo=ZoneInfo("UTC"))) == "cards"
    assert outcome(datetime(2026, 11, 24, 10, 0, tzinfo=shanghai)) == [("closed",)]
    assert outcome(datetime(2026, 10, 1, 10, 0, tzinfo=shanghai)) == [("holiday",)]
    # a holiday open for a morning: open then, the holiday branch after
    assert outcome(datetime(2026, 12, 31, 10, 0, tzinfo=shanghai)) == "cards"
    assert outcome(datetime(2026, 12, 31, 14, 0, tzinfo=shanghai)) == [("holiday",)]


def test_lookup_answer_becomes_variables_and_timeout_takes_the_failure_branch() -> None:
    flow = {"start": "ask", "nodes": {
        "ask": {"type": "lookup", "url": "http://crm.example/customer", "timeout": 2,
                "next": "route", "on_failure": "normal"},
        "route": {"type": "branch", "rules": [{"variable": "customer.tier", "equals": "gold",
                                               "next": "gold"}], "default": "normal"},
        "gold": {"type": "queue", "queue": "vip", "announce_every": None},
        "normal": {"type": "queue", "queue": "cards", "announce_every": None}}}
    run = run_of(flow)
    a = run.start(0.0)
    assert a == [StartLookup("http://crm.example/customer",
                             {"caller": "13900000000", "did": "400", "language": "zh"}, 2.0, 1)]
    a = run.lookup_done(0.4, {"tier": "gold", "name": "张三", "vip": True, "nested": {"x": 1}},
                        1)
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["vip"]
    assert run.variables["customer.name"] == "张三" and run.variables["customer.vip"] == "true"
    assert "customer.nested" not in run.variables
    slow = run_of(flow)
    slow.start(0.0)
    a = slow.timer(2.0)
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["cards"]
    assert slow.lookup_done(2.5, {"tier": "gold"}, 1) == []  # too late: ignored
    failed = run_of(flow)
    failed.start(0.0)
    assert [x.queue for x in failed.lookup_done(0.1, None, 1) if isinstance(x, Enqueue)] == [
        "cards"]


def test_set_fills_templates_and_step_limit_stops_runaway_flows() -> None:
    flow = {"start": "s", "max_steps": 10, "nodes": {
        "s": {"type": "set", "values": {"ref": "{did}-{caller}", "language": "en"},
              "next": "m"},
        "m": {"type": "menu", "prompt": "p", "options": {"1": "s"}, "on_failure": "m",
              "retries": 0, "timeout": 1}}}
    run = run_of(flow)
    a = run.start(0.0)
    assert run.variables["ref"] == "400-13900000000" and a[-1].language == "en"  # type: ignore
    now = 0.0
    while not run.finished:
        now += 1
        a = finish(run, a, now) if plays(a) else run.timer(run.deadline or now)
        if not a and run.deadline is not None:
            a = run.timer(run.deadline)
    assert run.outcome == "too_many_steps"


@pytest.mark.parametrize(
    ("change", "node", "text"),
    [
        ({"main": {"type": "menu", "prompt": "m", "options": {"1": "nowhere"},
                   "on_failure": "goodbye"}}, "main", "'nowhere'"),
        ({"main": {"type": "menu", "prompt": "m", "options": {"x": "goodbye"},
                   "on_failure": "goodbye"}}, "main", "options"),
        ({"loop": {"type": "set", "values": {"a": "1"}, "next": "loop"}}, "loop",
         "loops back"),
        ({"account": {"type": "collect", "prompt": "p", "variable": "acct", "min_digits": 9,
                      "max_digits": 3, "next": "goodbye", "on_failure": "goodbye"}},
         "account", "min_digits"),
        ({"vip": {"type": "branch", "rules": [{"variable": "caller", "in_list": "nolist",
                                              "next": "goodbye"}], "default": "goodbye"}},
         "vip", "nolist"),
        ({"q": {"type": "queue", "queue": "x", "bogus": 1}}, "q", "bogus"),
        ({"c": {"type": "collect", "prompt": "p", "variable": "v", "pattern": "([",
                "next": "goodbye", "on_failure": "goodbye"}}, "c", "regular expression"),
        ({"t": {"type": "transfer", "agent": "A1", "number": "10086", "queue": "q",
                "on_failure": "goodbye"}}, "t", "exactly one of"),
        ({"t": {"type": "transfer", "extension": "7001", "on_failure": "goodbye"}}, "t",
         "give queue"),
        ({"t": {"type": "transfer", "number": "{caller}", "on_failure": "goodbye"}}, "t",
         "number"),
    ],
)
def test_errors_name_the_node(change: dict[str, Any], node: str, text: str) -> None:
    flow = {**BANK, "nodes": {**BANK["nodes"], **change}}
    with pytest.raises(FlowError) as err:
        parse_flow(flow)
    problems = err.value.problems
    assert any(p["node"] == node and (text in p["message"] or text in p["field"])
               for p in problems), problems


def test_references_name_the_first_node_using_each_item() -> None:
    refs = references(parse_flow(BANK))
    assert refs["prompts"]["invalid"] == "main"
    assert set(refs["queues"]) == {"lost", "cards", "vip"}
    assert refs["queues"]["vip"] == "vip_queue"


def test_emergency_notices_play_before_the_flow_and_at_the_queue() -> None:
    run = IvrRun(parse_flow(BANK), {"caller": "1"}, notice="outage",
                 queue_notices={"cards": "cards_down"})
    a = run.start(0.0)
    assert plays(a) == [("outage",)]
    run.digit(1.0, "1")  # typed ahead during the notice: Chinese
    a = finish(run, a, 5.0)
    assert plays(a) == [("welcome",)]
    a = finish(run, a, 8.0)
    assert plays(a) == [("main_menu",)] and run.variables["language"] == "zh"
    a = run.digit(9.0, "2")
    a = finish(run, a, 12.0)
    for k in "123456#":
        a = run.digit(13.0, k)
    assert plays(a) == [("cards_down", "please_wait", POSITION, WAIT)]


def test_a_pattern_that_backtracks_without_end_counts_as_no_match() -> None:
    flow = {"start": "c", "nodes": {
        "c": {"type": "collect", "prompt": "p", "variable": "v", "max_digits": 64,
              "pattern": "(1|11)+2?3", "retries": 0, "next": "ok", "on_failure": "no"},
        "ok": {"type": "hangup", "prompt": "yes"}, "no": {"type": "hangup", "prompt": "no"}}}
    run = run_of(flow)
    run.start(0.0)
    for key in "1" * 40:
        run.digit(1.0, key)
    assert plays(run.digit(1.0, "#")) == [("no",)]  # given up on, not stalled


def test_a_late_lookup_answer_is_not_taken_for_the_next_lookups() -> None:
    flow = {"start": "a", "nodes": {
        "a": {"type": "lookup", "url": "http://a.example/", "timeout": 2, "next": "qa",
              "on_failure": "b"},
        "b": {"type": "lookup", "url": "http://b.example/", "timeout": 2, "next": "qb",
              "on_failure": "qc"},
        "qa": {"type": "queue", "queue": "a", "announce_every": None},
        "qb": {"type": "queue", "queue": "b", "announce_every": None},
        "qc": {"type": "queue", "queue": "c", "announce_every": None}}}
    run = run_of(flow)
    (first,) = run.start(0.0)
    (second,) = run.timer(2.0)  # a timed out: b asks
    assert isinstance(first, StartLookup) and isinstance(second, StartLookup)
    assert run.lookup_done(2.5, None, first.id) == []  # a's own failure, late
    a = run.lookup_done(2.6, {"ok": 1}, second.id)
    assert [x.queue for x in a if isinstance(x, Enqueue)] == ["b"]


def test_a_flow_looping_on_a_lookup_stops_asking_after_a_few() -> None:
    flow = {"start": "a", "nodes": {
        "a": {"type": "lookup", "url": "http://a.example/", "next": "a", "on_failure": "a"}}}
    run = run_of(flow)
    asked = run.start(0.0)
    n = 1
    while asked and isinstance(asked[-1], StartLookup):
        asked = run.lookup_done(float(n), None, asked[-1].id)
        n += 1
    assert n - 1 <= 5 and run.finished  # then the step limit ends the call


def test_keys_typed_ahead_are_bounded() -> None:
    run = run_of(BANK)
    run.start(0.0)
    for _ in range(5000):
        run.digit(0.5, "7")
    assert len(run._ahead) <= 32


def test_transfer_node_rings_its_target_and_goes_on_when_refused() -> None:
    """A transfer node hands the caller to one agent (through a queue) or a fixed outside
    number; refused, the flow continues at on_failure (here: a second transfer, then a
    queue)."""
    flow = {"start": "boss", "nodes": {
        "boss": {"type": "transfer", "extension": "7001", "queue": "vip",
                 "prompt": "connecting", "on_failure": "branch_office"},
        "branch_office": {"type": "transfer", "number": "02012345678",
                          "on_failure": "q"},
        "q": {"type": "queue", "queue": "cards", "announce_every": None},
    }}
    run = run_of(flow, language="en")
    a = run.start(0)
    (call,) = [x for x in a if isinstance(x, TransferCall)]
    assert (call.agent, call.extension, call.number, call.queue) == (None, "7001", None, "vip")
    assert plays(a) == [("connecting",)]
    assert finish(run, a, 2) == [PlayMusic()]  # music after the prompt while it rings
    assert run.outcome == "transferred" and run.queue == "vip"
    assert run.digit(3, "5") == []  # keys change nothing while the transfer rings
    a = run.transfer_failed(20)
    (call,) = [x for x in a if isinstance(x, TransferCall)]
    assert (call.number, call.queue) == ("02012345678", None)
    assert PlayMusic() in a  # no prompt: music at once
    a = run.transfer_failed(40)
    assert [x for x in a if isinstance(x, Enqueue)] == [Enqueue("cards", None, run.variables)]
    assert run.outcome == "queued" and run.path == ["boss", "branch_office", "q"]
    assert run.transfer_failed(41) == []  # not transferring any more: nothing happens
