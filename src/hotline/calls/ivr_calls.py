"""The IVR's driver on the switch: runs each caller's ``IvrRun`` and carries out its actions.

The engine decides; this module plays prompts on the caller's RTP leg (prompts are stored
audio, announcements with live figures are spoken by the TTS engine and cached), arms the
engine's one timer, asks the tenant's lookup endpoint, records voicemail, and hands the call
to the ACD at the queue node. Everything it tells the ACD goes through the switch's ordered
``_submit``, like the switch's own inputs.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import time
import urllib.parse
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from hotline.events.types import IvrEnded, VoicemailLeft
from hotline.ivr.engine import (
    BEEP,
    POSITION,
    WAIT,
    Action,
    Disconnect,
    Enqueue,
    IvrRun,
    PlayMusic,
    PlayPrompts,
    RequestCallback,
    StartLookup,
    StartRecording,
    StopPlaying,
    StopRecording,
    TransferCall,
)
from hotline.ivr.flow import FlowDefinition
from hotline.media import speech_numbers, tts
from hotline.media.engine import Sound
from hotline.media.recorder import StereoRecorder
from hotline.server.live import Tenant

if TYPE_CHECKING:
    from hotline.calls.switch import SipCall, Switch

log = logging.getLogger("hotline.ivr")
RATE = 8000
SPOKEN_CACHE = 2000  # announcements kept rendered (language, text)
LOOKUP_BYTES = 65536


def beep() -> npt.NDArray[np.int16]:
    """The tone before a voicemail recording starts: 1 kHz for a quarter second."""
    t = np.arange(RATE // 4) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    pause = np.zeros(RATE // 10, dtype=np.int16)
    tone = np.asarray(np.round(0.4 * 32767 * ramp * np.sin(2 * np.pi * 1000 * t)), np.int16)
    return np.concatenate([pause, tone])


@dataclass
class IvrCall:
    run: IvrRun
    flow: str | None  # None: a route straight to a queue (no IVR events recorded)
    version: int
    started: float  # loop time
    data: dict[str, Any]  # caller data for the ACD (origin, DID, name)
    number: str | None
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None
    logged: bool = False  # IvrEnded recorded
    callback: str = ""  # "", "asked" (the ACD has not answered yet) or "accepted"
    voicemail: StereoRecorder | None = None
    voicemail_path: str = ""
    voicemail_box: str = ""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class IvrCalls:
    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.spoken: OrderedDict[tuple[str, str], npt.NDArray[np.int16]] = OrderedDict()
        self.beep = beep()
        # Lookups wait on tenants' servers: their own threads, so a slow one never holds up
        # speech, reloads or anything else that runs on the default pool.
        self.lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ivr-lookup")
        self.lookup_allowed = lookup_networks()

    def close(self) -> None:
        self.lookups.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ entry
    def begin(self, call: SipCall, flow: FlowDefinition, code: str | None, version: int,
              language: str, did: str, number: str | None, data: dict[str, Any]) -> None:
        sw = self.switch
        directory = sw.directory
        tenant = call.tenant_id
        loop_now = sw.stack.now()
        variables = {"caller": number or "", "did": did, "language": language}
        run = IvrRun(
            flow, variables,
            calendars={c: cal for (t, c), cal in directory.calendars.items() if t == tenant},
            wall_offset=time.time() - loop_now,
            notice=directory.notices.get((tenant, "did", did)),
            queue_notices={q: p for (t, scope, q), p in directory.notices.items()
                           if t == tenant and scope == "queue"},
        )
        call.ivr = IvrCall(run, code, version, loop_now, data, number)
        call.caller.media.listen_for_digits(lambda key: self.digit(call, key))
        self._carry_out(call, run.start(loop_now))

    def digit(self, call: SipCall, key: str) -> None:
        ic = call.ivr
        if len(call.digits) < 64:
            call.digits.append(key)
        if ic is None or call.ended or ic.run.finished:
            return
        self._carry_out(call, ic.run.digit(self.switch.stack.now(), key))

    # ------------------------------------------------------------------ ACD side
    def answered(self, call: SipCall) -> None:
        """An agent has the call: the IVR's part is over."""
        ic = call.ivr
        if ic is None:
            return
        ic.run.left_queue()
        self._disarm(ic)
        call.caller.media.listen_for_digits(None)

    def transfer_refused(self, call: SipCall, acd_call: bool) -> bool:
        """A transfer node's agent or number did not take the caller: whether the IVR goes on
        (at the node's on_failure). ``acd_call``: the ACD saw (and closed) this call id, so
        the caller goes on as a new one (a call id is never reused in the record)."""
        ic = call.ivr
        if ic is None or call.ended or ic.run.state != "transfer":
            return False
        sw = self.switch
        if acd_call:
            sw.calls.pop(call.id, None)
            call.id = sw.center.new_call_id()
            sw.calls[call.id] = call
        ic.logged = False
        call.caller.media.listen_for_digits(lambda key: self.digit(call, key))
        self._carry_out(call, ic.run.transfer_failed(sw.stack.now()))
        return True

    def exit_to_callback(self, call: SipCall) -> bool:
        """Whether the IVR will hang up itself (after confirming the callback it asked for)."""
        return call.ivr is not None and call.ivr.callback != "" and not call.ended

    def keeps_callback(self, call: SipCall) -> bool:
        """The caller hung up after asking for a callback: whether the ACD must keep it (it
        was granted, or its answer is still to come and decides)."""
        return call.ivr is not None and call.ivr.callback != ""

    def released(self, call: SipCall, cause: str) -> None:
        ic = call.ivr
        if ic is None:
            return
        self._disarm(ic)
        for task in list(ic.tasks):
            task.cancel()
        if ic.voicemail is not None:
            self._save_voicemail(call)
        if not ic.logged:
            self._log_end(call, "abandoned" if cause == "caller_hung_up" else cause)
        ic.run.left_queue()

    # ------------------------------------------------------------------ actions
    def _carry_out(self, call: SipCall, actions: list[Action]) -> None:
        ic = call.ivr
        assert ic is not None
        sw = self.switch
        leg = call.caller.media
        for action in actions:
            if call.ended:
                return
            if isinstance(action, PlayPrompts):
                self._spawn(call, self._play(call, action))
            elif isinstance(action, StopPlaying):
                leg.play(None)
            elif isinstance(action, PlayMusic):
                leg.play(sw.music)
            elif isinstance(action, Enqueue):
                self._enqueue(call, action)
            elif isinstance(action, TransferCall):
                self._transfer(call, action)
            elif isinstance(action, RequestCallback):
                self._request_callback(call)
            elif isinstance(action, StartLookup):
                self._spawn(call, self._lookup(call, action))
            elif isinstance(action, StartRecording):
                self._start_voicemail(call, action)
            elif isinstance(action, StopRecording):
                self._save_voicemail(call)
            elif isinstance(action, Disconnect):
                if not ic.logged and action.outcome != "callback":
                    self._log_end(call, action.outcome)
                sw._release(call, f"ivr_{action.outcome}")
                return
        self._arm(call)

    def _spawn(self, call: SipCall, coro: Any) -> None:
        ic = call.ivr
        assert ic is not None
        task = asyncio.create_task(coro)
        ic.tasks.add(task)
        task.add_done_callback(ic.tasks.discard)
        task.add_done_callback(self.switch._done)

    def _arm(self, call: SipCall) -> None:
        ic = call.ivr
        assert ic is not None
        deadline = ic.run.deadline
        if deadline == ic.timer_at:
            return
        self._disarm(ic)
        loop = self.switch.stack.loop
        if deadline is not None and loop is not None:
            ic.timer_at = deadline
            ic.timer = loop.call_at(deadline, self._timer, call)

    def _disarm(self, ic: IvrCall) -> None:
        if ic.timer is not None:
            ic.timer.cancel()
        ic.timer = None
        ic.timer_at = None

    def _timer(self, call: SipCall) -> None:
        ic = call.ivr
        if ic is None or call.ended:
            return
        ic.timer = None
        ic.timer_at = None
        self._carry_out(call, ic.run.timer(max(self.switch.stack.now(), ic.run.deadline or 0)))

    # ------------------------------------------------------------------ prompts
    async def _play(self, call: SipCall, action: PlayPrompts) -> None:
        ic = call.ivr
        assert ic is not None
        sw = self.switch
        figures: tuple[int | None, float] | None = None
        if POSITION in action.segments or WAIT in action.segments:
            figures = await self._queue_figures(call)
        parts: list[npt.NDArray[np.int16]] = []
        for segment in action.segments:
            if segment == BEEP:
                parts.append(self.beep)
            elif segment in (POSITION, WAIT):
                if figures is None or figures[0] is None:
                    continue  # no longer waiting (ringing an agent): nothing to announce
                position, wait = figures[0], figures[1]
                text = (speech_numbers.say_position(position, action.language)
                        if segment == POSITION
                        else speech_numbers.say_wait(wait / 60.0, action.language))
                pcm = await self._speak(text, action.language)
                if pcm is not None:
                    parts.append(pcm)
            else:
                pcm = sw.directory.prompts.get((call.tenant_id, segment, action.language))
                if pcm is None:
                    log.warning("call %s: no %s prompt %r", call.id, action.language, segment)
                    continue
                parts.append(pcm)
        if call.ended or ic.run.finished or action.id != ic.run.playing:
            return  # over, or replaced while it was being prepared
        now = sw.stack.now()
        if not parts:  # nothing to say: as if it had been said
            self._carry_out(call, ic.run.prompt_ended(now, action.id))
            return
        sound = Sound.from_pcm("ivr", np.concatenate(parts) if len(parts) > 1 else parts[0])
        call.caller.media.play(sound, loop=False,
                               on_end=lambda: self._prompt_ended(call, action.id))

    def _prompt_ended(self, call: SipCall, play_id: int) -> None:
        ic = call.ivr
        if ic is None or call.ended:
            return
        self._carry_out(call, ic.run.prompt_ended(self.switch.stack.now(), play_id))

    async def _queue_figures(self, call: SipCall) -> tuple[int | None, float] | None:
        call_id = call.id

        def op(t: Tenant, now: float) -> tuple[int | None, float]:
            position = t.acd.call_position(call_id)
            info = t.acd.call_info(call_id)
            if position is None or info is None:
                return None, 0.0
            return position, t.acd.expected_wait(info["queue"], position)

        return await self._ask(call, op)

    async def _ask(self, call: SipCall, op: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def then(result: Any) -> None:
            if not future.done():
                future.set_result(result)

        def failed(_: BaseException) -> None:
            if not future.done():
                future.set_result(None)

        self.switch._submit(call.tenant_id, op, then, failed)
        return await future

    async def _speak(self, text: str, language: str) -> npt.NDArray[np.int16] | None:
        key = (language, text)
        cached = self.spoken.get(key)
        if cached is not None:
            self.spoken.move_to_end(key)
            return cached
        try:
            pcm = await asyncio.to_thread(tts.render, text, language)
        except tts.TtsError as err:
            log.warning("cannot speak %r: %s", text, err)
            return None
        self.spoken[key] = pcm
        if len(self.spoken) > SPOKEN_CACHE:
            self.spoken.popitem(last=False)
        return pcm

    # ------------------------------------------------------------------ queue
    def _enqueue(self, call: SipCall, action: Enqueue) -> None:
        ic = call.ivr
        assert ic is not None
        call_id, queue = call.id, action.queue
        data = {**ic.data, **{k: v for k, v in action.data.items() if v != ""}}
        ended = self._end_event(call, "queued", queue)
        ic.logged = True

        def op(t: Tenant, now: float) -> None:
            t.acd.call_arrived(now, call_id, queue, priority=action.priority, data=data,
                               number=ic.number)
            if ended is not None:
                if t.acd.call_info(call_id) is None:  # the queue refused it (full, no agents)
                    ended.outcome = "rejected"
                t.record(ended, now)

        self.switch._submit(call.tenant_id, op,
                            failed=lambda err: self.switch._release(call, f"refused: {err}"))

    def _transfer(self, call: SipCall, action: TransferCall) -> None:
        """A transfer node: ring the one agent through the ACD (rejected at once if not
        ready; queued normally after a RONA), or call the outside number."""
        ic = call.ivr
        assert ic is not None
        sw = self.switch
        ended = self._end_event(call, "transferred", action.queue)
        ic.logged = True
        if action.number is not None:
            if ended is not None:
                sw._submit(call.tenant_id, lambda t, now: t.record(ended, now))
            sw._spawn(sw.ivr_transfer_out(call, action.number))
            return
        agent = action.agent
        if action.extension is not None:
            account = sw.directory.accounts.get(action.extension)
            agent = (account.agent if account is not None
                     and account.tenant_id == call.tenant_id else None)
        queue = action.queue or ""
        call_id = call.id
        data = {**ic.data, **{k: v for k, v in action.data.items() if v != ""}}
        if agent is None:
            log.info("call %s: no agent has extension %s", call_id, action.extension)
            if ended is not None:
                sw._submit(call.tenant_id, lambda t, now: t.record(ended, now))
            self.transfer_refused(call, acd_call=False)
            return

        def op(t: Tenant, now: float) -> None:
            if ended is not None:
                t.record(ended, now)
            t.acd.call_arrived(now, call_id, queue, data=data, number=ic.number, agent=agent)

        def failed(err: BaseException) -> None:  # unknown agent or queue: nothing recorded
            log.info("call %s: transfer to %s refused: %s", call_id, agent, err)
            self.transfer_refused(call, acd_call=False)

        sw._submit(call.tenant_id, op, failed=failed)

    def _request_callback(self, call: SipCall) -> None:
        ic = call.ivr
        assert ic is not None
        if not ic.number or ic.number == "anonymous":  # nobody to call back
            self._carry_out(call, ic.run.callback_refused(self.switch.stack.now()))
            return
        ic.callback = "asked"
        call_id, number = call.id, ic.number

        def accepted(_: Any) -> None:
            ic.callback = "accepted"
            if not call.ended:
                self._carry_out(call, ic.run.callback_accepted(self.switch.stack.now()))

        def refused(err: BaseException) -> None:
            ic.callback = ""
            log.info("call %s: callback refused (%s)", call_id, err)
            if not call.ended:
                self._carry_out(call, ic.run.callback_refused(self.switch.stack.now()))
            else:  # they hung up meanwhile, and stay queued or ringing: that is an abandon
                self.switch._submit(call.tenant_id, _abandon(call_id))

        self.switch._submit(call.tenant_id,
                            lambda t, now: t.acd.request_callback(now, call_id, number),
                            accepted, refused)

    # ------------------------------------------------------------------ lookup
    async def _lookup(self, call: SipCall, action: StartLookup) -> None:
        ic = call.ivr
        assert ic is not None
        try:
            loop = asyncio.get_running_loop()
            answer = await asyncio.wait_for(
                loop.run_in_executor(self.lookups, _fetch, action.url, action.params,
                                     action.timeout, self.lookup_allowed),
                action.timeout + 0.5)
        except Exception as err:  # the endpoint's trouble must never be the caller's
            log.info("call %s: lookup %s failed: %s", call.id, action.url, err)
            answer = None
        if not call.ended:
            self._carry_out(call, ic.run.lookup_done(self.switch.stack.now(), answer, action.id))

    # ------------------------------------------------------------------ voicemail
    def _start_voicemail(self, call: SipCall, action: StartRecording) -> None:
        ic = call.ivr
        assert ic is not None
        sw = self.switch
        slug = sw.directory.tenant_slugs.get(call.tenant_id, str(call.tenant_id))
        ic.voicemail_path = f"{slug}/voicemail/{time.strftime('%Y-%m-%d')}/{call.id}.wav"
        ic.voicemail_box = action.mailbox
        recorder = StereoRecorder(sw.recordings / ic.voicemail_path, io=sw.disk, channels=1)
        ic.voicemail = recorder
        leg = call.caller.media
        leg.play(None)
        leg.recorder, leg.channel, leg.record_start = recorder, 0, sw.media.now()

    def _save_voicemail(self, call: SipCall) -> None:
        ic = call.ivr
        assert ic is not None
        recorder = ic.voicemail
        if recorder is None:
            return
        ic.voicemail = None
        leg = call.caller.media
        if leg.recorder is recorder:
            leg.recorder = None
        written = recorder.close()
        event = VoicemailLeft(time.time(), call.id, ic.voicemail_box, ic.voicemail_path,
                              round(recorder.duration, 3), ic.number, ic.run.language)
        tenant_id = call.tenant_id
        sw = self.switch

        async def saved() -> None:
            if written is not None:
                await asyncio.wrap_future(written)
            if not recorder.failed and recorder.duration > 0:
                sw._submit(tenant_id, lambda t, now: t.record(event, now))

        sw._spawn(saved())

    # ------------------------------------------------------------------ record
    def _end_event(self, call: SipCall, outcome: str, queue: str | None = None
                   ) -> IvrEnded | None:
        ic = call.ivr
        if ic is None or ic.flow is None:
            return None
        run = ic.run
        return IvrEnded(time.time(), call.id, ic.flow, ic.version, outcome, queue,
                        run.language, round(self.switch.stack.now() - ic.started, 3), ic.number,
                        list(run.path))

    def _log_end(self, call: SipCall, outcome: str) -> None:
        ic = call.ivr
        assert ic is not None
        ic.logged = True
        event = self._end_event(call, outcome)
        if event is not None:
            self.switch._submit(call.tenant_id, lambda t, now: t.record(event, now))


def lookup_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Non-public networks the operator lets lookups reach (``HOTLINE_IVR_LOOKUP_ALLOW``,
    comma-separated CIDRs: e.g. where the tenants' CRMs live on a private network)."""
    nets = []
    for item in os.environ.get("HOTLINE_IVR_LOOKUP_ALLOW", "").split(","):
        if item.strip():
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
    return nets


def _permitted(address: str, allowed: list[Any]) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return ip.is_global or any(ip.version == n.version and ip in n for n in allowed)


class _Pinned(http.client.HTTPConnection):
    """Connects to the address that was checked, not to what the name resolves to next."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTls(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _fetch(url: str, params: dict[str, str], timeout: float,
           allowed: list[Any] | None = None) -> Any:
    """GET the lookup endpoint (blocking; run on the lookup threads). Only a JSON object is
    used. The URL is a tenant's: on a shared server it must reach only public addresses (or
    the networks the operator allows), so the name is resolved once, every address checked,
    the connection made to the checked address, and redirects are not followed."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not _permitted(a, allowed or [])]
    if not addresses or refused:
        raise ValueError(f"lookup address {', '.join(refused) or host} is not allowed")
    query = urllib.parse.urlencode(params)
    path = (parts.path or "/") + "?" + (parts.query + "&" if parts.query else "") + query
    conn_type = _PinnedTls if tls else _Pinned
    conn = conn_type(host, addresses[0], port, timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json",
                                           "User-Agent": "Hotline-IVR"})
        response = conn.getresponse()
        if response.status != 200:
            raise ValueError(f"lookup answered {response.status}")
        body = response.read(LOOKUP_BYTES + 1)
    finally:
        conn.close()
    if len(body) > LOOKUP_BYTES:
        raise ValueError("lookup answer too large")
    return json.loads(body)


def _abandon(call_id: str) -> Any:
    def op(t: Tenant, now: float) -> None:
        info = t.acd.call_info(call_id)
        if info is not None and info["state"] in ("waiting", "ringing"):
            t.acd.abandon(now, call_id)

    return op
