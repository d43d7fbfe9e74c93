"""CTI event stream under load: 1,000 WebSocket clients receiving the events of a live tenant.

    python bench/server_websocket.py                          # 1,000 clients, 3 load steps
    python bench/server_websocket.py --clients 200 --rates 1,5 --duration 10
    python bench/server_websocket.py --no-compression          # clients refuse permessage-deflate

The real server runs as a subprocess (``python -m hotline serve``, SQLite in a temp dir). A
tenant is created through the API (platform admin from ``HOTLINE_ADMIN_PASSWORD``), then its
skills, queues, agents (wrap-up 0, logged in ready) and supervisors. ``--clients`` WebSocket
clients (the ``websockets`` package, one asyncio process) connect to ``/api/v1/events`` with
log-in tokens: most as the tenant admin, who sees every event, a share as supervisors of one
team and queue each (``--supervisor-share``). Then calls go through the API at each rate of
``--rates`` (calls/s, for ``--duration`` s each; a separate process posts ``/calls``,
``/calls/{id}/answer`` and, ``--talk`` s later, ``/calls/{id}/hangup``), after an idle step with
only the once-a-second queue statistics.

Per step: events the server stored per second, WebSocket messages received per second by all
clients, delivery latency of events (receive time - the event's ``t``, the server's Unix time
when it applied the request; so it includes the commit, the fan-out and the client's own
scheduling), the API's latency for ``POST /calls``, and the CPU used by the server and by the
client process. Client, traffic generator and server share the machine: on a 2-core machine a
saturated client inflates the latency it measures, so read the CPU columns with it. A step
beyond the server's capacity builds a backlog: its latency then grows with the step's length
and the next step inherits it; at the end the run waits (up to 60 s) for the stream to drain.
Messages are attributed to a step by their ``t``, so msgs/s is the rate the step produced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from server_harness import API, free_port, percentile, start_server, stop_server, wait_ready

TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- helpers
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --------------------------------------------------------------------------- traffic (child)
async def traffic(spec: dict[str, Any]) -> dict[str, Any]:
    """Open-loop calls at ``rate``/s for ``duration`` s through the API; runs in its own
    process so its CPU does not slow the WebSocket clients' event loop."""
    rate, duration, talk = spec["rate"], spec["duration"], spec["talk"]
    headers = {"Authorization": f"Bearer {spec['token']}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    api_ms: list[float] = []
    errors = 0
    done = 0
    async with httpx.AsyncClient(
        base_url=spec["base"] + API, headers=headers, limits=limits, timeout=60.0
    ) as http:

        async def one(n: int) -> None:
            nonlocal errors, done
            try:
                t0 = time.perf_counter()
                r = await http.post(
                    "/calls", json={"queue": spec["queues"][n % len(spec["queues"])]}
                )
                api_ms.append((time.perf_counter() - t0) * 1e3)
                r.raise_for_status()
                info = r.json()
                call = info["call"]
                for _ in range(400):  # all agents busy: wait for the offer
                    if info.get("state") == "ringing":
                        break
                    await asyncio.sleep(0.05)
                    info = (await http.get(f"/calls/{call}")).json()
                (
                    await http.post(f"/calls/{call}/answer", json={"agent": info["agents"][0]})
                ).raise_for_status()
                await asyncio.sleep(talk)
                (await http.post(f"/calls/{call}/hangup")).raise_for_status()
                done += 1
            except (httpx.HTTPError, KeyError, IndexError):
                errors += 1

        cpu0 = (cpu_seconds(spec["server_pid"]), cpu_seconds(spec["client_pid"]))
        start = time.time()
        tasks = []
        n_calls = int(rate * duration)
        for n in range(n_calls):
            delay = start + n / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        if n_calls == 0:
            await asyncio.sleep(duration)
        await asyncio.gather(*tasks)
        end = time.time()
        cpu1 = (cpu_seconds(spec["server_pid"]), cpu_seconds(spec["client_pid"]))
    api_ms.sort()
    return {
        "start": start,
        "end": end,
        "calls": done,
        "errors": errors,
        "api_p50_ms": percentile(api_ms, 50),
        "api_p99_ms": percentile(api_ms, 99),
        "server_cpu": (cpu1[0] - cpu0[0]) / (end - start),
        "client_cpu": (cpu1[1] - cpu0[1]) / (end - start),
    }


# --------------------------------------------------------------------------- server + setup
def configure(base: str, admin_password: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tenant, skills, queues, agents and supervisors through the API; returns tokens."""
    password = secrets.token_urlsafe(12)
    with httpx.Client(base_url=base + API, timeout=60.0) as http:

        def call(method: str, path: str, token: str | None = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = http.request(method, path, headers=headers, **kw)
            if r.status_code >= 400:
                raise SystemExit(f"{method} {path}: {r.status_code} {r.text}")
            return r.json() if r.content else None

        def login(tenant: str, user: str, pw: str) -> str:
            body = {"tenant": tenant, "username": user, "password": pw}
            return str(call("POST", "/auth/login", json=body)["token"])

        root = login("platform", "admin", admin_password)
        call(
            "POST",
            "/tenants",
            root,
            json={
                "slug": "bench",
                "name": "Bench",
                "admin": {"username": "boss", "password": password},
            },
        )
        admin = login("bench", "boss", password)
        queues = [f"q{i}" for i in range(args.queues)]
        for i, q in enumerate(queues):
            call("POST", "/skills", admin, json={"code": f"s{i}"})
            call("POST", "/queues", admin, json={"id": q, "skills": {f"s{i}": 1}})
        supervisors = []
        for i, q in enumerate(queues):
            user = f"sup{i}"
            body: dict[str, Any] = {
                "username": user, "password": password, "role": "supervisor",
                "teams": [f"t{i}"], "queues": [q],
            }  # fmt: skip
            call("POST", "/users", admin, json=body)
            supervisors.append(login("bench", user, password))
        for j in range(args.agents):
            skills = {f"s{(j + k) % args.queues}": 5 for k in range(min(2, args.queues))}
            body = {
                "code": f"a{j}", "team": f"t{j % args.queues}", "skills": skills, "wrap_up": 0,
            }  # fmt: skip
            call("POST", "/agents", admin, json=body)
        for j in range(args.agents):
            call("POST", f"/agents/a{j}/login", admin, json={"ready": True})
    return {"admin": admin, "supervisors": supervisors, "queues": queues}


# --------------------------------------------------------------------------- clients
class Received:
    """Every message's event time and receive time (compact arrays; millions of them)."""

    def __init__(self) -> None:
        self.event_t = array("d")
        self.recv_t = array("d")
        self.stats_t = array("d")
        self.stats_recv = array("d")
        self.by_admin = 0
        self.seqs: set[int] = set()
        self.closed: dict[int, int] = {}
        self.hellos = 0
        self.last = time.time()


async def client(
    url: str,
    token: str,
    admin: bool,
    out: Received,
    compression: str | None,
    gate: asyncio.Semaphore,
) -> None:
    event_t, recv_t = out.event_t, out.recv_t
    stats_t, stats_recv = out.stats_t, out.stats_recv
    code = 0
    try:
        async with gate:  # a bounded number of handshakes in flight
            ws = await connect(
                f"{url}?token={token}", compression=compression, max_size=2**20, open_timeout=60
            )
        async with ws:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                t = msg.get("t")
                if t is None:
                    out.hellos += msg.get("type") == "hello"
                    continue
                if "seq" in msg:
                    event_t.append(t)
                    recv_t.append(now)
                    out.last = now
                    if admin:
                        out.by_admin += 1
                        out.seqs.add(msg["seq"])
                else:
                    stats_t.append(t)
                    stats_recv.append(now)
            code = ws.close_code or 0
    except asyncio.CancelledError:
        return
    except Exception:  # connection refused/reset: count it with the closes
        code = -1
    out.closed[code] = out.closed.get(code, 0) + 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    admin_password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        env = {**os.environ, "HOTLINE_ADMIN_PASSWORD": admin_password}
        server = start_server(Path(tmp), f"sqlite:///{Path(tmp) / 'ws.db'}", port, env)
        try:
            wait_ready(base, server)
            cfg = await asyncio.to_thread(configure, base, admin_password, args)
            return await measure(args, base, server, cfg)
        except BaseException:
            print((Path(tmp) / "server.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop_server(server, 20)


async def measure(
    args: argparse.Namespace, base: str, server: subprocess.Popen[bytes], cfg: dict[str, Any]
) -> dict[str, Any]:
    url = base.replace("http", "ws") + API + "/events"
    out = Received()
    compression = None if args.no_compression else "deflate"
    n_sup = round(args.clients * args.supervisor_share)
    tokens = [(cfg["admin"], True)] * (args.clients - n_sup) + [
        (cfg["supervisors"][i % len(cfg["supervisors"])], False) for i in range(n_sup)
    ]
    gate = asyncio.Semaphore(50)
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(client(url, tok, adm, out, compression, gate)) for tok, adm in tokens
    ]
    async with httpx.AsyncClient() as http:  # every client subscribed once it got its hello
        while True:
            await asyncio.sleep(0.5)
            if len(out.closed) or time.perf_counter() - t0 > 120:
                break
            if out.hellos >= args.clients:
                break
        connect_s = time.perf_counter() - t0
        steps = []
        for rate in [0.0, *args.rates]:
            duration = args.idle if rate == 0 else args.duration
            before = (await http.get(f"{base}{API}/health")).json()["events_stored"]
            spec = {
                "base": base, "token": cfg["admin"], "rate": rate, "duration": duration,
                "talk": args.talk, "queues": cfg["queues"], "server_pid": server.pid,
                "client_pid": os.getpid(),
            }  # fmt: skip
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--traffic-child", json.dumps(spec),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, _ = await proc.communicate()
            step = json.loads(stdout)
            health = (await http.get(f"{base}{API}/health")).json()
            step["rate"] = rate
            step["events_stored"] = health["events_stored"] - before
            steps.append(step)
        # Let the stream drain: stop when no event arrived for 2 s (at most 60 s).
        drain_start = time.time()
        while time.time() - out.last < 2.0 and time.time() - drain_start < 60.0:
            await asyncio.sleep(0.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return summarise(args, out, steps, connect_s, n_sup)


def summarise(
    args: argparse.Namespace,
    out: Received,
    steps: list[dict[str, Any]],
    connect_s: float,
    n_sup: int,
) -> dict[str, Any]:
    rows = []
    ev_t, rx_t = out.event_t, out.recv_t
    st_t, st_rx = out.stats_t, out.stats_recv
    for step in steps:
        lo, hi = step["start"], step["end"]
        lat = sorted(rx_t[i] - ev_t[i] for i in range(len(ev_t)) if lo <= ev_t[i] < hi)
        stats_lat = sorted(st_rx[i] - st_t[i] for i in range(len(st_t)) if lo <= st_t[i] < hi)
        span = step["end"] - lo
        rows.append(
            {
                **step,
                "events_per_s": step["events_stored"] / span,
                "messages_per_s": (len(lat) + len(stats_lat)) / span,
                "event_messages": len(lat),
                "stats_messages": len(stats_lat),
                "p50_ms": percentile(lat, 50) * 1e3,
                "p99_ms": percentile(lat, 99) * 1e3,
                "max_ms": (lat[-1] if lat else float("nan")) * 1e3,
                "stats_p50_ms": percentile(stats_lat, 50) * 1e3,
                "stats_p99_ms": percentile(stats_lat, 99) * 1e3,
            }
        )
    admins = args.clients - n_sup
    expected = admins * len(out.seqs)
    return {
        "clients": args.clients,
        "supervisor_clients": n_sup,
        "compression": not args.no_compression,
        "connect_s": connect_s,
        "steps": rows,
        "admin_delivery": out.by_admin / expected if expected else None,
        "closed": out.closed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rates", default="1,3,6", help="calls per second, one step each")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per step")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle step")
    parser.add_argument("--talk", type=float, default=1.0, help="seconds from answer to hang-up")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--supervisor-share", type=float, default=0.2)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--traffic-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.traffic_child:
        print(json.dumps(asyncio.run(traffic(json.loads(args.traffic_child)))))
        return
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    limit = raise_fd_limit(2 * args.clients + 256)  # the server inherits it too
    try:
        import uvloop

        runner: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio"
    load0 = os.getloadavg()[0]
    result = runner(run(args))
    result["loadavg"] = (load0, os.getloadavg()[0])
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"CTI event stream: {result['clients']:,} WebSocket clients "
        f"({result['supervisor_clients']} as supervisors of 1 team + 1 queue, the rest as the "
        f"tenant admin), {args.agents} agents, {args.queues} queues, permessage-deflate "
        f"{'on' if result['compression'] else 'off'}; clients on {loop_name}; fd limit {limit}"
    )
    print(
        f"connected in {result['connect_s']:.1f} s; {os.cpu_count()} CPUs shared by server, "
        f"clients and traffic generator; load average {result['loadavg'][0]:.2f} before, "
        f"{result['loadavg'][1]:.2f} after"
    )
    print(
        f"{'calls/s':>7} {'events/s':>8} {'msgs/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'stats p99':>9} {'POST p50':>8} {'srv CPU':>7} {'cli CPU':>7} "
        f"{'calls':>5} {'err':>3}"
    )
    for r in result["steps"]:
        label = "idle" if r["rate"] == 0 else f"{r['rate']:g}"
        post = "" if r["rate"] == 0 else f"{r['api_p50_ms']:.0f} ms"
        print(
            f"{label:>7} {r['events_per_s']:>8.1f} {r['messages_per_s']:>8,.0f} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['max_ms']:>7.0f} "
            f"{r['stats_p99_ms']:>7.1f}ms {post:>8} {100 * r['server_cpu']:>6.0f}% "
            f"{100 * r['client_cpu']:>6.0f}% {r['calls']:>5} {r['errors']:>3}"
        )
    delivery = result["admin_delivery"]
    print(
        "latency: event received - event t (server Unix time), all clients; stats: the "
        "queue_stats ticks; msgs/s: events + ticks received by all clients; CPU: share of one "
        "core."
    )
    print(
        f"admin clients received {100 * delivery:.2f}% of the events they should have; "
        f"connections ended early: {sum(v for k, v in result['closed'].items())} "
        f"(by close code: {result['closed'] or 'none'})"
        if delivery is not None
        else "no events were delivered"
    )


if __name__ == "__main__":
    main()
