"""Fuzzing the whole HTTP API from its OpenAPI document (schemathesis 4, in process).

Every operation of /api/v1/openapi.json gets schema-derived requests -- boundary values first
(schemathesis' coverage phase), then random valid and invalid ones -- sent as the demo tenant's
admin to a server whose lifespan runs for the whole module: migrations, the live ACD and the
demo's simulated callers and agents. Whatever the input, the server must not answer 5xx (nor
raise), and every error must be an RFC 9457 problem (``application/problem+json``).

How it is wired:

* schemathesis 4 reaches an ASGI app with a lifespan of its own that it ends after every test
  item, which would restart the server (same database) between operations. So the app runs
  under one Starlette ``TestClient`` and schemathesis sends through it: a ``requests`` session
  whose adapter forwards each prepared request to the client.
* The credential headers every operation declares (``Authorization``, ``X-API-Key``,
  ``X-Hotline-Tenant``) are dropped from the schema given to the generator: random values
  there would only ever test the 401/403 path. Log-out, and changes to the caller's own user
  (which revoke its tokens), are left out so the session survives the run.
* Dictionaries steer part of the values to things that exist (queue, agent, user and reason
  codes, the calls in progress, report periods around now) and to classic boundary values,
  so handlers get past their 404s; the rest stays random. Call ids come from a counter here
  (``call0001``...) instead of uuid4, so a fixed dictionary can name live calls.
* Half the generated bodies also get ill-formed Unicode (lone surrogates, legal as JSON
  escapes) in their nested strings, which schemathesis never generates by itself.
* Generation is derandomized with a fixed seed. The demo traffic runs on the real clock, so
  the state a request meets (which calls ring or talk) still varies a little between runs.
"""

from __future__ import annotations

import copy
import io
import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import requests.adapters
import schemathesis
import urllib3
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from hotline.server import security
from hotline.server.app import API, Settings, create_app
from hotline.server.live import LiveCenter

BASE_URL = "http://testserver"
PROBLEM = "application/problem+json"
ADMIN = {"tenant": "demo-bank", "username": "admin", "password": "demo-pass-1"}
CREDENTIAL_HEADERS = {"authorization", "x-api-key", "x-hotline-tenant"}
SEEDED_CALLS = {"general": 6, "vip": 2}  # placed before fuzzing: the robots answer them

_NOW = time.time()
_MIDNIGHT = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
DICTIONARIES: dict[str, list[Any]] = {
    "codes": [
        "general",
        "vip",
        "agent-001",
        "agent-002",
        "senior-001",
        "break",
        "lunch",
        "resolved",
        "complaint",
    ],
    "queues": ["general", "vip"],
    "agents": ["agent-001", "agent-002", "agent-003", "senior-001", "senior-002"],
    "users": ["supervisor", "qa", "planner", "agent-004", "senior-003"],  # never the caller
    "slugs": ["demo-bank", "platform"],
    "calls": [f"call{n:04d}" for n in range(1, 25)],
    "times": [
        str(_NOW - 3600),
        str(_NOW + 600),
        (_MIDNIGHT - timedelta(days=1)).isoformat(),
        _MIDNIGHT.isoformat(),
        (_MIDNIGHT + timedelta(days=1)).isoformat(),
        "0",
        "nan",
        "1e300",
        "0001-01-01",
        "9999-12-31T23:59:59",
    ],
    "reasons": ["break", "lunch"],
    "dispositions": ["resolved", "complaint"],
    "teams": ["A", "B"],
    "ints": [1, 2, 3, 2**31, 2**63, 10**30],
}
# parameter -> (dictionary, probability of drawing from it rather than generating)
PARAMETERS = {
    "path.code": ("codes", 0.5),
    "path.username": ("users", 0.5),
    "path.slug": ("slugs", 0.5),
    "path.call_id": ("calls", 0.7),
    "path.key_id": ("ints", 0.5),
    "query.from": ("times", 0.8),
    "query.to": ("times", 0.8),
    "query.before": ("ints", 0.5),
    "query.limit": ("ints", 0.5),
    "query.page": ("ints", 0.5),
    "query.queue": ("queues", 0.5),
    "query.agent": ("agents", 0.5),
    "query.team": ("teams", 0.5),
    "body.code": ("codes", 0.5),
    "body.queue": ("queues", 0.7),
    "body.agent": ("agents", 0.5),
    "body.reason": ("reasons", 0.5),
    "body.disposition": ("dispositions", 0.5),
}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "suppress-health-check": ["too_slow"],
        "generation": {"max-examples": 15, "deterministic": True, "database": "none"},
        "phases": {
            "coverage": {"generation": {"mode": "positive"}, "unexpected-methods": ["TRACE"]},
            "stateful": {"enabled": False},
        },
        "dictionaries": {name: {"values": values} for name, values in DICTIONARIES.items()},
        "parameters": {
            key: {"dictionary": name, "probability": p} for key, (name, p) in PARAMETERS.items()
        },
    }
)


