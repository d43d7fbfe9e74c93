"""Human durations ("20s", "3m", "1h30m", "90") used by scenario files and the CLI."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Return seconds; bare numbers are seconds. Raises ValueError with the offending text."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"not a duration: {value!r} (use e.g. 20s, 3m, 1h30m or plain seconds)"
                ) from None
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError(f"duration must be a finite number of seconds ≥ 0: {value!r}")
    return seconds
