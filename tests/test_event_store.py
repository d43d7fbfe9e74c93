"""The event store keeps every event exactly, in order, with the CDRs and agent presence
they imply; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

from hotline.db.database import migrate, open_database
from hotline.events.store import EventStore
from hotline.events.types import (
    EVENT_TYPES,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallArrived,
    CallClosed,
    CallDisposed,
    CallEnded,
    CallQueued,
    CallTransferred,
    WrapUpEnded,
    event_from_dict,
)

SAMPLE = {
    "t": 1.5,
    "call": "c1",
    "queue": "q",
    "agent": "a1",
    "priority": 2,
    "position": 1,
    "ewt": 3.0,
    "overflow_from": "q0",
    "reason": "lunch",
    "wait": 4.0,
    "ringing": True,
    "to_queue": "q2",
    "talk": 60.0,
    "hold": 5.0,
    "wrap": 6.0,
    "state": "ready",
    "prev": "logged_out",
    "queues": ("q",),
    "cause": "server_restart",
    "to_call": "c2",
    "to_agent": "a2",
    "disposition": "resolved",
    "note": "备注",
    "number": "13800000000",
    "data": {"customer": "张伟"},
    "contact": "sip:7001@10.0.0.5:5060",
    "source": "10.0.0.5:5060",
    "user_agent": "baresip v1.0.0",
    "recording": "demo-bank/2026-11-23/c1.wav",
    "duration": 61.5,
    "flow": "main",
    "version": 3,
    "outcome": "queued",
    "language": "en",
    "path": ["welcome", "main", "cards"],
    "mailbox": "cards",
    "supervisor": "supervisor",
    "mode": "whisper",
    "ring": 7.5,
    "how": "transferred",
}
# Fields an event may lack; ``to_dict`` leaves them out when empty.
OPTIONAL = {
    "call_arrived": ("number", "data"),
    "call_queued": ("overflow_from",),
    "agent_state_changed": ("reason", "queues"),
    "agent_queues_changed": ("queues",),
    "call_closed": ("agent",),
    "call_transferred": ("to_agent",),
    "call_disposed": ("disposition", "note"),
    "phone_registered": ("user_agent",),
    "ivr_ended": ("queue", "language", "number", "path"),
    "voicemail_left": ("number", "language"),
    "call_monitored": ("agent",),
    "consult_started": ("to_agent", "number"),
    "consult_ended": ("to_agent", "number"),
    "call_conferenced": ("to_agent", "number"),
}


def test_every_event_type_round_trips_through_json_with_optional_fields_left_out() -> None:
    for name, cls in EVENT_TYPES.items():
        full = cls(**{f: SAMPLE[f] for f in cls.fields})
        assert event_from_dict(json.loads(full.to_json())) == full, name
        empty = {f: (() if f == "queues" else None) for f in OPTIONAL.get(name, ())}
        bare = cls(**{f: SAMPLE[f] for f in cls.fields if f not in empty}, **empty)
        data = json.loads(bare.to_json())
        assert not set(empty) & set(data), name
        assert event_from_dict(data) == bare, name


def _call(store: EventStore, tenant: int) -> None:
    store.append(
        [
            (
                tenant,
                [
                    AgentStateChanged(10.0, "a1", "ready", "logged_out", queues=("q",)),
                    CallArrived(11.0, "c1", "q", 0, "13800000000", {"customer": "张伟"}),
                    CallQueued(11.0, "c1", "q", 0, 1, 0.0),
                    CallAnswered(14.0, "c1", "q", "a1", 3.0),
                    CallEnded(74.0, "c1", "q", "a1", 60.0, 0.0),
                    CallDisposed(75.0, "c1", "a1", "resolved", "客户满意"),
                    WrapUpEnded(80.0, "c1", "q", "a1", 6.0),
                    CallArrived(90.0, "c2", "q", 0),
                    CallAbandoned(100.0, "c2", "q", 10.0, False),
                    CallArrived(110.0, "c3", "q", 0),
                ],
            )
        ]
    )


def test_store_keeps_events_in_order_with_cdrs_and_presence(db_url: str) -> None:
    engine = open_database(db_url)
    migrate(engine)
    migrate(engine)  # applying migrations twice is a no-op
    store = EventStore(engine)
    _call(store, 1)
    store.append([(2, [AgentStateChanged(5.0, "a1", "ready", "logged_out")])])
    events = list(store.read(1))
    assert [e.type for e in events][:3] == ["agent_state_changed", "call_arrived", "call_queued"]
    assert events[1] == CallArrived(11.0, "c1", "q", 0, "13800000000", {"customer": "张伟"})
    assert [e.t for e in store.read(1, start=74.0, end=100.0)] == [74.0, 75.0, 80.0, 90.0]
    assert store.last_seq(1) == 10 and store.last_seq(2) == 1
    assert store.last_time(1) == 110.0
    assert store.presence(1) == {"a1": ("ready", None, 10.0)}
    # Only the call still in progress is open; tenants do not see each other's records.
    assert store.open_calls(1) == [{"call": "c3", "queue": "q", "agent": None, "ended_at": None}]
    assert store.open_calls(2) == []
    # A second store over the same database continues the numbering.
    again = EventStore(engine)
    again.append([(1, [CallClosed(120.0, "c3", "q", "server_restart")])])
    assert again.last_seq(1) == 11
    assert again.open_calls(1) == []
    engine.dispose()


def test_cdrs_carry_outcomes_transfers_and_dispositions(db_url: str) -> None:
    from sqlalchemy import select

    from hotline.db.schema import CallRecord

    engine = open_database(db_url)
    migrate(engine)
    store = EventStore(engine)
    _call(store, 1)
    store.append(
        [
            (
                1,
                [
                    CallArrived(200.0, "c4", "q", 0),
                    CallAnswered(201.0, "c4", "q", "a1", 1.0),
                    CallTransferred(230.0, "c4", "a1", "c5", "q2"),
                    CallEnded(230.0, "c4", "q", "a1", 29.0, 0.0),
                    WrapUpEnded(230.0, "c4", "q", "a1", 0.0),
                    CallArrived(230.0, "c5", "q2", 0),
                ],
            )
        ]
    )
    with engine.connect() as conn:
        rows = {r.call_id: r for r in conn.execute(select(CallRecord))}
    assert rows["c1"].outcome == "answered"
    assert (rows["c1"].disposition, rows["c1"].note) == ("resolved", "客户满意")
    assert (rows["c1"].wait, rows["c1"].talk, rows["c1"].wrap) == (3.0, 60.0, 6.0)
    assert rows["c1"].caller == {"customer": "张伟"}
    assert rows["c2"].outcome == "abandoned" and rows["c2"].wait == 10.0
    assert rows["c3"].outcome is None
    assert rows["c4"].outcome == "transferred"
    assert rows["c5"].transferred_from == "c4" and rows["c5"].queue == "q2"
    engine.dispose()
