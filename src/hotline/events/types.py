"""Typed call-center events: the record from which every report is computed.

Every state transition in the ACD produces exactly one of these. ``t`` is the engine's clock
in seconds (virtual seconds in the simulator, Unix time in the server). Events are small
slotted classes with hand-written constructors (they are created on the hot path, and
compiled code runs them natively) and serialise to one JSON object each (JSON lines).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar


class Event:
    __slots__ = ("t",)
    fields: ClassVar[tuple[str, ...]] = ("t",)

    def __init__(self, t: float) -> None:
        self.t = t

    @property
    def type(self) -> str:
        """Snake-case name of the event class (``CallArrived`` -> ``call_arrived``)."""
        return EVENT_NAMES[self.__class__]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in self.fields:
            value = getattr(self, name)
            if value is not None and value != ():
                out[name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Event)
            and type(other) is type(self)
            and (self.to_dict() == other.to_dict())
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields)
        return f"{type(self).__name__}({args})"


class CallArrived(Event):
    """A call reached the ACD asking for a queue (before it is queued or rejected).

    ``number`` and ``data`` (caller data for screen-pop) are kept when the caller has them."""

    __slots__ = ("call", "data", "number", "priority", "queue")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "priority", "number", "data")

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        priority: int,
        number: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.priority = priority
        self.number = number
        self.data = data


class CallQueued(Event):
    """The call entered a queue; ``position`` (1 = next) and ``ewt`` are what it was told."""

    __slots__ = ("call", "ewt", "overflow_from", "position", "priority", "queue")
    fields: ClassVar[tuple[str, ...]] = (
        "t",
        "call",
        "queue",
        "priority",
        "position",
        "ewt",
        "overflow_from",
    )

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        priority: int,
        position: int,
        ewt: float,
        overflow_from: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.priority = priority
        self.position = position
        self.ewt = ewt
        self.overflow_from = overflow_from


class CallRejected(Event):
    """The queue refused the call (full, or nobody logged in and the queue rejects when empty)."""

    __slots__ = ("call", "queue", "reason")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "reason")

    def __init__(self, t: float, call: str, queue: str, reason: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.reason = reason


class CallOffered(Event):
    __slots__ = ("agent", "call", "queue")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent")

    def __init__(self, t: float, call: str, queue: str, agent: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent


class OfferCancelled(Event):
    """An offer ended without this agent answering: ``no_answer`` (RONA), ``answered_elsewhere``
    (ring-all), ``caller_left``, ``agent_unavailable`` or ``ring_timeout`` (ring-all retry)."""

    __slots__ = ("agent", "call", "queue", "reason")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "reason")

    def __init__(self, t: float, call: str, queue: str, agent: str, reason: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.reason = reason


class CallAnswered(Event):
    """``wait`` runs from the call's original arrival (kept across overflow) to the answer."""

    __slots__ = ("agent", "call", "queue", "wait")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "wait")

    def __init__(self, t: float, call: str, queue: str, agent: str, wait: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.wait = wait


class CallAbandoned(Event):
    """The caller hung up before being answered (``ringing`` if an agent was being offered it)."""

    __slots__ = ("call", "queue", "ringing", "wait")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "wait", "ringing")

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        wait: float,
        ringing: bool = False,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.wait = wait
        self.ringing = ringing


class CallOverflowed(Event):
    __slots__ = ("call", "queue", "to_queue", "wait")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "to_queue", "wait")

    def __init__(self, t: float, call: str, queue: str, to_queue: str, wait: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.to_queue = to_queue
        self.wait = wait


class CallbackRequested(Event):
    """The caller left the queue but keeps their place; the ACD will call back."""

    __slots__ = ("call", "queue", "reason")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "reason")

    def __init__(self, t: float, call: str, queue: str, reason: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.reason = reason


class CallbackFailed(Event):
    """The callback was dialled for ``agent`` but the customer could not be reached."""

    __slots__ = ("agent", "call", "queue", "wait")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "wait")

    def __init__(self, t: float, call: str, queue: str, agent: str, wait: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.wait = wait


class CallHeld(Event):
    __slots__ = ("agent", "call")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "agent")

    def __init__(self, t: float, call: str, agent: str) -> None:
        self.t = t
        self.call = call
        self.agent = agent


