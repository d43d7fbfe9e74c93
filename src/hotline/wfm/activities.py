"""A roster as what each named agent is scheduled to do when: the one format the rostering
step writes, the simulator replays, the server publishes and adherence compares live states
against. CSV ``agent,start,end,activity`` (ISO 8601 local times); time no row covers is time
off."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

#: ``work``: on the phones (ready, on a call, in wrap-up); ``break`` paid, ``meal`` unpaid;
#: ``meeting`` and ``training`` are scheduled time off the phones that is still work.
ACTIVITY_KINDS = ("work", "break", "meal", "meeting", "training")
COLUMNS = ("agent", "start", "end", "activity")


class ActivityError(ValueError):
    """An activity file that cannot be used: says the line and the column."""


@dataclass(frozen=True, slots=True)
class Activity:
    agent: str
    start: datetime
    end: datetime
    kind: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def read_activities(text: str) -> list[Activity]:
    """Rows sorted by agent then start; overlapping activities of one agent are an error
    (one person cannot be on a break and in a meeting at once)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = set(COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ActivityError(f"line 1: missing column(s) {', '.join(sorted(missing))}")
    rows: list[tuple[int, Activity]] = []
    for line, row in enumerate(reader, start=2):
        agent = (row["agent"] or "").strip()
        if not agent:
            raise ActivityError(f"line {line}: agent is empty")
        times = []
        for column in ("start", "end"):
            raw = (row[column] or "").strip()
            try:
                times.append(datetime.fromisoformat(raw))
            except ValueError:
                raise ActivityError(
                    f"line {line}: {column} {raw!r} is not an ISO 8601 time"
                ) from None
        kind = (row["activity"] or "").strip().lower()
        if kind not in ACTIVITY_KINDS:
            raise ActivityError(
                f"line {line}: activity {kind!r} is not one of {', '.join(ACTIVITY_KINDS)}"
            )
        if times[1] <= times[0]:
            raise ActivityError(f"line {line}: end must be after start")
        rows.append((line, Activity(agent, times[0], times[1], kind)))
    rows.sort(key=lambda r: (r[1].agent, r[1].start))
    for (_, a), (line, b) in pairwise(rows):
        if a.agent == b.agent and b.start < a.end:
            raise ActivityError(
                f"line {line}: {b.agent}'s {b.kind} at {b.start.isoformat()} overlaps "
                f"their {a.kind} until {a.end.isoformat()}"
            )
    return [a for _, a in rows]


def write_activities(activities: Iterable[Activity]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for a in activities:
        writer.writerow((a.agent, a.start.isoformat(), a.end.isoformat(), a.kind))
    return out.getvalue()
