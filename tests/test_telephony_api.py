"""Telephony configuration through the HTTP API, as administrators and the SIP side rely on it:
agents' phone accounts (only digest HA1s are kept), trunks, inbound routes, and the download
of call recordings, with their role and tenant rules; and the migration that adds them. Every
test runs against a real server app in process, on SQLite and on PostgreSQL.

The SIP side is not part of these tests: a small stand-in takes its place behind
``ServerState.telephony``. Like the registrar, it re-reads the directory from the database on
``reload()``, so the tests see what the SIP side would see after each change."""

from __future__ import annotations

import json
import logging
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, select, text

from hotline.db.database import MIGRATIONS, open_database
from hotline.db.schema import (
    AuditEntry,
    Base,
    CallRecord,
    InboundRoute,
    PhoneAccount,
    Tenant,
    Trunk,
)
from hotline.server import security
from hotline.server.app import Settings, create_app
from hotline.server.state import ServerState
from hotline.sip import digest
from test_server_api import (
    PASSWORD,
    PLATFORM_PASSWORD,
    Center,
    Server,
    invalid,
    new_tenant,
    ok,
    problem,
)

SECRET = "phone-secret-7731"  # a phone's password in these tests
TRUNK_SECRET = "trunk-secret-4420"


class SipSide:
    """Stands in for the SIP side: re-reads phones, trunks and routes from the database on
    ``reload()`` (as the registrar does) and reports the registrations a test gives it."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.reloads = 0
        self.phones: dict[str, dict[str, Any]] = {}
        self.trunks: dict[str, dict[str, Any]] = {}
        self.routes: dict[str, dict[str, Any]] = {}
        self.bindings: dict[str, list[dict[str, Any]]] = {}

    def phone_status(self, username: str) -> list[dict[str, Any]]:
        return list(self.bindings.get(username, []))

    async def reload(self) -> None:
        with self.state.sessions() as db:
            self.phones = {
                p.username: {"tenant": p.tenant_id, "agent": p.agent, "md5": p.ha1_md5}
                | {"sha256": p.ha1_sha256}
                for p in db.scalars(select(PhoneAccount))
            }
            self.trunks = {
                f"{t.tenant_id}/{t.code}": {"allow": t.allow, "username": t.username}
                | {"md5": t.ha1_md5, "sha256": t.ha1_sha256, "active": t.active}
                for t in db.scalars(select(Trunk))
            }
            self.routes = {
                r.did: {"tenant": r.tenant_id, "queue": r.queue}
                for r in db.scalars(select(InboundRoute))
            }
        self.reloads += 1


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at a test cost (the users' log-ins; phones' HA1s are plain digests anyway)."""
    monkeypatch.setattr(
        security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    settings = Settings(db_url=db_url, admin_password=PLATFORM_PASSWORD, say=lambda s: None)
    with TestClient(create_app(settings)) as client:
        state: ServerState = client.app.state.hotline  # type: ignore[attr-defined]
        state.recordings = tmp_path / "recordings"  # the server's lifespan does not set it yet
        state.recordings.mkdir()
        state.telephony = SipSide(state)
        yield Server(client)


@pytest.fixture
def center(server: Server) -> Center:
    return Center(server)


def hotline(center: Center) -> ServerState:
    return center.server.client.app.state.hotline  # type: ignore[attr-defined,no-any-return]


def sip(center: Center) -> SipSide:
    side = hotline(center).telephony
    assert isinstance(side, SipSide)
    return side


def rows(center: Center, table: type[Base]) -> list[dict[str, Any]]:
    """Every row of a table, every column, as stored."""
    with hotline(center).sessions() as db:
        return [
            {c.key: getattr(r, c.key) for c in inspect(table).columns}
            for r in db.scalars(select(table))
        ]


def tenant_id(center: Center, slug: str) -> int:
    with hotline(center).sessions() as db:
        found = db.scalar(select(Tenant.id).where(Tenant.slug == slug))
    assert found is not None
    return found


def set_extension(center: Center, code: str, extension: str) -> None:
    agent = ok(center.admin.get(f"/agents/{code}"))
    ok(center.admin.put(f"/agents/{code}", json={**agent, "extension": extension}))


def assert_secret_nowhere(center: Center, *secrets: str) -> None:
    """Not in any response the server gave, nor in any stored row or the audit log."""
    texts = [r.text for r in center.server.log]
    texts += [json.dumps(rows(center, t), default=str) for t in (PhoneAccount, Trunk, AuditEntry)]
    for secret in secrets:
        for text_ in texts:
            assert secret not in text_


# ---------------------------------------------------------------------- phone accounts
def test_a_phone_account_stores_only_the_digest_ha1s(
    center: Center, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin, side = center.admin, sip(center)
    body = ok(admin.put("/agents/A1/phone", json={"password": SECRET}))
    # No extension: the username is the agent's code.
    assert body == {
        "agent": "A1",
        "user": None,
        "username": "A1",
        "realm": "hotline",
        "registered": False,
        "registrations": [],
    }
    assert ok(admin.get("/agents/A1/phone")) == body
    (row,) = rows(center, PhoneAccount)
    assert row["username"] == "A1" and row["agent"] == "A1"
    assert row["ha1_md5"] == digest.ha1("MD5", "A1", "hotline", SECRET)
    assert row["ha1_sha256"] == digest.ha1("SHA-256", "A1", "hotline", SECRET)
    # The SIP side re-read its directory once the change was committed.
    assert side.phones["A1"]["md5"] == row["ha1_md5"]
    assert side.phones["A1"]["tenant"] == tenant_id(center, "acme")

    # Replacing it: a new username and password; the old username no longer registers.
    new_secret = "another-secret-99"
    reloads = side.reloads
    body = ok(
        admin.put("/agents/A1/phone", json={"username": "alice.desk", "password": new_secret})
    )
    assert body["username"] == "alice.desk"
    (after,) = rows(center, PhoneAccount)
    assert after["id"] == row["id"] and after["created_at"] == row["created_at"]
    assert after["updated_at"] >= row["updated_at"]
    assert after["ha1_sha256"] == digest.ha1("SHA-256", "alice.desk", "hotline", new_secret)
    assert side.reloads == reloads + 1
    assert set(side.phones) == {"alice.desk"}

    # An agent with an extension gets it as its username.
    set_extension(center, "A2", "2002")
    assert ok(admin.put("/agents/A2/phone", json={"password": SECRET}))["username"] == "2002"
    assert set(side.phones) == {"alice.desk", "2002"}

    # The registrations are the SIP side's.
    binding = {
        "contact": "sip:alice.desk@192.0.2.10:5060",
        "source": "192.0.2.10:5060",
        "user_agent": "Yealink T54W",
        "expires_in": 3541,
    }
    side.bindings["alice.desk"] = [binding]
    body = ok(admin.get("/agents/A1/phone"))
    assert body["registered"] is True and body["registrations"] == [binding]
    listed = ok(admin.get("/phones"))
    assert [(p["agent"], p["username"], p["registered"]) for p in listed] == [
        ("A1", "alice.desk", True),
        ("A2", "2002", False),
    ]

    entries = center.audit()
    phone_entries = [
        (e["action"], e["target"], e["detail"]) for e in entries if "phone" in e["action"]
    ]
    assert phone_entries == [
        ("phone.create", "A2", {"username": "2002"}),
        ("phone.update", "A1", {"username": "alice.desk"}),
        ("phone.create", "A1", {"username": "A1"}),
    ]
    assert_secret_nowhere(center, SECRET, new_secret)
    assert SECRET not in caplog.text and new_secret not in caplog.text

    # Deleting it.
    ok(admin.delete("/agents/A1/phone"), 204)
    problem(admin.get("/agents/A1/phone"), 404)
    problem(admin.delete("/agents/A1/phone"), 404)
    assert set(side.phones) == {"2002"}
    assert center.audit()[0]["action"] == "phone.delete"
    # Deleting an agent deletes its phone account, and frees the username.
    ok(admin.delete("/agents/A2"), 204)
    assert rows(center, PhoneAccount) == [] and side.phones == {}
    ok(admin.put("/agents/A1/phone", json={"username": "2002", "password": SECRET}))


def test_without_the_sip_side_a_phone_is_simply_not_registered(center: Center) -> None:
    hotline(center).telephony = None
    body = ok(center.admin.put("/agents/A1/phone", json={"password": SECRET}))
    assert (body["registered"], body["registrations"]) == (False, [])
    assert ok(center.admin.get("/phones"))[0]["registrations"] == []
    ok(center.admin.delete("/agents/A1/phone"), 204)


def test_sip_usernames_are_unique_across_all_tenants(center: Center) -> None:
    server, acme = center.server, center.admin
    globex = new_tenant(server, "globex")
    ok(globex.post("/agents", json={"code": "G1"}), 201)
    ok(globex.post("/agents", json={"code": "A2"}), 201)  # agent codes are per tenant
    ok(acme.put("/agents/A1/phone", json={"username": "desk1", "password": SECRET}))

    body = problem(
        globex.put("/agents/G1/phone", json={"username": "desk1", "password": SECRET}), 409
    )
    assert "acme" not in json.dumps(body)
    # The default username (the agent code) may be taken too.
    ok(acme.put("/agents/A2/phone", json={"password": SECRET}))
    problem(globex.put("/agents/A2/phone", json={"password": SECRET}), 409)
    # ... and phones share the namespace with trunks.
    trunk = {"code": "pbx", "username": "desk1", "password": TRUNK_SECRET}
    problem(globex.post("/trunks", json=trunk), 409)
    ok(globex.post("/trunks", json={**trunk, "username": "globex-pbx"}), 201)
    problem(acme.put("/agents/A2/phone", json={"username": "globex-pbx", "password": SECRET}), 409)
    # Setting the same username again for the same agent is no conflict.
    ok(acme.put("/agents/A1/phone", json={"username": "desk1", "password": "new-pass-1234"}))
    # Nothing changed through the refused requests.
    stored = {p["username"]: (p["tenant_id"], p["agent"]) for p in rows(center, PhoneAccount)}
    assert stored == {"desk1": (tenant_id(center, "acme"), "A1"), "A2": (stored["A2"][0], "A2")}
    assert stored["A2"][0] == tenant_id(center, "acme")
    for agent in ("G1", "A2"):
        problem(globex.get(f"/agents/{agent}/phone"), 404)
    # Unknown agents, and another tenant's, are not found.
    problem(acme.put("/agents/nobody/phone", json={"password": SECRET}), 404)
    problem(globex.get("/agents/A1/phone"), 404)
    problem(globex.put("/agents/A1/phone", json={"password": SECRET}), 404)
    problem(globex.delete("/agents/A1/phone"), 404)
    assert [p["agent"] for p in ok(globex.get("/phones"))] == []


def test_phone_account_validation_names_the_field(center: Center) -> None:
    admin = center.admin
    put = lambda body: admin.put("/agents/A1/phone", json=body)  # noqa: E731
    invalid(put({"password": "short"}), "body.password")
    invalid(put({"password": "x" * 129}), "body.password")
    invalid(put({}), "body.password")
    invalid(put({"username": "has space", "password": SECRET}), "body.username")
    invalid(put({"username": "alice@acme", "password": SECRET}), "body.username")
    invalid(put({"username": "", "password": SECRET}), "body.username")
    invalid(put({"username": "u" * 65, "password": SECRET}), "body.username")
    invalid(put({"password": SECRET, "realm": "other"}), "body.realm")
    # An extension that is not a SIP username cannot be the default.
    set_extension(center, "A1", "*21")
    body = invalid(put({"password": SECRET}), "body.username")
    assert "*21" in body["detail"]
    assert ok(put({"username": "u" * 64, "password": "p" * 128}))["username"] == "u" * 64
    assert len(rows(center, PhoneAccount)) == 1


def test_phone_accounts_by_role(center: Center) -> None:
    admin, sup, qa, alice = center.admin, center.sup, center.qa, center.alice
    for agent in ("A1", "A2"):
        ok(admin.put(f"/agents/{agent}/phone", json={"password": SECRET}))
    # Only admins set or delete them.
    for who in (sup, qa, center.planner, alice):
        problem(who.put("/agents/A1/phone", json={"password": SECRET}), 403)
        problem(who.delete("/agents/A1/phone"), 403)
    # An agent sees its own phone, not another's.
    assert ok(alice.get("/agents/A1/phone"))["username"] == "A1"
    problem(alice.get("/agents/A2/phone"), 403)
    problem(alice.get("/phones"), 403)
    # A supervisor sees the phones of its teams' agents (A1 is in team red, A2 in blue).
    assert ok(sup.get("/agents/A1/phone"))["username"] == "A1"
    problem(sup.get("/agents/A2/phone"), 403)
    assert [p["agent"] for p in ok(sup.get("/phones"))] == ["A1"]
    assert [p["agent"] for p in ok(admin.get("/phones"))] == ["A1", "A2"]
    for who in (qa, center.planner):
        problem(who.get("/agents/A1/phone"), 403)
        problem(who.get("/phones"), 403)
    # The platform admin acts in the tenant by naming it.
    platform = center.server.acting_in("acme")
    assert ok(platform.get("/agents/A2/phone"))["username"] == "A2"
    ok(platform.delete("/agents/A2/phone"), 204)
    assert [p["agent"] for p in ok(admin.get("/phones"))] == ["A1"]


def test_a_supervisor_has_a_phone_of_their_own_for_monitoring(center: Center) -> None:
    admin, sup = center.admin, center.sup
    phone = ok(admin.put("/users/sup/phone", json={"username": "9100", "password": SECRET}))
    assert (phone["user"], phone["agent"], phone["username"]) == ("sup", None, "9100")
    assert sip(center).phones["9100"]["agent"] is None  # the SIP side knows it after a reload
    assert ok(sup.get("/users/sup/phone"))["username"] == "9100"  # their own
    problem(center.alice.get("/users/sup/phone"), 403)
    problem(sup.put("/users/sup/phone", json={"password": SECRET}), 403)  # admins set them
    # agents and QA do not monitor calls; the name is shared with agents' phones and trunks
    invalid(admin.put("/users/alice/phone", json={"password": SECRET}), "path.username")
    ok(admin.put("/agents/A1/phone", json={"password": SECRET}))
    problem(admin.put("/users/boss/phone", json={"username": "A1", "password": SECRET}), 409)
    problem(admin.put("/users/nobody/phone", json={"password": SECRET}), 404)
    assert_secret_nowhere(center, SECRET)
    # deleting the user deletes the phone account
    ok(admin.delete("/users/sup"), 204)
    assert "9100" not in {r["username"] for r in rows(center, PhoneAccount)}


# ---------------------------------------------------------------------- trunks
def test_trunks_crud_with_address_and_digest_checks(center: Center) -> None:
    admin, side = center.admin, sip(center)
    carrier = {
        "code": "carrier",
        "name": "China Telecom",
        "allow": ["203.0.113.7", "198.51.100.9/24"],
    }
    body = ok(admin.post("/trunks", json=carrier), 201)
    assert body["allow"] == ["203.0.113.7/32", "198.51.100.0/24"]  # as the SIP side matches them
    assert (body["auth"], body["username"], body["active"]) == ("ip", None, True)
    assert ok(admin.get("/trunks/carrier")) == body
    acme = tenant_id(center, "acme")
    assert side.trunks[f"{acme}/carrier"]["allow"] == ["203.0.113.7/32", "198.51.100.0/24"]

    r = admin.post(
        "/trunks",
        json={
            **carrier,
            "code": "t2",
            "allow": ["10.0.0.0/8", "nope", "300.1.2.3", "2001:db8::/32"],
        },
    )
    errors = invalid(r, "body.allow.1")["errors"]
    assert {e["field"] for e in errors} == {"body.allow.1", "body.allow.2"}
    invalid(admin.post("/trunks", json={"code": "t2"}), "body.allow")
    invalid(admin.post("/trunks", json={"code": "t2", "allow": []}), "body.allow")
    invalid(admin.post("/trunks", json={"code": "t2", "username": "pbx"}), "body.password")
    invalid(admin.post("/trunks", json={"code": "t2", "password": TRUNK_SECRET}), "body.username")
    bad_password = {"code": "t2", "username": "pbx", "password": "short"}
    invalid(admin.post("/trunks", json=bad_password), "body.password")
    invalid(admin.post("/trunks", json={"code": "t 2", "allow": ["10.0.0.1"]}), "body.code")
    problem(admin.post("/trunks", json=carrier), 409)

    pbx = {"code": "pbx", "name": "HQ PBX", "username": "acme-pbx", "password": TRUNK_SECRET}
    body = ok(admin.post("/trunks", json=pbx), 201)
    assert (body["auth"], body["username"], body["allow"]) == ("digest", "acme-pbx", [])
    assert "password" not in body and not any(k.startswith("ha1") for k in body)
    stored = next(t for t in rows(center, Trunk) if t["code"] == "pbx")
    assert stored["ha1_md5"] == digest.ha1("MD5", "acme-pbx", "hotline", TRUNK_SECRET)
    assert stored["ha1_sha256"] == digest.ha1("SHA-256", "acme-pbx", "hotline", TRUNK_SECRET)
    assert side.trunks[f"{acme}/pbx"]["sha256"] == stored["ha1_sha256"]

    # Replacing: the same username keeps its password when none is given...
    body = ok(admin.put("/trunks/pbx", json={**pbx, "password": None, "allow": ["192.0.2.1"]}))
    assert (body["auth"], body["allow"]) == ("ip+digest", ["192.0.2.1/32"])
    again = next(t for t in rows(center, Trunk) if t["code"] == "pbx")
    assert again["ha1_md5"] == stored["ha1_md5"] and again["created_at"] == stored["created_at"]
    # ... a new username needs the password again (the HA1s hash it in).
    renamed = {"code": "pbx", "username": "acme-pbx-2", "allow": ["192.0.2.1"]}
    invalid(admin.put("/trunks/pbx", json=renamed), "body.password")
    invalid(admin.put("/trunks/pbx", json={**pbx, "code": "other"}), "body.code")
    invalid(admin.put("/trunks/pbx", json={**pbx, "allow": ["192.0.2.1/33"]}), "body.allow.0")
    problem(admin.put("/trunks/nope", json={**pbx, "code": "nope"}), 404)
    # Dropping the credentials leaves an address-only trunk; disabling one keeps it.
    body = ok(
        admin.put("/trunks/pbx", json={"code": "pbx", "allow": ["192.0.2.1"], "active": False})
    )
    assert (body["auth"], body["username"], body["active"]) == ("ip", None, False)
    stored = next(t for t in rows(center, Trunk) if t["code"] == "pbx")
    assert stored["ha1_md5"] is None and stored["ha1_sha256"] is None
    assert side.trunks[f"{acme}/pbx"] == {
        "allow": ["192.0.2.1/32"],
        "username": None,
        "md5": None,
        "sha256": None,
        "active": False,
    }
    # ... and its old username is free again.
    ok(admin.put("/agents/A1/phone", json={"username": "acme-pbx", "password": SECRET}))

    assert [t["code"] for t in ok(admin.get("/trunks"))] == ["carrier", "pbx"]
    ok(admin.delete("/trunks/carrier"), 204)
    problem(admin.get("/trunks/carrier"), 404)
    problem(admin.delete("/trunks/carrier"), 404)
    assert f"{acme}/carrier" not in side.trunks
    actions = [e["action"] for e in center.audit() if e["action"].startswith("trunk.")]
    assert actions == [
        "trunk.delete",
        "trunk.update",
        "trunk.update",
        "trunk.create",
        "trunk.create",
    ]
    assert_secret_nowhere(center, TRUNK_SECRET, SECRET)


def test_a_trunk_for_calls_out_names_where_they_go(center: Center) -> None:
    """A trunk may only take calls out (click-to-call, callbacks): it needs no source address
    or credentials then, but its outbound address and caller id must be usable."""
    admin = center.admin
    out = {"code": "out", "outbound": "sip.carrier.example:5080", "caller_id": "+864000"}
    body = ok(admin.post("/trunks", json=out), 201)
    assert (body["outbound"], body["caller_id"], body["allow"]) == (
        "sip.carrier.example:5080", "+864000", [])
    body = ok(admin.put("/trunks/out", json={**out, "outbound": "203.0.113.7"}))
    assert body["outbound"] == "203.0.113.7:5060"  # the SIP port by default
    assert ok(admin.put("/trunks/out", json={**out, "outbound": "[2001:db8::1]:5070"})
              )["outbound"] == "[2001:db8::1]:5070"
    for bad in ("", "host:port", "host:70000", "a b", "sip:x@y", "[::1"):
        invalid(admin.put("/trunks/out", json={**out, "outbound": bad}), "body.outbound")
    invalid(admin.put("/trunks/out", json={**out, "caller_id": "4000 ext"}), "body.caller_id")
    assert ok(admin.get("/trunks/out"))["outbound"] == "[2001:db8::1]:5070"  # kept


def test_trunks_are_for_the_tenants_admins_only(center: Center) -> None:
    ok(center.admin.post("/trunks", json={"code": "carrier", "allow": ["203.0.113.7"]}), 201)
    for who in (center.sup, center.qa, center.planner, center.alice):
        problem(who.get("/trunks"), 403)
        problem(who.get("/trunks/carrier"), 403)
        problem(who.post("/trunks", json={"code": "mine", "allow": ["10.0.0.1"]}), 403)
        problem(who.put("/trunks/carrier", json={"code": "carrier", "allow": ["0.0.0.0/0"]}), 403)
        problem(who.delete("/trunks/carrier"), 403)
    other = new_tenant(center.server, "globex")
    assert ok(other.get("/trunks")) == []
    problem(other.get("/trunks/carrier"), 404)
    problem(other.delete("/trunks/carrier"), 404)
    # Trunk codes are per tenant.
    ok(other.post("/trunks", json={"code": "carrier", "allow": ["203.0.113.7"]}), 201)
    assert ok(center.admin.get("/trunks/carrier"))["allow"] == ["203.0.113.7/32"]


# ---------------------------------------------------------------------- inbound routes
def test_inbound_routes_map_a_number_to_a_queue(center: Center) -> None:
    admin, sup, side = center.admin, center.sup, sip(center)
    did = "+861088880000"
    body = ok(admin.put(f"/routes/{did}", json={"queue": "sales", "labels": {"en": "Sales line"}}))
    assert (body["did"], body["queue"], body["labels"]) == (did, "sales", {"en": "Sales line"})
    assert side.routes[did] == {"tenant": tenant_id(center, "acme"), "queue": "sales"}
    # Replacing it.
    assert ok(admin.put(f"/routes/{did}", json={"queue": "support"}))["queue"] == "support"
    assert side.routes[did]["queue"] == "support"
    ok(admin.put("/routes/4008001234", json={"queue": "vip"}))
    ok(admin.put("/routes/sales", json={"queue": "sales"}))  # a SIP user part, not only digits
    listed = [(r["did"], r["queue"]) for r in ok(sup.get("/routes"))]
    assert listed == [("+861088880000", "support"), ("4008001234", "vip"), ("sales", "sales")]
    assert ok(sup.get(f"/routes/{did}"))["queue"] == "support"

    invalid(admin.put("/routes/4008001235", json={"queue": "nope"}), "body.queue")
    invalid(admin.put("/routes/4008001235", json={}), "body.queue")
    for bad in ("400 800", "400-800", "4" * 33, "a.b"):
        invalid(admin.put(f"/routes/{bad}", json={"queue": "sales"}), "path.did")
    problem(admin.get("/routes/4008001235"), 404)

    # A queue that takes a number's calls cannot be deleted from under it.
    body = problem(admin.delete("/queues/vip"), 409)
    assert "4008001234" in body["detail"]
    assert [q["id"] for q in ok(admin.get("/queues"))] == ["sales", "support", "vip"]

    # Only admins change routes; agents, QA and planners do not see them.
    for who in (sup, center.qa, center.planner, center.alice):
        problem(who.put("/routes/4008009999", json={"queue": "sales"}), 403)
        problem(who.delete(f"/routes/{did}"), 403)
    for who in (center.qa, center.planner, center.alice):
        problem(who.get("/routes"), 403)

    ok(admin.delete("/routes/4008001234"), 204)
    problem(admin.delete("/routes/4008001234"), 404)
    assert "4008001234" not in side.routes
    ok(admin.delete("/queues/vip"), 204)
    actions = [e["action"] for e in center.audit() if e["action"].startswith("route.")]
    assert actions == [
        "route.delete",
        "route.create",
        "route.create",
        "route.update",
        "route.create",
    ]


def test_a_number_belongs_to_one_tenant(center: Center) -> None:
    did = "4008001234"
    ok(center.admin.put(f"/routes/{did}", json={"queue": "sales"}))
    other = new_tenant(center.server, "globex")
    ok(other.post("/queues", json={"id": "main"}), 201)
    body = problem(other.put(f"/routes/{did}", json={"queue": "main"}), 409)
    assert "acme" not in json.dumps(body)
    problem(other.get(f"/routes/{did}"), 404)
    problem(other.delete(f"/routes/{did}"), 404)
    assert ok(other.get("/routes")) == []
    # Another tenant's queue is unknown here.
    invalid(other.put("/routes/4008005678", json={"queue": "sales"}), "body.queue")
    assert ok(center.admin.get(f"/routes/{did}"))["queue"] == "sales"
    # Once released, the number can be routed by the other tenant.
    ok(center.admin.delete(f"/routes/{did}"), 204)
    ok(other.put(f"/routes/{did}", json={"queue": "main"}))
    assert sip(center).routes[did] == {"tenant": tenant_id(center, "globex"), "queue": "main"}
    # A deleted tenant's numbers go with it.
    ok(center.server.platform.delete("/tenants/globex"), 204)
    assert did not in sip(center).routes
    ok(center.admin.put(f"/routes/{did}", json={"queue": "sales"}))


# ---------------------------------------------------------------------- recordings
def write_wav(path: Path, seconds: float = 0.1) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))
    return path.read_bytes()


