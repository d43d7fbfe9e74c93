"""A realistic call history to measure forecasts on when no real one is at hand: open 08:00 to
20:00, busier Mondays and quieter weekends, a morning and an afternoon peak, Poisson counts
around that mean, a slow trend, closed hours absent from the file and some whole days missing
(an outage of the recorder), as real exports have."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from hotline.wfm.staffing import Interval

DAY_TOTAL = (2600.0, 2200.0, 2100.0, 2100.0, 2000.0, 1100.0, 700.0)  # Monday first


def _shape(hour: float) -> float:
    return math.exp(-((hour - 10.5) ** 2) / 2.0) + 0.8 * math.exp(-((hour - 15) ** 2) / 3.0)


def mean_calls(t: datetime, step: float, weeks_from_start: float = 0.0,
               growth: float = 0.01) -> float:
    """Expected calls in the interval starting at ``t`` (0 when closed): the weekday's total,
    spread over the open hours by the two-peak shape, growing by ``growth`` of the first
    week's volume each week."""
    slots = [8 + k * step / 3600 for k in range(round(12 * 3600 / step))]
    h = t.hour + t.minute / 60
    if not 8 <= h < 20:
        return 0.0
    share = _shape(h) / sum(_shape(x) for x in slots)
    return DAY_TOTAL[t.weekday()] * share * (1 + growth * weeks_from_start)


def history(weeks: int, step: float = 1800, seed: int = 1,
            missing_days: tuple[int, ...] = (17,), growth: float = 0.01) -> list[Interval]:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 5)  # a Monday
    rows = []
    for i in range(round(weeks * 7 * 86400 / step)):
        t = start + timedelta(seconds=i * step)
        if (t - start).days in missing_days:
            continue
        mean = mean_calls(t, step, (t - start).days / 7, growth)
        if mean > 0:
            rows.append(Interval(t, float(rng.poisson(mean)), None))
    return rows
