"""Erlang C / Erlang A calculators: published figures, an independent Markov chain, the CLI."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pytest
import typer
from scipy.linalg import expm
from scipy.special import logsumexp
from typer.testing import CliRunner

from hotline.wfm import erlang as erlang_module
from hotline.wfm.commands import erlang
from hotline.wfm.erlang import (
    ErlangInputError,
    StaffingResult,
    erlang_b,
    erlang_c,
    evaluate,
    required_agents,
)

# Published figures are rounded to 0.1 percentage point; allow half a unit of that rounding.
PUBLISHED = 0.0005

CASE_1 = {"calls": 100, "period": 1800, "aht": 180, "sl_time": 20}  # 10 erlangs
CASE_2 = {"calls": 57, "period": 3600, "aht": 1110}  # 17.575 erlangs


# --------------------------------------------------------------------------- published cases


def test_published_case_1_required_agents() -> None:
    result = required_agents(**CASE_1, sl_target=0.8, shrinkage=0.3)
    assert result.model == "erlang_c"
    assert result.traffic_erlangs == pytest.approx(10.0)
    assert result.agents == 14
    assert result.positions == 20
    assert result.service_level == pytest.approx(0.888, abs=PUBLISHED)
    assert result.p_wait == pytest.approx(0.174, abs=PUBLISHED)
    assert result.occupancy == pytest.approx(0.714, abs=PUBLISHED)
    assert result.abandon_rate is None
    # 13 agents must not be enough, otherwise "fewest" is wrong
    assert evaluate(**CASE_1, agents=13).service_level < 0.8


def test_published_case_2_sl_at_21_agents() -> None:
    result = evaluate(**CASE_2, agents=21, sl_time=180)
    assert result.service_level == pytest.approx(0.807, abs=PUBLISHED)


def test_published_case_2_required_agents() -> None:
    assert required_agents(**CASE_2, sl_time=20, sl_target=0.8).agents == 23
    assert evaluate(**CASE_2, agents=22, sl_time=20).service_level < 0.8


# --------------------------------------------------------------------------- Erlang B / C


def test_erlang_b_small_values_match_the_closed_form() -> None:
    for n in range(6):
        for a in (0.5, 3.0, 7.25):
            direct = a**n / math.factorial(n) / sum(a**k / math.factorial(k) for k in range(n + 1))
            assert erlang_b(n, a) == pytest.approx(direct, rel=1e-12)


def test_erlang_c_edges() -> None:
    assert erlang_c(10, 10.0) == 1.0
    assert erlang_c(3, 7.5) == 1.0
    assert erlang_c(5, 0.0) == 0.0
    assert erlang_c(14, 10.0) == pytest.approx(0.174, abs=PUBLISHED)


def test_erlang_c_formulas_for_sl_and_asa() -> None:
    result = evaluate(**CASE_1, agents=14)
    c = erlang_c(14, 10.0)
    assert result.service_level == pytest.approx(1 - c * math.exp(-4 * 20 / 180))
    assert result.asa == pytest.approx(c * 180 / 4)
    assert result.occupancy == pytest.approx(10 / 14)


def test_unstable_erlang_c_is_reported_not_raised() -> None:
    result = evaluate(**CASE_1, agents=10)
    assert (result.service_level, result.asa, result.p_wait) == (0.0, math.inf, 1.0)
    assert result.to_dict()["asa"] is None  # strict JSON has no Infinity
    json.dumps(result.to_dict(), allow_nan=False)


def test_no_calls_needs_no_agents() -> None:
    for patience in (None, 60.0):
        result = required_agents(**{**CASE_1, "calls": 0}, sl_target=0.9, patience=patience)
        assert (result.agents, result.positions) == (0, 0)
        assert result.service_level == 1.0 and result.p_wait == 0.0 and result.asa == 0.0


def test_positions_gross_up_with_float_tolerance() -> None:
    assert evaluate(**CASE_1, agents=14, shrinkage=0.3).positions == 20
    assert evaluate(**CASE_1, agents=14, shrinkage=0.31).positions == 21
    assert evaluate(**CASE_1, agents=7, shrinkage=0.0).positions == 7


def test_to_dict_keys() -> None:
    common = ["model", "traffic_erlangs", "agents", "positions", "service_level", "asa"]
    common += ["p_wait", "occupancy"]
    assert list(evaluate(**CASE_1, agents=14).to_dict()) == common
    erlang_a = evaluate(**CASE_1, agents=14, patience=120)
    assert list(erlang_a.to_dict()) == [*common, "abandon_rate"]
    assert isinstance(erlang_a, StaffingResult)


def test_max_occupancy_caps_the_search() -> None:
    relaxed = required_agents(**CASE_1, sl_target=0.5)
    capped = required_agents(**CASE_1, sl_target=0.5, max_occupancy=0.6)
    assert relaxed.occupancy > 0.6
    assert capped.agents == math.ceil(10 / 0.6)
    assert capped.occupancy <= 0.6
    # exact boundary: 8.5 erlangs on 10 agents is 85 % occupancy
    boundary = required_agents(
        calls=8.5, period=180, aht=180, sl_time=20, sl_target=0.01, max_occupancy=0.85
    )
    assert boundary.agents == 10


# --------------------------------------------------------------------------- Erlang A vs chain


def birth_death(
    calls: float, period: float, aht: float, n: int, patience: float, sl_time: float
) -> dict[str, float]:
    """M/M/n+M solved directly: truncated birth-death chain plus a tagged-caller chain.

    State n+j means j callers queue; each abandons at rate θ. A caller who arrives to find
    j waiting joins at position j+1 and moves up at rate nμ + (k-1)θ from position k while
    abandoning at rate θ, which gives its answer probability and waiting times.
    """
    lam, mu, theta = calls / period, 1 / aht, 1 / patience
    logs = [0.0]
    for k in range(1, n + 1):
        logs.append(logs[-1] + math.log(lam / (k * mu)))
    j = 0
    while j < 20 or logs[-1] > max(logs) - 60:
        j += 1
        logs.append(logs[-1] + math.log(lam / (n * mu + j * theta)))
    p = np.exp(np.array(logs) - logsumexp(logs))
    queue = p[n:]  # queue[j] = P(j callers waiting)
    depth = np.arange(queue.size)
    e_queue = float(depth @ queue)
    rates = n * mu + (depth + 1) * theta  # total leave rate at positions 1..K+1
    answered_from = n * mu / rates  # telescoping product of "moved up" probabilities
    wait_if_answered = np.cumsum(1 / rates)
    mean_time_in_queue = (depth + 1) / rates
    p_ab = theta * e_queue / lam
    # answered within t: absorbing chain over positions, absorbing state "answered" last
    m = queue.size
    gen = np.zeros((m + 1, m + 1))
    for i in range(m):
        gen[i, i] = -rates[i]
        gen[i, i - 1 if i else m] = n * mu + i * theta
    start = np.append(queue, 0.0)
    answered_by_t = float((start @ expm(gen * sl_time))[m])
    return {
        "p_wait": float(queue.sum()),
        "p_ab": p_ab,
        "p_ab_tagged": float(queue @ (1 - answered_from)),
        "occupancy": float(np.minimum(np.arange(p.size), n) @ p) / n,
        "sl": float(p[:n].sum()) + answered_by_t,
        "asa": float(queue @ (answered_from * wait_if_answered)) / (1 - p_ab),
        "wait_and_abandon": float(queue @ (mean_time_in_queue - answered_from * wait_if_answered)),
        "e_queue_over_lam": e_queue / lam,
        "little_lhs": float(queue @ mean_time_in_queue),
    }


CHAIN_CASES = [
    # calls, period, aht, agents, patience, sl_time
    (100, 1800, 180, 14, 120, 20),
    (100, 1800, 180, 12, 180, 0),
    (100, 1800, 180, 8, 60, 30),  # overloaded: only abandonment keeps it stable
    (100, 1800, 180, 1, 300, 20),
    (600, 3600, 240, 45, 600, 15),
    (100, 1800, 180, 11, 2, 5),  # impatient callers
    (100, 1800, 180, 12, 1e6, 20),  # near Erlang C; deep incomplete-gamma tail
    (3000, 3600, 300, 240, 90, 30),  # 250 erlangs
]


@pytest.mark.parametrize(("calls", "period", "aht", "n", "patience", "t"), CHAIN_CASES)
def test_erlang_a_matches_birth_death_chain(
    calls: float, period: float, aht: float, n: int, patience: float, t: float
) -> None:
    chain = birth_death(calls, period, aht, n, patience, t)
    # the chain is self-consistent before it is used as a reference
    assert chain["p_ab_tagged"] == pytest.approx(chain["p_ab"], rel=1e-9)
    assert chain["little_lhs"] == pytest.approx(chain["e_queue_over_lam"], rel=1e-9)

    got = evaluate(calls=calls, period=period, aht=aht, agents=n, sl_time=t, patience=patience)
    assert got.model == "erlang_a" and got.abandon_rate is not None
    assert got.p_wait == pytest.approx(chain["p_wait"], rel=1e-8, abs=1e-12)
    assert got.abandon_rate == pytest.approx(chain["p_ab"], rel=1e-8, abs=1e-12)
    assert got.occupancy == pytest.approx(chain["occupancy"], rel=1e-8)
    assert got.service_level == pytest.approx(chain["sl"], rel=1e-7, abs=1e-10)
    assert got.asa == pytest.approx(chain["asa"], rel=1e-7, abs=1e-10)
    # Little's law: answered and abandoned callers together wait E[queue] / λ on average
    waited = (1 - got.abandon_rate) * got.asa + chain["wait_and_abandon"]
    assert waited == pytest.approx(chain["e_queue_over_lam"], rel=1e-7)


@pytest.mark.parametrize("agents", [11, 14, 20])
def test_erlang_a_with_endless_patience_is_erlang_c(agents: int) -> None:
    c = evaluate(**CASE_1, agents=agents)
    a = evaluate(**CASE_1, agents=agents, patience=1e9)
    # a caller who would wait W abandons with probability ≈ W / patience
    assert a.abandon_rate == pytest.approx(c.asa / 1e9, rel=1e-4)
    for field in ("service_level", "p_wait", "occupancy", "asa"):
        assert getattr(a, field) == pytest.approx(getattr(c, field), rel=1e-5), field


def test_erlang_a_at_scale_with_long_patience_is_erlang_c() -> None:
    calls = 9500 * 3600 / 180
    common: dict[str, Any] = {"calls": calls, "period": 3600, "aht": 180, "sl_time": 20}
    c, a = evaluate(**common, agents=9513), evaluate(**common, agents=9513, patience=1e12)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-6)
    assert a.asa == pytest.approx(c.asa, rel=1e-6)


@pytest.mark.parametrize(
    ("s", "sigmas"),
    [(30.0, -3.0), (1e5, -30.0), (1e7, -6.0), (3e8, -100.0), (1e10, -6.0), (1e10, 2.0)],
)
def test_tail_ratio_against_brute_force_sum(s: float, sigmas: float) -> None:
    # P(s, x) / pois(s; x) = Σ_j Π_{i≤j} x / (s+i); scipy's gammainc is not trusted here
    x = s + sigmas * math.sqrt(s)
    terms = int(max(0.0, x - s) + 60 * math.sqrt(x) + 50 * s / max(s - x, math.sqrt(s)))
    logs = np.cumsum(np.log(x / (s + np.arange(1.0, terms + 1.0))))
    expected = float(np.logaddexp(0.0, logsumexp(logs)))
    assert erlang_module._log_tail_ratio(s, x) == pytest.approx(expected, rel=1e-10)


def test_near_critical_ten_thousand_agents_with_endless_patience() -> None:
    common: dict[str, Any] = {"calls": 9_999 * 20, "period": 3600, "aht": 180, "sl_time": 20}
    common["agents"] = 10_000
    c, a = evaluate(**common), evaluate(**common, patience=1e13)
    for field in ("service_level", "p_wait", "asa"):
        assert getattr(a, field) == pytest.approx(getattr(c, field), rel=1e-5), field


def test_erlang_a_overload_abandons_the_excess() -> None:
    # with 8 agents for 10 erlangs and long patience, the 2 surplus erlangs must abandon
    result = evaluate(**CASE_1, agents=8, patience=1e5)
    assert result.abandon_rate == pytest.approx(0.2, rel=1e-9)
    assert result.occupancy == pytest.approx(1.0, rel=1e-9)


def test_zero_agents_erlang_a_loses_everyone() -> None:
    result = evaluate(**CASE_1, agents=0, patience=60)
    assert (result.service_level, result.p_wait, result.abandon_rate) == (0.0, 1.0, 1.0)


# --------------------------------------------------------------------------- scale and shape


def _in_range(result: StaffingResult) -> None:
    for field in ("service_level", "p_wait", "occupancy"):
        value = getattr(result, field)
        assert 0.0 <= value <= 1.0, (field, value)
    assert result.asa >= 0 and not math.isnan(result.asa)
    if result.abandon_rate is not None:
        assert 0.0 <= result.abandon_rate <= 1.0


def test_erlang_b_large_is_finite() -> None:
    b = erlang_b(10_000, 9_500.0)
    assert math.isfinite(b) and 0 < b < 1e-6
    assert 0 < erlang_c(10_000, 9_500.0) < 1
    assert erlang_b(20_000, 10_000.0) == 0.0  # underflows cleanly to zero, no error


@pytest.mark.parametrize("patience", [None, 1, 120, 1e5, 1e12])
@pytest.mark.parametrize("erlangs", [9_500, 9_990, 12_000])
def test_ten_thousand_agents_stay_finite(patience: float | None, erlangs: float) -> None:
    result = evaluate(
        calls=erlangs * 20, period=3600, aht=180, agents=10_000, sl_time=20, patience=patience
    )
    _in_range(result)
    if patience is not None or erlangs < 10_000:
        assert math.isfinite(result.asa)


@pytest.mark.parametrize("patience", [None, 120])
def test_required_agents_is_fast_at_ten_thousand(patience: float | None) -> None:
    started = time.perf_counter()
    result = required_agents(
        calls=9_500 * 20, period=3600, aht=180, sl_time=20, sl_target=0.8, patience=patience
    )
    assert time.perf_counter() - started < 0.5
    _in_range(result)
    assert result.service_level >= 0.8
    fewer = evaluate(
        calls=9_500 * 20,
        period=3600,
        aht=180,
        agents=result.agents - 1,
        sl_time=20,
        patience=patience,
    )
    assert fewer.service_level < 0.8


@pytest.mark.parametrize("patience", [None, 30, 300])
def test_service_level_rises_and_occupancy_falls_with_agents(patience: float | None) -> None:
    results = [evaluate(**CASE_1, agents=n, patience=patience) for n in range(1, 40)]
    levels = [r.service_level for r in results]
    occupancy = [r.occupancy for r in results]
    assert levels == sorted(levels) and levels[-1] > 0.999
    assert occupancy == sorted(occupancy, reverse=True)
    for result in results:
        _in_range(result)


def test_erlang_a_needs_fewer_agents_than_erlang_c() -> None:
    c = required_agents(**CASE_1, sl_target=0.8)
    a = required_agents(**CASE_1, sl_target=0.8, patience=120)
    assert a.agents <= c.agents
    assert a.service_level >= 0.8


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"calls": -1}, "calls"),
        ({"calls": math.nan}, "calls"),
        ({"period": 0}, "period"),
        ({"aht": 0}, "aht"),
        ({"aht": -5}, "aht"),
        ({"sl_time": -1}, "sl_time"),
        ({"patience": 0}, "patience"),
        ({"patience": math.inf}, "patience"),
        ({"shrinkage": 1.0}, "shrinkage"),
        ({"shrinkage": -0.1}, "shrinkage"),
        ({"sl_target": 0}, "sl_target"),
        ({"sl_target": 1.2}, "sl_target"),
        ({"max_occupancy": 0}, "max_occupancy"),
        ({"max_occupancy": 1.5}, "max_occupancy"),
    ],
)
def test_required_agents_rejects_bad_input(overrides: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {**CASE_1, "sl_target": 0.8, **overrides}
    with pytest.raises(ValueError, match=f"^{field}:") as info:
        required_agents(**kwargs)
    assert isinstance(info.value, ErlangInputError) and info.value.param == field


@pytest.mark.parametrize("agents", [-1, 2.5, True, 10**9])
def test_evaluate_rejects_bad_agents(agents: Any) -> None:
    with pytest.raises(ValueError, match=r"^agents:"):
        evaluate(**CASE_1, agents=agents)


def test_erlang_b_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"^n:"):
        erlang_b(-1, 3.0)
    with pytest.raises(ValueError, match=r"^a:"):
        erlang_b(3, -1.0)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app holding the command the way hotline.cli registers it."""

    app.command("erlang")(erlang)
    return app


