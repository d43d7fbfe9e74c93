"""Scenario files for the simulator: validated once here, so the engine gets typed objects
and a bad file gets one clear error naming the field."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hotline.acd.config import STRATEGIES, AgentConfig, QueueConfig, QueueExit, RelaxStep
from hotline.cms.metrics import SL_VARIANTS, ServiceLevelConfig
from hotline.durations import parse_duration


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the field."""


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError(f"not a duration: {value!r}")


Duration = Annotated[float, BeforeValidator(_duration)]
Level = Annotated[int, Field(ge=1, le=10)]
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)\s+)?([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> tuple[int | None, float]:
    """'08:30' -> (None, seconds of day); 'Mon 08:30' -> (weekday 0-6, seconds of day)."""
    match = _CLOCK.match(text.strip().lower())
    if not match:
        raise ValueError(f"not a time of day: {text!r} (use HH:MM or e.g. 'Mon 08:30')")
    day = _WEEKDAYS.index(match.group(1)) if match.group(1) else None
    return day, int(match.group(2)) * 3600.0 + int(match.group(3)) * 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Distribution(_Model):
    """Handle times, patience and answer delays; ``mean``/``sd``/``value``/``values`` are
    durations."""

    dist: Literal["exponential", "lognormal", "gamma", "constant", "empirical"]
    mean: Duration | None = None
    sd: Duration | None = None
    value: Duration | None = None
    values: list[Duration] | None = None

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        d = self.dist
        if d == "empirical":
            if not self.values:
                raise ValueError("empirical needs a non-empty 'values' list")
        elif d == "constant":
            if self.value is None and self.mean is None:
                raise ValueError("constant needs 'value'")
        else:
            if self.mean is None or self.mean <= 0:
                raise ValueError(f"{d} needs 'mean' > 0")
            if d in ("lognormal", "gamma") and (self.sd is None or self.sd <= 0):
                raise ValueError(f"{d} needs 'sd' > 0")
        return self

    @property
    def expected(self) -> float:
        if self.dist == "empirical":
            assert self.values
            return sum(self.values) / len(self.values)
        if self.dist == "constant":
            return self.value if self.value is not None else self.mean  # type: ignore[return-value]
        return self.mean  # type: ignore[return-value]


def _distribution(value: Any) -> Any:
    """A bare duration means a constant."""
    if isinstance(value, str | int | float):
        return {"dist": "constant", "value": value}
    return value


Dist = Annotated[Distribution, BeforeValidator(_distribution)]


class ServiceLevelSpec(_Model):
    threshold: Duration = 20.0
    short_abandon: Duration = 5.0
    variant: Literal[SL_VARIANTS] = "standard"  # type: ignore[valid-type]

    def config(self) -> ServiceLevelConfig:
        return ServiceLevelConfig(self.threshold, self.short_abandon, self.variant)


class RelaxSpec(_Model):
    after: Annotated[Duration, Field(gt=0)]
    skills: dict[str, Level]


class ExitSpec(_Model):
    overflow: str | None = None
    callback: bool = False

    @model_validator(mode="after")
    def _one(self) -> ExitSpec:
        if (self.overflow is None) == (not self.callback):
            raise ValueError("give exactly one of 'overflow: QUEUE' or 'callback: true'")
        return self


class QueueSpec(_Model):
    id: str = Field(min_length=1)
    skills: dict[str, Level] = {}
    strategy: Literal[STRATEGIES] = "longest-idle"  # type: ignore[valid-type]
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    max_length: int = Field(0, ge=0)
    when_empty: Literal["join", "reject"] = "join"
    wrap_up: Duration = 0.0
    auto_ready: bool = True
    ring_timeout: Duration | None = None
    max_wait: Duration | None = None
    exit: ExitSpec | None = None
    relax: list[RelaxSpec] = []
    announce: bool = False
    service_level: ServiceLevelSpec | None = None

    @model_validator(mode="after")
    def _exit(self) -> QueueSpec:
        if (self.max_wait is None) != (self.exit is None):
            raise ValueError("max_wait and exit go together")
        afters = [r.after for r in self.relax]
        if afters != sorted(set(afters)):
            raise ValueError("relax steps need strictly increasing 'after'")
        return self

    def config(self) -> QueueConfig:
        ex = None
        if self.exit is not None:
            ex = (
                QueueExit("callback")
                if self.exit.callback
                else QueueExit("overflow", self.exit.overflow)
            )
        return QueueConfig(
            id=self.id,
            skills=dict(self.skills),
            strategy=self.strategy,
            priority=self.priority,
            weight=self.weight,
            max_length=self.max_length,
            when_empty=self.when_empty,
            wrap_up=self.wrap_up,
            auto_ready=self.auto_ready,
            ring_timeout=self.ring_timeout,
            max_wait=self.max_wait,
            exit=ex,
            relax=tuple(RelaxStep(r.after, dict(r.skills)) for r in self.relax),
            announce=self.announce,
        )


class RateStep(_Model):
    """From ``at`` (time since the start) until the next step: calls per hour and, if given,
    the mean handle time (the traffic's handle_time distribution rescaled, shape kept)."""

    at: Annotated[Duration, Field(ge=0)]
    calls_per_hour: float = Field(ge=0)
    aht: Annotated[Duration, Field(gt=0)] | None = None


class TrafficSpec(_Model):
    queue: str
    calls_per_hour: float | None = Field(None, ge=0)
    profile: dict[str, float] | None = None
    # Rates over the whole run (a forecast replayed), not a repeating day or week; no calls
    # before the first step.
    timeline: list[RateStep] | None = None
    handle_time: Dist
    patience: Dist | None = None  # none: callers never hang up
    priority: int | None = None

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("profile needs at least one 'HH:MM': calls_per_hour entry")
        kinds = set()
        for key, rate in value.items():
            kinds.add(parse_clock(key)[0] is None)
            if rate < 0:
                raise ValueError(f"{key}: calls per hour must be ≥ 0")
        if len(kinds) > 1:
            raise ValueError("profile keys must be all 'HH:MM' (day) or all 'Mon HH:MM' (week)")
        return value

    @field_validator("timeline")
    @classmethod
    def _timeline(cls, value: list[RateStep] | None) -> list[RateStep] | None:
        if value is not None:
            if not value:
                raise ValueError("timeline needs at least one step")
            if any(b.at <= a.at for a, b in pairwise(value)):
                raise ValueError("timeline steps need strictly increasing 'at'")
        return value

    @model_validator(mode="after")
    def _rate(self) -> TrafficSpec:
        given = (self.calls_per_hour, self.profile, self.timeline)
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of calls_per_hour, profile or timeline")
        rescaled = self.timeline and any(s.aht is not None for s in self.timeline)
        if rescaled and self.handle_time.expected <= 0:
            raise ValueError("timeline 'aht' rescales handle_time, whose mean must be > 0")
        return self


class BreakSpec(_Model):
    start: Duration
    duration: Duration
    reason: str = "break"


class ShiftSpec(_Model):
    start: Duration
    end: Duration

    @model_validator(mode="after")
    def _order(self) -> ShiftSpec:
        if self.end <= self.start:
            raise ValueError("shift end must be after its start")
        return self


class PlanStep(_Model):
    """At ``at`` the agents go to ``state``: logged out agents log in for ready/not_ready; an
    agent on a call gets there after the call (and its wrap-up), as a person would."""

    at: Annotated[Duration, Field(ge=0)]
    state: Literal["ready", "not_ready", "logged_out"]
    reason: str | None = None


class AgentGroupSpec(_Model):
    group: str = Field(min_length=1)
    count: int = Field(ge=0)
    ids: list[str] | None = None  # the agents' names (default: group-001, group-002, ...)
    skills: dict[str, Level] = {}
    shift: ShiftSpec | None = None
    breaks: list[BreakSpec] = []
    # A timeline of states instead of one shift with breaks (e.g. a roster replayed); the
    # agents are logged out until its first step.
    plan: list[PlanStep] = []
    wrap_up: Duration | None = None
    answer_delay: Dist | None = None
    rona_probability: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _plan(self) -> AgentGroupSpec:
        if self.plan and (self.shift is not None or self.breaks):
            raise ValueError("give a plan or a shift with breaks, not both")
        if any(b.at <= a.at for a, b in pairwise(self.plan)):
            raise ValueError("plan steps need strictly increasing 'at'")
        if self.ids is not None:
            if len(self.ids) != self.count:
                raise ValueError(f"ids: {len(self.ids)} names for count {self.count}")
            if len(set(self.ids)) != len(self.ids) or not all(self.ids):
                raise ValueError("ids must be unique non-empty names")
        return self

    def agent_ids(self) -> list[str]:
        if self.ids is not None:
            return list(self.ids)
        width = max(3, len(str(self.count)))
        return [f"{self.group}-{i:0{width}d}" for i in range(1, self.count + 1)]


class CallbackSpec(_Model):
    answer_rate: float = Field(0.9, ge=0, le=1)
    dial_time: Dist = Distribution(dist="constant", value=15.0)


class Scenario(_Model):
    name: str = "scenario"
    seed: int = 0
    duration: Duration
    interval: Duration = 1800.0
    start: str = "00:00"
    service_level: ServiceLevelSpec = ServiceLevelSpec()
    queues: list[QueueSpec] = Field(min_length=1)
    traffic: list[TrafficSpec] = Field(min_length=1)
    agents: list[AgentGroupSpec] = Field(min_length=1)
    rona_probability: float = Field(0.0, ge=0, le=1)
    rona_recovery: Duration = 30.0  # a simulated agent's time to get ready after a RONA
    callback: CallbackSpec = CallbackSpec(answer_rate=0.9)

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("duration", "interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        ids = [q.id for q in self.queues]
        if len(set(ids)) != len(ids):
            raise ValueError(f"queue ids must be unique: {ids}")
        for q in self.queues:
            if q.exit is not None and q.exit.overflow is not None and q.exit.overflow not in ids:
                raise ValueError(
                    f"queue {q.id}: overflow target {q.exit.overflow!r} is not a queue"
                )
        for i, t in enumerate(self.traffic):
            if t.queue not in ids:
                raise ValueError(f"traffic.{i}.queue: {t.queue!r} is not a queue")
        groups = [g.group for g in self.agents]
        if len(set(groups)) != len(groups):
            raise ValueError(f"agent group names must be unique: {groups}")
        if any(g.ids is not None for g in self.agents):
            seen: set[str] = set()
            for g in self.agents:
                for agent_id in g.agent_ids():
                    if agent_id in seen:
                        raise ValueError(f"agent {agent_id!r} is in more than one group")
                    seen.add(agent_id)
        for g in self.agents:
            if self.rona_probability_of(g) > 0:
                for q in self.queues:
                    if q.ring_timeout is None and q.config().eligible_tier(g.skills) >= 0:
                        raise ValueError(
                            f"agents {g.group} may not answer (rona_probability) but queue "
                            f"{q.id} has no ring_timeout"
                        )
        return self

    def rona_probability_of(self, group: AgentGroupSpec) -> float:
        p = group.rona_probability
        return self.rona_probability if p is None else p

    def queue_configs(self) -> list[QueueConfig]:
        return [q.config() for q in self.queues]

    def agent_configs(self) -> list[AgentConfig]:
        return [
            AgentConfig(agent_id, dict(g.skills), wrap_up=g.wrap_up)
            for g in self.agents
            for agent_id in g.agent_ids()
        ]

    def service_levels(self) -> dict[str, ServiceLevelConfig]:
        return {q.id: q.service_level.config() for q in self.queues if q.service_level}


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def read_yaml_mapping(path: Path, error: type[ValueError], what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; anything else is one ``error`` naming the
    file (and the line and column of a syntax error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of {what} at the top level")
    return data


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    data = read_yaml_mapping(path, ScenarioError, "scenario fields")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {format_validation_error(exc)}") from None
