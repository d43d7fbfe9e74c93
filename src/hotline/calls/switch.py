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
import socket
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
from hotline.calls.directory import Directory, OutboundTrunk, Route
from hotline.calls.ivr_calls import IvrCalls
from hotline.events.types import (
    CallAbandoned,
    CallbackFailed,
    CallClosed,
    CallConferenced,
    CallEnded,
    CallHeld,
    CallMonitored,
    CallRecorded,
    CallRecordingChanged,
    CallRejected,
    CallResumed,
    CallTransferred,
    CallTransferredOut,
    Event,
    OutboundEnded,
    OutboundFailed,
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
class LegInvite:
    """What one of our INVITEs carries (``tx.user``): the call and leg it sets up, our SDP
    offer, and where it went. The subclass says whose INVITE it is."""

    call: SipCall
    leg: CallLeg
    offer: sdp.SessionDescription
    target: Address
    conn: Any


@dataclass(frozen=True)
class MonitorInvite(LegInvite):
    """A supervisor's phone, called to monitor the call."""


@dataclass
class Reoffer:
    """What our in-dialog re-INVITE's transaction carries (``tx.user``)."""

    leg: CallLeg
    offer: sdp.SessionDescription
    answered: bool = False


class MonitorError(TelephonyError):
    pass


@dataclass
class Consult:
    """Whom the agent consults while the caller holds: a colleague (``agent``) or an outside
    ``number``; ``state``: ringing, talking (with the agent), conference (all three)."""

    agent: str | None
    number: str | None
    leg: CallLeg
    state: str = "ringing"
    mix: Mix | None = None


@dataclass(frozen=True)
class ConsultInvite(LegInvite):
    """The one the agent consults: a colleague's phone, or a number through a trunk."""


@dataclass
class Dialing:
    """A call out being set up: the agent's phone is called first, then the customer through
    the trunk. ``kind``: outbound (click-to-call), callback (a queued caller's turn) or
    transfer (the caller, transferred blind to an outside number: no agent leg)."""

    kind: str
    agent: str
    number: str
    trunk: OutboundTrunk
    address: Address  # the trunk's resolved address
    customer_ringing: bool = False
    back: tuple[str, dict[str, Any] | None] | None = None  # transfer: queue and data to requeue


@dataclass(frozen=True)
class DialInvite(LegInvite):
    """A call out's: to the agent's phone, or (customer) to the number through the trunk."""

    customer: bool


MONITOR_MODES = ("listen", "whisper", "barge", "take_over")


@dataclass
class SipCall:
    id: str  # the ACD's call id (changes when the call is transferred to a new segment)
    tenant_id: int
    caller: CallLeg  # the customer's leg (a call out's is the one we dial)
    server_tx: ServerTransaction | None  # the caller's INVITE (None: we called them)
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
    dialing: Dialing | None = None  # a call out, until the customer answers
    external: bool = False  # transferred out: the ACD's part has ended, the caller talks on
    consult: Consult | None = None  # the agent consults someone (attended transfer)


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
    customer_ring: float = 45.0  # seconds a customer's phone may ring on a call out


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
        self.ringback = Sound.from_pcm("ringback", ringback_tone())
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
            if type(e) is CallTransferredOut:  # an attended transfer to an outside number
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if (call is not None and call.tenant_id == tenant.id and call.consult
                        and call.consult.number is not None):
                    self._consult_handed_over(call, None)
            if type(e) is CallTransferred:
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if (call is not None and call.tenant_id == tenant.id and call.consult
                        and call.consult.agent == e.to_agent):  # type: ignore[attr-defined]
                    self._consult_handed_over(call, e.to_call)  # type: ignore[attr-defined]
                elif call is not None and call.tenant_id == tenant.id:
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
            elif type(cmd) is Reject:  # (an IVR transfer to a busy agent goes on in the flow)
                if not self.ivr.transfer_refused(call, acd_call=True):
                    self._release(call, "rejected")
            elif type(cmd) is ExitToCallback:  # the ACD keeps the caller's place; hang up
                self.callbacks[call.id] = tenant.id
                if not self.ivr.exit_to_callback(call):  # (the IVR confirms its own first)
                    self._release(call, "callback")
            elif type(cmd) is DialCallback:  # its turn came while the IVR still confirmed it
                self._release(call, "callback")
                self.callbacks.pop(cmd.call, None)
                self._spawn(self._dial_callback(tenant.id, cmd))
        for cmd in commands:  # a SIP caller's callback: call them back
            if (type(cmd) is DialCallback and cmd.call not in self.calls
                    and self.callbacks.pop(cmd.call, None) == tenant.id):
                self._spawn(self._dial_callback(tenant.id, cmd))
        for e in events:
            if type(e) is CallHeld or type(e) is CallResumed:
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if call is not None and call.tenant_id == tenant.id and not call.ended:
                    self._media_hold(call, type(e) is CallHeld)
                continue
            if type(e) in _CALL_OVER:
                self.callbacks.pop(e.call, None)  # type: ignore[attr-defined]
                call = self.calls.get(e.call)  # type: ignore[attr-defined]
                if call is not None and not call.ended:
                    if ((type(e) is CallEnded or type(e) is OutboundEnded)
                            and (call.taken_over or call.external)):
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
                      display: str, extra: list[tuple[str, str]] | None = None
                      ) -> tuple[CallLeg, sdp.SessionDescription, Address]:
        """INVITE a registered phone (an agent's, or a supervisor's) on behalf of the call."""
        session = secrets.randbits(31)
        offer = sdp.offer(self.config.advertised, media.port, session_id=session)
        body = sdp.serialise(offer)
        host = f"{self.config.advertised}:{self.stack.port}"
        invite = self._new_invite(
            binding.contact, f'"{display}" <sip:{escape_user(call.number)}@{host}>',
            f"<sip:{username}@{host}>", body, [("X-Hotline-Call", call.id), *(extra or ())])
        leg = CallLeg(media, sdp_session=session, local_sdp=body)
        target = phone_address(binding)
        leg.invite = self.stack.request(invite, target, binding.conn)
        return leg, offer, target

    def _new_invite(self, uri: str, from_: str, to: str, body: bytes,
                    extra: list[tuple[str, str]] | None = None) -> Request:
        """A new INVITE of ours (fresh tag and Call-ID) carrying our SDP offer."""
        h = Headers()
        h.add("From", f"{from_};tag={self.stack.layer.new_tag()}")
        h.add("To", to)
        h.add("Call-ID", f"{secrets.token_hex(12)}@{self.config.advertised}")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", f"<sip:hotline@{self.config.advertised}:{self.stack.port}>")
        h.add("Allow", ALLOW)
        for name, value in extra or ():
            h.add(name, value)
        h.add("Content-Type", "application/sdp")
        return Request("INVITE", uri, h, body)

    # ------------------------------------------------------------------ supervisors
    async def monitor(self, tenant_id: int, call_id: str, user: str, mode: str
                      ) -> dict[str, Any]:
        """Call the supervisor's phone into a connected call, or change how it takes part."""
        if mode not in MONITOR_MODES:
            raise MonitorError(422, f"mode must be one of {', '.join(MONITOR_MODES)}")
        call = self.calls.get(call_id)
        if call is None or call.tenant_id != tenant_id or call.ended:
            raise MonitorError(404, f"call {call_id!r} is not on a phone")
        if call.taken_over or call.external:
            raise MonitorError(409, "the call has no agent any more (taken over or transferred)")
        if call.consult is not None:
            raise MonitorError(409, "the agent is consulting someone: try again after")
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
        wanted = current and not call.ended and call.agent is not None and not call.taken_over
        try:
            if not self._confirm(resp, tx, m, wanted):
                return
        except sdp.SdpError as err:
            log.warning("supervisor phone answered with unusable SDP: %s", err)
            self._monitor_gone(call, leg, "bad answer")
            return
        self._apply_monitor(call)

    def _confirm(self, resp: Response, tx: ClientTransaction, inv: LegInvite,
                 wanted: bool) -> bool:
        """A 2xx to one of our INVITEs, always ACKed. Unless it repeats one already taken,
        or the leg is no longer ``wanted`` (then hung up at once), the dialog is kept and the
        leg's media set from the answer: True. An unusable answer raises SdpError with the
        dialog kept, so the caller's failure path hangs it up."""
        leg = inv.leg
        if leg.dialog is not None:
            return False  # a retransmitted 2xx: the transaction layer has resent our ACK
        dialog = Dialog.as_uac(tx.request, resp, inv.target, inv.conn)
        self.stack.ack(tx, dialog.ack(tx.request.cseq[0]))
        leg.invite, leg.dialog, leg.up = None, dialog, True
        if not wanted:
            leg.up = False
            self._send_bye(dialog)
            leg.media.close()
            return False
        self.dialogs[_dialog_key(dialog)] = (inv.call, leg)
        neg = sdp.negotiated_from_answer(inv.offer, sdp.parse(resp.body))
        leg.media.configure((neg.remote_address, neg.remote_port), neg.codec, neg.payload_type,
                            neg.dtmf_payload_type, neg.sends)
        return True

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

    # ------------------------------------------------------------------ calls out
    async def dial(self, tenant_id: int, agent: str, number: str, queue: str | None = None,
                   trunk: str | None = None) -> dict[str, Any]:
        """Click-to-call: ring the agent's own phone, and once it answers call ``number``
        through the tenant's trunk and bridge the two. The ACD holds the agent busy from the
        start (``outbound_dialed``), so no inbound call is offered meanwhile."""
        if _DIALLABLE.fullmatch(number) is None:
            raise MonitorError(422, "number: digits, with an optional leading + (at most 32)")
        route = self.directory.outbound_trunk(tenant_id, trunk)
        if route is None:
            raise MonitorError(409, f"trunk {trunk!r} does not take calls out" if trunk else
                               "no trunk takes calls out (set a trunk's outbound address)")
        username = self.directory.phones.get((tenant_id, agent))
        if username is None:
            raise MonitorError(409, f"agent {agent} has no phone")
        bindings = self.registrar.lookup(username, self.stack.now())
        if not bindings:
            raise MonitorError(409, f"agent {agent}'s phone ({username}) is not registered")
        address = await self._resolve(route)
        legs = await self._open_legs(2)
        call_id = self.center.new_call_id()
        try:
            await self.center.submit(
                tenant_id, lambda t, now: t.acd.dial(now, call_id, agent, number, queue))
        except (ACDError, KeyError) as err:
            for leg in legs:
                leg.close()
            raise MonitorError(409, str(err).strip("'\"")) from None
        except BaseException:
            for leg in legs:
                leg.close()
            raise
        info = self._place(tenant_id, call_id, Dialing("outbound", agent, number, route,
                                                         address), legs, bindings[0], username)
        self.stack.flush()
        return {"call": call_id, "agent": agent, "number": number, "queue": info,
                "trunk": route.code, "state": "dialing"}

    async def _dial_callback(self, tenant_id: int, cmd: DialCallback) -> None:
        """The ACD reserved an agent for a SIP caller's callback: ring the agent's phone,
        then the caller's number. Anything missing (no number, trunk or phone) fails it."""
        call_id, agent, number = cmd.call, cmd.agent, cmd.number  # type: ignore[attr-defined]
        route = self.directory.outbound_trunk(tenant_id)
        username = self.directory.phones.get((tenant_id, agent))
        bindings = self.registrar.lookup(username, self.stack.now()) if username else []
        why = ("no number to call" if not number or not _DIALLABLE.fullmatch(number) else
               "no trunk takes calls out" if route is None else
               "the agent's phone is not registered" if not bindings else None)
        if why is not None or route is None or username is None or number is None:
            log.info("callback %s not dialled: %s", call_id, why)
            self._submit(tenant_id, _callback_failed(call_id))
            return
        try:
            address = await self._resolve(route)
            legs = await self._open_legs(2)
        except TelephonyError as err:
            log.warning("callback %s not dialled: %s", call_id, err)
            self._submit(tenant_id, _callback_failed(call_id))
            return
        self._place(tenant_id, call_id, Dialing("callback", agent, number, route, address),
                    legs, bindings[0], username)
        self.stack.flush()

    async def _resolve(self, trunk: OutboundTrunk) -> Address:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(trunk.host, trunk.port, type=socket.SOCK_DGRAM)
        except OSError as err:
            raise MonitorError(503, f"trunk {trunk.code}: cannot resolve {trunk.host}: {err}"
                               ) from None
        host, port = infos[0][4][:2]
        return (str(host), int(port))

    async def _open_legs(self, n: int) -> list[Leg]:
        legs: list[Leg] = []
        try:
            for _ in range(n):
                legs.append(await self.media.open_leg())
        except RuntimeError as err:
            for leg in legs:
                leg.close()
            raise MonitorError(503, str(err)) from None
        return legs

    def _place(self, tenant_id: int, call_id: str, dialing: Dialing, legs: list[Leg],
               binding: Binding, username: str) -> str | None:
        """Set up the SIP side of a call out the ACD has taken: the agent's phone rings
        first (told to answer at once, as the agent asked for the call)."""
        agent_media, customer_media = legs
        call = SipCall(call_id, tenant_id, CallLeg(customer_media), None, agent_id=dialing.agent,
                       number=dialing.number, dialing=dialing)
        info = self.center.tenants[tenant_id].acd.call_info(call_id)
        call.queue = None if info is None else str(info["queue"])
        self.calls[call_id] = call
        if info is None:  # ended before we got here (the agent hung up from the desktop)
            self._release(call, "ended")
            agent_media.close()
            return None
        leg, offer, target = self._invite_phone(
            call, agent_media, username, binding, dialing.number,
            [("Call-Info", f"<sip:{self.config.advertised}>;answer-after=0")])
        assert leg.invite is not None
        leg.invite.user = DialInvite(call, leg, offer, target, binding.conn, customer=False)
        call.ringing[dialing.agent] = leg
        if self.stack.loop is not None:
            self.stack.loop.call_later(self.config.max_ring, self._dial_expired, call, leg,
                                       "agent_unreachable")
        return call.queue

    def _invite_customer(self, call: SipCall, leg: CallLeg) -> None:
        dialing = call.dialing
        assert dialing is not None
        offer = self._invite_number(leg, dialing.number, dialing.trunk, dialing.address)
        assert leg.invite is not None
        leg.invite.user = DialInvite(call, leg, offer, dialing.address, None, customer=True)
        dialing.customer_ringing = True
        if self.stack.loop is not None:
            self.stack.loop.call_later(self.config.customer_ring, self._dial_expired, call, leg,
                                       "no_answer")

    def _invite_number(self, leg: CallLeg, number: str, trunk: OutboundTrunk,
                       address: Address) -> sdp.SessionDescription:
        """INVITE ``number`` through the trunk on ``leg`` (``leg.invite``); the SDP offer."""
        session = secrets.randbits(31)
        offer = sdp.offer(self.config.advertised, leg.media.port, session_id=session)
        body = sdp.serialise(offer)
        host = f"{self.config.advertised}:{self.stack.port}"
        where = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
        uri = f"sip:{escape_user(number)}@{where}:{trunk.port}"
        invite = self._new_invite(
            uri, f"<sip:{escape_user(trunk.caller_id or 'anonymous')}@{host}>", f"<{uri}>", body)
        leg.sdp_session, leg.local_sdp = session, body
        leg.invite = self.stack.request(invite, address)
        return offer

    def _dial_response(self, resp: Response, tx: ClientTransaction, d: DialInvite) -> None:
        call, leg = d.call, d.leg
        status = resp.status
        if status < 200:
            return
        if status >= 300:
            if leg.invite is not tx:
                return  # a retransmitted final
            leg.invite = None
            if d.customer:
                self._dial_failed(call, _not_reached(status))
            else:
                call.ringing.pop(call.dialing.agent if call.dialing else "", None)
                leg.media.close()
                self._dial_failed(call, "agent_unreachable")
            return
        dialing = call.dialing
        try:
            if not self._confirm(resp, tx, d, not (call.ended or dialing is None
                                                  or leg.cancelled)):
                return
        except sdp.SdpError as err:
            log.warning("call out %s: unusable SDP in the answer: %s", call.id, err)
            self._dial_failed(call, "unreachable" if d.customer else "agent_unreachable")
            return
        assert dialing is not None
        if not d.customer:  # the agent is on: now call the customer; ringback meanwhile
            call.ringing.pop(dialing.agent, None)
            call.agent = leg
            leg.media.play(self.ringback)
            self._invite_customer(call, call.caller)
            return
        call.dialing = None
        call_id, kind = call.id, dialing.kind
        if kind == "transfer":  # the caller and the outside party talk; the ACD is done
            self.ivr.answered(call)
            call.caller.media.play(None)
            self.media.bridge(call.caller.media, leg.media, None)
            return

        def answered(t: Tenant, now: float) -> None:
            if kind == "callback":
                t.acd.callback_answered(now, call_id)
            else:
                t.acd.outbound_answered(now, call_id)

        def connected(_: Any) -> None:
            if not call.ended and call.agent is not None:
                call.agent.media.play(None)
                self._connect(call)

        self._submit(call.tenant_id, answered, connected,
                     lambda err: self._release(call, "ended"))

    def _dial_expired(self, call: SipCall, leg: CallLeg, reason: str) -> None:
        """Nobody answered in time: the agent's phone (max_ring) or the customer's."""
        if leg.invite is None or leg.cancelled or call.ended:
            return
        leg.cancelled = True
        self.stack.cancel(leg.invite)
        self._dial_failed(call, reason)
        self.stack.flush()

    def _dial_failed(self, call: SipCall, reason: str) -> None:
        """The call out did not connect: the ACD is told why, and every leg is ended."""
        dialing = call.dialing
        if call.ended or dialing is None:
            return
        call_id, kind = call.id, dialing.kind
        log.info("call out %s to %s not connected (%s)", call_id, dialing.number, reason)
        if kind == "transfer" and dialing.back is not None:
            self._transfer_failed(call, dialing.back)
            return
        if kind == "transfer":  # from an IVR transfer node: the flow goes on
            leg, call.agent = call.agent, None
            if leg is not None:
                self._hang_up_leg(leg)
            call.dialing, call.external = None, False
            if not self.ivr.transfer_refused(call, acd_call=False):
                self._release(call, reason)
            return

        def op(t: Tenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is None or info["state"] != "dialing":
                return
            if kind == "callback":
                t.acd.callback_failed(now, call_id)
            else:
                t.acd.outbound_failed(now, call_id, reason)

        self._submit(call.tenant_id, op)
        self._release(call, reason)

    # ------------------------------------------------------------------ transfer out
    async def transfer_out(self, tenant_id: int, call_id: str, number: str,
                           trunk: str | None = None,
                           accepted: Callable[[], None] | None = None) -> dict[str, Any]:
        """Blind transfer to an outside number: the agent's segment ends (wrap-up follows),
        the caller hears ringback while the number is called through the trunk, then talks
        to whoever answers. If nobody does, the caller queues again where they were."""
        if _DIALLABLE.fullmatch(number) is None:
            raise MonitorError(422, "number: digits, with an optional leading + (at most 32)")
        call = self.calls.get(call_id)
        if (call is None or call.tenant_id != tenant_id or call.ended or call.agent is None
                or call.agent_id is None or call.external or call.dialing is not None):
            raise MonitorError(409, f"call {call_id!r} is not connected to an agent's phone")
        route = self.directory.outbound_trunk(tenant_id, trunk)
        if route is None:
            raise MonitorError(409, f"trunk {trunk!r} does not take calls out" if trunk else
                               "no trunk takes calls out (set a trunk's outbound address)")
        address = await self._resolve(route)
        (media,) = await self._open_legs(1)
        info = self.center.tenants[tenant_id].acd.call_info(call_id)
        if call.ended or call.agent_id is None or call.external or info is None:
            media.close()
            raise MonitorError(409, "the call changed meanwhile; try again")
        agent = call.agent_id
        call.external = True  # (before the ACD's call_ended reaches on_batch)
        try:
            await self.center.submit(tenant_id,
                                     lambda t, now: t.transfer_out(now, call_id, number))
        except (ACDError, KeyError) as err:
            call.external = False
            media.close()
            raise MonitorError(409, str(err).strip("'\"")) from None
        except BaseException:
            media.close()
            raise
        if call.ended:
            media.close()
            raise MonitorError(409, "the caller hung up meanwhile")
        if accepted is not None:  # (a REFER's NOTIFY, before the agent's leg is hung up)
            accepted()
        self._end_agent_leg(call)
        call.held = False
        call.caller.media.play(self.ringback)
        leg = CallLeg(media)
        call.agent = leg
        call.dialing = Dialing("transfer", agent, number, route, address,
                               back=(str(info["queue"]), info["data"]))
        self._invite_customer(call, leg)
        self.stack.flush()
        return {"call": call_id, "number": number, "trunk": route.code, "state": "dialing"}

    async def ivr_transfer_out(self, call: SipCall, number: str) -> None:
        """An IVR transfer node's outside number: called through the tenant's trunk while the
        caller hears ringback; the IVR is told if it cannot be."""
        route = self.directory.outbound_trunk(call.tenant_id)
        try:
            if route is None:
                raise MonitorError(409, "no trunk takes calls out")
            address = await self._resolve(route)
            (media,) = await self._open_legs(1)
        except TelephonyError as err:
            log.info("call %s: IVR transfer to %s impossible: %s", call.id, number, err)
            if not self.ivr.transfer_refused(call, acd_call=False):
                self._release(call, "transfer_failed")
            return
        if call.ended:
            media.close()
            return
        leg = CallLeg(media)
        call.agent, call.external = leg, True
        call.dialing = Dialing("transfer", "", number, route, address)
        call.caller.media.play(self.ringback)
        self._invite_customer(call, leg)
        self.stack.flush()

    def _transfer_failed(self, call: SipCall, back: tuple[str, dict[str, Any] | None]) -> None:
        """The outside number did not answer: the caller is not dropped but queues again (a
        new segment) in the queue the call was transferred from, hearing music."""
        queue, data = back
        leg, call.agent = call.agent, None
        if leg is not None:
            self._hang_up_leg(leg)
        call.dialing, call.external = None, False
        self.calls.pop(call.id, None)
        call.id = new_id = self.center.new_call_id()
        self.calls[new_id] = call
        call.caller.media.play(self.music)
        number = None if call.number == "anonymous" else call.number
        log.info("call %s: back to queue %s after a failed transfer out", new_id, queue)
        self._submit(call.tenant_id,
                     lambda t, now: t.acd.call_arrived(now, new_id, queue, data=data,
                                                       number=number),
                     failed=lambda err: self._release(call, "transfer_failed"))

    # ------------------------------------------------------------------ consultation
    async def consult(self, tenant_id: int, call_id: str, agent: str | None = None,
                      number: str | None = None, trunk: str | None = None) -> dict[str, Any]:
        """Attended transfer, first step: the caller holds (music) while the agent's phone is
        connected to a ready colleague's phone (or an outside number, through a trunk). Then
        ``consult_transfer`` hands the caller over, ``conference`` joins all three, and
        ``consult_cancel`` takes the caller back."""
        call = self._agent_call(tenant_id, call_id)
        if call.consult is not None:
            raise MonitorError(409, "the call is already in a consultation")
        if call.monitor is not None:
            raise MonitorError(409, f"{call.monitor.user} is monitoring the call")
        if (agent is None) == (number is None):
            raise MonitorError(422, "consult an agent or a number")
        binding = route = address = None
        username = ""
        if agent is not None:
            username = self.directory.phones.get((tenant_id, agent)) or ""
            bindings = self.registrar.lookup(username, self.stack.now()) if username else []
            if not bindings:
                raise MonitorError(409, f"agent {agent}'s phone is not registered")
            binding = bindings[0]
        else:
            assert number is not None
            if _DIALLABLE.fullmatch(number) is None:
                raise MonitorError(422, "number: digits, with an optional leading + (at most "
                                   "32)")
            route = self.directory.outbound_trunk(tenant_id, trunk)
            if route is None:
                raise MonitorError(409, "no trunk takes calls out")
            address = await self._resolve(route)
        (media,) = await self._open_legs(1)
        if call.ended or call.consult is not None or call.agent is None:
            media.close()
            raise MonitorError(409, "the call changed meanwhile; try again")
        cons = Consult(agent, number, CallLeg(media))
        call.consult = cons  # (before the ACD's call_held reaches on_batch: no music there)
        try:
            await self.center.submit(
                tenant_id, lambda t, now: t.acd.consult(now, call_id, agent, number))
        except (ACDError, KeyError) as err:
            call.consult = None
            media.close()
            raise MonitorError(409, str(err).strip("'\"")) from None
        except BaseException:
            call.consult = None
            media.close()
            raise
        if call.ended or call.consult is not cons or call.agent is None:
            media.close()
            raise MonitorError(409, "the call ended meanwhile")
        self.media.unbridge(call.caller.media)
        call.caller.media.play(self.music)
        call.agent.media.play(self.ringback)
        if binding is not None:
            leg, offer, target = self._invite_phone(call, media, username, binding,
                                                    f"Consult {call.agent_id}")
            cons.leg = leg
            conn = binding.conn
            limit = self.config.max_ring
        else:
            assert route is not None and address is not None and number is not None
            offer = self._invite_number(cons.leg, number, route, address)
            target, conn, limit = address, None, self.config.customer_ring
        assert cons.leg.invite is not None
        cons.leg.invite.user = ConsultInvite(call, cons.leg, offer, target, conn)
        if self.stack.loop is not None:
            self.stack.loop.call_later(limit, self._consult_expired, call, cons)
        self.stack.flush()
        return self._consult_state(call)

    def _agent_call(self, tenant_id: int, call_id: str) -> SipCall:
        call = self.calls.get(call_id)
        if (call is None or call.tenant_id != tenant_id or call.ended or call.agent is None
                or not call.agent.up or call.agent_id is None or call.external
                or call.taken_over or call.dialing is not None):
            raise MonitorError(409, f"call {call_id!r} is not connected to an agent's phone")
        return call

    def _consult_state(self, call: SipCall) -> dict[str, Any]:
        cons = call.consult
        return {"call": call.id, "agent": call.agent_id,
                "consult": None if cons is None else {
                    "agent": cons.agent, "number": cons.number, "state": cons.state}}

    def _consult_response(self, resp: Response, tx: ClientTransaction,
                          ci: ConsultInvite) -> None:
        call, leg = ci.call, ci.leg
        if resp.status < 200:
            return
        cons = call.consult
        current = cons is not None and cons.leg is leg and not call.ended
        if resp.status >= 300:
            if leg.invite is tx:
                leg.invite = None
                if current:
                    self._consult_over(call, "failed")
                else:
                    leg.media.close()
            return
        try:
            if not self._confirm(resp, tx, ci, current and call.agent is not None
                                 and not leg.cancelled):
                return
        except sdp.SdpError as err:
            log.warning("call %s: the one consulted answered with unusable SDP: %s", call.id,
                        err)
            self._consult_over(call, "failed")
            return
        assert cons is not None and call.agent is not None
        cons.state = "talking"
        self.media.bridge(call.agent.media, leg.media, None)

    def _consult_expired(self, call: SipCall, cons: Consult) -> None:
        if call.consult is cons and cons.state == "ringing" and not call.ended:
            self._consult_over(call, "failed")
            self.stack.flush()

    async def consult_cancel(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        call = self._agent_call(tenant_id, call_id)
        if call.consult is None:
            raise MonitorError(409, "the call is not in a consultation")
        self._consult_over(call, "cancelled")
        self.stack.flush()
        return self._consult_state(call)

    def _consult_over(self, call: SipCall, how: str) -> None:
        """The consultation ends without a transfer: the one consulted is hung up (or no
        longer rung) and the agent has the caller back; the ACD frees the colleague."""
        cons = call.consult
        if cons is None:
            return
        call.consult = None
        if cons.mix is not None:
            self.media.unmix(cons.mix)
        self._hang_up_leg(cons.leg)
        if call.ended:
            return
        if call.agent is not None:
            self.media.bridge(call.caller.media, call.agent.media, None,
                              call.agent.media.record_start)
            self._feed_recorder(call)
        call_id = call.id

        def op(t: Tenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is not None and info["consult"] is not None:
                t.acd.consult_end(now, call_id, how)

        self._submit(call.tenant_id, op)

    async def conference(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        """The caller, the agent and the one consulted all hear each other (recorded on)."""
        call = self._agent_call(tenant_id, call_id)
        cons = call.consult
        if cons is None or cons.state != "talking":
            raise MonitorError(409, "consult someone first, and wait until they answer")
        agent = call.agent_id or ""
        event = CallConferenced(time.time(), call_id, agent, cons.agent, cons.number)

        def op(t: Tenant, now: float) -> None:
            t.acd.unhold(now, call_id)
            t.record(event, now)

        try:
            await self.center.submit(tenant_id, op)
        except (ACDError, KeyError) as err:
            raise MonitorError(409, str(err).strip("'\"")) from None
        if call.ended or call.consult is not cons or call.agent is None:
            raise MonitorError(409, "the call changed meanwhile")
        c, a, b = call.caller.media, call.agent.media, cons.leg.media
        recorder = None if call.recording_paused else call.recorder
        cons.mix = self.media.mix({c: (a, b), a: (c, b), b: (c, a)}, recorder,
                                  {c: 0, a: 1, b: 1}, a.record_start)
        cons.state = "conference"
        return self._consult_state(call)

    async def consult_transfer(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        """Attended transfer, last step: the caller now talks to the one consulted; the
        agent's phone is hung up and the agent goes to wrap-up."""
        call = self._agent_call(tenant_id, call_id)
        cons = call.consult
        if cons is None or cons.state == "ringing":
            raise MonitorError(409, "consult someone first, and wait until they answer")
        try:
            new_id = await self._complete_consult(call)
        except (ACDError, KeyError) as err:
            raise MonitorError(409, str(err).strip("'\"")) from None
        return {"call": call_id, "to_call": new_id if cons.agent else None,
                "agent": cons.agent, "number": cons.number}

    def _complete_consult(self, call: SipCall) -> asyncio.Future[str]:
        """Have the ACD record the attended transfer; on_batch then hands the caller over
        (``_consult_handed_over``). An outside number takes the caller out of the ACD, so its
        call_ended must not release the call."""
        cons = call.consult
        assert cons is not None
        if cons.number is not None:
            call.external = True
        call_id, new_id = call.id, self.center.new_call_id()
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def done(_: Any) -> None:
            if not fut.done():
                fut.set_result(new_id)

        def failed(err: BaseException) -> None:
            call.external = False
            if not fut.done():
                fut.set_exception(err)

        self._submit(call.tenant_id,
                     lambda t, now: t.acd.consult_transfer(now, call_id, new_id), done, failed)
        return fut

    def _agent_left_consult(self, call: SipCall) -> None:
        """The agent hung up while consulting: with the one consulted on the line that
        completes the transfer (as on a PBX); while they are still rung, the consultation is
        cancelled and the call ends."""
        cons = call.consult
        assert cons is not None
        if cons.state == "ringing":
            self._consult_over(call, "cancelled")
            self._agent_gone(call)
            return

        def done(f: asyncio.Future[str]) -> None:
            if f.cancelled() or f.exception() is not None:
                self._agent_gone(call)

        self._complete_consult(call).add_done_callback(done)

    def _consult_handed_over(self, call: SipCall, to_call: str | None) -> None:
        """The ACD recorded the attended transfer: the agent's leg goes, the caller and the
        one consulted are bridged (a colleague's segment is recorded anew)."""
        cons = call.consult
        assert cons is not None
        call.consult = None
        if cons.mix is not None:
            self.media.unmix(cons.mix)
        self._end_agent_leg(call)
        call.held = False
        if to_call is None:  # an outside number: the ACD's part is over
            call.agent = cons.leg
            self.media.bridge(call.caller.media, cons.leg.media, None)
            return
        self.calls.pop(call.id, None)
        call.id = to_call
        self.calls[to_call] = call
        call.agent, call.agent_id = cons.leg, cons.agent
        self._connect(call)

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
        if isinstance(tx.user, DialInvite):
            self._dial_response(resp, tx, tx.user)
            return
        if isinstance(tx.user, ConsultInvite):
            self._consult_response(resp, tx, tx.user)
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
        for mix in (call.monitor.mix if call.monitor else None,
                    call.consult.mix if call.consult else None):
            if mix is not None:
                mix.recorder = recorder
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
        if isinstance(tx.user, ConsultInvite):
            ci = tx.user
            if ci.leg.invite is tx:
                ci.leg.invite = None
                if ci.call.consult is not None and ci.call.consult.leg is ci.leg:
                    self._consult_over(ci.call, "failed")
                else:
                    ci.leg.media.close()
            return
        if isinstance(tx.user, DialInvite):
            d = tx.user
            if d.leg.invite is tx:
                d.leg.invite = None
                d.call.ringing.pop(d.call.dialing.agent if d.call.dialing else "", None)
                self._dial_failed(d.call, "unreachable" if d.customer else "agent_unreachable")
            return
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
            if leg is call.agent and not call.taken_over and not call.external:
                self._phone_hold(call, held=not neg.sends)
        self.stack.reply(ev.tx, 200, body=body, content_type="application/sdp",
                         headers=[("Contact", leg.dialog.local_contact)])

    # ------------------------------------------------------------------ transfer
    def _refer(self, ev: RequestReceived) -> None:
        """The agent's phone transfers the caller (blind, RFC 3515): to a number routed to a
        queue, a queue's code, or another agent's extension, all of the same tenant. The
        ACD records it like a transfer from the desktop: the agent goes to wrap-up, the caller
        queues again as a new segment and hears music. Any other number is dialled through
        the tenant's trunk (``transfer_out``)."""
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
        outside = (where is None and _DIALLABLE.fullmatch(target.user or "") is not None
                   and self.directory.outbound_trunk(call.tenant_id) is not None)
        if where is None and not outside:
            self.stack.reply(ev.tx, 404, "No Such Queue Or Agent")
            return
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
                self.stack.flush()

        notify("100 Trying")
        if where is None:  # an outside number, through the tenant's trunk
            async def out() -> None:
                try:
                    await self.transfer_out(call.tenant_id, call_id, target.user or "",
                                            accepted=lambda: notify("200 OK"))
                except TelephonyError as err:
                    log.info("call %s: transfer out refused: %s", call_id, err)
                    notify("503 Service Unavailable")

            self._spawn(out())
            return
        queue, agent = where

        def op(t: Tenant, now: float) -> None:
            current = t.acd.call_info(call_id)
            # to an agent: through the queue the call is in, unless the agent's own
            t.transfer(now, call_id, new_id, queue or (current or {}).get("queue", ""), agent)

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
        if call.agent is None or held == call.held or call.consult is not None:
            return  # (a consultation arranges the media itself)
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
        elif call.consult is not None and leg is call.agent:
            self._agent_left_consult(call)
        elif call.consult is not None and leg is call.consult.leg:
            self._consult_over(call, "left")
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
            info = t.acd.call_info(call_id)  # (dialing: the agent gave up on a call out)
            if info is not None and info["state"] in ("connected", "dialing"):
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
        """BYE the leg if its dialog is up (CANCEL it if it still rings), forget the dialog
        and free the media port."""
        if leg.invite is not None and not leg.cancelled:
            leg.cancelled = True
            self.stack.cancel(leg.invite)
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
        cons, call.consult = call.consult, None
        if cons is not None:
            if cons.mix is not None:
                self.media.unmix(cons.mix)
            self._hang_up_leg(cons.leg)
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
_DIALLABLE = re.compile(r"\+?[0-9]{1,32}")
_CALL_OVER = (CallEnded, CallAbandoned, CallClosed, CallRejected, CallbackFailed, OutboundEnded,
              OutboundFailed)


def _not_reached(status: int) -> str:
    """Why a customer's number did not answer, from the trunk's final response."""
    if status in (486, 600):
        return "busy"
    if status in (408, 480, 487):
        return "no_answer"
    if status in (403, 603, 404, 484, 604, 410):
        return "rejected"
    return "unreachable"


def ringback_tone() -> np.ndarray:
    """The ringing tone a caller out hears while the customer's phone rings: 450 Hz, one
    second on, four off (China's; Europe's 425 Hz cadence differs little)."""
    t = np.arange(8000) / 8000.0
    on = (np.sin(2 * np.pi * 450.0 * t) * 0.25 * 32767).astype(np.int16)
    return np.concatenate([on, np.zeros(32000, dtype=np.int16)])


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

