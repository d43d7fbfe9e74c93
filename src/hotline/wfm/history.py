"""A forecast's history from the stored call events: calls offered and AHT per interval, for
one queue or the whole center, exactly as the interval reports count them (``Metrics``: a
call counts in the interval it entered the queue; AHT is talk + hold + wrap-up of the calls
whose wrap-up ended; for the whole center each call is offered once, overflows or not).
Only intervals with something to report are rows: a day without any is unknown to the
forecast (the server may have been down), a missing interval within a day had no calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hotline.cms.metrics import Metrics
from hotline.events.types import Event

COLUMNS = ["interval_start", "calls", "aht"]


def local_iso(t: float) -> str:
    """Unix seconds as ISO 8601 local time with its UTC offset (as the reports write times)."""
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def history_rows(events: Iterable[Event], *, start: float, step: float,
                 queue: str | None = None) -> list[dict[str, Any]]:
    """``interval_start``, ``calls`` (offered) and ``aht`` (seconds, None when no call was
    handled) per interval of ``step`` seconds from ``start``, in time order."""
    metrics = Metrics(interval=step, origin=start)
    metrics.feed_all(events)
    if queue is None:
        rows = metrics.interval_totals()
    else:
        rows = [r for r in metrics.intervals() if r["queue"] == queue]
    return [{"interval_start": local_iso(r["start"]), "calls": r["offered"], "aht": r["aht"]}
            for r in rows]


def passed(start: float, end: float, step: float, now: float) -> float:
    """``end``, or if that is later than ``now`` the end of the last whole interval before
    ``now``: an interval still running would pass for a quiet one."""
    return min(end, start + max((now - start) // step, 0) * step)
