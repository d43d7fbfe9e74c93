"""The HTTP API as its users rely on it: log-in, configuration, roles and tenants, call control,
the CTI event stream, real-time statistics and reports. Every test runs against a real server
app in process (lifespan, migrations, live ACD) on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from functools import cached_property
from itertools import pairwise
from typing import Any, ClassVar

import anyio
import httpx
import openpyxl
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hotline.server import demo, security
from hotline.server.app import Settings, create_app

API = "/api/v1"
PLATFORM_PASSWORD = "platform-pass-1"
PASSWORD = "tenant-pass-123"  # every tenant user's password
PROBLEM = "application/problem+json"


# ---------------------------------------------------------------------- helpers
class Actor:
    """Requests made as one user (bearer token), optionally acting in another tenant."""

    def __init__(self, client: TestClient, token: str, tenant: str | None = None) -> None:
        self.client = client
        self.token = token
        self.tenant = tenant

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        if self.tenant is not None:
            headers["X-Hotline-Tenant"] = self.tenant
        return self.client.request(method, API + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"]
    return body


def invalid(r: httpx.Response, field: str) -> dict[str, Any]:
    """A 422 problem whose ``errors`` name this field."""
    body = problem(r, 422)
    fields = [e["field"] for e in body.get("errors", [])]
    assert field in fields, f"expected an error on {field!r}, got {body}"
    for e in body["errors"]:
        assert e["message"]
    return body


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``check()`` is truthy (the live engine's timers act on their own)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Server:
    """The app under test; ``log`` keeps every response it gave."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.log: list[httpx.Response] = []
        client.event_hooks = {"request": [], "response": [self._record]}
        self.platform = self.login("platform", "admin", PLATFORM_PASSWORD)

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.log.append(response)

    def login(self, tenant: str, username: str, password: str = PASSWORD) -> Actor:
        r = self.client.post(
            f"{API}/auth/login", json={"tenant": tenant, "username": username, "password": password}
        )
        body = ok(r)
        assert body["user"] == username and body["tenant"] == tenant
        return Actor(self.client, body["token"])

    def acting_in(self, tenant: str) -> Actor:
        """The platform admin, acting inside a tenant."""
        return Actor(self.client, self.platform.token, tenant=tenant)


class Center:
    """A tenant: skills sales/support; queues sales (sales 1), support (support 1) and vip
    (sales 5, manual wrap-up); agent A1 (user alice, team red, sales 5) and A2 (user bob,
    team blue, sales 3 + support 5); supervisor ``sup`` (team red, queues sales+support),
    ``qa`` and ``planner``; reason code ``break``; dispositions resolved and follow_up."""

    USERS: ClassVar[dict[str, tuple[str, list[str], list[str]]]] = {
        "sup": ("supervisor", ["red"], ["sales", "support"]),
        "qa": ("qa", [], []),
        "planner": ("planner", [], []),
        "alice": ("agent", [], []),
        "bob": ("agent", [], []),
    }

    def __init__(self, server: Server, slug: str = "acme") -> None:
        self.server = server
        self.slug = slug
        ok(
            server.platform.post(
                "/tenants",
                json={
                    "slug": slug,
                    "name": f"{slug} call center",
                    "admin": {"username": "boss", "password": PASSWORD},
                },
            ),
            201,
        )
        admin = self.admin = server.login(slug, "boss")
        for skill in ("sales", "support"):
            ok(admin.post("/skills", json={"code": skill, "labels": {"en": skill}}), 201)
        ok(admin.post("/reason-codes", json={"code": "break"}), 201)
        for code in ("resolved", "follow_up"):
            ok(admin.post("/dispositions", json={"code": code}), 201)
        for queue in (
            {"id": "sales", "skills": {"sales": 1}},
            {"id": "support", "skills": {"support": 1}},
            {"id": "vip", "skills": {"sales": 5}, "auto_ready": False},
        ):
            ok(admin.post("/queues", json=queue), 201)
        for username, (role, teams, queues) in self.USERS.items():
            user = {"username": username, "password": PASSWORD, "role": role}
            ok(admin.post("/users", json={**user, "teams": teams, "queues": queues}), 201)
        ok(
            admin.post(
                "/agents",
                json={"code": "A1", "user": "alice", "team": "red", "skills": {"sales": 5}},
            ),
            201,
        )
        ok(
            admin.post(
                "/agents",
                json={
                    "code": "A2",
                    "user": "bob",
                    "team": "blue",
                    "skills": {"sales": 3, "support": 5},
                },
            ),
            201,
        )

    # Logged in when a test first needs them.
    @cached_property
    def sup(self) -> Actor:
        return self.server.login(self.slug, "sup")

    @cached_property
    def qa(self) -> Actor:
        return self.server.login(self.slug, "qa")

    @cached_property
    def planner(self) -> Actor:
        return self.server.login(self.slug, "planner")

    @cached_property
    def alice(self) -> Actor:
        return self.server.login(self.slug, "alice")

    @cached_property
    def bob(self) -> Actor:
        return self.server.login(self.slug, "bob")

    def call(self, queue: str, number: str = "13800000000", **data: Any) -> dict[str, Any]:
        body = {"queue": queue, "number": number, "data": data}
        return ok(self.admin.post("/calls", json=body), 201)  # type: ignore[no-any-return]

    def state(self, agent: str) -> dict[str, Any]:
        return ok(self.admin.get(f"/agents/{agent}/state"))  # type: ignore[no-any-return]

    def cdr(self, call_id: str) -> dict[str, Any]:
        items = ok(self.admin.get("/cdrs", params={"page_size": 1000}))["items"]
        mine = [c for c in items if c["call_id"] == call_id]
        assert len(mine) == 1, f"one CDR for {call_id}: {items}"
        return mine[0]  # type: ignore[no-any-return]

    def audit(self) -> list[dict[str, Any]]:
        return ok(self.admin.get("/audit", params={"limit": 1000}))["entries"]  # type: ignore[no-any-return]


def new_tenant(server: Server, slug: str) -> Actor:
    """A bare tenant; returns its admin."""
    body = {"slug": slug, "name": slug, "admin": {"username": "chief", "password": PASSWORD}}
    ok(server.platform.post("/tenants", json=body), 201)
    return server.login(slug, "chief")


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at production cost takes ~0.15 s per hash or check; these tests log in dozens of
    users. The scheme is the same, only its cost parameters are lowered."""
    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    settings = Settings(db_url=db_url, admin_password=PLATFORM_PASSWORD, say=lambda s: None)
    with TestClient(create_app(settings)) as client:
        yield Server(client)


@pytest.fixture
def center(server: Server) -> Center:
    return Center(server)


# ---------------------------------------------------------------------- WebSocket helpers
def ws_receive(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    """Next JSON message of a test WebSocket, failing (not hanging) after ``timeout``."""

    async def get() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(get)
    except TimeoutError:
        raise AssertionError(f"no WebSocket message within {timeout} s") from None
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason", ""))
    return json.loads(message["text"])  # type: ignore[no-any-return]


def ws_until(ws: Any, last: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Messages up to and including the first one ``last`` accepts."""
    seen = []
    while True:
        msg = ws_receive(ws)
        seen.append(msg)
        if last(msg):
            return seen


def split_stats(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """(events, queues named by the periodic queue_stats ticks among them)."""
    events = [m for m in messages if m.get("type") != "queue_stats"]
    return events, {q for m in messages if m.get("type") == "queue_stats" for q in m["queues"]}


# ---------------------------------------------------------------------- 1. authentication
def test_wrong_password_is_401_and_the_sixth_failure_is_throttled(server: Server) -> None:
    client = server.client
    attempt = {"tenant": "platform", "username": "admin", "password": "wrong-password"}
    for _ in range(5):
        body = problem(client.post(f"{API}/auth/login", json=attempt), 401)
        assert "token" not in body
    r = client.post(f"{API}/auth/login", json=attempt)
    problem(r, 429)
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 301
    # Locked, even with the right password, until the window has passed.
    problem(client.post(f"{API}/auth/login", json={**attempt, "password": PLATFORM_PASSWORD}), 429)
    # A token obtained before the lock still works.
    assert ok(server.platform.get("/me"))["role"] == "admin"


def test_failed_log_ins_of_others_do_not_lock_out_a_user(server: Server) -> None:
    # A call center's staff share one public address (NAT, or the reverse proxy in front of
    # the server): five colleagues each mistyping their password once must not lock
    # everybody else out.
    chief = new_tenant(server, "acme")
    for name in ("u1", "u2", "u3", "u4", "u5", "eve"):
        ok(
            chief.post("/users", json={"username": name, "password": PASSWORD, "role": "agent"}),
            201,
        )
    for name in ("u1", "u2", "u3", "u4", "u5"):
        attempt = {"tenant": "acme", "username": name, "password": "typo-typo-typo"}
        problem(server.client.post(f"{API}/auth/login", json=attempt), 401)
    server.login("acme", "eve")


def test_credentials_are_required_and_logout_revokes_the_token(server: Server) -> None:
    client = server.client
    for headers in (
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"X-API-Key": "hlk_forged"},
    ):
        r = client.get(f"{API}/me", headers=headers)
        problem(r, 401)
        assert r.headers["WWW-Authenticate"] == "Bearer"
    problem(client.get(f"{API}/queues"), 401)
    problem(client.post(f"{API}/calls", json={"queue": "sales"}), 401)
    assert ok(client.get(f"{API}/health"))["status"] == "ok"
    # Unknown users and tenants fail exactly like a wrong password (nothing to enumerate).
    for attempt in (
        {"tenant": "platform", "username": "nobody", "password": "whatever-1"},
        {"tenant": "no-such-tenant", "username": "admin", "password": PLATFORM_PASSWORD},
        {"tenant": "platform", "username": "admin", "password": "not-it-at-all"},
    ):
        body = problem(client.post(f"{API}/auth/login", json=attempt), 401)
        assert body["detail"] == "wrong tenant, username or password"

    admin = server.login("platform", "admin", PLATFORM_PASSWORD)
    assert ok(admin.get("/me")) == {
        "user": "admin",
        "tenant": "platform",
        "role": "admin",
        "agent": None,
        "teams": [],
        "queues": [],
        "platform": True,  # the platform's admins manage all tenants (the screens show it)
    }
    ok(admin.post("/auth/logout"), 204)
    problem(admin.get("/me"), 401)
    problem(admin.get("/tenants"), 401)
    # Other sessions of the same user are not affected.
    assert ok(server.platform.get("/me"))["user"] == "admin"


