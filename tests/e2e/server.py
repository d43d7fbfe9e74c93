"""Hotline itself for the end-to-end tests: ``hotline serve --demo`` as a real process on
127.0.0.1 (HTTP, SIP over UDP and TCP, an RTP port range), its API as an admin, its CTI event
stream, each test's own queue, agents, phone accounts and dialled number, and a small raw SIP
client (digest REGISTER, hand-made and malformed messages) that can speak from any loopback
address.

The server's log (``--log-level debug``: every SIP message in and out) is kept in a file; the
fixtures print its lines of a failed test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from hotline.sip import digest

from .peers import (
    LOCALHOST,
    AnswerMode,
    BaresipPhone,
    PhoneFactory,
    Registration,
    Sipp,
    _die_with_parent,
    free_port,
    free_ports,
)

API = "/api/v1"
TENANT = "demo-bank"
DEMO_PASSWORD = "Lantern-Demo-7f3k9q"
Json = dict[str, Any]


def wait_until(check: Callable[[], Any], timeout: float, what: str | Callable[[], str],
               interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``timeout``
    saying what was awaited (``what``, or what it returns then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what if isinstance(what, str) else what()
            raise AssertionError(f"timed out after {timeout} s waiting for {described}")
        time.sleep(interval)


# ---------------------------------------------------------------------- loopback addresses
_next_host = itertools.count()


def fresh_loopback() -> str:
    """A loopback address no other test of this process sends SIP from (127.0.1.2, …): the
    server's guard keeps budgets and bans per address, so a test that floods or guesses
    passwords must not spend another test's. The whole of 127.0.0.0/8 is local on lo."""
    n = next(_next_host)
    return f"127.0.{n // 250 + 1}.{n % 250 + 2}"


# ---------------------------------------------------------------------- the server process
class HotlineServer:
    """``hotline serve --demo`` with SIP on 127.0.0.1:``sip_port`` and its own RTP range."""

    def __init__(self, workdir: Path, *, sip_digest: str = "MD5", rtp_ports: int = 100,
                 password: str = DEMO_PASSWORD) -> None:
        self.dir = workdir
        self.password = password
        self.sip_digest = sip_digest
        self.http_port = free_port()
        self.sip_port = free_ports(1, align=1)
        first = free_ports(rtp_ports)
        self.rtp_ports = (first, first + rtp_ports - 1)
        self.url = f"http://{LOCALHOST}:{self.http_port}"
        self.log_path = workdir / "hotline.log"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def sip_address(self) -> tuple[str, int]:
        return (LOCALHOST, self.sip_port)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hotline", "serve", "--demo",
                "--data-dir", str(self.dir / "data"), "--port", str(self.http_port),
                "--sip", f"{LOCALHOST}:{self.sip_port}",
                "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
                "--sip-digest", self.sip_digest, "--log-level", "debug"]

    def start(self, timeout: float = 60.0) -> HotlineServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env["HOTLINE_DEMO_PASSWORD"] = self.password
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, cwd=self.dir,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hotline exited with {self.proc.returncode} while starting:"
                                   f"\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}{API}/health", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"hotline not healthy after {timeout} s\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL if it takes over 10 s."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80, since: int = 0) -> str:
        return "\n".join(self.log_text(since).splitlines()[-lines:])

    def health(self) -> Json:
        r = httpx.get(f"{self.url}{API}/health", timeout=10)
        assert r.status_code == 200, f"health: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]

    def login(self, username: str, password: str | None = None) -> Api:
        r = httpx.post(f"{self.url}{API}/auth/login",
                       json={"tenant": TENANT, "username": username,
                             "password": password or self.password}, timeout=15)
        assert r.status_code == 200, f"log-in as {username}: {r.status_code} {r.text}"
        return Api(self, str(r.json()["token"]))


class Api:
    """The REST API as one user; every call checks its status."""

    def __init__(self, server: HotlineServer, token: str) -> None:
        self.server = server
        self.token = token
        # uvicorn closes a connection idle for 5 s; reusing one just then races its close
        # ("Server disconnected"), so idle connections are dropped well before that
        self.http = httpx.Client(base_url=f"{server.url}{API}",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=15,
                                 limits=httpx.Limits(keepalive_expiry=2.0))

    def call(self, method: str, path: str, *, expect: int = 200, body: Any = None,
             **params: Any) -> Any:
        r = self.http.request(method, path, json=body, params=params or None)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any = None, expect: int = 200) -> Any:
        return self.call("POST", path, body=body, expect=expect)

    def put(self, path: str, body: Any, expect: int = 200) -> Any:
        return self.call("PUT", path, body=body, expect=expect)

    def download(self, path: str, to: Path) -> Path:
        r = self.http.get(path)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
        to.write_bytes(r.content)
        return to

    def close(self) -> None:
        self.http.close()


