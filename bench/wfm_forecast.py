"""Forecast accuracy on a realistic synthetic history (the issue's figure): each method's
interval MAPE, MAE and daily-total error from rolling origins, next to the baselines'.

Why: a forecast is only worth using if it beats "same as last week"; this shows by how much,
on ten weeks of 30-minute Poisson counts with a weekly pattern, two daily peaks, closed
nights, a missing day and 1 % weekly growth (``hotline.wfm.synthetic``), for several seeds.
The last line scores the synthetic mean itself: the Poisson noise no method can forecast, the
floor every figure above it should be read against.

Run from the repository root: ``python bench/wfm_forecast.py [--weeks N] [--seeds K]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np

from hotline.wfm import synthetic
from hotline.wfm.forecast import METHODS, History, Series, backtest, history


def true_mean(past: History, horizon: int) -> Series:
    """What generated the counts (known only because the history is synthetic)."""
    weeks0 = past.start - timedelta(seconds=past.step * past.offset)  # the first Monday
    out = []
    for i in range(len(past.calls), len(past.calls) + horizon):
        t = past.start + timedelta(seconds=past.step * i)
        out.append(synthetic.mean_calls(t, past.step, (t - weeks0).days / 7))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    scores: dict[str, list[tuple[float, float, float]]] = {}
    t0 = time.perf_counter()
    for seed in range(1, args.seeds + 1):
        h = history(synthetic.history(args.weeks, seed=seed))
        for a in backtest(h, h.season, methods={**METHODS, "(true mean)": true_mean}):
            scores.setdefault(a.method, []).append((a.mape, a.mae, a.daily_error))
    took = time.perf_counter() - t0
    print(f"{args.weeks} weeks of 30-minute intervals, 3 rolling origins of 7 days, "
          f"{args.seeds} seeds (mean ± sd over seeds); {took:.2f} s")
    for method, rows in scores.items():
        m = np.array(rows)
        mean, sd = m.mean(axis=0), m.std(axis=0)
        print(f"  {method:20s} interval MAPE {mean[0]:5.1f}% ± {sd[0]:.1f}   "
              f"MAE {mean[1]:5.2f} ± {sd[1]:.2f} calls   daily total {mean[2]:4.1f}% ± {sd[2]:.1f}")


if __name__ == "__main__":
    main()
