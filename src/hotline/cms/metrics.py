"""The one place call-center KPIs are defined; docs/metrics.md states each formula.

``Metrics`` folds the event stream into per-(interval, queue) tallies and per-agent time
accounting as events stream past, so memory stays bounded by the calls in flight and the
report's own size, never by the number of events. ``Realtime`` keeps the live snapshot
(calls waiting, longest wait, agents by state) for wallboards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hotline.events.types import (
    AgentQueuesChanged,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallbackFailed,
    CallClosed,
    CallEnded,
    CallOffered,
    CallOverflowed,
    CallQueued,
    CallRejected,
    Event,
    OfferCancelled,
    OutboundAnswered,
    OutboundDialed,
    OutboundEnded,
    WrapUpEnded,
)

SL_VARIANTS = ("standard", "asterisk", "asterisk2", "abandons_met")
# Agent states whose time counts as logged in and available for work (occupancy denominator).
_STAFFED = ("ready", "reserved", "busy", "wrap_up")
_OCCUPIED = ("busy", "wrap_up")


@dataclass(frozen=True, slots=True)
class ServiceLevelConfig:
    """How a queue's service level is judged.

    variant: ``standard`` answered in threshold / (offered − short abandons);
    ``asterisk`` answered in threshold / answered (Asterisk's ServiceLevelPerf);
    ``asterisk2`` answered in threshold / (answered + abandoned) (ServiceLevelPerf2);
    ``abandons_met`` (answered + abandoned within threshold) / (offered − short abandons).
    """

    threshold: float = 20.0
    short_abandon: float = 5.0
    variant: str = "standard"

    def __post_init__(self) -> None:
        if self.variant not in SL_VARIANTS:
            raise ValueError(f"service level variant must be one of {', '.join(SL_VARIANTS)}")
        if self.threshold < 0 or self.short_abandon < 0:
            raise ValueError("service level thresholds must be ≥ 0")


class Tally:
    """Counts and sums for one group of calls; KPIs are derived, never stored."""

    __slots__ = (
        "abandoned",
        "abandoned_in_sl",
        "answered",
        "answered_in_sl",
        "callback_failed",
        "closed",
        "first_offered",
        "handle_sum",
        "handled",
        "hold_sum",
        "max_wait",
        "offered",
        "overflowed",
        "rejected",
        "short_abandoned",
        "talk_sum",
        "wait_sum",
        "wrap_sum",
    )

    def __init__(self) -> None:
        self.offered = 0  # queue entries, overflows in included
        self.first_offered = 0  # first queue entry of a call: the center's offered calls
        self.answered = 0
        self.answered_in_sl = 0
        self.abandoned = 0  # after the short-abandon threshold
        self.short_abandoned = 0
        self.abandoned_in_sl = 0  # abandoned (not short) within the SL threshold
        self.overflowed = 0
        self.rejected = 0
        self.callback_failed = 0
        self.closed = 0  # ended by the system (CallClosed), e.g. in progress at a crash
        self.handled = 0  # answered calls whose wrap-up has ended
        self.wait_sum = 0.0
        self.max_wait = 0.0
        self.handle_sum = 0.0
        self.talk_sum = 0.0
        self.hold_sum = 0.0
        self.wrap_sum = 0.0

    def add(self, other: Tally) -> None:
        for name in _TALLY_FIELDS:
            if name == "max_wait":
                self.max_wait = max(self.max_wait, other.max_wait)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    def kpis(self, sl: ServiceLevelConfig, *, total: bool = False) -> dict[str, Any]:
        """KPIs of this tally (``total``: offered counts each call once, ignoring overflows)."""
        offered = self.first_offered if total else self.offered
        base = offered - self.short_abandoned
        variant = sl.variant
        if variant == "asterisk":
            met, denominator = self.answered_in_sl, self.answered
        elif variant == "asterisk2":
            met, denominator = self.answered_in_sl, self.answered + self.abandoned
        elif variant == "abandons_met":
            met, denominator = self.answered_in_sl + self.abandoned_in_sl, base
        else:
            met, denominator = self.answered_in_sl, base
        return {
            "offered": offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "service_level": _ratio(met, denominator),
            "asa": _ratio(self.wait_sum, self.answered),
            "aht": _ratio(self.handle_sum, self.handled),
            "abandon_rate": _ratio(self.abandoned, base),
            "max_wait": self.max_wait,
            "overflowed": 0 if total else self.overflowed,
            "rejected": self.rejected,
            "callback_failed": self.callback_failed,
            "closed": self.closed,
            "avg_talk": _ratio(self.talk_sum, self.handled),
            "avg_hold": _ratio(self.hold_sum, self.handled),
            "avg_wrap": _ratio(self.wrap_sum, self.handled),
        }


_TALLY_FIELDS = (
    "offered",
    "first_offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "short_abandoned",
    "abandoned_in_sl",
    "overflowed",
    "rejected",
    "callback_failed",
    "closed",
    "handled",
    "wait_sum",
    "max_wait",
    "handle_sum",
    "talk_sum",
    "hold_sum",
    "wrap_sum",
)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


class _CallRecord:
    __slots__ = (
        "asterisk_ewt",
        "entered",
        "ewt",
        "first_offer",
        "immediate",
        "queue",
        "talk_hold",
        "tally",
    )

    def __init__(self) -> None:
        self.queue = ""
        self.tally: Tally | None = None
        self.entered = 0.0
        self.first_offer = True
        self.immediate = False
        self.talk_hold = 0.0
        self.ewt = 0.0
        self.asterisk_ewt = 0.0


class _AgentRecord:
    __slots__ = (
        "answered",
        "outbound",
        "outbound_reached",
        "outbound_talk_time",
        "phone_failures",
        "rona",
        "since",
        "state",
        "talk_time",
        "times",
    )

    def __init__(self, t: float) -> None:
        self.state = "logged_out"
        self.since = t
        self.times: dict[str, float] = {}
        self.answered = 0
        self.talk_time = 0.0
        self.rona = 0
        self.phone_failures = 0
        self.outbound = 0
        self.outbound_reached = 0
        self.outbound_talk_time = 0.0

    def time_in(self, states: Iterable[str], now: float | None) -> float:
        total = sum(self.times.get(s, 0.0) for s in states)
        if now is not None and self.state in states:
            total += now - self.since
        return total


class Metrics:
    """Streaming KPIs from events: totals, per queue, per agent and per interval."""

    def __init__(
        self,
        service_level: ServiceLevelConfig | None = None,
        queue_service_levels: dict[str, ServiceLevelConfig] | None = None,
        *,
        interval: float = 1800.0,
        origin: float = 0.0,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.sl = service_level or ServiceLevelConfig()
        self._queue_sl = dict(queue_service_levels or {})
        self.interval = interval
        self.origin = origin
        self._tallies: dict[tuple[int, str], Tally] = {}
        self._calls: dict[str, _CallRecord] = {}
        self._agents: dict[str, _AgentRecord] = {}
        self._queue_order: dict[str, int] = {}
        # Asterisk's estimate: per queue, holdtime = (3·holdtime + wait) / 4 on each answer.
        self._asterisk_holdtime: dict[str, float] = {}
        self.ewt_samples = 0
        self.ewt_abs_error = 0.0
        self.asterisk_abs_error = 0.0
        self.ewt_error = 0.0
        self.asterisk_error = 0.0

    def set_service_level(self, queue: str, sl: ServiceLevelConfig) -> None:
        self._queue_sl[queue] = sl

    def sl_for(self, queue: str) -> ServiceLevelConfig:
        return self._queue_sl.get(queue, self.sl)

    def feed(self, event: Event) -> None:
        """Fold one event into the tallies (a chain of identity tests: the hot path)."""
        cls = type(event)
        if cls is AgentStateChanged:
            self._agent_state(event)  # type: ignore[arg-type]
        elif cls is CallQueued:
            self._queued(event)  # type: ignore[arg-type]
        elif cls is CallOffered:
            self._offered(event)  # type: ignore[arg-type]
        elif cls is CallAnswered:
            self._answered(event)  # type: ignore[arg-type]
        elif cls is CallEnded:
            self._ended(event)  # type: ignore[arg-type]
        elif cls is WrapUpEnded:
            self._wrapped(event)  # type: ignore[arg-type]
        elif cls is CallAbandoned:
            self._abandoned(event)  # type: ignore[arg-type]
        elif cls is CallOverflowed:
            self._overflowed(event)  # type: ignore[arg-type]
        elif cls is CallRejected:
            self._rejected(event)  # type: ignore[arg-type]
        elif cls is CallbackFailed:
            self._callback_failed(event)  # type: ignore[arg-type]
        elif cls is OfferCancelled:
            self._offer_cancelled(event)  # type: ignore[arg-type]
        elif cls is CallClosed:
            self._closed(event)  # type: ignore[arg-type]
        elif cls is OutboundDialed or cls is OutboundAnswered or cls is OutboundEnded:
            self._outbound(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.feed(event)

    # ------------------------------------------------------------------ event handlers
    def _tally(self, t: float, queue: str) -> Tally:
        key = (int((t - self.origin) // self.interval), queue)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = Tally()
            self._queue_order.setdefault(queue, len(self._queue_order))
        return tally

    def _queued(self, e: CallQueued) -> None:
        rec = self._calls.get(e.call)
        tally = self._tally(e.t, e.queue)
        tally.offered += 1
        if rec is None:
            rec = self._calls[e.call] = _CallRecord()
            tally.first_offered += 1
        rec.queue = e.queue
        rec.tally = tally
        rec.entered = e.t
        rec.first_offer = True
        rec.immediate = False
        rec.ewt = e.ewt
        rec.asterisk_ewt = self._asterisk_holdtime.get(e.queue, 0.0)

    def _offered(self, e: CallOffered) -> None:
        rec = self._calls.get(e.call)
        if rec is not None and rec.first_offer:
            rec.first_offer = False
            rec.immediate = e.t == rec.entered

    def _answered(self, e: CallAnswered) -> None:
        agent = self._agents.get(e.agent)
        if agent is not None:
            agent.answered += 1
        rec = self._calls.get(e.call)
        if rec is None or rec.tally is None:
            return
        tally = rec.tally
        wait = e.wait
        tally.answered += 1
        tally.wait_sum += wait
        if wait > tally.max_wait:
            tally.max_wait = wait
        if wait <= self.sl_for(e.queue).threshold:
            tally.answered_in_sl += 1
        in_queue = e.t - rec.entered
        if not rec.immediate:
            self.ewt_samples += 1
            self.ewt_abs_error += abs(rec.ewt - in_queue)
            self.asterisk_abs_error += abs(rec.asterisk_ewt - in_queue)
            self.ewt_error += rec.ewt - in_queue
            self.asterisk_error += rec.asterisk_ewt - in_queue
        old = self._asterisk_holdtime.get(e.queue)
        self._asterisk_holdtime[e.queue] = in_queue if old is None else (3 * old + in_queue) / 4

    def _abandoned(self, e: CallAbandoned) -> None:
        rec = self._calls.pop(e.call, None)
        if rec is None or rec.tally is None:
            return
        tally = rec.tally
        wait = e.wait
        sl = self.sl_for(e.queue)
        if wait <= sl.short_abandon:
            tally.short_abandoned += 1
        else:
            tally.abandoned += 1
            if wait <= sl.threshold:
                tally.abandoned_in_sl += 1
        if wait > tally.max_wait:
            tally.max_wait = wait

    def _overflowed(self, e: CallOverflowed) -> None:
        rec = self._calls.get(e.call)
        if rec is not None and rec.tally is not None:
            rec.tally.overflowed += 1

    def _rejected(self, e: CallRejected) -> None:
        self._calls.pop(e.call, None)
        self._tally(e.t, e.queue).rejected += 1

    def _callback_failed(self, e: CallbackFailed) -> None:
        rec = self._calls.pop(e.call, None)
        if rec is not None and rec.tally is not None:
            rec.tally.callback_failed += 1

    def _closed(self, e: CallClosed) -> None:
        rec = self._calls.pop(e.call, None)
        if rec is not None and rec.tally is not None:
            rec.tally.closed += 1

    def _ended(self, e: CallEnded) -> None:
        agent = self._agents.get(e.agent)
        if agent is not None:
            agent.talk_time += e.talk
        rec = self._calls.get(e.call)
        if rec is not None and rec.tally is not None:
            rec.tally.talk_sum += e.talk
            rec.tally.hold_sum += e.hold
            rec.talk_hold = e.talk + e.hold

    def _wrapped(self, e: WrapUpEnded) -> None:
        rec = self._calls.pop(e.call, None)
        if rec is not None and rec.tally is not None:
            tally = rec.tally
            tally.handled += 1
            tally.wrap_sum += e.wrap
            tally.handle_sum += rec.talk_hold + e.wrap

    def _agent_state(self, e: AgentStateChanged) -> None:
        agent = self._agents.get(e.agent)
        if agent is None:
            agent = self._agents[e.agent] = _AgentRecord(e.t)
        times = agent.times
        times[agent.state] = times.get(agent.state, 0.0) + (e.t - agent.since)
        agent.state = e.state
        agent.since = e.t

    def _outbound(self, e: Event) -> None:
        """Agents' calls out: counted per agent only, never in a queue's inbound figures."""
        agent = self._agents.get(e.agent)  # type: ignore[attr-defined]
        if agent is None:
            return
        cls = type(e)
        if cls is OutboundDialed:
            agent.outbound += 1
        elif cls is OutboundAnswered:
            agent.outbound_reached += 1
        else:
            agent.outbound_talk_time += e.talk  # type: ignore[attr-defined]

    def _offer_cancelled(self, e: OfferCancelled) -> None:
        if e.reason == "no_answer":
            agent = self._agents.get(e.agent)
            if agent is not None:
                agent.rona += 1
        elif e.reason.startswith("phone_"):
            agent = self._agents.get(e.agent)
            if agent is not None:
                agent.phone_failures += 1

    # ------------------------------------------------------------------ reports
    def queue_ids(self) -> list[str]:
        return sorted(self._queue_order, key=self._queue_order.__getitem__)

    def total(self) -> dict[str, Any]:
        tally = Tally()
        for t in self._tallies.values():
            tally.add(t)
        return tally.kpis(self.sl, total=True)

    def queues(self) -> dict[str, dict[str, Any]]:
        per: dict[str, Tally] = {}
        for (_, queue), t in self._tallies.items():
            per.setdefault(queue, Tally()).add(t)
        return {q: per[q].kpis(self.sl_for(q)) for q in self.queue_ids() if q in per}

    def intervals(self) -> list[dict[str, Any]]:
        order = self._queue_order
        rows = []
        for bucket, queue in sorted(self._tallies, key=lambda k: (k[0], order[k[1]])):
            kpis = self._tallies[(bucket, queue)].kpis(self.sl_for(queue))
            rows.append({"start": self.origin + bucket * self.interval, "queue": queue, **kpis})
        return rows

    def interval_totals(self) -> list[dict[str, Any]]:
        """Per interval, the whole center's KPIs (each call offered once, at its first queue
        entry), as ``total()`` is for the whole range."""
        per: dict[int, Tally] = {}
        for (bucket, _), t in self._tallies.items():
            per.setdefault(bucket, Tally()).add(t)
        return [{"start": self.origin + b * self.interval, **per[b].kpis(self.sl, total=True)}
                for b in sorted(per)]

    def agents(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Per agent; ``now`` closes the time of agents still logged in."""
        out = {}
        for agent_id, a in self._agents.items():
            staffed = a.time_in(_STAFFED, now)
            occupied = a.time_in(_OCCUPIED, now)
            out[agent_id] = {
                "answered": a.answered,
                "talk_time": a.talk_time,
                "occupancy": _ratio(occupied, staffed),
                "logged_in_time": a.time_in(("not_ready", *_STAFFED), now),
                "not_ready_time": a.time_in(("not_ready",), now),
                "staffed_time": staffed,
                "occupied_time": occupied,
                "rona": a.rona,
                "phone_failures": a.phone_failures,
                "outbound": a.outbound,
                "outbound_reached": a.outbound_reached,
                "outbound_talk_time": a.outbound_talk_time,
            }
        return out

    def ewt_accuracy(self) -> dict[str, Any]:
        """Announced expected wait vs the wait each answered caller then had in that queue."""
        n = self.ewt_samples
        return {
            "calls": n,
            "hotline_mae": _ratio(self.ewt_abs_error, n),
            "asterisk_mae": _ratio(self.asterisk_abs_error, n),
            "hotline_bias": _ratio(self.ewt_error, n),
            "asterisk_bias": _ratio(self.asterisk_error, n),
        }

    def in_flight(self) -> int:
        return len(self._calls)


