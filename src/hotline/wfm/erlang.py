"""Erlang C and Erlang A (M/M/n+M) staffing calculators.

Everything is evaluated in a form that stays finite and accurate for 10,000+ agents and any
patience: Erlang B through its ratio recursion, Erlang A (exact stationary M/M/n+M results)
through incomplete-gamma ratios kept in log space. Service level follows Hotline's metrics
definition: calls answered within the threshold / all calls offered, abandoned ones included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import integrate, optimize, special

__all__ = [
    "ErlangInputError",
    "StaffingResult",
    "erlang_b",
    "erlang_c",
    "evaluate",
    "required_agents",
]

Model = Literal["erlang_c", "erlang_a"]

MAX_AGENTS = 1_000_000
"""Upper bound for any agent count; keeps the O(n) Erlang B table to a few MB."""

_TINY = 1e-280  # below this scipy's regularized gamma is about to underflow
_DIRECT_TERMS = 200_000  # longest tail series summed term by term (a few ms)
_TAIL = 50.0  # the ASA integrand is cut where it has fallen by e^-50 from its peak
_OCC_EPS = 1e-12  # so that e.g. 8.5 erlangs on 10 agents meets an 85 % occupancy cap


class ErlangInputError(ValueError):
    """Bad input; carries the parameter name so the CLI can blame the right option."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.detail = detail


