"""The live contact center: every tenant's ACD on the real clock, fed by API calls and drivers.

One asyncio task owns all engines. Requests are queued to it as small functions; it applies a
batch of them, stores the events they produced in one transaction (group commit, on a writer
thread so the loop keeps serving), and only then completes the requests and publishes the
events. So a request is acknowledged, and an event seen by anyone, only once it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hotline.acd.commands import Command
from hotline.acd.config import AgentConfig, QueueConfig
from hotline.acd.engine import ACD, LOGGED_OUT, NOT_READY, READY, ACDError
from hotline.cms.metrics import Metrics, Realtime, ServiceLevelConfig
from hotline.events.store import EventStore
from hotline.events.types import (
    AgentStateChanged,
    CallAnswered,
    CallClosed,
    CallOffered,
    CallTransferred,
    CallTransferredOut,
    Event,
    WrapUpEnded,
)
from hotline.wfm.adherence import DEFAULT_RULES, AdherenceRules

log = logging.getLogger("hotline.live")
T = TypeVar("T")
RESTART_REASON = "server_restart"
_BATCH = 1000


class CenterUnavailable(RuntimeError):
    """The live center is stopping or lost its event store: nothing more can be acknowledged."""


class WallClock:
    """Unix time that never goes backwards: wall time at start plus monotonic progress."""

    def __init__(self) -> None:
        self._wall = time.time()
        self._mono = time.monotonic()

    def __call__(self) -> float:
        return self._wall + (time.monotonic() - self._mono)


@dataclass
class TenantSetup:
    """What a tenant's engine is built from (loaded from the database)."""

    id: int
    slug: str
    queues: list[QueueConfig]
    agents: list[AgentConfig]
    teams: dict[str, str | None] = field(default_factory=dict)  # agent -> team
    service_levels: dict[str, ServiceLevelConfig] = field(default_factory=dict)
    reasons: set[str] = field(default_factory=set)
    dispositions: set[str] = field(default_factory=set)
    restore_agents: str = "last_state"  # or "logged_out"
    timezone: str | None = None
    adherence: AdherenceRules = DEFAULT_RULES


