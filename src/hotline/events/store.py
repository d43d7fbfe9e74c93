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

from sqlalchemy import Engine, Table, bindparam, func, insert, select, update
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


def _by_columns(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by the columns they set, for one executemany per group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


class EventStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seq: dict[int, int] = {}
        self._folds: dict[int, CdrFold] = {}
        self._upsert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statements: dict[tuple[str, tuple[str, ...]], Any] = {}

    def last_seq(self, tenant_id: int) -> int:
        seq = self._seq.get(tenant_id)
        if seq is None:  # one index seek on (tenant_id, seq), the first time a tenant writes
            with self.engine.connect() as conn:
                seq = conn.execute(
                    select(func.max(StoredEvent.seq)).where(StoredEvent.tenant_id == tenant_id)
                ).scalar()
            seq = self._seq[tenant_id] = seq or 0
        return seq

    def append(self, batch: Sequence[tuple[int, Sequence[Event]]]) -> None:
        """Store ``(tenant id, events)`` pairs durably, in order, in one transaction."""
        rows: list[dict[str, Any]] = []
        # CDR changes are merged per call within the batch: a call that arrives and is
        # answered in one batch is one INSERT; the others one UPDATE each, sent in groups.
        cdr_new: dict[tuple[int, str], dict[str, Any]] = {}
        cdr_changes: dict[tuple[int, str], dict[str, Any]] = {}
        presence: dict[tuple[int, str], dict[str, Any]] = {}
        seqs = {tenant_id: self.last_seq(tenant_id) for tenant_id, _ in batch}
        for tenant_id, events in batch:
            fold = self._folds.get(tenant_id)
            if fold is None:
                fold = self._folds[tenant_id] = CdrFold()
            seq = seqs[tenant_id]
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
                    key = (tenant_id, call_id)
                    if "arrived_at" in fields:
                        cdr_new[key] = {"tenant_id": tenant_id, "call_id": call_id, **fields}
                    elif key in cdr_new:
                        cdr_new[key].update(fields)
                    else:
                        cdr_changes.setdefault(key, {}).update(fields)
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
                for columns, group in _by_columns(list(cdr_new.values())).items():
                    conn.execute(self._statement("insert", columns), group)
            if cdr_changes:
                changes = [
                    {"_tenant": tenant_id, "_call": call_id, **fields}
                    for (tenant_id, call_id), fields in cdr_changes.items()
                ]
                for columns, group in _by_columns(changes).items():
                    conn.execute(self._statement("update", columns), group)
            if presence:
                conn.execute(self._statement("presence", ()), list(presence.values()))
        self._seq = seqs

    def _statement(self, kind: str, columns: tuple[str, ...]) -> Any:
        """The statements the writer uses, built once (building one costs more than running
        it for a small batch)."""
        key = (kind, columns)
        stmt = self._statements.get(key)
        if stmt is not None:
            return stmt
        if kind == "insert":
            stmt = insert(_CDRS).values({c: bindparam(c) for c in columns})
        elif kind == "update":
            stmt = (
                update(_CDRS)
                .where(
                    _CDRS.c.tenant_id == bindparam("_tenant"),
                    _CDRS.c.call_id == bindparam("_call"),
                )
                .values({c: bindparam(c) for c in columns if not c.startswith("_")})
            )
        else:
            upsert = self._upsert(_PRESENCE)
            stmt = upsert.on_conflict_do_update(
                index_elements=["tenant_id", "agent"],
                set_={
                    "state": upsert.excluded.state,
                    "reason": upsert.excluded.reason,
                    "since": upsert.excluded.since,
                },
            )
        self._statements[key] = stmt
        return stmt

    # ------------------------------------------------------------------ reading
    def read(
        self,
        tenant_id: int,
        start: float | None = None,
        end: float | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[Event]:
        """Events of a tenant in record order, optionally those with ``start <= t < end``
        and of these ``types`` only."""
        query = select(StoredEvent.data).where(StoredEvent.tenant_id == tenant_id)
        if types is not None:
            query = query.where(StoredEvent.type.in_(list(types)))
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
                select(
                    CallRecord.call_id, CallRecord.final_queue, CallRecord.agent,
                    CallRecord.ended_at,
                ).where(CallRecord.tenant_id == tenant_id, CallRecord.outcome.is_(None))
            )
            return [{"call": c, "queue": q, "agent": a, "ended_at": e} for c, q, a, e in rows]
