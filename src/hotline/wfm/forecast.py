"""Call-volume forecasts per interval from a history of the same shape (``interval_start``,
``calls``), with the weekly season a call center lives by.

Methods: ``seasonal-naive`` (the same slot last week) and ``historical-average`` (its mean
over the last four weeks) are the baselines; ``profile`` is top-down: each weekday's daily
total (mean of the last four of that weekday) spread by that weekday's intraday profile.
``auto`` backtests every method from several rolling origins on the history itself and takes
the one with the lowest interval MAPE. A day without any row (a gap in the data) is unknown,
not zero: it is skipped by every mean and every error; within a day that has rows, an
interval left out had no calls (closed hours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from hotline.wfm.staffing import ForecastError, Interval, interval_length

WEEK = 7 * 86400.0
WEEKS = 4  # how far back the averages look
Series = npt.NDArray[np.float64]


@dataclass(frozen=True)
class History:
    """The history on a regular grid: ``calls[i]`` for ``start + i * step`` (NaN: unknown)."""

    start: datetime
    step: float
    calls: Series

    @property
    def season(self) -> int:
        return round(WEEK / self.step)

    @property
    def day(self) -> int:
        return round(86400.0 / self.step)

    @property
    def offset(self) -> int:
        """Slots from the first day's midnight to ``start``: days are calendar days."""
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return round((self.start - midnight).total_seconds() / self.step)


def history(rows: list[Interval], step: float | None = None) -> History:
    step = step or interval_length(rows)
    if WEEK % step:
        raise ForecastError(f"the interval ({step:g} s) must divide a week")
    start = rows[0].start
    n = round((rows[-1].start - start).total_seconds() / step) + 1
    calls = np.full(n, np.nan)
    for r in rows:
        offset = (r.start - start).total_seconds() / step
        if offset != round(offset):
            raise ForecastError(f"{r.start.isoformat()} is not on the {step:g}-second grid")
        calls[round(offset)] = r.calls
    h = History(start, step, calls)
    # Within a day the file has rows for, an interval it leaves out had no calls (closed, or
    # an export that skips zeros); a day without any row is unknown (a gap in the data).
    day_of = (np.arange(n) + h.offset) // h.day
    seen = np.unique(day_of[~np.isnan(calls)])
    calls[np.isnan(calls) & np.isin(day_of, seen)] = 0.0
    return h


def _same_slot(h: History, horizon: int) -> npt.NDArray[np.float64]:
    """Rows: the last ``WEEKS`` weeks' values at each future slot (NaN where unknown)."""
    n, s = len(h.calls), h.season
    idx = np.arange(n, n + horizon)
    back = np.stack([idx - k * s for k in range(1, WEEKS + 1)])  # (WEEKS, horizon)
    # a slot further ahead than a week repeats the forecast's own last week: look further back
    back = back - s * np.ceil(np.maximum(back - (n - 1), 0) / s).astype(int)
    return np.where(back >= 0, h.calls[np.clip(back, 0, None)], np.nan)


def seasonal_naive(h: History, horizon: int) -> Series:
    past = _same_slot(h, horizon)
    first = np.argmax(~np.isnan(past), axis=0)  # the latest week that has the slot
    out = past[first, np.arange(horizon)]
    return np.nan_to_num(out)


def historical_average(h: History, horizon: int) -> Series:
    past = _same_slot(h, horizon)
    known = ~np.isnan(past)
    total = np.where(known, past, 0.0).sum(axis=0)
    count = known.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def profile(h: History, horizon: int) -> Series:
    """Weekday total × weekday intraday shares, both from complete days of the last weeks."""
    d, s = h.day, h.season
    n = len(h.calls)
    out = np.zeros(horizon)
    for i in range(horizon):
        slot = n + i
        in_day = (slot + h.offset) % d
        day0 = slot - in_day  # the forecast day's first slot
        totals, shares = [], []
        for k in range(1, WEEKS + 1):
            first = day0 - k * s
            if first < 0:
                break  # (a first, partial day of history is never complete: skipped)
            if first + d > n:
                continue
            day = h.calls[first:first + d]
            if np.isnan(day).any():
                continue
            total = float(day.sum())
            totals.append(total)
            if total > 0:
                shares.append(day[in_day] / total)
        if totals:
            out[i] = float(np.mean(totals)) * (float(np.mean(shares)) if shares else 0.0)
    return out


METHODS: dict[str, Callable[[History, int], Series]] = {
    "seasonal-naive": seasonal_naive,
    "historical-average": historical_average,
    "profile": profile,
}


@dataclass(frozen=True)
class Accuracy:
    method: str
    mape: float  # interval MAPE over intervals with calls, in %
    mae: float  # calls per interval
    daily_error: float  # mean absolute error of daily totals, in %


def backtest(h: History, horizon: int, origins: int = 3) -> list[Accuracy]:
    """Each method's error when forecasting ``horizon`` intervals from each of the last
    ``origins`` week boundaries, knowing only what came before."""
    s, d = h.season, h.day
    n = len(h.calls)
    starts = [n - horizon - k * s for k in range(origins)]
    starts = [o for o in starts if o >= WEEKS * s]
    if not starts:
        raise ForecastError(
            f"a backtest needs {WEEKS} weeks of history before the horizon it tests")
    out = []
    for name, method in METHODS.items():
        errs: list[float] = []
        abs_errs: list[float] = []
        daily: list[float] = []
        for o in starts:
            past = History(h.start, h.step, h.calls[:o])
            actual = h.calls[o:o + horizon]
            predicted = method(past, len(actual))
            known = ~np.isnan(actual)
            abs_errs.extend(np.abs(predicted - actual)[known])
            busy = known & (actual > 0)
            errs.extend(np.abs(predicted - actual)[busy] / actual[busy])
            for first in range((-(o + h.offset)) % d, len(actual) - d + 1, d):
                a, p = actual[first:first + d], predicted[first:first + d]
                if not np.isnan(a).any() and a.sum() > 0:
                    daily.append(abs(p.sum() - a.sum()) / a.sum())
        out.append(Accuracy(name, 100 * float(np.mean(errs)) if errs else float("nan"),
                            float(np.mean(abs_errs)) if abs_errs else float("nan"),
                            100 * float(np.mean(daily)) if daily else float("nan")))
    return out


def forecast(h: History, horizon: int, method: str) -> list[Interval]:
    values = METHODS[method](h, horizon)
    first = h.start + timedelta(seconds=h.step * len(h.calls))
    return [Interval(first + timedelta(seconds=h.step * i), round(float(v), 2), None)
            for i, v in enumerate(values)]
