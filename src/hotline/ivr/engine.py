"""The IVR engine: one caller's walk through a flow, as a plain object fed events and a clock.

No audio, no sockets, no timers of its own: the driver (the SIP switch, or a test) reports what
happened — a key press, the end of a prompt, a lookup's answer, the clock passing
``deadline`` — and carries out the actions returned. The same object runs under a virtual
clock in tests and under the event loop's clock in production (the h11 pattern).

Key presses made while a plain prompt plays are kept (type-ahead): a caller who knows the menu
may key "1 2" during the greeting and skip both menus' prompts. Menus and digit collection let
a key interrupt their own prompt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hotline.ivr.flow import (
    Branch,
    Collect,
    FlowDefinition,
    Hangup,
    Hours,
    Lookup,
    Menu,
    Play,
    QueueNode,
    SetVariables,
    Transfer,
    Voicemail,
    full_match,
)
from hotline.ivr.hours import Calendar

POSITION = "@position"  # announcement segments the driver fills in with live figures
WAIT = "@wait"
BEEP = "@beep"
MAX_LOOKUP_FIELDS = 32
MIN_MUSIC = 5.0  # seconds of music at least between two queue announcements
MAX_AHEAD = 32  # keys kept typed ahead; more are dropped
MAX_LOOKUPS = 5  # lookups one call may make: a looping flow cannot hammer an endpoint


# ---------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class PlayPrompts:
    """Play these segments (prompt codes, or POSITION / WAIT / BEEP) in ``language``, then
    report ``prompt_ended``."""

    segments: tuple[str, ...]
    language: str
    id: int = 0  # report it back with prompt_ended: a stopped prompt's late end is ignored


@dataclass(frozen=True, slots=True)
class StopPlaying:
    pass


@dataclass(frozen=True, slots=True)
class PlayMusic:
    pass


@dataclass(frozen=True, slots=True)
class Enqueue:
    queue: str
    priority: int | None
    data: dict[str, str]


@dataclass(frozen=True, slots=True)
class RequestCallback:
    pass


@dataclass(frozen=True, slots=True)
class StartLookup:
    url: str
    params: dict[str, str]
    timeout: float
    id: int = 0  # report it back with lookup_done: a late answer is not the next lookup's


@dataclass(frozen=True, slots=True)
class StartRecording:
    mailbox: str
    max_seconds: float


@dataclass(frozen=True, slots=True)
class StopRecording:
    pass


@dataclass(frozen=True, slots=True)
class TransferCall:
    """Ring one agent (``agent`` or ``extension``, through ``queue``) or call an outside
    ``number``; report ``transfer_failed`` if they do not take the caller."""

    agent: str | None
    extension: str | None
    number: str | None
    queue: str | None
    data: dict[str, str]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The flow is over for this caller: hang up (``outcome`` says how it ended)."""

    outcome: str


Action = (PlayPrompts | StopPlaying | PlayMusic | Enqueue | RequestCallback | StartLookup
          | StartRecording | StopRecording | TransferCall | Disconnect)


# ---------------------------------------------------------------------------- the run
_NOTICE = "notice"  # the emergency announcement before the flow
_PLAYING = "playing"  # a plain prompt; next node when it ends
_MENU = "menu"
_COLLECT = "collect"
_LOOKUP = "lookup"
_RECORD_PROMPT = "record_prompt"  # the voicemail greeting and beep
_RECORDING = "recording"
_QUEUED = "queued"
_ANNOUNCING = "announcing"
_CALLBACK = "callback"  # the callback was asked for; waiting for the ACD's word
_TRANSFER = "transfer"  # an agent or a number is being rung for the caller
_LEAVING = "leaving"  # a last prompt before hanging up
_DONE = "done"
_TEMPLATE = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)?)\}")


