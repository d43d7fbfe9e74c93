"""Live adherence: one ``AdherenceEngine`` per running tenant, fed from the same stream of
stored events as the CTI hub and the realtime board, and the published roster (a window of a
few days around now, extended as the days pass). Changes go out on the CTI stream."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from hotline.db.schema import AuditEntry, RosterActivity
from hotline.events.types import AgentStateChanged, Event
from hotline.server.hub import Hub
from hotline.server.live import Tenant
from hotline.wfm.adherence import AdherenceEngine, AdherenceRules, Slot, slots_by_agent

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


Row = tuple[str, str, float, float, str]  # (where it came from, agent, start, end, kind)


class RosterOverlap(ValueError):
    """A new activity overlaps another of the same agent; ``where`` names the new row."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def check_overlaps(rows: list[Row], kept: list[Row]) -> None:
    """One person cannot do two things at once, in the new rows or against kept ones."""
    ordered = sorted(rows + kept, key=lambda r: (r[1], r[2]))
    for a, b in pairwise(ordered):
        if a[1] == b[1] and b[2] < a[3]:
            new = b if b[0] != "kept" else a
            other = a if new is b else b
            what = "a published activity outside the range" if other[0] == "kept" else other[0]
            raise RosterOverlap(f"{new[0]}.start", f"{new[1]}'s {new[4]} overlaps {what}")


Actor = tuple[int, str]  # who publishes: their tenant (whose audit log it goes to), name


def store_roster(db: Session, tenant_id: int, t0: float, t1: float, rows: list[Row],
                 actor: Actor, target: str, listed_only: bool = False) -> None:
    """Replace every activity starting in ``[t0, t1)`` (only the listed agents' with
    ``listed_only``) by ``rows`` (each checked to start in the range, by the caller),
    audited as ``actor``; committed. Refused with ``RosterOverlap`` when a row overlaps an
    activity kept outside the range."""
    now = time.time()
    agents = sorted({r[1] for r in rows})
    if rows:
        lo, hi = min(r[2] for r in rows), max(r[3] for r in rows)
        kept = [
            ("kept", agent, s.start, s.end, s.kind)
            for agent, ss in roster_slots(db, tenant_id, lo, hi, agents).items()
            for s in ss
            if not t0 <= s.start < t1
        ]
        check_overlaps(rows, kept)
    gone = delete(RosterActivity).where(
        RosterActivity.tenant_id == tenant_id,
        RosterActivity.starts_at >= t0,
        RosterActivity.starts_at < t1,
    )
    if listed_only:
        gone = gone.where(RosterActivity.agent.in_(agents))
    result = db.execute(gone)
    removed = result.rowcount if isinstance(result, CursorResult) else None
    db.add_all(
        RosterActivity(tenant_id=tenant_id, agent=agent, starts_at=s, ends_at=e, kind=k,
                       published_at=now, published_by=actor[1])
        for _, agent, s, e, k in rows
    )
    # as hotline.server.state.audit records it (which needs a signed-in caller)
    detail = {"activities": len(rows), "agents": len(agents), "replaced": removed}
    db.add(AuditEntry(tenant_id=actor[0], ts=now, actor=actor[1], action="roster.publish",
                      target=target, detail={k: v for k, v in detail.items() if v is not None}))
    db.commit()


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

    async def publish_roster(self, tenant: Tenant, t0: float, t1: float, rows: list[Row],
                             actor: Actor, target: str, listed_only: bool = False
                             ) -> dict[str, list[Slot]]:
        """Publish: store the activities of ``[t0, t1)`` (see ``store_roster``), then judge
        adherence by them at once. The planners' API and the demo both publish this way."""
        await asyncio.to_thread(self._store, tenant.id, t0, t1, rows, actor, target,
                                listed_only)
        slots = slots_by_agent(r[1:] for r in sorted(rows, key=lambda r: r[2]))
        self.replaced(tenant, t0, t1, slots, listed_only)
        return slots

    def _store(self, tenant_id: int, t0: float, t1: float, rows: list[Row], actor: Actor,
               target: str, listed_only: bool) -> None:
        with self.sessions() as db:
            store_roster(db, tenant_id, t0, t1, rows, actor, target, listed_only)

    def replaced(self, tenant: Tenant, start: float, end: float,
                 slots: dict[str, list[Slot]], listed_only: bool = False) -> None:
        """A roster was published for ``[start, end)`` (for the agents in ``slots`` only, with
        ``listed_only``): the part inside the window counts."""
        engine = self.engine(tenant)
        until = self.loaded_until[tenant.id]
        if start >= until:
            return
        end = min(end, until)
        inside = {a: [s for s in ss if s.start < end] for a, ss in slots.items()}
        engine.replace(self.clock(), start, end, inside, list(slots) if listed_only else None)
        self._push(tenant, engine)

    def _push(self, tenant: Tenant, engine: AdherenceEngine) -> None:
        if engine.changes:
            bodies = [c.to_dict() for c in engine.changes]
            engine.changes.clear()
            self.hub.adherence(tenant, bodies)
