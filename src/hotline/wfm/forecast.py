"""Call-volume forecasts per interval from a history of the same shape (``interval_start``,
``calls``, optional ``aht``), with the weekly season a call center lives by.

Methods: ``seasonal-naive`` (the same slot last week) and ``historical-average`` (its mean
over the last four weeks) are the baselines; ``profile`` is top-down: each weekday's daily
total (mean of the last four of that weekday) spread by that weekday's intraday profile;
``trend`` is top-down too, but its daily totals come from a log-linear trend with weekday
effects fitted to the last eight weeks, so a growing (or shrinking) volume is not forecast
weeks late as the averages do. ``auto`` backtests every method from several rolling origins
on the history itself and takes the one with the lowest interval MAPE. A day without any row
(a gap in the data) is unknown, not zero: it is skipped by every mean and every error; within
a day that has rows, an interval left out had no calls (closed hours). Holidays are unknown
days to every method; ``forecast`` then sets the horizon's holidays apart (see there).
AHT, when the history has it, is forecast per slot as the call-weighted mean of the same slot
over the last four weeks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from hotline.wfm.staffing import ForecastError, Interval, interval_length

WEEK = 7 * 86400.0
WEEKS = 4  # how far back the averages look
TREND_WEEKS = 8  # how far back the trend and its intraday profiles look
Series = npt.NDArray[np.float64]


@dataclass(frozen=True)
class History:
    """The history on a regular grid: ``calls[i]`` for ``start + i * step`` (NaN: unknown);
    ``aht`` likewise when the file has the column (NaN: no calls or not given)."""

    start: datetime
    step: float
    calls: Series
    aht: Series | None = None

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

    def days(self) -> npt.NDArray[np.float64]:
        """``calls`` as whole calendar days, one row a day from the first day's midnight (NaN
        before the first and after the last interval)."""
        d, o = self.day, self.offset
        rows = -(-(o + len(self.calls)) // d)
        grid = np.full(rows * d, np.nan)
        grid[o:o + len(self.calls)] = self.calls
        return grid.reshape(rows, d)

    def weekday(self, day: int) -> int:
        """Weekday (Monday 0) of row ``day`` of ``days()``."""
        return (self.start.weekday() + day) % 7


def history(rows: list[Interval], step: float | None = None) -> History:
    step = step or interval_length(rows)
    if WEEK % step:
        raise ForecastError(f"the interval ({step:g} s) must divide a week")
    start = rows[0].start
    n = round((rows[-1].start - start).total_seconds() / step) + 1
    calls = np.full(n, np.nan)
    aht = np.full(n, np.nan)
    for r in rows:
        offset = (r.start - start).total_seconds() / step
        if offset != round(offset):
            raise ForecastError(f"{r.start.isoformat()} is not on the {step:g}-second grid")
        calls[round(offset)] = r.calls
        if r.aht is not None:
            aht[round(offset)] = r.aht
    has_aht = any(r.aht is not None for r in rows)
    h = History(start, step, calls, aht if has_aht else None)
    # Within a day the file has rows for, an interval it leaves out had no calls (closed, or
    # an export that skips zeros); a day without any row is unknown (a gap in the data).
    day_of = (np.arange(n) + h.offset) // h.day
    seen = np.unique(day_of[~np.isnan(calls)])
    calls[np.isnan(calls) & np.isin(day_of, seen)] = 0.0
    return h


def _same_slot(h: History, horizon: int, values: Series | None = None) -> Series:
    """Rows: the last ``WEEKS`` weeks' ``values`` (default: calls) at each future slot (NaN
    where unknown)."""
    n, s = len(h.calls), h.season
    values = h.calls if values is None else values
    idx = np.arange(n, n + horizon)
    back = np.stack([idx - k * s for k in range(1, WEEKS + 1)])  # (WEEKS, horizon)
    # a slot further ahead than a week repeats the forecast's own last week: look further back
    back = back - s * np.ceil(np.maximum(back - (n - 1), 0) / s).astype(int)
    return np.where(back >= 0, values[np.clip(back, 0, None)], np.nan)


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


def _future_days(h: History, horizon: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each future slot: its row in ``days()`` (counting on past the history) and its
    slot within that day."""
    at = np.arange(len(h.calls), len(h.calls) + horizon) + h.offset
    return at // h.day, at % h.day