@dataclass
class IvrRun:
    flow: FlowDefinition
    variables: dict[str, str]
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    wall_offset: float = 0.0  # add to ``now`` for Unix time (business hours)
    # Emergency announcements a supervisor switched on: one for the dialled number, played
    # before the flow starts, and queue code -> prompt, played as the call enters that queue.
    notice: str | None = None
    queue_notices: Mapping[str, str] = field(default_factory=dict)
    node_id: str = ""
    state: str = ""
    deadline: float | None = None
    path: list[str] = field(default_factory=list)
    outcome: str | None = None
    queue: str | None = None
    _steps: int = 0
    _tries: int = 0
    _ahead: list[str] = field(default_factory=list)  # keys pressed before they were asked for
    _digits: list[str] = field(default_factory=list)  # collected so far
    _play_id: int = 0
    _lookup_id: int = 0
    _next_announcement: float = 0.0  # announcements are every N s, start to start
    _prompt_over: bool = False  # the node's prompt has ended (its timer runs)
    _after: str = ""  # what a leaving prompt ends with
    _lists: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lists = {k: frozenset(v) for k, v in self.flow.lists.items()}
        self.variables.setdefault("language", "zh")

    @property
    def language(self) -> str:
        return self.variables.get("language", "zh")

    @property
    def playing(self) -> int:
        """The id of the prompt the caller should be hearing (stopped ones are left behind)."""
        return self._play_id

    @property
    def finished(self) -> bool:
        return self.state == _DONE

    # ------------------------------------------------------------------ inputs
    def start(self, now: float) -> list[Action]:
        if self.notice:
            self.state = _NOTICE
            return [self._play(self.notice)]
        return self._goto(now, self.flow.start)

    def digit(self, now: float, key: str) -> list[Action]:
        state = self.state
        if state == _PLAYING or state == _RECORD_PROMPT or state == _NOTICE:
            if len(self._ahead) < MAX_AHEAD:
                self._ahead.append(key)  # type-ahead, for the next menu or collection
            return []
        if state == _MENU:
            return self._menu_key(now, key)
        if state == _COLLECT:
            return self._collect_key(now, key)
        if state == _RECORDING:
            if key in "#*":
                return [StopRecording(), *self._recorded(now)]
            return []
        if state in (_QUEUED, _ANNOUNCING):
            node = self._node()
            assert isinstance(node, QueueNode)
            if node.callback_key is not None and key == node.callback_key:
                self.deadline = None
                self.state = _CALLBACK  # more presses meanwhile change nothing
                return [RequestCallback()]
        return []

    def prompt_ended(self, now: float, play_id: int) -> list[Action]:
        if play_id != self._play_id:
            return []  # a prompt that was stopped or replaced
        state = self.state
        if state == _NOTICE:
            return self._goto(now, self.flow.start)
        node = self._node()
        if state == _PLAYING:
            assert isinstance(node, Play)
            return self._goto(now, node.next)
        if state == _MENU or state == _COLLECT:
            assert isinstance(node, Menu | Collect)
            self._prompt_over = True
            self.deadline = now + (node.digit_timeout if isinstance(node, Collect)
                                   and self._digits else node.timeout)
            return []
        if state == _RECORD_PROMPT:
            assert isinstance(node, Voicemail)
            self.state = _RECORDING
            self.deadline = now + node.max_seconds
            return [StartRecording(node.mailbox, node.max_seconds)]
        if state == _ANNOUNCING:
            assert isinstance(node, QueueNode)
            self.state = _QUEUED
            self.deadline = (max(self._next_announcement, now + MIN_MUSIC)
                             if node.announce_every else None)
            return [PlayMusic()]
        if state == _LEAVING:
            return self._finish(self._after)
        if state == _TRANSFER:
            return [PlayMusic()]
        return []

    def transfer_failed(self, now: float) -> list[Action]:
        """The agent or number of a transfer node did not take the caller: on_failure."""
        node = self._node()
        if self.state != _TRANSFER or not isinstance(node, Transfer):
            return []
        self.outcome = None
        return self._goto(now, node.on_failure)

    def timer(self, now: float) -> list[Action]:
        """The clock reached ``deadline`` (earlier calls are ignored)."""
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        state = self.state
        node = self._node()
        if state == _MENU:
            assert isinstance(node, Menu)
            return self._retry(now, node, node.timeout_prompt or node.invalid_prompt)
        if state == _COLLECT:
            assert isinstance(node, Collect)
            if self._digits:
                return self._collected(now, node)
            return self._retry(now, node, node.invalid_prompt)
        if state == _LOOKUP:
            assert isinstance(node, Lookup)
            return self._goto(now, node.on_failure)
        if state == _RECORDING:
            return [StopRecording(), *self._recorded(now)]
        if state == _QUEUED:
            return self._announce(now)
        return []

    def lookup_done(self, now: float, answer: Any, lookup_id: int) -> list[Action]:
        """The lookup's answer (a JSON value), or None when it failed; ignored once timed out
        (``lookup_id`` tells a late answer from the one the current node waits for)."""
        if self.state != _LOOKUP or lookup_id != self._lookup_id:
            return []
        node = self._node()
        assert isinstance(node, Lookup)
        self.deadline = None
        if not isinstance(answer, dict):
            return self._goto(now, node.on_failure)
        for key, value in list(answer.items())[:MAX_LOOKUP_FIELDS]:
            if isinstance(value, bool):
                value = "true" if value else "false"
            if isinstance(value, str | int | float) and re.fullmatch(r"[a-z0-9_]{1,32}",
                                                                      str(key).lower()):
                self.variables[f"{node.into}.{str(key).lower()}"] = str(value)[:200]
        return self._goto(now, node.next)

    def callback_accepted(self, now: float) -> list[Action]:
        """The ACD took the callback request: confirm it to the caller, then hang up."""
        node = self._node()
        assert isinstance(node, QueueNode)
        return self._leave(now, node.callback_confirm, "callback")

    def callback_refused(self, now: float) -> list[Action]:
        """The callback could not be taken (e.g. the call was being offered): keep waiting."""
        node = self._node()
        if self.state == _CALLBACK:
            self.state = _QUEUED
        if self.state in (_QUEUED, _ANNOUNCING) and isinstance(node, QueueNode):
            self.deadline = (max(self._next_announcement, now + MIN_MUSIC)
                             if node.announce_every else None)
        return []

    def left_queue(self) -> None:
        """The ACD answered (or otherwise ended) the call: no more announcements."""
        self.deadline = None
        self.state = _DONE
        self.outcome = self.outcome or "queued"

    # ------------------------------------------------------------------ walking
    def _node(self) -> Any:
        return self.flow.nodes[self.node_id]

    def _goto(self, now: float, node_id: str) -> list[Action]:
        actions: list[Action] = []
        while True:
            self._steps += 1
            if self._steps > self.flow.max_steps:
                return [*actions, *self._finish("too_many_steps")]
            self.node_id = node_id
            self.path.append(node_id)
            self._tries = 0
            self.deadline = None
            node = self._node()
            if isinstance(node, SetVariables):
                for name, template in node.values.items():
                    self.variables[name] = self._fill(template)
                node_id = node.next
            elif isinstance(node, Branch):
                node_id = node.default
                for rule in node.rules:
                    if rule.test(self.variables.get(rule.variable), self._lists):
                        node_id = rule.next
                        break
            elif isinstance(node, Lookup) and self._lookup_id >= MAX_LOOKUPS:
                node_id = node.on_failure  # asked enough: as if the endpoint had failed
            elif isinstance(node, Hours):
                calendar = self.calendars.get(node.hours)
                state = calendar.state_at(now + self.wall_offset) if calendar else "closed"
                node_id = {"open": node.open, "closed": node.closed,
                           "holiday": node.holiday or node.closed}[state]
            else:
                return [*actions, *self._enter(now, node)]

    def _enter(self, now: float, node: Any) -> list[Action]:
        if isinstance(node, Play):
            self.state = _PLAYING
            return [self._play(node.prompt)]
        if isinstance(node, Menu | Collect):
            self.state = _MENU if isinstance(node, Menu) else _COLLECT
            self._digits = []
            if not self._ahead:
                self._prompt_over = False
                return [self._play(node.prompt)]
            # keys pressed ahead answer this node without its prompt
            self._prompt_over = True
            self.deadline = now + (node.digit_timeout if isinstance(node, Collect)
                                   else node.timeout)
            actions: list[Action] = []
            here = self.node_id
            while self._ahead and self.node_id == here and self.state in (_MENU, _COLLECT):
                actions += self.digit(now, self._ahead.pop(0))
            return actions
        if isinstance(node, Lookup):
            self._lookup_id += 1
            self.state = _LOOKUP
            self.deadline = now + node.timeout
            params = {k: v for k, v in self.variables.items() if "." not in k}
            return [StartLookup(node.url, params, node.timeout, self._lookup_id)]
        if isinstance(node, QueueNode):
            self.state = _QUEUED
            self.queue = node.queue
            self.outcome = "queued"
            actions = [Enqueue(node.queue, node.priority, dict(self.variables)), PlayMusic()]
            opening = [p for p in (self.queue_notices.get(node.queue), node.greeting) if p]
            self._next_announcement = now + node.first_announcement
            if opening:
                self.state = _ANNOUNCING  # the greeting ends like an announcement
                if node.announce_every is not None and node.first_announcement == 0:
                    opening += self._announcement(node)
                    self._next_announcement = now + node.announce_every
                actions.append(self._play(*opening))
            elif node.announce_every is not None:
                self.deadline = self._next_announcement
            return actions
        if isinstance(node, Voicemail):
            self.state = _RECORD_PROMPT
            return [self._play(node.prompt, BEEP)]
        if isinstance(node, Transfer):
            self.state = _TRANSFER
            self.queue = node.queue
            self.outcome = "transferred"
            action = TransferCall(node.agent, node.extension, node.number, node.queue,
                                  dict(self.variables))
            return [action, self._play(node.prompt) if node.prompt else PlayMusic()]
        if isinstance(node, Hangup):
            return self._leave(now, node.prompt, "hangup")
        raise AssertionError(f"unknown node {node!r}")

    def _stop(self) -> list[Action]:
        """Interrupt the node's prompt, if it still plays (a key press barges in)."""
        if self._prompt_over:
            return []
        self._play_id += 1
        return [StopPlaying()]

    def _play(self, *segments: str) -> PlayPrompts:
        self._play_id += 1
        return PlayPrompts(tuple(segments), self.language, self._play_id)

    def _menu_key(self, now: float, key: str) -> list[Action]:
        node = self._node()
        assert isinstance(node, Menu)
        stop = self._stop()
        target = node.options.get(key)  # type: ignore[call-overload]
        if target is not None:
            return [*stop, *self._goto(now, target)]
        return [*stop, *self._retry(now, node, node.invalid_prompt)]

    def _collect_key(self, now: float, key: str) -> list[Action]:
        node = self._node()
        assert isinstance(node, Collect)
        stop = self._stop()
        self._prompt_over = True
        if key == node.terminator:
            return [*stop, *self._collected(now, node)]
        self._digits.append(key)
        if len(self._digits) >= node.max_digits:
            return [*stop, *self._collected(now, node)]
        self.deadline = now + node.digit_timeout
        return stop

    def _collected(self, now: float, node: Collect) -> list[Action]:
        value = "".join(self._digits)
        self._digits = []
        ok = len(value) >= node.min_digits and (
            node.pattern is None or full_match(node.pattern, value))
        if ok:
            self.variables[node.variable] = value
            return self._goto(now, node.next)
        return self._retry(now, node, node.invalid_prompt)

    def _retry(self, now: float, node: Menu | Collect, notice: str | None) -> list[Action]:
        self.deadline = None
        self._digits = []
        self._ahead = []  # keys typed ahead of a wrong one are out of step with the menu
        if self._tries >= node.retries:
            return self._goto(now, node.on_failure)
        self._tries += 1
        self._prompt_over = False
        segments = (notice, node.prompt) if notice else (node.prompt,)
        return [self._play(*segments)]

    def _recorded(self, now: float) -> list[Action]:
        node = self._node()
        assert isinstance(node, Voicemail)
        self.deadline = None
        return self._leave(now, node.done_prompt, "voicemail")

    def _announcement(self, node: QueueNode) -> tuple[str, ...]:
        parts = [POSITION if a == "position" else WAIT for a in node.announce]
        if node.callback_key is not None and node.callback_prompt:
            parts.append(node.callback_prompt)
        return tuple(parts)

    def _announce(self, now: float) -> list[Action]:
        node = self._node()
        assert isinstance(node, QueueNode)
        segments = self._announcement(node)
        if not segments or node.announce_every is None:
            return []
        self._next_announcement = now + node.announce_every
        self.state = _ANNOUNCING
        return [self._play(*segments)]

    def _leave(self, now: float, prompt: str | None, outcome: str) -> list[Action]:
        self.deadline = None
        if prompt:
            self.state = _LEAVING
            self._after = outcome
            return [self._play(prompt)]
        return self._finish(outcome)

    def _finish(self, outcome: str) -> list[Action]:
        self.state = _DONE
        self.deadline = None
        self.outcome = outcome
        return [Disconnect(outcome)]

    def _fill(self, template: str) -> str:
        return _TEMPLATE.sub(lambda m: self.variables.get(m.group(1), ""), template)[:200]
