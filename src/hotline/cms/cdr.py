"""Call detail records folded from the event stream.

One record per call segment: opened by ``call_arrived``, filled in as the call is answered,
talked and wrapped up, and closed with an ``outcome``. The fold returns the fields each event
changes, so the server writes a CDR in the same transaction as the events it comes from.
"""

from __future__ import annotations

from typing import Any

from hotline.events.types import (
    CallAbandoned,
    CallAnswered,
    CallArrived,
    CallbackFailed,
    CallClosed,
    CallDisposed,
    CallEnded,
    CallOverflowed,
    CallQueued,
    CallRecorded,
    CallRejected,
    CallTransferred,
    CallTransferredOut,
    Event,
    OutboundAnswered,
    OutboundDialed,
    OutboundEnded,
    OutboundFailed,
    WrapUpEnded,
)

# Outcomes a CDR can end with.
OUTCOMES = ("answered", "abandoned", "rejected", "callback_failed", "closed", "transferred",
            "not_reached")

CdrChange = tuple[str, dict[str, Any]]  # (call id, changed fields)


class CdrFold:
    """Derives CDR changes from events; remembers only calls still in progress."""

    def __init__(self) -> None:
        self._transfers: dict[str, str] = {}  # new segment -> the call it continues
        self._outcome: dict[str, str] = {}  # open calls with an outcome decided early

    def feed(self, e: Event) -> CdrChange | None:
        cls = type(e)
        if cls is CallArrived:
            a: CallArrived = e  # type: ignore[assignment]
            return a.call, {
                "queue": a.queue,
                "final_queue": a.queue,
                "number": a.number,
                "caller": a.data or {},
                "arrived_at": a.t,
                "transferred_from": self._transfers.pop(a.call, None),
            }
        if cls is CallQueued:
            q: CallQueued = e  # type: ignore[assignment]
            return q.call, {"final_queue": q.queue}
        if cls is CallOverflowed:
            o: CallOverflowed = e  # type: ignore[assignment]
            return o.call, {"final_queue": o.to_queue}
        if cls is CallAnswered:
            an: CallAnswered = e  # type: ignore[assignment]
            return an.call, {"answered_at": an.t, "agent": an.agent, "wait": an.wait}
        if cls is CallEnded:
            en: CallEnded = e  # type: ignore[assignment]
            return en.call, {"ended_at": en.t, "talk": en.talk, "hold": en.hold}
        if cls is CallTransferred:
            tr: CallTransferred = e  # type: ignore[assignment]
            self._transfers[tr.to_call] = tr.call
            self._outcome[tr.call] = "transferred"
            return None
        if cls is CallTransferredOut:
            to: CallTransferredOut = e  # type: ignore[assignment]
            self._outcome[to.call] = "transferred"
            return to.call, {"cause": "external"}
        if cls is WrapUpEnded:
            w: WrapUpEnded = e  # type: ignore[assignment]
            outcome = self._outcome.pop(w.call, "answered")
            return w.call, {"wrap": w.wrap, "outcome": outcome}
        if cls is CallAbandoned:
            ab: CallAbandoned = e  # type: ignore[assignment]
            return ab.call, {"ended_at": ab.t, "wait": ab.wait, "outcome": "abandoned"}
        if cls is CallRejected:
            r: CallRejected = e  # type: ignore[assignment]
            return r.call, {"ended_at": r.t, "outcome": "rejected", "cause": r.reason}
        if cls is CallbackFailed:
            cb: CallbackFailed = e  # type: ignore[assignment]
            return cb.call, {"ended_at": cb.t, "outcome": "callback_failed"}
        if cls is CallClosed:
            c: CallClosed = e  # type: ignore[assignment]
            self._outcome.pop(c.call, None)
            return c.call, {"ended_at": c.t, "outcome": "closed", "cause": c.cause}
        if cls is OutboundDialed:  # an agent's call out: ``arrived_at`` is when it was dialled
            od: OutboundDialed = e  # type: ignore[assignment]
            return od.call, {
                "direction": "outbound",
                "queue": od.queue,
                "final_queue": od.queue,
                "number": od.number,
                "agent": od.agent,
                "arrived_at": od.t,
            }
        if cls is OutboundAnswered:  # ``wait`` is how long the customer's phone rang
            oa: OutboundAnswered = e  # type: ignore[assignment]
            return oa.call, {"answered_at": oa.t, "wait": oa.ring}
        if cls is OutboundEnded:
            oe: OutboundEnded = e  # type: ignore[assignment]
            return oe.call, {"ended_at": oe.t, "talk": oe.talk, "hold": oe.hold}
        if cls is OutboundFailed:
            of: OutboundFailed = e  # type: ignore[assignment]
            return of.call, {"ended_at": of.t, "wait": of.ring, "outcome": "not_reached",
                             "cause": of.reason}
        if cls is CallRecorded:
            rec: CallRecorded = e  # type: ignore[assignment]
            return rec.call, {"recording": rec.recording}
        if cls is CallDisposed:
            d: CallDisposed = e  # type: ignore[assignment]
            return d.call, {"disposition": d.disposition, "note": d.note}
        return None