def test_api_key_works_until_revoked(center: Center) -> None:
    admin, client = center.admin, center.server.client
    created = ok(admin.post("/api-keys", json={"name": "pbx"}), 201)
    key = created["key"]
    assert created["user"] == "boss"
    listed = ok(admin.get("/api-keys"))
    assert [k["name"] for k in listed] == ["pbx"]
    assert key not in json.dumps(listed)  # only a prefix is ever shown again
    assert key.startswith(listed[0]["prefix"]) and not listed[0]["revoked"]

    headers = {"X-API-Key": key}
    me = ok(client.get(f"{API}/me", headers=headers))
    assert (me["user"], me["tenant"], me["role"]) == ("boss", "acme", "admin")
    # An integration injects calls with it.
    r = client.post(f"{API}/calls", headers=headers, json={"queue": "sales", "number": "100"})
    assert ok(r, 201)["queue"] == "sales"

    ok(admin.delete(f"/api-keys/{created['id']}"), 204)
    problem(client.get(f"{API}/me", headers=headers), 401)
    problem(client.post(f"{API}/calls", headers=headers, json={"queue": "sales"}), 401)
    assert ok(admin.get("/api-keys"))[0]["revoked"] is True
    # Only admins manage keys; another tenant cannot revoke this tenant's keys.
    problem(center.sup.post("/api-keys", json={"name": "mine"}), 403)
    other = new_tenant(center.server, "globex")
    problem(other.delete(f"/api-keys/{created['id']}"), 404)


def test_passwords_never_appear_in_responses_or_the_audit_log(center: Center) -> None:
    admin, server = center.admin, center.server
    secret = "brand-new-secret-42"
    ok(admin.patch("/users/alice", json={"password": secret, "display_name": "Alice"}))
    server.login("acme", "alice", secret)
    attempt = {"tenant": "acme", "username": "bob", "password": secret}
    problem(server.client.post(f"{API}/auth/login", json=attempt), 401)
    ok(admin.post("/users", json={"username": "carol", "password": secret, "role": "planner"}), 201)
    ok(admin.get("/users"))
    ok(admin.get("/users/carol"))
    ok(server.platform.get("/tenants"))
    entries = center.audit()
    assert any(e["action"] == "user.update" and e["target"] == "alice" for e in entries)
    assert any(e["action"] == "user.create" and e["target"] == "carol" for e in entries)
    platform_audit = ok(server.platform.get("/audit", params={"limit": 1000}))
    texts = [r.text for r in server.log] + [json.dumps(entries), json.dumps(platform_audit)]
    for password in (secret, PASSWORD, PLATFORM_PASSWORD):
        for text in texts:
            assert password not in text
    assert all("password_hash" not in t and "$argon2" not in t for t in texts)


# ---------------------------------------------------------------------- 2. validation
def test_validation_errors_name_the_field_and_duplicates_conflict(center: Center) -> None:
    admin = center.admin
    invalid(admin.post("/queues", json={"id": "q1", "skills": {"sales": 11}}), "body.skills.sales")
    invalid(admin.post("/queues", json={"id": "q1", "skills": {"sales": 0}}), "body.skills.sales")
    invalid(admin.post("/queues", json={"id": "q1", "strategy": "loudest"}), "body.strategy")
    invalid(admin.post("/queues", json={"id": "q1", "skills": {"nope": 1}}), "body.skills.nope")
    invalid(
        admin.post(
            "/queues",
            json={"id": "q1", "max_wait": "30s", "exit": {"overflow": "nowhere"}},
        ),
        "body.exit.overflow",
    )
    invalid(
        admin.post("/queues", json={"id": "q1", "max_wait": 30, "exit": {"overflow": "q1"}}),
        "body.exit.overflow",
    )
    invalid(admin.post("/queues", json={"id": "q1", "wrap_up": "soon"}), "body.wrap_up")
    invalid(admin.post("/queues", json={"id": "q1", "colour": "red"}), "body.colour")
    invalid(admin.post("/queues", json={"id": "bad id!"}), "body.id")
    invalid(admin.post("/agents", json={"code": "A9", "user": "ghost"}), "body.user")
    invalid(admin.post("/agents", json={"code": "A9", "user": "alice"}), "body.user")  # taken
    invalid(
        admin.post("/agents", json={"code": "A9", "skills": {"cooking": 3}}), "body.skills.cooking"
    )
    invalid(
        admin.post("/users", json={"username": "dave", "password": "short", "role": "qa"}),
        "body.password",
    )
    invalid(
        admin.post("/users", json={"username": "dave", "password": PASSWORD, "role": "boss"}),
        "body.role",
    )
    invalid(admin.post("/users", json={"username": "dave", "role": "qa"}), "body.password")
    invalid(admin.put("/queues/sales", json={"id": "other"}), "body.id")
    invalid(center.sup.patch("/queues/sales", json={"strategy": "loudest"}), "body.strategy")
    invalid(center.sup.patch("/queues/sales", json={"skills": {"sales": 11}}), "body.skills.sales")
    invalid(
        admin.post(
            "/business-hours", json={"code": "office", "weekly": {"mon": [["18:00", "09:00"]]}}
        ),
        "body.weekly",
    )
    # Nothing invalid was stored.
    assert [q["id"] for q in ok(admin.get("/queues"))] == ["sales", "support", "vip"]
    assert [a["code"] for a in ok(admin.get("/agents"))] == ["A1", "A2"]
    assert "dave" not in [u["username"] for u in ok(admin.get("/users"))]

    # Duplicates are conflicts.
    problem(admin.post("/queues", json={"id": "sales"}), 409)
    problem(admin.post("/agents", json={"code": "A1"}), 409)
    problem(admin.post("/skills", json={"code": "sales"}), 409)
    problem(admin.post("/dispositions", json={"code": "resolved"}), 409)
    problem(admin.post("/reason-codes", json={"code": "break"}), 409)
    user = {"username": "alice", "password": PASSWORD, "role": "qa"}
    problem(admin.post("/users", json=user), 409)
    body = {"slug": "acme", "name": "again", "admin": {"username": "x", "password": PASSWORD}}
    problem(center.server.platform.post("/tenants", json=body), 409)
    # The originals are intact.
    assert ok(admin.get("/agents/A1"))["user"] == "alice"
    assert ok(admin.get("/queues/sales"))["skills"] == {"sales": 1}
    assert ok(admin.get("/users/alice"))["role"] == "agent"
    # A skill that queues and agents use cannot be deleted from under them.
    problem(admin.delete("/skills/support"), 409)
    assert "support" in [s["code"] for s in ok(admin.get("/skills"))]


def test_an_unknown_queue_is_an_invalid_request(center: Center) -> None:
    # Like every other reference to something that does not exist (a skill, an overflow
    # queue, a user), a queue that does not exist is a bad request naming the field: there is
    # no state to conflict with.
    invalid(center.admin.post("/calls", json={"queue": "nowhere", "number": "1"}), "body.queue")
    waiting = center.call("sales")["call"]
    invalid(center.admin.post(f"/calls/{waiting}/move", json={"queue": "nowhere"}), "body.queue")
    assert ok(center.admin.get(f"/calls/{waiting}"))["queue"] == "sales"
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    ok(center.alice.post(f"/calls/{waiting}/answer"))
    r = center.alice.post(f"/calls/{waiting}/transfer", json={"queue": "nowhere"})
    invalid(r, "body.queue")
    assert ok(center.alice.get(f"/calls/{waiting}"))["state"] == "connected"


