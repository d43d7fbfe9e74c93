"""`hotline wfm staff`: agents required per interval of a forecast file. Each interval's answer
is the fewest agents meeting the service level and occupancy bound (one fewer would not), the
file's own AHT wins over --aht, gaps such as closed nights do not change the interval length,
and a bad file is one line naming the file's line, exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hotline.cli import app
from hotline.wfm.erlang import evaluate

# A morning and an evening of 30-minute intervals with the night closed between them.
FORECAST = """interval_start,calls,aht
2026-12-07T08:00:00,40,
2026-12-07T08:30:00,120,240
2026-12-07T09:00:00,300,
2026-12-07T09:30:00,0,
2026-12-07T20:00:00,75.5,
2026-12-08T08:00:00,15,420
"""


def run(tmp_path: Path, text: str, *args: str) -> Any:
    forecast = tmp_path / "forecast.csv"
    forecast.write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["wfm", "staff", "--forecast", str(forecast), *args])


def test_each_interval_gets_the_fewest_agents_that_meet_the_target(tmp_path: Path) -> None:
    result = run(tmp_path, FORECAST, "--aht", "5m", "--sl-time", "20s", "--sl-target", "0.8",
                 "--shrinkage", "0.3", "--max-occupancy", "0.85", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["interval"] == 1800  # the usual step; the night's gap is not an interval
    rows = body["intervals"]
    assert [r["aht"] for r in rows] == [300, 240, 300, 300, 300, 420]  # the file's own first
    for r in rows:
        def at(n: int, r: dict[str, Any] = r) -> Any:
            return evaluate(calls=r["calls"], period=1800, aht=r["aht"], agents=n, sl_time=20)

        got = at(r["agents"])
        assert got.service_level >= 0.8 and got.occupancy <= 0.85 + 1e-9, r
        if r["agents"]:
            fewer = at(r["agents"] - 1)
            assert fewer.service_level < 0.8 or fewer.occupancy > 0.85, r
        assert r["positions"] * 0.7 >= r["agents"] > (r["positions"] - 1) * 0.7
        assert r["service_level"] == pytest.approx(got.service_level)
    assert rows[3]["agents"] == 0  # no calls, nobody needed
    assert body["peak_positions"] == max(r["positions"] for r in rows)


def test_erlang_a_with_patience_needs_no_more_agents_than_erlang_c(tmp_path: Path) -> None:
    # callers who give up leave the queue, so the same SL takes at most as many agents
    c = json.loads(run(tmp_path, FORECAST, "--aht", "300", "--json").output)["intervals"]
    a = json.loads(run(tmp_path, FORECAST, "--aht", "300", "--patience", "2m",
                       "--json").output)["intervals"]
    assert all(x["agents"] <= y["agents"] for x, y in zip(a, c, strict=True))
    assert all(x["abandon_rate"] is not None for x in a)
    assert all(y["abandon_rate"] is None for y in c)


def test_the_requirement_file_holds_what_was_printed(tmp_path: Path) -> None:
    out = tmp_path / "required.csv"
    result = run(tmp_path, FORECAST, "--aht", "300", "--out", str(out), "--json")
    printed = json.loads(result.output)["intervals"]
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [(w["interval_start"], int(w["agents"]), int(w["positions"])) for w in written] == [
        (p["interval_start"], p["agents"], p["positions"]) for p in printed]
    table = run(tmp_path, FORECAST, "--aht", "300")  # the table, for people
    assert table.exit_code == 0 and "peak" in table.output


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ("start,calls\n2026-12-07T08:00:00,1\n", [], "missing column(s) interval_start"),
        ("interval_start,calls\n2026-12-07T08:00:00,1\nyesterday,2\n", [],
         "line 3: interval_start 'yesterday'"),
        ("interval_start,calls\n2026-12-07T08:00:00,1\n2026-12-07T08:30:00,many\n", [],
         "line 3: calls 'many' is not a number"),
        ("interval_start,calls\n2026-12-07T08:30:00,1\n2026-12-07T08:00:00,2\n", [],
         "line 3: interval_start must increase"),
        ("interval_start,calls\n2026-12-07T08:00:00,-1\n", ["--interval", "30m"],
         "line 2: calls must be a number ≥ 0"),
        ("interval_start,calls\n2026-12-07T08:00:00,1\n", [], "one interval only"),
        (FORECAST, [], "error: --aht:"),  # rows without aht, and no --aht
        (FORECAST, ["--aht", "300", "--sl-target", "2"], "error: --sl-target:"),
    ],
)
def test_a_bad_forecast_or_option_is_one_line_and_exit_2(
    tmp_path: Path, text: str, args: list[str], expected: str,
) -> None:
    result = run(tmp_path, text, *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