class CallResumed(Event):
    __slots__ = ("agent", "call")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "agent")

    def __init__(self, t: float, call: str, agent: str) -> None:
        self.t = t
        self.call = call
        self.agent = agent


class CallEnded(Event):
    """The conversation ended; ``talk`` excludes ``hold``. Wrap-up follows."""

    __slots__ = ("agent", "call", "hold", "queue", "talk")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "talk", "hold")

    def __init__(
        self,
        t: float,
        call: str,
        queue: str,
        agent: str,
        talk: float,
        hold: float,
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.talk = talk
        self.hold = hold


class WrapUpEnded(Event):
    """After-call work is done: the call's handling is complete."""

    __slots__ = ("agent", "call", "queue", "wrap")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "wrap")

    def __init__(self, t: float, call: str, queue: str, agent: str, wrap: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.wrap = wrap


class AgentStateChanged(Event):
    """``queues`` lists the queues the agent serves; it is filled only on log-in."""

    __slots__ = ("agent", "prev", "queues", "reason", "state")
    fields: ClassVar[tuple[str, ...]] = ("t", "agent", "state", "prev", "reason", "queues")

    def __init__(
        self,
        t: float,
        agent: str,
        state: str,
        prev: str,
        reason: str | None = None,
        queues: tuple[str, ...] = (),
    ) -> None:
        self.t = t
        self.agent = agent
        self.state = state
        self.prev = prev
        self.reason = reason
        self.queues = queues


class AgentQueuesChanged(Event):
    """A logged-in agent's queues changed (skills or queue requirements were edited live)."""

    __slots__ = ("agent", "queues")
    fields: ClassVar[tuple[str, ...]] = ("t", "agent", "queues")

    def __init__(self, t: float, agent: str, queues: tuple[str, ...]) -> None:
        self.t = t
        self.agent = agent
        self.queues = queues


class CallClosed(Event):
    """The system ended a call it could no longer serve (``cause``, e.g. a server restart
    found it in progress). Neither answered nor abandoned by the caller: counted apart."""

    __slots__ = ("agent", "call", "cause", "queue")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "cause", "agent")

    def __init__(
        self, t: float, call: str, queue: str, cause: str, agent: str | None = None
    ) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.cause = cause


class CallTransferred(Event):
    """An agent transferred a connected call; it continues as ``to_call`` (a new segment
    that queues for ``queue``, or rings ``to_agent`` only)."""

    __slots__ = ("agent", "call", "queue", "to_agent", "to_call")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "agent", "to_call", "queue", "to_agent")

    def __init__(
        self,
        t: float,
        call: str,
        agent: str,
        to_call: str,
        queue: str,
        to_agent: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.agent = agent
        self.to_call = to_call
        self.queue = queue
        self.to_agent = to_agent


class CallDisposed(Event):
    """The agent recorded the call's outcome (a wrap-up disposition and note)."""

    __slots__ = ("agent", "call", "disposition", "note")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "agent", "disposition", "note")

    def __init__(
        self,
        t: float,
        call: str,
        agent: str,
        disposition: str | None = None,
        note: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.agent = agent
        self.disposition = disposition
        self.note = note


class PhoneRegistered(Event):
    """An agent's SIP phone registered (``contact`` from ``source``; first binding only)."""

    __slots__ = ("agent", "contact", "source", "user_agent")
    fields: ClassVar[tuple[str, ...]] = ("t", "agent", "contact", "source", "user_agent")

    def __init__(
        self, t: float, agent: str, contact: str, source: str, user_agent: str | None = None
    ) -> None:
        self.t = t
        self.agent = agent
        self.contact = contact
        self.source = source
        self.user_agent = user_agent


class PhoneUnregistered(Event):
    """An agent's SIP phone is no longer reachable (``reason``: unregistered, expired...)."""

    __slots__ = ("agent", "reason")
    fields: ClassVar[tuple[str, ...]] = ("t", "agent", "reason")

    def __init__(self, t: float, agent: str, reason: str) -> None:
        self.t = t
        self.agent = agent
        self.reason = reason


class CallRecorded(Event):
    """A call's recording was saved (``recording``: its path in the recordings store)."""

    __slots__ = ("call", "duration", "recording")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "recording", "duration")

    def __init__(self, t: float, call: str, recording: str, duration: float) -> None:
        self.t = t
        self.call = call
        self.recording = recording
        self.duration = duration


