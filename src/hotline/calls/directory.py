"""Who may talk SIP to Hotline and what callers meet, read from the database: phone accounts,
trunks, DID routes, IVR flows, prompts, business hours and emergency announcements.

Lookups happen on every REGISTER and INVITE, so the directory is a few dicts rebuilt whenever
the API changes one of those tables (``Switch.reload``), never a query per message. Prompt
audio is read again only when a prompt changed.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from hotline.db.schema import (
    BusinessHours,
    EmergencyAnnouncement,
    InboundRoute,
    IvrFlow,
    PhoneAccount,
    Prompt,
    Queue,
    Tenant,
    Trunk,
)
from hotline.ivr.flow import FlowDefinition, FlowError, QueueNode, parse_flow
from hotline.ivr.hours import Calendar

log = logging.getLogger("hotline.calls")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Account:
    """Something that authenticates with digest: an agent's phone or a trunk."""

    username: str
    tenant_id: int
    ha1: dict[str, str]  # algorithm -> HA1
    agent: str | None = None  # agents' phones
    trunk: str | None = None  # trunks
    user: str | None = None  # supervisors' phones


@dataclass(frozen=True, slots=True)
class TrunkEntry:
    tenant_id: int
    code: str
    networks: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class OutboundTrunk:
    """Where a tenant's calls out go: ``host``:``port`` (UDP), presenting ``caller_id``."""

    tenant_id: int
    code: str
    host: str
    port: int
    caller_id: str | None


