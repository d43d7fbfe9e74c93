"""The demo: a seeded tenant "演示银行 Demo Bank" with live simulated traffic.

Simulated callers arrive in real time (Poisson, at the scenario's rates), wait with a sampled
patience and hang up after a sampled talk time once answered, whoever answered them. Simulated
agents log in, answer their offers after a short delay, and follow the published roster: the
demo publishes one (round the clock, breaks staggered) for any day that has none, so the
monitor shows adherence. A person who logs in as a demo agent takes that agent over from the
simulation and gets simulated calls through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import time as clock_time
from importlib import resources
from itertools import pairwise
from random import Random
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.acd.commands import Command, DialCallback, Offer
from hotline.acd.engine import BUSY, LOGGED_OUT, NOT_READY, READY, WRAP_UP, ACDError
from hotline.db.schema import (
    Agent,
    Disposition,
    InboundRoute,
    PhoneAccount,
    Queue,
    ReasonCode,
    RosterActivity,
    Skill,
    Tenant,
    Trunk,
    User,
)
from hotline.events.types import CallAnswered, CallTransferred, Event
from hotline.server import ivr_store
from hotline.server.adherence import LiveAdherence, RosterOverlap
from hotline.server.catalog import QueueIn, queue_settings
from hotline.server.live import RESTART_REASON, LiveCenter
from hotline.server.live import Tenant as LiveTenant
from hotline.server.security import Principal, hash_password
from hotline.sim.distributions import Sampler, sampler
from hotline.sim.scenario import Scenario, load_scenario, parse_clock
from hotline.sip.digest import ha1
from hotline.wfm.adherence import AdherenceStatus

log = logging.getLogger("hotline.demo")
SLUG = "demo-bank"
NAME = "演示银行 Demo Bank"
REASONS = {
    "break": ("休息", "Break"),
    "lunch": ("午餐", "Lunch"),
    "training": ("培训", "Training"),
    "meeting": ("会议", "Meeting"),
}
DISPOSITIONS = {
    "resolved": ("已解决", "Resolved"),
    "follow_up": ("需跟进", "Follow-up needed"),
    "complaint": ("投诉", "Complaint"),
    "sales_lead": ("销售机会", "Sales lead"),
}
SKILLS = {"general": ("综合业务", "General banking"), "vip": ("贵宾服务", "VIP service")}
STAFF = (("supervisor", "supervisor"), ("qa", "qa"), ("planner", "planner"), ("admin", "admin"))
CUSTOMERS = ("张伟", "王芳", "李娜", "刘洋", "陈静", "Alice Chen", "Bob Smith", "赵磊", "孙丽")


# Real phones: queues only people on SIP phones serve (the simulated agents never get their
# calls), two agents whose phones log them in, and DIDs any softphone on the LAN may call:
# the demo number meets the IVR, the direct one goes straight to the phone queue.
PHONE_QUEUE = "phone"
CARDS_QUEUE = "phone-cards"
PHONE_DID = "400"
DIRECT_DID = "401"
PHONE_AGENTS = (("phone-1", "7001"), ("phone-2", "7002"))
SUPERVISOR_PHONE = "7009"  # the demo supervisor's own phone: called to listen, coach, join
DEMO_FLOW = "hotline"
# The IVR's prompts, spoken by the TTS engine when the demo is created: (code, 中文, English)
PROMPTS = (
    ("main_menu", "咨询业务请按1，信用卡服务请按2，留言请按0。",
     "For general enquiries, press 1. For credit cards, press 2. To leave a message, press 0."),
    ("cards_menu", "信用卡挂失请按1，其他信用卡业务请按2。",
     "To report a lost or stolen card, press 1. For other card services, press 2."),
    ("invalid", "对不起，您的输入有误。", "Sorry, that is not a valid choice."),
    ("please_wait", "正在为您转接人工服务，请稍候。",
     "Please hold while we connect you to an agent."),
    ("leave_message", "请在提示音后留言，按井号键结束。",
     "Please leave a message after the tone, and press the hash key when you are done."),
    ("thanks", "谢谢，您的留言已收到。再见。", "Thank you, we have your message. Goodbye."),
    ("goodbye", "感谢您的来电，再见。", "Thank you for calling. Goodbye."),
)
# The greeting offers both languages, so its recording is the same in both: Chinese first.
WELCOME = ("您好，欢迎致电演示银行。普通话服务请按1。", "For English, please press 2.")


def demo_flow() -> dict[str, Any]:
    queue = {"announce_every": 30, "greeting": "please_wait", "first_announcement": 0}
    return {
        "start": "language",
        "nodes": {
            "language": {"type": "menu", "prompt": "welcome", "options": {"1": "zh", "2": "en"},
                         "timeout": 5, "retries": 1, "on_failure": "zh"},
            "zh": {"type": "set", "values": {"language": "zh"}, "next": "main"},
            "en": {"type": "set", "values": {"language": "en"}, "next": "main"},
            "main": {"type": "menu", "prompt": "main_menu", "invalid_prompt": "invalid",
                     "options": {"1": "general", "2": "cards", "0": "message"},
                     "on_failure": "general"},
            "cards": {"type": "menu", "prompt": "cards_menu", "invalid_prompt": "invalid",
                      "options": {"1": "lost_card", "2": "card_service"},
                      "on_failure": "card_service"},
            "general": {"type": "queue", "queue": PHONE_QUEUE, **queue},
            "lost_card": {"type": "queue", "queue": CARDS_QUEUE, "priority": 10, **queue},
            "card_service": {"type": "queue", "queue": CARDS_QUEUE, **queue},
            "message": {"type": "voicemail", "prompt": "leave_message", "mailbox": PHONE_QUEUE,
                        "max_seconds": 120, "done_prompt": "thanks"},
        },
    }
LAN = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"]


def demo_scenario() -> Scenario:
    path = resources.files("hotline") / "scenarios" / "demo-bank-live.yaml"
    with resources.as_file(path) as real:
        return load_scenario(real)


def seed(db: Session, password: str) -> tuple[Tenant, list[str], bool]:
    """Create the demo tenant on first start; returns it, the demo user names, and whether
    it was created now (the password applies only then)."""
    scenario = demo_scenario()
    agents = [(gid, g) for g in scenario.agents for gid in g.agent_ids()]
    usernames = [name for name, _ in STAFF] + [gid for gid, _ in agents]
    tenant = db.scalar(select(Tenant).where(Tenant.slug == SLUG))
    if tenant is not None:
        return tenant, usernames, False
    now = time.time()
    tenant = Tenant(
        slug=SLUG,
        name=NAME,
        settings={"service_level": scenario.service_level.model_dump(mode="json")},
        created_at=now,
    )
    db.add(tenant)
    db.flush()
    tid = tenant.id
    hashed = hash_password(password)
    queue_ids = [q.id for q in scenario.queues]
    teams = ["A", "B"]
    for name, role in STAFF:
        db.add(
            User(
                tenant_id=tid,
                username=name,
                display_name=name.title(),
                password_hash=hashed,
                role=role,
                teams=teams if role == "supervisor" else [],
                queues=queue_ids if role == "supervisor" else [],
                created_at=now,
            )
        )
    for code, (zh, en) in SKILLS.items():
        db.add(Skill(tenant_id=tid, code=code, labels={"zh-CN": zh, "en": en}))
    for code, (zh, en) in REASONS.items():
        db.add(ReasonCode(tenant_id=tid, code=code, labels={"zh-CN": zh, "en": en}))
    for code, (zh, en) in DISPOSITIONS.items():
        db.add(Disposition(tenant_id=tid, code=code, labels={"zh-CN": zh, "en": en}))
    for spec in scenario.queues:
        q = QueueIn.model_validate({**spec.model_dump(), "labels": {}})
        db.add(Queue(tenant_id=tid, code=spec.id, labels={}, settings=queue_settings(q)))
    db.flush()
    for i, (gid, group) in enumerate(agents):
        user = User(
            tenant_id=tid,
            username=gid,
            display_name=gid,
            password_hash=hashed,
            role="agent",
            teams=[],
            queues=[],
            created_at=now,
        )
        db.add(user)
        db.flush()
        db.add(
            Agent(
                tenant_id=tid,
                code=gid,
                user_id=user.id,
                display_name=gid,
                extension=str(8001 + i),
                team=teams[i % 2],
                skills=dict(group.skills),
            )
        )
    db.commit()
    return tenant, usernames, True


def ensure_phones(db: Session, tenant: Tenant, password: str, realm: str) -> bool:
    """Add the demo's phone queue, agents, SIP accounts and LAN trunk when missing (also to a
    demo created before telephony existed). True when they were created now."""
    tid = tenant.id
    if db.scalar(select(Trunk).where(Trunk.tenant_id == tid, Trunk.code == "lan")) is not None:
        return False
    now = time.time()
    tenant.settings = {**(tenant.settings or {}), "phone_login": True}
    if db.scalar(select(Skill).where(Skill.tenant_id == tid, Skill.code == "phone")) is None:
        db.add(Skill(tenant_id=tid, code="phone", labels={"zh-CN": "电话坐席", "en": "Phone"}))
    if db.scalar(select(Queue).where(Queue.tenant_id == tid, Queue.code == PHONE_QUEUE)) is None:
        spec = QueueIn.model_validate({
            "id": PHONE_QUEUE, "skills": {"phone": 1}, "wrap_up": 5, "ring_timeout": 15,
            "labels": {"zh-CN": "电话演示", "en": "Phone demo"},
        })
        db.add(Queue(tenant_id=tid, code=PHONE_QUEUE, labels=spec.labels,
                     settings=queue_settings(spec)))
    for user in db.scalars(select(User).where(User.tenant_id == tid, User.role == "supervisor")):
        if PHONE_QUEUE not in (user.queues or []):
            user.queues = [*(user.queues or []), PHONE_QUEUE]
    hashed = hash_password(password)
    for code, extension in PHONE_AGENTS:
        if db.scalar(select(Agent).where(Agent.tenant_id == tid, Agent.code == code)) is None:
            user = User(tenant_id=tid, username=code, display_name=code, password_hash=hashed,
                        role="agent", teams=[], queues=[], created_at=now)
            db.add(user)
            db.flush()
            db.add(Agent(tenant_id=tid, code=code, user_id=user.id, display_name=code,
                         extension=extension, team="A", skills={"phone": 1}))
            db.flush()
        db.add(PhoneAccount(
            tenant_id=tid, agent=code, username=extension,
            ha1_md5=ha1("MD5", extension, realm, password),
            ha1_sha256=ha1("SHA-256", extension, realm, password),
            created_at=now, updated_at=now,
        ))
    db.add(Trunk(tenant_id=tid, code="lan", name="Softphones on the local network",
                 allow=LAN, active=True, created_at=now))
    db.commit()
    return True


def ensure_supervisor_phone(db: Session, tenant: Tenant, password: str, realm: str) -> bool:
    """Give the demo's supervisor a phone of their own, when missing (True: created now)."""
    if db.scalar(select(PhoneAccount).where(PhoneAccount.username == SUPERVISOR_PHONE)):
        return False
    if db.scalar(select(User).where(User.tenant_id == tenant.id,
                                    User.username == "supervisor")) is None:
        return False
    now = time.time()
    db.add(PhoneAccount(
        tenant_id=tenant.id, user="supervisor", username=SUPERVISOR_PHONE,
        ha1_md5=ha1("MD5", SUPERVISOR_PHONE, realm, password),
        ha1_sha256=ha1("SHA-256", SUPERVISOR_PHONE, realm, password),
        created_at=now, updated_at=now,
    ))
    db.commit()
    return True