class Realtime:
    """Live view for wallboards: calls waiting and longest wait per queue, agents by state.

    A caller waiting for a queued callback still holds a place and counts as waiting."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, float]] = {}  # queue -> call -> original arrival
        self._arrival: dict[str, float] = {}
        self._ringing: dict[str, int] = {}
        self._call_queue: dict[str, str] = {}
        self._agents: dict[str, tuple[str, str | None, float]] = {}
        self._agent_queues: dict[str, tuple[str, ...]] = {}

    def feed(self, e: Event) -> None:
        if isinstance(e, CallQueued):
            self._arrival.setdefault(e.call, e.t)
            self._call_queue[e.call] = e.queue
            self._wait(e.call, e.queue)
        elif isinstance(e, CallOffered):
            self._unwait(e.call)
            self._ringing[e.call] = self._ringing.get(e.call, 0) + 1
        elif isinstance(e, OfferCancelled):
            left = self._ringing.get(e.call, 0) - 1
            self._ringing[e.call] = left
            if left <= 0 and (
                e.reason in ("no_answer", "agent_unavailable", "ring_timeout")
                or e.reason.startswith("phone_")
            ):
                self._wait(e.call, e.queue)
        elif isinstance(
            e, CallAnswered | CallAbandoned | CallRejected | CallbackFailed | CallClosed
        ):
            self._unwait(e.call)
            self._ringing.pop(e.call, None)
            self._arrival.pop(e.call, None)
            self._call_queue.pop(e.call, None)
        elif isinstance(e, CallOverflowed):
            self._unwait(e.call)
        elif isinstance(e, AgentQueuesChanged):
            if e.agent in self._agents:
                self._agent_queues[e.agent] = e.queues
        elif isinstance(e, AgentStateChanged):
            if e.state == "logged_out":
                self._agents.pop(e.agent, None)
                self._agent_queues.pop(e.agent, None)
            else:
                self._agents[e.agent] = (e.state, e.reason, e.t)
                if e.prev == "logged_out":
                    self._agent_queues[e.agent] = e.queues

    def _wait(self, call: str, queue: str) -> None:
        self._waiting.setdefault(queue, {})[call] = self._arrival.get(call, 0.0)

    def _unwait(self, call: str) -> None:
        queue = self._call_queue.get(call)
        if queue is not None:
            self._waiting.get(queue, {}).pop(call, None)

    def snapshot_agent(self, agent: str, now: float) -> dict[str, Any] | None:
        row = self._agents.get(agent)
        if row is None:
            return None
        state, reason, since = row
        return {"state": state, "reason": reason, "time_in_state": now - since}

    def snapshot(self, now: float, *, agents: bool = True) -> dict[str, Any]:
        """``agents=False`` leaves out the per-agent rows (queue figures only)."""
        by_state: dict[str, int] = {}
        per_queue: dict[str, dict[str, int]] = {}
        for agent, (state, _, _) in self._agents.items():
            by_state[state] = by_state.get(state, 0) + 1
            for q in self._agent_queues.get(agent, ()):
                counts = per_queue.setdefault(q, {})
                counts[state] = counts.get(state, 0) + 1
        queues = {}
        for q in sorted(set(self._waiting) | set(per_queue)):
            waiting = self._waiting.get(q, {})
            queues[q] = {
                "waiting": len(waiting),
                "longest_wait": max((now - t for t in waiting.values()), default=0.0),
                "agents": per_queue.get(q, {}),
            }
        rows = (
            {
                a: {"state": s, "reason": r, "time_in_state": now - since}
                for a, (s, r, since) in sorted(self._agents.items())
            }
            if agents
            else {}
        )
        return {"queues": queues, "agents_by_state": by_state, "agents": rows}
