"""The append-only event store, and the projections written with it.

``append`` writes a batch of events, numbered per tenant, together with the call detail
records and agent presence they imply, in one transaction: when it returns, the events are
durable and every projection agrees with them. The live center calls it before it
acknowledges a request or broadcasts an event. Only one process writes a database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hotline.cms.cdr import CdrFold
from hotline.db.schema import AgentPresence, CallRecord, StoredEvent
from hotline.events.types import AgentStateChanged, Event, event_from_dict

_EVENTS = cast(Table, StoredEvent.__table__)
_CDRS = cast(Table, CallRecord.__table__)
_PRESENCE = cast(Table, AgentPresence.__table__)


def _json(e: Event) -> str:
    text = e.to_json()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate slipped past the edge: escape, never fail
        text = json.dumps(e.to_dict(), ensure_ascii=True, separators=(",", ":"))
    return text


class EventStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seq: dict[int, int] = {}
        self._folds: dict[int, CdrFold] = {}
        with engine.connect() as conn:
            rows = conn.execute(
                select(StoredEvent.tenant_id, func.max(StoredEvent.seq)).group_by(
                    StoredEvent.tenant_id
                )
            )
            for tenant_id, seq in rows:
                self._seq[tenant_id] = seq
        self._upsert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def last_seq(self, tenant_id: int) -> int:
        return self._seq.get(tenant_id, 0)

    def append(self, batch: Sequence[tuple[int, Sequence[Event]]]) -> None:
        """Store ``(tenant id, events)`` pairs durably, in order, in one transaction."""
        rows: list[dict[str, Any]] = []
        cdr_new: list[dict[str, Any]] = []
        cdr_changes: list[tuple[int, str, dict[str, Any]]] = []
        presence: dict[tuple[int, str], dict[str, Any]] = {}
        seqs = dict(self._seq)
        for tenant_id, events in batch:
            fold = self._folds.get(tenant_id)
            if fold is None:
                fold = self._folds[tenant_id] = CdrFold()
            seq = seqs.get(tenant_id, 0)
            for e in events:
                seq += 1
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "seq": seq,
                        "ts": e.t,
                        "type": e.type,
                        "call_id": getattr(e, "call", None),
                        "agent_id": getattr(e, "agent", None),
                        "queue_id": getattr(e, "queue", None),
                        "data": _json(e),
                    }
                )
                change = fold.feed(e)
                if change is not None:
                    call_id, fields = change
                    if "arrived_at" in fields:
                        cdr_new.append({"tenant_id": tenant_id, "call_id": call_id, **fields})
                    else:
                        cdr_changes.append((tenant_id, call_id, fields))
                if type(e) is AgentStateChanged:
                    presence[(tenant_id, e.agent)] = {  # type: ignore[attr-defined]
                        "tenant_id": tenant_id,
                        "agent": e.agent,  # type: ignore[attr-defined]
                        "state": e.state,  # type: ignore[attr-defined]
                        "reason": e.reason,  # type: ignore[attr-defined]
                        "since": e.t,
                    }
            seqs[tenant_id] = seq
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(_EVENTS), rows)
            if cdr_new:
                conn.execute(insert(_CDRS), cdr_new)
            for tenant_id, call_id, fields in cdr_changes:
                conn.execute(
                    update(_CDRS)
                    .where(_CDRS.c.tenant_id == tenant_id, _CDRS.c.call_id == call_id)
                    .values(**fields)
                )
            if presence:
                stmt = self._upsert(_PRESENCE)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "agent"],
                    set_={
                        "state": stmt.excluded.state,
                        "reason": stmt.excluded.reason,
                        "since": stmt.excluded.since,
                    },
                )
                conn.execute(stmt, list(presence.values()))
        self._seq = seqs

    # ------------------------------------------------------------------ reading
    def read(
        self, tenant_id: int, start: float | None = None, end: float | None = None
    ) -> Iterator[Event]:
        """Events of a tenant in record order, optionally those with ``start <= t < end``."""
        query = select(StoredEvent.data).where(StoredEvent.tenant_id == tenant_id)
        if start is not None:
            query = query.where(StoredEvent.ts >= start)
        if end is not None:
            query = query.where(StoredEvent.ts < end)
        query = query.order_by(StoredEvent.seq)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=5000).execute(query)
            for (data,) in result:
                yield event_from_dict(json.loads(data))

    def last_time(self, tenant_id: int) -> float | None:
        """Time of the tenant's last stored event: the last instant it was known running."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(StoredEvent.ts)).where(StoredEvent.tenant_id == tenant_id)
            ).scalar()

    def presence(self, tenant_id: int) -> dict[str, tuple[str, str | None, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    AgentPresence.agent,
                    AgentPresence.state,
                    AgentPresence.reason,
                    AgentPresence.since,
                ).where(AgentPresence.tenant_id == tenant_id)
            )
            return {agent: (state, reason, since) for agent, state, reason, since in rows}

    def open_calls(self, tenant_id: int) -> list[dict[str, Any]]:
        """CDRs without an outcome: calls that were in progress when the server stopped."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CallRecord.call_id, CallRecord.final_queue, CallRecord.agent).where(
                    CallRecord.tenant_id == tenant_id, CallRecord.outcome.is_(None)
                )
            )
            return [{"call": c, "queue": q, "agent": a} for c, q, a in rows]
