"""Real-time adherence, conformance and shrinkage on the engine directly: hand-built rosters
and state sequences, with the expected figures worked out here from the definitions in
docs/metrics.md (time in adherence / scheduled time; logged-in time / scheduled paid time;
paid time not on the phones / paid time)."""

from __future__ import annotations

import math
import time

import pytest

from hotline.events.types import AgentStateChanged
from hotline.wfm.adherence import (
    AdherenceEngine,
    AdherenceError,
    AdherenceRules,
    Slot,
    adherence_figures,
    shrinkage_figures,
    total,
)

H = 3600.0
M = 60.0
DAY = 1_700_000_000.0  # any instant: the engine knows no calendar


def at(hours: float, minutes: float = 0.0, seconds: float = 0.0) -> float:
    return DAY + hours * H + minutes * M + seconds


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


# A morning: work 9:00–12:00 with a break 10:00–10:15, meal 12:00–12:30, work 12:30–14:00.
ROSTER = [
    Slot(at(9), at(10), "work"),
    Slot(at(10), at(10, 15), "break"),
    Slot(at(10, 15), at(12), "work"),
    Slot(at(12), at(12, 30), "meal"),
    Slot(at(12, 30), at(14), "work"),
]


def engine_with(roster: list[Slot], agent: str = "A1", **rules: float) -> AdherenceEngine:
    e = AdherenceEngine(AdherenceRules.build(**rules))  # type: ignore[arg-type]
    e.schedule(DAY, agent, roster)
    return e


def test_live_status_follows_the_schedule_and_turns_severe_after_five_minutes() -> None:
    e = engine_with(ROSTER)
    assert [(c.activity, c.in_adherence, c.rostered) for c in e.changes] == [
        ("off", True, True)]  # publishing is news even when nothing else changed
    e.changes.clear()
    s = e.status("A1", at(8, 30))
    assert (s.activity, s.state, s.in_adherence, s.rostered) == ("off", "logged_out", True, True)
    assert s.activity_end == at(9)  # when the next activity starts

    e.set_state(at(9, 2), "A1", "ready", None)  # late: out of adherence 9:00–9:02
    assert [(c.t, c.activity, c.in_adherence) for c in e.changes] == [
        (at(9), "work", False), (at(9, 2), "work", True)]
    s = e.status("A1", at(9, 3))
    assert (s.activity, s.in_adherence, s.since) == ("work", True, at(9, 2))

    # The break starts at 10:00 and the agent stays ready: out, and severe at 10:05.
    s = e.status("A1", at(10, 4))
    assert (s.activity, s.in_adherence, s.since, s.severe) == ("break", False, at(10), False)
    assert s.out_seconds == pytest.approx(4 * M)
    assert e.next_timer() == at(10, 5)
    e.on_timer(at(10, 5))
    assert [(c.t, c.in_adherence, c.severe) for c in e.changes][-1] == (at(10, 5), False, True)
    assert e.status("A1", at(10, 6)).severe

    # Taking the break ends the stretch; the threshold is configurable.
    e.set_state(at(10, 7), "A1", "not_ready", "break")
    s = e.status("A1", at(10, 8))
    assert (s.in_adherence, s.severe, s.out_seconds, s.since) == (True, False, 0.0, at(10, 7))
    assert s.activity_end == at(10, 15)
    quick = engine_with(ROSTER, severe_after=60.0)
    quick.set_state(at(9), "A1", "ready", None)
    quick.set_state(at(9, 30), "A1", "not_ready", "break")  # a break during work time
    assert quick.status("A1", at(9, 30, 59)).severe is False
    assert quick.status("A1", at(9, 31)).severe is True