# ---------------------------------------------------------------------- 3. roles and tenants
def test_roles_limit_what_users_may_do(center: Center) -> None:
    alice, qa, planner, sup = center.alice, center.qa, center.planner, center.sup
    problem(alice.post("/queues", json={"id": "mine"}), 403)
    problem(alice.get("/users"), 403)
    problem(alice.get("/audit"), 403)
    problem(alice.post("/agents/A2/login", json={"ready": True}), 403)
    problem(alice.post("/calls", json={"queue": "sales"}), 403)
    problem(alice.get("/reports/queues", params={"from": "0", "to": "60"}), 403)
    problem(sup.post("/queues", json={"id": "mine"}), 403)
    problem(
        sup.post("/users", json={"username": "eve", "password": PASSWORD, "role": "admin"}), 403
    )
    problem(
        sup.post(
            "/tenants",
            json={"slug": "x", "name": "x", "admin": {"username": "x", "password": PASSWORD}},
        ),
        403,
    )
    problem(alice.post("/agents/A2/dial", json={"number": "13800138000"}), 403)
    invalid(alice.post("/agents/A1/dial", json={"number": "138-0013"}), "body.number")
    for who in (qa, planner):
        problem(who.post("/agents/A1/login", json={"ready": True}), 403)
        problem(who.post("/agents/A1/dial", json={"number": "13800138000"}), 403)
        problem(who.post("/agents/A1/not-ready", json={"reason": "break"}), 403)
        problem(who.post("/queues", json={"id": "mine"}), 403)
        problem(who.patch("/queues/sales", json={"when_empty": "reject"}), 403)
    # Agents control themselves.
    assert ok(alice.post("/agents/A1/login", json={"ready": True}))["state"] == "ready"
    call = center.call("sales")
    assert call["agents"] == ["A1"]
    for who in (qa, planner):
        problem(who.post(f"/calls/{call['call']}/answer"), 403)
        problem(who.post(f"/calls/{call['call']}/hangup"), 403)
    # Bob is not offered this call: for him it does not exist.
    problem(center.bob.post(f"/calls/{call['call']}/answer"), 404)
    problem(center.bob.get(f"/calls/{call['call']}"), 404)
    assert ok(center.bob.get("/calls")) == []
    assert center.state("A1")["state"] == "reserved"
    assert ok(alice.post(f"/calls/{call['call']}/answer"))["state"] == "connected"
    # Nothing changed through the refused requests.
    assert [q["id"] for q in ok(center.admin.get("/queues"))] == ["sales", "support", "vip"]
    assert center.state("A2")["state"] == "logged_out"


def test_tenants_are_isolated(center: Center) -> None:
    server = center.server
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    call = center.call("sales")["call"]
    other = new_tenant(server, "globex")
    for path in ("/queues/sales", "/agents/A1", "/agents/A1/state", f"/calls/{call}"):
        problem(other.get(path), 404)
    assert ok(other.get("/queues")) == []
    assert ok(other.get("/agents")) == []
    assert ok(other.get("/calls")) == []
    assert ok(other.get("/cdrs"))["total"] == 0
    assert [t["slug"] for t in ok(other.get("/tenants"))] == ["globex"]
    problem(other.get("/tenants/acme"), 404)
    problem(other.post("/agents/A1/logout", json={}), 404)
    problem(other.post("/agents/A1/not-ready", json={"reason": "break"}), 404)
    problem(other.post(f"/calls/{call}/hangup"), 404)
    problem(other.patch("/queues/sales", json={"when_empty": "reject"}), 404)
    problem(other.delete("/agents/A1"), 404)
    # An admin of one tenant cannot act in another by naming it.
    problem(other.get("/queues", headers={"X-Hotline-Tenant": "acme"}), 403)
    problem(center.admin.get("/queues", headers={"X-Hotline-Tenant": "globex"}), 403)
    problem(center.sup.get("/queues", headers={"X-Hotline-Tenant": "platform"}), 403)
    problem(
        other.post(
            "/tenants",
            json={"slug": "y", "name": "y", "admin": {"username": "y", "password": PASSWORD}},
        ),
        403,
    )
    # Tenant acme is untouched.
    assert center.state("A1")["state"] == "reserved"
    assert ok(center.admin.get(f"/calls/{call}"))["state"] == "ringing"
    # The platform admin acts inside a tenant by naming it.
    platform = server.acting_in("acme")
    assert [q["id"] for q in ok(platform.get("/queues"))] == ["sales", "support", "vip"]
    assert ok(platform.get(f"/calls/{call}"))["agents"] == ["A1"]
    assert ok(platform.post("/agents/A2/login", json={"ready": True}))["state"] == "ready"
    assert center.state("A2")["state"] == "ready"
    problem(server.acting_in("nope").get("/queues"), 404)
    # ... and without the header, it stays in the platform tenant.
    assert ok(server.platform.get("/queues")) == []


def test_supervisor_acts_on_its_teams_and_queues_only(center: Center) -> None:
    sup = center.sup
    assert (
        ok(sup.post("/agents/A1/login", json={"ready": False, "reason": "break"}))["state"]
        == "not_ready"
    )
    assert ok(sup.post("/agents/A1/ready"))["state"] == "ready"
    assert ok(sup.get("/agents/A1/state"))["state"] == "ready"
    problem(sup.post("/agents/A2/login", json={"ready": True}), 403)
    problem(sup.get("/agents/A2/state"), 403)
    assert center.state("A2")["state"] == "logged_out"
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))
    problem(sup.post("/agents/A2/logout", json={}), 403)
    problem(sup.post("/agents/A2/not-ready", json={"reason": "break"}), 403)
    problem(sup.post("/agents/A2/dial", json={"number": "13800138000"}), 403)
    assert center.state("A2")["state"] == "ready"
    # Queues: a live change to its own queue is allowed, to another queue refused.
    assert ok(sup.patch("/queues/sales", json={"ring_timeout": 20}))["ring_timeout"] == 20
    problem(sup.patch("/queues/vip", json={"ring_timeout": 20}), 403)
    assert ok(center.admin.get("/queues/vip")).get("ring_timeout") is None
    assert ok(sup.post("/agents/A1/logout", json={}))["state"] == "logged_out"


# ---------------------------------------------------------------------- 4. a call, end to end
def test_call_flow_answer_hold_hangup_wrap_up(center: Center) -> None:
    alice = center.alice
    state = ok(alice.post("/agents/A1/login", json={"ready": True}))
    assert state["state"] == "ready" and "vip" in state["queues"]
    t_start = time.time()
    call = center.call("vip", number="13912345678", customer="Zhang Wei", account="42")
    cid = call["call"]
    assert call["state"] == "ringing" and call["agents"] == ["A1"]
    mine = ok(alice.get("/agents/A1/state"))
    assert mine["state"] == "reserved" and mine["call"] == cid
    seen = ok(alice.get(f"/calls/{cid}"))
    assert seen["number"] == "13912345678"
    assert seen["data"] == {"customer": "Zhang Wei", "account": "42"}

    assert ok(alice.post(f"/calls/{cid}/answer"))["state"] == "connected"
    t_answered = time.time()
    assert ok(alice.get("/agents/A1/state"))["state"] == "busy"
    time.sleep(0.2)
    t_hold = time.time()
    assert ok(alice.post(f"/calls/{cid}/hold"))["held"] is True
    time.sleep(0.3)
    assert ok(alice.post(f"/calls/{cid}/unhold"))["held"] is False
    t_unhold = time.time()
    time.sleep(0.1)
    ok(alice.post(f"/calls/{cid}/hangup"))
    t_hangup = time.time()
    # The vip queue has manual wrap-up: the agent stays in wrap-up until it says it is done.
    after = ok(alice.get("/agents/A1/state"))
    assert after["state"] == "wrap_up" and after["call"] == cid

    wrapped = ok(
        alice.post("/agents/A1/wrap-up", json={"disposition": "resolved", "note": "card blocked"})
    )
    assert wrapped["wrapped_call"] == cid
    assert wrapped["state"] == "ready" and wrapped["call"] is None
    problem(center.admin.get(f"/calls/{cid}"), 404)  # over

    cdr = center.cdr(cid)
    assert cdr["outcome"] == "answered"
    assert cdr["agent"] == "A1"
    assert (cdr["queue"], cdr["final_queue"]) == ("vip", "vip")
    assert cdr["number"] == "13912345678"
    assert cdr["caller"] == {"customer": "Zhang Wei", "account": "42"}
    assert cdr["disposition"] == "resolved"
    assert cdr["note"] == "card blocked"
    assert cdr["transferred_from"] is None
    slack = 0.05
    assert t_start - slack <= cdr["arrived_at"] <= cdr["answered_at"] <= cdr["ended_at"]
    assert cdr["ended_at"] <= t_hangup + slack
    assert cdr["wait"] == pytest.approx(cdr["answered_at"] - cdr["arrived_at"], abs=0.01)
    assert 0 <= cdr["wait"] <= t_answered - t_start + slack
    assert 0.3 - slack <= cdr["hold"] <= t_unhold - t_hold + slack
    connected = cdr["ended_at"] - cdr["answered_at"]
    assert cdr["talk"] == pytest.approx(connected - cdr["hold"], abs=0.01)
    assert cdr["talk"] >= 0.3 - slack  # 0.2 s before the hold and 0.1 s after it
    assert cdr["wrap"] >= 0
    # The agent sees its own CDR; another agent does not.
    assert [c["call_id"] for c in ok(alice.get("/cdrs"))["items"]] == [cid]
    assert ok(center.bob.get("/cdrs"))["items"] == []


