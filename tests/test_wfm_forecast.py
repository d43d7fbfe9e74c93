"""`hotline wfm forecast`: call volumes per interval from a history with gaps and closed hours.
A pattern that repeats exactly is forecast exactly by every method, gaps and all; on noisy
counts the four-week average beats last week's value (it averages the noise away); `auto`
takes the method its backtest scores best; the output file has the history's shape."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm import synthetic
from hotline.wfm.forecast import METHODS, backtest, forecast, forecast_aht, history
from hotline.wfm.staffing import Interval


def exact_history(weeks: int, step: float = 1800, missing: tuple[int, ...] = ()) -> list[Interval]:
    """The synthetic mean itself, no noise and no trend: the same every week."""
    start = datetime(2026, 1, 5)
    rows = []
    for i in range(round(weeks * 7 * 86400 / step)):
        t = start + timedelta(seconds=i * step)
        calls = synthetic.mean_calls(t, step)
        if (t - start).days not in missing and calls > 0:
            rows.append(Interval(t, calls, None))
    return rows


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_pattern_that_repeats_is_forecast_exactly_despite_gaps(method: str) -> None:
    # a whole Sunday (day 20) and a whole Monday (day 28) are missing: unknown, not zero
    h = history(exact_history(6, missing=(20, 28)))
    got = forecast(h, 7 * 48, method)
    assert got[0].start == h.start + timedelta(seconds=h.step * len(h.calls))
    expected = [synthetic.mean_calls(r.start, 1800) for r in got]
    assert [r.calls for r in got] == pytest.approx(expected, abs=0.01)


def test_averaging_four_weeks_beats_last_weeks_value_on_noisy_counts() -> None:
    # Poisson counts around a fixed weekly mean: last week's count errs by about √2·σ, the
    # four-week mean by about √1.25·σ; over 3 origins × 336 intervals the gap is many times
    # its standard error, so the order is not a matter of the seed.
    rows = [Interval(r.start, r.calls, None) for r in synthetic.history(10, seed=7)]
    scores = {a.method: a for a in backtest(history(rows), 336)}
    assert scores["historical-average"].mae < scores["seasonal-naive"].mae
    assert scores["historical-average"].mape < scores["seasonal-naive"].mape
    for a in scores.values():
        assert np.isfinite([a.mape, a.mae, a.daily_error]).all()


def run(tmp_path: Path, text: str, *args: str) -> Any:
    path = tmp_path / "history.csv"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["wfm", "forecast", "--history", str(path), *args])


def as_csv(rows: list[Interval]) -> str:
    return "interval_start,calls\n" + "".join(f"{r.start.isoformat()},{r.calls:g}\n"
                                              for r in rows)


def test_auto_takes_the_method_its_backtest_scores_best(tmp_path: Path) -> None:
    out = tmp_path / "forecast.csv"
    result = run(tmp_path, as_csv(synthetic.history(10)), "--horizon", "7d", "--out", str(out),
                 "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["method"] == min(body["backtest"], key=lambda a: a["mape"])["method"]
    assert {a["method"] for a in body["backtest"]} == set(METHODS)
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 7 * 48 and list(written[0]) == ["interval_start", "calls"]
    assert [float(w["calls"]) for w in written] == [r["calls"] for r in body["forecast"]]
    # the forecast file is a history file: the staffing command reads it as it is
    staffed = CliRunner().invoke(app, ["wfm", "staff", "--forecast", str(out), "--aht", "300",
                                       "--json"])
    assert staffed.exit_code == 0, staffed.output
    assert len(json.loads(staffed.output)["intervals"]) == 7 * 48


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--method", "crystal-ball"], "error: --method:"),
        (["--horizon", "10m"], "error: --horizon:"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                            expected: str) -> None:
    result = run(tmp_path, as_csv(synthetic.history(6)), *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(expected) and len(result.output.strip().splitlines()) == 1


def test_too_short_a_history_for_auto_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, as_csv(synthetic.history(2)))
    assert result.exit_code == 2
    assert "weeks of history" in result.output
    named = run(tmp_path, as_csv(synthetic.history(2)), "--method", "seasonal-naive", "--json")
    assert named.exit_code == 0, named.output  # a named method needs no backtest
    assert json.loads(named.output)["backtest"] == []


# ---------------------------------------------------------------------- a growing volume
START = datetime(2026, 1, 5)  # the synthetic history's first Monday


def growing_history(weeks: int, rate: float) -> list[Interval]:
    """The synthetic mean growing by ``rate`` a week, compounded, no noise."""
    return [Interval(r.start, r.calls * (1 + rate) ** ((r.start - START).days / 7), None)
            for r in exact_history(weeks, missing=(17,))]


def test_trend_forecasts_a_steady_growth_exactly_where_the_averages_lag() -> None:
    h = history(growing_history(10, 0.03))
    got = forecast(h, 7 * 48, "trend")
    expected = [synthetic.mean_calls(r.start, 1800) * 1.03 ** ((r.start - START).days / 7)
                for r in got]
    assert [r.calls for r in got] == pytest.approx(expected, abs=0.01)  # (rounded to 0.01)
    # the four-week average is about 2.5 weeks behind: ~7 % short of a 3 %-a-week growth
    average = sum(r.calls for r in forecast(h, 7 * 48, "historical-average"))
    assert average / sum(expected) == pytest.approx(1.03 ** -2.5, rel=0.01)


def test_trend_beats_the_baselines_when_volume_grows() -> None:
    # 5 % a week: a week-old value is ~3.5 % low and a four-week mean ~9 % low on every day,
    # while a daily total's Poisson noise is ~2.5 % (its mean absolute error over the 18
    # whole days of the backtest has a standard error of ~0.3 points): the order is set by
    # the lag, not by the seed.
    h = history(synthetic.history(10, seed=3, growth=0.05))
    scores = {a.method: a for a in backtest(h, h.season)}
    baselines = [scores[m] for m in ("seasonal-naive", "historical-average", "profile")]
    assert scores["trend"].daily_error < min(a.daily_error for a in baselines)
    assert scores["trend"].mae < min(a.mae for a in baselines)
    assert scores["trend"].daily_error < 3.0  # near the noise, not the lag


# ---------------------------------------------------------------------- holidays
MONDAY_HOLIDAY = date(2026, 2, 2)  # day 28, a Monday


def scaled(rows: list[Interval], day: date, factor: float) -> list[Interval]:
    return [Interval(r.start, r.calls * factor if r.start.date() == day else r.calls, r.aht)
            for r in rows]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_holiday_in_the_history_does_not_pass_for_a_normal_day(method: str) -> None:
    rows = scaled(exact_history(6), MONDAY_HOLIDAY, 0.3)
    expected = [synthetic.mean_calls(r.start, 1800) for r in forecast(history(rows), 48, method)]
    got = forecast(history(rows), 48, method, {MONDAY_HOLIDAY})
    assert [r.calls for r in got] == pytest.approx(expected, abs=0.01)
    if method != "seasonal-naive":  # (last week's Monday was not the holiday)
        unlisted = forecast(history(rows), 48, method)
        assert sum(r.calls for r in unlisted) < 0.99 * sum(expected)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_holiday_ahead_goes_as_past_holidays_went(method: str) -> None:
    # the Monday holiday had 40 % of a normal Monday; next week's Thursday is a holiday too
    h = history(scaled(exact_history(6), MONDAY_HOLIDAY, 0.4))
    ahead = date(2026, 2, 19)  # a Thursday in the week after the history
    got = forecast(h, 7 * 48, method, {MONDAY_HOLIDAY, ahead})
    for r in got:
        normal = synthetic.mean_calls(r.start, 1800)
        assert r.calls == pytest.approx(0.4 * normal if r.start.date() == ahead else normal,
                                        abs=0.01)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_with_no_past_holiday_a_holiday_ahead_is_like_the_quietest_day(method: str) -> None:
    h = history(exact_history(6))
    ahead = date(2026, 2, 18)  # a Wednesday; Sunday is the synthetic week's quietest day
    got = forecast(h, 7 * 48, method, {ahead})
    for r in got:
        like = r.start + timedelta(days=4) if r.start.date() == ahead else r.start
        assert r.calls == pytest.approx(synthetic.mean_calls(like, 1800), abs=0.01)


def test_the_command_takes_a_holidays_file(tmp_path: Path) -> None:
    rows = scaled(exact_history(6), MONDAY_HOLIDAY, 0.4)
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("# public holidays\n2026-02-02,Spring Festival\n\n2026-02-19,Lantern\n",
                        encoding="utf-8")
    result = run(tmp_path, as_csv(rows), "--holidays", str(holidays), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["holidays"] == [{"date": "2026-02-19", "name": "Lantern"}]
    on_it = [r["calls"] for r in body["forecast"] if r["interval_start"].startswith("2026-02-19")]
    normal = [synthetic.mean_calls(datetime.fromisoformat(r["interval_start"]), 1800)
              for r in body["forecast"] if r["interval_start"].startswith("2026-02-19")]
    assert on_it == pytest.approx([0.4 * c for c in normal], abs=0.01)
    holidays.write_text("2026-02-02\nFeb 19\n", encoding="utf-8")
    bad = run(tmp_path, as_csv(rows), "--holidays", str(holidays))
    assert bad.exit_code == 2
    assert bad.output.startswith("error: --holidays:") and "line 2" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------- handle time
def with_aht(rows: list[Interval], aht: Any) -> list[Interval]:
    return [Interval(r.start, r.calls, aht(r.start)) for r in rows]


def test_aht_is_forecast_per_slot_weighted_by_calls_and_staffing_uses_it(tmp_path: Path) -> None:
    # AHT rises through the day; in the last week the 10:00 slot had twice the calls at 400 s
    def aht(t: datetime) -> float:
        return 200.0 + 10 * t.hour

    rows = with_aht(exact_history(6), aht)
    last_week = datetime(2026, 2, 9, 10)  # a Monday in the history's last week
    busy = Interval(last_week, 2 * synthetic.mean_calls(last_week, 1800), 400.0)
    rows = [busy if r.start == last_week else r for r in rows]
    out = tmp_path / "forecast.csv"
    result = run(tmp_path, as_csv_aht(rows), "--method", "historical-average", "--out", str(out))
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["interval_start", "calls", "aht"]
    for w in written:
        t = datetime.fromisoformat(w["interval_start"])
        if float(w["calls"]) == 0:
            continue
        if t == last_week + timedelta(days=7):
            # four weeks of the slot: three at 300 s with n calls, one at 400 s with 2n
            assert float(w["aht"]) == pytest.approx((3 * 300 + 2 * 400) / 5, abs=0.05)
        else:
            assert float(w["aht"]) == pytest.approx(aht(t), abs=0.05)
    staffed = CliRunner().invoke(app, ["wfm", "staff", "--forecast", str(out), "--json"])
    assert staffed.exit_code == 0, staffed.output  # no --aht needed: each row has its own
    intervals = json.loads(staffed.output)["intervals"]
    assert [i["aht"] for i in intervals] == [float(w["aht"]) for w in written]


def test_aht_of_a_slot_without_past_calls_falls_back_to_its_weekday() -> None:
    # a slot that opens anew (07:30 on Mondays) gets the Mondays' call-weighted AHT
    rows = with_aht(exact_history(5), lambda t: 300.0 if t.weekday() == 0 else 200.0)
    h = history(rows)
    aht = forecast_aht(h, 7 * 48)
    assert aht is not None
    got = forecast(h, 7 * 48, "historical-average")
    for r, a in zip(got, aht, strict=True):
        assert a == pytest.approx(300.0 if r.start.weekday() == 0 else 200.0)


def as_csv_aht(rows: list[Interval]) -> str:
    return "interval_start,calls,aht\n" + "".join(
        f"{r.start.isoformat()},{r.calls:g},{r.aht:g}\n" for r in rows)
