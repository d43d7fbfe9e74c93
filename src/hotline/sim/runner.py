"""Discrete-event simulation of a call center around the production ACD engine.

A heap of (time, seq, kind, payload) drives synthetic callers and agents (SimPy's core idea,
without processes); the ACD's own deadlines come from ``next_timer``. Every event the ACD
emits streams through the metrics module (and optionally to a JSON-lines file) and is then
dropped, so memory does not grow with the length of the run.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush
from math import log
from random import Random
from typing import IO, Any

from hotline.acd.commands import CancelOffer, DialCallback, ExitToCallback, Offer, Reject
from hotline.acd.engine import ACD, LOGGED_OUT, NOT_READY, READY, RONA_REASON
from hotline.cms.metrics import Metrics
from hotline.events.types import Event
from hotline.sim.distributions import Sampler, sampler
from hotline.sim.scenario import AgentGroupSpec, Scenario, TrafficSpec, parse_clock

_INF = float("inf")
_DAY = 86400.0
_WEEK = 7 * _DAY

# Heap event kinds.
(
    _ARRIVAL,
    _ABANDON,
    _ANSWER,
    _HANGUP,
    _LOGIN,
    _LOGOUT,
    _BREAK,
    _BREAK_END,
    _CALLBACK,
    _READY,
    _RONA_READY,
    _PLAN,
) = range(12)


class _Caller:
    __slots__ = ("agent", "handle", "left", "queue")

    def __init__(self, queue: str, handle: float) -> None:
        self.queue = queue
        self.handle = handle
        self.left = False  # hung up to be called back
        self.agent = ""


class _Stream:
    """Poisson arrivals, constant or piecewise constant: by time of day/week (a cycle) or
    along the whole run (a timeline, whose steps may also rescale the handle time)."""

    __slots__ = (
        "cycle",
        "handle",
        "ident",
        "offset",
        "patience",
        "priority",
        "queue",
        "rates",
        "rng",
        "scale",
        "scales",
        "starts",
        "timeline",
    )

    def __init__(self, ident: int, spec: TrafficSpec, scenario: Scenario, seed: int) -> None:
        self.ident = ident
        self.queue = spec.queue
        self.priority = spec.priority
        self.rng = Random(f"{seed}:traffic:{ident}")
        self.handle = sampler(spec.handle_time, Random(f"{seed}:handle:{ident}"))
        self.patience: Sampler | None = (
            sampler(spec.patience, Random(f"{seed}:patience:{ident}")) if spec.patience else None
        )
        day, clock = parse_clock(scenario.start)
        self.timeline = spec.timeline is not None
        self.scale = 1.0  # the handle-time factor of the pending arrival's step
        self.scales: list[float] = []
        if spec.timeline is not None:
            # Absolute steps after a zero-rate one from 0 (bisect never falls off the left).
            steps = spec.timeline
            self.cycle = 0.0
            self.starts = [0.0] + [s.at for s in steps]
            self.rates = [0.0] + [s.calls_per_hour / 3600.0 for s in steps]
            mean = spec.handle_time.expected
            self.scales = [1.0] + [1.0 if s.aht is None else s.aht / mean for s in steps]
            self.offset = 0.0
            if any(f != 1.0 for f in self.scales):
                base = self.handle
                self.handle = lambda: base() * self.scale
        elif spec.profile is None:
            self.cycle = _INF
            self.starts = [0.0]
            self.rates = [(spec.calls_per_hour or 0.0) / 3600.0]
            self.offset = 0.0
        else:
            points = []
            for key, rate in spec.profile.items():
                kday, kclock = parse_clock(key)
                points.append(((kday or 0) * _DAY + kclock, rate / 3600.0))
            weekly = kday is not None  # validation keeps all keys of one kind
            self.cycle = _WEEK if weekly else _DAY
            points.sort()
            # The rate before the first key is the last key's (the profile wraps around).
            self.starts = [0.0] + [p[0] for p in points]
            self.rates = [points[-1][1]] + [p[1] for p in points]
            self.offset = ((day or 0) * _DAY if weekly else 0.0) + clock

    def next_arrival(self, t: float, end: float) -> float:
        """First arrival after ``t`` (``inf`` if none before ``end``); exact for piecewise
        constant rates because exponential gaps are memoryless."""
        uniform = self.rng.random
        while t < end:
            if self.cycle == _INF:
                rate, seg_end = self.rates[0], end
            elif self.timeline:
                i = bisect_right(self.starts, t) - 1
                rate = self.rates[i]
                seg_end = min(end, self.starts[i + 1]) if i + 1 < len(self.starts) else end
                if rate > 0:
                    cand = t - log(1.0 - uniform()) / rate
                    if cand < seg_end:
                        self.scale = self.scales[i]
                        return cand
                t = seg_end
                continue
            else:
                pos = (self.offset + t) % self.cycle
                i = bisect_right(self.starts, pos) - 1
                rate = self.rates[i]
                nxt = self.starts[i + 1] if i + 1 < len(self.starts) else self.cycle
                seg_end = min(end, t + (nxt - pos))
            if rate > 0:
                cand = t - log(1.0 - uniform()) / rate
                if cand < seg_end:
                    return cand
            t = seg_end
        return _INF


@dataclass(slots=True)
class _AgentBehaviour:
    answer_delay: Sampler | None
    rona: float
    rng: Random


@dataclass
class SimulationResult:
    scenario: str
    seed: int
    end: float
    calls: int
    metrics: Metrics

    @property
    def unfinished(self) -> int:
        """Calls still waiting when nothing else could happen (no agent left to serve them)."""
        return self.metrics.in_flight()

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "duration": self.end,
            "total": m.total(),
            "queues": m.queues(),
            "agents": m.agents(self.end),
            "intervals": m.intervals(),
            "ewt": m.ewt_accuracy(),
            "unfinished_calls": self.unfinished,
        }


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        events_out: IO[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        seed = self.seed
        self.acd = ACD(scenario.queue_configs(), scenario.agent_configs(), seed=seed)
        self.metrics = Metrics(
            scenario.service_level.config(),
            scenario.service_levels(),
            interval=scenario.interval,
        )
        self._events_out = events_out
        self._on_event = on_event
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = 0
        self._callers: dict[str, _Caller] = {}
        self._ringing: dict[tuple[str, str], int] = {}
        self._ring_token = 0
        self._calls = 0
        self._streams = [_Stream(i, t, scenario, seed) for i, t in enumerate(scenario.traffic)]
        self._behaviour: dict[str, _AgentBehaviour] = {}
        self._manual_wrap: dict[str, float] = {
            q.id: q.wrap_up for q in scenario.queues if not q.auto_ready
        }
        self._group_wrap: dict[str, float | None] = {}
        self._callback_rng = Random(f"{seed}:callback")
        self._callback_dial = sampler(scenario.callback.dial_time, self._callback_rng)
        for gi, group in enumerate(scenario.agents):
            self._plan_agents(gi, group)
        for stream in self._streams:
            first = stream.next_arrival(0.0, scenario.duration)
            if first < _INF:
                self._push(first, _ARRIVAL, stream)

    def _plan_agents(self, gi: int, group: AgentGroupSpec) -> None:
        rng = Random(f"{self.seed}:agents:{gi}")
        delay = sampler(group.answer_delay, rng) if group.answer_delay else None
        behaviour = _AgentBehaviour(delay, self.scenario.rona_probability_of(group), rng)
        for agent_id in group.agent_ids():
            self._behaviour[agent_id] = behaviour
            self._group_wrap[agent_id] = group.wrap_up
            if group.plan:
                plan = tuple((s.at, s.state, s.reason) for s in group.plan)
                self._push(plan[0][0], _PLAN, (agent_id, plan, 0))
            elif group.shift is None:
                self._push(0.0, _LOGIN, agent_id)
            else:
                self._push(group.shift.start, _LOGIN, agent_id)
                self._push(group.shift.end, _LOGOUT, agent_id)
            for brk in group.breaks:
                self._push(brk.start, _BREAK, (agent_id, brk.reason))
                self._push(brk.start + brk.duration, _BREAK_END, agent_id)

    def _push(self, t: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heappush(self._heap, (t, self._seq, kind, payload))

    # ------------------------------------------------------------------ main loop
    def run(self, progress: Callable[[float], None] | None = None) -> SimulationResult:
        heap = self._heap
        acd = self.acd
        duration = self.scenario.duration
        steps = 0
        now = 0.0
        while True:
            t_next = heap[0][0] if heap else _INF
            t_timer = acd.next_timer()
            if t_timer <= t_next:
                if t_timer == _INF:
                    break
                now = t_timer
                acd.on_timer(now)
            else:
                now, _, kind, payload = heappop(heap)
                self._handle(now, kind, payload)
            if acd.commands:
                self._commands(now)
            if acd.events:
                self._flush()
            steps += 1
            if progress is not None and steps & 0x3FFF == 0:
                progress(min(now, duration))
        end = max(now, duration)
        for agent_id in self._behaviour:
            if acd.agent_state(agent_id)[0] != LOGGED_OUT:
                acd.logout(end, agent_id, "end of simulation")
        self._flush()
        if progress is not None:
            progress(duration)
        return SimulationResult(self.scenario.name, self.seed, end, self._calls, self.metrics)

    def _flush(self) -> None:
        acd = self.acd
        events = acd.events
        acd.events = []
        self.metrics.feed_all(events)
        if self._on_event is not None:
            for e in events:
                self._on_event(e)
        if self._events_out is not None:
            write = self._events_out.write
            for e in events:
                write(e.to_json())
                write("\n")

    def _handle(self, now: float, kind: int, payload: Any) -> None:
        acd = self.acd
        if kind == _ARRIVAL:
            stream: _Stream = payload
            self._calls += 1
            call_id = f"c{self._calls}"
            caller = _Caller(stream.queue, stream.handle())
            self._callers[call_id] = caller
            acd.call_arrived(now, call_id, stream.queue, priority=stream.priority)
            if acd.commands:
                self._commands(now)
            if stream.patience is not None and call_id in self._callers and not caller.agent:
                self._push(now + stream.patience(), _ABANDON, call_id)
            nxt = stream.next_arrival(now, self.scenario.duration)
            if nxt < _INF:
                self._push(nxt, _ARRIVAL, stream)
        elif kind == _HANGUP:
            self._callers.pop(payload, None)
            acd.hangup(now, payload)
        elif kind == _ABANDON:
            waiting = self._callers.get(payload)
            if waiting is not None and not waiting.agent and not waiting.left:
                del self._callers[payload]
                acd.abandon(now, payload)
        elif kind == _ANSWER:
            call_id, agent_id, token = payload
            if self._ringing.get((call_id, agent_id)) == token:
                del self._ringing[(call_id, agent_id)]
                self._answer(now, call_id, agent_id)
        elif kind == _LOGIN:
            if acd.agent_state(payload)[0] == LOGGED_OUT:
                acd.login(now, payload)
        elif kind == _LOGOUT:
            acd.logout(now, payload, "end of shift")
        elif kind == _BREAK:
            agent_id, reason = payload
            if acd.agent_state(agent_id)[0] != LOGGED_OUT:
                acd.set_not_ready(now, agent_id, reason)
        elif kind == _BREAK_END:
            if acd.agent_state(payload)[0] != LOGGED_OUT:
                acd.set_ready(now, payload)
        elif kind == _READY:
            # Ending the manual wrap-up, not "ready": a break or log-out due during the call
            # then starts, as it would for a person.
            if acd.agent_state(payload)[0] != LOGGED_OUT:
                acd.end_wrap_up(now, payload)
        elif kind == _RONA_READY:
            if acd.agent_state(payload) == (NOT_READY, RONA_REASON):
                acd.set_ready(now, payload)
        elif kind == _CALLBACK:
            call_id, reached = payload
            if reached:
                acd.callback_answered(now, call_id)
                caller = self._callers[call_id]
                self._push(now + caller.handle, _HANGUP, call_id)
                self._after_answer(now, caller)
            else:
                self._callers.pop(call_id, None)
                acd.callback_failed(now, call_id)
        elif kind == _PLAN:
            self._plan_step(now, payload)

    def _plan_step(self, now: float, payload: tuple[str, tuple[Any, ...], int]) -> None:
        """One step of an agent's plan, then the next one is scheduled (the heap holds one
        step per agent, however long the plan)."""
        acd = self.acd
        agent_id, plan, i = payload
        _, state, reason = plan[i]
        logged_out = acd.agent_state(agent_id)[0] == LOGGED_OUT
        if state == READY:
            if logged_out:
                acd.login(now, agent_id)
            else:
                acd.set_ready(now, agent_id)  # on a call: cancels a pending break or logout
        elif state == NOT_READY:
            if logged_out:
                acd.login(now, agent_id, ready=False, reason=reason)
            else:
                acd.set_not_ready(now, agent_id, reason)  # on a call: after it
        else:
            acd.logout(now, agent_id, reason)  # on a call: after it
        if i + 1 < len(plan):
            self._push(plan[i + 1][0], _PLAN, (agent_id, plan, i + 1))

    def _answer(self, now: float, call_id: str, agent_id: str) -> None:
        self.acd.answer(now, call_id, agent_id)
        caller = self._callers[call_id]
        caller.agent = agent_id
        self._push(now + caller.handle, _HANGUP, call_id)
        self._after_answer(now, caller)

    def _after_answer(self, now: float, caller: _Caller) -> None:
        """Simulated agents end a manual wrap-up after the queue's wrap-up time."""
        wrap = self._manual_wrap.get(caller.queue)
        if wrap is not None:
            own = self._group_wrap.get(caller.agent)
            self._push(
                now + caller.handle + (own if own is not None else wrap), _READY, caller.agent
            )

    def _commands(self, now: float) -> None:
        acd = self.acd
        while acd.commands:
            commands = acd.commands
            acd.commands = []
            for cmd in commands:
                cls = type(cmd)
                if cls is Offer:
                    self._offer(now, cmd)  # type: ignore[arg-type]
                elif cls is CancelOffer:
                    cancel: CancelOffer = cmd  # type: ignore[assignment]
                    self._ringing.pop((cancel.call, cancel.agent), None)
                    if cancel.reason == "no_answer":
                        # The agent notices the missed call and makes themself ready again.
                        self._push(now + self.scenario.rona_recovery, _RONA_READY, cancel.agent)
                elif cls is Reject:
                    self._callers.pop(cmd.call, None)
                elif cls is ExitToCallback:
                    caller = self._callers.get(cmd.call)
                    if caller is not None:
                        caller.left = True
                elif cls is DialCallback:
                    caller = self._callers[cmd.call]
                    caller.agent = cmd.agent  # type: ignore[attr-defined]
                    reached = self._callback_rng.random() < self.scenario.callback.answer_rate
                    self._push(now + self._callback_dial(), _CALLBACK, (cmd.call, reached))

    def _offer(self, now: float, cmd: Offer) -> None:
        behaviour = self._behaviour[cmd.agent]
        if behaviour.rona > 0 and behaviour.rng.random() < behaviour.rona:
            return  # rings until the ACD's ring timeout
        delay = behaviour.answer_delay() if behaviour.answer_delay is not None else 0.0
        if delay <= 0:
            if self.acd.is_ringing(cmd.call, cmd.agent):
                self._answer(now, cmd.call, cmd.agent)
            return
        self._ring_token += 1
        self._ringing[(cmd.call, cmd.agent)] = self._ring_token
        self._push(now + delay, _ANSWER, (cmd.call, cmd.agent, self._ring_token))


def simulate(scenario: Scenario, *, seed: int | None = None) -> SimulationResult:
    return Simulation(scenario, seed=seed).run()