def ensure_ivr(db: Session, tenant: Tenant) -> bool:
    """Add the demo's IVR (prompts in both languages, a second phone queue, the flow) and
    route the demo number to it, when missing. True when created now. Speaking the prompts
    takes the TTS engine a few seconds, once."""
    from hotline.media import tts

    tid = tenant.id
    route = db.scalar(select(InboundRoute).where(InboundRoute.did == PHONE_DID))
    if ivr_store.latest_flow(db, tid, DEMO_FLOW) is not None:
        return False  # made before: what an admin has changed since stays as it is
    if db.scalar(select(Skill).where(Skill.tenant_id == tid, Skill.code == CARDS_QUEUE)) is None:
        db.add(Skill(tenant_id=tid, code=CARDS_QUEUE,
                     labels={"zh-CN": "信用卡", "en": "Credit cards"}))
    if db.scalar(select(Queue).where(Queue.tenant_id == tid, Queue.code == CARDS_QUEUE)) is None:
        spec = QueueIn.model_validate({
            "id": CARDS_QUEUE, "skills": {CARDS_QUEUE: 1}, "wrap_up": 5, "ring_timeout": 15,
            "labels": {"zh-CN": "信用卡电话", "en": "Card phone line"},
        })
        db.add(Queue(tenant_id=tid, code=CARDS_QUEUE, labels=spec.labels,
                     settings=queue_settings(spec)))
    second = db.scalar(select(Agent).where(Agent.tenant_id == tid,
                                           Agent.code == PHONE_AGENTS[1][0]))
    if second is not None and CARDS_QUEUE not in (second.skills or {}):
        second.skills = {**(second.skills or {}), CARDS_QUEUE: 1}
    for user in db.scalars(select(User).where(User.tenant_id == tid, User.role == "supervisor")):
        if CARDS_QUEUE not in (user.queues or []):
            user.queues = [*(user.queues or []), CARDS_QUEUE]
    db.flush()
    actor = "demo"
    for code, zh, en in PROMPTS:
        ivr_store.save_prompt(db, tid, code, {"zh": zh, "en": en}, actor)
    ivr_store.save_prompt(db, tid, "welcome", {"zh": WELCOME[0], "en": WELCOME[1]}, actor)
    both = ivr_store.pcm_bytes(np.concatenate([tts.render(WELCOME[0], "zh"),
                                               tts.render(WELCOME[1], "en")]))
    for language in ("zh", "en"):
        ivr_store.store_upload(db, tid, "welcome", language, both, actor, " ".join(WELCOME))
    ivr_store.save_flow(db, tid, DEMO_FLOW, demo_flow(), actor,
                        {"zh-CN": "演示热线", "en": "Demo hotline"})
    if db.scalar(select(InboundRoute).where(InboundRoute.did == DIRECT_DID)) is None:
        db.add(InboundRoute(tenant_id=tid, did=DIRECT_DID, queue=PHONE_QUEUE,
                            labels={"zh-CN": "电话队列直拨", "en": "Phone queue, direct"},
                            created_at=time.time()))
    if route is None:
        db.add(InboundRoute(tenant_id=tid, did=PHONE_DID, flow=DEMO_FLOW, language="zh",
                            labels={"zh-CN": "演示热线", "en": "Demo hotline"},
                            created_at=time.time()))
    else:
        route.queue, route.flow, route.language = None, DEMO_FLOW, "zh"
    db.commit()
    return True