def test_each_activity_has_its_adhering_states() -> None:
    e = AdherenceEngine()
    cases = [
        ("work", "ready", None, True),
        ("work", "reserved", None, True),
        ("work", "busy", "outbound", True),
        ("work", "wrap_up", None, True),
        ("work", "not_ready", "break", False),
        ("work", "logged_out", None, False),
        ("break", "not_ready", "break", True),
        ("break", "logged_out", None, False),  # a paid break is taken logged in
        ("break", "ready", None, False),
        ("meal", "logged_out", None, True),  # unpaid: logging out for it adheres
        ("meal", "not_ready", "lunch", True),
        ("meal", "not_ready", "break", False),
        ("meeting", "not_ready", "meeting", True),
        ("meeting", "ready", None, False),
        ("training", "not_ready", "training", True),
        ("off", "logged_out", None, True),
        ("off", "ready", None, False),  # logged in outside the schedule
    ]
    for i, (kind, state, reason, adheres) in enumerate(cases):
        agent = f"X{i}"
        if kind != "off":
            e.schedule(DAY, agent, [Slot(at(9), at(10), kind)])
        e.set_state(at(9, 10), agent, state, reason)
        assert e.status(agent, at(9, 20)).in_adherence is adheres, (kind, state, reason)


def test_rules_are_configurable_and_checked() -> None:
    rules = AdherenceRules.build({"meeting": ["not_ready"]}, severe_after=120)
    assert rules.adheres("meeting", "not_ready", "anything")
    assert rules.adheres("work", "ready", None)  # the defaults stay for the others
    with pytest.raises(AdherenceError, match="activity 'lunch'"):
        AdherenceRules.build({"lunch": ["logged_out"]})
    with pytest.raises(AdherenceError, match="'napping'"):
        AdherenceRules.build({"break": ["napping"]})
    with pytest.raises(AdherenceError, match="severe_after"):
        AdherenceRules.build(severe_after=0)
    with pytest.raises(AdherenceError, match="unknown agent state"):
        AdherenceEngine().set_state(DAY, "A1", "asleep", None)


def test_adherence_and_conformance_of_a_morning() -> None:
    """Logs in 9:05 ready; break 10:02–10:20 (late and long); a meal logged out 12:00–12:40
    (back late); works on until 14:10, ten minutes past the end of the schedule."""
    e = engine_with(ROSTER)
    states = [
        (at(9, 5), "ready", None),
        (at(10, 2), "not_ready", "break"),
        (at(10, 20), "ready", None),
        (at(11), "busy", None),
        (at(11, 6), "wrap_up", None),
        (at(11, 7), "ready", None),
        (at(12), "logged_out", None),
        (at(12, 40), "ready", None),
        (at(14, 10), "logged_out", None),
    ]
    for t, state, reason in states:
        e.feed(AgentStateChanged(t, "A1", state, "x", reason))
    end = at(15)
    tally = e.tallies(end)["A1"]
    f = adherence_figures(tally, e.rules)

    # Expected from the definitions: time in adherence within each scheduled activity.
    def within(slot: Slot, spans: list[tuple[float, float]]) -> float:
        return sum(overlap((slot.start, slot.end), s) for s in spans)

    on_phones = [(at(9, 5), at(10, 2)), (at(10, 20), at(12)), (at(12, 40), at(14, 10))]
    on_break = [(at(10, 2), at(10, 20))]
    logged_out = [(at(12), at(12, 40))]
    adherent = sum(
        within(s, on_phones if s.kind == "work" else on_break if s.kind == "break" else
               logged_out)
        for s in ROSTER
    )
    scheduled = sum(s.end - s.start for s in ROSTER)
    assert f["scheduled_time"] == pytest.approx(scheduled)
    assert f["adherent_time"] == pytest.approx(adherent)
    assert f["adherence"] == pytest.approx(adherent / scheduled)
    paid = sum(s.end - s.start for s in ROSTER if s.kind != "meal")
    worked = sum(b - a for a, b in on_phones + on_break)
    assert f["worked_time"] == pytest.approx(worked)
    assert f["conformance"] == pytest.approx(worked / paid)
    assert f["unscheduled_logged_in_time"] == pytest.approx(10 * M)

    s = shrinkage_figures(tally)
    # Paid time: scheduled paid time plus logged-in time outside it (14:00–14:10; the meal
    # was taken logged out, so it is not paid time).
    assert s["paid_time"] == pytest.approx(paid + 10 * M)
    assert s["available_time"] == pytest.approx(sum(b - a for a, b in on_phones))
    logged_out_paid = 5 * M + 10 * M  # 9:00–9:05 and 12:30–12:40, both scheduled work
    assert s["logged_out"]["time"] == pytest.approx(logged_out_paid)
    assert s["not_ready"]["break"]["time"] == pytest.approx(18 * M)
    parts = s["logged_out"]["share"] + sum(r["share"] for r in s["not_ready"].values())
    assert s["shrinkage"] == pytest.approx(parts)
    assert s["shrinkage"] == pytest.approx((18 * M + logged_out_paid) / (paid + 10 * M))