def split_hostport(value: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (default port 5060)."""
    value = value.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "x" if rest or not bracket else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    if not host or (port and not port.isdigit()) or not 0 < int(port or 5060) < 65536:
        raise ValueError(f"not a host[:port]: {value!r}")
    return host, int(port or 5060)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a dialled number's calls go: a flow (``version`` of ``flow``), or straight to a
    queue (run as a one-node flow, so every call takes the same path)."""

    tenant_id: int
    flow: FlowDefinition
    code: str | None  # the flow's code; None for a queue route
    version: int
    language: str


def queue_flow(queue: str) -> FlowDefinition:
    return FlowDefinition(start="queue", nodes={
        "queue": QueueNode(type="queue", queue=queue, announce_every=None)})


PromptKey = tuple[int, str, str]  # tenant, code, language


@dataclass
class Directory:
    accounts: dict[str, Account] = field(default_factory=dict)
    phones: dict[tuple[int, str], str] = field(default_factory=dict)  # (tenant, agent) -> user
    user_phones: dict[tuple[int, str], str] = field(default_factory=dict)  # (tenant, user) ->
    trunks: list[TrunkEntry] = field(default_factory=list)
    outbound: dict[int, list[OutboundTrunk]] = field(default_factory=dict)  # tenant -> trunks
    routes: dict[str, Route] = field(default_factory=dict)  # DID -> route
    calendars: dict[tuple[int, str], Calendar] = field(default_factory=dict)
    prompts: dict[PromptKey, npt.NDArray[np.int16]] = field(default_factory=dict)
    prompt_stamps: dict[PromptKey, float] = field(default_factory=dict)
    notices: dict[tuple[int, str, str], str] = field(default_factory=dict)  # emergency prompts
    recording: dict[tuple[int, str], str] = field(default_factory=dict)  # queue -> policy
    queues: set[tuple[int, str]] = field(default_factory=set)  # (tenant, queue code)
    tenant_slugs: dict[int, str] = field(default_factory=dict)
    trusted_hosts: set[str] = field(default_factory=set)  # single-address allow-list entries
    phone_login: set[int] = field(default_factory=set)  # tenants whose phones log agents in

    @classmethod
    def load(cls, db: Session, previous: Directory | None = None) -> Directory:
        d = cls()
        for tenant in db.scalars(select(Tenant)):
            d.tenant_slugs[tenant.id] = tenant.slug
            if (tenant.settings or {}).get("phone_login"):
                d.phone_login.add(tenant.id)
        for p in db.scalars(select(PhoneAccount)):
            d.accounts[p.username] = Account(
                p.username, p.tenant_id, {"MD5": p.ha1_md5, "SHA-256": p.ha1_sha256},
                agent=p.agent, user=p.user,
            )
            if p.agent is not None:
                d.phones[(p.tenant_id, p.agent)] = p.username
            elif p.user is not None:
                d.user_phones[(p.tenant_id, p.user)] = p.username
        for t in db.scalars(select(Trunk).where(Trunk.active.is_(True))):
            nets = tuple(ipaddress.ip_network(n, strict=False) for n in t.allow or ())
            if nets:
                d.trunks.append(TrunkEntry(t.tenant_id, t.code, nets))
                for net in nets:
                    if net.num_addresses == 1:
                        d.trusted_hosts.add(str(net.network_address))
            if t.outbound:
                host, port = split_hostport(t.outbound)
                d.outbound.setdefault(t.tenant_id, []).append(
                    OutboundTrunk(t.tenant_id, t.code, host, port, t.caller_id))
            if t.username and t.ha1_md5 and t.ha1_sha256:
                d.accounts[t.username] = Account(
                    t.username, t.tenant_id, {"MD5": t.ha1_md5, "SHA-256": t.ha1_sha256},
                    trunk=t.code,
                )
        d._load_ivr(db, previous)
        return d

    def _load_ivr(self, db: Session, previous: Directory | None) -> None:
        latest = (select(IvrFlow.tenant_id, IvrFlow.code, func.max(IvrFlow.version).label("v"))
                  .group_by(IvrFlow.tenant_id, IvrFlow.code).subquery())
        flows: dict[tuple[int, str], tuple[int, FlowDefinition]] = {}
        for row in db.scalars(select(IvrFlow).join(latest, (IvrFlow.tenant_id == latest.c.tenant_id)
                                                  & (IvrFlow.code == latest.c.code)
                                                  & (IvrFlow.version == latest.c.v))):
            try:
                flows[(row.tenant_id, row.code)] = (row.version, parse_flow(row.definition))
            except FlowError as err:  # stored before a rule tightened: refuse its calls
                log.error("IVR flow %s (tenant %s) is invalid: %s", row.code, row.tenant_id, err)
        for r in db.scalars(select(InboundRoute)):
            if r.flow is not None:
                found = flows.get((r.tenant_id, r.flow))
                if found is not None:
                    self.routes[r.did] = Route(r.tenant_id, found[1], r.flow, found[0],
                                               r.language)
            elif r.queue is not None:
                self.routes[r.did] = Route(r.tenant_id, queue_flow(r.queue), None, 0, r.language)
        for tid, code, settings in db.execute(select(Queue.tenant_id, Queue.code,
                                                     Queue.settings)):
            self.queues.add((tid, code))
            policy = (settings or {}).get("recording", "always")
            if policy != "always":
                self.recording[(tid, code)] = policy
        for h in db.scalars(select(BusinessHours)):
            try:
                self.calendars[(h.tenant_id, h.code)] = Calendar.from_config(
                    h.timezone, h.weekly or {}, h.holidays or [])
            except (ValueError, KeyError) as err:
                log.error("business hours %s (tenant %s) unusable: %s", h.code, h.tenant_id, err)
        stamps = {(t, c, lang): at for t, c, lang, at in db.execute(
            select(Prompt.tenant_id, Prompt.code, Prompt.language, Prompt.updated_at))}
        old = previous.prompts if previous is not None else {}
        old_stamps = previous.prompt_stamps if previous is not None else {}
        stale = []
        for key, at in stamps.items():
            if old_stamps.get(key) == at and key in old:
                self.prompts[key] = old[key]
            else:
                stale.append(key)
        if stale:
            query = select(Prompt.tenant_id, Prompt.code, Prompt.language, Prompt.audio)
            if len(stale) < len(stamps):
                query = query.where(tuple_(Prompt.tenant_id, Prompt.code, Prompt.language)
                                    .in_(stale))
            for t, c, lang, audio in db.execute(query):
                self.prompts[(t, c, lang)] = np.frombuffer(audio, dtype="<i2").astype(np.int16)
        self.prompt_stamps = stamps
        for e in db.scalars(select(EmergencyAnnouncement)
                            .where(EmergencyAnnouncement.enabled.is_(True))):
            self.notices[(e.tenant_id, e.scope, e.target)] = e.prompt

    def trunk_for(self, host: str, tenant_id: int | None) -> TrunkEntry | None:
        """The tenant's trunk whose allow-list has ``host`` (the most specific network wins).
        Only the tenant that owns the dialled number is asked: another tenant's allow-list
        must not claim its calls."""
        if tenant_id is None:
            return None
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return None
        best: tuple[int, TrunkEntry] | None = None
        for trunk in self.trunks:
            if trunk.tenant_id != tenant_id:
                continue
            for net in trunk.networks:
                if (addr.version == net.version and addr in net
                        and (best is None or net.prefixlen > best[0])):
                    best = (net.prefixlen, trunk)
        return best[1] if best else None

    def outbound_trunk(self, tenant_id: int, code: str | None = None) -> OutboundTrunk | None:
        """The named trunk, or the tenant's first (by code) that takes calls out."""
        trunks = sorted(self.outbound.get(tenant_id, ()), key=lambda t: t.code)
        for trunk in trunks:
            if code is None or trunk.code == code:
                return trunk
        return None

    def ha1(self, username: str, algorithm: str) -> str | None:
        account = self.accounts.get(username)
        return None if account is None else account.ha1.get(algorithm)