def make_app(db_url: str) -> FastAPI:
    return create_app(
        Settings(
            db_url=db_url,
            admin_password="platform-pass-1",
            say=lambda _: None,
            demo=True,
            demo_password=ADMIN["password"],
        )
    )


def fuzz_document(document: dict[str, Any]) -> dict[str, Any]:
    """The API's OpenAPI document as given to the generator (see the module docstring)."""
    document = copy.deepcopy(document)
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["parameters"] = [
                p
                for p in operation.get("parameters", [])
                if not (p["in"] == "header" and p["name"].lower() in CREDENTIAL_HEADERS)
            ]
    # PATCH /queues/{code} takes any JSON object, merged into the queue's settings: fuzz it
    # with partial queue definitions as well as with arbitrary objects.
    partial = copy.deepcopy(document["components"]["schemas"]["QueueIn"])
    partial.pop("required", None)
    content = document["paths"][f"{API}/queues/{{code}}"]["patch"]["requestBody"]["content"]
    content["application/json"]["schema"] = {"anyOf": [partial, {"type": "object"}]}
    return document


# Building the app opens nothing (its lifespan opens the database): this one only gives the
# document; the server under test is started by the `server` fixture.
schema = schemathesis.openapi.from_dict(
    fuzz_document(make_app("sqlite://").openapi()), config=CONFIG
).exclude(method="POST", path=f"{API}/auth/logout")


@schema.hook
def filter_path_parameters(ctx: schemathesis.HookContext, path_parameters: Any) -> bool:
    """Changing the caller's own user would revoke the session mid-run."""
    operation = ctx.operation
    return not (
        operation is not None
        and operation.method.upper() == "PATCH"
        and operation.path == f"{API}/users/{{username}}"
        and (path_parameters or {}).get("username") == ADMIN["username"]
    )


LONE_SURROGATE = "\ud800"  # valid in JSON text as an escape, yet no UTF-8 can encode it


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*path, index))


def _ill_formed(body: Any, paths: list[tuple[Any, ...]]) -> Any:
    body = copy.deepcopy(body)
    for path in paths:
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] += LONE_SURROGATE
    return body


@schema.hook
def flatmap_body(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Ill-formed Unicode, which the generator never produces on its own: in half the bodies,
    the strings nested in objects or arrays (free-form content such as a call's ``data``,
    labels, time ranges) end with a lone surrogate, written ``"\\ud800"`` in the JSON."""
    nested = [path for path in _string_leaves(body) if len(path) > 1]
    if not nested:
        return st.just(body)
    return st.sampled_from([body, _ill_formed(body, nested)])


def problem_json(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error is an RFC 9457 problem: ``application/problem+json`` with title and status."""
    if response.status_code < 400:
        return
    content_type = next(
        (v[0] for k, v in response.headers.items() if k.lower() == "content-type" and v), ""
    )
    assert content_type.startswith(PROBLEM), (
        f"{response.status_code} answered with Content-Type {content_type!r}, not {PROBLEM}"
    )
    body = response.json()
    assert isinstance(body, dict), f"problem body is not an object: {body!r}"
    assert body.get("status") == response.status_code, f"problem status mismatch: {body!r}"
    assert isinstance(body.get("title"), str), f"problem without a title: {body!r}"


class ViaTestClient(requests.adapters.HTTPAdapter):
    """A ``requests`` transport that hands each request to a Starlette ``TestClient``.

    An unhandled server exception fails the test as a 500, chained to the server's traceback."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        assert request.method is not None and request.url is not None
        try:
            answer = self.client.request(
                request.method, request.url, headers=dict(request.headers), content=request.body
            )
        except Exception as exc:  # the server would have answered 500 Internal Server Error
            raise AssertionError(
                f"500 Internal Server Error: unhandled {type(exc).__name__}: {exc}"
            ) from exc
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=list(answer.headers.multi_items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
        )
        return self.build_response(request, raw)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[requests.Session, dict[str, str]]]:
    """The demo server, running for the whole module: a session to it and the admin's header."""
    app = make_app(f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/hotline.db")
    call_ids = itertools.count(1)
    with pytest.MonkeyPatch.context() as mp:
        # Argon2 at production cost is ~0.15 s per hash; only the cost parameters are lowered.
        mp.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        mp.setattr(LiveCenter, "new_call_id", lambda self: f"call{next(call_ids):04d}")
        with TestClient(app, base_url=BASE_URL) as client:
            r = client.post(f"{API}/auth/login", json=ADMIN)
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['token']}"}
            for queue, count in SEEDED_CALLS.items():
                for _ in range(count):
                    r = client.post(f"{API}/calls", json={"queue": queue}, headers=auth)
                    assert r.status_code == 201, r.text
            session = requests.Session()
            session.mount(BASE_URL, ViaTestClient(client))
            yield session, auth


@schema.parametrize()
def test_api_fuzz(case: schemathesis.Case, server: tuple[requests.Session, dict[str, str]]) -> None:
    session, auth = server
    case.call_and_validate(
        base_url=BASE_URL,
        session=session,
        headers=dict(auth),  # a copy: schemathesis adds to the dict it is given
        checks=[not_a_server_error, problem_json],
    )