@dataclass(frozen=True)
class StaffingResult:
    """One staffing answer; fractions are 0..1, times are seconds.

    An unstable Erlang C queue (agents <= traffic) is a legitimate answer, not an error:
    service level 0, p_wait 1, occupancy 1 and an infinite ASA.
    """

    model: Model
    traffic_erlangs: float
    agents: int
    positions: int
    service_level: float
    asa: float
    p_wait: float
    occupancy: float
    abandon_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: strict JSON has no Infinity, so an unbounded ASA becomes None."""
        data = asdict(self)
        if self.abandon_rate is None:
            del data["abandon_rate"]
        return {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in data.items()
        }


class _Metrics(NamedTuple):
    service_level: float
    p_wait: float
    occupancy: float
    abandon_rate: float | None
    answered_if_waited: float = 1.0  # Erlang A: P(answered | had to wait), reused for ASA


@dataclass(frozen=True)
class _Queue:
    lam: float  # arrivals per second
    aht: float
    sl_time: float
    theta: float | None  # abandonment rate of one waiting caller; None means Erlang C

    @property
    def traffic(self) -> float:
        return self.lam * self.aht


# --------------------------------------------------------------------------- validation


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ErlangInputError(name, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ErlangInputError(name, f"must be finite, got {value!r}")
    return number


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ErlangInputError(name, f"must be a whole number, got {value!r}")
    if not 0 <= value <= MAX_AGENTS:
        raise ErlangInputError(name, f"must be between 0 and {MAX_AGENTS:,}, got {value}")
    return int(value)


def _require(ok: bool, name: str, detail: str) -> None:
    if not ok:
        raise ErlangInputError(name, detail)


def _queue(
    calls: float, period: float, aht: float, sl_time: float, patience: float | None
) -> _Queue:
    calls, period = _number("calls", calls), _number("period", period)
    aht, sl_time = _number("aht", aht), _number("sl_time", sl_time)
    _require(calls >= 0, "calls", f"must be ≥ 0, got {calls:g}")
    _require(period > 0, "period", f"must be > 0 seconds, got {period:g}")
    _require(aht > 0, "aht", f"must be > 0 seconds, got {aht:g}")
    _require(sl_time >= 0, "sl_time", f"must be ≥ 0 seconds, got {sl_time:g}")
    theta = None
    if patience is not None:
        patience = _number("patience", patience)
        _require(patience > 0, "patience", f"must be > 0 seconds, got {patience:g}")
        theta = 1.0 / patience
    return _Queue(lam=calls / period, aht=aht, sl_time=sl_time, theta=theta)


def _shrinkage(value: float) -> float:
    shrinkage = _number("shrinkage", value)
    _require(0 <= shrinkage < 1, "shrinkage", f"must be in [0, 1), got {shrinkage:g}")
    return shrinkage


# --------------------------------------------------------------------------- Erlang B / C


def erlang_b(n: int, a: float) -> float:
    """Blocking probability of n servers offered a erlangs.

    The ratio recursion avoids factorials and powers, so it neither overflows nor loses
    precision for n and a in the tens of thousands.
    """
    n, a = _count("n", n), _number("a", a)
    _require(a >= 0, "a", f"must be ≥ 0 erlangs, got {a:g}")
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(n: int, a: float) -> float:
    """Probability that a call waits; 1.0 when n <= a because that queue never empties."""
    n, a = _count("n", n), _number("a", a)
    if n <= a:
        return 1.0
    b = erlang_b(n, a)
    return n * b / (n - a * (1.0 - b))


class _ErlangBTable:
    """B(k, a) for k = 0, 1, ... grown on demand, so a whole staffing search costs O(n)."""

    def __init__(self, a: float) -> None:
        self._a = a
        self._values = [1.0]

    def __getitem__(self, n: int) -> float:
        values, a = self._values, self._a
        while len(values) <= n:
            b = values[-1]
            values.append(a * b / (len(values) + a * b))
        return values[n]


def _erlang_c_metrics(q: _Queue, n: int, b: float) -> _Metrics:
    a = q.traffic
    if n <= a:  # unstable: the queue grows without bound, every caller waits forever
        return _Metrics(0.0, 1.0, 1.0, None)
    c = n * b / (n - a * (1.0 - b))
    sl = 1.0 - c * math.exp(-(n - a) * q.sl_time / q.aht)
    return _Metrics(sl, c, a / n, None)


def _erlang_c_asa(q: _Queue, n: int, m: _Metrics) -> float:
    a = q.traffic
    return math.inf if n <= a else m.p_wait * q.aht / (n - a)


# --------------------------------------------------------------------------- Erlang A
#
# Notation: λ arrivals/s, μ = 1/aht, θ = 1/patience, s = nμ/θ, x = λ/θ. Substituting
# u = x·e^{-θt} in the virtual-waiting-time integrals gives
#   nμJ            = P(s, x) / pois(s; x)  =  Σ_j Π_{i=1..j} x/(s+i)       (≥ 1)
#   P(wait)        = r / (1 + r),  r = nμJ · E / (1 - E),  E = Erlang B(n, a)
#   P(answered | waited)          = (n/a) · P(s+1, x) / P(s, x) = (n/a) · (1 - 1/(nμJ))
#   P(answered after t | waited)  = (n/a) · P(s+1, y) / P(s, x),  y = x·e^{-θt}
# where P is the regularized lower incomplete gamma and pois(s; x) = x^s e^{-x} / Γ(s+1).
# With long patience s and x reach 1e10+, so nothing may be computed as a difference of
# numbers of that size: pois goes through Stirling's series, lower tails through the sum.


def _quad(
    f: Callable[[float], float],
    lo: float,
    hi: float,
    *,
    epsrel: float = 1e-10,
    points: list[float] | None = None,
) -> float:
    """Finite-range quadrature on relative error only: the integrands here are tiny numbers."""
    value, _ = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=epsrel, limit=200, points=points)
    return float(value)


def _stirling_error(s: float) -> float:
    """log Γ(s+1) - [s log s - s + ½ log 2πs], free of cancellation for large s."""
    if s < 15.0:
        return float(special.gammaln(s + 1.0)) - (
            s * math.log(s) - s + 0.5 * math.log(2 * math.pi * s)
        )
    inv2 = 1.0 / (s * s)
    return (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680))) / s


def _log_pois(s: float, x: float) -> float:
    d = (x - s) / s
    return -s * (d - math.log1p(d)) - 0.5 * math.log(2 * math.pi * s) - _stirling_error(s)


def _gammainc_reliable(s: float, x: float) -> bool:
    """scipy's P(s, x) is accurate near and above its centre, but more than a few standard
    deviations into the lower tail at large s it can be off by percents: sum those instead."""
    return s - x <= 4.0 * math.sqrt(s)


def _log_tail_ratio(s: float, x: float) -> float:
    """log(P(s, x) / pois(s; x)) = log Σ_j Π_{i=1..j} x/(s+i), accurate for any s and x."""
    if x / (s + 1.0) < 1e-12:
        return math.log1p(x / (s + 1.0))
    if _gammainc_reliable(s, x):
        return math.log(float(special.gammainc(s, x))) - _log_pois(s, x)
    ratio = x / (s + 1.0)  # the term ratios only shrink from here: the sum converges
    terms = math.ceil(45.0 / -math.log(ratio)) + 2
    if terms <= _DIRECT_TERMS:
        logs = np.cumsum(np.log(x / (s + np.arange(1.0, terms + 1.0))))
        return float(np.logaddexp(0.0, special.logsumexp(logs)))
    return math.log(_tail_sum_euler_maclaurin(s, x))


def _tail_sum_euler_maclaurin(s: float, x: float) -> float:
    """Σ_j exp g(j) for s > 3e8, where the terms vary too slowly to add one by one.

    g(j) = Σ_{i≤j} log(x/(s+i)) is smooth and concave with |g'| < 3e-4, so the integral
    plus two Euler-Maclaurin corrections is exact to rounding.
    """
    log_ratio, base = math.log1p(-(s - x) / s), _stirling_error(s)

    def g(j: float) -> float:
        u = j / s
        smooth = s * ((1.0 + u) * math.log1p(u) - u) + 0.5 * math.log1p(u)
        return j * log_ratio - smooth - _stirling_error(s + j) + base

    end = s / (s - x)
    while g(end) > -45.0:
        end *= 2.0
    end = float(optimize.brentq(lambda j: g(j) + 45.0, 0.0, end))
    integral = _quad(lambda j: math.exp(g(j)), 0.0, end, epsrel=1e-13)
    d1 = math.log(x) - float(special.digamma(s + 1.0))
    d2, d3 = -float(special.polygamma(1, s + 1.0)), -float(special.polygamma(2, s + 1.0))
    return integral + 0.5 - d1 / 12.0 + (d3 + 3.0 * d1 * d2 + d1**3) / 720.0


def _erlang_a_metrics(q: _Queue, n: int, b: float) -> _Metrics:
    assert q.theta is not None
    a, theta, t = q.traffic, q.theta, q.sl_time
    if n == 0:  # nobody to answer: every caller eventually abandons
        return _Metrics(0.0, 1.0, 1.0, 1.0, 0.0)
    if b == 0.0:  # Erlang B underflowed: so many agents that nobody ever waits
        return _Metrics(1.0, 0.0, a / n, 0.0)
    s, x = n / (q.aht * theta), q.lam / theta
    y = x * math.exp(-theta * t)
    log_nmj = _log_tail_ratio(s, x)
    log_r = log_nmj + math.log(b) - math.log1p(-b)
    p_wait, p_now = float(special.expit(log_r)), float(special.expit(-log_r))
    answered = (n / a) * -math.expm1(-log_nmj)
    p_x, p_y = float(special.gammainc(s, x)), float(special.gammainc(s + 1.0, y))
    if _gammainc_reliable(s, x) and _gammainc_reliable(s + 1.0, y) and min(p_x, p_y) > _TINY:
        log_late = math.log(p_y) - math.log(p_x)  # no huge pois terms to cancel
    else:  # same ratio through the tail sums, with pois(s+1; y) / pois(s; x) in closed form
        log_pois_ratio = (
            math.log(x / (s + 1.0)) - (s + 1.0) * theta * t - x * math.expm1(-theta * t)
        )
        log_late = log_pois_ratio + _log_tail_ratio(s + 1.0, y) - log_nmj
    late = (n / a) * math.exp(log_late)
    p_ab = min(1.0, max(0.0, p_wait * (1.0 - answered)))
    sl = min(1.0, p_now + p_wait * max(0.0, answered - late))
    occupancy = min(1.0, a * (1.0 - p_ab) / n)
    return _Metrics(sl, p_wait, occupancy, p_ab, max(0.0, answered))


def _erlang_a_asa(q: _Queue, n: int, m: _Metrics) -> float:
    """Mean wait of answered calls, ∫ x f_V(x) e^{-θx} dx / P(answered).

    Callers who waited and were answered have density ∝ exp φ(x), φ(x) = λH(x) - (nμ+θ)x,
    and their share of all answered calls is known in closed form. Only their mean wait needs
    quadrature; φ is concave, so it is taken as a ratio of two integrals centred on the single
    peak, which keeps huge exponents (patience of years, 10,000 agents) out of the arithmetic.
    """
    assert q.theta is not None and m.abandon_rate is not None
    if m.abandon_rate >= 1.0:  # nobody is ever answered
        return math.inf
    if m.p_wait == 0.0 or m.answered_if_waited == 0.0:
        return 0.0
    lam, theta, rate = q.lam, q.theta, n / q.aht + q.theta
    peak = math.log(lam / rate) / theta if lam > rate else 0.0
    excess = 0.0 if peak > 0 else lam - rate  # φ'(peak); exactly 0 at an interior peak

    def shape(u: float) -> float:  # φ(peak + u) - φ(peak), exactly 0 at u = 0
        z = theta * u
        curve = z * z * (0.5 - z / 6 + z * z / 24) if abs(z) < 1e-3 else math.expm1(-z) + z
        return -(rate + excess) * curve / theta + excess * u

    def edge(direction: float, limit: float) -> float:  # where the integrand is e^-_TAIL
        step = direction / rate
        while abs(step) < limit and shape(step) > -_TAIL:
            step *= 2.0
        step = math.copysign(min(abs(step), limit), direction)
        if shape(step) > -_TAIL:
            return step
        return float(optimize.brentq(lambda u: shape(u) + _TAIL, min(0.0, step), max(0.0, step)))

    lo, hi = (edge(-1.0, peak) if peak > 0 else 0.0), edge(1.0, math.inf)
    points = [0.0] if lo < 0 else None
    mass = _quad(lambda u: math.exp(shape(u)), lo, hi, points=points)
    total = _quad(lambda u: (peak + u) * math.exp(shape(u)), lo, hi, points=points)
    waited_share = m.p_wait * m.answered_if_waited / (1.0 - m.abandon_rate)
    return waited_share * total / mass


# --------------------------------------------------------------------------- public API


def _metrics(q: _Queue, n: int, b: float) -> _Metrics:
    if q.traffic == 0:  # no calls: nothing waits, nothing is missed
        return _Metrics(1.0, 0.0, 0.0, None if q.theta is None else 0.0)
    return _erlang_c_metrics(q, n, b) if q.theta is None else _erlang_a_metrics(q, n, b)


def _result(q: _Queue, n: int, b: float, shrinkage: float) -> StaffingResult:
    m = _metrics(q, n, b)
    if q.traffic == 0:
        asa = 0.0
    else:
        asa = _erlang_c_asa(q, n, m) if q.theta is None else _erlang_a_asa(q, n, m)
    return StaffingResult(
        model="erlang_c" if q.theta is None else "erlang_a",
        traffic_erlangs=q.traffic,
        agents=n,
        positions=math.ceil(n / (1.0 - shrinkage) - 1e-9),  # 14 / 0.7 must stay 20
        service_level=m.service_level,
        asa=asa,
        p_wait=m.p_wait,
        occupancy=m.occupancy,
        abandon_rate=m.abandon_rate,
    )


def evaluate(
    *,
    calls: float,
    period: float,
    aht: float,
    agents: int,
    sl_time: float,
    patience: float | None = None,
    shrinkage: float = 0.0,
) -> StaffingResult:
    """Performance of a fixed head count; Erlang A when a mean patience (seconds) is given."""
    q = _queue(calls, period, aht, sl_time, patience)
    n, shrinkage = _count("agents", agents), _shrinkage(shrinkage)
    return _result(q, n, erlang_b(n, q.traffic), shrinkage)


def required_agents(
    *,
    calls: float,
    period: float,
    aht: float,
    sl_time: float,
    sl_target: float,
    patience: float | None = None,
    shrinkage: float = 0.0,
    max_occupancy: float = 1.0,
) -> StaffingResult:
    """Fewest agents with service level ≥ sl_target and occupancy ≤ max_occupancy.

    Both conditions are monotone in n, so a growing bracket plus bisection over one lazily
    extended Erlang B table finds the answer in O(n) time even at 10,000+ agents.
    """
    q = _queue(calls, period, aht, sl_time, patience)
    shrinkage = _shrinkage(shrinkage)
    sl_target, max_occupancy = (
        _number("sl_target", sl_target),
        _number("max_occupancy", max_occupancy),
    )
    _require(0 < sl_target <= 1, "sl_target", f"must be in (0, 1], got {sl_target:g}")
    _require(0 < max_occupancy <= 1, "max_occupancy", f"must be in (0, 1], got {max_occupancy:g}")
    a = q.traffic
    table = _ErlangBTable(a)
    if a == 0:
        return _result(q, 0, table[0], shrinkage)
    _require(
        a / max_occupancy <= MAX_AGENTS,
        "max_occupancy",
        f"{max_occupancy:g} would need more than {MAX_AGENTS:,} agents",
    )

    def ok(n: int) -> bool:
        m = _metrics(q, n, table[n])
        return m.service_level >= sl_target and m.occupancy <= max_occupancy + _OCC_EPS

    lo, hi, step = 0, max(1, math.ceil(a)), max(1, math.ceil(math.sqrt(a)))  # ok(0) is False
    while not ok(hi):
        _require(hi < MAX_AGENTS, "sl_target", f"cannot be met with {MAX_AGENTS:,} agents")
        lo, hi, step = hi, min(hi + step, MAX_AGENTS), step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return _result(q, hi, table[hi], shrinkage)
