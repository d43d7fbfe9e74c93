"""The SimPy reference for ``sim_throughput.py``: one M/M/n+M queue written the idiomatic
SimPy way, so Hotline's calls per second are compared with a well-known engine on the same
model, and its abandon rate confirms the two models agree.

Each caller is a process that requests one of ``n`` agents (a FIFO ``Resource``), races the
request against its patience (``req | timeout``), and holds the agent for its handle time.
Bookkeeping mirrors what Hotline's metrics fold per call: answered, abandoned (short
abandons apart), wait sum, answered within the service-level threshold.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from math import log
from random import Random
from typing import Any

import simpy


@dataclass(slots=True)
class Tally:
    """Per-run counters, updated as callers finish (nothing is kept per call)."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0  # after the short-abandon threshold
    short_abandoned: int = 0
    wait_sum: float = 0.0
    max_wait: float = 0.0


def run_simpy(
    *,
    agents: int,
    rate: float,
    mean_handle: float,
    mean_patience: float,
    calls: int,
    seed: int = 1,
    sl_threshold: float = 20.0,
    short_abandon: float = 5.0,
) -> dict[str, Any]:
    """Simulate ``calls`` Poisson arrivals (``rate`` per second) until the last one leaves;
    returns the tally, wall and CPU seconds and calls per second of each."""
    rng = Random(f"{seed}:simpy")
    uniform = rng.random
    tally = Tally()

    def exp(mean: float) -> float:
        return -log(1.0 - uniform()) * mean

    def caller(
        env: simpy.Environment, pool: simpy.Resource, handle: float, patience: float
    ) -> Generator[simpy.Event, Any, None]:
        arrival = env.now
        with pool.request() as req:
            outcome = yield req | env.timeout(patience)
            wait = env.now - arrival
            if wait > tally.max_wait:
                tally.max_wait = wait
            if req in outcome:
                tally.answered += 1
                tally.wait_sum += wait
                if wait <= sl_threshold:
                    tally.answered_in_sl += 1
                yield env.timeout(handle)
            elif wait <= short_abandon:
                tally.short_abandoned += 1
            else:
                tally.abandoned += 1

    def source(env: simpy.Environment, pool: simpy.Resource) -> Generator[simpy.Event, Any, None]:
        mean_gap = 1.0 / rate
        for _ in range(calls):
            yield env.timeout(exp(mean_gap))
            tally.offered += 1
            env.process(caller(env, pool, exp(mean_handle), exp(mean_patience)))

    start, cpu = time.perf_counter(), time.process_time()
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=agents)
    env.process(source(env, pool))
    env.run()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "engine": "simpy",
        "version": simpy.__version__,
        "calls": tally.offered,
        "wall_s": wall,
        "cpu_s": cpu,
        "calls_per_s": tally.offered / wall,
        "calls_per_cpu_s": tally.offered / cpu,
        "tally": asdict(tally),
        "kpis": kpis(tally),
        "end": env.now,
    }


def kpis(t: Tally) -> dict[str, float | None]:
    """The same definitions as ``hotline.cms.metrics`` (standard service level)."""
    base = t.offered - t.short_abandoned
    return {
        "service_level": t.answered_in_sl / base if base else None,
        "abandon_rate": t.abandoned / base if base else None,
        "abandon_all": (t.abandoned + t.short_abandoned) / t.offered if t.offered else None,
        "asa": t.wait_sum / t.answered if t.answered else None,
    }


if __name__ == "__main__":
    import json

    print(
        json.dumps(
            run_simpy(agents=100, rate=0.5, mean_handle=180.0, mean_patience=120.0, calls=100_000),
            indent=2,
        )
    )
