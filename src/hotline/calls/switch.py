"""The call switch: Hotline as a back-to-back user agent between callers and agents' phones.

It is the SIP stack's transaction user and one of the live center's drivers. A caller's INVITE
(from a trunk, or an authenticated phone) is answered at once, hears music on hold and becomes
an ACD call; the ACD's ``Offer`` makes the switch INVITE the agent's registered phone; the
phone's 200 is reported as the agent's answer, and only when the ACD accepts it are the two
legs bridged and recorded. Either side's BYE ends the call for both; the ACD's own decisions
(RONA, a supervisor's hang-up, a transfer) come back as commands and events and are carried
out on the SIP side. Every ACD input goes through ``LiveCenter.submit`` in the order it
happened, so the record and the calls never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from hotline.acd.commands import (
    CancelOffer,
    Command,
    DialCallback,
    ExitToCallback,
    Offer,
    Reject,
)
from hotline.acd.engine import LOGGED_OUT, NOT_READY, ACDError
from hotline.calls.directory import Directory, Route
from hotline.calls.ivr_calls import IvrCalls
from hotline.events.types import (
    CallAbandoned,
    CallbackFailed,
    CallClosed,
    CallEnded,
    CallHeld,
    CallMonitored,
    CallRecorded,
    CallRecordingChanged,
    CallRejected,
    CallResumed,
    CallTransferred,
    Event,
    PhoneRegistered,
    PhoneUnregistered,
)
from hotline.media.engine import FRAME, Leg, MediaEngine, Sound, builtin_music
from hotline.media.mixer import Mix
from hotline.media.recorder import StereoRecorder
from hotline.media.wav import load_prompt
from hotline.server.live import CenterUnavailable, LiveCenter, Tenant
from hotline.server.state import TelephonyError
from hotline.sip import sdp
from hotline.sip.dialog import Dialog, request_dialog_key
from hotline.sip.digest import DigestError, DigestServer
from hotline.sip.digest import parse_header as parse_digest_header
from hotline.sip.guard import SourceGuard
from hotline.sip.message import Headers, Request, Response, SipError, parse_name_addr, parse_uri
from hotline.sip.registrar import Binding, Registrar
from hotline.sip.transaction import (
    AckReceived,
    AckTimeout,
    Address,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionTimeout,
    TUEvent,
)
from hotline.sip.transport import SipStack

log = logging.getLogger("hotline.calls")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, REFER, NOTIFY"
BUSY = {486, 600, 603}


@dataclass
class CallLeg:
    media: Leg
    dialog: Dialog | None = None
    up: bool = False  # confirmed and not yet ended
    invite: ClientTransaction | None = None  # our INVITE to an agent, while it rings
    cancelled: bool = False
    sdp_session: int = 0
    sdp_version: int = 1
    local_sdp: bytes = b""


@dataclass
class Monitor:
    """A supervisor's phone on a call: ringing, then listening, whispering, barging in, or
    (take_over) in the agent's place."""

    user: str
    mode: str
    leg: CallLeg
    mix: Mix | None = None


@dataclass(frozen=True)
class MonitorInvite:
    """What a supervisor phone's INVITE transaction carries (``tx.user``)."""

    call: SipCall
    leg: CallLeg
    offer: sdp.SessionDescription
    target: Address
    conn: Any


@dataclass
class Reoffer:
    """What our in-dialog re-INVITE's transaction carries (``tx.user``)."""

    leg: CallLeg
    offer: sdp.SessionDescription
    answered: bool = False


class MonitorError(TelephonyError):
    pass


MONITOR_MODES = ("listen", "whisper", "barge", "take_over")


@dataclass
class SipCall:
    id: str  # the ACD's call id (changes when the call is transferred to a new segment)
    tenant_id: int
    caller: CallLeg
    server_tx: ServerTransaction
    agent_id: str | None = None
    agent: CallLeg | None = None  # the agent's leg once the ACD accepted its answer
    ringing: dict[str, CallLeg] = field(default_factory=dict)  # agent -> leg being offered
    wanted: set[str] = field(default_factory=set)  # agents the ACD is offering the call to
    recorder: StereoRecorder | None = None
    recording: str | None = None  # relative path
    recorded_at: float = 0.0
    ended: bool = False
    digits: list[str] = field(default_factory=list)
    number: str = "anonymous"  # the caller's number, safe to show and to put in a header
    ivr: Any = None  # the caller's IVR run (calls.ivr_calls.IvrCall)
    monitor: Monitor | None = None
    taken_over: bool = False  # a supervisor replaced the agent: the ACD's part has ended
    queue: str | None = None  # the queue whose agent answered (its recording policy applies)
    recording_paused: bool = False  # paused (e.g. while a card number is read out)
    held: bool = False  # on hold: the caller hears music


@dataclass
class SwitchConfig:
    host: str = "0.0.0.0"
    port: int = 5060
    advertised: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (20000, 29999)
    realm: str = "hotline"
    record: bool = True
    # What we challenge with (answers with either are always checked). RFC 8760's SHA-256
    # challenge is opt-in: common phones (e.g. baresip 1.0's libre) refuse a whole 401 that
    # lists an algorithm they lack instead of picking the MD5 one.
    digest_algorithms: tuple[str, ...] = ("MD5",)
    music: Path | None = None  # music on hold (any WAV); None: the built-in chimes
    max_ring: float = 60.0  # seconds a phone may ring when its queue sets no ring timeout


