"""Report query time over a large event record (1,000,000 stored calls by default).

    python bench/server_reports.py                       # 1M calls, SQLite in a temp dir
    python bench/server_reports.py --calls 100000        # quick run
    python bench/server_reports.py --db-file /tmp/r.db   # keep the database; reused next time
    python bench/server_reports.py --db postgresql://user:pw@host/db

1. Fill: the simulator runs a 300-agent, 30-queue center (24-hour traffic, abandons, wrap-up)
   until it has produced ``--calls`` calls; its events are shifted to real Unix time (ending
   about now) and written in big batches. ``--fill bulk`` (default) writes exactly the rows
   ``EventStore.append`` writes (events numbered per tenant, one CDR per call as folded by
   ``CdrFold``, agent presence; checked identical to ``--fill append`` on small runs) with
   one multi-row insert per table per batch, while a child process simulates and prepares
   the next batch; ``--fill append`` goes through ``EventStore.append`` itself, which is
   several times slower (one UPDATE statement per CDR change), for smaller ``--calls``.
2. Reports, called through the API's own handlers (``hotline.server.api.reports``) with an
   admin caller, the way the server runs them (the work in the thread pool, the response
   encoded by FastAPI's ``jsonable_encoder`` on the event loop): the queue interval report and
   the agent interval report (30-minute intervals) over the whole record and over its last
   24 hours, and CDR pages (newest first, a deep page, one queue, one day, one agent).
   Printed: rows returned, seconds, events read per second, and how late the event loop ran
   meanwhile (the live ACD and every request share it).
3. Restart: what a server start costs over this record (``EventStore`` numbering scan,
   ``LiveCenter.add_tenant``: today's events replayed, open calls and presence looked up).

A full run (1M calls) takes 5-10 minutes on 2 cores, about half of it filling; keep the
database with ``--db-file`` to measure again without filling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, Table, delete, func, insert, select
from sqlalchemy.orm import Session

from hotline.acd.config import AgentConfig, QueueConfig
from hotline.cms.cdr import CdrFold
from hotline.cms.metrics import ServiceLevelConfig
from hotline.db.database import migrate, open_database
from hotline.db.schema import AgentPresence, CallRecord, StoredEvent
from hotline.events.store import EventStore
from hotline.events.types import AgentStateChanged, Event
from hotline.server.api import reports
from hotline.server.live import LiveCenter, TenantSetup
from hotline.server.security import Principal
from hotline.sim.runner import Simulation
from hotline.sim.scenario import Scenario
from server_harness import percentile

GROUPS = 10  # agent groups; each serves its own 3 queues and one neighbour's
GROUP_SIZE = 30
QUEUES_PER_GROUP = 3
LOAD = 0.85
CDRS = cast(Table, CallRecord.__table__)
PRESENCE = cast(Table, AgentPresence.__table__)
CDR_COLUMNS = tuple(c.name for c in CDRS.c if c.name != "id")


# --------------------------------------------------------------------------- the record
def scenario(calls: int) -> dict[str, Any]:
    queues, traffic, agents = [], [], []
    rate_total = 0.0
    for g in range(GROUPS):
        skills = {}
        for k in range(QUEUES_PER_GROUP):
            i = g * QUEUES_PER_GROUP + k
            qid = f"q{i:02d}"
            handle = 180.0 + 30.0 * (i % 5)
            wrap = 15.0 if i % 3 == 0 else 0.0
            queues.append({"id": qid, "skills": {qid: 1}, "wrap_up": wrap})
            rate = LOAD * GROUP_SIZE / QUEUES_PER_GROUP / (handle + wrap)
            rate_total += rate
            traffic.append(
                {
                    "queue": qid,
                    "calls_per_hour": rate * 3600.0,
                    "handle_time": {"dist": "exponential", "mean": handle},
                    "patience": {"dist": "exponential", "mean": 150.0},
                }
            )
            skills[qid] = 5 + k
        skills[f"q{((g + 1) % GROUPS) * QUEUES_PER_GROUP:02d}"] = 2
        agents.append({"group": f"g{g}", "count": GROUP_SIZE, "skills": skills})
    return {
        "name": "bench-reports",
        "duration": (calls + 5.0 * math.sqrt(calls)) / rate_total,
        "queues": queues,
        "traffic": traffic,
        "agents": agents,
    }


Batch = tuple[list[tuple[Any, ...]], list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]


class Rows:
    """The rows ``EventStore.append`` writes for a run of events, prepared for bulk inserts:
    events numbered per tenant, and each CDR complete, once its call has an outcome (the store
    inserts a CDR on arrival and updates it per event; the final row is the same)."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.seq = 0
        self.fold = CdrFold()
        self.open: dict[str, dict[str, Any]] = {}
        self.presence: dict[str, dict[str, Any]] = {}

    def prepare(self, events: list[Event], final: bool = False) -> Batch:
        tid = self.tenant_id
        rows: list[tuple[Any, ...]] = []
        closed: list[dict[str, Any]] = []
        late: list[tuple[str, dict[str, Any]]] = []
        fold = self.fold
        opened = self.open
        for e in events:
            self.seq += 1
            rows.append(
                (
                    tid,
                    self.seq,
                    e.t,
                    e.type,
                    getattr(e, "call", None),
                    getattr(e, "agent", None),
                    getattr(e, "queue", None),
                    e.to_json(),
                )
            )
            change = fold.feed(e)
            if change is not None:
                call_id, fields = change
                if "arrived_at" in fields:
                    rec = dict.fromkeys(CDR_COLUMNS)
                    rec.update(tenant_id=tid, call_id=call_id, **fields)
                    opened[call_id] = rec
                elif call_id in opened:
                    opened[call_id].update(fields)
                else:
                    late.append((call_id, fields))
                if "outcome" in fields and call_id in opened:
                    closed.append(opened.pop(call_id))
            if type(e) is AgentStateChanged:
                self.presence[e.agent] = {
                    "tenant_id": tid,
                    "agent": e.agent,
                    "state": e.state,
                    "reason": e.reason,
                    "since": e.t,
                }
        if final:
            closed.extend(opened.values())
            opened.clear()
        return rows, closed, late


