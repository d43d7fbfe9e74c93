"""Real-time adherence: is each agent doing what the roster says, and for how long not?

A plain engine (no clock, database or sockets): it is given each agent's scheduled activities
and the agent's state changes (``agent_state_changed``: logged_out, ready, not_ready with a
reason, reserved, busy, wrap_up) with their times, and answers for any later ``now``: the
scheduled activity, the state, in or out of adherence, since when, and whether *severe* (out
longer than ``severe_after``). It tallies time per (activity, state, reason), from which the
period figures — adherence, conformance and shrinkage, defined in ``docs/metrics.md`` — follow.

Cost: a state change is O(1) plus one heap push when the agent's next deadline moves (a
schedule boundary or the instant its stretch turns severe); ``on_timer`` pops only agents
whose deadline passed. Nothing rescans all agents except whole-floor queries and publishing.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from hotline.acd.engine import BUSY, LOGGED_OUT, NOT_READY, READY, RESERVED, WRAP_UP
from hotline.events.types import AgentStateChanged, Event
from hotline.wfm.activities import ACTIVITY_KINDS

OFF = "off"  # no activity scheduled: time off
STATES = (LOGGED_OUT, READY, NOT_READY, RESERVED, BUSY, WRAP_UP)
ON_THE_PHONES = frozenset({READY, RESERVED, BUSY, WRAP_UP})  # available for or handling calls
#: Scheduled time the agent is paid for (``meal`` is unpaid): the base of conformance.
PAID_KINDS = frozenset({"work", "break", "meeting", "training"})
UNSPECIFIED = "unspecified"  # a not-ready state without a reason

#: Which states adhere to which activity. A token is a state (any reason) or
#: ``state:reason``. A meal may be taken logged out (it is unpaid, many centres log agents
#: out for it) or not ready with reason ``meal`` or ``lunch``; a break must stay logged in.
DEFAULT_ADHERING: dict[str, tuple[str, ...]] = {
    "work": (READY, RESERVED, BUSY, WRAP_UP),
    "break": ("not_ready:break",),
    "meal": ("not_ready:meal", "not_ready:lunch", LOGGED_OUT),
    "meeting": ("not_ready:meeting",),
    "training": ("not_ready:training",),
    OFF: (LOGGED_OUT,),
}
DEFAULT_SEVERE_AFTER = 300.0

Key = tuple[str, str, str | None]  # (activity or "off", state, reason)


class AdherenceError(ValueError):
    """Rules or a schedule that cannot be used; the message says which entry."""


@dataclass(frozen=True, slots=True)
class AdherenceRules:
    """Activity → the state tokens that adhere to it; ``severe_after`` seconds out of
    adherence make a stretch severe."""

    adhering: Mapping[str, frozenset[str]]
    severe_after: float = DEFAULT_SEVERE_AFTER

    @classmethod
    def build(
        cls,
        adhering: Mapping[str, Iterable[str]] | None = None,
        severe_after: float = DEFAULT_SEVERE_AFTER,
    ) -> AdherenceRules:
        """The defaults, with the activities named in ``adhering`` replaced; checked."""
        if not math.isfinite(severe_after) or severe_after <= 0:
            raise AdherenceError(f"severe_after must be a positive number of seconds, "
                                 f"not {severe_after!r}")
        merged: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in DEFAULT_ADHERING.items()}
        for kind, tokens in (adhering or {}).items():
            if kind not in (*ACTIVITY_KINDS, OFF):
                raise AdherenceError(
                    f"activity {kind!r} is not one of {', '.join((*ACTIVITY_KINDS, OFF))}")
            checked = frozenset(tokens)
            for token in checked:
                state, _, reason = token.partition(":")
                if state not in STATES or (token.endswith(":") and not reason):
                    raise AdherenceError(
                        f"{kind}: {token!r} is not a state ({', '.join(STATES)}) or "
                        "state:reason")
            merged[kind] = checked
        return cls(merged, float(severe_after))

    def adheres(self, kind: str, state: str, reason: str | None) -> bool:
        tokens = self.adhering.get(kind)
        if not tokens:
            return False
        return state in tokens or (reason is not None and f"{state}:{reason}" in tokens)


DEFAULT_RULES = AdherenceRules.build()


@dataclass(frozen=True, slots=True)
class Slot:
    """One scheduled activity, in the engine's time (Unix seconds)."""

    start: float
    end: float
    kind: str