class Switch:
    def __init__(self, center: LiveCenter, sessions: sessionmaker[Session],
                 recordings: Path, config: SwitchConfig, secret: bytes | None = None) -> None:
        self.center = center
        self.sessions = sessions
        self.recordings = recordings
        self.config = config
        self.guard = SourceGuard()
        self.stack = SipStack(config.host, config.port, config.advertised, self.guard,
                              self.on_sip)
        self.media = MediaEngine(config.host if config.host != "0.0.0.0" else "0.0.0.0",
                                 config.rtp_ports)
        self.digest = DigestServer(config.realm, secret or secrets.token_bytes(32),
                                   algorithms=config.digest_algorithms)
        self.registrar = Registrar()
        self.directory = Directory()
        self.ivr = IvrCalls(self)
        self.music = Sound.from_pcm(
            "music", load_prompt(config.music) if config.music else builtin_music())
        self.silence = Sound.from_pcm("silence", np.zeros(FRAME, dtype=np.int16))
        self.calls: dict[str, SipCall] = {}  # ACD call id -> call
        self.dialogs: dict[tuple[str, str, str], tuple[SipCall, CallLeg]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: set[asyncio.Future[Any]] = set()  # ACD inputs not yet stored
        # SIP calls waiting for a callback, whose callers have hung up: call id -> tenant.
        # Dialling them back needs outbound calls (a trunk to dial out through), so for now
        # the ACD is told at once that the callback failed, never left waiting on it.
        self.callbacks: dict[str, int] = {}
        self._nonce_counts: dict[str, tuple[int, float]] = {}  # nonce -> (last nc, when)
        self._nonces_swept = 0.0
        self._trust_pending = False
        # recordings are opened, written and closed on their own thread, in order
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recordings")
        self._expiry: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.reload()
        await self.media.start()
        await self.stack.start()
        self.center.listeners.append(self.on_batch)
        self.stack.on_connection_closed = self._connection_closed
        self._schedule_expiry()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.center.listeners.remove(self.on_batch)
        for call in list(self.calls.values()):
            self._release(call, "server_shutdown")
        self.stack.flush()
        # The ACD inputs and recordings of those calls, while the center still runs (a closed
        # recording queues one more input, hence a second round).
        for _ in range(2):
            waiting = [*self._tasks, *self._pending]
            if waiting:
                await asyncio.wait(waiting, timeout=3.0)
        for task in list(self._tasks):
            task.cancel()
        if self._expiry is not None:
            self._expiry.cancel()
        await self.stack.stop()
        await self.media.stop()
        self.ivr.close()
        await asyncio.get_running_loop().run_in_executor(None, self.disk.shutdown)

    async def reload(self) -> None:
        previous = self.directory

        def load() -> Directory:
            with self.sessions() as db:
                return Directory.load(db, previous)

        self.directory = await asyncio.to_thread(load)
        self.guard.trusted = set(self.directory.trusted_hosts)

    def stats(self) -> dict[str, Any]:
        return {
            "sip": {
                "calls": len(self.calls),
                "registered_phones": len(self.registrar.bindings),
                "messages": self.stack.received_messages,
                "bad_messages": self.stack.bad_messages,
                "dropped": self.guard.dropped,
                "banned_addresses": len(self.guard.banned),
            },
            "media": self.media.stats(),
        }

    @property
    def port(self) -> int:
        return self.stack.port

    def phone_status(self, username: str) -> list[dict[str, Any]]:
        now = self.stack.now()
        return [
            {
                "contact": b.contact,
                "source": f"{b.source[0]}:{b.source[1]}",
                "transport": b.transport,
                "user_agent": b.user_agent,
                "expires_in": round(b.expires_at - now),
            }
            for b in self.registrar.lookup(username, now)
        ]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _submit(self, tenant_id: int, op: Callable[[Tenant, float], Any],
                then: Callable[[Any], None] | None = None,
                failed: Callable[[BaseException], None] | None = None) -> None:
        """Queue an ACD input now (so inputs keep their order) and react when it is stored."""
        try:
            future = self.center.enqueue(tenant_id, op)
        except (CenterUnavailable, KeyError) as err:
            log.warning("ACD input not taken: %s", err)
            if failed is not None:
                failed(err)
            return

        def done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            err = f.exception()
            try:
                if err is None:
                    if then is not None:
                        then(f.result())
                elif isinstance(err, ACDError | KeyError):
                    if failed is not None:
                        failed(err)
                else:
                    log.error("ACD input failed: %s", err)
            except Exception:
                log.exception("reacting to an ACD input failed")
            self.stack.flush()

        self._pending.add(future)
        future.add_done_callback(done)

    # ------------------------------------------------------------------ SIP events
    def on_sip(self, event: TUEvent) -> None:
        if isinstance(event, RequestReceived):
            self._request(event)
        elif isinstance(event, ResponseReceived):
            self._response(event.response, event.tx)
        elif isinstance(event, CancelReceived):
            self._cancelled(event.tx)
        elif isinstance(event, TransactionTimeout):
            self._timeout(event.tx)
        elif isinstance(event, AckTimeout):  # the caller never confirmed our answer
            for call in list(self.calls.values()):
                if call.server_tx is event.tx:
                    self._caller_gone(call)  # and a BYE, in case only the ACK was lost
                    break
        elif isinstance(event, AckReceived):
            pass  # the dialog is confirmed; nothing waits for it

    def _request(self, ev: RequestReceived) -> None:
        req = ev.request
        method = req.method
        try:  # the addresses every handler relies on, checked once (RFC 4475 §3.1.2)
            parse_name_addr(req.headers.get("From") or "")
            parse_name_addr(req.headers.get("To") or "")
            for contact in req.headers.get_all("Contact"):
                if contact != "*":
                    target = parse_name_addr(contact).uri
                    if method in ("INVITE", "REGISTER"):  # we will send requests there
                        parse_uri(target)
        except SipError as err:
            self.stack.reply(ev.tx, err.status, "Bad Address",
                             headers=[("Warning", _warning(err))])
            return
        if method == "REGISTER":
            self._register(ev)
        elif method == "INVITE":
            to_tag = parse_name_addr(req.headers.get("To") or "").tag
            if to_tag:
                self._reinvite(ev)
            else:
                self._invite(ev)
        elif method == "BYE":
            self._bye(ev)
        elif method == "OPTIONS":
            self.stack.reply(ev.tx, 200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif method == "INFO":
            self.stack.reply(ev.tx, 200)
        elif method == "REFER":
            self._refer(ev)
        elif method == "NOTIFY":
            self.stack.reply(ev.tx, 200 if self.dialogs.get(request_dialog_key(req)) else 481)
        elif method in ("SUBSCRIBE", "PUBLISH", "MESSAGE", "UPDATE", "PRACK"):
            self.stack.reply(ev.tx, 405, headers=[("Allow", ALLOW)])
        else:
            self.stack.reply(ev.tx, 501, headers=[("Allow", ALLOW)])

    # ------------------------------------------------------------------ authentication
    def _authenticate(self, ev: RequestReceived, header: str, challenge_status: int) -> str | None:
        """The authenticated username, or None once the request has been answered."""
        req = ev.request
        now = time.time()
        value = req.headers.get(header)
        challenge = "WWW-Authenticate" if challenge_status == 401 else "Proxy-Authenticate"
        if value is None:
            self.stack.reply(ev.tx, challenge_status,
                             headers=[(challenge, c) for c in self.digest.challenge(now)])
            return None
        if not self.guard.may_authenticate(ev.source[0], self.stack.now()):
            self.stack.reply(ev.tx, 403, "Forbidden")
            return None
        verdict = self.digest.verify(value, req.method, self.directory.ha1, now)
        if verdict.outcome == "ok" and not self._fresh(value, now):
            # the same nonce and count again: a replayed request (RFC 7616 §5.5)
            self.stack.reply(ev.tx, challenge_status,
                             headers=[(challenge, c) for c in self.digest.challenge(now, True)])
            return None
        if verdict.outcome == "ok" and not _same_target(verdict.uri, req.uri):
            # a valid answer computed for another request (RFC 7616 §3.4.6): a replay
            self.stack.reply(ev.tx, 400, "Authorization For Another URI")
            return None
        if verdict.outcome == "ok" and verdict.username is not None:
            self.guard.auth_succeeded(ev.source[0])
            return verdict.username
        if verdict.outcome == "stale":
            self.stack.reply(ev.tx, challenge_status,
                             headers=[(challenge, c) for c in self.digest.challenge(now, True)])
            return None
        if verdict.outcome == "malformed":
            self.stack.reply(ev.tx, 400, "Bad Authorization")
            return None
        banned = self.guard.auth_failed(ev.source[0], self.stack.now())
        log.warning("SIP authentication failed for %r from %s (%s)%s", verdict.username,
                    ev.source[0], verdict.outcome, "; address banned" if banned else "")
        self.stack.reply(ev.tx, 403, "Forbidden")
        return None

    def _fresh(self, header: str, now: float) -> bool:
        """Whether this (nonce, nc) is new: each nonce's count must grow, or it is a replay."""
        try:
            _, params = parse_digest_header(header)
        except DigestError:
            return False
        nonce, nc_text = params.get("nonce", ""), params.get("nc", "")
        try:
            nc = int(nc_text, 16) if nc_text else 0
        except ValueError:
            return False
        last = self._nonce_counts.get(nonce)
        if last is not None and nc <= last[0]:
            return False
        self._nonce_counts[nonce] = (nc, now)
        if len(self._nonce_counts) > 100_000 or now - self._nonces_swept > 60:
            self._nonces_swept = now
            horizon = now - 2 * self.digest.nonce_lifetime
            self._nonce_counts = {
                n: v for n, v in self._nonce_counts.items() if v[1] > horizon
            }
        return True

    # ------------------------------------------------------------------ registrar
    def _register(self, ev: RequestReceived) -> None:
        req = ev.request
        username = self._authenticate(ev, "Authorization", 401)
        if username is None:
            return
        account = self.directory.accounts.get(username)
        try:
            to_user = parse_uri(parse_name_addr(req.headers.get("To") or "").uri).user
        except SipError:
            to_user = None  # a tel: or other address of record: not one of our phones
        if account is None or account.trunk is not None or to_user != username:
            self.stack.reply(ev.tx, 403, "Not Your Address")
            return
        now = self.stack.now()
        transport = "TCP" if ev.conn is not None else "UDP"
        try:
            outcome = self.registrar.register(username, req, ev.source, now, ev.conn, transport)
        except SipError as err:
            self.stack.reply(ev.tx, err.status, str(err)[:60])
            return
        if outcome.status == 423:
            self.stack.reply(ev.tx, 423, headers=[("Min-Expires", str(outcome.min_expires))])
            return
        if outcome.status != 200:
            self.stack.reply(ev.tx, outcome.status)
            return
        headers = [
            ("Contact", f"<{b.contact}>;expires={max(0, round(b.expires_at - now))}")
            for b in outcome.contacts
        ]
        headers.append(("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
        self.stack.reply(ev.tx, 200, headers=headers)
        self._schedule_expiry()
        if outcome.changed and account.agent is not None:
            self._phone_changed(account.tenant_id, account.agent, username, outcome.contacts,
                                "unregistered")
        if outcome.contacts and ev.source[0] not in self.guard.registered:
            self.guard.registered[ev.source[0]] = 1  # trusted at once; the recount follows
        self._refresh_trust()

    def _phone_changed(self, tenant_id: int, agent: str, username: str,
                       contacts: list[Any], reason: str) -> None:
        wall = time.time()
        if contacts:
            b = contacts[0]
            event: Event = PhoneRegistered(wall, agent, b.contact, f"{b.source[0]}:{b.source[1]}",
                                           b.user_agent or None)
        else:
            event = PhoneUnregistered(wall, agent, reason)
        log.info("phone %s (agent %s) %s", username, agent,
                 "registered" if contacts else reason)
        login = tenant_id in self.directory.phone_login

        def op(t: Tenant, now: float) -> None:
            t.record(event, now)
            if not login or not t.acd.has_agent(agent):
                return
            state, why = t.acd.agent_state(agent)
            if contacts and state == LOGGED_OUT:
                t.acd.login(now, agent, ready=True)
            elif contacts and state == NOT_READY and (why or "").startswith("phone_"):
                t.acd.set_ready(now, agent)  # made not ready because the phone was gone
            elif not contacts and state != LOGGED_OUT:  # after the call, if on one
                t.acd.logout(now, agent, "phone_" + reason)

        self._submit(tenant_id, op)

    def _refresh_trust(self) -> None:
        """Recount the addresses with registered phones, at most twice a second (a rebuild
        costs O(phones); thousands of phones refresh their registrations all the time)."""
        if self._trust_pending or self.stack.loop is None:
            return
        self._trust_pending = True
        self.stack.loop.call_later(0.5, self._rebuild_trust)

    def _rebuild_trust(self) -> None:
        self._trust_pending = False
        now = self.stack.now()
        hosts: dict[str, int] = {}
        for aor in list(self.registrar.bindings):
            for b in self.registrar.lookup(aor, now):
                hosts[b.source[0]] = hosts.get(b.source[0], 0) + 1
        self.guard.registered = hosts

    def _connection_closed(self, conn: Any) -> None:
        """A phone's TCP connection closed: nothing reaches it any more (RFC 5626 §4.4)."""
        for username in self.registrar.unbind_connection(conn):
            account = self.directory.accounts.get(username)
            if account is not None and account.agent is not None:
                self._phone_changed(account.tenant_id, account.agent, username, [],
                                    "connection_closed")
        self._refresh_trust()

    def _schedule_expiry(self) -> None:
        when = self.registrar.next_expiry()
        if when is None or self.stack.loop is None:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self.stack.loop.call_at(when + 0.01, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        for username in self.registrar.expire(self.stack.now()):
            account = self.directory.accounts.get(username)
            if account is not None and account.agent is not None:
                self._phone_changed(account.tenant_id, account.agent, username, [], "expired")
        self._refresh_trust()
        self._schedule_expiry()

    # ------------------------------------------------------------------ inbound calls
    def _invite(self, ev: RequestReceived) -> None:
        req = ev.request
        if self.center.failure is not None:  # nothing could be recorded: don't answer
            self.stack.reply(ev.tx, 503, headers=[("Retry-After", "30")])
            return
        # The dialled number picks the tenant; only that tenant's trunks (or its phones and
        # digest trunks, authenticated) may call it.
        did = parse_uri(req.uri).user or ""
        route = self.directory.routes.get(did)
        trunk = self.directory.trunk_for(ev.source[0], route.tenant_id if route else None)
        if trunk is not None:
            origin = {"trunk": trunk.code}
        else:
            username = self._authenticate(ev, "Proxy-Authorization", 407)
            if username is None:
                return
            account = self.directory.accounts[username]
            if route is None or route.tenant_id != account.tenant_id:
                self.stack.reply(ev.tx, 404, "No Such Number")
                return
            origin = {"trunk": account.trunk} if account.trunk else {"phone": username}
        if route is None:
            self.stack.reply(ev.tx, 404, "No Such Number")
            return
        if not req.body:
            self.stack.reply(ev.tx, 488, "Offer Required")
            return
        try:
            offer = sdp.parse(req.body)
        except sdp.SdpError as err:
            self.stack.reply(ev.tx, 488, headers=[("Warning", _warning(err))])
            return
        self._spawn(self._answer_caller(ev, route, offer, did, origin))

    async def _answer_caller(self, ev: RequestReceived, route: Route,
                             offer: sdp.SessionDescription, did: str,
                             origin: dict[str, str]) -> None:
        try:
            leg = await self.media.open_leg()
        except RuntimeError:
            self.stack.reply(ev.tx, 503, "Out Of Media Ports")
            return
        try:
            self._answer_on(leg, ev, route, offer, did, origin)
        except Exception:
            leg.close()
            if ev.tx.state == "proceeding":
                self.stack.reply(ev.tx, 500)
            raise

    def _answer_on(self, leg: Leg, ev: RequestReceived, route: Route,
                   offer: sdp.SessionDescription, did: str, origin: dict[str, str]) -> None:
        req = ev.request
        tenant_id = route.tenant_id
        session = secrets.randbits(31)
        try:
            answer, neg = sdp.answer(offer, self.config.advertised, leg.port, session_id=session)
        except sdp.SdpError as err:
            leg.close()
            self.stack.reply(ev.tx, 488, headers=[("Warning", _warning(err))])
            return
        if ev.tx.state != "proceeding":  # cancelled while we opened the port
            leg.close()
            return
        leg.configure((neg.remote_address, neg.remote_port), neg.codec, neg.payload_type,
                      neg.dtmf_payload_type, neg.sends)
        tag = self.stack.layer.new_tag()
        contact = f"<sip:{escape_user(did)}@{self.config.advertised}:{self.stack.port}>"
        dialog = Dialog.as_uas(req, tag, contact, ev.source, ev.conn)
        call_id = self.center.new_call_id()
        body = sdp.serialise(answer)
        call = SipCall(call_id, tenant_id, CallLeg(leg, dialog, True, sdp_session=session,
                                                    local_sdp=body), ev.tx)
        self.calls[call_id] = call
        self.dialogs[_dialog_key(dialog)] = (call, call.caller)
        self.stack.reply(ev.tx, 200, to_tag=tag, body=body, content_type="application/sdp",
                         headers=[("Contact", contact), ("Allow", ALLOW)])
        caller = parse_name_addr(req.headers.get("From") or "")
        try:
            number = safe_number(parse_uri(caller.uri).user)
        except SipError:
            number = None
        call.number = number or "anonymous"
        data: dict[str, Any] = {"did": did, **origin}
        if caller.display:
            data["name"] = caller.display[:100]
        self.ivr.begin(call, route.flow, route.code, route.version, route.language, did,
                       number, data)

    # ------------------------------------------------------------------ ACD commands & events
    def on_batch(self, tenant: Tenant, events: list[Event], commands: list[Command]) -> None:
        # Transfers first: the new segment's offer in this batch must find the call.
        for e in events:
            if type(e) is CallTransferred:
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if call is not None and call.tenant_id == tenant.id:
                    self._end_agent_leg(call)  # the old segment's agent and recording end
                    del self.calls[call.id]
                    call.id = e.to_call  # type: ignore[attr-defined]
                    self.calls[call.id] = call
                    call.caller.media.play(self.music)
        for cmd in commands:
            call = self.calls.get(cmd.call)
            if call is None or call.tenant_id != tenant.id:
                continue  # not a SIP call (the demo's simulated callers)
            if type(cmd) is Offer:
                self._offer(call, cmd.agent)  # type: ignore[attr-defined]
            elif type(cmd) is CancelOffer:
                self._cancel_offer(call, cmd.agent)  # type: ignore[attr-defined]
            elif type(cmd) is Reject:
                self._release(call, "rejected")
            elif type(cmd) is ExitToCallback:  # the ACD keeps the caller's place; hang up
                self.callbacks[call.id] = tenant.id
                if not self.ivr.exit_to_callback(call):  # (the IVR confirms its own first)
                    self._release(call, "callback")
            elif type(cmd) is DialCallback:  # callbacks to SIP callers come with outbound calls
                self._submit(tenant.id, _callback_failed(cmd.call))
        for cmd in commands:  # a callback whose caller has hung up: it cannot be dialled yet
            if (type(cmd) is DialCallback and cmd.call not in self.calls
                    and self.callbacks.pop(cmd.call, None) == tenant.id):
                self._submit(tenant.id, _callback_failed(cmd.call))
        for e in events:
            if type(e) is CallHeld or type(e) is CallResumed:
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if call is not None and call.tenant_id == tenant.id and not call.ended:
                    self._media_hold(call, type(e) is CallHeld)
                continue
            if type(e) in (CallEnded, CallAbandoned, CallClosed, CallRejected, CallbackFailed):
                self.callbacks.pop(e.call, None)  # type: ignore[attr-defined]
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if call is not None and not call.ended:
                    if type(e) is CallEnded and call.taken_over:
                        continue  # the agent's part ended; the supervisor talks on
                    self._release(call, "ended")

    def _offer(self, call: SipCall, agent: str) -> None:
        username = self.directory.phones.get((call.tenant_id, agent))
        now = self.stack.now()
        bindings = self.registrar.lookup(username, now) if username else []
        if not bindings:
            self._offer_failed(call, agent, "phone_unregistered")
            return
        call.wanted.add(agent)
        self._spawn(self._ring(call, agent, username or "", bindings[0]))

    async def _ring(self, call: SipCall, agent: str, username: str, binding: Any) -> None:
        try:
            media = await self.media.open_leg()
        except RuntimeError:
            call.wanted.discard(agent)
            self._offer_failed(call, agent, "phone_unreachable")
            return
        if call.ended or agent not in call.wanted:  # withdrawn while the port was opened
            media.close()
            return
        leg, offer, target = self._invite_phone(call, media, username, binding, call.number)
        call.ringing[agent] = leg
        assert leg.invite is not None
        leg.invite.user = (call, agent, leg, offer, target, binding.conn)
        if self.stack.loop is not None:  # a queue without a ring timeout: ours applies
            self.stack.loop.call_later(self.config.max_ring, self._ring_expired, call, agent,
                                       leg)

    def _invite_phone(self, call: SipCall, media: Leg, username: str, binding: Binding,
                      display: str) -> tuple[CallLeg, sdp.SessionDescription, Address]:
        """INVITE a registered phone (an agent's, or a supervisor's) on behalf of the call."""
        session = secrets.randbits(31)
        offer = sdp.offer(self.config.advertised, media.port, session_id=session)
        body = sdp.serialise(offer)
        host = f"{self.config.advertised}:{self.stack.port}"
        number = call.number
        h = Headers()
        h.add("From", f'"{display}" <sip:{escape_user(number)}@{host}>'
                      f";tag={self.stack.layer.new_tag()}")
        h.add("To", f"<sip:{username}@{host}>")
        h.add("Call-ID", f"{secrets.token_hex(12)}@{self.config.advertised}")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:hotline@{host}>")
        h.add("Allow", ALLOW)
        h.add("X-Hotline-Call", call.id)
        h.add("Content-Type", "application/sdp")
        invite = Request("INVITE", binding.contact, h, body)
        leg = CallLeg(media, sdp_session=session, local_sdp=body)
        target = phone_address(binding)
        leg.invite = self.stack.request(invite, target, binding.conn)
        return leg, offer, target

    # ------------------------------------------------------------------ supervisors
    async def monitor(self, tenant_id: int, call_id: str, user: str, mode: str
                      ) -> dict[str, Any]:
        """Call the supervisor's phone into a connected call, or change how it takes part."""
        if mode not in MONITOR_MODES:
            raise MonitorError(422, f"mode must be one of {', '.join(MONITOR_MODES)}")
        call = self.calls.get(call_id)
        if call is None or call.tenant_id != tenant_id or call.ended:
            raise MonitorError(404, f"call {call_id!r} is not on a phone")
        if call.taken_over:
            raise MonitorError(409, "the call was taken over: it has no agent any more")
        if call.agent is None or not call.agent.up:
            raise MonitorError(409, "the call is not connected to an agent's phone")
        if self._policy(call) == "never":
            raise MonitorError(403, f"calls of queue {call.queue} are private: nobody listens")
        mon = call.monitor
        if mon is not None:
            if mon.user != user:
                raise MonitorError(409, f"{mon.user} is already on this call")
            mon.mode = mode
            if mon.leg.up:
                self._apply_monitor(call)
            return self._monitor_state(call)
        username = self.directory.user_phones.get((tenant_id, user))
        if username is None:
            raise MonitorError(409, f"{user} has no phone (PUT /users/{user}/phone)")
        bindings = self.registrar.lookup(username, self.stack.now())
        if not bindings:
            raise MonitorError(409, f"{user}'s phone ({username}) is not registered")
        try:
            media = await self.media.open_leg()
        except RuntimeError as err:
            raise MonitorError(503, str(err)) from None
        if call.ended or call.monitor is not None or call.agent is None:
            media.close()
            raise MonitorError(409, "the call changed meanwhile; try again")
        label = {"listen": "Listen", "whisper": "Coach", "barge": "Join",
                 "take_over": "Take over"}[mode]
        leg, offer, target = self._invite_phone(call, media, username, bindings[0],
                                                f"{label} {call.number}")
        assert leg.invite is not None
        leg.invite.user = MonitorInvite(call, leg, offer, target, bindings[0].conn)
        call.monitor = Monitor(user, mode, leg)
        self.stack.flush()
        return self._monitor_state(call)

    async def stop_monitor(self, tenant_id: int, call_id: str, user: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.tenant_id != tenant_id or call.monitor is None:
            raise MonitorError(404, f"nobody monitors call {call_id!r}")
        if call.monitor.user != user and user != "":
            raise MonitorError(409, f"{call.monitor.user} monitors this call, not {user}")
        if call.taken_over:
            raise MonitorError(409, "the supervisor has taken the call over: hang up instead")
        self._monitor_gone(call, call.monitor.leg, "stopped")
        self.stack.flush()

    def _monitor_state(self, call: SipCall) -> dict[str, Any]:
        mon = call.monitor
        assert mon is not None
        return {"call": call.id, "supervisor": mon.user, "mode": mon.mode,
                "state": "connected" if mon.leg.up else "ringing"}

    def _monitor_response(self, resp: Response, tx: ClientTransaction,
                          m: MonitorInvite) -> None:
        call, leg = m.call, m.leg
        status = resp.status
        if status < 200:
            return
        current = call.monitor is not None and call.monitor.leg is leg
        if status >= 300:
            if leg.invite is tx:
                leg.invite = None
                if current:
                    self._monitor_gone(call, leg, f"refused ({status})")
                else:
                    leg.media.close()
            return
        if leg.dialog is not None:
            return  # a retransmitted 2xx
        dialog = Dialog.as_uac(tx.request, resp, m.target, m.conn)
        self.stack.ack(tx, dialog.ack(tx.request.cseq[0]))
        leg.invite, leg.dialog, leg.up = None, dialog, True
        if not current or call.ended or call.agent is None or call.taken_over:
            leg.up = False
            self._send_bye(dialog)
            leg.media.close()
            return
        self.dialogs[_dialog_key(dialog)] = (call, leg)
        try:
            neg = sdp.negotiated_from_answer(m.offer, sdp.parse(resp.body))
        except sdp.SdpError as err:
            log.warning("supervisor phone answered with unusable SDP: %s", err)
            self._monitor_gone(call, leg, "bad answer")
            return
        leg.media.configure((neg.remote_address, neg.remote_port), neg.codec, neg.payload_type,
                            neg.dtmf_payload_type, neg.sends)
        self._apply_monitor(call)

    def _apply_monitor(self, call: SipCall) -> None:
        """Mix the three legs as the mode says (or hand the caller to the supervisor)."""
        mon = call.monitor
        assert mon is not None and call.agent is not None
        if mon.mode == "take_over":
            self._take_over(call)
            return
        c, a, s = call.caller.media, call.agent.media, mon.leg.media
        hears: dict[Leg, tuple[Leg, ...]] = {s: (c, a), c: (a,), a: (c,)}  # listen
        if mon.mode == "whisper":
            hears[a] = (c, s)
        elif mon.mode == "barge":
            hears[a], hears[c] = (c, s), (a, s)
        # what the supervisor says is recorded on the agent's side (the center's side)
        channels = {c: 0, a: 1} if mon.mode == "listen" else {c: 0, a: 1, s: 1}
        recorder = None if call.recording_paused else call.recorder
        mon.mix = self.media.mix(hears, recorder, channels, a.record_start)
        self._monitor_event(call, mon.user, mon.mode)

    def _take_over(self, call: SipCall) -> None:
        """The supervisor replaces the agent: caller and supervisor are bridged (the recording
        goes on), the agent's phone is hung up and the agent goes to wrap-up."""
        mon = call.monitor
        assert mon is not None and call.agent is not None
        agent_leg, agent = call.agent, call.agent_id
        record_start = agent_leg.media.record_start
        if mon.mix is not None:
            self.media.unmix(mon.mix)
            mon.mix = None
        call.taken_over = True
        call.agent, call.agent_id = mon.leg, None
        mon.leg.media.record_start = record_start  # the supervisor goes on in the same file
        self.media.bridge(call.caller.media, mon.leg.media, None, record_start)
        self._feed_recorder(call)
        self._hang_up_leg(agent_leg)
        self._monitor_event(call, mon.user, "take_over", agent)
        call_id = call.id
        self._submit(call.tenant_id, _hang_up(call_id))

    def _monitor_gone(self, call: SipCall, leg: CallLeg, why: str) -> None:
        """The supervisor's phone left (hung up, refused, stopped): the call goes back to a
        plain two-party bridge."""
        mon = call.monitor
        if mon is None or mon.leg is not leg:
            return
        if call.taken_over:  # the supervisor is the call's other party now
            return
        call.monitor = None
        joined = leg.up
        if mon.mix is not None:
            self.media.unmix(mon.mix)
        if leg.invite is not None and not leg.cancelled:
            leg.cancelled = True
            self.stack.cancel(leg.invite)
        else:
            self._hang_up_leg(leg)
        if call.agent is not None and not call.ended:
            agent = call.agent.media
            self.media.bridge(call.caller.media, agent, None, agent.record_start)
            self._feed_recorder(call)
        if joined or why == "hung up":
            self._monitor_event(call, mon.user, "ended")
        log.info("call %s: %s's monitoring ended (%s)", call.id, mon.user, why)

    def _monitor_event(self, call: SipCall, user: str, mode: str,
                       agent: str | None = None) -> None:
        event = CallMonitored(time.time(), call.id, user, mode, agent or call.agent_id)
        self._submit(call.tenant_id, lambda t, now: t.record(event, now))

    def _ring_expired(self, call: SipCall, agent: str, leg: CallLeg) -> None:
        if call.ringing.get(agent) is leg and leg.invite is not None and not leg.cancelled:
            leg.cancelled = True
            self.stack.cancel(leg.invite)
            self._offer_failed(call, agent, "phone_no_answer")

    def _cancel_offer(self, call: SipCall, agent: str) -> None:
        """The ACD withdrew the offer (RONA, answered elsewhere, the caller left)."""
        call.wanted.discard(agent)
        leg = call.ringing.get(agent)
        if leg is None:
            return
        leg.cancelled = True
        if leg.invite is not None:
            self.stack.cancel(leg.invite)
        elif leg.up:  # answered by the phone, refused by the ACD meanwhile
            self._drop_ringing(call, agent)

    def _offer_failed(self, call: SipCall, agent: str, reason: str) -> None:
        log.info("call %s: agent %s's phone failed (%s)", call.id, agent, reason)
        self._drop_ringing(call, agent)
        call_id = call.id
        self._submit(call.tenant_id,
                     lambda t, now: t.acd.offer_failed(now, call_id, agent, reason))

    def _drop_ringing(self, call: SipCall, agent: str) -> None:
        """Forget a ringing leg, hanging it up if the phone had answered."""
        call.wanted.discard(agent)
        leg = call.ringing.pop(agent, None)
        if leg is None:
            return
        self._hang_up_leg(leg)

    def _response(self, resp: Response, tx: ClientTransaction) -> None:
        if tx.method != "INVITE" or tx.user is None:
            return
        if isinstance(tx.user, MonitorInvite):
            self._monitor_response(resp, tx, tx.user)
            return
        if isinstance(tx.user, Reoffer):
            self._reoffer_response(resp, tx, tx.user)
            return
        call, agent, leg, offer, target, conn = tx.user
        status = resp.status
        if status < 200:
            return
        current = call.ringing.get(agent) is leg
        if status >= 300:
            if leg.invite is not tx:
                return  # a retransmitted final
            leg.invite = None
            if not current:
                leg.media.close()
            elif leg.cancelled or status == 487:
                self._drop_ringing(call, agent)
            else:
                reason = "phone_busy" if status in BUSY else (
                    "phone_unregistered" if status in (404, 410, 480) else "phone_unreachable")
                self._offer_failed(call, agent, reason)
            return
        if leg.dialog is not None:
            return  # a retransmitted 2xx: the transaction layer has resent our ACK
        # 2xx: always ACK, even an answer we no longer want (which we then hang up)
        dialog = Dialog.as_uac(tx.request, resp, target, conn)
        self.stack.ack(tx, dialog.ack(tx.request.cseq[0]))
        leg.invite = None
        leg.dialog = dialog
        leg.up = True
        if not current or leg.cancelled or call.ended:
            if current:
                self._drop_ringing(call, agent)
            else:
                leg.up = False
                self._send_bye(dialog)
                leg.media.close()
            return
        self.dialogs[_dialog_key(dialog)] = (call, leg)
        try:
            neg = sdp.negotiated_from_answer(offer, sdp.parse(resp.body))
        except sdp.SdpError as err:
            log.warning("agent %s's phone answered with unusable SDP: %s", agent, err)
            self._offer_failed(call, agent, "phone_unreachable")
            return
        leg.media.configure((neg.remote_address, neg.remote_port), neg.codec, neg.payload_type,
                            neg.dtmf_payload_type, neg.sends)
        call_id = call.id

        def answered(queue: Any) -> None:
            if call.ended:
                return
            if call.ringing.get(agent) is not leg:
                # The ACD took an answer whose leg we had already hung up (a ring-all RONA
                # re-offered the agent meanwhile): no audio path exists, so end the call
                # rather than leave it "connected" in silence.
                self._submit(call.tenant_id, _hang_up(call.id))
                return
            del call.ringing[agent]
            call.wanted.discard(agent)
            call.agent, call.agent_id = leg, agent
            call.queue = queue if isinstance(queue, str) else None
            self.ivr.answered(call)
            if leg.up:
                self._connect(call)
            else:  # answered, then hung up at once
                self._agent_gone(call)

        def refused(err: BaseException) -> None:
            log.info("call %s: answer by %s refused (%s)", call_id, agent, err)
            if call.ringing.get(agent) is leg:
                self._drop_ringing(call, agent)

        def answer(t: Tenant, now: float) -> str | None:
            t.acd.answer(now, call_id, agent)
            info = t.acd.call_info(call_id)
            return None if info is None else str(info["queue"])

        self._submit(call.tenant_id, answer, answered, refused)

    def _connect(self, call: SipCall) -> None:
        assert call.agent is not None
        call.recording_paused = False
        self.media.bridge(call.caller.media, call.agent.media, None)
        if self.config.record and self._policy(call) == "always":
            self._start_recording(call)

    def _policy(self, call: SipCall) -> str:
        """The recording policy of the call's queue: always, on_demand or never (private)."""
        if call.queue is None:
            return "always"
        return self.directory.recording.get((call.tenant_id, call.queue), "always")

    def _start_recording(self, call: SipCall) -> None:
        slug = self.directory.tenant_slugs.get(call.tenant_id, str(call.tenant_id))
        day = time.strftime("%Y-%m-%d")
        relative = f"{slug}/{day}/{call.id}.wav"
        call.recorder = StereoRecorder(self.recordings / relative, io=self.disk)
        call.recording = relative
        call.recorded_at = time.time()
        call.recording_paused = False
        start = self.media.now()
        for leg in (call.caller.media, call.agent.media if call.agent else None):
            if leg is not None:
                leg.record_start = start
        self._feed_recorder(call)

    def _feed_recorder(self, call: SipCall) -> None:
        """Connect the call's recorder (or, paused, nothing) to where its audio flows: the two
        legs of a plain bridge, or the mix of a call with a supervisor in it."""
        recorder = None if call.recording_paused else call.recorder
        mon = call.monitor
        if mon is not None and mon.mix is not None:
            mon.mix.recorder = recorder
            return
        for leg, channel in ((call.caller, 0), (call.agent, 1)):
            if leg is not None:
                leg.media.recorder = recorder
                leg.media.channel = channel

    async def recording_control(self, tenant_id: int, call_id: str, state: str
                                ) -> dict[str, Any]:
        """Start (on demand), pause or resume the recording of a connected call. A pause
        leaves silence in the file: what was said then is not kept, and QA sees the gap."""
        call = self.calls.get(call_id)
        if call is None or call.tenant_id != tenant_id or call.ended or call.agent is None:
            raise MonitorError(404, f"call {call_id!r} is not connected on a phone")
        if state == "on":
            if call.recorder is None:
                if self._policy(call) == "never" or not self.config.record:
                    raise MonitorError(403, f"calls of queue {call.queue} are never recorded")
                self._start_recording(call)
                self._recording_event(call, "started")
            elif call.recording_paused:
                call.recording_paused = False
                self._feed_recorder(call)
                self._recording_event(call, "resumed")
        elif state == "paused":
            if call.recorder is None:
                raise MonitorError(409, "the call is not being recorded")
            if not call.recording_paused:
                call.recording_paused = True
                self._feed_recorder(call)
                self._recording_event(call, "paused")
        else:
            raise MonitorError(422, "state must be on or paused")
        return {"call": call.id, "recording": "off" if call.recorder is None else
                "paused" if call.recording_paused else "on"}

    def _recording_event(self, call: SipCall, state: str) -> None:
        event = CallRecordingChanged(time.time(), call.id, state)
        self._submit(call.tenant_id, lambda t, now: t.record(event, now))

    def _timeout(self, tx: ClientTransaction) -> None:
        if tx.method != "INVITE" or tx.user is None:
            return
        if isinstance(tx.user, MonitorInvite):
            m = tx.user
            if m.leg.invite is tx:
                m.leg.invite = None
                self._monitor_gone(m.call, m.leg, "no answer")
            return
        if isinstance(tx.user, Reoffer):
            return  # the phone did not answer our re-offer: the media stays as it is
        call, agent, leg = tx.user[:3]
        if leg.invite is not tx:
            return
        leg.invite = None
        if call.ringing.get(agent) is not leg:
            leg.media.close()
        elif leg.cancelled:
            self._drop_ringing(call, agent)
        else:
            self._offer_failed(call, agent, "phone_unreachable")

    def _cancelled(self, tx: ServerTransaction) -> None:
        """The caller cancelled before our 200 (we answer at once, so this is rare)."""
        self.stack.reply(tx, 487)

    # ------------------------------------------------------------------ in-dialog requests
    def _in_dialog(self, ev: RequestReceived) -> tuple[SipCall, CallLeg] | None:
        """The call and leg of an in-dialog request, or None once it has been answered (no
        such dialog: 481; an old or repeated CSeq: 500, RFC 3261 §12.2.2)."""
        found = self.dialogs.get(request_dialog_key(ev.request))
        if found is None:
            self.stack.reply(ev.tx, 481)
            return None
        leg = found[1]
        if leg.dialog is None or not leg.dialog.accepts(ev.request):
            self.stack.reply(ev.tx, 500, "Out Of Order", headers=[("Retry-After", "1")])
            return None
        return found

    def _reinvite(self, ev: RequestReceived) -> None:
        found = self._in_dialog(ev)
        if found is None:
            return
        call, leg = found
        assert leg.dialog is not None
        body = leg.local_sdp
        if ev.request.body:
            try:
                answer, neg = sdp.answer(sdp.parse(ev.request.body), self.config.advertised,
                                         leg.media.port, session_id=leg.sdp_session,
                                         session_version=leg.sdp_version + 1)
            except sdp.SdpError as err:
                self.stack.reply(ev.tx, 488, headers=[("Warning", _warning(err))])
                return
            leg.sdp_version += 1
            body = leg.local_sdp = sdp.serialise(answer)
            leg.media.configure((neg.remote_address, neg.remote_port), neg.codec,
                                neg.payload_type, neg.dtmf_payload_type, neg.sends)
            if leg is call.agent and not call.taken_over:
                self._phone_hold(call, held=not neg.sends)
        self.stack.reply(ev.tx, 200, body=body, content_type="application/sdp",
                         headers=[("Contact", leg.dialog.local_contact)])

    # ------------------------------------------------------------------ transfer
    def _refer(self, ev: RequestReceived) -> None:
        """The agent's phone transfers the caller (blind, RFC 3515): to a number routed to a
        queue, a queue's code, or another agent's extension, all of the same tenant. The
        ACD records it like a transfer from the desktop: the agent goes to wrap-up, the caller
        queues again as a new segment and hears music."""
        found = self._in_dialog(ev)
        if found is None:
            return
        call, leg = found
        assert leg.dialog is not None
        if leg is not call.agent or call.taken_over or call.agent_id is None:
            self.stack.reply(ev.tx, 403, "Only The Agent Transfers")
            return
        try:
            target = parse_uri(parse_name_addr(ev.request.headers.get("Refer-To") or "").uri)
        except SipError:
            self.stack.reply(ev.tx, 400, "Bad Refer-To")
            return
        where = self._transfer_target(call.tenant_id, target.user or "")
        if where is None:
            self.stack.reply(ev.tx, 404, "No Such Queue Or Agent")
            return
        queue, agent = where
        self.stack.reply(ev.tx, 202)
        dialog = leg.dialog
        call_id, new_id = call.id, self.center.new_call_id()

        def notify(status: str) -> None:
            if leg.up and leg.dialog is dialog:
                request = dialog.request("NOTIFY", f"SIP/2.0 {status}\r\n".encode(),
                                         "message/sipfrag;version=2.0")
                request.headers.add("Event", "refer")
                request.headers.add("Subscription-State", "terminated;reason=noresource")
                self.stack.request(request, dialog.peer, dialog.conn)

        def op(t: Tenant, now: float) -> None:
            current = t.acd.call_info(call_id)
            # to an agent: through the queue the call is in, unless the agent's own
            t.transfer(now, call_id, new_id, queue or (current or {}).get("queue", ""), agent)

        notify("100 Trying")
        self._submit(call.tenant_id, op, lambda _: notify("200 OK"),
                     lambda err: notify("503 Service Unavailable"))

    def _transfer_target(self, tenant_id: int, user: str) -> tuple[str | None, str | None] | None:
        """(queue, agent) a transfer to ``user`` means: a DID routed to a queue, an agent's
        phone extension, or a queue's code."""
        route = self.directory.routes.get(user)
        if route is not None and route.tenant_id == tenant_id and route.code is None:
            node = route.flow.nodes[route.flow.start]
            return getattr(node, "queue", None), None
        account = self.directory.accounts.get(user)
        if account is not None and account.tenant_id == tenant_id and account.agent:
            return None, account.agent
        if (tenant_id, user) in self.directory.queues:
            return user, None
        return None

    # ------------------------------------------------------------------ hold
    def _phone_hold(self, call: SipCall, held: bool) -> None:
        """The agent's phone put the call on hold (a re-INVITE that no longer wants our audio:
        sendonly, inactive, or the old 0.0.0.0 address) or took it off: the ACD counts hold
        time, and the caller hears music meanwhile."""
        if held == call.held:
            return
        self._media_hold(call, held, tell_phone=False)
        call_id = call.id
        if held:
            self._submit(call.tenant_id, lambda t, now: t.acd.hold(now, call_id))
        else:
            self._submit(call.tenant_id, lambda t, now: t.acd.unhold(now, call_id))

    def _media_hold(self, call: SipCall, held: bool, tell_phone: bool = True) -> None:
        """On hold the caller hears music and the agent silence; neither hears the other.
        Held or resumed from a desktop, the phone is told too (it shows the call held)."""
        if call.agent is None or held == call.held:
            return
        call.held = held
        mon = call.monitor
        if mon is not None and mon.mix is not None:
            return  # a supervisor is in the call: the mix goes on
        if held:
            call.caller.media.play(self.music)
            call.agent.media.play(self.silence)
        else:
            call.caller.media.play(None)
            call.agent.media.play(None)
        if tell_phone:
            self._reoffer(call.agent, "sendonly" if held else "sendrecv")

    def _reoffer(self, leg: CallLeg, direction: str) -> None:
        """A re-INVITE to the phone with our new media direction (RFC 3264 §8.4)."""
        dialog = leg.dialog
        if dialog is None or not leg.up:
            return
        leg.sdp_version += 1
        offer = sdp.offer(self.config.advertised, leg.media.port, session_id=leg.sdp_session,
                          session_version=leg.sdp_version, direction=direction)
        leg.local_sdp = sdp.serialise(offer)
        request = dialog.request("INVITE", leg.local_sdp, "application/sdp")
        tx = self.stack.request(request, dialog.peer, dialog.conn)
        tx.user = Reoffer(leg, offer)

    def _reoffer_response(self, resp: Response, tx: ClientTransaction, r: Reoffer) -> None:
        if resp.status < 200 or r.answered:
            return
        r.answered = True
        leg = r.leg
        if resp.status >= 300 or leg.dialog is None:
            return  # refused (or 491, both re-offering at once): the media stays as it is
        self.stack.ack(tx, leg.dialog.ack(tx.request.cseq[0]))
        try:
            neg = sdp.negotiated_from_answer(r.offer, sdp.parse(resp.body))
        except sdp.SdpError as err:
            log.warning("a phone answered our re-INVITE with unusable SDP: %s", err)
            return
        leg.media.configure((neg.remote_address, neg.remote_port), neg.codec, neg.payload_type,
                            neg.dtmf_payload_type, neg.sends)

    def _send_bye(self, dialog: Dialog) -> None:
        self.stack.request(dialog.request("BYE"), dialog.peer, dialog.conn)

    def _bye(self, ev: RequestReceived) -> None:
        found = self.dialogs.pop(request_dialog_key(ev.request), None)
        if found is None:
            self.stack.reply(ev.tx, 481)
            return
        self.stack.reply(ev.tx, 200)
        call, leg = found
        leg.up = False
        if leg is call.caller:
            self._caller_gone(call)
        elif leg is call.agent:
            self._agent_gone(call)
        elif call.monitor is not None and leg is call.monitor.leg:
            self._monitor_gone(call, leg, "hung up")
        # else: the phone hung up before the ACD took its answer; ``answered`` ends the call

    def _caller_gone(self, call: SipCall) -> None:
        call_id = call.id
        if self.ivr.keeps_callback(call):  # hung up on the confirmation: keep the callback
            self._release(call, "caller_hung_up")
            return

        def op(t: Tenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is None:
                return
            if info["state"] in ("waiting", "ringing"):
                t.acd.abandon(now, call_id)
            elif info["state"] == "connected":
                t.acd.hangup(now, call_id)

        self._submit(call.tenant_id, op)
        self._release(call, "caller_hung_up")

    def _agent_gone(self, call: SipCall) -> None:
        call_id = call.id

        def op(t: Tenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is not None and info["state"] == "connected":
                t.acd.hangup(now, call_id)

        self._submit(call.tenant_id, op)
        self._release(call, "agent_hung_up")

    # ------------------------------------------------------------------ teardown
    def _end_agent_leg(self, call: SipCall) -> None:
        """Hang up the connected agent (the caller stays) and close the recording."""
        leg = call.agent
        if leg is None:
            return
        if call.monitor is not None and not call.taken_over:  # e.g. transferred
            self._monitor_gone(call, call.monitor.leg, "the agent left")
        call.agent, call.agent_id = None, None
        self.media.unbridge(leg.media)
        self._finish_recording(call)
        self._hang_up_leg(leg)

    def _hang_up_leg(self, leg: CallLeg) -> None:
        """BYE the leg if its dialog is up, forget the dialog and free the media port."""
        if leg.dialog is not None:
            self.dialogs.pop(_dialog_key(leg.dialog), None)
            if leg.up:
                leg.up = False
                self._send_bye(leg.dialog)
        leg.media.close()

    def _stop_ringing(self, call: SipCall) -> None:
        """Cancel every phone still ringing with the call (their 487s close the legs)."""
        call.wanted.clear()
        for agent, leg in list(call.ringing.items()):
            leg.cancelled = True
            if leg.invite is not None:
                self.stack.cancel(leg.invite)
            else:
                self._drop_ringing(call, agent)

    def _release(self, call: SipCall, cause: str) -> None:
        """End both legs (BYE whoever is still up) and free the call's media."""
        if call.ended:
            return
        call.ended = True
        self.ivr.released(call, cause)
        self.calls.pop(call.id, None)
        self._stop_ringing(call)
        if call.monitor is not None:
            self._monitor_gone(call, call.monitor.leg, cause)
        self._end_agent_leg(call)
        self._hang_up_leg(call.caller)
        if call.digits:
            log.debug("call %s: caller keyed %s", call.id, "".join(call.digits))
        log.info("call %s released (%s)", call.id, cause)

    def _finish_recording(self, call: SipCall) -> None:
        recorder, relative = call.recorder, call.recording
        if recorder is None or relative is None:
            return
        call.recorder = None
        call.recording = None
        written = recorder.close()
        event = CallRecorded(time.time(), call.id, relative, round(recorder.duration, 3))
        tenant_id = call.tenant_id

        async def saved() -> None:
            if written is not None:
                await asyncio.wrap_future(written)
            if not recorder.failed:  # the CDR links only a recording that exists
                self._submit(tenant_id, lambda t, now: t.record(event, now))

        self._spawn(saved())


_USER_UNSAFE = re.compile(r"[^0-9A-Za-z+*#._-]")


def safe_number(user: str | None) -> str | None:
    """A caller's number as we show it and pass it on: characters a number can have, no more
    (the user part arrives %-decoded and could carry quotes or line breaks into a header)."""
    if not user:
        return None
    return _USER_UNSAFE.sub("", user)[:32] or None


def escape_user(user: str) -> str:
    """A URI user part with what RFC 3261 §25.1 does not allow there %-escaped (e.g. '#')."""
    return urllib.parse.quote(user, safe="-_.!~*'()&=+$,;?/")


def _warning(err: Exception) -> str:
    """A Warning header value (RFC 3261 §20.43) telling the peer what we could not accept."""
    text = "".join(c for c in str(err)[:100] if c.isprintable() and c not in '"\\')
    return f'399 hotline "{text}"'


def _dialog_key(dialog: Dialog) -> tuple[str, str, str]:
    return (dialog.call_id, dialog.local_tag or "", dialog.remote_tag or "")


def phone_address(binding: Binding) -> Address:
    """Where to send a registered phone's calls: its Contact when it names the address the
    REGISTER came from (the phone knows where it listens), else that source address (a NAT
    rewrote it, and only the mapping the REGISTER opened reaches the phone)."""
    if binding.conn is None:
        try:
            uri = parse_uri(binding.contact)
        except SipError:
            return binding.source
        if uri.host == binding.source[0]:
            return (uri.host, uri.port or 5060)
    return binding.source


def _same_target(digest_uri: str | None, request_uri: str) -> bool:
    """The digest's uri names the Request-URI (user and host; phones vary in parameters)."""
    if digest_uri is None:
        return False
    try:
        a, b = parse_uri(digest_uri), parse_uri(request_uri)
    except SipError:
        return digest_uri == request_uri
    return (a.user, a.host, a.port) == (b.user, b.host, b.port)


def _hang_up(call_id: str) -> Callable[[Tenant, float], None]:
    def op(t: Tenant, now: float) -> None:
        info = t.acd.call_info(call_id)
        if info is not None and info["state"] == "connected":
            t.acd.hangup(now, call_id)

    return op


def _callback_failed(call_id: str) -> Callable[[Tenant, float], None]:
    return lambda t, now: t.acd.callback_failed(now, call_id)

