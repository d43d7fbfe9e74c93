"""Business-hours calendars: is the center open at a given instant, in its own time zone?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Calendar:
    timezone: ZoneInfo
    weekly: dict[str, list[tuple[str, str]]]  # "mon" -> [("08:00", "20:00"), ...]
    holidays: frozenset[date]

    @classmethod
    def from_config(cls, timezone: str, weekly: dict[str, Any], holidays: list[Any]) -> Calendar:
        days: set[date] = set()
        for h in holidays:
            value = h.get("date") if isinstance(h, dict) else h
            days.add(value if isinstance(value, date) else date.fromisoformat(str(value)))
        return cls(ZoneInfo(timezone),
                   {d: [(str(a), str(b)) for a, b in r] for d, r in weekly.items()},
                   frozenset(days))

    def state_at(self, unix: float) -> Literal["open", "closed", "holiday"]:
        local = datetime.fromtimestamp(unix, self.timezone)
        if local.date() in self.holidays:
            return "holiday"
        clock = local.strftime("%H:%M")
        for start, end in self.weekly.get(_DAYS[local.weekday()], []):
            if start <= clock < end:  # "24:00" sorts after every clock time
                return "open"
        return "closed"
