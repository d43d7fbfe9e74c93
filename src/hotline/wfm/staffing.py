"""Agents required per interval of a forecast: each interval sized on its own with Erlang C
(or Erlang A with a mean patience) by ``erlang.required_agents``, then grossed up by shrinkage
into positions. The forecast file is the one ``wfm forecast`` writes (and takes as history):
``interval_start`` (ISO 8601 local time), ``calls``, optional ``aht`` in seconds."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from hotline.wfm.erlang import ErlangInputError, required_agents


class ForecastError(ValueError):
    """A forecast file that cannot be read: says the line and the column."""


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    calls: float
    aht: float | None  # seconds; None: the default AHT applies


def read_forecast(text: str, column: str = "calls") -> list[Interval]:
    """The file's rows in time order; a bad row names its line, nothing is guessed.
    ``column`` is read as the calls (a requirement file's ``positions`` or ``agents``)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    missing = {"interval_start", column} - columns
    if missing:
        raise ForecastError(f"line 1: missing column(s) {', '.join(sorted(missing))}")
    rows: list[Interval] = []
    for line, row in enumerate(reader, start=2):
        try:
            start = datetime.fromisoformat((row["interval_start"] or "").strip())
        except ValueError:
            raise ForecastError(
                f"line {line}: interval_start {row['interval_start']!r} is not an ISO 8601 time"
            ) from None
        calls = _number(line, column, row[column])
        raw_aht = (row.get("aht") or "").strip()
        aht = _number(line, "aht", raw_aht) if raw_aht else None
        if calls is None or calls < 0:
            raise ForecastError(f"line {line}: {column} must be a number ≥ 0")
        if aht is not None and aht <= 0:
            raise ForecastError(f"line {line}: aht must be > 0 seconds")
        if rows and start <= rows[-1].start:
            raise ForecastError(f"line {line}: interval_start must increase ({start.isoformat()})")
        rows.append(Interval(start, calls, aht))
    if not rows:
        raise ForecastError("no intervals")
    return rows


def _number(line: int, column: str, raw: str | None) -> float | None:
    try:
        value = float((raw or "").strip())
    except ValueError:
        raise ForecastError(f"line {line}: {column} {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ForecastError(f"line {line}: {column} must be finite")
    return value


def interval_length(rows: list[Interval]) -> float:
    """The forecast's interval in seconds: the most common step between rows (gaps such as
    closed nights are longer steps and do not count)."""
    steps = Counter((b.start - a.start).total_seconds() for a, b in pairwise(rows))
    if not steps:
        raise ForecastError("one interval only: give its length with --interval")
    return steps.most_common(1)[0][0]


def staff(
    rows: list[Interval],
    *,
    period: float,
    aht: float | None,
    sl_time: float,
    sl_target: float,
    patience: float | None = None,
    shrinkage: float = 0.0,
    max_occupancy: float = 1.0,
) -> list[dict[str, Any]]:
    """One result per interval: agents on the phones, positions to schedule, and the service
    level, ASA, occupancy (and abandon rate under Erlang A) those agents would give."""
    out = []
    for row in rows:
        handle = row.aht if row.aht is not None else aht
        if handle is None:
            raise ErlangInputError(
                "aht", f"{row.start.isoformat()} has no aht in the file: give --aht"
            )
        r = required_agents(calls=row.calls, period=period, aht=handle, sl_time=sl_time,
                            sl_target=sl_target, patience=patience, shrinkage=shrinkage,
                            max_occupancy=max_occupancy)
        out.append({
            "interval_start": row.start.isoformat(),
            "calls": row.calls,
            "aht": handle,
            "agents": r.agents,
            "positions": r.positions,
            "service_level": r.service_level,
            "asa": r.asa,
            "occupancy": r.occupancy,
            "abandon_rate": r.abandon_rate,
        })
    return out
