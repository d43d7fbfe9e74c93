"""Validated, immutable configuration the ACD engine is built from.

The engine trusts these objects: validation of user input happens at the edge (scenario files,
API schemas) and again here for the invariants routing depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STRATEGIES = (
    "longest-idle",
    "least-calls",
    "least-talk-time",
    "round-robin",
    "top-down",
    "random",
    "best-skill",
    "ring-all",
)


@dataclass(frozen=True, slots=True)
class RelaxStep:
    """After ``after`` seconds of waiting a call also accepts agents meeting ``skills``.

    Steps only widen: a call that reached step k accepts agents matching the queue's own
    requirements or any step up to k, and keeps its place in the queue.
    """

    after: float
    skills: dict[str, int]


@dataclass(frozen=True, slots=True)
class QueueExit:
    """What happens to a caller who waited ``max_wait`` in the queue."""

    action: str  # "overflow" | "callback"
    target: str | None = None  # queue id for overflow


@dataclass(frozen=True, slots=True)
class QueueConfig:
    id: str
    skills: dict[str, int] = field(default_factory=dict)
    strategy: str = "longest-idle"
    priority: int = 0  # default caller priority of calls arriving in this queue
    weight: float = 1.0  # multiplies waiting time when agents choose between queues
    max_length: int = 0  # waiting calls; 0 = unlimited
    when_empty: str = "join"  # "join" | "reject" when no eligible agent is logged in
    wrap_up: float = 0.0
    auto_ready: bool = True
    ring_timeout: float | None = None  # RONA after this many seconds of ringing
    max_wait: float | None = None
    exit: QueueExit | None = None
    relax: tuple[RelaxStep, ...] = ()
    announce: bool = False  # tell callers their position and expected wait on entry

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"queue {self.id}: unknown strategy {self.strategy!r}")
        if self.when_empty not in ("join", "reject"):
            raise ValueError(f"queue {self.id}: when_empty must be 'join' or 'reject'")
        for skill, level in self.skills.items():
            _check_level(self.id, skill, level)
        last = 0.0
        for step in self.relax:
            if step.after <= last:
                raise ValueError(f"queue {self.id}: relax steps must have increasing 'after'")
            last = step.after
            for skill, level in step.skills.items():
                _check_level(self.id, skill, level)
        if self.max_wait is not None and self.exit is None:
            raise ValueError(f"queue {self.id}: max_wait needs an exit (overflow or callback)")
        if self.exit is not None:
            if self.exit.action not in ("overflow", "callback"):
                raise ValueError(f"queue {self.id}: exit action must be overflow or callback")
            if self.exit.action == "overflow" and not self.exit.target:
                raise ValueError(f"queue {self.id}: overflow exit needs a target queue")
            if self.max_wait is None:
                raise ValueError(f"queue {self.id}: an exit needs max_wait")
        if self.weight <= 0:
            raise ValueError(f"queue {self.id}: weight must be > 0")

    @property
    def requirement_tiers(self) -> tuple[dict[str, int], ...]:
        """Tier k accepts any of these requirement sets up to index k."""
        return (self.skills, *(step.skills for step in self.relax))

    def eligible_tier(self, skills: dict[str, int]) -> int:
        """Lowest tier at which an agent with ``skills`` may take this queue's calls (-1: never)."""
        for tier, req in enumerate(self.requirement_tiers):
            if all(skills.get(skill, 0) >= level for skill, level in req.items()):
                return tier
        return -1


@dataclass(frozen=True, slots=True)
class AgentConfig:
    id: str
    skills: dict[str, int] = field(default_factory=dict)
    wrap_up: float | None = None  # overrides the queue's wrap-up time
    auto_ready: bool | None = None  # overrides the queue's auto-ready

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            _check_level(self.id, skill, level)


def _check_level(owner: str, skill: str, level: int) -> None:
    if not isinstance(level, int) or not 1 <= level <= 10:
        raise ValueError(f"{owner}: skill {skill!r} level must be an integer 1-10, got {level!r}")
