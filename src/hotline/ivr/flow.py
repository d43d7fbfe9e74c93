"""IVR flows as data: the node types, and the checks a flow passes before it is stored.

A flow is a graph of named nodes. Nodes that talk to the caller refer to prompts by code (a
prompt has a text or recording in each language; the call's ``language`` variable picks one).
Every error names the node it is about, so an editor can point at it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Literal

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Variable = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}(\.[a-z0-9_]{1,32})?$")]
Key = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"]
LANGUAGES = ("zh", "en")
Language = Literal["zh", "en"]
Seconds = Annotated[float, Field(gt=0, le=3600)]
MATCH_TIMEOUT = 0.005  # seconds a tenant's pattern may take on one value
log = logging.getLogger("hotline.ivr")


def full_match(pattern: str, value: str) -> bool:
    """``value`` matches all of ``pattern``. Patterns come from tenants' admins and one that
    backtracks without end would stall every call on the server: ``regex`` stops it after
    MATCH_TIMEOUT, and it counts as no match."""
    try:
        return regex.fullmatch(pattern, value, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        log.warning("pattern %r gave up on a %d-character value", pattern, len(value))
        return False


def _checked_pattern(value: str | None, name: str) -> str | None:
    if value is not None:
        try:
            regex.compile(value)
        except regex.error as err:
            raise ValueError(f"{name} is not a regular expression: {err}") from None
    return value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def targets(self) -> dict[str, str]:
        """Where this node can lead: what each exit is called -> node id."""
        return {}

    def prompts(self) -> list[str]:
        return []

    instant: ClassVar[bool] = False  # leaves at once, without the caller


class Play(_Node):
    type: Literal["play"]
    prompt: Code
    next: NodeId

    def targets(self) -> dict[str, str]:
        return {"next": self.next}

    def prompts(self) -> list[str]:
        return [self.prompt]


class Menu(_Node):
    """Play the prompt and wait for one key; wrong keys and silence are retried."""

    type: Literal["menu"]
    prompt: Code
    options: dict[Key, NodeId] = Field(min_length=1)
    timeout: Seconds = 5.0
    retries: Annotated[int, Field(ge=0, le=9)] = 2
    invalid_prompt: Code | None = None
    timeout_prompt: Code | None = None
    on_failure: NodeId

    def targets(self) -> dict[str, str]:
        out = {f"option {k}": v for k, v in self.options.items()}
        out["on_failure"] = self.on_failure
        return out

    def prompts(self) -> list[str]:
        return [p for p in (self.prompt, self.invalid_prompt, self.timeout_prompt) if p]


class Collect(_Node):
    """Collect several digits into a variable (ended by the terminator, max_digits, or a pause
    of digit_timeout), checked against min_digits and the optional pattern."""

    type: Literal["collect"]
    prompt: Code
    variable: Variable
    min_digits: Annotated[int, Field(ge=1, le=64)] = 1
    max_digits: Annotated[int, Field(ge=1, le=64)] = 20
    terminator: Literal["#", "*"] | None = "#"
    timeout: Seconds = 5.0
    digit_timeout: Seconds = 3.0
    pattern: Annotated[str, Field(max_length=200)] | None = None
    retries: Annotated[int, Field(ge=0, le=9)] = 2
    invalid_prompt: Code | None = None
    next: NodeId
    on_failure: NodeId

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _checked_pattern(value, "pattern")

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_failure": self.on_failure}

    def prompts(self) -> list[str]:
        return [p for p in (self.prompt, self.invalid_prompt) if p]


class Hours(_Node):
    """Branch on a business-hours calendar of the tenant (holidays count as closed unless
    the node names a holiday branch)."""

    type: Literal["hours"]
    hours: Code
    open: NodeId
    closed: NodeId
    holiday: NodeId | None = None
    instant: ClassVar[bool] = True

    def targets(self) -> dict[str, str]:
        out = {"open": self.open, "closed": self.closed}
        if self.holiday:
            out["holiday"] = self.holiday
        return out


class Rule(BaseModel):
    """One test of a variable; the first rule that holds picks the branch."""

    model_config = ConfigDict(extra="forbid")
    variable: Variable
    equals: str | None = None
    one_of: list[str] | None = None
    matches: Annotated[str, Field(max_length=200)] | None = None
    in_list: Code | None = None
    present: bool | None = None
    next: NodeId

    @field_validator("matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _checked_pattern(value, "matches")

    def test(self, value: str | None, lists: dict[str, frozenset[str]]) -> bool:
        if self.present is not None:
            return (value is not None and value != "") == self.present
        if value is None:
            return False
        if self.equals is not None:
            return value == self.equals
        if self.one_of is not None:
            return value in self.one_of
        if self.matches is not None:
            return full_match(self.matches, value)
        if self.in_list is not None:
            return value in lists.get(self.in_list, frozenset())
        return False


class Branch(_Node):
    """Branch on call data: the caller's number, the DID, collected digits, a lookup's answer."""

    type: Literal["branch"]
    rules: list[Rule] = Field(min_length=1, max_length=32)
    default: NodeId
    instant: ClassVar[bool] = True

    def targets(self) -> dict[str, str]:
        out = {f"rule {i + 1}": r.next for i, r in enumerate(self.rules)}
        out["default"] = self.default
        return out


class Lookup(_Node):
    """Ask the tenant's own system about the caller: GET ``url`` with the call's variables as
    query parameters; a JSON object's fields become ``<into>.<field>`` variables. A slow or
    failing endpoint takes the failure branch after ``timeout`` and the caller never waits
    longer than that."""

    type: Literal["lookup"]
    url: Annotated[str, Field(pattern=r"^https?://", max_length=500)]
    timeout: Annotated[float, Field(gt=0, le=10)] = 2.0
    into: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "customer"
    next: NodeId
    on_failure: NodeId

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_failure": self.on_failure}


class SetVariables(_Node):
    """Set variables; ``{name}`` in a value is replaced by that variable. Setting ``language``
    (zh or en) switches the language of every prompt that follows."""

    type: Literal["set"]
    values: dict[Variable, Annotated[str, Field(max_length=200)]] = Field(min_length=1)
    next: NodeId
    instant: ClassVar[bool] = True

    def targets(self) -> dict[str, str]:
        return {"next": self.next}


class QueueNode(_Node):
    """Hand the call to the ACD and keep it company: music, and every ``announce_every``
    seconds its position and expected wait, then the callback offer if any."""

    type: Literal["queue"]
    queue: Code
    priority: Annotated[int, Field(ge=0, le=100)] | None = None
    greeting: Code | None = None
    announce_every: Annotated[float, Field(ge=10, le=600)] | None = 30.0
    announce: list[Literal["position", "wait"]] = ["position", "wait"]
    first_announcement: Annotated[float, Field(ge=0, le=600)] = 0.0
    callback_key: Key | None = None
    callback_prompt: Code | None = None
    callback_confirm: Code | None = None

    def prompts(self) -> list[str]:
        return [p for p in (self.greeting, self.callback_prompt, self.callback_confirm) if p]


class Voicemail(_Node):
    """Record a message for a mailbox (a queue or team's name); # or max_seconds ends it,
    and so does the caller hanging up (the message is kept)."""

    type: Literal["voicemail"]
    prompt: Code
    mailbox: Code
    max_seconds: Annotated[float, Field(ge=5, le=600)] = 120.0
    done_prompt: Code | None = None

    def prompts(self) -> list[str]:
        return [p for p in (self.prompt, self.done_prompt) if p]


class Transfer(_Node):
    """Send the caller to one person: an agent (by code, or by phone extension), rung alone
    and counted in ``queue``, or an outside ``number`` called through the tenant's trunk. A
    fixed number only: a number the caller keys in could make the center pay for anyone's
    calls. If they cannot take it (not ready, busy, no answer) the flow goes on at
    ``on_failure``; ``prompt`` plays meanwhile."""

    type: Literal["transfer"]
    agent: Code | None = None
    extension: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    number: Annotated[str, Field(pattern=r"^\+?[0-9]{1,32}$")] | None = None
    queue: Code | None = None
    prompt: Code | None = None
    on_failure: NodeId

    @model_validator(mode="after")
    def _one_target(self) -> Transfer:
        targets = [x for x in (self.agent, self.extension, self.number) if x is not None]
        if len(targets) != 1:
            raise ValueError("give exactly one of agent, extension, number")
        if self.number is None and self.queue is None:
            raise ValueError("an agent is rung through a queue: give queue")
        return self

    def targets(self) -> dict[str, str]:
        return {"on_failure": self.on_failure}

    def prompts(self) -> list[str]:
        return [self.prompt] if self.prompt else []


class Hangup(_Node):
    type: Literal["hangup"]
    prompt: Code | None = None

    def prompts(self) -> list[str]:
        return [self.prompt] if self.prompt else []


Node = Annotated[
    Play | Menu | Collect | Hours | Branch | Lookup | SetVariables | QueueNode | Voicemail
    | Transfer | Hangup,
    Field(discriminator="type"),
]


class FlowDefinition(BaseModel):
    """What an editor saves. ``lists`` are named number lists (e.g. VIP callers) for rules."""

    model_config = ConfigDict(extra="forbid")
    start: NodeId
    nodes: dict[NodeId, Node] = Field(min_length=1, max_length=500)
    lists: dict[Code, list[Annotated[str, Field(max_length=64)]]] = {}
    max_steps: Annotated[int, Field(ge=10, le=10_000)] = 200


class FlowError(ValueError):
    """A flow that cannot be stored; ``problems`` name the node of each."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['node']}: {p['message']}" for p in problems))
        self.problems = problems


