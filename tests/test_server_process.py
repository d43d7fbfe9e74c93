"""`hotline serve --demo` as a real process: a person takes a simulated call over HTTP and the
CTI WebSocket; acknowledged events survive ``kill -9`` (SQLite and PostgreSQL); SIGTERM shuts
down cleanly; and the command line's start-up output and errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from websockets.sync.client import connect

from conftest import free_port
from hotline.db.database import open_database
from hotline.db.schema import StoredEvent, Tenant
from hotline.server import demo

PASSWORD = "Lantern-Demo-7f3k9q"
API = "/api/v1"
TENANT = "demo-bank"
# the scenario's queues, and the queues of the demo's real phones
DEMO_QUEUES = {q.id for q in demo.demo_scenario().queues} | {demo.PHONE_QUEUE, demo.CARDS_QUEUE}
AGENTS = [f"agent-{i:03d}" for i in range(1, 17)] + [f"senior-{i:03d}" for i in range(1, 5)]
Json = dict[str, Any]


# ---------------------------------------------------------------------- helpers
class Server:
    """One ``hotline serve --demo`` process at a time on a data dir (and database), restartable;
    its output goes to files so a chatty server never blocks on a full pipe."""

    def __init__(self, data_dir: Path, db: str | None = None, password: str | None = PASSWORD):
        self.data_dir = data_dir
        self.db = db
        self.password = password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "hotline", "serve", "--demo"]
        args += ["--data-dir", str(self.data_dir), "--port", str(self.port)]
        args += ["--sip", "127.0.0.1:0"]  # SIP on a free port: the demo's phones come up too
        return args + (["--db", self.db] if self.db else [])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env["PYTHONUNBUFFERED"] = "1"
        if self.password is not None:
            env["HOTLINE_DEMO_PASSWORD"] = self.password
        return env

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=err, env=self.env(), cwd=self.data_dir
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"server exited with {code} while starting:\n{self.stderr()[-3000:]}")
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after {timeout} s:\n{self.stderr()}")
            time.sleep(0.1)

    @property
    def out_path(self) -> Path:
        return self.data_dir / f"stdout-{self.runs}.txt"

    @property
    def err_path(self) -> Path:
        return self.data_dir / f"stderr-{self.runs}.txt"

    def stdout(self) -> str:
        return self.out_path.read_text("utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text("utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def login(self, username: str, password: str | None = None, tenant: str = TENANT) -> str:
        r = httpx.post(
            f"{self.url}{API}/auth/login",
            json={"tenant": tenant, "username": username, "password": password or PASSWORD},
            timeout=15,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}{API}", headers={"Authorization": f"Bearer {token}"}, timeout=15
        )


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


class EventStream:
    """A CTI WebSocket read on a thread; every message kept, in order."""

    def __init__(self, server: Server, token: str) -> None:
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(
            connect(
                f"ws://127.0.0.1:{server.port}{API}/events?token={token}",
                open_timeout=10,
                max_size=None,
            )
        )
        self.hello: Json = json.loads(self.ws.recv(timeout=10))
        self.messages: list[Json] = []
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                self.messages.append(json.loads(text))
        except Exception:  # the server went away (kill -9): the stream just ends
            pass
        finally:
            self.ended.set()

    def events(self) -> list[Json]:
        """Stored events (those with a ``seq``), not statistics ticks."""
        return [m for m in list(self.messages) if "seq" in m]

    def wait_for(self, match: Callable[[Json], bool], timeout: float) -> Json | None:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            messages = list(self.messages)
            for m in messages[seen:]:
                if match(m):
                    return m
            seen = len(messages)
            if time.monotonic() > deadline or self.ended.is_set():
                return None
            time.sleep(0.05)

    def close(self) -> None:
        with suppress(Exception):
            self._stack.close()
        self._thread.join(5)


def all_cdrs(api: httpx.Client, **query: str) -> list[Json]:
    rows: list[Json] = []
    page = 1
    while True:
        r = api.get("/cdrs", params={**query, "page": page, "page_size": 1000})
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["items"]
        if len(rows) >= body["total"] or not body["items"]:
            assert len(rows) == body["total"]
            return rows
        page += 1


def stored_events(db_url: str) -> list[Json]:
    """The demo tenant's record, read straight from the database, in ``seq`` order."""
    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            tid = conn.execute(select(Tenant.id).where(Tenant.slug == TENANT)).scalar_one()
            rows = conn.execute(
                select(StoredEvent.seq, StoredEvent.data)
                .where(StoredEvent.tenant_id == tid)
                .order_by(StoredEvent.seq)
            ).all()
    finally:
        engine.dispose()
    return [{**json.loads(data), "seq": seq} for seq, data in rows]