# ---------------------------------------------------------------------- the demo's roster
MINUTE = 60.0
CYCLE = 8 * 3600.0  # each agent's pattern: two 15-minute breaks and a 30-minute meal
BREAK, MEAL = 15 * MINUTE, 30 * MINUTE
ROSTER_DAYS = 2  # today and tomorrow
ROSTER_CHECK_EVERY = 3600.0  # so a demo running for days is always rostered
# What a simulated agent does during a scheduled activity off the phones (demo reasons that
# the default adherence rules accept for it).
AWAY_REASONS = {"break": "break", "meal": "lunch", "meeting": "meeting", "training": "training"}
LATE_SHARE = 0.2  # of times off the phones end late, by LATE_BY seconds
LATE_BY = (1 * MINUTE, 8 * MINUTE)
FOLLOW_EVERY = 1.0  # seconds between looks at the roster: how late an agent starts a break


def stagger_order(groups: Sequence[Sequence[str]]) -> list[str]:
    """The agents of all groups interleaved, each group evenly: spaced along the cycle in
    this order, the 4 seniors (the only VIP agents) never break together."""
    keyed = [((j + 0.5) / len(group), g, agent)
             for g, group in enumerate(groups) for j, agent in enumerate(group)]
    return [agent for *_, agent in sorted(keyed)]