# ---------------------------------------------------------------------- the CTI event stream
class EventStream:
    """The CTI WebSocket, read on a thread; every stored event (those with a ``seq``) kept."""

    def __init__(self, api: Api) -> None:
        server = api.server
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(
            f"ws://{LOCALHOST}:{server.http_port}{API}/events?token={api.token}",
            open_timeout=10, max_size=None))
        hello = json.loads(self.ws.recv(timeout=10))
        assert hello.get("type") == "hello", hello
        self.events: list[Json] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True, name="cti-events")
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when closed
            for text in self.ws:
                message = json.loads(text)
                if "seq" in message:
                    with self._lock:
                        self.events.append(message)

    def matching(self, **fields: Any) -> list[Json]:
        with self._lock:
            events = list(self.events)
        return [e for e in events if all(e.get(k) == v for k, v in fields.items())]

    def wait_for(self, timeout: float = 10.0, **fields: Any) -> Json:
        """The first event (since the stream opened) with these field values."""
        found: list[Json] = wait_until(lambda: self.matching(**fields), timeout,
                                       f"an event with {fields}")
        return found[0]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        self._thread.join(5)


# ---------------------------------------------------------------------- a test's own center
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Queue:
    id: str
    skill: str
    did: str  # the number callers dial: sip:DID@127.0.0.1:SIP_PORT


@dataclass(frozen=True)
class Agent:
    code: str
    username: str  # SIP user of its phone (= its extension)
    password: str  # of its phone account


@dataclass
class CallCenter:
    """What one test sets up through the API as admin, named so that no other test shares it
    (the demo's simulated traffic stays in its own queues): a queue with a skill and a DID
    routed to it, agents with that skill and phone accounts. Also the test's CTI stream."""

    server: HotlineServer
    admin: Api
    events: EventStream
    started_at: float = field(default_factory=time.time)
    legs_before: int = 0  # RTP legs open on the server when the test began

    def __post_init__(self) -> None:
        self.legs_before = self.server.health()["media"]["legs"]

    def queue(self, *, ring_timeout: float | None = None, wrap_up: float = 1.0,
              short_abandon: float | None = None) -> Queue:
        """A queue (longest-idle agent first) and a DID routed to it. ``short_abandon``: its
        service level's threshold under which a caller who gives up is a "short abandon",
        not counted in ``abandoned_today`` (default 5 s)."""
        n = next(_numbers)
        skill, queue_id, did = f"e2e-skill-{n}", f"e2e-queue-{n}", f"61{n:03d}"
        self.admin.post("/skills", {"code": skill}, expect=201)
        spec: Json = {"id": queue_id, "skills": {skill: 1}, "wrap_up": wrap_up}
        if short_abandon is not None:
            spec["service_level"] = {"short_abandon": short_abandon}
        if ring_timeout is not None:
            spec["ring_timeout"] = ring_timeout
        self.admin.post("/queues", spec, expect=201)
        self.admin.put(f"/routes/{did}", {"queue": queue_id})
        return Queue(queue_id, skill, did)

    def agent(self, queue: Queue) -> Agent:
        n = next(_numbers)
        code, extension = f"e2e-agent-{n}", f"91{n:03d}"
        password = secrets.token_urlsafe(12)
        self.admin.post("/agents", {"code": code, "extension": extension, "team": "e2e",
                                    "skills": {queue.skill: 1}}, expect=201)
        phone = self.admin.put(f"/agents/{code}/phone", {"password": password})
        return Agent(code, phone["username"], password)

    def did_uri(self, queue: Queue) -> str:
        return f"sip:{queue.did}@{LOCALHOST}:{self.server.sip_port}"

    def agent_state(self, agent: Agent) -> Json:
        return self.admin.get(f"/agents/{agent.code}/state")  # type: ignore[no-any-return]

    def wait_agent_state(self, agent: Agent, state: str, timeout: float = 10.0) -> Json:
        result: Json = wait_until(
            lambda: (s := self.agent_state(agent))["state"] == state and s, timeout,
            lambda: f"agent {agent.code} to be {state} (now {self.agent_state(agent)})")
        return result

    def queue_stats(self, queue: Queue) -> Json:
        return self.admin.get("/stats/realtime")["queues"][queue.id]  # type: ignore[no-any-return]

    def cdrs(self, queue: Queue) -> list[Json]:
        return self.admin.get("/cdrs", queue=queue.id)["items"]  # type: ignore[no-any-return]

    def wait_cdr(self, queue: Queue, timeout: float = 15.0, **fields: Any) -> Json:
        """The queue's only CDR, once it has these field values."""

        def done() -> Json | None:
            rows = self.cdrs(queue)
            assert len(rows) <= 1, f"more than one call in {queue.id}: {rows}"
            if rows and all(rows[0].get(k) == v for k, v in fields.items()):
                return rows[0]
            return None

        found: Json = wait_until(done, timeout, lambda: f"the CDR of {queue.id} with {fields} "
                                 f"(now {self.cdrs(queue)})", interval=0.2)
        return found

    def agent_report(self, agent: Agent) -> dict[str, float]:
        """The agent's figures summed over the intervals since this test started."""
        rows = self.admin.get("/reports/agents", **{"from": str(self.started_at - 60),
                                                    "to": str(time.time() + 60)})["rows"]
        total: dict[str, float] = {}
        for row in rows:
            if row["agent"] == agent.code:
                for key in ("answered", "rona", "talk_time"):
                    total[key] = total.get(key, 0) + row[key]
        return total

    def media_released(self, timeout: float = 10.0) -> bool:
        """Whether the RTP legs (ports) the test's calls opened on the server are all closed
        again within ``timeout``: a leg left open is a port the range never gets back."""
        try:
            wait_until(lambda: self.server.health()["media"]["legs"] <= self.legs_before,
                       timeout, "RTP legs closed", interval=0.1)
        except AssertionError:
            return False
        return True

    def wait_media_released(self, timeout: float = 10.0) -> None:
        assert self.media_released(timeout), (
            f"the RTP legs of the test's calls are still open after {timeout} s "
            f"({self.legs_before} were open before it; health now: {self.server.health()})")