def test_a_period_counts_only_its_own_time_but_knows_the_state_at_its_start() -> None:
    e = AdherenceEngine(count_from=at(10))
    e.schedule(DAY, "A1", ROSTER)
    e.set_state(at(9), "A1", "ready", None)  # before the period: state known, not counted
    f = adherence_figures(e.tallies(at(11))["A1"], e.rules)
    assert f["scheduled_time"] == pytest.approx(H)
    assert f["adherent_time"] == pytest.approx(45 * M)  # the break was spent ready
    assert f["worked_time"] == pytest.approx(H)


def test_no_schedule_means_no_ratio_rather_than_zero() -> None:
    e = AdherenceEngine()
    e.set_state(DAY, "A1", "logged_out", None)
    f = adherence_figures(e.tallies(DAY + H)["A1"], e.rules)
    assert f["adherence"] is None and f["conformance"] is None
    assert shrinkage_figures({})["shrinkage"] is None


def test_publishing_changes_what_is_scheduled_now_and_a_bad_roster_changes_nothing() -> None:
    e = AdherenceEngine()
    e.set_state(at(9), "A1", "ready", None)
    assert not e.status("A1", at(9, 1)).in_adherence  # logged in, nothing scheduled
    e.replace(at(9, 2), at(0), at(24), {"A1": [Slot(at(9), at(17), "work")]})
    s = e.status("A1", at(9, 3))
    assert (s.activity, s.in_adherence, s.since) == ("work", True, at(9, 2))
    with pytest.raises(AdherenceError, match="overlaps"):
        e.replace(at(9, 4), at(0), at(24), {
            "A1": [Slot(at(9), at(12), "work"), Slot(at(11), at(13), "meeting")],
            "A2": [Slot(at(9), at(12), "work")],
        })
    assert e.status("A1", at(9, 5)).activity_end == at(17)
    assert "A2" not in e.agents()
    # Replacing the day with nothing for A1 unschedules it.
    e.replace(at(9, 6), at(0), at(24), {})
    assert e.status("A1", at(9, 7)).activity == "off"
    # Time already passed keeps the schedule it had.
    f = adherence_figures(e.tallies(at(9, 7))["A1"], e.rules)
    assert f["scheduled_time"] == pytest.approx(4 * M)


def test_totals_add_up_the_agents() -> None:
    e = AdherenceEngine()
    for agent, state in (("A1", "ready"), ("A2", "logged_out")):
        e.schedule(DAY, agent, [Slot(at(9), at(10), "work")])
        e.set_state(at(9), agent, state, None)
    tallies = e.tallies(at(10))
    whole = adherence_figures(total(tallies.values()), e.rules)
    assert whole["adherence"] == pytest.approx(0.5)
    assert whole["conformance"] == pytest.approx(0.5)


def test_a_state_change_costs_the_same_with_ten_thousand_agents() -> None:
    """The hot path touches one agent and one heap entry: the time per change with 10,000
    agents stays within a small factor of that with 100 (a rescan would be 100 times)."""

    def per_change(n: int) -> float:
        e = AdherenceEngine()
        for i in range(n):
            e.schedule(DAY, f"A{i}", ROSTER)
            e.set_state(at(9), f"A{i}", "ready", None)  # all in adherence until 10:00
        states = ("ready", "busy", "wrap_up")
        changes = 20_000
        t = at(9)
        start = time.perf_counter()
        for k in range(changes):
            t += 0.1
            e.set_state(t, f"A{(k * 7919) % n}", states[k % 3], None)
            if e.next_timer() <= t:
                e.on_timer(t)
        return (time.perf_counter() - start) / changes

    small = min(per_change(100) for _ in range(2))
    large = min(per_change(10_000) for _ in range(2))
    assert large < small * 5, (small, large)
    assert math.isfinite(large)