def write(engine: Engine, tenant_id: int, batch: Batch, presence: list[dict[str, Any]]) -> None:
    """One transaction; the events go straight to the driver (SQLAlchemy's per-row parameter
    handling would cost more than the database's own insert)."""
    rows, closed, late = batch
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    sql = (
        "INSERT INTO events (tenant_id, seq, ts, type, call_id, agent_id, queue_id, data) "
        f"VALUES ({', '.join([mark] * 8)})"
    )
    with engine.begin() as conn:
        if rows:
            conn.exec_driver_sql(sql, rows)
        if closed:
            conn.execute(insert(CDRS), closed)
        for call_id, fields in late:  # changes after the outcome (dispositions): rare
            conn.execute(
                CDRS.update()
                .where(CDRS.c.tenant_id == tenant_id, CDRS.c.call_id == call_id)
                .values(**fields)
            )
        if presence:
            conn.execute(insert(PRESENCE), presence)


def simulate(calls: int, batch: int, emit: Callable[[list[Event], bool], None]) -> dict[str, Any]:
    """Run the simulator, handing its events (in real Unix time) to ``emit`` in batches."""
    spec = Scenario.model_validate(scenario(calls))
    base = float(int(time.time() - spec.duration))  # the record ends about now
    pending: list[Event] = []

    def on_event(e: Event) -> None:
        e.t += base
        pending.append(e)
        if len(pending) >= batch:
            emit(pending[:], False)
            pending.clear()

    result = Simulation(spec, seed=1, on_event=on_event).run()
    emit(pending[:], True)
    agents = [a.id for a in spec.agent_configs()]
    return {
        "calls": result.calls,
        "t0": base,
        "t1": base + result.end,
        "agents": agents,
        "queues": [q.id for q in spec.queues],
        "teams": {a: a.split("-")[0] for a in agents},
    }