def _minutes(seconds: float) -> float:
    return round(seconds / MINUTE) * MINUTE


def off_phone_offsets(index: int, count: int) -> list[tuple[float, float, str]]:
    """(start from a cycle's start, length, activity) of agent ``index`` of ``count``.

    Agents' first breaks are ``CYCLE / count`` apart; with the meal 5/8 and the second break
    3/8 of that spacing out of step with them (about a third and two thirds of the cycle on),
    the three kinds overlap least: with 20 agents at most 3 (15 %) are off at once."""
    spacing = CYCLE / count
    first = index * spacing
    meal = first + (round(count / 3 - 0.625) + 0.625) * spacing
    second = first + (round(2 * count / 3 - 0.375) + 0.375) * spacing
    return [(_minutes(first), BREAK, "break"), (_minutes(meal), MEAL, "meal"),
            (_minutes(second), BREAK, "break")]


def demo_roster(agents: Sequence[str], start: float, end: float
                ) -> list[tuple[str, float, float, str]]:
    """The round-the-clock roster of ``[start, end)``: (agent, start, end, activity), every
    activity starting in the range, ``work`` between the times off the phones.

    The pattern repeats every ``CYCLE`` from the Unix epoch, so consecutive days join up: a
    meal across midnight belongs to the day it starts in, and the next day's work begins
    when it ends."""
    rows: list[tuple[str, float, float, str]] = []
    cycles = range(math.floor(start / CYCLE) - 2, math.ceil(end / CYCLE) + 1)
    for i, agent in enumerate(agents):
        off = sorted((k * CYCLE + at, k * CYCLE + at + length, kind)
                     for k in cycles for at, length, kind in off_phone_offsets(i, len(agents)))
        cursor = start
        for s, e, kind in off:
            if s >= end:
                break
            if e <= cursor:
                continue
            if s < start:  # began the day before
                cursor = e
                continue
            if s > cursor:
                rows.append((agent, cursor, s, "work"))
            rows.append((agent, s, e, kind))
            cursor = e
        if cursor < end:
            rows.append((agent, cursor, end, "work"))
    return rows


