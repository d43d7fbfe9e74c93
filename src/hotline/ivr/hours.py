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
    holidays: dict[date, list[tuple[str, str]]]  # a holiday's own hours (none: closed)

    @classmethod
    def from_config(cls, timezone: str, weekly: dict[str, Any], holidays: list[Any]) -> Calendar:
        days: dict[date, list[tuple[str, str]]] = {}
        for h in holidays:
            value = h.get("date") if isinstance(h, dict) else h
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
            hours = h.get("hours", []) if isinstance(h, dict) else []
            days[day] = [(str(a), str(b)) for a, b in hours]
        return cls(ZoneInfo(timezone),
                   {d: [(str(a), str(b)) for a, b in r] for d, r in weekly.items()}, days)

    def state_at(self, unix: float) -> Literal["open", "closed", "holiday"]:
        local = datetime.fromtimestamp(unix, self.timezone)
        clock = local.strftime("%H:%M")
        special = self.holidays.get(local.date())
        if special is not None:  # a holiday: its own hours, if it has any, else closed
            return "open" if _within(clock, special) else "holiday"
        return "open" if _within(clock, self.weekly.get(_DAYS[local.weekday()], [])) \
            else "closed"


def _within(clock: str, ranges: list[tuple[str, str]]) -> bool:
    return any(start <= clock < end for start, end in ranges)  # "24:00" sorts after all