# ---------------------------------------------------------------------- raw SIP
@dataclass
class SipMessage:
    """A SIP message as a test reads it: start line, headers (lower-case names, in order)."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    source: tuple[str, int]
    at: float  # time.monotonic() when received

    @property
    def status(self) -> int | None:
        m = re.match(r"SIP/2\.0 (\d{3}) ", self.start + " ")
        return int(m.group(1)) if m else None

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    @classmethod
    def parse(cls, data: bytes, source: tuple[str, int]) -> SipMessage:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", errors="replace").split("\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return cls(lines[0], headers, body, data, source, time.monotonic())


class SipClient:
    """A UDP (or TCP) socket on ``host`` that sends raw SIP to Hotline and reads what comes
    back, so a test can send what no well-behaved phone would."""

    def __init__(self, server: HotlineServer, host: str = LOCALHOST) -> None:
        self.server = server
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self.received: list[SipMessage] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server.sip_address)

    def receive(self, timeout: float) -> SipMessage | None:
        """The next datagram within ``timeout`` s, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, source = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        msg = SipMessage.parse(data, (source[0], source[1]))
        self.received.append(msg)
        return msg

    def responses(self, call_id: str, timeout: float = 3.0) -> list[SipMessage]:
        """Responses to the request with this Call-ID, up to the first final one (or until
        ``timeout`` passes without one)."""
        out: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            msg = self.receive(remaining)
            if msg is None:
                break
            if msg.header("call-id") != call_id:
                continue
            out.append(msg)
            if (msg.status or 0) >= 200:
                break
        return out

    def answers(self, data: bytes, call_id: str | None = None,
                timeout: float = 3.0) -> list[SipMessage]:
        """Everything Hotline sends back for ``data`` (with ``call_id``, if given): what
        arrives before the answer to an OPTIONS sent right after it. Hotline reads a socket's
        datagrams in order and answers each before reading the next, so no waiting is needed
        to know that it did not answer. Fails if the OPTIONS gets no answer."""
        self.send(data)
        probe, probe_id = self.request("OPTIONS", f"sip:{LOCALHOST}:{self.server.sip_port}")
        self.send(probe)
        out: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.receive(deadline - time.monotonic())
            if msg is None:
                raise AssertionError(f"Hotline did not answer an OPTIONS from {self.host} "
                                     f"within {timeout} s after: {data[:200]!r}")
            if msg.header("call-id") == probe_id:
                if (msg.status or 0) >= 200:
                    return out
            elif call_id is None or msg.header("call-id") == call_id:
                out.append(msg)

    def final(self, data: bytes, call_id: str, timeout: float = 3.0) -> SipMessage | None:
        self.send(data)
        answers = [m for m in self.responses(call_id, timeout) if (m.status or 0) >= 200]
        return answers[0] if answers else None

    # -- well-formed requests
    def request(self, method: str, uri: str, *, user: str = "e2e", to_user: str | None = None,
                headers: Sequence[tuple[str, str]] = (), cseq: int = 1,
                call_id: str | None = None, body: bytes = b"",
                transport: str = "UDP") -> tuple[bytes, str]:
        """A request from this socket (Via, From, To, Call-ID, CSeq, Max-Forwards) and its
        Call-ID."""
        call_id = call_id or f"{secrets.token_hex(8)}@{self.host}"
        registrar = f"{LOCALHOST}:{self.server.sip_port}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{transport} {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)}"
            ";rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{registrar}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{to_user or user}@{registrar}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *(f"{name}: {value}" for name, value in headers),
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, call_id

    def options(self, timeout: float = 3.0) -> SipMessage | None:
        data, call_id = self.request("OPTIONS", f"sip:{LOCALHOST}:{self.server.sip_port}")
        return self.final(data, call_id, timeout)

    def register(self, username: str, password: str, *, contact: str | None = None,
                 expires: int = 600, algorithm: str | None = None,
                 timeout: float = 3.0) -> list[SipMessage]:
        """REGISTER ``username`` (challenge, then digest answer, as one Call-ID with rising
        CSeq) with ``contact`` (default: this socket); returns the final responses, the last
        one telling the outcome. ``algorithm`` picks that challenge out of several."""
        uri = f"sip:{LOCALHOST}:{self.server.sip_port}"
        contact = contact or f"sip:{username}@{self.host}:{self.port}"
        call_id = f"{secrets.token_hex(8)}@{self.host}"
        extra = [("Contact", f"<{contact}>"), ("Expires", str(expires)),
                 ("User-Agent", "hotline-e2e")]
        data, _ = self.request("REGISTER", uri, user=username, headers=extra, call_id=call_id)
        first = self.final(data, call_id, timeout)
        if first is None or first.status != 401:
            return [first] if first else []
        challenges = first.all("www-authenticate")
        chosen = challenges[0]
        if algorithm is not None:
            chosen = next(c for c in challenges if f"algorithm={algorithm}" in c)
        auth = digest.answer(chosen, "REGISTER", uri, username, password,
                             cnonce=secrets.token_hex(8))
        data, _ = self.request("REGISTER", uri, user=username, call_id=call_id, cseq=2,
                               headers=[*extra, ("Authorization", auth)])
        second = self.final(data, call_id, timeout)
        return [first] + ([second] if second else [])