def local_days(now: float, tz: tzinfo | None, count: int) -> list[tuple[float, float]]:
    """``count`` days from today as ``[midnight, next midnight)`` in Unix seconds, in the
    tenant's time zone (the server's when it has none)."""
    today = (datetime.fromtimestamp(now, tz) if tz else datetime.fromtimestamp(now)).date()
    midnights = [datetime.combine(today + timedelta(days=k), clock_time(), tzinfo=tz).timestamp()
                 for k in range(count + 1)]
    return list(pairwise(midnights))


def _local_iso(t: float, tz: tzinfo | None) -> str:
    moment = datetime.fromtimestamp(t, tz) if tz else datetime.fromtimestamp(t).astimezone()
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Away:
    """A simulated agent's own time off the phones: for a scheduled ``kind`` ending at
    ``until``, with ``reason``; it comes back at ``back`` (after ``until`` when late)."""

    kind: str
    reason: str
    until: float
    back: float


class DemoTraffic:
    """Simulated callers and agents for one tenant, driven by the real clock."""

    def __init__(self, center: LiveCenter, tenant_id: int, seed: int = 7,
                 adherence: LiveAdherence | None = None) -> None:
        self.center = center
        self.tenant_id = tenant_id
        self.scenario = demo_scenario()
        self.rng = Random(seed)
        self.adherence = adherence  # the roster the agents follow (None: they never break)
        self.late = Random(seed + 1)  # its own, so traffic does not change who comes back late
        self.order = stagger_order([g.agent_ids() for g in self.scenario.agents])
        self.away: dict[str, Away] = {}
        self.taken: dict[str, float] = {}  # agent -> end of the scheduled time off it took
        self.robots: set[str] = set()
        self.delays: dict[str, Sampler] = {}
        self.talk: dict[str, Sampler] = {}
        self.patience: dict[str, Sampler | None] = {}
        self.calls: dict[str, str] = {}  # simulated call -> queue
        self._tasks: set[asyncio.Task[Any]] = set()
        for group in self.scenario.agents:
            delay = sampler(group.answer_delay, self.rng) if group.answer_delay else None
            for gid in group.agent_ids():
                self.robots.add(gid)
                if delay is not None:
                    self.delays[gid] = delay
        for spec in self.scenario.traffic:
            self.talk[spec.queue] = sampler(spec.handle_time, self.rng)
            self.patience[spec.queue] = sampler(spec.patience, self.rng) if spec.patience else None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.center.listeners.append(self.on_batch)
        tenant = self.center.tenants[self.tenant_id]
        for agent in sorted(self.robots):
            if not tenant.acd.has_agent(agent):
                continue
            state, reason = tenant.acd.agent_state(agent)
            if state == LOGGED_OUT:
                await self._do(lambda t, now, a=agent: t.acd.login(now, a, ready=True))
            elif state == NOT_READY and reason == RESTART_REASON:  # back at their desks
                await self._do(lambda t, now, a=agent: t.acd.set_ready(now, a))
        for spec in self.scenario.traffic:
            self._spawn(self._arrivals(spec.queue, spec.calls_per_hour, spec.profile))
        if self.adherence is not None:
            await self.publish_roster()
            self._spawn(self._keep_rostered())
            self._spawn(self._follow_roster())

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.center.listeners.remove(self.on_batch)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):  # not left on a break through the next start
            await self._do(self._all_back)

    def release(self, principal: Principal) -> None:
        """A person logged in as a demo agent: the simulation lets go of it."""
        if principal.tenant_id == self.tenant_id and principal.agent in self.robots:
            self.robots.discard(principal.agent)
            self.away.pop(principal.agent, None)
            log.info("demo agent %s is now driven by a person", principal.agent)

    # ------------------------------------------------------------------ roster
    async def publish_roster(self) -> int:
        """Publish the demo's roster for each of today and tomorrow that has none (a day a
        planner published stays theirs), as a planner would; returns the days published."""
        if self.adherence is None:
            return 0
        live = self.adherence
        tenant = self.center.tenants[self.tenant_id]
        agents = [a for a in self.order if tenant.acd.has_agent(a)]
        published = 0
        for t0, t1 in local_days(self.center.clock(), tenant.tz, ROSTER_DAYS):

            def rostered(a: float = t0, b: float = t1) -> bool:
                with live.sessions() as db:
                    return db.scalar(select(RosterActivity.id).where(
                        RosterActivity.tenant_id == self.tenant_id,
                        RosterActivity.starts_at >= a,
                        RosterActivity.starts_at < b,
                    ).limit(1)) is not None

            if not agents or await asyncio.to_thread(rostered):
                continue
            rows = [("demo", *row) for row in demo_roster(agents, t0, t1)]
            day = "/".join(_local_iso(t, tenant.tz) for t in (t0, t1))  # as the API audits it
            try:
                await live.publish_roster(tenant, t0, t1, rows, (self.tenant_id, "demo"), day)
            except RosterOverlap as err:  # a planner's roster runs into the day: theirs wins
                log.warning("demo roster for %s not published: %s", day, err)
                continue
            published += 1
            log.info("demo roster published for %s (%d agents)", day, len(agents))
        return published

    async def _keep_rostered(self) -> None:
        while True:
            await asyncio.sleep(ROSTER_CHECK_EVERY)
            try:
                await self.publish_roster()
            except Exception:  # the database may be briefly away: try again next time
                log.exception("demo roster not published")

    async def _follow_roster(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            try:
                await self._do(self._follow)
            except Exception:  # e.g. the center failing: the traffic's tasks go on too
                log.exception("demo agents could not follow the roster")

    def _follow(self, t: LiveTenant, now: float) -> None:
        """Every simulated agent does what the live adherence engine's roster says."""
        assert self.adherence is not None
        engine = self.adherence.engine(t)
        for agent in sorted(self.robots):
            if t.acd.has_agent(agent):
                with contextlib.suppress(ACDError):  # the others still follow theirs
                    self._follow_one(t, engine.status(agent, now), now)

    def _follow_one(self, t: LiveTenant, status: AdherenceStatus, now: float) -> None:
        """Off the phones for a scheduled break, meal, meeting or training once free (a call
        is finished first), back when it ends (some late); an agent someone else set not
        ready or logged out is theirs to change."""
        acd, agent = t.acd, status.agent
        state, reason = acd.agent_state(agent)
        away = self.away.get(agent)
        if away is not None:
            if state == NOT_READY and reason == away.reason:
                republished = status.activity != away.kind and now < away.until
                if now >= away.back or republished:
                    acd.set_ready(now, agent)
                    del self.away[agent]
            elif not (state in (BUSY, WRAP_UP) and acd.agent_pending(agent) == NOT_READY):
                del self.away[agent]  # someone else changed its state meanwhile
            return
        want = AWAY_REASONS.get(status.activity) if status.rostered else None
        end = status.activity_end
        if want is None or end is None or self.taken.get(agent) == end:
            return
        if state == NOT_READY and reason == want:
            pass  # already (it was when the server restarted): back when the time is up
        elif state in (READY, BUSY, WRAP_UP) and acd.agent_pending(agent) is None:
            acd.set_not_ready(now, agent, want)  # on a call: from the end of its wrap-up
        else:
            return  # logged out, ringing, or already asked to change after its call
        late = self.late.uniform(*LATE_BY) if self.late.random() < LATE_SHARE else 0.0
        self.taken[agent] = end
        self.away[agent] = Away(status.activity, want, end, end + late)

    def _all_back(self, t: LiveTenant, now: float) -> None:
        for agent, away in list(self.away.items()):
            if t.acd.agent_state(agent) == (NOT_READY, away.reason):
                t.acd.set_ready(now, agent)
        self.away.clear()

    # ------------------------------------------------------------------ simulation
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _do(self, op: Any) -> Any:
        try:
            return await self.center.submit(self.tenant_id, op)
        except (ACDError, KeyError):
            return None  # the call or agent moved on meanwhile: nothing to do

    def _rate(self, calls_per_hour: float | None, profile: dict[str, float] | None) -> float:
        if profile is None:
            return float(calls_per_hour or 0.0)
        local = datetime.now()
        now_s = local.hour * 3600 + local.minute * 60 + local.second
        week = parse_clock(next(iter(profile)))[0] is not None
        if week:
            now_s += local.weekday() * 86400
        best_key, best_t = None, -1.0
        latest_key, latest_t = None, -1.0
        for key in profile:
            day, sec = parse_clock(key)
            t = sec + (day or 0) * 86400
            if t <= now_s and t > best_t:
                best_key, best_t = key, t
            if t > latest_t:
                latest_key, latest_t = key, t
        return float(profile[best_key or latest_key])  # type: ignore[index]

    async def _arrivals(self, queue: str, rate: float | None, profile: Any) -> None:
        while True:
            per_hour = self._rate(rate, profile)
            if per_hour <= 0:
                await asyncio.sleep(60)
                continue
            await asyncio.sleep(self.rng.expovariate(per_hour / 3600.0))
            call_id = self.center.new_call_id()
            number = f"1{self.rng.randrange(3, 9)}{self.rng.randrange(10**8, 10**9)}"
            vip = queue == "vip"
            data = {
                "customer": self.rng.choice(CUSTOMERS),
                "vip": vip,
                "account": f"6222{self.rng.randrange(10**11, 10**12)}",
            }
            self.calls[call_id] = queue
            await self._do(
                lambda t, now, c=call_id, n=number, d=data: t.acd.call_arrived(
                    now, c, queue, data=d, number=n
                )
            )
            patience = self.patience.get(queue)
            if patience is not None:
                self._spawn(self._give_up(call_id, patience()))

    async def _give_up(self, call_id: str, after: float) -> None:
        await asyncio.sleep(after)

        def op(t: LiveTenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is not None and info["state"] in ("waiting", "ringing"):
                t.acd.abandon(now, call_id)

        await self._do(op)

    async def _answer(self, call_id: str, agent: str, after: float) -> None:
        await asyncio.sleep(after)
        if agent not in self.robots:
            return

        def op(t: LiveTenant, now: float) -> None:
            if t.acd.is_ringing(call_id, agent):
                t.acd.answer(now, call_id, agent)

        await self._do(op)

    async def _hang_up(self, call_id: str, after: float) -> None:
        await asyncio.sleep(after)

        def op(t: LiveTenant, now: float) -> None:
            info = t.acd.call_info(call_id)
            if info is not None and info["state"] == "connected":
                t.acd.hangup(now, call_id)

        await self._do(op)
        self.calls.pop(call_id, None)

    async def _callback(self, call_id: str) -> None:
        await asyncio.sleep(3.0)
        await self._do(lambda t, now: t.acd.callback_answered(now, call_id))

    def on_batch(self, tenant: LiveTenant, events: list[Event], commands: list[Command]) -> None:
        if tenant.id != self.tenant_id:
            return
        for cmd in commands:
            if type(cmd) is Offer and cmd.agent in self.robots:
                delay = self.delays.get(cmd.agent)
                self._spawn(self._answer(cmd.call, cmd.agent, delay() if delay else 2.0))
            elif type(cmd) is DialCallback:
                self._spawn(self._callback(cmd.call))
        for e in events:
            if type(e) is CallTransferred:
                queue = self.calls.pop(e.call, None)  # type: ignore[attr-defined]
                if queue is not None:
                    self.calls[e.to_call] = queue  # type: ignore[attr-defined]
            elif type(e) is CallAnswered:
                queue = self.calls.get(e.call)  # type: ignore[attr-defined]
                if queue is not None:
                    talk = self.talk.get(queue) or self.talk[next(iter(self.talk))]
                    self._spawn(self._hang_up(e.call, talk()))  # type: ignore[attr-defined]