class Tenant:
    """One tenant's running center."""

    def __init__(self, setup: TenantSetup, now: float) -> None:
        self.id = setup.id
        self.slug = setup.slug
        self.acd = ACD(setup.queues, setup.agents, seed=setup.id)
        self.teams = dict(setup.teams)
        self.service_levels = dict(setup.service_levels)
        self.reasons = set(setup.reasons)
        self.dispositions = set(setup.dispositions)
        self.restore_agents = setup.restore_agents
        self.tz = ZoneInfo(setup.timezone) if setup.timezone else None
        self.adherence = setup.adherence
        self.realtime = Realtime()
        self.last_call: dict[str, str] = {}  # agent -> the call it answered last
        self.day_start = 0.0
        self.day_end = 0.0
        self.today = self._new_day(now)

    def _new_day(self, now: float) -> Metrics:
        local = datetime.fromtimestamp(now, self.tz) if self.tz else datetime.fromtimestamp(now)
        if local.tzinfo is None:
            local = local.astimezone()
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        self.day_start = midnight.timestamp()
        self.day_end = (midnight + timedelta(days=1)).timestamp()
        return Metrics(
            ServiceLevelConfig(),
            self.service_levels,
            interval=self.day_end - self.day_start,
            origin=self.day_start,
        )

    def record(self, e: Event, now: float | None = None) -> None:
        """Store an event the engine did not make (a phone registered, a recording saved)
        with the engine's own, in order; ``now`` restamps it with the center's clock, which
        must not go backwards in the record."""
        if now is not None:
            e.t = now
        self.acd.events.append(e)

    def transfer(self, now: float, call_id: str, new_id: str, queue: str,
                 agent: str | None = None) -> None:
        """Blind transfer of a connected call: its segment ends (the agent goes to wrap-up)
        and the caller arrives again as ``new_id`` at ``queue``, or for ``agent`` alone, with
        the same number, data and priority. Raises ACDError when it cannot."""
        acd = self.acd
        current = self._transferable(call_id)
        if queue not in acd.queue_ids():
            raise ACDError(f"unknown queue {queue!r}")
        if agent is not None:
            if not acd.has_agent(agent):
                raise ACDError(f"unknown agent {agent!r}")
            if acd.agent_state(agent)[0] != READY:
                raise ACDError(f"agent {agent} is not ready")
        acd.events.append(CallTransferred(now, call_id, current["agents"][0], new_id, queue,
                                          agent))
        acd.hangup(now, call_id)
        acd.call_arrived(now, new_id, queue, priority=current["priority"],
                         data=current["data"], number=current["number"], agent=agent)

    def transfer_out(self, now: float, call_id: str, number: str) -> None:
        """Blind transfer of a connected call to an outside number: the agent's segment ends
        (wrap-up follows) and the caller leaves the ACD. Raises ACDError when it cannot."""
        acd = self.acd
        current = self._transferable(call_id)
        acd.events.append(CallTransferredOut(now, call_id, current["queue"],
                                             current["agents"][0], number))
        acd.hangup(now, call_id)

    def _transferable(self, call_id: str) -> dict[str, Any]:
        current = self.acd.call_info(call_id)
        if current is None or current["state"] != "connected":
            raise ACDError(f"call {call_id} is not connected")
        if current["consult"] is not None:
            raise ACDError(f"call {call_id} is in a consultation: complete or cancel it")
        return current

    def observe(self, e: Event) -> None:
        """Fold an event into the live views (realtime board, today's KPIs)."""
        if e.t >= self.day_end:
            self.today = self._new_day(e.t)
        self.realtime.feed(e)
        self.today.feed(e)
        if type(e) is CallAnswered:
            self.last_call[e.agent] = e.call  # type: ignore[attr-defined]

    def stats(self, now: float, *, agents: bool = True) -> dict[str, Any]:
        snap = self.realtime.snapshot(now, agents=agents)
        today = self.today.queues()
        for qid in self.acd.queue_ids():
            q = snap["queues"].setdefault(qid, {"waiting": 0, "longest_wait": 0.0, "agents": {}})
            kpis = today.get(qid, {})
            q["service_level_today"] = kpis.get("service_level")
            q["offered_today"] = kpis.get("offered", 0)
            q["answered_today"] = kpis.get("answered", 0)
            q["abandoned_today"] = kpis.get("abandoned", 0)
            q["asa_today"] = kpis.get("asa")
        for agent, row in snap["agents"].items():
            row["team"] = self.teams.get(agent)
        return snap


def close_calls(open_calls: list[dict[str, Any]], t: float, cause: str) -> list[Event]:
    """End the calls a stop found open. A call whose conversation had ended was in wrap-up:
    it was answered, and only its after-call work is cut short; any other is closed."""
    out: list[Event] = []
    for call in open_calls:
        ended = call.get("ended_at")
        if ended is not None and call["agent"] is not None:
            wrap = max(0.0, t - ended)
            out.append(WrapUpEnded(t, call["call"], call["queue"], call["agent"], wrap))
        else:
            out.append(CallClosed(t, call["call"], call["queue"], cause, call["agent"]))
    return out


Listener = Callable[[Tenant, list[Event], list[Command]], None]
Publisher = Callable[[Tenant, list[tuple[int, Event, dict[str, Any] | None]]], None]


@dataclass
class _Request:
    tenant: int
    op: Callable[[Tenant, float], Any]
    future: asyncio.Future[Any]