def produce(calls: int, batch: int, tenant_id: int, out: Any) -> None:
    """Child process of a bulk fill: simulate and prepare rows while the parent writes."""
    prep = Rows(tenant_id)

    def emit(events: list[Event], final: bool) -> None:
        out.put(("rows", prep.prepare(events, final)))

    meta = simulate(calls, batch, emit)
    out.put(("done", (meta, list(prep.presence.values()))))


def fill(engine: Engine, tenant_id: int, calls: int, method: str, batch: int) -> dict[str, Any]:
    """Bulk: a child process simulates and prepares rows, this one writes them (two cores).
    Append: simulate here and write through ``EventStore.append``."""
    start = time.perf_counter()
    write_s = 0.0
    stored = 0
    if method == "append":
        store = EventStore(engine)

        def emit(events: list[Event], final: bool) -> None:
            nonlocal write_s, stored
            t0 = time.perf_counter()
            if events:
                store.append([(tenant_id, events)])
            write_s += time.perf_counter() - t0
            stored += len(events)

        meta = simulate(calls, batch, emit)
    else:
        ctx = mp.get_context("fork")
        out = ctx.Queue(maxsize=4)
        child = ctx.Process(target=produce, args=(calls, batch, tenant_id, out), daemon=True)
        child.start()
        while True:
            try:
                kind, payload = out.get(timeout=10.0)
            except queue.Empty:
                if not child.is_alive():
                    raise SystemExit("the simulator process died") from None
                continue
            t0 = time.perf_counter()
            if kind == "done":
                meta, presence = payload
                write(engine, tenant_id, ([], [], []), presence)
                write_s += time.perf_counter() - t0
                break
            write(engine, tenant_id, payload, [])
            write_s += time.perf_counter() - t0
            stored += len(payload[0])
        child.join()
    return {
        **meta,
        "method": method,
        "events": stored,
        "seconds": time.perf_counter() - start,
        "write_seconds": write_s,
        "events_per_s_written": stored / write_s,
    }


# --------------------------------------------------------------------------- the queries
def count_events(engine: Engine, tenant_id: int, t0: float, t1: float) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(StoredEvent)
                .where(
                    StoredEvent.tenant_id == tenant_id, StoredEvent.ts >= t0, StoredEvent.ts < t1
                )
            ).scalar_one()
        )