def test_dispositions_and_reason_codes_must_be_defined(center: Center) -> None:
    alice = center.alice
    ok(alice.post("/agents/A1/login", json={"ready": True}))
    cid = center.call("sales")["call"]
    ok(alice.post(f"/calls/{cid}/answer"))
    ok(alice.post(f"/calls/{cid}/hangup"))
    invalid(alice.post("/agents/A1/wrap-up", json={"disposition": "bogus"}), "body.disposition")
    assert center.cdr(cid)["disposition"] is None
    # Disposition after an automatic wrap-up (sales: no wrap-up time) is for the last call.
    wrapped = ok(alice.post("/agents/A1/wrap-up", json={"disposition": "follow_up"}))
    assert wrapped["wrapped_call"] == cid
    assert center.cdr(cid)["disposition"] == "follow_up"

    invalid(alice.post("/agents/A1/not-ready", json={"reason": "nap"}), "body.reason")
    assert ok(alice.get("/agents/A1/state"))["state"] == "ready"
    invalid(alice.post("/agents/A1/not-ready", json={}), "body.reason")
    state = ok(alice.post("/agents/A1/not-ready", json={"reason": "break"}))
    assert (state["state"], state["reason"]) == ("not_ready", "break")
    invalid(center.admin.post("/agents/A2/login", json={"reason": "nap"}), "body.reason")
    assert center.state("A2")["state"] == "logged_out"
    # A reason code defined later applies at once.
    ok(center.admin.post("/reason-codes", json={"code": "training"}), 201)
    state = ok(alice.post("/agents/A1/not-ready", json={"reason": "training"}))
    assert (state["state"], state["reason"]) == ("not_ready", "training")
    assert ok(alice.post("/agents/A1/logout", json={}))["state"] == "logged_out"


def test_unanswered_offer_goes_back_to_the_queue(center: Center) -> None:
    ok(center.sup.patch("/queues/sales", json={"ring_timeout": 0.5}))
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    cid = center.call("sales")["call"]
    assert center.state("A1")["state"] == "reserved"
    state = wait_until(
        lambda: (s := center.state("A1"))["state"] == "not_ready" and s, what="ring timeout"
    )
    assert state["reason"] == "no answer" and state["call"] is None
    call = ok(center.admin.get(f"/calls/{cid}"))
    assert call["state"] == "waiting" and call["agents"] == []
    # The next ready agent gets it.
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))
    assert ok(center.admin.get(f"/calls/{cid}"))["agents"] == ["A2"]


# ---------------------------------------------------------------------- 5. transfer
def test_transfer_to_a_queue_or_an_agent(center: Center) -> None:
    alice, bob = center.alice, center.bob
    ok(alice.post("/agents/A1/login", json={"ready": True}))
    ok(bob.post("/agents/A2/login", json={"ready": False, "reason": "break"}))
    first = center.call("sales", number="021555", topic="refund")["call"]
    ok(alice.post(f"/calls/{first}/answer"))

    # To an agent who is not ready: refused, and the call stays with Alice.
    problem(alice.post(f"/calls/{first}/transfer", json={"agent": "A2"}), 409)
    call = ok(alice.get(f"/calls/{first}"))
    assert call["state"] == "connected" and call["agents"] == ["A1"]
    assert center.state("A1")["state"] == "busy"
    invalid(alice.post(f"/calls/{first}/transfer", json={}), "body")
    assert ok(alice.get(f"/calls/{first}"))["state"] == "connected"

    ok(bob.post("/agents/A2/ready"))
    second = ok(alice.post(f"/calls/{first}/transfer", json={"queue": "support"}))
    assert second["call"] != first
    assert second["queue"] == "support" and second["agents"] == ["A2"]
    assert second["number"] == "021555" and second["data"] == {"topic": "refund"}
    assert center.state("A1")["state"] == "ready"
    ok(bob.post(f"/calls/{second['call']}/answer"))
    ok(bob.post(f"/calls/{second['call']}/hangup"))

    seg1, seg2 = center.cdr(first), center.cdr(second["call"])
    assert seg1["outcome"] == "transferred" and seg1["agent"] == "A1"
    assert seg1["talk"] is not None and seg1["talk"] >= 0
    assert seg2["transferred_from"] == first
    assert seg2["outcome"] == "answered" and seg2["agent"] == "A2"
    assert seg2["queue"] == "support" and seg2["number"] == "021555"

    # To a ready agent: it rings that agent only.
    third = center.call("sales")["call"]
    assert ok(alice.get("/agents/A1/state"))["call"] == third
    ok(alice.post(f"/calls/{third}/answer"))
    fourth = ok(alice.post(f"/calls/{third}/transfer", json={"agent": "A2"}))
    assert fourth["agents"] == ["A2"] and fourth["queue"] == "sales"
    assert ok(bob.get("/agents/A2/state"))["call"] == fourth["call"]


# ---------------------------------------------------------------------- 6. supervisor, audit
def test_supervisor_moves_a_waiting_call(center: Center) -> None:
    sup = center.sup
    cid = center.call("sales")["call"]
    assert ok(sup.get(f"/calls/{cid}"))["state"] == "waiting"
    problem(sup.post(f"/calls/{cid}/move", json={"queue": "vip"}), 403)  # not its queue
    problem(center.alice.post(f"/calls/{cid}/move", json={"queue": "support"}), 403)
    moved = ok(sup.post(f"/calls/{cid}/move", json={"queue": "support", "priority": 5}))
    assert moved["queue"] == "support" and moved["priority"] == 5
    stats = ok(center.admin.get("/stats/realtime"))
    assert stats["queues"]["support"]["waiting"] == 1
    assert stats["queues"]["sales"]["waiting"] == 0
    # Alice (sales only) does not get it; Bob (support) does.
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    assert ok(center.admin.get(f"/calls/{cid}"))["state"] == "waiting"
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))
    assert ok(center.admin.get(f"/calls/{cid}"))["agents"] == ["A2"]
    ok(center.bob.post(f"/calls/{cid}/answer"))
    ok(center.bob.post(f"/calls/{cid}/hangup"))
    cdr = center.cdr(cid)
    assert (cdr["queue"], cdr["final_queue"], cdr["outcome"]) == ("sales", "support", "answered")
    move = [e for e in center.audit() if e["action"] == "call.move"]
    assert len(move) == 1
    assert (move[0]["actor"], move[0]["target"]) == ("sup", cid)
    assert move[0]["detail"]["queue"] == "support"


def test_live_queue_change_applies_to_the_next_call(center: Center) -> None:
    sup, admin = center.sup, center.admin
    before = center.call("sales")
    assert before["state"] == "waiting"  # nobody logged in, the queue lets callers wait
    changed = ok(sup.patch("/queues/sales", json={"when_empty": "reject"}))
    assert changed["when_empty"] == "reject" and changed["skills"] == {"sales": 1}
    assert ok(admin.get("/queues/sales"))["when_empty"] == "reject"
    after = center.call("sales")
    assert after["state"] == "ended"
    cdr = center.cdr(after["call"])
    assert (cdr["outcome"], cdr["cause"]) == ("rejected", "no_agents")
    assert ok(admin.get(f"/calls/{before['call']}"))["state"] == "waiting"  # already in

    # Skills: a support caller waits for a support agent, until the queue asks for sales.
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    assert center.state("A1")["call"] == before["call"]
    ok(center.alice.post(f"/calls/{before['call']}/answer"))
    ok(center.alice.post(f"/calls/{before['call']}/hangup"))
    support = center.call("support")
    assert support["state"] == "waiting" and center.state("A1")["state"] == "ready"
    changed = ok(admin.put("/queues/support", json={"id": "support", "skills": {"sales": 5}}))
    assert changed["skills"] == {"sales": 5}
    assert ok(admin.get(f"/calls/{support['call']}"))["agents"] == ["A1"]


def test_audit_log_lists_config_changes_and_supervisor_actions(center: Center) -> None:
    sup = center.sup
    ok(sup.patch("/queues/sales", json={"ring_timeout": 15}))
    ok(sup.post("/agents/A1/login", json={"ready": True}))
    ok(sup.post("/agents/A1/logout", json={}))
    cid = center.call("sales")["call"]
    ok(sup.post(f"/calls/{cid}/move", json={"queue": "support"}))
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))  # an agent's own: not audited

    entries = center.audit()
    done = {(e["actor"], e["action"], e["target"]) for e in entries}
    for expected in (
        ("boss", "skill.create", "sales"),
        ("boss", "reason_code.create", "break"),
        ("boss", "disposition.create", "resolved"),
        ("boss", "queue.create", "vip"),
        ("boss", "user.create", "alice"),
        ("boss", "agent.create", "A2"),
        ("sup", "queue.update", "sales"),
        ("sup", "agent.login", "A1"),
        ("sup", "agent.logout", "A1"),
        ("sup", "call.move", cid),
    ):
        assert expected in done, f"{expected} not in the audit log"
    assert not [e for e in entries if e["target"] == "A2" and e["action"].startswith("agent.l")]
    update = next(e for e in entries if e["action"] == "queue.update")
    assert update["detail"]["ring_timeout"] == 15
    assert all(isinstance(e["ts"], float) for e in entries)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)  # newest first
    page = ok(center.admin.get("/audit", params={"limit": 2, "before": ids[0]}))
    assert [e["id"] for e in page["entries"]] == ids[1:3]
    assert page["total"] == len(entries)
    # The platform's own log does not show this tenant's entries.
    platform_log = ok(center.server.platform.get("/audit"))["entries"]
    assert {e["action"] for e in platform_log} == {"tenant.create"}