def test_cli_published_case_json(cli: typer.Typer) -> None:
    args = ["erlang", "--calls", "100", "--period", "30m", "--aht", "3m"]
    result = CliRunner().invoke(cli, [*args, "--sl-time", "20s", "--shrinkage", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == [
        "model", "traffic_erlangs", "agents", "positions", "service_level", "asa", "p_wait",
        "occupancy",
    ]  # fmt: skip
    assert data["model"] == "erlang_c"
    assert (data["agents"], data["positions"]) == (14, 20)
    assert data["service_level"] == pytest.approx(0.888, abs=PUBLISHED)
    assert data["p_wait"] == pytest.approx(0.174, abs=PUBLISHED)
    assert data["occupancy"] == pytest.approx(0.714, abs=PUBLISHED)


def test_cli_evaluate_erlang_a_json(cli: typer.Typer) -> None:
    args = ["erlang", "--calls", "57", "--period", "1h", "--aht", "1110", "--agents", "21"]
    result = CliRunner().invoke(cli, [*args, "--sl-time", "3m", "--patience", "5m", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "erlang_a" and data["agents"] == 21
    assert 0 < data["abandon_rate"] < 1


def test_cli_table(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["erlang", "--calls", "100", "--aht", "180"])
    assert result.exit_code == 0, result.output
    assert "88.8%" in result.stdout and "Erlang C" in result.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--aht", "soon"], "error: --aht: not a duration"),
        (["--aht", "0"], "error: --aht: must be > 0"),
        (["--aht", "3m", "--sl-target", "1.5"], "error: --sl-target:"),
        (["--aht", "3m", "--patience", "forever"], "error: --patience:"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    cli: typer.Typer, extra: list[str], expected: str
) -> None:
    result = CliRunner().invoke(cli, ["erlang", "--calls", "100", *extra])
    assert result.exit_code == 2
    assert result.output.strip().startswith(expected)
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