def trend(h: History, horizon: int) -> Series:
    """Daily totals from ``log total = level + slope · day + weekday effect`` fitted by least
    squares to the complete days of the last ``TREND_WEEKS`` weeks, each spread by its
    weekday's intraday profile pooled over the same weeks. Multiplicative, because volume
    grows in proportion (a Monday gains more calls than a Sunday); a weekday without calls in
    those weeks (closed) stays at zero; with under two weeks of days the slope is left out."""
    grid = h.days()
    totals = grid.sum(axis=1)  # NaN: an incomplete or unknown day
    rows = np.arange(len(grid))
    use = (rows >= len(grid) - 7 * TREND_WEEKS) & (totals > 0)
    weekdays = np.array([h.weekday(int(r)) for r in rows])
    open_days = sorted(set(weekdays[use].tolist()))
    future, in_day = _future_days(h, horizon)
    if not open_days:
        return np.zeros(horizon)
    with_slope = use.sum() >= 14 and np.ptp(rows[use]) >= 7

    def design(days: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        wd = np.array([h.weekday(int(r)) for r in days])
        cols = [(wd == w).astype(float) for w in open_days]  # one level per open weekday
        if with_slope:
            cols.append(days.astype(float))
        return np.column_stack(cols)

    x, y = design(rows[use]), np.log(totals[use])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    dof = max(len(y) - x.shape[1], 1)
    # exp of the mean log is the median: add half the residual variance to get the mean
    days_ahead = np.unique(future)
    level = np.exp(design(days_ahead) @ coef + float(resid @ resid) / dof / 2)
    total = dict(zip(days_ahead.tolist(), level.tolist(), strict=True))
    shares = {}
    for w in open_days:
        mine = use & (weekdays == w)
        shares[w] = grid[mine].sum(axis=0) / totals[mine].sum()
    out = np.zeros(horizon)
    for i, (day, slot) in enumerate(zip(future.tolist(), in_day.tolist(), strict=True)):
        w = h.weekday(day)
        if w in shares:
            out[i] = total[day] * shares[w][slot]
    return out


METHODS: dict[str, Callable[[History, int], Series]] = {
    "seasonal-naive": seasonal_naive,
    "historical-average": historical_average,
    "profile": profile,
    "trend": trend,
}


@dataclass(frozen=True)
class Accuracy:
    method: str
    mape: float  # interval MAPE over intervals with calls, in %
    mae: float  # calls per interval
    daily_error: float  # mean absolute error of daily totals, in %


def backtest(h: History, horizon: int, origins: int = 3,
             methods: dict[str, Callable[[History, int], Series]] | None = None
             ) -> list[Accuracy]:
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
    for name, method in (methods or METHODS).items():
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


def read_holidays(text: str) -> dict[date, str]:
    """A holidays file: one ISO date a line, optionally ``,name`` after it; blank lines and
    ``#`` comments are skipped."""
    out: dict[date, str] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        day, _, name = raw.partition(",")
        if not day.strip() or day.lstrip().startswith("#"):
            continue
        try:
            out[date.fromisoformat(day.strip())] = name.strip()
        except ValueError:
            raise ForecastError(f"line {line}: {day.strip()!r} is not a date (YYYY-MM-DD)"
                                ) from None
    return out


def without(h: History, holidays: Collection[date]) -> History:
    """The history with its holidays unknown: no method learns a normal day from them."""
    if not holidays:
        return h
    grid = h.days()
    for row in range(len(grid)):
        if h.start.date() + timedelta(days=row) in holidays:
            grid[row] = np.nan
    calls = grid.reshape(-1)[h.offset:h.offset + len(h.calls)]
    aht = None if h.aht is None else np.where(np.isnan(calls), np.nan, h.aht)
    return replace(h, calls=calls, aht=aht)


def holiday_effect(h: History, holidays: Collection[date]) -> tuple[float, Series] | None:
    """Past holidays relative to a normal day: the mean ratio of a holiday's calls to the mean
    of the same weekday one and two weeks either side (complete non-holiday days), and the
    holidays' pooled intraday shares. None when the history has no complete holiday."""
    grid = h.days()
    totals = grid.sum(axis=1)
    first = h.start.date()
    ratios, calls = [], np.zeros(h.day)
    for row in range(len(grid)):
        if first + timedelta(days=row) not in holidays or np.isnan(totals[row]):
            continue
        near = [row + k for k in (-14, -7, 7, 14) if 0 <= row + k < len(grid)
                and first + timedelta(days=row + k) not in holidays
                and not np.isnan(totals[row + k])]
        normal = float(np.mean(totals[near])) if near else 0.0
        if normal > 0:
            ratios.append(totals[row] / normal)
            calls += grid[row]
    if not ratios:
        return None
    total = calls.sum()
    return float(np.mean(ratios)), calls / total if total > 0 else calls


def forecast_aht(h: History, horizon: int) -> Series | None:
    """Per future slot the call-weighted mean AHT of the same slot over the last ``WEEKS``
    weeks; where those had no calls, that of the slot's weekday over the same weeks, then of
    the whole history (a slot that opens anew still gets a handle time to staff with)."""
    if h.aht is None:
        return None
    known = ~np.isnan(h.aht) & (np.nan_to_num(h.calls) > 0)
    weight = np.where(known, h.calls, 0.0)
    handled = np.where(known, h.aht * weight, 0.0)
    if weight.sum() == 0:
        return None
    w_slot = np.nansum(_same_slot(h, horizon, weight), axis=0)
    t_slot = np.nansum(_same_slot(h, horizon, handled), axis=0)
    overall = handled.sum() / weight.sum()
    recent = np.arange(len(h.calls)) >= len(h.calls) - WEEKS * h.season
    day_of = (np.arange(len(h.calls)) + h.offset) // h.day
    weekday_of = (h.start.weekday() + day_of) % 7
    by_weekday = {}
    for w in range(7):
        mine = recent & (weekday_of == w)
        if weight[mine].sum() > 0:
            by_weekday[w] = handled[mine].sum() / weight[mine].sum()
    future, _ = _future_days(h, horizon)
    fallback = np.array([by_weekday.get(h.weekday(int(d)), overall) for d in future])
    slot_mean = np.divide(t_slot, w_slot, out=np.zeros(horizon), where=w_slot > 0)
    return np.where(w_slot > 0, slot_mean, fallback)


def forecast(h: History, horizon: int, method: str,
             holidays: Collection[date] = ()) -> list[Interval]:
    """``horizon`` intervals after the history. Holidays in the history are unknown days to
    the method; a holiday in the horizon is its normal forecast times the history's holiday
    ratio, spread as past holidays were (``holiday_effect``), or with no past holiday, the
    same as the quietest day of the week ahead (usually a Sunday)."""
    normal = without(h, holidays)
    values = METHODS[method](normal, horizon + 8 * h.day)  # a whole week past the horizon
    future, in_day = _future_days(h, horizon + 8 * h.day)
    first_day = h.start.date()
    ahead = [d for d in np.unique(future[:horizon]).tolist()
             if first_day + timedelta(days=d) in holidays]
    if ahead:
        effect = holiday_effect(h, holidays)
        day_total = {d: float(values[future == d].sum()) for d in np.unique(future).tolist()
                     if (future == d).sum() == h.day}  # the forecast's whole days
        quietest = min((t, d) for d, t in day_total.items()
                       if first_day + timedelta(days=d) not in holidays)[1]
        for d in ahead:
            mine = future == d
            if effect is None:
                values[mine] = values[future == quietest][in_day[mine]]
            elif d in day_total:
                ratio, shares = effect
                values[mine] = ratio * day_total[d] * shares[in_day[mine]]
            else:  # the rest of a day begun in the history: its own shape, scaled
                values[mine] *= effect[0]
    aht = forecast_aht(normal, horizon)
    start = h.start + timedelta(seconds=h.step * len(h.calls))
    return [Interval(start + timedelta(seconds=h.step * i), round(float(values[i]), 2),
                     None if aht is None else round(float(aht[i]), 1))
            for i in range(horizon)]


@dataclass(frozen=True)
class Plan:
    """A forecast with how it was chosen: the backtest table and the horizon's holidays."""

    method: str
    backtest: list[Accuracy]
    intervals: list[Interval]
    holidays: list[date]
    with_aht: bool

    def to_dict(self, names: dict[date, str] | None = None) -> dict[str, Any]:
        return {
            "method": self.method,
            "backtest": [vars(a) for a in self.backtest],
            "holidays": [{"date": d.isoformat(), "name": (names or {}).get(d, "")}
                         for d in self.holidays],
            "forecast": [{"interval_start": r.start.isoformat(), "calls": r.calls,
                          **({"aht": r.aht} if self.with_aht else {})}
                         for r in self.intervals],
        }


def plan(h: History, horizon: int, method: str = "auto",
         holidays: Collection[date] = ()) -> Plan:
    """Backtest every method on the history (its holidays unknown), then forecast with
    ``method``, or with ``auto`` the one of lowest interval MAPE. A named method needs no
    backtest: on a history too short for one its table is empty; ``auto`` raises."""
    if method != "auto" and method not in METHODS:
        raise ForecastError(f"method {method!r}: one of auto, {', '.join(METHODS)}")
    try:
        scores = backtest(without(h, holidays), min(horizon, h.season))
    except ForecastError:
        if method == "auto":
            raise
        scores = []
    chosen = method if method != "auto" else min(scores, key=lambda a: a.mape).method
    result = forecast(h, horizon, chosen, holidays)
    ahead = sorted({r.start.date() for r in result} & set(holidays))
    return Plan(chosen, scores, result, ahead, h.aht is not None)