@dataclass(frozen=True, slots=True)
class AdherenceStatus:
    agent: str
    activity: str  # the scheduled activity now, or "off"
    activity_end: float | None  # when it ends (None: nothing more scheduled)
    state: str
    reason: str | None
    in_adherence: bool
    since: float  # start of the current stretch in (or out of) adherence
    out_seconds: float  # now − since when out of adherence, else 0
    severe: bool
    rostered: bool  # has any activity in the engine's window (else: no roster to follow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "rostered": self.rostered,
            "activity": self.activity,
            "activity_end": self.activity_end,
            "state": self.state,
            "reason": self.reason,
            "in_adherence": self.in_adherence,
            "since": self.since,
            "out_seconds": self.out_seconds,
            "severe": self.severe,
        }


@dataclass(frozen=True, slots=True)
class AdherenceChange:
    """An agent's activity, adherence or severity changed at ``t`` (for the CTI stream)."""

    t: float
    agent: str
    activity: str
    state: str
    reason: str | None
    in_adherence: bool
    since: float
    severe: bool
    rostered: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "adherence",
            "rostered": self.rostered,
            "t": self.t,
            "agent": self.agent,
            "activity": self.activity,
            "state": self.state,
            "reason": self.reason,
            "in_adherence": self.in_adherence,
            "since": self.since,
            "severe": self.severe,
        }


class _Agent:
    __slots__ = (
        "adhering", "deadline", "epoch", "i", "id", "kind", "last", "reason", "severe",
        "since", "slots", "starts", "state", "tally",
    )

    def __init__(self, agent_id: str, t: float) -> None:
        self.id = agent_id
        self.state = LOGGED_OUT
        self.reason: str | None = None
        self.slots: list[Slot] = []
        self.starts: list[float] = []
        self.i = 0  # first slot ending after ``last``
        self.kind = OFF
        self.adhering = True  # logged out with nothing scheduled
        self.since = t
        self.severe = False
        self.last = t  # time folded into the tally up to here
        self.tally: dict[Key, float] = {}
        self.deadline = math.inf
        self.epoch = 0


