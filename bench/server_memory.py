"""Server memory with a large tenant: 10,000 agents and 1,000 queues, idle and under load.

    python bench/server_memory.py                        # 10,000 agents, 1,000 queues
    python bench/server_memory.py --agents 2000 --queues 200 --duration 10

The configuration is written straight into a new SQLite database (as the API would store it:
skills, queues with their settings, agents with 3 skills each and a team, a user account
for the first ``--users`` agents), then the real
server starts on it as a subprocess (``python -m hotline serve``) and its resident set is read
from ``/proc/<pid>/status`` (VmRSS now, VmHWM the peak):

1. idle, after start-up (every agent logged out);
2. after the tenant admin logs every agent in, ready, through the API;
3. while calls flow through the API (``POST /calls``, answer, hang-up ``--talk`` s later) at
   ``--rate`` calls/s for ``--duration`` s, sampled every second; then idle again;
4. a shift start: ``--users`` of the agents' own user accounts log in (``POST /auth/login``,
   ``--storm`` at once). Each log-in verifies an Argon2id hash, which takes the hasher's
   memory cost (64 MiB by default) for its duration, on one of the server's worker threads.

The goal is a peak under 1 GB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hotline.db.database import migrate, open_database
from hotline.db.schema import Agent, Queue, Skill, Tenant, User
from hotline.server.catalog import QueueIn, ensure_platform, queue_settings
from hotline.server.security import hash_password
from server_harness import API, free_port, start_server, stop_server, wait_ready

GOAL_MB = 1024.0
STRATEGIES = ("longest-idle", "least-calls", "best-skill", "round-robin", "top-down")


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024.0
    return out


def seed(url: str, agents: int, queues: int, users: int, password: str) -> None:
    """Write the tenant's configuration the way the API stores it."""
    engine = open_database(url)
    migrate(engine)
    rng = random.Random(1)
    with Session(engine) as db:
        ensure_platform(db, password)
        now = time.time()
        tenant = Tenant(slug="bench", name="Bench", settings={}, created_at=now)
        db.add(tenant)
        db.flush()
        db.add(
            User(
                tenant_id=tenant.id, username="boss", display_name="boss",
                password_hash=hash_password(password), role="admin", teams=[], queues=[],
                created_at=now,
            )
        )  # fmt: skip
        db.execute(
            insert(Skill), [{"tenant_id": tenant.id, "code": f"s{i}"} for i in range(queues)]
        )
        rows = []
        for i in range(queues):
            spec = QueueIn.model_validate(
                {"id": f"q{i}", "skills": {f"s{i}": 1}, "strategy": STRATEGIES[i % 5]}
            )
            rows.append(
                {
                    "tenant_id": tenant.id,
                    "code": spec.id,
                    "labels": {},
                    "settings": queue_settings(spec),
                }
            )
        db.execute(insert(Queue), rows)
        # Users for the first ``users`` agents (the agents' own log-ins); one Argon2 hash
        # serves them all (same password; the salt is inside the hash).
        shared_hash = hash_password(password)
        accounts = [
            {
                "tenant_id": tenant.id, "username": f"u{j}", "display_name": f"Agent {j}",
                "password_hash": shared_hash, "role": "agent", "teams": [], "queues": [],
                "active": True, "created_at": now,
            }
            for j in range(users)
        ]  # fmt: skip
        if accounts:  # (an empty list would insert one row of defaults)
            db.execute(insert(User), accounts)
        user_ids: dict[str, int] = dict(
            db.execute(select(User.username, User.id).where(User.tenant_id == tenant.id)).all()
        )
        db.execute(
            insert(Agent),
            [
                {
                    "tenant_id": tenant.id,
                    "code": f"a{j}",
                    "user_id": user_ids.get(f"u{j}"),
                    "display_name": f"Agent {j}",
                    "team": f"t{j % 100}",
                    "skills": {f"s{i}": rng.randint(1, 10) for i in rng.sample(range(queues), 3)},
                    "wrap_up": 0.0,
                }
                for j in range(agents)
            ],
        )
        db.commit()
    engine.dispose()