def agent_states(events: list[Json]) -> dict[str, tuple[str, str | None]]:
    states: dict[str, tuple[str, str | None]] = {}
    for e in events:
        if e["type"] == "agent_state_changed":
            states[e["agent"]] = (e["state"], e.get("reason"))
    return states


def inject_call(admin: httpx.Client, queue: str, n: int) -> str:
    """A call from the telephony side (admins and integrations): nobody simulates its caller,
    so once a simulated agent answers it stays connected until someone hangs up."""
    r = admin.post(
        "/calls",
        json={"queue": queue, "number": f"1380000{n:04d}", "data": {"ticket": n, "客户": "测试"}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["call"])


def connected(admin: httpx.Client, calls: list[str]) -> bool:
    return all(admin.get(f"/calls/{c}").json().get("state") == "connected" for c in calls)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ---------------------------------------------------------------------- a person's call
def test_a_person_takes_over_a_demo_agent_and_handles_a_simulated_call(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    stream: EventStream | None = None
    watcher: EventStream | None = None
    with serving(server):
        server.start()
        admin_token = server.login("admin")
        admin = server.client(admin_token)
        # Fewer simulated colleagues, so the next general call comes to agent-001. (Those on a
        # call log out after it.)
        for code in AGENTS[1:]:
            r = admin.post(f"/agents/{code}/logout", json={})
            assert r.status_code == 200, r.text

        token = server.login("agent-001")  # a person takes agent-001 over from the simulation
        me = server.client(token)
        assert me.get("/me").json()["agent"] == "agent-001"
        try:
            stream = EventStream(server, token)
            assert stream.hello["type"] == "hello"
            assert (stream.hello["user"], stream.hello["agent"]) == ("agent-001", "agent-001")
            assert stream.hello["role"] == "agent"
            watcher = EventStream(server, admin_token)  # sees the whole tenant meanwhile

            # The simulation logged agent-001 in; whatever it is doing, the person takes over.
            state = me.get("/agents/agent-001/state").json()
            if state["state"] == "busy":
                assert me.post(f"/calls/{state['call']}/hangup").status_code == 200
            r = me.post("/agents/agent-001/logout", json={})
            assert r.status_code == 200, r.text
            if r.json()["state"] == "wrap_up":  # logging out waits for the wrap-up
                assert me.post("/agents/agent-001/wrap-up", json={}).status_code == 200
            assert me.get("/agents/agent-001/state").json()["state"] == "logged_out"
            r = me.post("/agents/agent-001/login", json={"ready": True})
            assert r.status_code == 200, r.text
            assert r.json()["state"] in ("ready", "reserved")  # a waiting call may ring at once
            assert r.json()["queues"] == ["general"]

            def next_offer(after: int, timeout: float) -> Json | None:
                return stream.wait_for(
                    lambda m: (
                        m.get("type") == "call_offered"
                        and m.get("agent") == "agent-001"
                        and m["seq"] > after
                    ),
                    timeout,
                )

            # A simulated caller (about one general call every 13 s); should none come in
            # time, a call from the telephony side will do.
            injected = None
            offer = next_offer(0, 30)
            if offer is None:
                injected = inject_call(admin, "general", 1)
                offer = next_offer(0, 10)
            assert offer is not None, "agent-001 was never offered a call"
            r = me.post(f"/calls/{offer['call']}/answer")
            if r.status_code in (404, 409):  # the caller gave up as it rang: take the next one
                offer = next_offer(offer["seq"], 30)
                assert offer is not None, "agent-001 was never offered another call"
                r = me.post(f"/calls/{offer['call']}/answer")
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "connected"
            call = offer["call"]
            assert offer["queue"] == "general"
            assert isinstance(offer["seq"], int) and offer["t"] > 0
            # screen-pop: the caller's number and data come with the offer
            assert offer["number"]
            assert isinstance(offer["data"], dict) and offer["data"]
            if call == injected:
                assert offer["data"] == {"ticket": 1, "客户": "测试"}
            else:  # a simulated caller
                assert offer["number"].isdigit() and len(offer["number"]) == 11
                assert set(offer["data"]) == {"customer", "vip", "account"}
                assert offer["data"]["vip"] is False
            assert r.json()["number"] == offer["number"]
            assert r.json()["data"] == offer["data"]

            answered = stream.wait_for(
                lambda m: m.get("type") == "call_answered" and m.get("call") == call, 10
            )
            assert answered is not None and answered["agent"] == "agent-001"
            busy = me.get("/agents/agent-001/state").json()
            assert (busy["state"], busy["call"]) == ("busy", call)

            r = me.post(f"/calls/{call}/hangup")
            assert r.status_code == 200, r.text
            ended = stream.wait_for(
                lambda m: m.get("type") == "call_ended" and m.get("call") == call, 10
            )
            assert ended is not None and ended["agent"] == "agent-001"
            note = "客户 asked about a card limit; called back 次日"
            r = me.post("/agents/agent-001/wrap-up", json={"disposition": "resolved", "note": note})
            assert r.status_code == 200, r.text
            assert r.json()["wrapped_call"] == call
            assert r.json()["state"] != "wrap_up"
            disposed = stream.wait_for(
                lambda m: m.get("type") == "call_disposed" and m.get("call") == call, 10
            )
            assert disposed is not None
            assert (disposed["disposition"], disposed["note"]) == ("resolved", note)

            # The agent sees its own CDR, with what the person recorded.
            rows = all_cdrs(me, agent="agent-001")
            mine = [row for row in rows if row["call_id"] == call]
            assert len(mine) == 1, rows
            cdr = mine[0]
            assert cdr["agent"] == "agent-001"
            assert (cdr["disposition"], cdr["note"]) == ("resolved", note)
            assert cdr["outcome"] == "answered"
            assert cdr["number"] == offer["number"]
            assert cdr["caller"] == offer["data"]
            assert cdr["answered_at"] is not None and cdr["ended_at"] >= cdr["answered_at"]
            assert all(row["agent"] == "agent-001" for row in rows)
            # Agents see only their own CDRs, whatever they ask for.
            others = me.get("/cdrs", params={"agent": "agent-002"}).json()
            assert others["total"] == 0

            # The agent's stream carried its own events only: no other agent's, no queue-wide
            # events, no statistics ticks, while the admin's stream got all of those.
            time.sleep(0.5)
            messages = list(stream.messages)
            assert messages, "no events at all on agent-001's stream"
            foreign = [m for m in messages if m.get("agent") != "agent-001"]
            assert foreign == []
            seqs = [m["seq"] for m in messages]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            seen = list(watcher.messages)
            assert any(m["type"] == "queue_stats" for m in seen)
            assert any(m["type"] == "call_arrived" and m["call"] == call for m in seen)
            first = min(m["seq"] for m in seen if "seq" in m)
            # (stored events; the roster's adherence changes for agent-001 are not stored)
            own = {m["seq"] for m in seen if "seq" in m and m.get("agent") == "agent-001"}
            assert any(m["type"] == "adherence" for m in seen)  # the demo's agents are rostered
            assert {q for q in seqs if q >= first} <= own  # and missed nothing of its own
        finally:
            for ws in (stream, watcher):
                if ws is not None:
                    ws.close()


# ---------------------------------------------------------------------- durability
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_acknowledged_events_survive_kill_9(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    if backend == "postgresql":
        db_url = request.getfixturevalue("postgres").new_database()
        server = Server(data, db=db_url)
    else:
        db_url = f"sqlite:///{data / 'hotline.db'}"
        server = Server(data)
    stream: EventStream | None = None
    with serving(server):
        server.start()
        admin_token, supervisor = server.login("admin"), server.login("supervisor")
        admin = server.client(admin_token)
        try:
            stream = EventStream(server, supervisor)
            # A person takes senior-004: the simulation lets it go, so its state is the
            # person's (and the admin's) to set.
            server.login("senior-004")
            r = admin.post("/agents/senior-004/not-ready", json={"reason": "lunch"})
            assert r.status_code == 200, r.text
            assert (r.json()["state"], r.json()["reason"]) == ("not_ready", "lunch")
            # An agent with no skills is offered nothing: it stays ready whatever the traffic.
            r = admin.post("/agents", json={"code": "night-001", "team": "A", "skills": {}})
            assert r.status_code == 201, r.text
            r = admin.post("/agents/night-001/login", json={"ready": True})
            assert r.status_code == 200 and r.json()["state"] == "ready", r.text
            # Calls the simulated agents answer and nobody hangs up: in progress at the kill.
            injected = [inject_call(admin, "general", n) for n in range(1, 5)]
            injected.append(inject_call(admin, "vip", 5))
            wait_until(
                lambda: connected(admin, injected), 25, "simulated agents to answer injected calls"
            )
            before = admin.get("/stats/realtime").json()
            assert before["queues"]["general"]["offered_today"] >= 4

            acked = stream.events()
            assert acked, "the supervisor saw no events"
            max_seq = max(e["seq"] for e in acked)
            last_t = max(e["t"] for e in acked)
            seen_calls = {e["call"] for e in acked if e.get("call")}
            seen_calls |= {e["to_call"] for e in acked if e.get("to_call")}
            assert set(injected) <= seen_calls
            assert [e["seq"] for e in acked] == sorted({e["seq"] for e in acked})
            server.kill()
            killed_at = time.time()
        finally:
            if stream is not None:
                stream.close()

        # Everything acknowledged is in the record, as it was seen.
        record = stored_events(db_url)
        by_seq = {e["seq"]: e for e in record}
        assert [e["seq"] for e in record] == list(range(1, len(record) + 1))
        for e in acked:
            stored = by_seq.get(e["seq"])
            assert stored is not None, f"acknowledged event {e} is not in the record"
            for key in ("type", "t", "call", "agent", "queue", "state", "reason"):
                assert stored.get(key) == e.get(key), (e, stored)
        crash_seq = record[-1]["seq"]
        assert crash_seq >= max_seq
        at_crash = agent_states(record)
        assert at_crash["senior-004"] == ("not_ready", "lunch")
        assert at_crash["night-001"] == ("ready", None)

        restarted_at = time.time()
        server.start()
        admin = server.client(admin_token)  # tokens outlive the process
        stream = EventStream(server, supervisor)
        try:
            # The server goes on taking calls (a simulated agent answers this one while the
            # record is checked), numbered after everything before the kill.
            new_call = inject_call(admin, "general", 99)
            check_recovery(admin, db_url, injected, seen_calls, at_crash, record)
            for cdr in all_cdrs(admin):
                if cdr["outcome"] is None:  # only calls that arrived after the restart are open
                    assert cdr["arrived_at"] >= restarted_at, cdr
                if cdr["cause"] == "server_restart":
                    assert cdr["outcome"] == "closed" and cdr["arrived_at"] <= killed_at, cdr
                    # closed at the last instant the server was known running
                    assert last_t <= cdr["ended_at"] <= killed_at, cdr

            # Real-time statistics work; today's figures include the calls before the kill.
            stats = admin.get("/stats/realtime")
            assert stats.status_code == 200, stats.text
            now = stats.json()
            assert set(now["queues"]) == DEMO_QUEUES
            for queue in ("general", "vip"):
                today = now["queues"][queue]["offered_today"]
                assert today >= before["queues"][queue]["offered_today"]
            assert now["agents"]["senior-004"]["state"] == "not_ready"
            assert now["agents"]["night-001"]["state"] == "ready"
            sup = server.client(supervisor).get("/stats/realtime")
            assert sup.status_code == 200
            assert set(sup.json()["queues"]) == DEMO_QUEUES
            assert stream.wait_for(lambda m: m.get("type") == "queue_stats", 5) is not None

            answered = stream.wait_for(
                lambda m: m.get("type") == "call_answered" and m.get("call") == new_call, 20
            )
            assert answered is not None, "no simulated agent answered a call after the restart"
            assert answered["seq"] > crash_seq
            assert all(e["seq"] > crash_seq for e in stream.events())
        finally:
            stream.close()
        rows = all_cdrs(admin, agent=answered["agent"])
        new = [row for row in rows if row["call_id"] == new_call]
        assert len(new) == 1 and new[0]["arrived_at"] >= restarted_at
        assert new[0]["answered_at"] is not None and new[0]["outcome"] is None  # in progress

        # Simulated agents that were on a call at the kill are simulated again: no person
        # will make them ready, and the demo must not lose agents with every restart.
        robots = {a for a, (st, _) in at_crash.items() if st in ("reserved", "busy", "wrap_up")}
        robots -= {"senior-004", "night-001"}
        assert robots  # the injected calls at least

        def stuck() -> list[str]:
            agents = admin.get("/stats/realtime").json()["agents"]
            return sorted(a for a in robots if agents[a].get("reason") == "server_restart")

        deadline = time.monotonic() + 5
        while stuck() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stuck() == [], "simulated agents left not ready (server_restart) for good"


def check_recovery(
    admin: httpx.Client,
    db_url: str,
    injected: list[str],
    seen_calls: set[str],
    at_crash: dict[str, tuple[str, str | None]],
    record: list[Json],
) -> None:
    """After a kill: a CDR for every call seen, the calls in progress closed, and every agent
    that was logged in back in the state it was in (or not ready, if it was on a call)."""
    cdrs = {row["call_id"]: row for row in all_cdrs(admin)}
    missing = seen_calls - cdrs.keys()
    assert not missing, f"calls seen in acknowledged events without a CDR: {missing}"
    for call in injected:
        cdr = cdrs[call]
        assert (cdr["outcome"], cdr["cause"]) == ("closed", "server_restart"), cdr
        assert cdr["agent"] is not None and cdr["answered_at"] is not None

    r = admin.get("/agents/senior-004/state")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"]) == ("not_ready", "lunch")
    r = admin.get("/agents/night-001/state")
    assert (r.json()["state"], r.json()["reason"]) == ("ready", None)

    crash_seq = len(record)
    after = stored_events(db_url)
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
    assert after[:crash_seq] == record  # the record is append-only
    for agent, (state, reason) in at_crash.items():
        if state == "logged_out":
            continue
        changes = [
            e for e in after[crash_seq:]
            if e["type"] == "agent_state_changed" and e["agent"] == agent
        ]  # fmt: skip
        assert len(changes) >= 2, (agent, changes)
        out, back = changes[0], changes[1]
        assert (out["state"], out["prev"], out["reason"]) == (
            "logged_out", state, "server_restart"
        )  # fmt: skip
        back_as = (back["state"], back.get("reason"))
        if state == "ready":
            assert back_as == ("ready", None), (agent, back)
        elif state == "not_ready":
            assert back_as == ("not_ready", reason), (agent, back)
        else:  # was on a call: back, but not offered one before saying it is ready
            assert back_as == ("not_ready", "server_restart"), (agent, back)


# ---------------------------------------------------------------------- start-up, shutdown
def demo_notice(out: str) -> str:
    lines = [line for line in out.splitlines() if "demo tenant" in line]
    assert len(lines) == 1, out
    return lines[0]


def test_start_up_notice_then_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")  # with HOTLINE_DEMO_PASSWORD
    stream: EventStream | None = None
    with serving(server):
        server.start()
        out = server.stdout()
        assert f"http://127.0.0.1:{server.port}" in out
        assert f"http://127.0.0.1:{server.port}/api/v1/docs" in out
        assert "supervisor, qa, planner, admin" in out
        assert "agent-001" in out and "senior-004" in out
        notice = demo_notice(out)
        assert "demo-bank" in notice
        assert "HOTLINE_DEMO_PASSWORD" in notice  # a placeholder says where it comes from
        assert PASSWORD not in out and PASSWORD not in server.stderr()
        # the platform admin's password, generated on a new database, is shown once and works
        platform = re.search(r"platform admin: .* user 'admin', password (\S+)", out)
        assert platform is not None, out
        server.login("admin", platform.group(1), tenant="platform")

        admin_token = server.login("admin")
        admin = server.client(admin_token)
        # The seniors go to a meeting: a VIP call now waits, unanswered, in its queue.
        for senior in AGENTS[16:]:
            r = admin.post(f"/agents/{senior}/not-ready", json={"reason": "meeting"})
            assert r.status_code == 200, r.text
        waiting = inject_call(admin, "vip", 9)
        injected = [inject_call(admin, "general", n) for n in range(1, 4)]
        wait_until(lambda: connected(admin, injected), 25, "simulated agents to answer calls")
        # The first is transferred to the VIP queue (no agent named); its agent records only
        # a disposition, no note.
        first = admin.get(f"/calls/{injected[0]}").json()
        r = admin.post(f"/calls/{injected[0]}/transfer", json={"queue": "vip"})
        assert r.status_code == 200, r.text
        segment = r.json()["call"]
        assert r.json()["state"] == "waiting"
        r = admin.post(f"/agents/{first['agents'][0]}/wrap-up", json={"disposition": "follow_up"})
        assert r.status_code == 200 and r.json()["wrapped_call"] == injected[0], r.text
        assert admin.get(f"/calls/{waiting}").json()["state"] == "waiting"
        try:
            stream = EventStream(server, server.login("supervisor"))  # a dashboard left open
            assert stream.wait_for(lambda m: m.get("type") == "queue_stats", 5) is not None
            assert server.proc is not None
            stopped = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 10 s after SIGTERM:\n{server.stderr()}")
            assert time.monotonic() - stopped < 10
            assert "Traceback" not in server.stderr(), server.stderr()
            assert code == 0, f"exit status {code} after SIGTERM:\n{server.stderr()}"
            assert stream.ended.wait(5), "the WebSocket stayed open after the server exited"
        finally:
            if stream is not None:
                stream.close()

        # It starts again on what it recorded, and the calls it had are closed.
        server.start()
        assert PASSWORD not in server.stdout()
        assert "platform admin" not in server.stdout()  # shown once, on the first start
        admin = server.client(admin_token)
        cdrs = {row["call_id"]: row for row in all_cdrs(admin)}
        for call in [*injected[1:], waiting, segment]:
            cdr = cdrs[call]
            assert (cdr["outcome"], cdr["cause"]) == ("closed", "server_shutdown"), cdr
            assert cdr["ended_at"] <= time.time()
        assert cdrs[waiting]["agent"] is None and cdrs[waiting]["answered_at"] is None
        assert cdrs[segment]["transferred_from"] == injected[0]
        assert cdrs[segment]["final_queue"] == "vip"
        done = cdrs[injected[0]]
        assert (done["outcome"], done["disposition"], done["note"]) == (
            "transferred",
            "follow_up",
            None,
        )
        assert not [c for c in cdrs.values() if c["cause"] == "server_restart"]
        assert admin.get("/stats/realtime").status_code == 200
        span = {"from": str(time.time() - 3600), "to": str(time.time() + 60)}
        for report in ("queues", "agents"):
            r = admin.get(f"/reports/{report}", params=span)
            assert r.status_code == 200, r.text
            assert r.json()["rows"]


# ---------------------------------------------------------------------- command line
def test_serve_rejects_a_bad_database_url(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hotline",
            "serve",
            "--db",
            "not-a-url",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "not-a-url" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "hotline.db").exists()


def test_demo_without_a_password_prints_one_that_works_on_every_start(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", password=None)
    with serving(server):
        server.start()
        shown = re.search(r"; password (\S+)$", demo_notice(server.stdout()))
        assert shown is not None, server.stdout()
        password = shown.group(1)
        assert len(password) >= 12
        assert password not in server.stderr()
        server.login("supervisor", password)
        server.login("agent-007", password)
        server.kill()

        # Started again on the same data: a password the notice shows must still log in (it
        # may instead say, in parentheses, that the password is unchanged).
        server.start()
        notice = demo_notice(server.stdout())
        again = re.search(r"; password ([^\s(]\S*)$", notice)
        if again is not None and again.group(1) != password:
            r = httpx.post(
                f"{server.url}{API}/auth/login",
                json={"tenant": TENANT, "username": "supervisor", "password": again.group(1)},
                timeout=15,
            )
            assert r.status_code == 200, (
                f"on the second start the notice shows password {again.group(1)!r}, which does "
                f"not log in (the demo users' password is still {password!r})"
            )
        server.login("supervisor", password)