@contextlib.contextmanager
def sip_client(server: HotlineServer, host: str = LOCALHOST) -> Iterator[SipClient]:
    client = SipClient(server, host)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def sipp_phone(center: CallCenter, sipp: Callable[..., Sipp], agent: Agent, scenario: str,
               duration_ms: int = 0) -> Iterator[Sipp]:
    """A SIPp UAS playing ``agent``'s phone: listening, then registered (digest, from Python,
    Contact = the UAS's port), the agent logged in by it; unregistered afterwards."""
    phone = sipp(scenario, duration_ms=duration_ms, timeout_s=30).start()
    phone.wait_listening()
    with sip_client(center.server) as client:
        answers = client.register(agent.username, agent.password,
                                  contact=f"sip:{agent.username}@127.0.0.1:{phone.port}")
        assert [a.status for a in answers] == [401, 200], [a.start for a in answers]
        center.wait_agent_state(agent, "ready")
        yield phone
        client.register(agent.username, agent.password, expires=0,
                        contact=f"sip:{agent.username}@127.0.0.1:{phone.port}")


def agent_phone(center: CallCenter, phones: PhoneFactory, mic: Path, agent: Agent,
                answermode: AnswerMode = "auto") -> BaresipPhone:
    """``agent``'s baresip phone, registered, and the agent logged in (ready) by it."""
    phone = phones(agent.username, mic, answermode=answermode,
                   registration=Registration(center.server.sip_port, agent.password))
    phone.wait_registered()
    center.wait_agent_state(agent, "ready")
    return phone