@dataclass
class AdherenceEngine:
    """``count_from``: time before it is not tallied (a report reads state changes from
    before its period to know each agent's state at its start)."""

    rules: AdherenceRules = DEFAULT_RULES
    count_from: float = -math.inf
    changes: list[AdherenceChange] = field(default_factory=list)
    _agents: dict[str, _Agent] = field(default_factory=dict)
    _heap: list[tuple[float, int, int, str]] = field(default_factory=list)
    _seq: int = 0

    # ------------------------------------------------------------------ inputs
    def feed(self, e: Event) -> None:
        """Take an event of the record; only agent state changes matter here."""
        if type(e) is AgentStateChanged:
            self.set_state(e.t, e.agent, e.state, e.reason)  # type: ignore[attr-defined]

    def set_state(self, now: float, agent_id: str, state: str, reason: str | None) -> None:
        if state not in STATES:
            raise AdherenceError(f"unknown agent state {state!r}")
        a = self._agent(agent_id, now)
        self._advance(a, now)
        a.state = state
        a.reason = reason
        self._evaluate(a, max(now, a.last))
        self._reschedule(a)

    def schedule(self, now: float, agent_id: str, slots: Iterable[Slot]) -> None:
        """Replace the agent's whole schedule (time before ``now`` keeps its old tally)."""
        self.replace(now, -math.inf, math.inf, {agent_id: list(slots)}, agents=[agent_id])

    def replace(self, now: float, start: float, end: float,
                slots: Mapping[str, Sequence[Slot]], agents: Iterable[str] | None = None
                ) -> None:
        """Publish: the slots starting in ``[start, end)`` of every agent (or of ``agents``)
        give way to ``slots``, which must start in that range and not overlap what is kept.
        All or nothing: a bad roster changes no agent."""
        touched = set(slots)
        if agents is not None:
            touched.update(agents)
        else:
            for a in self._agents.values():
                if a.slots and a.starts[-1] >= start and a.slots[0].start < end:
                    touched.add(a.id)
        plans: dict[str, list[Slot]] = {}
        for agent_id in sorted(touched):  # check everything before changing anything
            current = self._agents.get(agent_id)
            kept = [s for s in current.slots if not start <= s.start < end] if current else []
            new = list(slots.get(agent_id, ()))
            for s in new:
                if not start <= s.start < end:
                    raise AdherenceError(f"{agent_id}: a {s.kind} at {s.start} is outside "
                                         "the range being replaced")
                if s.kind not in ACTIVITY_KINDS or not s.end > s.start:
                    raise AdherenceError(f"{agent_id}: bad activity {s}")
            merged = sorted(kept + new, key=lambda s: s.start)
            for x, y in pairwise(merged):
                if y.start < x.end:
                    raise AdherenceError(f"{agent_id}: {y.kind} at {y.start} overlaps "
                                         f"{x.kind} until {x.end}")
            plans[agent_id] = merged
        for agent_id, merged in plans.items():
            a = self._agent(agent_id, now)
            self._advance(a, now)
            a.slots = merged
            a.starts = [s.start for s in merged]
            a.i = bisect_right([s.end for s in merged], a.last)
            self._evaluate(a, a.last, force=True)
            self._reschedule(a)

    def forget(self, before: float) -> None:
        """Drop activities that ended before ``before`` and were passed (a long-running
        server keeps only the days it needs)."""
        for a in self._agents.values():
            k = 0
            while k < a.i and a.slots[k].end <= before:
                k += 1
            if k:
                del a.slots[:k]
                del a.starts[:k]
                a.i -= k

    def next_timer(self) -> float:
        """When ``on_timer`` next has something to do (a boundary or a stretch turning
        severe); ``inf`` when nothing is pending."""
        heap = self._heap
        while heap:
            deadline, _, epoch, agent_id = heap[0]
            if self._agents[agent_id].epoch == epoch:
                return deadline
            heapq.heappop(heap)
        return math.inf

    def on_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, epoch, agent_id = heapq.heappop(heap)
            a = self._agents[agent_id]
            if a.epoch != epoch:
                continue
            a.deadline = math.inf
            self._advance(a, now)
            self._reschedule(a)

    # ------------------------------------------------------------------ answers
    def status(self, agent_id: str, now: float) -> AdherenceStatus:
        a = self._agent(agent_id, now)
        self._advance(a, now)
        self._reschedule(a)
        t = max(now, a.last)
        current = a.slots[a.i] if a.i < len(a.slots) and a.slots[a.i].start <= t else None
        if current is not None:
            activity_end: float | None = current.end
        else:
            activity_end = a.slots[a.i].start if a.i < len(a.slots) else None
        return AdherenceStatus(
            agent=a.id,
            activity=a.kind,
            activity_end=activity_end,
            state=a.state,
            reason=a.reason,
            in_adherence=a.adhering,
            since=a.since,
            out_seconds=0.0 if a.adhering else t - a.since,
            severe=a.severe,
            rostered=bool(a.slots),
        )

    def agents(self) -> list[str]:
        return sorted(self._agents)

    def tallies(self, now: float) -> dict[str, dict[Key, float]]:
        """Seconds per (activity, state, reason) of each agent, up to ``now``."""
        out = {}
        for a in self._agents.values():
            self._advance(a, now)
            self._reschedule(a)
            out[a.id] = dict(a.tally)
        return out

    # ------------------------------------------------------------------ inside
    def _agent(self, agent_id: str, t: float) -> _Agent:
        a = self._agents.get(agent_id)
        if a is None:
            a = self._agents[agent_id] = _Agent(agent_id, t)
        return a

    def _next(self, a: _Agent) -> float:
        """The agent's next deadline after ``a.last``: schedule boundary or severity."""
        t = math.inf
        if a.i < len(a.slots):
            s = a.slots[a.i]
            t = s.start if s.start > a.last else s.end
        if not a.adhering and not a.severe:
            t = min(t, a.since + self.rules.severe_after)
        return t

    def _advance(self, a: _Agent, now: float) -> None:
        """Fold time up to ``now`` into the tally, crossing boundaries at their exact times."""
        while True:
            t = self._next(a)
            if t > now:
                break
            self._close(a, t)
            while a.i < len(a.slots) and a.slots[a.i].end <= t:
                a.i += 1
            self._evaluate(a, t)
        self._close(a, now)

    def _close(self, a: _Agent, t: float) -> None:
        if t <= a.last:
            return
        begin = max(a.last, self.count_from)
        if t > begin:
            reason = a.reason if a.state in (NOT_READY, BUSY) else None
            key = (a.kind, a.state, reason)
            a.tally[key] = a.tally.get(key, 0.0) + (t - begin)
        a.last = t

    def _evaluate(self, a: _Agent, t: float, force: bool = False) -> None:
        """Re-judge the agent at ``t`` (its schedule pointer is current); ``force``: tell
        even if nothing changed (its roster did)."""
        s = a.slots[a.i] if a.i < len(a.slots) else None
        kind = s.kind if s is not None and s.start <= t else OFF
        adhering = self.rules.adheres(kind, a.state, a.reason)
        changed = force or kind != a.kind
        a.kind = kind
        if adhering != a.adhering:
            a.adhering = adhering
            a.since = t
            a.severe = False
            changed = True
        # the same sum as the deadline in _next, so the deadline always makes it severe
        if not adhering and not a.severe and t >= a.since + self.rules.severe_after:
            a.severe = True
            changed = True
        # An agent without a roster is not followed: nothing to tell watchers (with 10,000
        # agents and no rosters, every state change would double the stream) — except when a
        # roster is taken away, which watchers must hear to drop the agent's badge.
        if changed and (a.slots or force):
            self.changes.append(AdherenceChange(t, a.id, kind, a.state, a.reason, adhering,
                                                a.since, a.severe, bool(a.slots)))

    def _reschedule(self, a: _Agent) -> None:
        deadline = self._next(a)
        if deadline == a.deadline:
            return
        a.epoch += 1
        a.deadline = deadline
        if deadline < math.inf:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, a.epoch, a.id))
            if len(self._heap) > 2 * len(self._agents) + 64:  # drop stale entries
                self._heap = [e for e in self._heap if self._agents[e[3]].epoch == e[2]]
                heapq.heapify(self._heap)


