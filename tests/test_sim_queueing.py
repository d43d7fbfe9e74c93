"""The simulator against queueing theory: M/M/n (Erlang C) and M/M/n+M (Erlang A).

A single queue with Poisson arrivals, exponential handle times, no wrap-up and exponential
patience (or none) is exactly the model behind Erlang A (Erlang C), so the simulator's
steady-state KPIs must agree with ``hotline.wfm.erlang.evaluate`` up to sampling error.

How the statistical error is measured, not guessed:

* Method of batch means. The run is cut by arrival time into ``1 + K`` equal windows (the
  metrics interval is set to the window, so the KPI module's own interval report is the same
  partition). The first window is the warm-up and is discarded: the run starts empty with
  every agent idle. Each window is 20+ relaxation times of the queue long, so the K batch
  totals are close to independent; the standard error of each KPI is then estimated from the
  batch-to-batch spread (ratio estimator, because a batch's call count is itself random).
* Each KPI is a ratio R = Σy / Σx over the batches; with d_k = y_k − R·x_k its standard error
  is sqrt(Σd_k² / (K(K−1))) / mean(x). The studentised error (sim − theory) / SE then follows
  Student's t with K − 1 degrees of freedom.
* Critical value: one run of this file makes ``N_CHECKS`` such comparisons. We want a correct
  simulator to fail it with probability ≤ ``FAMILY_ALPHA`` = 1 % whatever the seeds are, so by
  Bonferroni each comparison is two-sided at FAMILY_ALPHA / N_CHECKS; with K − 1 = 29 degrees
  of freedom that is |t| ≤ 3.88 (3.45 standard errors for a normal law, widened for the
  uncertainty of a 30-batch variance estimate). The seeds are fixed, so the outcome is
  deterministic; seeds, run lengths and the critical value were chosen before any result
  was seen and nothing was adjusted afterwards.
* The standard errors were validated once, offline, by rerunning every case with 40 other
  seeds (720 t values): mean −0.03, SD 1.02 (Student t_29: 1.04), 4.6 % beyond ±2 (t_29:
  5.5 %), none beyond ±3.88; the 40-seed averages showed no bias at 1/√40 of the SE either.
* Power: the same check must reject a wrong theory (one agent fewer, abandonment ignored,
  or a mean patience mis-stated by 10 %), otherwise agreement would mean nothing.

KPI definitions match the theory (docs/metrics.md): service level = answered within the
threshold / all calls offered (``short_abandon: 0`` so no abandon is excluded), ASA = mean wait
of answered calls, P(abandon) = abandoned / offered, P(wait) = share of calls that were not
answered on arrival, occupancy = busy time / staffed time of the agents.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from scipy import stats

from hotline.events.types import (
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallQueued,
    Event,
)
from hotline.sim.runner import Simulation, SimulationResult
from hotline.sim.scenario import Scenario
from hotline.wfm.erlang import StaffingResult, evaluate

SL_THRESHOLD = 20.0  # seconds
BATCHES = 30  # K, after the warm-up window
FAMILY_ALPHA = 0.01
_STAFFED = frozenset(("ready", "reserved", "busy", "wrap_up"))  # as hotline.cms.metrics
_OCCUPIED = frozenset(("busy", "wrap_up"))


@dataclass(frozen=True)
class Case:
    """One single-queue scenario; ``batch_hours`` is 20+ relaxation times of the queue."""

    name: str
    agents: int
    erlangs: float  # offered load a = λ·aht
    aht: float  # seconds, exponential
    patience: float | None  # seconds, exponential; None: callers never hang up (Erlang C)
    batch_hours: float
    seed: int

    @property
    def calls_per_hour(self) -> float:
        return self.erlangs * 3600.0 / self.aht

    def scenario(self) -> dict[str, Any]:
        traffic: dict[str, Any] = {
            "queue": "q",
            "calls_per_hour": self.calls_per_hour,
            "handle_time": {"dist": "exponential", "mean": self.aht},
        }
        if self.patience is not None:
            traffic["patience"] = {"dist": "exponential", "mean": self.patience}
        return {
            "name": self.name,
            "duration": (1 + BATCHES) * self.batch_hours * 3600.0,
            "interval": self.batch_hours * 3600.0,
            "service_level": {"threshold": SL_THRESHOLD, "short_abandon": 0},
            "queues": [{"id": "q", "wrap_up": 0}],
            "traffic": [traffic],
            "agents": [{"group": "a", "count": self.agents}],
        }

    def theory(
        self, *, agents: int | None = None, patience: float | Literal["same"] | None = "same"
    ) -> StaffingResult:
        """Erlang A (Erlang C without patience); the keywords state a deliberately wrong
        theory for the power checks."""
        return evaluate(
            calls=self.calls_per_hour,
            period=3600.0,
            aht=self.aht,
            agents=self.agents if agents is None else agents,
            sl_time=SL_THRESHOLD,
            patience=self.patience if patience == "same" else patience,
        )


# Relaxation times of the queue-length chain (1 / spectral gap of its generator, computed
# numerically) are 1.57 h, 3.41 h, 0.12 h and 0.06 h: batches are 23, 44, 82 and 350 of them.
CASES = [
    # Erlang C at ρ = 0.9 with 20 agents: about half the callers wait.
    Case(
        "mmn-20-rho0.90",
        agents=20,
        erlangs=18.0,
        aht=300.0,
        patience=None,
        batch_hours=36.0,
        seed=1,
    ),
    # Erlang C with few agents at ρ = 0.85: long, strongly correlated queues.
    Case(
        "mmn-4-rho0.85", agents=4, erlangs=3.4, aht=300.0, patience=None, batch_hours=150.0, seed=2
    ),
    # Erlang A critically loaded (λ = nμ) with 50 agents: stable only thanks to abandonment.
    Case(
        "mmn+m-50-rho1.00",
        agents=50,
        erlangs=50.0,
        aht=240.0,
        patience=600.0,
        batch_hours=10.0,
        seed=3,
    ),
    # Erlang A overloaded (λ = 1.2 nμ): a fifth of the callers abandon.
    Case(
        "mmn+m-20-rho1.20",
        agents=20,
        erlangs=24.0,
        aht=300.0,
        patience=180.0,
        batch_hours=20.0,
        seed=4,
    ),
]
KPIS_C = ("service_level", "asa", "p_wait", "occupancy")
KPIS_A = (*KPIS_C, "abandon_rate")
N_CHECKS = sum(len(KPIS_A if c.patience else KPIS_C) for c in CASES)
CRITICAL = float(stats.t.ppf(1.0 - FAMILY_ALPHA / (2 * N_CHECKS), BATCHES - 1))


# --------------------------------------------------------------------------- batch totals


class BatchCollector:
    """Per-batch sums from the raw event stream (``on_event``), independent of the metrics
    module: calls are batched by arrival, agent time by the window it falls in."""

    def __init__(self, width: float, windows: int) -> None:
        self.width = width
        self.windows = windows
        zeros = [0.0] * windows
        self.offered, self.answered, self.abandoned = zeros[:], zeros[:], zeros[:]
        self.waited, self.in_sl, self.wait_sum = zeros[:], zeros[:], zeros[:]
        self.occupied, self.staffed = zeros[:], zeros[:]
        self.occupied_total = self.staffed_total = 0.0
        self._batch_of: dict[str, int] = {}
        self._agent_since: dict[str, float] = {}

    def __call__(self, e: Event) -> None:
        cls = type(e)
        if cls is CallQueued:
            assert isinstance(e, CallQueued)
            k = int(e.t // self.width)
            self._batch_of[e.call] = k
            if k < self.windows:
                self.offered[k] += 1
        elif cls is CallAnswered:
            assert isinstance(e, CallAnswered)
            k = self._batch_of.pop(e.call)
            if k < self.windows:
                self.answered[k] += 1
                self.wait_sum[k] += e.wait
                self.waited[k] += e.wait > 0.0
                self.in_sl[k] += e.wait <= SL_THRESHOLD
        elif cls is CallAbandoned:
            assert isinstance(e, CallAbandoned)
            k = self._batch_of.pop(e.call)
            if k < self.windows:
                self.abandoned[k] += 1
                self.waited[k] += 1
        elif cls is AgentStateChanged:
            assert isinstance(e, AgentStateChanged)
            start = self._agent_since.get(e.agent, e.t)
            self._agent_since[e.agent] = e.t
            if e.prev in _STAFFED:
                self.staffed_total += e.t - start
                self._spread(self.staffed, start, e.t)
                if e.prev in _OCCUPIED:
                    self.occupied_total += e.t - start
                    self._spread(self.occupied, start, e.t)

    def _spread(self, into: list[float], start: float, end: float) -> None:
        k = int(start // self.width)
        while start < end and k < self.windows:
            edge = min(end, (k + 1) * self.width)
            into[k] += edge - start
            start, k = edge, k + 1


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float


def ratio_estimate(y: list[float], x: list[float]) -> Estimate:
    """Σy/Σx with its batch-means standard error (delta method for a ratio of means)."""
    k = len(x)
    r = sum(y) / sum(x)
    spread = sum((yi - r * xi) ** 2 for yi, xi in zip(y, x, strict=True)) / (k - 1)
    return Estimate(r, math.sqrt(spread / k) / (sum(x) / k))


@dataclass(frozen=True)
class Run:
    case: Case
    result: SimulationResult
    kpis: dict[str, Estimate]


@functools.cache
def simulate(case: Case) -> Run:
    scenario = Scenario.model_validate(case.scenario())
    width = case.batch_hours * 3600.0
    batches = BatchCollector(width, 1 + BATCHES)
    result = Simulation(scenario, seed=case.seed, on_event=batches).run()
    check_against_metrics_module(case, result, batches)
    b = batches
    keep = slice(1, None)  # drop the warm-up window
    kpis = {
        "service_level": ratio_estimate(b.in_sl[keep], b.offered[keep]),
        "asa": ratio_estimate(b.wait_sum[keep], b.answered[keep]),
        "p_wait": ratio_estimate(b.waited[keep], b.offered[keep]),
        "occupancy": ratio_estimate(b.occupied[keep], b.staffed[keep]),
        "abandon_rate": ratio_estimate(b.abandoned[keep], b.offered[keep]),
    }
    return Run(case, result, kpis)


def check_against_metrics_module(case: Case, result: SimulationResult, b: BatchCollector) -> None:
    """The numbers tested are the product's: the KPI module's interval report (same arrival
    windows) and agent report must match the batch sums taken from the raw events."""
    report = result.to_dict()
    rows = report["intervals"]
    assert [r["start"] for r in rows] == [k * b.width for k in range(1 + BATCHES)]
    for k, row in enumerate(rows):
        assert row["offered"] == b.offered[k]
        assert row["answered"] == b.answered[k]
        assert row["abandoned"] + row["short_abandoned"] == b.abandoned[k]
        base = row["offered"] - row["short_abandoned"]
        assert row["service_level"] * base == pytest.approx(b.in_sl[k], abs=1e-6)
        assert row["asa"] * row["answered"] == pytest.approx(b.wait_sum[k], rel=1e-9)
        assert row["aht"] == pytest.approx(case.aht, rel=0.1)  # exponential handle times
    total = report["total"]
    assert (
        total["offered"]
        == sum(b.offered)
        == total["answered"] + total["abandoned"] + total["short_abandoned"]
    )
    agents = report["agents"].values()
    assert len(agents) == case.agents
    assert all(a["not_ready_time"] == 0.0 for a in agents)  # staffed = logged in
    occupied = sum(a["occupancy"] * a["logged_in_time"] for a in agents)
    assert occupied == pytest.approx(b.occupied_total, rel=1e-9)
    assert sum(a["logged_in_time"] for a in agents) == pytest.approx(b.staffed_total, rel=1e-9)
    assert b.staffed[1:] == pytest.approx([case.agents * b.width] * BATCHES, rel=1e-9)


def compare(run: Run, theory: StaffingResult) -> list[tuple[str, float, float, float, float]]:
    """(kpi, simulated, theory, SE, t) for each KPI the model defines."""
    out = []
    for kpi in KPIS_A if theory.abandon_rate is not None else KPIS_C:
        est = run.kpis[kpi]
        expected = getattr(theory, kpi)
        out.append((kpi, est.value, expected, est.se, (est.value - expected) / est.se))
    return out


def table(rows: list[tuple[str, float, float, float, float]]) -> str:
    lines = [f"{'kpi':>14} {'sim':>10} {'theory':>10} {'SE':>9} {'t':>7}"]
    lines += [f"{k:>14} {s:10.5f} {th:10.5f} {se:9.5f} {t:7.2f}" for k, s, th, se, t in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_simulator_agrees_with_erlang(case: Case) -> None:
    run = simulate(case)
    rows = compare(run, case.theory())
    assert len(rows) == len(KPIS_A if case.patience else KPIS_C)
    bad = [r for r in rows if not abs(r[4]) <= CRITICAL]
    assert not bad, f"{case.name}: |t| > {CRITICAL:.2f}\n{table(rows)}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_wrong_theory_is_rejected(case: Case) -> None:
    """The same check has power: the theory for one agent fewer fails it. (Measured: every
    KPI of every case is then off by 5 to 65 SE; for 4 agents the wrong theory is unstable.)"""
    rows = compare(simulate(case), case.theory(agents=case.agents - 1))
    assert any(abs(r[4]) > CRITICAL for r in rows), table(rows)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_patience_off_by_ten_percent_is_rejected(factor: float) -> None:
    """Power against a subtle error: in the overloaded case a mean patience mis-stated by
    10 % moves the theoretical ASA by about 10 %, which the run resolves."""
    case = CASES[3]
    assert case.patience is not None
    rows = compare(simulate(case), case.theory(patience=case.patience * factor))
    assert any(abs(r[4]) > CRITICAL for r in rows), table(rows)


def test_ignoring_abandonment_is_rejected() -> None:
    """Erlang C in place of Erlang A for the critically loaded case: without abandonment that
    queue is unstable and the wrong theory says nobody is answered in time."""
    case = CASES[2]
    wrong = case.theory(patience=None)
    sl = simulate(case).kpis["service_level"]
    assert wrong.asa == math.inf and wrong.service_level == 0.0
    assert abs(sl.value - wrong.service_level) > CRITICAL * sl.se


def test_runs_are_long_enough_for_a_tight_check() -> None:
    """Agreement within CRITICAL·SE only means something if SE is small: a simulator whose
    output were erratic would otherwise pass. Each tolerance must be a tight band."""
    assert N_CHECKS == 18
    for case in CASES:
        kpis = simulate(case).kpis
        assert CRITICAL * kpis["service_level"].se < 0.06
        assert CRITICAL * kpis["p_wait"].se < 0.06
        assert CRITICAL * kpis["asa"].se < 0.25 * kpis["asa"].value
        assert CRITICAL * kpis["occupancy"].se < 0.02
        if case.patience is not None:
            assert CRITICAL * kpis["abandon_rate"].se < 0.02


def _small() -> Scenario:
    case = Case("small", agents=5, erlangs=5.0, aht=120.0, patience=60.0, batch_hours=0.5, seed=0)
    return Scenario.model_validate(case.scenario())


def test_same_seed_same_result_different_seed_different() -> None:
    scenario = _small()
    first = Simulation(scenario, seed=11).run().to_dict()
    again = Simulation(scenario, seed=11).run().to_dict()
    events: list[Event] = []
    observed = Simulation(scenario, seed=11, on_event=events.append).run().to_dict()
    other = Simulation(scenario, seed=12).run().to_dict()
    assert first["total"]["offered"] > 1000
    assert first == again
    assert observed == first  # watching the events does not perturb the run
    assert other != first
    assert other["total"] != first["total"]