def add_cdr(
    center: Center, call_id: str, queue: str, agent: str | None, recording: str | None
) -> None:
    """A finished call's CDR, as the event store writes it (with its recording's name)."""
    with hotline(center).sessions() as db:
        now = time.time()
        db.add(
            CallRecord(
                tenant_id=tenant_id(center, "acme"),
                call_id=call_id,
                queue=queue,
                final_queue=queue,
                caller={},
                arrived_at=now - 60,
                answered_at=now - 50 if agent else None,
                ended_at=now,
                agent=agent,
                outcome="answered" if agent else "abandoned",
                recording=recording,
            )
        )
        db.commit()


def test_recordings_are_served_to_those_who_may_listen(center: Center, tmp_path: Path) -> None:
    admin, state = center.admin, hotline(center)
    assert state.recordings is not None
    audio = write_wav(state.recordings / "2024" / "06" / "rec-1.wav")
    add_cdr(center, "rec-1", "sales", "A1", "2024/06/rec-1.wav")  # sup's queue, A1's call
    write_wav(state.recordings / "rec-2.wav")
    add_cdr(center, "rec-2", "vip", "A2", "rec-2.wav")  # neither sup's queue nor its team
    add_cdr(center, "rec-3", "sales", None, None)  # not recorded

    for who in (admin, center.qa, center.sup, center.server.acting_in("acme")):
        r = who.get("/calls/rec-1/recording")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/wav"
        assert r.content == audio
        assert "rec-1.wav" in r.headers["content-disposition"]
    rec2 = admin.get("/calls/rec-2/recording")
    assert (rec2.status_code, rec2.content) == (200, (state.recordings / "rec-2.wav").read_bytes())
    # A supervisor hears the calls of its queues and teams only; agents none, even their own.
    problem(center.sup.get("/calls/rec-2/recording"), 404)
    problem(center.alice.get("/calls/rec-1/recording"), 403)
    problem(center.bob.get("/calls/rec-2/recording"), 403)
    problem(center.planner.get("/calls/rec-1/recording"), 403)
    # Another tenant's call does not exist for this one.
    other = new_tenant(center.server, "globex")
    problem(other.get("/calls/rec-1/recording"), 404)
    # No recording, unknown call.
    problem(admin.get("/calls/rec-3/recording"), 404)
    problem(admin.get("/calls/nope/recording"), 404)

    # The CDRs tell which calls have one.
    items = {c["call_id"]: c["recording"] for c in ok(admin.get("/cdrs"))["items"]}
    assert items == {"rec-1": True, "rec-2": True, "rec-3": False}
    assert [c["recording"] for c in ok(center.alice.get("/cdrs"))["items"]] == [True]

    # A recording missing from the disk is not found.
    (state.recordings / "rec-2.wav").unlink()
    problem(admin.get("/calls/rec-2/recording"), 404)
    # Without a recordings directory, nothing is served.
    saved, state.recordings = state.recordings, None
    problem(admin.get("/calls/rec-1/recording"), 404)
    state.recordings = saved


