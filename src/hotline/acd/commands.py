"""Commands the ACD hands to its driver: things only the I/O shell can do (ring a phone,
play a prompt, dial out). The engine never waits for them; the driver reports back with
inputs such as ``answer`` or ``callback_answered``."""

from __future__ import annotations

from typing import Any, ClassVar


class Command:
    __slots__ = ("call",)
    fields: ClassVar[tuple[str, ...]] = ("call",)

    def __init__(self, call: str) -> None:
        self.call = call

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.fields)
        return f"{type(self).__name__}({args})"


class Offer(Command):
    """Ring ``agent`` with the call (screen-pop ``data``)."""

    fields: ClassVar[tuple[str, ...]] = ("call", "agent", "queue", "data")
    __slots__ = ("agent", "data", "queue")

    def __init__(
        self, call: str, agent: str, queue: str, data: dict[str, Any] | None = None
    ) -> None:
        self.call = call
        self.agent = agent
        self.queue = queue
        self.data = data


class CancelOffer(Command):
    fields: ClassVar[tuple[str, ...]] = ("call", "agent", "reason")
    __slots__ = ("agent", "reason")

    def __init__(self, call: str, agent: str, reason: str) -> None:
        self.call = call
        self.agent = agent
        self.reason = reason


class Reject(Command):
    """Tell the caller the queue will not take the call (play a message, hang up or reroute)."""

    fields: ClassVar[tuple[str, ...]] = ("call", "queue", "reason")
    __slots__ = ("queue", "reason")

    def __init__(self, call: str, queue: str, reason: str) -> None:
        self.call = call
        self.queue = queue
        self.reason = reason


class Announce(Command):
    """Tell the caller their position (1 = next) and expected wait in seconds."""

    fields: ClassVar[tuple[str, ...]] = ("call", "position", "ewt")
    __slots__ = ("ewt", "position")

    def __init__(self, call: str, position: int, ewt: float) -> None:
        self.call = call
        self.position = position
        self.ewt = ewt


class ExitToCallback(Command):
    """Tell the caller they will be called back and release the caller's line."""

    fields: ClassVar[tuple[str, ...]] = ("call", "queue")
    __slots__ = ("queue",)

    def __init__(self, call: str, queue: str) -> None:
        self.call = call
        self.queue = queue


class DialCallback(Command):
    """Call the customer back; ``agent`` is reserved for them. Report the outcome with
    ``callback_answered`` or ``callback_failed``."""

    fields: ClassVar[tuple[str, ...]] = ("call", "agent", "queue", "number")
    __slots__ = ("agent", "number", "queue")

    def __init__(self, call: str, agent: str, queue: str, number: str | None) -> None:
        self.call = call
        self.agent = agent
        self.queue = queue
        self.number = number
