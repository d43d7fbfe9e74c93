"""Staffing a week of 15-minute intervals (672), the issue's figure (target: under 100 ms).

Why: planners re-size a week on every forecast or SL change, and scheduling calls it per
candidate plan, so it must be instant. A day-shaped week (closed at night, a midday peak of
100 calls per 15 minutes) is sized with Erlang C and with Erlang A; the best of a few runs is
printed with the peak, so a wrong answer would show as well as a slow one.

Run from the repository root: ``python bench/wfm_staffing.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timedelta

from hotline.wfm.staffing import Interval, staff


def week() -> list[Interval]:
    start = datetime(2026, 12, 7)
    rows = []
    for i in range(672):
        t = start + timedelta(minutes=15 * i)
        h = t.hour + t.minute / 60
        calls = 0.0 if not 8 <= h < 20 else 40 + 60 * math.sin(math.pi * (h - 8) / 12)
        rows.append(Interval(t, calls, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = week()
    for model, patience in (("Erlang C", None), ("Erlang A, patience 120 s", 120.0)):
        best = math.inf
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = staff(rows, period=900, aht=300, sl_time=20, sl_target=0.8,
                           patience=patience, shrinkage=0.3, max_occupancy=0.85)
            best = min(best, time.perf_counter() - t0)
        peak = max(r["positions"] for r in result)
        print(f"{model}: {len(rows)} intervals in {best * 1000:.1f} ms "
              f"(best of {args.repeat}); peak {peak} positions")


if __name__ == "__main__":
    main()