async def run_reports(engine: Engine, tenant_id: int, meta: dict[str, Any]) -> list[dict[str, Any]]:
    store = EventStore(engine)
    sls = {q: ServiceLevelConfig() for q in meta["queues"]}
    tenant = SimpleNamespace(id=tenant_id, service_levels=sls, teams=meta["teams"])
    center = SimpleNamespace(tenants={tenant_id: tenant}, store=store, clock=time.time)
    state: Any = SimpleNamespace(center=center)  # what the report handlers use of ServerState
    caller = Principal(
        user_id=1, username="bench", tenant_id=tenant_id, tenant_slug="bench", role="admin"
    )
    t0, t1 = meta["t0"], meta["t1"]
    day0 = max(t0, t1 - 86400.0)
    spans = [("whole record", t0, t1), ("last 24 h", day0, t1)]
    out: list[dict[str, Any]] = []

    async def timed(query: Any) -> tuple[Any, tuple[float, float], list[float]]:
        """Run a handler as the server does (off the event loop, in the thread pool) and
        watch the loop meanwhile: how late a 10 ms sleep wakes shows what a long report costs
        the live center, which shares the process and the GIL."""
        lags: list[float] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - t - 0.01)

        watcher = asyncio.create_task(watch())
        start = time.perf_counter()
        body = await query()
        computed = time.perf_counter()
        if isinstance(body, JSONResponse):
            # The reports render on a worker thread inside the handler (timed above); here
            # only the bench's own decoding, outside the figures.
            end = computed
            body = json.loads(body.body)
        else:
            # As FastAPI answers a handler without a response model: jsonable_encoder, then
            # JSONResponse renders; both on the event loop.
            JSONResponse(jsonable_encoder(body))
            end = time.perf_counter()
        done.set()
        await watcher
        return body, (end - start, end - computed), sorted(lags)

    for label, a, b in spans:
        n = count_events(engine, tenant_id, a, b)
        days = (b - a) / 86400.0
        for name, handler in (
            ("queue report", reports.queue_report),
            ("agent report", reports.agent_report),
        ):
            body, (seconds, encode), lags = await timed(
                lambda h=handler, a=a, b=b: h(
                    caller=caller, state=state,
                    query=reports.report_query(
                        from_=repr(a), to=repr(b), interval="30m", format="json"
                    ),
                )
            )  # fmt: skip
            out.append(
                {
                    "query": f"{name}, 30m, {label} ({days:.1f} d)",
                    "rows": len(body["rows"]),
                    "seconds": seconds,
                    "encode_seconds": encode,
                    "events": n,
                    "events_per_s": n / seconds,
                    "lag_p99_ms": percentile(lags, 99) * 1e3,
                    "lag_max_ms": lags[-1] * 1e3 if lags else float("nan"),
                }
            )

    pages: list[tuple[str, dict[str, Any]]] = [
        ("CDR page 1 (50, newest first)", {}),
        ("CDR page 1000 (offset 49,950)", {"page": 1000}),
        ("CDR page 1, one queue", {"queue": meta["queues"][3]}),
        ("CDR page 1, last 24 h", {"from_": repr(day0), "to": repr(t1)}),
        ("CDR page 1, one agent", {"agent": meta["agents"][7]}),
    ]
    with Session(engine) as db:
        for label, extra in pages:
            kwargs: dict[str, Any] = {
                "caller": caller,
                "db": db,
                "state": state,
                "from_": None,
                "to": None,
                "queue": None,
                "agent": None,
                "number": None,
                "outcome": None,
                "page": 1,
                "page_size": 50,
                **extra,
            }
            body, (seconds, encode), lags = await timed(
                lambda kw=kwargs: run_in_threadpool(reports.cdrs, **kw)
            )
            out.append(
                {
                    "query": label,
                    "rows": len(body["items"]),
                    "total": body["total"],
                    "seconds": seconds,
                    "encode_seconds": encode,
                    "events": None,
                    "events_per_s": None,
                    "lag_p99_ms": percentile(lags, 99) * 1e3,
                    "lag_max_ms": lags[-1] * 1e3 if lags else float("nan"),
                }
            )
    return out


