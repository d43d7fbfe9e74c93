"""The ACD engine: queues calls by skill group and hands each to the right free agent.

Sans-I/O: every input is a method taking the current time; the engine appends typed events
(``self.events``, the record) and commands (``self.commands``, work for the driver) and exposes
its own deadlines through ``next_timer``/``on_timer``. No sockets, threads, database or wall
clock inside, so the simulator and the live server run exactly the same decisions.

Routing cost is independent of the number of agents and queues in the system: an arriving
call looks only at its queue's ready-agent heap for its tier; a freed agent looks only at the
head call of each (queue, tier) it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from heapq import heappop, heappush
from random import Random
from typing import Any

from hotline.acd.commands import (
    Announce,
    CancelOffer,
    Command,
    DialCallback,
    ExitToCallback,
    Offer,
    Reject,
)
from hotline.acd.config import AgentConfig, QueueConfig
from hotline.acd.index import Indexed, LazyHeap, RandomIndex
from hotline.events.types import (
    AgentQueuesChanged,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallArrived,
    CallbackFailed,
    CallbackRequested,
    CallEnded,
    CallHeld,
    CallOffered,
    CallOverflowed,
    CallQueued,
    CallRejected,
    CallResumed,
    CallTransferred,
    CallTransferredOut,
    ConsultEnded,
    ConsultStarted,
    Event,
    OfferCancelled,
    OutboundAnswered,
    OutboundDialed,
    OutboundEnded,
    OutboundFailed,
    WrapUpEnded,
)

# Agent states (the values appear in events and APIs).
LOGGED_OUT = "logged_out"
READY = "ready"
NOT_READY = "not_ready"
RESERVED = "reserved"  # ringing, or held for a callback being dialled
BUSY = "busy"
WRAP_UP = "wrap_up"
AGENT_STATES = (LOGGED_OUT, READY, NOT_READY, RESERVED, BUSY, WRAP_UP)
RONA_REASON = "no answer"

# Call states.
_WAITING, _RINGING, _DIALING, _CONNECTED, _ENDED = range(5)
_CALL_STATE_NAMES = ("waiting", "ringing", "dialing", "connected", "ended")

# Strategies as small ints for the hot path.
(
    _LONGEST_IDLE,
    _LEAST_CALLS,
    _LEAST_TALK,
    _ROUND_ROBIN,
    _TOP_DOWN,
    _RANDOM,
    _BEST_SKILL,
    _RING_ALL,
) = range(8)
_STRATEGY_CODES = {
    "longest-idle": _LONGEST_IDLE,
    "least-calls": _LEAST_CALLS,
    "least-talk-time": _LEAST_TALK,
    "round-robin": _ROUND_ROBIN,
    "top-down": _TOP_DOWN,
    "random": _RANDOM,
    "best-skill": _BEST_SKILL,
    "ring-all": _RING_ALL,
}

# Timer kinds.
_T_RONA, _T_MAX_WAIT, _T_RELAX, _T_WRAP = range(4)

# Smoothing of the expected-wait estimators (weight of the newest observation).
_EWT_ALPHA = 0.1


class ACDError(ValueError):
    """An input the engine cannot apply (unknown id, or not valid in the current state)."""


class _Queue:
    __slots__ = (
        "aht",
        "busy_since",
        "by_priority",
        "cfg",
        "id",
        "last_departure",
        "logged_in",
        "ntiers",
        "order",
        "ready",
        "rr_counter",
        "strategy",
        "tau",
        "waiting",
        "waiting_count",
        "weight",
    )

    def __init__(self, cfg: QueueConfig, order: int, rng: Random) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.order = order
        self.strategy = _STRATEGY_CODES[cfg.strategy]
        self.weight = cfg.weight
        self.ntiers = 1 + len(cfg.relax)
        self.waiting: list[LazyHeap] = [LazyHeap() for _ in range(self.ntiers)]
        self.ready: list[LazyHeap | RandomIndex] = [
            RandomIndex(rng) if self.strategy == _RANDOM else LazyHeap() for _ in range(self.ntiers)
        ]
        self.waiting_count = 0
        self.by_priority: dict[int, int] = {}
        self.logged_in = 0
        self.rr_counter = 0
        # Expected wait: smoothed time between departures from a non-empty queue (tau) and
        # smoothed handle time (aht), the fallback before any departure was seen.
        self.tau = -1.0
        self.aht = -1.0
        self.last_departure = 0.0
        self.busy_since = 0.0


class _Membership:
    __slots__ = ("proficiency", "queue", "rr_last", "tier")

    def __init__(self, queue: _Queue, tier: int, proficiency: int) -> None:
        self.queue = queue
        self.tier = tier  # lowest tier at which the agent is eligible
        self.proficiency = proficiency
        self.rr_last = 0


class _Agent(Indexed):
    __slots__ = (
        "answered",
        "call",
        "cfg",
        "id",
        "idle_since",
        "indexed",
        "memberships",
        "pending",
        "pending_reason",
        "rank",
        "reason",
        "since",
        "slots",
        "state",
        "talk_time",
        "wrap_token",
    )

    def __init__(self, cfg: AgentConfig, rank: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.id = cfg.id
        self.rank = rank
        self.state = LOGGED_OUT
        self.reason: str | None = None
        self.since = 0.0
        self.memberships: list[_Membership] = []
        self.slots: list[tuple[LazyHeap | RandomIndex, _Membership]] = []
        self.idle_since = 0.0
        self.indexed = False  # present in its queues' ready indexes
        self.answered = 0
        self.talk_time = 0.0
        self.call: _Call | None = None  # reserved for, talking on, or wrapping up
        self.wrap_token = 0
        self.pending: str | None = None  # state to enter after wrap-up
        self.pending_reason: str | None = None


class _Call(Indexed):
    __slots__ = (
        "answered_at",
        "arrival",
        "callback",
        "consult",
        "consult_number",
        "data",
        "ended_at",
        "entered",
        "held_since",
        "hold",
        "id",
        "number",
        "offer_seq",
        "offered_to",
        "outbound",
        "priority",
        "queue",
        "state",
        "tier",
        "visit",
    )

    def __init__(
        self, call_id: str, queue: _Queue, priority: int, now: float, data: Any, number: Any
    ) -> None:
        super().__init__()
        self.id = call_id
        self.queue = queue
        self.priority = priority
        self.arrival = now
        self.entered = now
        self.tier = 0
        self.state = _WAITING
        self.visit = 0
        self.offer_seq = 0
        self.offered_to: list[_Agent] = []
        self.answered_at = 0.0
        self.ended_at = 0.0
        self.hold = 0.0
        self.held_since = -1.0
        self.callback = False
        self.outbound = False  # an agent's call out: outbound_* events, no queue figures
        self.consult: _Agent | None = None  # the agent consulted while the caller holds
        self.consult_number: str | None = None  # or the outside number consulted
        self.number: str | None = number
        self.data: dict[str, Any] | None = data


class ACD:
    """Automatic call distribution for many queues and agents.

    Feed it inputs in time order; drain ``events`` and ``commands`` after each input.
    """

    def __init__(
        self,
        queues: Iterable[QueueConfig],
        agents: Iterable[AgentConfig] = (),
        *,
        seed: int = 0,
    ) -> None:
        self.events: list[Event] = []
        self.commands: list[Command] = []
        self._rng = Random(seed)
        self._now = float("-inf")
        self._queues: dict[str, _Queue] = {}
        self._by_skill: dict[str, list[_Queue]] = {}
        self._open_queues: list[_Queue] = []  # some tier has no skill requirement
        self._agents: dict[str, _Agent] = {}
        self._calls: dict[str, _Call] = {}
        self._timers: list[tuple[float, int, int, Any, int]] = []
        self._timer_seq = 0
        for cfg in queues:
            self.add_queue(cfg)
        for exit_q in self._queues.values():
            ex = exit_q.cfg.exit
            if ex is not None and ex.target is not None and ex.target not in self._queues:
                raise ACDError(f"queue {exit_q.id}: overflow target {ex.target!r} is not a queue")
        for acfg in agents:
            self.add_agent(acfg)

    # ------------------------------------------------------------------ configuration
    def add_queue(self, cfg: QueueConfig) -> None:
        if cfg.id in self._queues:
            raise ACDError(f"duplicate queue id {cfg.id!r}")
        q = _Queue(cfg, len(self._queues), self._rng)
        self._queues[cfg.id] = q
        self._index_queue(q)

    def _index_queue(self, q: _Queue) -> None:
        """Make the queue findable from the skills it requires (at agents' log-in)."""
        skills: set[str] = set()
        for req in q.cfg.requirement_tiers:
            if not req:
                self._open_queues.append(q)
            skills.update(req)
        for skill in sorted(skills):
            self._by_skill.setdefault(skill, []).append(q)

    def add_agent(self, cfg: AgentConfig) -> None:
        if cfg.id in self._agents:
            raise ACDError(f"duplicate agent id {cfg.id!r}")
        self._agents[cfg.id] = _Agent(cfg, len(self._agents))

    # ------------------------------------------------------------------ live reconfiguration
    # A running center changes queues and skills while calls wait. These are rare operations
    # that re-derive every logged-in agent's memberships: O(agents), never on the routing path.
    def set_queue(self, now: float, cfg: QueueConfig) -> None:
        """Add a queue, or change one's settings; waiting calls keep their place."""
        self._tick(now)
        ex = cfg.exit
        if ex is not None and ex.target is not None and ex.target not in self._queues:
            raise ACDError(f"queue {cfg.id}: overflow target {ex.target!r} is not a queue")
        q = self._queues.get(cfg.id)
        if q is None:
            self.add_queue(cfg)
        else:
            self._replace_queue(q, cfg)
            self._rebuild_skill_index()
        self._refresh_agents(now)

    def remove_queue(self, now: float, queue_id: str) -> None:
        self._tick(now)
        q = self._queue(queue_id)
        for call in self._calls.values():
            if call.queue is q:
                raise ACDError(f"queue {queue_id} still has calls")
        for other in self._queues.values():
            ex = other.cfg.exit
            if other is not q and ex is not None and ex.target == queue_id:
                raise ACDError(f"queue {other.id} overflows to {queue_id}")
        del self._queues[queue_id]
        self._rebuild_skill_index()
        self._refresh_agents(now)

    def set_agent(self, now: float, cfg: AgentConfig) -> None:
        """Add an agent, or change one's skills and wrap-up (applies at once, even mid-call)."""
        self._tick(now)
        agent = self._agents.get(cfg.id)
        if agent is None:
            self.add_agent(cfg)
            return
        agent.cfg = cfg
        if agent.state != LOGGED_OUT:
            self._refresh_agents(now)

    def remove_agent(self, now: float, agent_id: str) -> None:
        self._tick(now)
        agent = self._agent(agent_id)
        if agent.state != LOGGED_OUT:
            raise ACDError(f"agent {agent_id} is logged in")
        del self._agents[agent_id]

    def _replace_queue(self, q: _Queue, cfg: QueueConfig) -> None:
        old = q.cfg
        q.cfg = cfg
        q.weight = cfg.weight
        if (
            cfg.strategy == old.strategy
            and cfg.skills == old.skills
            and [r.skills for r in cfg.relax] == [r.skills for r in old.relax]
        ):
            return
        waiting: list[_Call] = []
        for heap in q.waiting:
            waiting.extend(heap.live())  # type: ignore[arg-type]
        q.strategy = _STRATEGY_CODES[cfg.strategy]
        q.ntiers = 1 + len(cfg.relax)
        q.waiting = [LazyHeap() for _ in range(q.ntiers)]
        q.ready = [
            RandomIndex(self._rng) if q.strategy == _RANDOM else LazyHeap()
            for _ in range(q.ntiers)
        ]
        for call in waiting:
            call.epoch += 1
            call.tier = min(call.tier, q.ntiers - 1)
            q.waiting[call.tier].push(-call.priority, call.arrival, call)

    def _rebuild_skill_index(self) -> None:
        self._by_skill = {}
        self._open_queues = []
        for q in sorted(self._queues.values(), key=lambda q: q.order):
            self._index_queue(q)

    def _refresh_agents(self, now: float) -> None:
        for q in self._queues.values():
            q.logged_in = 0
        ready: list[_Agent] = []
        for agent in self._agents.values():
            if agent.state == LOGGED_OUT:
                continue
            if agent.indexed:
                agent.indexed = False
                agent.epoch += 1
            before = [m.queue.id for m in agent.memberships]
            self._join_queues(agent)
            after = tuple(m.queue.id for m in agent.memberships)
            if list(after) != before:
                self.events.append(AgentQueuesChanged(now, agent.id, after))
            if agent.state == READY:
                ready.append(agent)
        # Longest-idle first, each keeping its idle time: a reconfiguration is not a new turn.
        ready.sort(key=lambda a: a.idle_since)
        for agent in ready:
            if not self._take_call(now, agent):
                self._index_ready(agent)

    # ------------------------------------------------------------------ clock
    def next_timer(self) -> float:
        """When ``on_timer`` must next be called (``inf`` if nothing is scheduled)."""
        return self._timers[0][0] if self._timers else float("inf")

    def on_timer(self, now: float) -> None:
        self._tick(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, kind, obj, token = heappop(timers)
            if kind == _T_WRAP:
                agent: _Agent = obj
                if agent.state == WRAP_UP and agent.wrap_token == token:
                    self._finish_wrap(now, agent)
            elif kind == _T_RONA:
                call: _Call = obj
                if call.state == _RINGING and call.offer_seq == token:
                    self._ring_timeout(now, call)
            elif kind == _T_MAX_WAIT:
                call = obj
                if call.visit == token and call.state == _WAITING and not call.callback:
                    self._exit_queue(now, call)
            else:
                call, step = obj
                if call.visit == token and call.state in (_WAITING, _RINGING):
                    self._relax(now, call, step)

    def _tick(self, now: float) -> None:
        if now < self._now:
            raise ACDError(f"time went backwards: {now} < {self._now}")
        self._now = now

    def _schedule(self, when: float, kind: int, obj: Any, token: int) -> None:
        self._timer_seq += 1
        heappush(self._timers, (when, self._timer_seq, kind, obj, token))

    # ------------------------------------------------------------------ agent inputs
    def login(
        self, now: float, agent_id: str, *, ready: bool = True, reason: str | None = None
    ) -> None:
        self._tick(now)
        agent = self._agent(agent_id)
        if agent.state != LOGGED_OUT:
            raise ACDError(f"agent {agent_id} is already logged in")
        self._join_queues(agent)
        state = READY if ready else NOT_READY
        agent.state, agent.reason, agent.since = state, None if ready else reason, now
        agent.pending = None
        self.events.append(
            AgentStateChanged(
                now,
                agent.id,
                state,
                LOGGED_OUT,
                agent.reason,
                tuple(m.queue.id for m in agent.memberships),
            )
        )
        if ready:
            self._agent_free(now, agent)

    def logout(self, now: float, agent_id: str, reason: str | None = None) -> None:
        """Log out now, or after the current call's wrap-up if the agent is on a call."""
        self._tick(now)
        agent = self._agent(agent_id)
        if agent.state == LOGGED_OUT:
            return
        if self._on_call(agent):
            agent.pending, agent.pending_reason = LOGGED_OUT, reason
            return
        if agent.state == RESERVED:
            self._withdraw_offer(now, agent)
        self._set_state(now, agent, LOGGED_OUT, reason)

    def set_ready(self, now: float, agent_id: str) -> None:
        """Ready (ends a manual wrap-up; on a call it cancels a pending not-ready)."""
        self._tick(now)
        agent = self._agent(agent_id)
        state = agent.state
        if state == LOGGED_OUT:
            raise ACDError(f"agent {agent_id} must log in first")
        if state == NOT_READY:
            self._set_state(now, agent, READY, None)
        elif state == WRAP_UP:
            agent.pending = None
            self._finish_wrap(now, agent)
        elif state in (BUSY, RESERVED):
            agent.pending = None

    def end_wrap_up(self, now: float, agent_id: str) -> None:
        """The agent finished after-call work (manual wrap-up); a not-ready or log-out asked
        for during the call applies now (``set_ready`` instead means "ready", overriding it)."""
        self._tick(now)
        agent = self._agent(agent_id)
        if agent.state == LOGGED_OUT:
            raise ACDError(f"agent {agent_id} must log in first")
        if agent.state == WRAP_UP:
            self._finish_wrap(now, agent)

    def set_not_ready(self, now: float, agent_id: str, reason: str | None = None) -> None:
        """Not ready now; on a call, from the end of its wrap-up; while ringing, the call
        goes back to the queue."""
        self._tick(now)
        agent = self._agent(agent_id)
        state = agent.state
        if state == LOGGED_OUT:
            raise ACDError(f"agent {agent_id} must log in first")
        if self._on_call(agent):
            agent.pending, agent.pending_reason = NOT_READY, reason
            return
        if state == RESERVED:
            self._withdraw_offer(now, agent)
        if state != NOT_READY or agent.reason != reason:
            self._set_state(now, agent, NOT_READY, reason)

    # ------------------------------------------------------------------ call inputs
    def call_arrived(
        self,
        now: float,
        call_id: str,
        queue_id: str,
        *,
        priority: int | None = None,
        data: dict[str, Any] | None = None,
        number: str | None = None,
        agent: str | None = None,
    ) -> None:
        """A call asks for a queue. With ``agent`` it rings that agent only (a transfer to a
        person); it is rejected if the agent is not ready, and queues normally after a RONA."""
        self._tick(now)
        if call_id in self._calls:
            raise ACDError(f"call {call_id} already exists")
        q = self._queues.get(queue_id)
        if q is None:
            raise ACDError(f"unknown queue {queue_id!r}")
        target = None if agent is None else self._agent(agent)
        prio = q.cfg.priority if priority is None else priority
        call = _Call(call_id, q, prio, now, data, number)
        self.events.append(CallArrived(now, call_id, queue_id, prio, number, data))
        if target is not None and target.state != READY:
            self.events.append(CallRejected(now, call_id, queue_id, "agent_unavailable"))
            self.commands.append(Reject(call_id, queue_id, "agent_unavailable"))
            return
        if self._admit(now, call, q):
            self._calls[call_id] = call
            self._enter_queue(now, call, q, None, target)

    def move_call(
        self, now: float, call_id: str, queue_id: str, priority: int | None = None
    ) -> None:
        """A supervisor moves a waiting call to another queue (or changes its priority); it
        keeps its arrival time, so its place is that of its original arrival."""
        self._tick(now)
        call = self._call(call_id)
        if call.state != _WAITING or call.callback:
            raise ACDError(f"call {call_id} is not waiting in a queue")
        target = self._queue(queue_id)
        src = call.queue
        self._leave_waiting(now, call)
        if priority is not None:
            call.priority = priority
        if target is not src:
            self.events.append(
                CallOverflowed(now, call.id, src.id, target.id, now - call.arrival)
            )
        self._enter_queue(now, call, target, src.id)

    def answer(self, now: float, call_id: str, agent_id: str) -> None:
        self._tick(now)
        call = self._call(call_id)
        agent = self._agent(agent_id)
        if call.state != _RINGING or agent not in call.offered_to:
            raise ACDError(f"call {call_id} is not ringing at agent {agent_id}")
        for other in call.offered_to:
            if other is not agent:
                self._cancel_offer(now, call, other, "answered_elsewhere")
                self._set_state(now, other, READY, None)
        self._connect(now, call, agent)

    def offer_failed(self, now: float, call_id: str, agent_id: str, reason: str) -> None:
        """The agent's phone could not ring (busy, unregistered, unreachable). Like a RONA,
        the agent is made not ready with ``reason`` so the next call does not try it again,
        and the call goes on to the next agent, keeping its place."""
        self._tick(now)
        call = self._call(call_id)
        agent = self._agent(agent_id)
        if call.state != _RINGING or agent not in call.offered_to:
            raise ACDError(f"call {call_id} is not ringing at agent {agent_id}")
        call.offered_to = [a for a in call.offered_to if a is not agent]
        self._cancel_offer(now, call, agent, reason)
        self._set_state(now, agent, NOT_READY, reason)
        if not call.offered_to:
            self._requeue(now, call)

    def abandon(self, now: float, call_id: str) -> None:
        """The caller hung up (or, for a queued callback, no longer wants one)."""
        self._tick(now)
        call = self._call(call_id)
        state = call.state
        if state == _CONNECTED:
            self.hangup(now, call_id)
            return
        if state == _DIALING:
            raise ACDError(f"call {call_id} is being dialled: report how the dialling failed")
        if state == _ENDED:
            raise ACDError(f"call {call_id} has already ended")
        q = call.queue
        ringing = state == _RINGING
        if ringing:
            agents = call.offered_to
            call.offered_to = []
            for agent in agents:
                self._cancel_offer(now, call, agent, "caller_left")
                self._set_state(now, agent, READY, None)
        else:
            self._leave_waiting(now, call)
        call.state = _ENDED
        del self._calls[call_id]
        self.events.append(CallAbandoned(now, call_id, q.id, now - call.arrival, ringing))

    def hangup(self, now: float, call_id: str) -> None:
        """The conversation ended (either side hung up); the agent goes to wrap-up."""
        self._tick(now)
        call = self._call(call_id)
        if call.state in (_WAITING, _RINGING):
            self.abandon(now, call_id)
            return
        if call.state == _DIALING:
            if call.outbound:
                self.outbound_failed(now, call_id, "cancelled")
            else:
                self.callback_failed(now, call_id)
            return
        if call.state != _CONNECTED:
            raise ACDError(f"call {call_id} has already ended")
        if call.consult is not None or call.consult_number is not None:
            self._end_consult(now, call, "caller_left")
        agent = call.offered_to[0]
        if call.held_since >= 0:
            call.hold += now - call.held_since
            call.held_since = -1.0
        talk = now - call.answered_at - call.hold
        call.state = _ENDED
        call.ended_at = now
        q = call.queue
        if call.outbound:
            self.events.append(OutboundEnded(now, call_id, q.id, agent.id, talk, call.hold))
        else:
            agent.talk_time += talk
            self.events.append(CallEnded(now, call_id, q.id, agent.id, talk, call.hold))
        wrap = agent.cfg.wrap_up if agent.cfg.wrap_up is not None else q.cfg.wrap_up
        auto = agent.cfg.auto_ready if agent.cfg.auto_ready is not None else q.cfg.auto_ready
        if wrap > 0 or not auto:
            self._set_state(now, agent, WRAP_UP, None)
            if auto:
                agent.wrap_token += 1
                self._schedule(now + wrap, _T_WRAP, agent, agent.wrap_token)
        else:
            self._finish_wrap(now, agent)

    def hold(self, now: float, call_id: str) -> None:
        self._tick(now)
        call = self._connected(call_id)
        if call.held_since < 0:
            call.held_since = now
            self.events.append(CallHeld(now, call_id, call.offered_to[0].id))

    def unhold(self, now: float, call_id: str) -> None:
        self._tick(now)
        call = self._connected(call_id)
        if call.held_since >= 0:
            call.hold += now - call.held_since
            call.held_since = -1.0
            self.events.append(CallResumed(now, call_id, call.offered_to[0].id))

    def request_callback(self, now: float, call_id: str, number: str | None = None) -> None:
        """The caller leaves the queue but keeps their place; they are called back in turn."""
        self._tick(now)
        call = self._call(call_id)
        if call.state != _WAITING or call.callback:
            raise ACDError(f"call {call_id} is not waiting in a queue")
        self._to_callback(now, call, "caller", number)

    def callback_answered(self, now: float, call_id: str) -> None:
        self._tick(now)
        call = self._call(call_id)
        if call.state != _DIALING or call.outbound:
            raise ACDError(f"call {call_id} is not being called back")
        self._connect(now, call, call.offered_to[0])

    def callback_failed(self, now: float, call_id: str) -> None:
        self._tick(now)
        call = self._call(call_id)
        if call.state != _DIALING or call.outbound:
            raise ACDError(f"call {call_id} is not being called back")
        agent = call.offered_to[0]
        call.offered_to = []
        agent.call = None
        call.state = _ENDED
        del self._calls[call_id]
        self.events.append(
            CallbackFailed(now, call_id, call.queue.id, agent.id, now - call.arrival)
        )
        self._after_call(now, agent)

    def dial(self, now: float, call_id: str, agent_id: str, number: str,
             queue_id: str | None = None, data: dict[str, Any] | None = None) -> None:
        """The agent calls a customer (click-to-call). A ready or not-ready agent is made busy
        (reason ``outbound``) so no inbound call is offered meanwhile; afterwards the agent
        wraps up as the queue says and returns to the state it called from. The call is made
        for ``queue_id`` (default: the agent's first queue) but never enters it."""
        self._tick(now)
        if call_id in self._calls:
            raise ACDError(f"call {call_id} already exists")
        agent = self._agent(agent_id)
        if agent.state != READY and agent.state != NOT_READY:
            raise ACDError(f"agent {agent_id} is {agent.state}: calls out only when ready "
                           "or not ready")
        if queue_id is None:
            if not agent.memberships:
                raise ACDError(f"agent {agent_id} serves no queue: name the queue to call for")
            q = agent.memberships[0].queue
        else:
            q = self._queue(queue_id)
        call = _Call(call_id, q, q.cfg.priority, now, data, number)
        call.outbound = True
        call.state = _DIALING
        call.offered_to = [agent]
        self._calls[call_id] = call
        if agent.state == NOT_READY:
            agent.pending, agent.pending_reason = NOT_READY, agent.reason
        else:
            agent.pending = None
        agent.call = call
        self.events.append(OutboundDialed(now, call_id, q.id, agent.id, number))
        self._set_state(now, agent, BUSY, "outbound")

    def outbound_answered(self, now: float, call_id: str) -> None:
        self._tick(now)
        call = self._call(call_id)
        if call.state != _DIALING or not call.outbound:
            raise ACDError(f"call {call_id} is not an outbound call being dialled")
        call.state = _CONNECTED
        call.answered_at = now
        agent = call.offered_to[0]
        self.events.append(
            OutboundAnswered(now, call_id, call.queue.id, agent.id, now - call.arrival)
        )

    def outbound_failed(self, now: float, call_id: str, reason: str) -> None:
        """The customer was not reached; the agent returns at once to the state it called
        from (no wrap-up: there was no conversation)."""
        self._tick(now)
        call = self._call(call_id)
        if call.state != _DIALING or not call.outbound:
            raise ACDError(f"call {call_id} is not an outbound call being dialled")
        agent = call.offered_to[0]
        call.offered_to = []
        call.state = _ENDED
        agent.call = None
        del self._calls[call_id]
        self.events.append(
            OutboundFailed(now, call_id, call.queue.id, agent.id, reason, now - call.arrival)
        )
        self._after_call(now, agent)

    def consult(self, now: float, call_id: str, agent_id: str | None = None,
                number: str | None = None) -> None:
        """The agent on ``call_id`` consults a ready colleague (made busy, reason ``consult``,
        so nothing else is offered meanwhile) or an outside number; the caller holds."""
        self._tick(now)
        call = self._connected(call_id)
        if call.outbound:
            raise ACDError(f"call {call_id} is a call out: transfer it instead")
        if call.consult is not None or call.consult_number is not None:
            raise ACDError(f"call {call_id} is already in a consultation")
        if (agent_id is None) == (number is None):
            raise ACDError("consult an agent or a number")
        agent = call.offered_to[0]
        target = None
        if agent_id is not None:
            target = self._agent(agent_id)
            if target is agent:
                raise ACDError("an agent does not consult itself")
            if target.state != READY:
                raise ACDError(f"agent {agent_id} is {target.state}, not ready")
        self.events.append(ConsultStarted(now, call_id, call.queue.id, agent.id,
                                          agent_id, number))
        if call.held_since < 0:
            call.held_since = now
            self.events.append(CallHeld(now, call_id, agent.id))
        call.consult, call.consult_number = target, number
        if target is not None:
            target.pending = None
            self._set_state(now, target, BUSY, "consult")

    def consult_end(self, now: float, call_id: str, how: str) -> None:
        """The consultation ended without a transfer (``how``: cancelled, failed, left): the
        colleague is free again and the agent has the caller back, off hold."""
        self._tick(now)
        call = self._connected(call_id)
        if call.consult is None and call.consult_number is None:
            raise ACDError(f"call {call_id} is not in a consultation")
        self._end_consult(now, call, how)
        self.unhold(now, call_id)

    def consult_transfer(self, now: float, call_id: str, new_id: str) -> None:
        """Complete an attended transfer to the one consulted: the agent's segment ends
        (wrap-up). A colleague takes the caller as ``new_id``, connected at once: that segment
        is never offered to a queue (the caller was counted once, when first offered); it is
        the colleague's answered call. An outside number takes the caller out of the ACD."""
        self._tick(now)
        call = self._connected(call_id)
        target, number = call.consult, call.consult_number
        agent = call.offered_to[0]
        q = call.queue
        if target is None:
            if number is None:
                raise ACDError(f"call {call_id} is not in a consultation")
            self.events.append(CallTransferredOut(now, call_id, q.id, agent.id, number))
            self.events.append(ConsultEnded(now, call_id, q.id, agent.id, None, number,
                                            "transferred"))
            call.consult_number = None
            self.hangup(now, call_id)
            return
        if new_id in self._calls:
            raise ACDError(f"call {new_id} already exists")
        self.events.append(CallTransferred(now, call_id, agent.id, new_id, q.id, target.id))
        self.events.append(ConsultEnded(now, call_id, q.id, agent.id, target.id, None,
                                        "transferred"))
        call.consult = None
        self.hangup(now, call_id)
        nxt = _Call(new_id, q, call.priority, now, call.data, call.number)
        self._calls[new_id] = nxt
        self.events.append(CallArrived(now, new_id, q.id, nxt.priority, nxt.number, nxt.data))
        nxt.offered_to = [target]
        self._connect(now, nxt, target)

    def _end_consult(self, now: float, call: _Call, how: str) -> None:
        target, number = call.consult, call.consult_number
        call.consult = call.consult_number = None
        agent = call.offered_to[0]
        self.events.append(ConsultEnded(now, call.id, call.queue.id, agent.id,
                                        None if target is None else target.id, number, how))
        if target is not None and target.state == BUSY and target.call is None:
            self._after_call(now, target)

    # ------------------------------------------------------------------ queries
    def agent_state(self, agent_id: str) -> tuple[str, str | None]:
        agent = self._agent(agent_id)
        return agent.state, agent.reason

    def agent_pending(self, agent_id: str) -> str | None:
        """The state asked for during a call, entered when it ends (None: none asked)."""
        return self._agent(agent_id).pending

    def is_ringing(self, call_id: str, agent_id: str) -> bool:
        call = self._calls.get(call_id)
        if call is None or call.state != _RINGING:
            return False
        for agent in call.offered_to:
            if agent.id == agent_id:
                return True
        return False

    def agent_call(self, agent_id: str) -> str | None:
        """The call the agent is reserved for, talking on or wrapping up."""
        call = self._agent(agent_id).call
        return None if call is None else call.id

    def call_info(self, call_id: str) -> dict[str, Any] | None:
        call = self._calls.get(call_id)
        if call is None:
            return None
        return {
            "call": call.id,
            "queue": call.queue.id,
            "state": _CALL_STATE_NAMES[call.state],
            "agents": [a.id for a in call.offered_to],
            "arrival": call.arrival,
            "priority": call.priority,
            "number": call.number,
            "data": call.data,
            "held": call.held_since >= 0,
            "direction": "outbound" if call.outbound else "inbound",
            "consult": call.consult.id if call.consult is not None else call.consult_number,
        }

    def calls(self) -> list[dict[str, Any]]:
        """Every call the engine holds (waiting, ringing, connected or in wrap-up)."""
        return [info for c in list(self._calls) if (info := self.call_info(c)) is not None]

    def waiting_calls(self, queue_id: str) -> list[str]:
        """Calls waiting in the queue, next to be served first."""
        q = self._queue(queue_id)
        entries: list[_Call] = []
        for heap in q.waiting:
            entries.extend(heap.live())  # type: ignore[arg-type]
        entries.sort(key=lambda c: (-c.priority, c.arrival))
        return [c.id for c in entries]

    def call_position(self, call_id: str) -> int | None:
        """The waiting call's place in its queue (1 = next), as an announcement tells it; None
        when it is not waiting. Counts the calls that would be served before it: O(queue)."""
        call = self._calls.get(call_id)
        if call is None or call.state != _WAITING:
            return None
        ahead = 0
        prio, arrival = call.priority, call.arrival
        for heap in call.queue.waiting:
            for other in heap.live():
                c: _Call = other  # type: ignore[assignment]
                if c.priority > prio or (c.priority == prio and c.arrival < arrival):
                    ahead += 1
        return ahead + 1

    def queue_ids(self) -> list[str]:
        return list(self._queues)

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def queue_length(self, queue_id: str) -> int:
        return self._queue(queue_id).waiting_count

    def agent_queues(self, agent_id: str) -> list[str]:
        return [m.queue.id for m in self._agent(agent_id).memberships]

    def expected_wait(self, queue_id: str, position: int) -> float:
        """Expected wait (s) for the caller at ``position`` (1 = next to be served).

        Positions move when a call ahead leaves the queue (answered, abandoned or overflowed),
        so the estimate is position x the smoothed time between such departures while the
        queue was not empty; before any were seen, handle time shared by the logged-in agents.
        """
        q = self._queue(queue_id)
        return self._ewt(q, position)

    # ------------------------------------------------------------------ internals: lookup
    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ACDError(f"unknown agent {agent_id!r}")
        return agent

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise ACDError(f"unknown call {call_id!r}")
        return call

    def _queue(self, queue_id: str) -> _Queue:
        q = self._queues.get(queue_id)
        if q is None:
            raise ACDError(f"unknown queue {queue_id!r}")
        return q

    def _connected(self, call_id: str) -> _Call:
        call = self._call(call_id)
        if call.state != _CONNECTED:
            raise ACDError(f"call {call_id} is not connected")
        return call

    # ------------------------------------------------------------------ internals: agents
    def _join_queues(self, agent: _Agent) -> None:
        skills = agent.cfg.skills
        seen: dict[str, _Queue] = {q.id: q for q in self._open_queues}
        for skill in skills:
            for q in self._by_skill.get(skill, ()):
                seen[q.id] = q
        agent.memberships = []
        agent.slots = []
        for q in sorted(seen.values(), key=lambda q: q.order):
            tier = q.cfg.eligible_tier(skills)
            if tier < 0:
                continue
            prof = sum(skills.get(s, 0) for s in q.cfg.skills)
            m = _Membership(q, tier, prof)
            agent.memberships.append(m)
            q.logged_in += 1
            for t in range(tier, q.ntiers):
                agent.slots.append((q.ready[t], m))

    def _set_state(self, now: float, agent: _Agent, state: str, reason: str | None) -> None:
        prev = agent.state
        if agent.indexed:
            agent.indexed = False
            agent.epoch += 1
            for index, _ in agent.slots:
                index.discard(agent)
        agent.state, agent.reason, agent.since = state, reason, now
        self.events.append(AgentStateChanged(now, agent.id, state, prev, reason))
        if state == READY:
            self._agent_free(now, agent)
        elif state == LOGGED_OUT:
            for m in agent.memberships:
                m.queue.logged_in -= 1
            agent.memberships = []
            agent.slots = []

    def _agent_free(self, now: float, agent: _Agent) -> None:
        """A ready agent takes the best waiting call of all its queues, or waits in their
        ready indexes."""
        if not self._take_call(now, agent):
            agent.idle_since = now
            self._index_ready(agent)

    def _take_call(self, now: float, agent: _Agent) -> bool:
        """Offer the agent the best waiting call: highest priority, then longest wait x
        queue weight."""
        best: _Call | None = None
        best_prio = 0
        best_wait = 0.0
        for m in agent.memberships:
            q = m.queue
            if q.waiting_count == 0:
                continue
            weight = q.weight
            for t in range(m.tier, q.ntiers):
                call = q.waiting[t].peek()
                if call is None:
                    continue
                prio = call.priority  # type: ignore[attr-defined]
                wait = (now - call.arrival) * weight  # type: ignore[attr-defined]
                if best is None or prio > best_prio or (prio == best_prio and wait > best_wait):
                    best, best_prio, best_wait = call, prio, wait  # type: ignore[assignment]
        if best is None:
            return False
        self._leave_waiting(now, best)
        self._offer(now, best, [agent])
        return True

    def _index_ready(self, agent: _Agent) -> None:
        idle = agent.idle_since
        agent.indexed = True
        for index, m in agent.slots:
            s = m.queue.strategy
            if s == _LONGEST_IDLE or s == _RING_ALL:
                index.push(idle, 0.0, agent)
            elif s == _LEAST_CALLS:
                index.push(agent.answered, idle, agent)
            elif s == _LEAST_TALK:
                index.push(agent.talk_time, idle, agent)
            elif s == _ROUND_ROBIN:
                index.push(m.rr_last, agent.rank, agent)
            elif s == _TOP_DOWN:
                index.push(agent.rank, 0.0, agent)
            elif s == _BEST_SKILL:
                index.push(-m.proficiency, idle, agent)
            else:
                index.push(0.0, 0.0, agent)

    @staticmethod
    def _on_call(agent: _Agent) -> bool:
        """Busy, wrapping up, or reserved for a callback being dialled: state changes wait."""
        state = agent.state
        if state == BUSY or state == WRAP_UP:
            return True
        return state == RESERVED and agent.call is not None and agent.call.state == _DIALING

    def _withdraw_offer(self, now: float, agent: _Agent) -> None:
        """A ringing agent became unavailable: the call rings the others or goes back."""
        call = agent.call
        assert call is not None
        call.offered_to.remove(agent)
        self._cancel_offer(now, call, agent, "agent_unavailable")
        if not call.offered_to:
            self._requeue(now, call)

    def _finish_wrap(self, now: float, agent: _Agent) -> None:
        call = agent.call
        if call is not None:
            agent.call = None
            q = call.queue
            if not call.outbound:  # the queue's handle time estimates its callers' wait
                handle = now - call.answered_at
                q.aht = handle if q.aht < 0 else q.aht + _EWT_ALPHA * (handle - q.aht)
            self.events.append(WrapUpEnded(now, call.id, q.id, agent.id, now - call.ended_at))
            del self._calls[call.id]
        self._after_call(now, agent)

    def _after_call(self, now: float, agent: _Agent) -> None:
        pending = agent.pending
        agent.pending = None
        if pending is None:
            self._set_state(now, agent, READY, None)
        else:
            self._set_state(now, agent, pending, agent.pending_reason)

    # ------------------------------------------------------------------ internals: calls
    def _admit(self, now: float, call: _Call, q: _Queue) -> bool:
        reason = None
        if q.cfg.when_empty == "reject" and q.logged_in == 0:
            reason = "no_agents"
        elif q.cfg.max_length and q.waiting_count >= q.cfg.max_length:
            reason = "queue_full"
        if reason is None:
            return True
        self.events.append(CallRejected(now, call.id, q.id, reason))
        self.commands.append(Reject(call.id, q.id, reason))
        return False

    def _enter_queue(
        self,
        now: float,
        call: _Call,
        q: _Queue,
        overflow_from: str | None,
        target: _Agent | None = None,
    ) -> None:
        call.queue = q
        call.entered = now
        call.tier = 0
        call.visit += 1
        agents = self._pick_agents(call) if target is None else [target]
        if agents:
            position, ewt = 1, 0.0
        elif overflow_from is None:
            # Everyone of the same or higher priority already waiting is ahead of a new caller.
            position = 1
            for prio, count in q.by_priority.items():
                if prio >= call.priority:
                    position += count
            ewt = self._ewt(q, position)
        else:
            # An overflowed caller keeps their arrival time and may go ahead of others: count.
            position = 1 + sum(
                heap.count_before(-call.priority, call.arrival) for heap in q.waiting
            )
            ewt = self._ewt(q, position)
        self.events.append(
            CallQueued(now, call.id, q.id, call.priority, position, ewt, overflow_from)
        )
        cfg = q.cfg
        if cfg.announce:
            self.commands.append(Announce(call.id, position, ewt))
        if cfg.max_wait is not None:
            self._schedule(now + cfg.max_wait, _T_MAX_WAIT, call, call.visit)
        if cfg.relax:
            self._schedule(now + cfg.relax[0].after, _T_RELAX, (call, 1), call.visit)
        if agents:
            self._offer(now, call, agents)
        else:
            self._enqueue(now, call)

    def _pick_agents(self, call: _Call) -> list[_Agent]:
        q = call.queue
        index = q.ready[call.tier]
        if q.strategy == _RING_ALL and not call.callback:
            return index.live()  # type: ignore[return-value]
        agent = index.peek()
        return [] if agent is None else [agent]  # type: ignore[list-item]

    def _enqueue(self, now: float, call: _Call) -> None:
        q = call.queue
        call.state = _WAITING
        q.waiting[call.tier].push(-call.priority, call.arrival, call)
        if q.waiting_count == 0:
            q.busy_since = now
        q.waiting_count += 1
        q.by_priority[call.priority] = q.by_priority.get(call.priority, 0) + 1

    def _leave_waiting(self, now: float, call: _Call) -> None:
        q = call.queue
        call.epoch += 1
        q.waiting[call.tier].discard(call)
        start = q.last_departure if q.last_departure > q.busy_since else q.busy_since
        gap = now - start
        q.tau = gap if q.tau < 0 else q.tau + _EWT_ALPHA * (gap - q.tau)
        q.last_departure = now
        q.waiting_count -= 1
        q.by_priority[call.priority] -= 1

    def _ewt(self, q: _Queue, position: int) -> float:
        if q.tau >= 0:
            return position * q.tau
        if q.aht >= 0 and q.logged_in:
            return position * q.aht / q.logged_in
        return 0.0

    def _offer(self, now: float, call: _Call, agents: list[_Agent]) -> None:
        q = call.queue
        call.offered_to = agents
        call.offer_seq += 1
        for agent in agents:
            agent.call = call
            if q.strategy == _ROUND_ROBIN:
                q.rr_counter += 1
                for m in agent.memberships:
                    if m.queue is q:
                        m.rr_last = q.rr_counter
            self._set_state(now, agent, RESERVED, None)
            self.events.append(CallOffered(now, call.id, q.id, agent.id))
        if call.callback:
            call.state = _DIALING
            agent = agents[0]
            self.commands.append(DialCallback(call.id, agent.id, q.id, call.number))
            return
        call.state = _RINGING
        for agent in agents:
            self.commands.append(Offer(call.id, agent.id, q.id, call.data))
        if q.cfg.ring_timeout is not None:
            self._schedule(now + q.cfg.ring_timeout, _T_RONA, call, call.offer_seq)

    def _cancel_offer(self, now: float, call: _Call, agent: _Agent, reason: str) -> None:
        agent.call = None
        qid = call.queue.id
        self.commands.append(CancelOffer(call.id, agent.id, reason))
        self.events.append(OfferCancelled(now, call.id, qid, agent.id, reason))

    def _connect(self, now: float, call: _Call, agent: _Agent) -> None:
        call.state = _CONNECTED
        call.offered_to = [agent]
        call.answered_at = now
        agent.call = call
        agent.answered += 1
        self.events.append(CallAnswered(now, call.id, call.queue.id, agent.id, now - call.arrival))
        self._set_state(now, agent, BUSY, None)

    def _ring_timeout(self, now: float, call: _Call) -> None:
        agents = call.offered_to
        call.offered_to = []
        if call.queue.strategy == _RING_ALL:
            for agent in agents:
                self._cancel_offer(now, call, agent, "ring_timeout")
                self._set_state(now, agent, READY, None)
        else:
            for agent in agents:
                self._cancel_offer(now, call, agent, "no_answer")
                self._set_state(now, agent, NOT_READY, RONA_REASON)
        self._requeue(now, call)

    def _requeue(self, now: float, call: _Call) -> None:
        """Back in the queue after an offer failed: the call keeps its arrival time, so it
        goes back ahead of everyone who arrived after it."""
        call.state = _WAITING
        cfg = call.queue.cfg
        if cfg.max_wait is not None and now >= call.entered + cfg.max_wait:
            self._enqueue(now, call)
            self._exit_queue(now, call)
            return
        agents = self._pick_agents(call)
        if agents:
            self._offer(now, call, agents)
        else:
            self._enqueue(now, call)

    def _relax(self, now: float, call: _Call, step: int) -> None:
        q = call.queue
        if step < len(q.cfg.relax):
            self._schedule(
                call.entered + q.cfg.relax[step].after, _T_RELAX, (call, step + 1), call.visit
            )
        old = call.tier
        call.tier = step
        if call.state == _RINGING:
            return
        agents = self._pick_agents(call)
        call.tier = old
        if agents:
            self._leave_waiting(now, call)
            call.tier = step
            self._offer(now, call, agents)
        else:
            call.epoch += 1
            q.waiting[old].discard(call)
            call.tier = step
            q.waiting[step].push(-call.priority, call.arrival, call)

    def _exit_queue(self, now: float, call: _Call) -> None:
        q = call.queue
        ex = q.cfg.exit
        assert ex is not None
        if ex.action == "callback":
            self._to_callback(now, call, "max_wait", call.number)
            return
        assert ex.target is not None
        target = self._queues[ex.target]
        self._leave_waiting(now, call)
        self.events.append(CallOverflowed(now, call.id, q.id, target.id, now - call.arrival))
        if self._admit(now, call, target):
            self._enter_queue(now, call, target, q.id)
        else:
            call.state = _ENDED
            del self._calls[call.id]

    def _to_callback(self, now: float, call: _Call, reason: str, number: str | None) -> None:
        call.callback = True
        call.number = number
        self.events.append(CallbackRequested(now, call.id, call.queue.id, reason))
        self.commands.append(ExitToCallback(call.id, call.queue.id))
