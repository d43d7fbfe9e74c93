"""Live ACD + event store throughput: how many events per second the server's core sustains.

    python bench/server_events.py                        # SQLite file in a temp dir
    python bench/server_events.py --db postgresql://user:pw@host/db
    python bench/server_events.py --concurrency 1,50,500 --calls 5000

The server's write path without HTTP: a ``LiveCenter`` over an ``EventStore``, one tenant with
``--agents`` agents (logged in, ready, wrap-up 0) and ``--queues`` queues. ``--concurrency``
workers each loop, as fast as they can: a call arrives (``submit``), waits for the ACD's offer,
is answered (``submit``) and hung up (``submit``). Every ``submit`` returns only once the batch
it joined is committed (group commit), so a request's latency is the time to be applied *and*
made durable. Printed per concurrency level: events stored per second, requests acknowledged
per second, p50/p99 acknowledgement latency, and how big the group commits were and how much
of the wall time the writer thread spent inside ``EventStore.append``.

With PostgreSQL the benchmark writes under a fresh tenant id and deletes its rows afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from hotline.acd.commands import Command, Offer
from hotline.acd.config import AgentConfig, QueueConfig
from hotline.db.database import migrate, open_database
from hotline.db.schema import AgentPresence, CallRecord, StoredEvent
from hotline.events.store import EventStore
from hotline.events.types import Event
from hotline.server.live import LiveCenter, Tenant, TenantSetup
from server_harness import percentile


def setup(tenant_id: int, agents: int, queues: int, skills_per_agent: int) -> TenantSetup:
    """``queues`` queues with one skill each; every agent holds ``skills_per_agent`` of them,
    spread so each queue has the same number of agents."""
    qcfgs = [QueueConfig(f"q{i}", {f"s{i}": 1}) for i in range(queues)]
    acfgs = [
        AgentConfig(
            f"a{j}",
            {f"s{(j + k) % queues}": 5 for k in range(min(skills_per_agent, queues))},
            wrap_up=0.0,
        )
        for j in range(agents)
    ]
    return TenantSetup(id=tenant_id, slug="bench", queues=qcfgs, agents=acfgs)


async def measure(url: str, args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    engine = open_database(url)
    migrate(engine)
    pg = engine.dialect.name == "postgresql"
    tenant_id = random.randrange(10_000_000, 2_000_000_000) if pg else 1
    store = EventStore(engine)

    # Time the writer thread spends in EventStore.append, and how big each group commit is.
    writes = {"batches": 0, "events": 0, "seconds": 0.0}
    original_append = store.append

    def timed_append(batch: Any) -> None:
        t0 = time.perf_counter()
        original_append(batch)
        writes["seconds"] += time.perf_counter() - t0
        writes["batches"] += 1
        writes["events"] += sum(len(ev) for _, ev in batch)

    store.append = timed_append  # type: ignore[method-assign,unused-ignore]
    center = LiveCenter(store)
    center.add_tenant(setup(tenant_id, args.agents, args.queues, args.skills))

    loop = asyncio.get_running_loop()
    offers: dict[str, asyncio.Future[str]] = {}

    def on_batch(tenant: Tenant, events: list[Event], commands: list[Command]) -> None:
        for cmd in commands:
            if type(cmd) is Offer:
                fut = offers.pop(cmd.call, None)
                if fut is not None and not fut.done():
                    fut.set_result(cmd.agent)

    center.listeners.append(on_batch)
    await center.start()

    def login_all(t: Tenant, now: float) -> None:
        for j in range(args.agents):
            t.acd.login(now, f"a{j}", ready=True)

    await center.submit(tenant_id, login_all)

    latencies: list[float] = []
    next_call = 0
    calls = args.calls

    async def timed(op: Any) -> None:
        t0 = time.perf_counter()
        await center.submit(tenant_id, op)
        latencies.append(time.perf_counter() - t0)

    async def one_call(n: int) -> None:
        call_id = f"c{n}"
        queue = f"q{n % args.queues}"
        offered: asyncio.Future[str] = loop.create_future()
        offers[call_id] = offered
        await timed(lambda t, now: t.acd.call_arrived(now, call_id, queue))
        agent = await offered  # at once if an agent was free, else when one frees up
        await timed(lambda t, now: t.acd.answer(now, call_id, agent))
        await timed(lambda t, now: t.acd.hangup(now, call_id))

    async def worker() -> None:
        nonlocal next_call
        while next_call < calls:
            next_call += 1
            await one_call(next_call - 1)

    events0 = center.stored_events
    writes.update(batches=0, events=0, seconds=0.0)
    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    stored = center.stored_events - events0
    await center.stop()
    if pg:
        with engine.begin() as conn:
            for table in (StoredEvent, CallRecord, AgentPresence):
                conn.execute(delete(table).where(table.tenant_id == tenant_id))
    engine.dispose()
    latencies.sort()
    return {
        "concurrency": concurrency,
        "calls": calls,
        "requests": len(latencies),
        "events": stored,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "events_per_s": stored / elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "calls_per_s": calls / elapsed,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "commits": writes["batches"],
        "events_per_commit": writes["events"] / max(1, writes["batches"]),
        "append_share": writes["seconds"] / elapsed,
        "append_us_per_event": writes["seconds"] / max(1, writes["events"]) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a new SQLite file per run)")
    parser.add_argument("--calls", type=int, default=4_000, help="calls per concurrency level")
    parser.add_argument(
        "--concurrency",
        default="1,10,100,1000",
        help="comma-separated numbers of concurrent workers (one run each)",
    )
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--skills", type=int, default=3, help="skills (queues) per agent")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as uvicorn does)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    import hotline.acd.engine as engine_module

    compiled = not (engine_module.__file__ or "").endswith(".py")
    rows = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        for level in levels:
            url = args.db or f"sqlite:///{Path(tmp) / f'events-{level}.db'}"
            if args.uvloop:
                import uvloop

                rows.append(uvloop.run(measure(url, args, level)))
            else:
                rows.append(asyncio.run(measure(url, args, level)))
    if args.json:
        print(json.dumps({"compiled": compiled, "db": args.db or "sqlite", "runs": rows}))
        return
    backend = "PostgreSQL" if args.db and args.db.startswith("postgres") else "SQLite (WAL)"
    print(
        f"Live ACD + event store, {backend}, {args.agents} agents / {args.queues} queues, "
        f"{args.calls:,} calls per run (3 requests each), compiled={compiled}, "
        f"loop={'uvloop' if args.uvloop else 'asyncio'}, {os.cpu_count()} CPUs (load average "
        f"{load0:.2f} before, {os.getloadavg()[0]:.2f} after)"
    )
    header = (
        f"{'workers':>7} {'events/s':>9} {'acks/s':>8} {'calls/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'commits':>7} {'ev/commit':>9} {'in append':>9} "
        f"{'µs/ev':>6} {'CPU':>5}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['concurrency']:>7} {r['events_per_s']:>9,.0f} {r['requests_per_s']:>8,.0f} "
            f"{r['calls_per_s']:>8,.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['max_ms']:>7.1f} {r['commits']:>7,} {r['events_per_commit']:>9.1f} "
            f"{100 * r['append_share']:>8.0f}% {r['append_us_per_event']:>6.0f} "
            f"{100 * r['cpu_seconds'] / r['seconds']:>4.0f}%"
        )
    print(
        "events/s: events committed; acks/s: submit() calls completed; latency: submit() to "
        "acknowledgement (applied + committed); in append: share of wall time the writer "
        "thread spent in EventStore.append; µs/ev: its time per event; CPU: this process's "
        "CPU time / wall time (loop + writer thread; 100% = one core)."
    )


if __name__ == "__main__":
    main()