def parse_flow(data: Any) -> FlowDefinition:
    """Validate a flow: its shape (pydantic) and its graph (every exit leads to a node, no loop
    the caller cannot break)."""
    try:
        flow = FlowDefinition.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = [str(x) for x in e["loc"]]
            node = loc[1] if len(loc) > 1 and loc[0] == "nodes" else "flow"
            if node == "flow":
                field = ".".join(loc)
            else:  # drop the discriminator's tag (the node's type): noise to the reader
                rest = loc[3:] if len(loc) > 2 and loc[2] in _NODE_TYPES else loc[2:]
                field = ".".join(rest)
            problems.append({"node": node, "field": field, "message": e["msg"]})
        raise FlowError(problems) from None
    problems = check_graph(flow)
    if problems:
        raise FlowError(problems)
    return flow


_NODE_TYPES = {"play", "menu", "collect", "hours", "branch", "lookup", "set", "queue",
               "voicemail", "transfer", "hangup"}


def check_graph(flow: FlowDefinition) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    if flow.start not in flow.nodes:
        problems.append({"node": "flow", "field": "start",
                         "message": f"start node {flow.start!r} is not a node of the flow"})
    for name, node in flow.nodes.items():
        for exit_, target in node.targets().items():
            if target not in flow.nodes:
                problems.append({"node": name, "field": exit_,
                                 "message": f"{exit_} leads to {target!r}, which is not a node"})
        if isinstance(node, Branch):
            for i, rule in enumerate(node.rules):
                tests = [x for x in (rule.equals, rule.one_of, rule.matches, rule.in_list,
                                     rule.present) if x is not None]
                if len(tests) != 1:
                    problems.append({"node": name, "field": f"rules.{i}",
                                     "message": "a rule needs exactly one of equals, one_of, "
                                                "matches, in_list, present"})
                if rule.in_list is not None and rule.in_list not in flow.lists:
                    problems.append({"node": name, "field": f"rules.{i}.in_list",
                                     "message": f"no list {rule.in_list!r} in the flow"})
        if isinstance(node, Collect) and node.variable == "language":
            problems.append({"node": name, "field": "variable",
                             "message": "digits cannot be a language: set it with a set node"})
        if isinstance(node, Collect) and node.min_digits > node.max_digits:
            problems.append({"node": name, "field": "min_digits",
                             "message": "min_digits is more than max_digits"})
        if isinstance(node, SetVariables) and node.values.get("language",
                                                              "zh") not in LANGUAGES:
            problems.append({"node": name, "field": "values.language",
                             "message": f"language must be one of {', '.join(LANGUAGES)}"})
        if isinstance(node, QueueNode) and node.callback_key is not None \
                and node.announce_every is None:
            problems.append({"node": name, "field": "callback_key",
                             "message": "a callback offer needs announcements (announce_every)"})
    if problems:
        return problems
    # A loop made only of instant nodes would spin without the caller ever being asked.
    for name in flow.nodes:
        seen = {name}
        frontier = [name]
        while frontier:
            current = flow.nodes[frontier.pop()]
            if not current.instant:
                continue
            for target in current.targets().values():
                if target == name and flow.nodes[name].instant:
                    problems.append({"node": name, "field": "",
                                     "message": "loops back to itself without asking the "
                                                "caller anything"})
                    frontier = []
                    break
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
    return problems


def references(flow: FlowDefinition) -> dict[str, dict[str, str]]:
    """What a flow uses of the tenant's configuration: kind -> code -> first node using it,
    so the API can name the node of a missing prompt, queue or calendar."""
    out: dict[str, dict[str, str]] = {"prompts": {}, "queues": {}, "hours": {}}
    for name, node in flow.nodes.items():
        for prompt in node.prompts():
            out["prompts"].setdefault(prompt, name)
        if isinstance(node, QueueNode | Transfer) and node.queue is not None:
            out["queues"].setdefault(node.queue, name)
        if isinstance(node, Hours):
            out["hours"].setdefault(node.hours, name)
    return out