class LiveCenter:
    def __init__(self, store: EventStore, clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.clock = clock or WallClock()
        self.tenants: dict[int, Tenant] = {}
        self.listeners: list[Listener] = []  # drivers reacting to commands (simulated parties)
        self.publishers: list[Publisher] = []  # the CTI event stream
        self._inbox: asyncio.Queue[_Request] | None = None
        self._task: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-store")
        self.stored_events = 0
        self.failure: CenterUnavailable | None = None

    # ------------------------------------------------------------------ set-up
    def add_tenant(self, setup: TenantSetup) -> Tenant:
        """Start a tenant's engine, closing what a previous run left open (before serving).

        Calls found in progress are closed with cause ``server_restart``; agents found logged
        in are logged out at the last recorded instant (the server was down after it), then
        logged back in now in their last state (or left out, if the tenant says so)."""
        now = self.clock()
        tenant = Tenant(setup, now)
        for e in self.store.read(tenant.id, start=tenant.day_start):
            tenant.today.feed(e)
            if type(e) is CallAnswered:
                tenant.last_call[e.agent] = e.call  # type: ignore[attr-defined]
        last_t = self.store.last_time(tenant.id)
        crash_t = min(now, last_t) if last_t is not None else now
        recovered: list[Event] = close_calls(self.store.open_calls(tenant.id), crash_t,
                                             RESTART_REASON)
        acd = tenant.acd
        relogin: list[tuple[str, str, str | None]] = []
        for agent, (state, reason, _since) in sorted(self.store.presence(tenant.id).items()):
            if state == LOGGED_OUT:
                continue
            recovered.append(AgentStateChanged(crash_t, agent, LOGGED_OUT, state, RESTART_REASON))
            if tenant.restore_agents == "last_state" and acd.has_agent(agent):
                relogin.append((agent, state, reason))
        for agent, state, reason in relogin:
            if state == READY:
                acd.login(now, agent, ready=True)
            elif state == NOT_READY:
                acd.login(now, agent, ready=False, reason=reason)
            else:  # was on a call: back, but not offered one before they say they are ready
                acd.login(now, agent, ready=False, reason=RESTART_REASON)
        recovered.extend(acd.events)
        acd.events.clear()
        acd.commands.clear()
        if recovered:
            self.store.append([(tenant.id, recovered)])
            self.stored_events += len(recovered)
        for e in recovered:
            tenant.observe(e)
        self.tenants[tenant.id] = tenant
        if recovered:
            log.info("tenant %s: recovered %d events after restart", tenant.slug, len(recovered))
        return tenant

    def remove_tenant(self, tenant_id: int) -> None:
        self.tenants.pop(tenant_id, None)

    # ------------------------------------------------------------------ running
    async def start(self) -> None:
        self._inbox = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="live-center")

    async def stop(self) -> None:
        """Refuse queued requests, close calls still in progress and store that."""
        self.failure = self.failure or CenterUnavailable("the server is shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CenterUnavailable):
                await self._task
            self._task = None
        self._refuse_pending()
        now = self.clock()

        def close_open_calls() -> None:
            # On the writer thread, after any write still in flight: one writer, in order.
            batch: list[tuple[int, list[Event]]] = []
            for tenant in self.tenants.values():
                closing = close_calls(self.store.open_calls(tenant.id), now, "server_shutdown")
                if closing:
                    batch.append((tenant.id, closing))
            if batch:
                self.store.append(batch)

        await asyncio.get_running_loop().run_in_executor(self._writer, close_open_calls)
        self._writer.shutdown(wait=True)

    async def submit(self, tenant_id: int, op: Callable[[Tenant, float], T]) -> T:
        """Run ``op(tenant, now)`` on the tenant's engine; returns once its events are stored."""
        return await self.enqueue(tenant_id, op)

    def enqueue(self, tenant_id: int, op: Callable[[Tenant, float], T]) -> asyncio.Future[T]:
        """``submit`` without a coroutine: queued now (inputs keep their order), the future
        is done once its events are stored. For drivers reacting to many events (the SIP
        switch), where a task per input would cost more than the input."""
        if self.failure is not None:
            raise self.failure
        if self._inbox is None:
            raise CenterUnavailable("the live center is not running")
        if tenant_id not in self.tenants:
            raise KeyError(tenant_id)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_Request(tenant_id, op, future))
        return future

    def new_call_id(self) -> str:
        return uuid.uuid4().hex[:20]

    async def _run(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        loop = asyncio.get_running_loop()
        while True:
            deadline = min((t.acd.next_timer() for t in self.tenants.values()), default=1e300)
            timeout = max(0.0, min(deadline - self.clock(), 1.0))
            batch: list[_Request] = []
            with contextlib.suppress(TimeoutError):
                batch.append(await asyncio.wait_for(inbox.get(), timeout))
            while batch and len(batch) < _BATCH and not inbox.empty():
                batch.append(inbox.get_nowait())
            now = self.clock()
            produced: dict[int, list[Event]] = {}
            commands: dict[int, list[Command]] = {}
            results: list[tuple[_Request, Any, BaseException | None]] = []
            for tenant in self.tenants.values():
                if tenant.acd.next_timer() <= now:
                    tenant.acd.on_timer(now)
                    self._drain(tenant, produced, commands)
            for req in batch:
                target = self.tenants.get(req.tenant)
                if target is None:
                    results.append((req, None, KeyError(req.tenant)))
                    continue
                try:
                    results.append((req, req.op(target, now), None))
                except Exception as failure:  # the caller gets it; the center keeps running
                    results.append((req, None, failure))
                self._drain(target, produced, commands)
            if produced:
                enriched = {
                    tid: self._enrich(self.tenants[tid], ev) for tid, ev in produced.items()
                }
                first_seq = {tid: self.store.last_seq(tid) + 1 for tid in produced}
                try:
                    await loop.run_in_executor(
                        self._writer, self.store.append, list(produced.items())
                    )
                except Exception as err:
                    # Fail-stop: nothing that is not stored may be acknowledged, and the
                    # engines now hold state the record lacks. A restart recovers from it.
                    log.exception("event store failed: the live center stops")
                    self.failure = CenterUnavailable(f"event store unavailable: {err}")
                    for req, _, _ in results:
                        if not req.future.done():
                            req.future.set_exception(self.failure)
                    self._refuse_pending()
                    return
                self.stored_events += sum(len(ev) for ev in produced.values())
                for tid, events in produced.items():
                    tenant = self.tenants[tid]
                    for e in events:
                        tenant.observe(e)
                    numbered = [
                        (first_seq[tid] + i, e, extra)
                        for i, (e, extra) in enumerate(zip(events, enriched[tid], strict=True))
                    ]
                    for publish in self.publishers:
                        publish(tenant, numbered)
            for req, result, error in results:
                if req.future.done():
                    continue
                if error is None:
                    req.future.set_result(result)
                else:
                    req.future.set_exception(error)
            for tid in produced.keys() | commands.keys():
                tenant = self.tenants[tid]
                for listener in self.listeners:
                    try:
                        listener(tenant, produced.get(tid, []), commands.get(tid, []))
                    except Exception:
                        log.exception("driver failed on a batch")

    def _refuse_pending(self) -> None:
        failure = self.failure or CenterUnavailable("the live center stopped")
        while self._inbox is not None and not self._inbox.empty():
            req = self._inbox.get_nowait()
            if not req.future.done():
                req.future.set_exception(failure)

    @staticmethod
    def _drain(
        tenant: Tenant, produced: dict[int, list[Event]], commands: dict[int, list[Command]]
    ) -> None:
        acd = tenant.acd
        if acd.events:
            produced.setdefault(tenant.id, []).extend(acd.events)
            acd.events.clear()
        if acd.commands:
            commands.setdefault(tenant.id, []).extend(acd.commands)
            acd.commands.clear()

    @staticmethod
    def _enrich(tenant: Tenant, events: list[Event]) -> list[dict[str, Any] | None]:
        """Screen-pop data for offers (looked up now: the call may end later in the batch)."""
        out: list[dict[str, Any] | None] = []
        for e in events:
            if type(e) is CallOffered:
                info = tenant.acd.call_info(e.call)  # type: ignore[attr-defined]
                out.append(
                    None if info is None else {"number": info["number"], "data": info["data"]}
                )
            else:
                out.append(None)
        return out