class IvrEnded(Event):
    """A caller left the IVR: handed to ``queue``, or ``outcome`` (hangup, voicemail, callback,
    abandoned...) ended the call there. ``path`` is the nodes visited, for menu reports."""

    __slots__ = ("call", "duration", "flow", "language", "number", "outcome", "path", "queue",
                 "version")
    fields: ClassVar[tuple[str, ...]] = (
        "t", "call", "flow", "version", "outcome", "queue", "language", "duration", "number",
        "path",
    )

    def __init__(
        self,
        t: float,
        call: str,
        flow: str,
        version: int,
        outcome: str,
        queue: str | None = None,
        language: str | None = None,
        duration: float = 0.0,
        number: str | None = None,
        path: list[str] | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.flow = flow
        self.version = version
        self.outcome = outcome
        self.queue = queue
        self.language = language
        self.duration = duration
        self.number = number
        self.path = path


class VoicemailLeft(Event):
    """A caller left a message for ``mailbox`` (``recording``: its path in the store)."""

    __slots__ = ("call", "duration", "language", "mailbox", "number", "recording")
    fields: ClassVar[tuple[str, ...]] = (
        "t", "call", "mailbox", "recording", "duration", "number", "language",
    )

    def __init__(
        self,
        t: float,
        call: str,
        mailbox: str,
        recording: str,
        duration: float,
        number: str | None = None,
        language: str | None = None,
    ) -> None:
        self.t = t
        self.call = call
        self.mailbox = mailbox
        self.recording = recording
        self.duration = duration
        self.number = number
        self.language = language


class CallMonitored(Event):
    """A supervisor's phone joined, changed how it takes part in, or left a call: ``mode`` is
    listen (hears both), whisper (the agent hears the supervisor too), barge (all three hear
    each other), take_over (the supervisor replaced ``agent``), or ended."""

    __slots__ = ("agent", "call", "mode", "supervisor")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "supervisor", "mode", "agent")

    def __init__(self, t: float, call: str, supervisor: str, mode: str,
                 agent: str | None = None) -> None:
        self.t = t
        self.call = call
        self.supervisor = supervisor
        self.mode = mode
        self.agent = agent


class CallRecordingChanged(Event):
    """The recording of a call was started on demand, paused (e.g. for a card number) or
    resumed; paused stretches are silence in the file."""

    __slots__ = ("call", "state")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "state")

    def __init__(self, t: float, call: str, state: str) -> None:
        self.t = t
        self.call = call
        self.state = state


class OutboundDialed(Event):
    """An agent calls a customer (click-to-call): the agent is busy while it rings. Outbound
    calls have their own events, so a queue's inbound figures (service level, ASA, abandon
    rate) never count them; ``queue`` is the one they are made for (wrap-up, reporting)."""

    __slots__ = ("agent", "call", "number", "queue")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "number")

    def __init__(self, t: float, call: str, queue: str, agent: str, number: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.number = number


class OutboundAnswered(Event):
    """The customer answered the agent's call after ringing for ``ring`` seconds."""

    __slots__ = ("agent", "call", "queue", "ring")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "ring")

    def __init__(self, t: float, call: str, queue: str, agent: str, ring: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.ring = ring


class OutboundFailed(Event):
    """The customer was not reached: ``reason`` is no_answer, busy, rejected, unreachable,
    cancelled (the agent gave up) or agent_unreachable (the agent's own phone did not)."""

    __slots__ = ("agent", "call", "queue", "reason", "ring")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "reason", "ring")

    def __init__(self, t: float, call: str, queue: str, agent: str, reason: str,
                 ring: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.reason = reason
        self.ring = ring


class OutboundEnded(Event):
    """An answered outbound call's conversation ended; ``talk`` excludes ``hold``. Wrap-up
    follows (``wrap_up_ended``), as after an inbound call."""

    __slots__ = ("agent", "call", "hold", "queue", "talk")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "talk", "hold")

    def __init__(self, t: float, call: str, queue: str, agent: str, talk: float,
                 hold: float) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.talk = talk
        self.hold = hold


