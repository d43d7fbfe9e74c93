"""`hotline wfm forecast`: call volumes per interval from a history with gaps and closed hours.
A pattern that repeats exactly is forecast exactly by every method, gaps and all; on noisy
counts the four-week average beats last week's value (it averages the noise away); `auto`
takes the method its backtest scores best; the output file has the history's shape."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm import synthetic
from hotline.wfm.forecast import METHODS, backtest, forecast, history
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