def test_audit_tells_the_platform_admin_from_a_tenant_user_of_the_same_name(
    server: Server,
) -> None:
    # The demo tenant has its own user "admin", like many tenants will: an entry written when
    # the platform's admin acted inside the tenant must not read as that user's doing.
    chief = new_tenant(server, "acme")
    user = {"username": "admin", "password": PASSWORD, "role": "admin"}
    ok(chief.post("/users", json=user), 201)
    ok(server.login("acme", "admin").post("/skills", json={"code": "by_tenant_admin"}), 201)
    platform = server.acting_in("acme")
    ok(platform.post("/skills", json={"code": "by_platform_admin"}), 201)
    entries = ok(chief.get("/audit"))["entries"]
    actor = {e["target"]: e["actor"] for e in entries if e["action"] == "skill.create"}
    assert actor["by_tenant_admin"] == "admin"
    assert actor["by_platform_admin"] != actor["by_tenant_admin"], entries


def test_a_supervisor_ending_an_agents_call_is_audited(center: Center) -> None:
    # "Supervisors act on the agents of their teams and the calls of their queues; each such
    # action is written to the audit log" (server/api/control.py).
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    cid = center.call("sales")["call"]
    ok(center.alice.post(f"/calls/{cid}/answer"))
    ok(center.sup.post(f"/calls/{cid}/hangup"))
    assert center.cdr(cid)["outcome"] == "answered"
    mine = [e for e in center.audit() if e["actor"] == "sup" and e["target"] == cid]
    assert mine, "the supervisor's hang-up of an agent's call is not in the audit log"


def test_the_screen_pop_shows_the_callers_earlier_calls(center: Center) -> None:
    ok(center.bob.post("/agents/A2/login", json={"ready": True}))
    first = center.call("support", number="13911112222")["call"]
    ok(center.bob.post(f"/calls/{first}/answer"))
    ok(center.bob.post(f"/calls/{first}/hangup"))
    ok(center.bob.post("/agents/A2/wrap-up", json={"disposition": "follow_up",
                                                   "note": "退款申请已登记"}))
    ok(center.bob.post("/agents/A2/logout", json={}))
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    again = center.call("sales", number="13911112222")["call"]
    history = ok(center.alice.get(f"/calls/{again}/history"))  # another agent's call, shown
    assert [(h["call_id"], h["agent"], h["disposition"], h["note"], h["outcome"])
            for h in history] == [(first, "A2", "follow_up", "退款申请已登记", "answered")]
    problem(center.bob.get(f"/calls/{again}/history"), 404)  # not his call
    anonymous = ok(center.admin.post("/calls", json={"queue": "support"}), 201)["call"]
    assert ok(center.admin.get(f"/calls/{anonymous}/history")) == []


def test_a_supervisors_notice_reaches_the_agents_of_its_teams(center: Center) -> None:
    """Sup leads team red (alice); bob is in team blue. The notice is pushed to the desktops
    open now and listed for one opened later, until it is withdrawn."""
    client = center.server.client
    with (
        client.websocket_connect(f"{API}/events?token={center.alice.token}") as alice_ws,
        client.websocket_connect(f"{API}/events?token={center.bob.token}") as bob_ws,
    ):
        ws_receive(alice_ws), ws_receive(bob_ws)  # hello
        notice = ok(center.sup.post("/notices", json={"text": "系统维护，请先登记回访",
                                                      "level": "warning"}), 201)
        assert notice["teams"] == ["red"] and notice["author"] == "sup"
        pushed = ws_until(alice_ws, lambda m: m["type"] == "notice")[-1]
        assert (pushed["id"], pushed["text"], pushed["level"]) == (
            notice["id"], "系统维护，请先登记回访", "warning")
        everyone = ok(center.admin.post("/notices", json={"text": "all hands"}), 201)
        got = ws_until(bob_ws, lambda m: m["type"] == "notice")
        assert [m["id"] for m in got if m["type"] == "notice"] == [everyone["id"]]
    assert [n["id"] for n in ok(center.alice.get("/notices"))] == [everyone["id"], notice["id"]]
    assert [n["id"] for n in ok(center.bob.get("/notices"))] == [everyone["id"]]
    invalid(center.sup.post("/notices", json={"text": "x", "teams": ["blue"]}), "body.teams")
    invalid(center.sup.post("/notices", json={"text": ""}), "body.text")
    problem(center.alice.post("/notices", json={"text": "hi"}), 403)
    problem(center.sup.delete(f"/notices/{everyone['id']}"), 403)  # not its author
    ok(center.sup.delete(f"/notices/{notice['id']}"), 204)
    assert [n["id"] for n in ok(center.alice.get("/notices"))] == [everyone["id"]]
    assert {"notice.post", "notice.withdraw"} <= {e["action"] for e in center.audit()}


# ---------------------------------------------------------------------- 7. real-time stats
def test_realtime_stats_show_waiting_calls_and_agent_states(center: Center) -> None:
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    ok(center.bob.post("/agents/A2/login", json={"ready": False, "reason": "break"}))
    calls = [center.call("support")["call"] for _ in range(2)]
    time.sleep(0.1)
    stats = ok(center.admin.get("/stats/realtime"))
    support = stats["queues"]["support"]
    assert support["waiting"] == 2
    assert 0.1 <= support["longest_wait"] < 30
    assert support["offered_today"] == 2 and support["answered_today"] == 0
    assert stats["queues"]["sales"]["waiting"] == 0
    assert set(stats["queues"]) == {"sales", "support", "vip"}
    assert stats["agents"]["A1"]["state"] == "ready" and stats["agents"]["A1"]["team"] == "red"
    assert stats["agents"]["A2"]["state"] == "not_ready"
    assert stats["agents"]["A2"]["reason"] == "break"
    assert stats["agents_by_state"] == {"ready": 1, "not_ready": 1}

    sup = ok(center.sup.get("/stats/realtime"))
    assert set(sup["queues"]) == {"sales", "support"}
    assert sup["queues"]["support"]["waiting"] == 2
    assert set(sup["agents"]) == {"A1"}
    assert sup["agents_by_state"] == {"ready": 1}
    mine = ok(center.alice.get("/stats/realtime"))
    assert set(mine["agents"]) == {"A1"}
    assert "support" not in mine["queues"]

    # Bob takes the first call: one waiting, one talking.
    ok(center.bob.post("/agents/A2/ready"))
    assert ok(center.bob.get("/agents/A2/state"))["call"] == calls[0]
    ok(center.bob.post(f"/calls/{calls[0]}/answer"))
    stats = ok(center.admin.get("/stats/realtime"))
    assert stats["queues"]["support"]["waiting"] == 1
    assert stats["queues"]["support"]["answered_today"] == 1
    assert stats["agents"]["A2"]["state"] == "busy"
    assert stats["agents_by_state"] == {"ready": 1, "busy": 1}


# ---------------------------------------------------------------------- 8. event stream
def test_event_stream_is_filtered_by_who_listens(center: Center) -> None:
    server, client = center.server, center.server.client
    other = new_tenant(server, "globex")
    ok(other.post("/queues", json={"id": "main"}), 201)

    def connect(actor: Actor) -> Any:
        return client.websocket_connect(f"{API}/events?token={actor.token}")

    with (
        connect(center.alice) as alice_ws,
        connect(center.sup) as sup_ws,
        connect(center.admin) as admin_ws,
        connect(other) as other_ws,
    ):
        hello = ws_receive(alice_ws)
        assert hello == {
            "type": "hello",
            "tenant": "acme",
            "user": "alice",
            "role": "agent",
            "agent": "A1",
        }
        assert ws_receive(sup_ws)["role"] == "supervisor"
        assert ws_receive(admin_ws)["user"] == "boss"
        assert ws_receive(other_ws)["tenant"] == "globex"

        ok(center.bob.post("/agents/A2/login", json={"ready": False, "reason": "break"}))
        ok(center.alice.post("/agents/A1/login", json={"ready": True}))
        cid = center.call("vip", number="555", customer="Li Na")["call"]
        ok(center.alice.post(f"/calls/{cid}/answer"))
        ok(center.bob.post("/agents/A2/logout", json={}))
        ok(center.alice.post(f"/calls/{cid}/hangup"))
        ok(center.alice.post("/agents/A1/wrap-up", json={"disposition": "resolved"}))
        ok(center.alice.post("/agents/A1/logout", json={}))
        marker = ok(other.post("/calls", json={"queue": "main", "number": "1"}), 201)["call"]

        def a1_out(m: dict[str, Any]) -> bool:
            return m.get("agent") == "A1" and m.get("state") == "logged_out"

        got = ws_until(alice_ws, a1_out)
        assert got and all(m.get("agent") == "A1" for m in got), got
        types = [m["type"] for m in got]
        for expected in ("call_offered", "call_answered", "call_ended", "call_disposed"):
            assert expected in types
        offer = next(m for m in got if m["type"] == "call_offered")
        assert (offer["call"], offer["number"], offer["data"]) == (
            cid,
            "555",
            {"customer": "Li Na"},
        )
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs)

        got, stats = split_stats(ws_until(sup_ws, a1_out))
        agents = {m.get("agent") for m in got}
        assert "A1" in agents and "A2" not in agents, got
        assert stats <= {"sales", "support"}

        got, stats = split_stats(ws_until(admin_ws, a1_out))
        assert {"A1", "A2"} <= {m.get("agent") for m in got}  # the admin sees the whole tenant

        def marker_queued(m: dict[str, Any]) -> bool:
            return m.get("call") == marker and m["type"] == "call_queued"

        got, stats = split_stats(ws_until(other_ws, marker_queued))
        assert got and all(m.get("call") == marker for m in got), got
        assert stats <= {"main"}