def restart(engine: Engine, tenant_id: int, meta: dict[str, Any]) -> dict[str, float]:
    """A server start over this record: the store's numbering scan and add_tenant."""
    start = time.perf_counter()
    store = EventStore(engine)
    init_s = time.perf_counter() - start
    setup = TenantSetup(
        id=tenant_id,
        slug="bench",
        queues=[QueueConfig(q, {q: 1}) for q in meta["queues"]],
        agents=[AgentConfig(a) for a in meta["agents"]],
        teams=meta["teams"],
    )
    center = LiveCenter(store)
    start = time.perf_counter()
    tenant = center.add_tenant(setup)
    add_s = time.perf_counter() - start
    replayed = count_events(engine, tenant_id, tenant.day_start, time.time() + 1.0)
    return {"store_init_s": init_s, "add_tenant_s": add_s, "today_events": replayed}


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--db", help="PostgreSQL URL (rows go under a fresh tenant id)")
    parser.add_argument(
        "--db-file", type=Path, help="SQLite file to keep (reused when it holds --calls calls)"
    )
    parser.add_argument("--fill", choices=("bulk", "append"), default="bulk")
    parser.add_argument("--batch", type=int, default=100_000, help="events per transaction")
    parser.add_argument("--keep", action="store_true", help="keep PostgreSQL rows afterwards")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = None
    if args.db:
        url = args.db
    else:
        if args.db_file is None:
            tmp = tempfile.TemporaryDirectory(prefix="hotline-bench-")
            args.db_file = Path(tmp.name) / "reports.db"
        url = f"sqlite:///{args.db_file.resolve()}"
    meta_file = None if args.db else args.db_file.with_name(args.db_file.name + ".json")
    engine = open_database(url)
    migrate(engine)
    pg = engine.dialect.name == "postgresql"
    tenant_id = random.randrange(10_000_000, 2_000_000_000) if pg else 1
    meta: dict[str, Any] | None = None
    if meta_file is not None and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta["requested"] != args.calls:
            raise SystemExit(f"{args.db_file} holds a different record; delete it or change it")
        meta["reused"] = True
    if meta is None:
        print(f"filling: {args.calls:,} calls ({args.fill}) …", flush=True)
        meta = fill(engine, tenant_id, args.calls, args.fill, args.batch)
        meta["requested"] = args.calls
        meta["reused"] = False
        if meta_file is not None:
            meta_file.write_text(json.dumps(meta))
    rows = asyncio.run(run_reports(engine, tenant_id, meta))
    start_figures = restart(engine, tenant_id, meta)
    size = args.db_file.stat().st_size if not args.db else None
    if pg and not args.keep:
        with engine.begin() as conn:
            for table in (StoredEvent, CallRecord, AgentPresence):
                conn.execute(delete(table).where(table.tenant_id == tenant_id))
    engine.dispose()
    if tmp is not None:
        tmp.cleanup()

    if args.json:
        meta = {k: v for k, v in meta.items() if k not in ("agents", "teams")}
        print(json.dumps({"fill": meta, "queries": rows, "restart": start_figures}))
        return
    span_days = (meta["t1"] - meta["t0"]) / 86400.0
    backend = "PostgreSQL" if size is None else f"SQLite ({size / 2**30:.2f} GiB file)"
    print(
        f"Reports over {meta['calls']:,} calls / {meta['events']:,} events "
        f"({span_days:.1f} days, {len(meta['agents'])} agents, {len(meta['queues'])} queues), "
        f"{backend}, {os.cpu_count()} CPUs"
    )
    if meta["reused"]:
        print("fill: reused the existing database")
    else:
        print(
            f"fill ({meta['method']}): {meta['seconds']:.0f} s in all; writing "
            f"{meta['write_seconds']:.0f} s = {meta['events_per_s_written']:,.0f} events/s"
        )
    print(
        f"{'query':<44} {'rows':>7} {'seconds':>8} {'encode':>6} {'events read':>12} "
        f"{'events/s':>9} {'loop lag p99/max ms':>19}"
    )
    for r in rows:
        events = "" if r["events"] is None else f"{r['events']:,}"
        rate = "" if r["events_per_s"] is None else f"{r['events_per_s']:,.0f}"
        label = r["query"] if "total" not in r else f"{r['query']} of {r['total']:,}"
        lag = f"{r['lag_p99_ms']:.0f} / {r['lag_max_ms']:.0f}"
        print(
            f"{label:<44} {r['rows']:>7,} {r['seconds']:>8.2f} {r['encode_seconds']:>6.2f} "
            f"{events:>12} {rate:>9} {lag:>19}"
        )
    print(
        f"restart: EventStore() {start_figures['store_init_s']:.2f} s; add_tenant "
        f"{start_figures['add_tenant_s']:.2f} s (replays today's "
        f"{start_figures['today_events']:,} events)"
    )
    print(
        "seconds: the API handler (its work in the thread pool, as the server runs it) plus "
        "encode: FastAPI's jsonable_encoder + JSONResponse, on the event loop; events/s: events "
        "in the span / seconds; loop lag: how late a 10 ms timer fired on the event loop "
        "meanwhile (the live ACD and every API request share that loop)."
    )


if __name__ == "__main__":
    main()
