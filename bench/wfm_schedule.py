"""Shift scheduling figures for issue 7: a week of 30-minute intervals of a 24/7 service,
staffed with Erlang C, scheduled with examples/wfm/rules.yaml (86 shift templates, two tour
types, breaks, night shifts over midnight). Prints the program's size, objective, best bound,
gap and time (wall and CPU: the solver has one thread, so CPU time is what it needs on an
idle core).

    python bench/wfm_schedule.py [--time-limit 120] [--gap 0.01] [--forecast-out FILE]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from hotline.wfm.schedule import load_rules, requirement, solve, templates
from hotline.wfm.staffing import Interval, staff

ROOT = Path(__file__).resolve().parent.parent
DAY_TOTAL = (2600.0, 2200.0, 2100.0, 2100.0, 2000.0, 1100.0, 700.0)  # Monday first


def shape(hour: float) -> float:
    """A night floor, morning and afternoon peaks and an evening shoulder."""
    return (0.06 + math.exp(-((hour - 10.5) ** 2) / 2) + 0.8 * math.exp(-((hour - 15) ** 2) / 3)
            + 0.3 * math.exp(-((hour - 20) ** 2) / 2))


def week(start: datetime) -> list[Interval]:
    total = sum(shape(k / 2 + 0.25) for k in range(48))
    rows = []
    for i in range(336):
        t = start + timedelta(minutes=30 * i)
        mid = t.hour + t.minute / 60 + 0.25
        rows.append(Interval(t, DAY_TOTAL[t.weekday()] * shape(mid) / total, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--gap", type=float, default=0.01)
    parser.add_argument("--forecast-out", type=Path,
                        help="also write the week's forecast (calls per half hour) to this CSV")
    args = parser.parse_args()
    rules = load_rules(ROOT / "examples/wfm/rules.yaml")
    rows = week(datetime(2026, 12, 7))
    if args.forecast_out:
        args.forecast_out.write_text("interval_start,calls\n" + "".join(
            f"{r.start.isoformat()},{r.calls:.3f}\n" for r in rows))
    need = [r["agents"] for r in staff(rows, period=1800, aht=300, sl_time=20, sl_target=0.8)]
    req = requirement([Interval(r.start, n, None) for r, n in zip(rows, need, strict=True)],
                      None)
    cpu = time.process_time()
    schedule = solve(rules, req, time_limit=args.time_limit, gap=args.gap)
    cpu = time.process_time() - cpu
    s = schedule.summary()
    print(f"week of 336 half-hours, {sum(need) / 2:.0f} agent-hours required, peak {max(need)}")
    print(f"{len(templates(rules))} shift templates, {len(rules.tours)} tour types; program "
          f"{s['variables']} integer-or-continuous columns x {s['constraints']} rows")
    print(f"status {s['status']}: objective {s['objective']:.1f}, best bound {s['bound']:.1f}, "
          f"gap {s['gap']:.2%}, {s['seconds']:.1f} s wall, {cpu:.1f} s CPU (HiGHS, one thread)")
    print(f"{s['agents']} agents, {s['paid_hours']:.0f} paid hours, over-coverage "
          f"{s['over_agent_hours']:.0f} agent-hours, short {s['short_agent_hours']:.0f}, "
          f"rests under the minimum {s['rest_violations']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