def test_event_stream_refuses_bad_tokens(server: Server) -> None:
    client = server.client
    for url in (f"{API}/events?token=hlt_not-a-token", f"{API}/events"):
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url):
            pass
        assert closed.value.code == 1008
    # A revoked token is refused as well.
    admin = server.login("platform", "admin", PLATFORM_PASSWORD)
    ok(admin.post("/auth/logout"), 204)
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(f"{API}/events?token={admin.token}"),
    ):
        pass
    # A valid one via the Authorization header is accepted.
    headers = {"Authorization": f"Bearer {server.platform.token}"}
    with client.websocket_connect(f"{API}/events", headers=headers) as ws:
        assert ws_receive(ws)["type"] == "hello"


def test_a_deactivated_users_event_stream_is_cut_off(server: Server) -> None:
    # Revoking someone's access must also stop the live feed of callers' numbers and data
    # that their already open stream carries.
    chief = new_tenant(server, "acme")
    ok(chief.post("/queues", json={"id": "main"}), 201)
    ok(chief.post("/users", json={"username": "qa", "password": PASSWORD, "role": "qa"}), 201)
    qa = server.login("acme", "qa")
    with server.client.websocket_connect(f"{API}/events?token={qa.token}") as ws:
        assert ws_receive(ws)["type"] == "hello"
        ok(chief.patch("/users/qa", json={"active": False}))
        problem(qa.get("/me"), 401)
        body = {"queue": "main", "number": "13700000000", "data": {"customer": "Wang"}}
        call = ok(chief.post("/calls", json=body), 201)["call"]
        leaked, closed = [], False
        deadline = time.monotonic() + 5
        while not leaked and time.monotonic() < deadline:
            try:
                msg = ws_receive(ws, timeout=max(0.1, deadline - time.monotonic()))
            except WebSocketDisconnect:
                closed = True
                break
            except AssertionError:  # nothing more within the deadline
                break
            if msg.get("call") == call:
                leaked.append(msg)
        assert not leaked, f"a deactivated user still receives calls: {leaked}"
        assert closed


