"""The database schema: configuration, users, the append-only event record and its projections.

Every table but ``tenants`` carries ``tenant_id``; every query of the API filters on it. The
``events`` table is the record; ``cdrs`` and ``agent_presence`` are projections written in the
same transaction as the events they derive from, so they never disagree with it.
Schema changes go through Alembic migrations (``hotline/db/migrations``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username", name="uq_users_tenant_username"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    teams: Mapped[list[Any]] = mapped_column(default=list)  # teams a supervisor leads
    queues: Mapped[list[Any]] = mapped_column(default=list)  # queues a supervisor watches
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class Credential(Base):
    """Bearer tokens (from a log-in, with expiry) and API keys, stored only as SHA-256."""

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "token" | "api_key"
    name: Mapped[str] = mapped_column(String(100), default="")
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Skill(Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_skills_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Queue(Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_queues_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # every ACD option


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_agents_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    display_name: Mapped[str] = mapped_column(String(200), default="")
    extension: Mapped[str | None] = mapped_column(String(32), nullable=True)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    wrap_up: Mapped[float | None] = mapped_column(Float, nullable=True)
    auto_ready: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class ReasonCode(Base):
    """Not-ready reasons (break, lunch, training, ...)."""

    __tablename__ = "reason_codes"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_reason_codes_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    productive: Mapped[bool] = mapped_column(Boolean, default=False)
    max_duration: Mapped[float | None] = mapped_column(Float, nullable=True)


class Disposition(Base):
    """Wrap-up outcomes an agent picks when finishing a call."""

    __tablename__ = "dispositions"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_dispositions_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BusinessHours(Base):
    __tablename__ = "business_hours"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_business_hours_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64))
    weekly: Mapped[dict[str, Any]] = mapped_column(default=dict)  # "mon" -> [["08:00","20:00"]]
    holidays: Mapped[list[Any]] = mapped_column(default=list)


class PhoneAccount(Base):
    """A SIP phone log-in: an agent's, or a user's (a supervisor's phone, called to listen to
    or join calls). A phone registers with only a username and password, so the username is
    unique across all tenants; it names the tenant. Only the digest HA1s are kept (RFC 7616):
    they are what a registrar checks, and they work for no other realm."""

    __tablename__ = "phone_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "agent", name="uq_phone_accounts_tenant_agent"),
        UniqueConstraint("tenant_id", "user", name="uq_phone_accounts_tenant_user"),
        CheckConstraint('(agent IS NULL) <> ("user" IS NULL)',
                        name="ck_phone_accounts_agent_or_user"),
        # Deleting the user deletes its phone account.
        ForeignKeyConstraint(
            ["tenant_id", "user"],
            ["users.tenant_id", "users.username"],
            name="fk_phone_accounts_user_users",
            ondelete="CASCADE",
        ),
        # Deleting the agent deletes its phone account.
        ForeignKeyConstraint(
            ["tenant_id", "agent"],
            ["agents.tenant_id", "agents.code"],
            name="fk_phone_accounts_agent_agents",
            ondelete="CASCADE",
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a user's username
    username: Mapped[str] = mapped_column(String(64), unique=True)
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Trunk(Base):
    """A carrier or PBX that sends calls, known by its source addresses and/or digest
    credentials (the username, when set, is unique across all tenants, like a phone's)."""

    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_trunks_tenant_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    allow: Mapped[list[Any]] = mapped_column(default=list)  # CIDR strings, normalised
    username: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    ha1_md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ha1_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    # Calls out (click-to-call, callbacks, transfers to outside numbers) are sent to
    # ``outbound`` (host[:port]) presenting ``caller_id``; a trunk without it only brings calls.
    outbound: Mapped[str | None] = mapped_column(String(255), nullable=True)
    caller_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class InboundRoute(Base):
    """A dialled number (DID) and where its calls go: a queue, or an IVR flow (its latest
    version). The DID alone picks the tenant, so it is unique across all tenants.
    ``language`` is the one the call starts in, before the caller picks one."""

    __tablename__ = "inbound_routes"
    __table_args__ = (
        CheckConstraint(
            "(queue IS NULL) <> (flow IS NULL)", name="ck_inbound_routes_queue_or_flow"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    did: Mapped[str] = mapped_column(String(32), unique=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flow: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class IvrFlow(Base):
    """One saved version of an IVR flow (``definition``: the FlowDefinition as JSON). Versions
    are only ever added, so a call keeps the version it started with and any older one can be
    restored; they go only when the whole flow is deleted."""

    __tablename__ = "ivr_flows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", "version", name="uq_ivr_flows_tenant_code_version"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column()
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))


class Prompt(Base):
    """A prompt in one language: 16-bit little-endian mono PCM at 8 kHz, raw samples (what the
    media engine plays, ready to encode). Kept in the database with the rest of the
    configuration, so backups and several servers on one PostgreSQL have it too.

    ``source`` is "tts" (``text`` spoken by ``engine``) or "upload" (``text``: a transcript).
    The labels are the prompt's, the same on each language's row."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", "language", name="uq_prompts_tenant_code_language"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(8))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    audio: Mapped[bytes] = mapped_column(LargeBinary)
    engine: Mapped[str | None] = mapped_column(String(200), nullable=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))


class EmergencyAnnouncement(Base):
    """A prompt played to every caller of a number (scope "did") or of a queue (scope
    "queue", target: the queue's code) while it is enabled: a storm, an outage."""

    __tablename__ = "emergency_announcements"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "scope", "target", name="uq_emergency_announcements_tenant_scope_target"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_ts", "tenant_id", "ts"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    ts: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Notice(Base):
    """A supervisor's message to agents (all, or some teams), shown on their desktops until it
    expires or is withdrawn."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_tenant_expires", "tenant_id", "expires_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    teams: Mapped[list[Any]] = mapped_column(default=list)  # empty: every agent
    level: Mapped[str] = mapped_column(String(8), default="info")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class RosterActivity(Base):
    """A published roster: what each agent is scheduled to do when (``kind`` one of
    ``hotline.wfm.activities.ACTIVITY_KINDS``); adherence compares live states against it."""

    __tablename__ = "roster_activities"
    __table_args__ = (
        Index("ix_roster_tenant_starts", "tenant_id", "starts_at"),
        Index("ix_roster_tenant_agent_starts", "tenant_id", "agent", "starts_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    agent: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[float] = mapped_column(Float)
    published_by: Mapped[str] = mapped_column(String(64))


VOICEMAIL_WHERE = "type = 'voicemail_left'"  # queries must say it literally to use the index


class StoredEvent(Base):
    """The record: one row per event, ``seq`` strictly increasing per tenant."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq", name="uq_events_tenant_seq"),
        Index("ix_events_tenant_ts", "tenant_id", "ts"),
        Index("ix_events_tenant_call", "tenant_id", "call_id"),
        # Voicemails are listed from the events; a partial index costs other events nothing.
        Index(
            "ix_events_tenant_voicemails",
            "tenant_id",
            "ts",
            sqlite_where=text(VOICEMAIL_WHERE),
            postgresql_where=text(VOICEMAIL_WHERE),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[float] = mapped_column(Float)
    type: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queue_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[str] = mapped_column(Text)  # the event's JSON


class CallRecord(Base):
    """Call detail record: one row per call, opened on arrival and closed when it ends."""

    __tablename__ = "cdrs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id", name="uq_cdrs_tenant_call"),
        Index("ix_cdrs_tenant_arrived", "tenant_id", "arrived_at"),
        Index("ix_cdrs_tenant_queue", "tenant_id", "final_queue", "arrived_at"),
        Index("ix_cdrs_tenant_agent", "tenant_id", "agent", "arrived_at"),
        Index("ix_cdrs_tenant_outcome", "tenant_id", "outcome"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    call_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8), default="inbound", server_default="inbound")
    queue: Mapped[str] = mapped_column(String(64))
    final_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    caller: Mapped[dict[str, Any]] = mapped_column(default=dict)
    arrived_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    agent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wait: Mapped[float | None] = mapped_column(Float, nullable=True)
    talk: Mapped[float | None] = mapped_column(Float, nullable=True)
    hold: Mapped[float | None] = mapped_column(Float, nullable=True)
    wrap: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cause: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    transferred_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recording: Mapped[str | None] = mapped_column(String(255), nullable=True)  # under recordings/


class AgentPresence(Base):
    """Each agent's last state, kept with the events so a restart can restore it."""

    __tablename__ = "agent_presence"
    tenant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    since: Mapped[float] = mapped_column(Float)
