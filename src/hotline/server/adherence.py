"""Live adherence: one ``AdherenceEngine`` per running tenant, fed from the same stream of
stored events as the CTI hub and the realtime board, and the published roster (a window of a
few days around now, extended as the days pass). Changes go out on the CTI stream."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db.schema import RosterActivity
from hotline.events.types import AgentStateChanged, Event
from hotline.server.hub import Hub
from hotline.server.live import Tenant
from hotline.wfm.adherence import AdherenceEngine, AdherenceRules, Slot

DAY = 86400.0
BEHIND = DAY  # roster kept for the day just past (a night shift still running)
AHEAD = 2 * DAY  # and loaded this far ahead; extended a day at a time


def roster_slots(db: Session, tenant_id: int, start: float, end: float,
                 agents: list[str] | None = None) -> dict[str, list[Slot]]:
    """The published activities of ``[start, end)`` (those overlapping it), per agent."""
    query = select(RosterActivity.agent, RosterActivity.starts_at, RosterActivity.ends_at,
                   RosterActivity.kind).where(
        RosterActivity.tenant_id == tenant_id,
        RosterActivity.starts_at < end,
        RosterActivity.ends_at > start,
    )
    if agents is not None:
        query = query.where(RosterActivity.agent.in_(agents))
    out: dict[str, list[Slot]] = {}
    for agent, s, e, kind in db.execute(query.order_by(RosterActivity.starts_at)):
        out.setdefault(agent, []).append(Slot(s, e, kind))
    return out


class LiveAdherence:
    def __init__(self, sessions: sessionmaker[Session], hub: Hub,
                 clock: Callable[[], float]) -> None:
        self.sessions = sessions
        self.hub = hub
        self.clock = clock
        self.engines: dict[int, AdherenceEngine] = {}
        self.loaded_until: dict[int, float] = {}

    def start_tenant(self, tenant: Tenant) -> None:
        """Load the roster window and the agents' current states (as the realtime board
        has them), before the tenant's events flow; the tenant's own rules apply."""
        now = self.clock()
        with self.sessions() as db:
            slots = roster_slots(db, tenant.id, now - BEHIND, now + AHEAD)
        agents = tenant.stats(now)["agents"]
        sinces = {a: now - row["time_in_state"] for a, row in agents.items()}
        t0 = min(sinces.values(), default=now)
        engine = AdherenceEngine(tenant.adherence)
        engine.replace(t0, -math.inf, math.inf, slots)
        for agent, since in sorted(sinces.items(), key=lambda kv: kv[1]):
            row = agents[agent]
            engine.set_state(since, agent, row["state"], row["reason"])
        engine.changes.clear()  # nobody is watching yet
        self.engines[tenant.id] = engine
        self.loaded_until[tenant.id] = now + AHEAD

    def set_rules(self, tenant: Tenant, rules: AdherenceRules) -> None:
        """The tenant changed its adherence settings: judge again from now, and tell the
        watchers every rostered agent's standing under the new rules."""
        tenant.adherence = rules
        self.start_tenant(tenant)
        now = self.clock()
        engine = self.engines[tenant.id]
        bodies = []
        for agent in sorted(tenant.teams):
            status = engine.status(agent, now)
            if status.rostered:
                bodies.append({"type": "adherence", "t": now, **status.to_dict()})
        if bodies:
            self.hub.adherence(tenant, bodies)

    def engine(self, tenant: Tenant) -> AdherenceEngine:
        """A tenant created while running starts with no roster and every agent out."""
        engine = self.engines.get(tenant.id)
        if engine is None:
            engine = self.engines[tenant.id] = AdherenceEngine(tenant.adherence)
            self.loaded_until[tenant.id] = self.clock() + AHEAD
        return engine

    def publish(self, tenant: Tenant, numbered: list[tuple[int, Event, dict[str, Any] | None]]
                ) -> None:
        """The live center's publisher hook: its stored events, in order."""
        engine = self.engine(tenant)
        for _, e, _ in numbered:
            if type(e) is AgentStateChanged:
                engine.feed(e)
        self._push(tenant, engine)

    def tick(self, tenants: list[Tenant], now: float) -> None:
        """Schedule boundaries and stretches turning severe, on the server's ticker."""
        for tenant in tenants:
            engine = self.engine(tenant)
            if engine.next_timer() <= now:
                engine.on_timer(now)
                self._push(tenant, engine)

    async def extend(self, tenants: list[Tenant], now: float) -> None:
        """Keep the roster window ``AHEAD`` of now: read the next day in a thread."""
        for tenant in tenants:
            until = self.loaded_until.get(tenant.id)
            if until is None or until - now > AHEAD - DAY:
                continue
            new_until = until + DAY

            def read(tid: int = tenant.id, a: float = until, b: float = new_until
                     ) -> dict[str, list[Slot]]:
                with self.sessions() as db:
                    rows = roster_slots(db, tid, a, b)
                return {agent: [s for s in ss if a <= s.start < b] for agent, ss in rows.items()}

            slots = await asyncio.to_thread(read)
            engine = self.engine(tenant)
            engine.replace(self.clock(), until, new_until, slots, agents=list(slots))
            self.loaded_until[tenant.id] = new_until
            engine.forget(now - BEHIND)
            self._push(tenant, engine)

    def replaced(self, tenant: Tenant, start: float, end: float,
                 slots: dict[str, list[Slot]]) -> None:
        """A roster was published for ``[start, end)``: the part inside the window counts."""
        engine = self.engine(tenant)
        until = self.loaded_until[tenant.id]
        if start >= until:
            return
        end = min(end, until)
        inside = {a: [s for s in ss if s.start < end] for a, ss in slots.items()}
        engine.replace(self.clock(), start, end, inside)
        self._push(tenant, engine)

    def _push(self, tenant: Tenant, engine: AdherenceEngine) -> None:
        if engine.changes:
            bodies = [c.to_dict() for c in engine.changes]
            engine.changes.clear()
            self.hub.adherence(tenant, bodies)