# ---------------------------------------------------------------------- period figures
def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def adherence_figures(tally: Mapping[Key, float], rules: AdherenceRules) -> dict[str, Any]:
    """One agent's (or a total's) adherence and conformance from its tally."""
    scheduled = adherent = paid = worked = unscheduled_in = 0.0
    for (kind, state, reason), seconds in tally.items():
        logged_in = state != LOGGED_OUT
        if kind != OFF:
            scheduled += seconds
            if rules.adheres(kind, state, reason):
                adherent += seconds
        if kind in PAID_KINDS:
            paid += seconds
        if logged_in:
            worked += seconds
            if kind == OFF:
                unscheduled_in += seconds
    return {
        "scheduled_time": scheduled,
        "adherent_time": adherent,
        "adherence": _ratio(adherent, scheduled),
        "scheduled_paid_time": paid,
        "worked_time": worked,
        "conformance": _ratio(worked, paid),
        "unscheduled_logged_in_time": unscheduled_in,
    }


def shrinkage_figures(tally: Mapping[Key, float]) -> dict[str, Any]:
    """Paid time (scheduled paid or logged in) not on the phones, by what took it."""
    paid = available = logged_out = 0.0
    not_ready: dict[str, float] = {}
    for (kind, state, reason), seconds in tally.items():
        if state == LOGGED_OUT:
            if kind in PAID_KINDS:
                paid += seconds
                logged_out += seconds
            continue
        paid += seconds
        if state in ON_THE_PHONES:
            available += seconds
        else:
            key = reason or UNSPECIFIED
            not_ready[key] = not_ready.get(key, 0.0) + seconds
    return {
        "paid_time": paid,
        "available_time": available,
        "shrinkage": _ratio(paid - available, paid),
        "not_ready": {
            r: {"time": s, "share": _ratio(s, paid)} for r, s in sorted(not_ready.items())
        },
        "logged_out": {"time": logged_out, "share": _ratio(logged_out, paid)},
    }


def total(tallies: Iterable[Mapping[Key, float]]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for tally in tallies:
        for key, seconds in tally.items():
            out[key] = out.get(key, 0.0) + seconds
    return out


def slots_by_agent(rows: Iterable[tuple[str, float, float, str]]) -> dict[str, list[Slot]]:
    out: dict[str, list[Slot]] = {}
    for agent, start, end, kind in rows:
        out.setdefault(agent, []).append(Slot(start, end, kind))
    return out