def test_a_recording_name_never_reaches_outside_the_recordings_directory(
    center: Center, tmp_path: Path
) -> None:
    state = hotline(center)
    assert state.recordings is not None
    secret = tmp_path / "outside.wav"
    write_wav(secret)
    (tmp_path / "not-audio.txt").write_text(PASSWORD)
    (state.recordings / "link.wav").symlink_to(secret)
    crafted = {
        "up": "../outside.wav",
        "deeper": "2024/../../outside.wav",
        "absolute": str(secret),
        "text": "../not-audio.txt",
        "link": "link.wav",
        "dir": ".",
    }
    if state.engine.dialect.name == "sqlite":  # PostgreSQL stores no NUL in text at all
        crafted["nul"] = "rec\x00.wav"
    for call_id, name in crafted.items():
        add_cdr(center, call_id, "sales", "A1", name)
    for call_id in crafted:
        r = center.admin.get(f"/calls/{call_id}/recording")
        problem(r, 404)
        assert secret.read_bytes() not in r.content


# ---------------------------------------------------------------------- migration
def alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def test_the_telephony_migration_upgrades_a_database_in_use(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        alembic(engine, "upgrade", "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cdrs (tenant_id, call_id, queue, caller, arrived_at)"
                    " VALUES (1, 'c1', 'sales', '{}', 1.0)"
                )
            )
        alembic(engine, "upgrade", "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT call_id, recording FROM cdrs")).all() == [("c1", None)]
            # The schema the migrations build is the one the code declares.
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        alembic(engine, "downgrade", "0002")
        columns = {c["name"] for c in inspect(engine).get_columns("cdrs")}
        assert "recording" not in columns
        assert not {"phone_accounts", "trunks", "inbound_routes"} & set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as conn:
            assert conn.execute(text("SELECT call_id FROM cdrs")).scalars().all() == ["c1"]
        alembic(engine, "upgrade", "head")
    finally:
        engine.dispose()