class CallTransferredOut(Event):
    """An agent transferred a connected call to an outside ``number`` (through a trunk): the
    agent's segment ends, and the caller leaves the center's queues."""

    __slots__ = ("agent", "call", "number", "queue")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "number")

    def __init__(self, t: float, call: str, queue: str, agent: str, number: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.number = number


class ConsultStarted(Event):
    """The agent on a call consults someone (attended transfer, or the start of a conference)
    while the caller holds: another agent (``to_agent``, made busy, reason ``consult``) or
    an outside ``number``."""

    __slots__ = ("agent", "call", "number", "queue", "to_agent")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "to_agent", "number")

    def __init__(self, t: float, call: str, queue: str, agent: str,
                 to_agent: str | None = None, number: str | None = None) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.to_agent = to_agent
        self.number = number


class ConsultEnded(Event):
    """The consultation is over: ``how`` is transferred (the caller now talks to the one
    consulted), cancelled (the agent took the caller back), failed (not reached), left (the
    one consulted hung up) or caller_left."""

    __slots__ = ("agent", "call", "how", "number", "queue", "to_agent")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "queue", "agent", "to_agent", "number",
                                         "how")

    def __init__(self, t: float, call: str, queue: str, agent: str, to_agent: str | None,
                 number: str | None, how: str) -> None:
        self.t = t
        self.call = call
        self.queue = queue
        self.agent = agent
        self.to_agent = to_agent
        self.number = number
        self.how = how


class CallConferenced(Event):
    """The caller, the agent and the one consulted now all hear each other."""

    __slots__ = ("agent", "call", "number", "to_agent")
    fields: ClassVar[tuple[str, ...]] = ("t", "call", "agent", "to_agent", "number")

    def __init__(self, t: float, call: str, agent: str, to_agent: str | None = None,
                 number: str | None = None) -> None:
        self.t = t
        self.call = call
        self.agent = agent
        self.to_agent = to_agent
        self.number = number


_EVENT_CLASSES: tuple[type[Event], ...] = (
    CallArrived,
    CallQueued,
    CallRejected,
    CallOffered,
    OfferCancelled,
    CallAnswered,
    CallAbandoned,
    CallOverflowed,
    CallbackRequested,
    CallbackFailed,
    CallHeld,
    CallResumed,
    CallEnded,
    WrapUpEnded,
    AgentStateChanged,
    AgentQueuesChanged,
    CallClosed,
    CallTransferred,
    CallDisposed,
    PhoneRegistered,
    PhoneUnregistered,
    CallRecorded,
    IvrEnded,
    VoicemailLeft,
    CallMonitored,
    CallRecordingChanged,
    OutboundDialed,
    OutboundAnswered,
    OutboundFailed,
    OutboundEnded,
    CallTransferredOut,
    ConsultStarted,
    ConsultEnded,
    CallConferenced,
)
EVENT_NAMES: dict[type, str] = {
    cls: re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower() for cls in _EVENT_CLASSES
}
EVENT_TYPES: dict[str, type[Event]] = {name: cls for cls, name in EVENT_NAMES.items()}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form (the inverse of ``Event.to_dict``)."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    for name in cls.fields:  # ``to_dict`` leaves out empty values
        if name not in data:
            data[name] = () if name == "queues" else None
    if "queues" in data:
        data["queues"] = tuple(data["queues"])
    return cls(**data)
