"""Tenant configuration as stored, and as the engine needs it.

The API's input models reuse the simulator's validated queue model, so a queue defined in a
scenario file and one created through the API accept exactly the same options.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from hotline.acd.config import AgentConfig, QueueConfig
from hotline.cms.metrics import ServiceLevelConfig
from hotline.db.schema import Agent, Disposition, Queue, ReasonCode, Tenant, User
from hotline.server.live import TenantSetup
from hotline.server.security import PLATFORM, ROLES, generate_password, hash_password
from hotline.sim.scenario import Duration, Level, QueueSpec, ServiceLevelSpec
from hotline.wfm.adherence import AdherenceError, AdherenceRules

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Labels = dict[Literal["zh-CN", "en"], Annotated[str, Field(max_length=200)]]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def check_text(value: Any, path: str = "") -> None:
    """Every string must be storable: JSON may smuggle in lone surrogates (``"\\ud800"``)
    that are not Unicode text and that no database would accept."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{path or 'text'}: not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path)
            check_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_text(item, f"{path}.{i}" if path else str(i))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        check_text(data)
        return data


class AdherenceSettings(Model):
    """How a tenant judges adherence: after how long out of adherence an agent is *severe*,
    and which states adhere to which activity (tokens ``state`` or ``state:reason``; only
    the activities named replace the defaults of ``hotline.wfm.adherence``)."""

    severe_after: Duration = 300.0
    adhering: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> AdherenceSettings:
        try:
            self.rules()
        except AdherenceError as exc:
            raise ValueError(str(exc)) from None
        return self

    def rules(self) -> AdherenceRules:
        return AdherenceRules.build(self.adhering, self.severe_after)


class TenantSettings(Model):
    timezone: str | None = None
    service_level: ServiceLevelSpec = ServiceLevelSpec()
    restore_agents: Literal["last_state", "logged_out"] = "last_state"
    # Agents with a SIP phone are logged in (ready) when it registers and out when it stops:
    # for centers where the phone is the agent's only tool.
    phone_login: bool = False
    adherence: AdherenceSettings = Field(default_factory=AdherenceSettings)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError(f"unknown time zone {value!r}") from err
        return value


class SkillIn(Model):
    code: Code
    labels: Labels = {}


class ReasonIn(Model):
    code: Code
    labels: Labels = {}
    productive: bool = False
    max_duration: Duration | None = None


class DispositionIn(Model):
    code: Code
    labels: Labels = {}


Clock = Annotated[str, Field(pattern=_HHMM.pattern)]


class Holiday(Model):
    date: date
    name: str = ""
    hours: list[tuple[Clock, Clock]] = []  # empty: closed all day


class BusinessHoursIn(Model):
    code: Code
    timezone: str = "Asia/Shanghai"
    weekly: dict[Weekday, list[tuple[Clock, Clock]]]
    holidays: list[Holiday] = []

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return TenantSettings._tz(value) or value

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        for day, ranges in value.items():
            for start, end in ranges:
                if start >= end:
                    raise ValueError(f"{day}: {start}-{end} ends before it starts")
        return value


class QueueIn(QueueSpec):
    """A queue: every ACD option of the engine (see the simulator's scenario format)."""

    id: Code
    labels: Labels = Field(default_factory=dict)
    # Recording of its calls on phones: always; on demand (an agent or supervisor starts it);
    # never — its calls are private, and nobody may listen in either.
    recording: Literal["always", "on_demand", "never"] = "always"

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        check_text(data)
        return data


class AgentIn(Model):
    code: Code
    display_name: str = Field("", max_length=200)
    user: str | None = None  # username of the linked user account
    extension: str | None = Field(None, pattern=r"^[0-9*#+]{1,32}$")
    team: str | None = Field(None, max_length=64)
    skills: dict[Code, Level] = {}
    wrap_up: Duration | None = None
    auto_ready: bool | None = None


class UserIn(Model):
    username: Code
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field("", max_length=200)
    role: Literal[ROLES]  # type: ignore[valid-type]
    teams: list[str] = []
    queues: list[str] = []
    active: bool = True


class UserPatch(Model):
    password: str | None = Field(None, min_length=8, max_length=200)
    display_name: str | None = Field(None, max_length=200)
    role: Literal[ROLES] | None = None  # type: ignore[valid-type]
    teams: list[str] | None = None
    queues: list[str] | None = None
    active: bool | None = None


def queue_settings(spec: QueueIn) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude={"id", "labels"}, exclude_none=True)


def queue_spec(code: str, labels: dict[str, Any], settings: dict[str, Any]) -> QueueIn:
    return QueueIn.model_validate({"id": code, "labels": labels, **settings})


def agent_config(agent: Agent) -> AgentConfig:
    return AgentConfig(
        agent.code, dict(agent.skills or {}), wrap_up=agent.wrap_up, auto_ready=agent.auto_ready
    )


def ordered_queue_configs(rows: list[Queue]) -> tuple[list[QueueConfig], dict[str, Any]]:
    """Queue configs with overflow targets before the queues that use them."""
    specs = {q.code: queue_spec(q.code, q.labels, q.settings) for q in rows}
    return [s.config() for s in specs.values()], {
        code: s.service_level for code, s in specs.items() if s.service_level is not None
    }


def tenant_setup(db: Session, tenant: Tenant) -> TenantSetup:
    settings = TenantSettings(**(tenant.settings or {}))
    queues = list(db.scalars(select(Queue).where(Queue.tenant_id == tenant.id).order_by(Queue.id)))
    agents = list(db.scalars(select(Agent).where(Agent.tenant_id == tenant.id).order_by(Agent.id)))
    configs, levels = ordered_queue_configs(queues)
    default = settings.service_level.config()
    sls: dict[str, ServiceLevelConfig] = {q.id: default for q in configs}
    sls.update({code: spec.config() for code, spec in levels.items()})
    return TenantSetup(
        id=tenant.id,
        slug=tenant.slug,
        queues=configs,
        agents=[agent_config(a) for a in agents],
        teams={a.code: a.team for a in agents},
        service_levels=sls,
        reasons=set(db.scalars(select(ReasonCode.code).where(ReasonCode.tenant_id == tenant.id))),
        dispositions=set(
            db.scalars(select(Disposition.code).where(Disposition.tenant_id == tenant.id))
        ),
        restore_agents=settings.restore_agents,
        timezone=settings.timezone,
        adherence=settings.adherence.rules(),
    )


def ensure_platform(db: Session, admin_password: str | None) -> str | None:
    """Create the platform tenant and its first admin on a new database.

    Returns the admin password when it was generated (to be shown once), else None."""
    if db.scalar(select(Tenant).where(Tenant.slug == PLATFORM)) is not None:
        return None
    now = time.time()
    tenant = Tenant(slug=PLATFORM, name="Hotline platform", settings={}, created_at=now)
    db.add(tenant)
    db.flush()
    password = admin_password or generate_password()
    db.add(
        User(
            tenant_id=tenant.id,
            username="admin",
            display_name="Platform administrator",
            password_hash=hash_password(password),
            role="admin",
            teams=[],
            queues=[],
            created_at=now,
        )
    )
    db.commit()
    return None if admin_password else password