async def load(
    args: argparse.Namespace, http: httpx.AsyncClient, pid: int, password: str
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    r = await http.post(
        f"{API}/auth/login", json={"tenant": "bench", "username": "boss", "password": password}
    )
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    # Every agent logs in, ready (64 requests in flight).
    gate = asyncio.Semaphore(64)

    login_errors = 0
    problems: set[str] = set()

    async def login(code: str) -> None:
        nonlocal login_errors
        async with gate:
            for _ in range(3):
                try:
                    r = await http.post(f"{API}/agents/{code}/login", json={"ready": True})
                    r.raise_for_status()
                    return
                except httpx.HTTPError as err:
                    login_errors += 1
                    detail = getattr(getattr(err, "response", None), "text", "") or repr(err)
                    problems.add(f"log-in: {type(err).__name__} {detail[:200]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(login(f"a{j}") for j in range(args.agents)))
    figures["login_s"] = time.perf_counter() - t0
    figures["login_errors"] = login_errors
    await asyncio.sleep(1.0)
    figures["logged_in"] = memory_mb(pid)

    # Calls at a steady rate; each is answered at once and hung up --talk seconds later.
    samples: list[float] = []
    errors = 0
    done = 0
    connected = 0
    peak_connected = 0
    queues = args.queues

    async def one(n: int) -> None:
        nonlocal errors, done, connected, peak_connected
        try:
            r = await http.post(f"{API}/calls", json={"queue": f"q{n * 7919 % queues}"})
            r.raise_for_status()
            info = r.json()
            if info.get("state") != "ringing":
                errors += 1  # every queue has ready agents at this load: should not happen
                return
            call = info["call"]
            body = {"agent": info["agents"][0]}
            (await http.post(f"{API}/calls/{call}/answer", json=body)).raise_for_status()
            connected += 1
            peak_connected = max(peak_connected, connected)
            await asyncio.sleep(args.talk)
            (await http.post(f"{API}/calls/{call}/hangup")).raise_for_status()
            connected -= 1
            done += 1
        except (httpx.HTTPError, KeyError, IndexError) as err:
            errors += 1
            detail = getattr(getattr(err, "response", None), "text", "") or repr(err)
            problems.add(f"call: {type(err).__name__} {detail[:200]}")

    async def sampler(stop: asyncio.Event) -> None:
        while not stop.is_set():
            samples.append(memory_mb(pid)["VmRSS"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(stop))
    start = time.time()
    tasks = []
    for n in range(int(args.rate * args.duration)):
        delay = start + n / args.rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    figures["during_calls"] = memory_mb(pid)
    await asyncio.gather(*tasks)
    elapsed = time.time() - start  # arrivals plus the last calls' talk time
    stop.set()
    await sampling
    health = (await http.get(f"{API}/health")).json()
    await asyncio.sleep(2.0)
    figures["after_calls"] = memory_mb(pid)

    # Shift start: the agents' own users log in at once (Argon2id verification each).
    storm = asyncio.Semaphore(args.storm)
    storm_errors = 0

    async def user_login(j: int) -> None:
        nonlocal storm_errors
        body = {"tenant": "bench", "username": f"u{j}", "password": password}
        async with storm:
            try:
                (await http.post(f"{API}/auth/login", json=body)).raise_for_status()
            except httpx.HTTPError as err:
                storm_errors += 1
                detail = getattr(getattr(err, "response", None), "text", "") or repr(err)
                problems.add(f"user log-in: {type(err).__name__} {detail[:200]}")

    t0 = time.perf_counter()
    await asyncio.gather(*(user_login(j) for j in range(args.users)))
    figures["storm_s"] = time.perf_counter() - t0
    figures["storm_errors"] = storm_errors
    await asyncio.sleep(1.0)
    figures["after_storm"] = memory_mb(pid)
    figures.update(
        calls=done,
        errors=errors,
        calls_s=elapsed,
        peak_connected=peak_connected,
        rss_samples=samples,
        events_stored=health["events_stored"],
        problems=sorted(problems),
    )
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'memory.db'}"
        t0 = time.perf_counter()
        seed(url, args.agents, args.queues, args.users, password)
        seed_s = time.perf_counter() - t0
        port = free_port()
        t0 = time.perf_counter()
        server = start_server(Path(tmp), url, port)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120.0
            ) as http:
                await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}", server, 300)
                start_s = time.perf_counter() - t0
                await asyncio.sleep(2.0)
                idle = memory_mb(server.pid)
                figures = await load(args, http, server.pid, password)
            figures.update(seed_s=seed_s, start_s=start_s, idle=idle)
            figures["peak"] = memory_mb(server.pid)["VmHWM"]
            log = (Path(tmp) / "server.log").read_text(errors="replace").splitlines()
            figures["server_log"] = [
                line for line in log if not line.startswith(("INFO", "Hotline is serving"))
            ][:20]
            return figures
        except BaseException:
            print((Path(tmp) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop_server(server, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=40.0, help="calls per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of calls")
    parser.add_argument("--talk", type=float, default=20.0, help="seconds answered to hang-up")
    parser.add_argument("--users", type=int, default=400, help="agents' users that log in")
    parser.add_argument("--storm", type=int, default=100, help="user log-ins in flight")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    figures = asyncio.run(run(args))
    figures["loadavg"] = (load0, os.getloadavg()[0])
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"Server memory: {args.agents:,} agents, {args.queues:,} queues (SQLite); "
        f"{os.cpu_count()} CPUs, load average {figures['loadavg'][0]:.2f} before, "
        f"{figures['loadavg'][1]:.2f} after"
    )
    print(
        f"seeded in {figures['seed_s']:.1f} s; server up in {figures['start_s']:.1f} s; "
        f"{args.agents:,} agent log-ins through the API in {figures['login_s']:.1f} s "
        f"({args.agents / figures['login_s']:.0f}/s, 64 in flight)"
    )
    print(f"{'phase':<52} {'RSS MB':>7} {'peak so far':>11}")
    samples = figures["rss_samples"] or [float("nan")]
    rows = [
        ("idle, after start-up", figures["idle"]["VmRSS"], figures["idle"]["VmHWM"]),
        (
            f"all {args.agents:,} agents logged in, ready",
            figures["logged_in"]["VmRSS"],
            figures["logged_in"]["VmHWM"],
        ),
        (
            f"calls arriving at {args.rate:g}/s, talk {args.talk:g} s (highest sample)",
            max(samples),
            figures["during_calls"]["VmHWM"],
        ),
        (
            "after the calls, idle again",
            figures["after_calls"]["VmRSS"],
            figures["after_calls"]["VmHWM"],
        ),
        (
            f"{args.users} users log in, {args.storm} at once (after)",
            figures["after_storm"]["VmRSS"],
            figures["peak"],
        ),
    ]
    for label, mb, peak in rows:
        print(f"{label:<52} {mb:>7.0f} {peak:>11.0f}")
    print(
        f"calls: {figures['calls']:,} completed in {figures['calls_s']:.0f} s, "
        f"{figures['errors']} errors, up to {figures['peak_connected']:,} connected at once; "
        f"{figures['events_stored']:,} events stored; log-in retries {figures['login_errors']}"
    )
    print(
        f"user log-ins: {args.users} in {figures['storm_s']:.1f} s "
        f"({args.users / max(figures['storm_s'], 1e-9):.0f}/s), {figures['storm_errors']} errors"
    )
    for problem in figures["problems"]:
        print(f"  error seen: {problem}")
    if figures["problems"]:
        for line in figures["server_log"] or ["(nothing but INFO lines)"]:
            print(f"  server log: {line[:200]}")
    for label, peak in (
        ("agents logged in, calls flowing", figures["after_calls"]["VmHWM"]),
        ("with the users' log-in burst", figures["peak"]),
    ):
        verdict = "PASS" if peak < GOAL_MB else "MISS"
        print(f"Goal peak RSS < {GOAL_MB:.0f} MB, {label}: {peak:.0f} MB → {verdict}")


if __name__ == "__main__":
    main()