# ---------------------------------------------------------------------- 9. reports
def test_interval_reports_match_the_calls_made(center: Center) -> None:
    alice, bob, admin = center.alice, center.bob, center.admin
    start = time.time()
    t0 = (start // 900) * 900 - 900  # on a quarter-hour boundary
    ok(alice.post("/agents/A1/login", json={"ready": True}))
    ok(bob.post("/agents/A2/login", json={"ready": True}))
    # sales: two answered, one abandoned while waiting; support: one answered.
    for _ in range(2):
        cid = center.call("sales")["call"]
        agent = ok(admin.get(f"/calls/{cid}"))["agents"][0]
        who = alice if agent == "A1" else bob
        ok(who.post(f"/calls/{cid}/answer"))
        ok(who.post(f"/calls/{cid}/hangup"))
    ok(alice.post("/agents/A1/not-ready", json={"reason": "break"}))
    ok(bob.post("/agents/A2/not-ready", json={"reason": "break"}))
    gone = center.call("sales")["call"]
    ok(admin.post(f"/calls/{gone}/abandon"))
    ok(bob.post("/agents/A2/ready"))
    cid = center.call("support")["call"]
    ok(bob.post(f"/calls/{cid}/answer"))
    ok(bob.post(f"/calls/{cid}/hangup"))

    window = {
        "from": datetime.fromtimestamp(t0).astimezone().isoformat(),
        "to": str(t0 + 3600),
        "interval": "15m",
    }
    rows = ok(admin.get("/reports/queues", params=window))["rows"]
    keys = [(r["interval_start"], r["queue"]) for r in rows]
    assert len(keys) == len(set(keys))  # one row per interval and queue
    totals: dict[str, dict[str, int]] = {}
    for r in rows:
        offset = datetime.fromisoformat(r["interval_start"]).timestamp() - t0
        assert offset % 900 == 0 and 0 <= offset < 3600
        tally = totals.setdefault(r["queue"], {"offered": 0, "answered": 0, "abandoned": 0})
        tally["offered"] += r["offered"]
        tally["answered"] += r["answered"]
        # The caller hung up at once: a short abandon (within 5 s), reported apart.
        tally["abandoned"] += r["abandoned"] + r["short_abandoned"]
    assert totals == {
        "sales": {"offered": 3, "answered": 2, "abandoned": 1},
        "support": {"offered": 1, "answered": 1, "abandoned": 0},
    }

    r = admin.get("/reports/queues", params={**window, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert {"interval_start", "queue", "offered", "answered"} <= set(table[0])
    assert sum(int(t["offered"]) for t in table if t["queue"] == "sales") == 3
    assert sum(int(t["answered"]) for t in table if t["queue"] == "support") == 1

    agents = ok(admin.get("/reports/agents", params=window))["rows"]
    answered: dict[str, int] = {}
    for row in agents:
        answered[row["agent"]] = answered.get(row["agent"], 0) + row["answered"]
    assert sum(answered.values()) == 3
    mine = ok(alice.get("/reports/agents", params=window))["rows"]
    assert mine and {row["agent"] for row in mine} == {"A1"}

    # A report of an earlier hour has none of it; a window ending before it starts is refused.
    earlier = ok(admin.get("/reports/queues", params={"from": str(t0 - 3600), "to": str(t0)}))
    assert earlier["rows"] == []
    invalid(admin.get("/reports/queues", params={"from": str(t0 + 60), "to": str(t0)}), "query.to")
    invalid(admin.get("/reports/queues", params={"from": "yesterday", "to": str(t0)}), "query.from")
    invalid(admin.get("/reports/queues", params={**window, "interval": "7m"}), "query.interval")
    invalid(admin.get("/reports/queues", params={"to": str(t0)}), "query.from")


def test_csv_report_of_a_quiet_period_still_has_its_header_row(server: Server) -> None:
    # A spreadsheet or nightly import reads the columns from the header, calls or not.
    chief = new_tenant(server, "acme")
    ok(chief.post("/queues", json={"id": "main"}), 201)
    now = time.time()
    window = {"from": str(now - 3600), "to": str(now), "format": "csv"}
    for report, columns in (
        ("queues", {"interval_start", "queue", "offered", "answered"}),
        ("agents", {"interval_start", "agent", "answered", "logged_in_time"}),
    ):
        r = chief.get(f"/reports/{report}", params=window)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        header = next(csv.reader(io.StringIO(r.text)), [])
        assert columns <= set(header), f"/reports/{report}: {r.text!r}"


def test_agent_report_counts_only_time_that_has_passed(center: Center) -> None:
    # Today's report, asked for up to the end of the hour, must not credit an agent with
    # logged-in time that has not happened yet.
    logged_in = time.time()
    ok(center.alice.post("/agents/A1/login", json={"ready": True}))
    window = {"from": str(logged_in - 60), "to": str(logged_in + 3600), "interval": "60m"}
    rows = ok(center.admin.get("/reports/agents", params=window))["rows"]
    elapsed = time.time() - logged_in
    mine = [r for r in rows if r["agent"] == "A1"]
    assert mine
    for key in ("logged_in_time", "staffed_time"):
        assert 0 < sum(r[key] for r in mine) <= elapsed + 1, (key, mine)


# ---------------------------------------------------------------------- 10. workforce: roster
def _at(seconds_from_now: float) -> str:
    """An ISO 8601 time with the server's offset, this many seconds from now."""
    return datetime.fromtimestamp(time.time() + seconds_from_now).astimezone().isoformat()


def _roster(*rows: tuple[str, float, float, str]) -> list[dict[str, str]]:
    return [{"agent": a, "start": _at(s), "end": _at(e), "activity": k} for a, s, e, k in rows]


def _adherence(actor: Actor) -> dict[str, dict[str, Any]]:
    return {row["agent"]: row for row in ok(actor.get("/wfm/adherence"))["agents"]}


def test_a_published_roster_drives_live_adherence(center: Center) -> None:
    """Alice (team red) is rostered to work, Bob on a break: the floor shows who is doing
    what they should, supervisors only their teams, and changes are pushed on the stream."""
    day = {"from": _at(-3600), "to": _at(3600)}
    roster = _roster(("A1", -1800, 1800, "work"), ("A2", -600, 600, "break"))
    published = ok(center.planner.put("/wfm/roster", json=roster, params=day))
    assert (published["activities"], published["agents"]) == (2, 2)
    assert "roster.publish" in {e["action"] for e in center.audit()}
    client = center.server.client
    with client.websocket_connect(f"{API}/events?token={center.sup.token}") as ws:
        ws_receive(ws)  # hello
        ok(center.alice.post("/agents/A1/login", json={"ready": True}))
        ok(center.bob.post("/agents/A2/login", json={"ready": True}))
        floor = _adherence(center.planner)
        assert (floor["A1"]["activity"], floor["A1"]["state"]) == ("work", "ready")
        assert floor["A1"]["in_adherence"] and floor["A1"]["out_seconds"] == 0
        assert (floor["A2"]["activity"], floor["A2"]["in_adherence"]) == ("break", False)
        assert floor["A2"]["out_seconds"] > 0 and not floor["A2"]["severe"]
        assert set(_adherence(center.sup)) == {"A1"}  # its team only

        # Alice takes an unscheduled break: out of adherence, pushed to her supervisor.
        ok(center.alice.post("/agents/A1/not-ready", json={"reason": "break"}))
        seen = ws_until(ws, lambda m: m["type"] == "adherence" and not m["in_adherence"])
        pushed = [m for m in seen if m["type"] == "adherence"]
        assert [(m["agent"], m["activity"], m["in_adherence"]) for m in pushed] == [
            ("A1", "work", True), ("A1", "work", False)]  # logged in, then the break
        assert not _adherence(center.sup)["A1"]["in_adherence"]
    ok(center.bob.post("/agents/A2/not-ready", json={"reason": "break"}))
    assert _adherence(center.planner)["A2"]["in_adherence"]

    # Republishing the range replaces it: Bob is no longer rostered, so logged in is out.
    ok(center.admin.put("/wfm/roster", json=roster[:1], params=day))
    listed = ok(center.planner.get("/wfm/roster", params=day))
    assert [(r["agent"], r["activity"]) for r in listed] == [("A1", "work")]
    bob = _adherence(center.planner)["A2"]
    assert (bob["activity"], bob["in_adherence"], bob["rostered"]) == ("off", False, False)
    assert _adherence(center.planner)["A1"]["rostered"]
    assert ok(center.alice.get("/wfm/roster", params=day))[0]["agent"] == "A1"
    assert ok(center.bob.get("/wfm/roster", params=day)) == []  # his own only
    text = center.planner.get("/wfm/roster", params={**day, "format": "csv"}).text
    assert text.splitlines()[0] == "agent,start,end,activity" and ",A1," not in text
    assert text.splitlines()[1].startswith("A1,") and text.splitlines()[1].endswith(",work")


def test_one_teams_roster_leaves_the_others_in_place(center: Center) -> None:
    day = {"from": _at(-3600), "to": _at(3600)}
    ok(center.planner.put("/wfm/roster", json=_roster(("A1", -1800, 1800, "work"),
                                                      ("A2", -600, 600, "break")), params=day))
    mine = _roster(("A1", -1200, 1200, "meeting"))
    ok(center.planner.put("/wfm/roster", json=mine, params={**day, "agents": "listed"}))
    kept = {(r["agent"], r["activity"]) for r in ok(center.planner.get("/wfm/roster",
                                                                        params=day))}
    assert kept == {("A1", "meeting"), ("A2", "break")}
    assert _adherence(center.planner)["A2"]["activity"] == "break"
    ok(center.planner.put("/wfm/roster", json=mine, params=day))  # every agent's: A2's go
    assert {r["agent"] for r in ok(center.planner.get("/wfm/roster", params=day))} == {"A1"}
    assert _adherence(center.planner)["A2"]["activity"] == "off"


def test_a_tenant_decides_what_adheres_and_when_it_is_severe(center: Center) -> None:
    """A center that lets agents log out for a break, and calls 2 seconds out severe: its
    floor follows its rules, not the defaults; rules that name no real state are refused."""
    settings = {"adherence": {"severe_after": 2,
                              "adhering": {"break": ["not_ready:break", "logged_out"]}}}
    ok(center.admin.patch("/tenants/acme", json={"settings": settings}))
    day = {"from": _at(-3600), "to": _at(3600)}
    ok(center.planner.put("/wfm/roster", json=_roster(("A1", -1800, 1800, "work"),
                                                      ("A2", -600, 600, "break")), params=day))
    assert ok(center.planner.get("/wfm/adherence"))["severe_after"] == 2
    floor = _adherence(center.planner)
    assert floor["A2"]["state"] == "logged_out" and floor["A2"]["in_adherence"]
    assert floor["A1"]["state"] == "logged_out" and not floor["A1"]["in_adherence"]
    wait_until(lambda: _adherence(center.planner)["A1"]["severe"], 10.0, "A1 severe")
    for bad in ({"adhering": {"work": ["dancing"]}}, {"adhering": {"lunch": ["ready"]}},
                {"severe_after": 0}):
        invalid(center.admin.patch("/tenants/acme", json={"settings": {"adherence": bad}}),
                "body.settings.adherence")
    # Back to the defaults: a logged-out break no longer adheres.
    ok(center.admin.patch("/tenants/acme", json={"settings": {}}))
    assert not _adherence(center.planner)["A2"]["in_adherence"]


def test_a_roster_is_checked_and_published_only_by_planners_and_admins(center: Center) -> None:
    day = {"from": _at(-3600), "to": _at(3600)}
    good = _roster(("A1", 0, 600, "work"))
    for actor in (center.sup, center.qa, center.alice):
        problem(actor.put("/wfm/roster", json=good, params=day), 403)
    for actor in (center.qa, center.alice):
        problem(actor.get("/wfm/adherence"), 403)
        problem(actor.get("/wfm/adherence/report", params=day), 403)
    invalid(center.planner.put("/wfm/roster", json=[*good, *_roster(("X9", 0, 60, "work"))],
                               params=day), "body.1.agent")
    invalid(center.planner.put("/wfm/roster", json=_roster(("A1", 4000, 4100, "work")),
                               params=day), "body.0.start")
    invalid(center.planner.put("/wfm/roster", json=[{**good[0], "activity": "nap"}],
                               params=day), "body.0.activity")
    overlapping = _roster(("A1", 0, 600, "work"), ("A1", 300, 900, "meeting"))
    invalid(center.planner.put("/wfm/roster", json=overlapping, params=day), "body.1.start")
    invalid(center.planner.put("/wfm/roster", json=good, params={**day, "to": day["from"]}),
            "query.to")
    csv_text = f"agent,start,end,activity\nA1,{_at(0)},{_at(60)},work\nX9,{_at(0)},{_at(60)},work\n"
    headers = {"Content-Type": "text/csv"}
    body = invalid(center.planner.put("/wfm/roster", content=csv_text, headers=headers,
                                      params=day), "body.line 3.agent")
    assert "X9" in body["detail"]
    bad_kind = f"agent,start,end,activity\nA1,{_at(0)},{_at(60)},nap\n"
    body = invalid(center.planner.put("/wfm/roster", content=bad_kind, headers=headers,
                                      params=day), "body")
    assert "line 2" in body["detail"]
    problem(center.planner.put("/wfm/roster", content="x", params=day,
                               headers={"Content-Type": "text/plain"}), 415)
    assert ok(center.planner.get("/wfm/roster", params=day)) == []  # nothing was published
    ok(center.planner.put("/wfm/roster", content=csv_text.splitlines(keepends=True)[0]
                          + csv_text.splitlines(keepends=True)[1], headers=headers, params=day))
    assert len(ok(center.planner.get("/wfm/roster", params=day))) == 1

    # Another tenant knows none of these agents and sees none of this roster.
    other = new_tenant(center.server, "globex")
    invalid(other.put("/wfm/roster", json=good, params=day), "body.0.agent")
    assert ok(other.get("/wfm/roster", params=day)) == []
    assert ok(other.get("/wfm/adherence"))["agents"] == []


def test_adherence_conformance_and_shrinkage_come_from_the_stored_states(
    center: Center,
) -> None:
    """Alice is ready, then on a break, then logs out; her roster (published afterwards: the
    report reads both from the record) has her working from a minute before to half a second
    after. The period's figures follow from the state changes' times."""
    t0 = time.time() - 60
    client = center.server.client
    with client.websocket_connect(f"{API}/events?token={center.admin.token}") as ws:
        ws_receive(ws)
        ok(center.alice.post("/agents/A1/login", json={"ready": True}))
        time.sleep(0.3)
        ok(center.alice.post("/agents/A1/not-ready", json={"reason": "break"}))
        time.sleep(0.2)
        ok(center.alice.post("/agents/A1/logout", json={}))
        changes = [m for m in ws_until(ws, lambda m: m.get("state") == "logged_out")
                   if m.get("type") == "agent_state_changed"]
    times = {m["state"]: m["t"] for m in changes}
    ready, on_break, out = times["ready"], times["not_ready"], times["logged_out"]
    t_end = out + 0.5
    period = {
        "from": datetime.fromtimestamp(t0).astimezone().isoformat(),
        "to": datetime.fromtimestamp(t_end).astimezone().isoformat(),
    }
    work = [{"agent": "A1", "start": period["from"], "end": period["to"], "activity": "work"}]
    ok(center.planner.put("/wfm/roster", json=work, params=period))
    wait_until(lambda: time.time() > t_end + 0.05, what="the period to end")
    scheduled = t_end - t0

    report = ok(center.sup.get("/wfm/adherence/report", params=period))
    assert [row["agent"] for row in report["agents"]] == ["A1"]  # its team only
    a1 = report["agents"][0]
    assert a1["scheduled_time"] == pytest.approx(scheduled, abs=1e-3)
    assert a1["adherence"] == pytest.approx((on_break - ready) / scheduled, abs=1e-4)
    assert a1["conformance"] == pytest.approx((out - ready) / scheduled, abs=1e-4)
    assert report["total"]["adherence"] == pytest.approx(a1["adherence"])

    shrink = ok(center.planner.get("/wfm/shrinkage", params=period))
    a1 = next(row for row in shrink["agents"] if row["agent"] == "A1")
    assert a1["paid_time"] == pytest.approx(scheduled, abs=1e-3)
    assert a1["not_ready"]["break"]["time"] == pytest.approx(out - on_break, abs=1e-4)
    assert a1["logged_out"]["time"] == pytest.approx(scheduled - (out - ready), abs=1e-3)
    assert a1["shrinkage"] == pytest.approx(1 - (on_break - ready) / scheduled, abs=1e-4)
    assert shrink["total"]["shrinkage"] == pytest.approx(a1["shrinkage"])
    problem(center.alice.get("/wfm/shrinkage", params=period), 403)

    # The same figures as files: a row per agent and a total row.
    text = center.sup.get("/wfm/adherence/report", params={**period, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["agent"] for r in rows] == ["A1", "total"]
    assert float(rows[0]["adherence"]) == pytest.approx(report["agents"][0]["adherence"])
    r = center.planner.get("/wfm/shrinkage", params={**period, "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in sheet[1]]
    a1_row = next(row for row in sheet.iter_rows(min_row=2, values_only=True) if row[0] == "A1")
    got = dict(zip(header, a1_row, strict=True))
    assert got["shrinkage"] == pytest.approx(a1["shrinkage"])
    assert got["not_ready_break_share"] == pytest.approx(a1["not_ready"]["break"]["share"])


# ---------------------------------------------------------------------- 11. the demo's roster
DEMO = "demo-bank"
OFF_PHONES = {"break": 15 * 60, "meal": 30 * 60}  # the demo's times off the phones


@pytest.fixture
def quiet_demo(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """``serve --demo`` in process, its simulated callers silent (calls only when a test
    makes them) and nobody back late from a break, so agents' states are the roster's."""
    quiet = demo.demo_scenario().model_copy(update={"traffic": []})
    monkeypatch.setattr(demo, "demo_scenario", lambda: quiet)
    monkeypatch.setattr(demo, "LATE_SHARE", 0.0)
    settings = Settings(db_url=db_url, admin_password=PLATFORM_PASSWORD, demo=True,
                        demo_password=PASSWORD, say=lambda s: None)
    with TestClient(create_app(settings)) as client:
        yield Server(client)


def _demo_agents() -> list[str]:
    return [a for group in demo.demo_scenario().agents for a in group.agent_ids()]


def _local_day(offset: int) -> float:
    return datetime.combine(date.today() + timedelta(days=offset), datetime.min.time()).timestamp()


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_the_demo_rosters_its_agents_round_the_clock_and_they_follow_it(
    quiet_demo: Server,
) -> None:
    planner = quiet_demo.login(DEMO, "planner")
    agents = _demo_agents()
    today, tomorrow, after = (_local_day(k) for k in range(3))
    day = {"from": date.today().isoformat(), "to": (date.today() + timedelta(days=1)).isoformat()}
    rows = ok(planner.get("/wfm/roster", params=day))
    by_agent: dict[str, list[tuple[float, float, str]]] = {}
    for r in rows:
        by_agent.setdefault(r["agent"], []).append((_stamp(r["start"]), _stamp(r["end"]),
                                                    r["activity"]))
    assert sorted(by_agent) == sorted(agents)
    now = time.time()
    for agent, acts in by_agent.items():
        # Rostered without a gap all day (the centre runs round the clock) ...
        assert all(a[1] == b[0] for a, b in pairwise(acts)), agent
        assert acts[0][0] - today <= OFF_PHONES["meal"] and acts[-1][1] >= tomorrow, agent
        assert any(s <= now < e for s, e, _ in acts), agent
        # ... working, with two 15-minute breaks and a 30-minute meal every 8 hours.
        off = [(e - s, kind) for s, e, kind in acts if kind != "work"]
        assert {kind for _, kind in off} == {"break", "meal"}
        assert all(length == OFF_PHONES[kind] for length, kind in off), agent
        assert 5 <= sum(kind == "break" for _, kind in off) <= 7
        assert 2 <= sum(kind == "meal" for _, kind in off) <= 4
    # Staggered: at most 15 % of the agents off the phones at any moment.
    off_times = [(s, e) for acts in by_agent.values() for s, e, kind in acts if kind != "work"]
    most = max(sum(s <= t < e for s, e in off_times) for t, _ in off_times)
    assert 0 < most <= 0.15 * len(agents)
    # Tomorrow is rostered too; the day after, once the demo has run into tomorrow.
    later = ok(planner.get("/wfm/roster", params={"from": str(tomorrow), "to": str(after)}))
    assert {r["agent"] for r in later if _stamp(r["start"]) >= tomorrow} == set(agents)
    assert "roster.publish" in {
        e["action"] for e in ok(quiet_demo.login(DEMO, "admin").get(
            "/audit", params={"limit": 100}))["entries"]}

    # Live adherence judges every demo agent against it, and (no calls in this quiet demo)
    # each is doing what it is scheduled to: on the phones, or off them with its reason.
    def floor() -> dict[str, Any]:
        body: dict[str, Any] = ok(planner.get("/wfm/adherence"))
        return body

    live = floor()
    shown = {a["agent"]: a for a in live["agents"]}
    for agent in agents:
        scheduled = [kind for s, e, kind in by_agent[agent] if s <= live["t"] < e]
        assert shown[agent]["rostered"], agent
        assert [shown[agent]["activity"]] == scheduled, agent
    wait_until(lambda: all(a["in_adherence"] for a in floor()["agents"]
                           if a["agent"] in by_agent), what="every demo agent in adherence")
    for a in floor()["agents"]:
        if a["agent"] in by_agent and a["activity"] != "work":
            assert (a["state"], a["reason"]) == (
                "not_ready", {"break": "break", "meal": "lunch"}[a["activity"]])


def test_a_demo_agent_takes_its_break_once_free_and_comes_back_when_it_ends(
    quiet_demo: Server,
) -> None:
    admin, planner = quiet_demo.login(DEMO, "admin"), quiet_demo.login(DEMO, "planner")
    # A caller nobody simulates: the demo agent who answers stays on the call.
    call = ok(admin.post("/calls", json={"queue": "general", "number": "13900000001"}), 201)
    busy = wait_until(lambda: (info := ok(admin.get(f"/calls/{call['call']}")))["state"]
                      == "connected" and info["agents"][0], what="a demo agent to answer")
    free = next(a for a in _demo_agents() if a != busy
                and ok(admin.get(f"/agents/{a}/state"))["state"] == "ready")

    # The planner gives both a break starting in two seconds (their days otherwise work).
    span = {"from": date.today().isoformat(),
            "to": (date.today() + timedelta(days=2)).isoformat()}
    kept = [r for r in ok(planner.get("/wfm/roster", params=span))
            if r["agent"] not in (busy, free) and _stamp(r["start"]) >= _stamp(span["from"])]
    start, length = float(int(time.time()) + 2), 4.0
    iso = {t: datetime.fromtimestamp(t).astimezone().isoformat()
           for t in (_stamp(span["from"]), start, start + length, _stamp(span["to"]))}
    mine = [{"agent": a, "start": iso[s], "end": iso[e], "activity": kind}
            for a in (busy, free)
            for s, e, kind in ((_stamp(span["from"]), start, "work"),
                               (start, start + length, "break"),
                               (start + length, _stamp(span["to"]), "work"))]
    ok(planner.put("/wfm/roster", json=kept + mine, params=span))

    def state(agent: str) -> tuple[str, str | None]:
        body = ok(admin.get(f"/agents/{agent}/state"))
        return body["state"], body["reason"]

    wait_until(lambda: state(free) == ("not_ready", "break"), 5, "the free agent's break")
    assert time.time() >= start
    on_break = _adherence(planner)
    assert (on_break[free]["activity"], on_break[free]["in_adherence"]) == ("break", True)
    # The other finishes its call first: out of adherence meanwhile.
    assert state(busy) == ("busy", None)
    assert (on_break[busy]["activity"], on_break[busy]["in_adherence"]) == ("break", False)
    ok(admin.post(f"/calls/{call['call']}/hangup"))
    ok(admin.post(f"/agents/{busy}/wrap-up", json={}))
    wait_until(lambda: state(busy) == ("not_ready", "break"), 3, "the break after the call")
    assert _adherence(planner)[busy]["in_adherence"]

    # Back on the phones when the break ends.
    wait_until(lambda: state(free) == ("ready", None), length + 3, "the agent back")
    assert time.time() >= start + length
    assert state(busy) == ("ready", None)
    back = _adherence(planner)
    assert all((back[a]["activity"], back[a]["in_adherence"]) == ("work", True)
               for a in (busy, free))
