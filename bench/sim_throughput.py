"""Simulator throughput and memory benchmark (the issue's acceptance figures).

Why: the simulator is only useful for staffing what-ifs if a year of traffic runs in seconds,
and only safe on a laptop if memory stays flat however long the run. This prints

1. calls simulated per second through a 1,000-agent, 50-queue skills scenario (≥ 1,000,000
   calls by default), with events and metrics on, plus its KPIs to show the model is sane;
2. Hotline vs SimPy on the same M/M/n+M queue in the same process (calls per second, ratio,
   and abandon rates, which must agree if the two models are equivalent);
3. peak RSS of the skills run, measured in fresh subprocesses at ¼ and full length, so any
   growth with run length shows as a difference between the two.

Run from the repository root with the installed (mypyc-compiled) package:
``python bench/sim_throughput.py [--calls N] [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import import_module
from typing import Any

from hotline.sim.runner import Simulation
from hotline.sim.scenario import Scenario
from simpy_mmnm import run_simpy

HOT_MODULES = (
    "hotline.events.types",
    "hotline.acd.config",
    "hotline.acd.commands",
    "hotline.acd.index",
    "hotline.acd.engine",
    "hotline.cms.metrics",
    "hotline.sim.distributions",
    "hotline.sim.runner",
)
STRATEGY_CYCLE = (
    "longest-idle",
    "least-calls",
    "best-skill",
    "round-robin",
    "least-talk-time",
    "top-down",
    "random",
)
N_QUEUES = 50
N_AGENTS = 1000
TARGET_LOAD = 0.88  # offered Erlangs per agent of the queue's own group
# The same-model comparison: M/M/n+M, n=100, λ=0.5/s, mean handle 180 s, mean patience 120 s.
MMN_AGENTS, MMN_RATE, MMN_HANDLE, MMN_PATIENCE = 100, 0.5, 180.0, 120.0
GOAL_SPEEDUP = 3.0
GOAL_RSS_MB = 500.0


# --------------------------------------------------------------------------- scenarios


def _split(total: int, weights: list[float]) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` (largest remainder)."""
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def skills_scenario(calls: int) -> dict[str, Any]:
    """50 queues, one skill each; 50 agent groups (1,000 agents) holding their own queue's
    skill at a high level and 2-4 neighbours' at lower levels, so most queues share agents.
    Traffic is sized to ~88% offered load and the duration to yield at least ``calls``."""
    weights = [1.0 + 0.5 * (i * 7 % 5) for i in range(N_QUEUES)]  # 1.0 .. 3.0
    sizes = _split(N_AGENTS, weights)
    queues: list[dict[str, Any]] = []
    traffic: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []
    rate_total = 0.0
    for i in range(N_QUEUES):
        qid = f"q{i:02d}"
        handle = 150.0 + 30.0 * (i % 7)  # 150 .. 330 s
        wrap = 10.0 + 5.0 * (i % 4) if i % 3 == 0 else 0.0
        queue: dict[str, Any] = {
            "id": qid,
            "skills": {qid: 2 if i % 5 == 2 else 1},
            "strategy": "ring-all" if i == N_QUEUES - 1 else STRATEGY_CYCLE[i % 7],
            "wrap_up": wrap,
        }
        if i % 10 == 9:
            queue["priority"] = 5
        queues.append(queue)
        rate = TARGET_LOAD * sizes[i] / (handle + wrap)  # calls per second
        rate_total += rate
        handle_dist: dict[str, Any] = (
            {"dist": "exponential", "mean": handle}
            if i % 2 == 0
            else {"dist": "lognormal", "mean": handle, "sd": 0.7 * handle}
        )
        traffic.append(
            {
                "queue": qid,
                "calls_per_hour": rate * 3600.0,
                "handle_time": handle_dist,
                "patience": {"dist": "exponential", "mean": 90.0 + 30.0 * (i % 5)},
            }
        )
        nskills = 3 + i % 3  # 3..5 skills per group
        skills = {qid: 6 + i % 4}
        for offset, level in list(zip((1, 2, 5, 11), (4, 3, 2, 1), strict=True))[: nskills - 1]:
            skills[f"q{(i - offset) % N_QUEUES:02d}"] = level
        agents.append({"group": f"g{i:02d}", "count": sizes[i], "skills": skills})
    # Poisson count: add five standard deviations so the run yields ≥ ``calls`` all but surely.
    duration = (calls + 5.0 * math.sqrt(calls)) / rate_total
    return {
        "name": "bench-skills-1000x50",
        "duration": duration,
        "service_level": {"threshold": 20.0, "short_abandon": 5.0},
        "queues": queues,
        "traffic": traffic,
        "agents": agents,
    }


def mmnm_scenario(calls: int) -> dict[str, Any]:
    """The M/M/n+M comparison queue as a Hotline scenario (no wrap-up, FIFO, longest idle)."""
    return {
        "name": "bench-mmnm",
        "duration": calls / MMN_RATE,
        "service_level": {"threshold": 20.0, "short_abandon": 5.0},
        "queues": [{"id": "q", "strategy": "longest-idle"}],
        "traffic": [
            {
                "queue": "q",
                "calls_per_hour": MMN_RATE * 3600.0,
                "handle_time": {"dist": "exponential", "mean": MMN_HANDLE},
                "patience": {"dist": "exponential", "mean": MMN_PATIENCE},
            }
        ],
        "agents": [{"group": "a", "count": MMN_AGENTS}],
    }


# --------------------------------------------------------------------------- measurement


def _status_mb(field: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` figure of this process in MB (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (VmHWM; ru_maxrss where /proc is absent)."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def compiled_modules() -> dict[str, bool]:
    """Which hot modules are mypyc extension modules (the build the issue's goals are for)."""
    return {name: (import_module(name).__file__ or "").endswith(".so") for name in HOT_MODULES}


def _summary(result: Any) -> dict[str, Any]:
    """Center KPIs plus the spread across queues and agents (a collapse shows up here)."""
    m = result.metrics
    total = m.total()
    per_queue = m.queues()
    sls = [q["service_level"] for q in per_queue.values() if q["service_level"] is not None]
    abandons = [q["abandon_rate"] for q in per_queue.values() if q["abandon_rate"] is not None]
    occupancy = [a["occupancy"] for a in m.agents(result.end).values() if a["occupancy"]]
    return {
        "offered": total["offered"],
        "answered": total["answered"],
        "abandoned": total["abandoned"],
        "short_abandoned": total["short_abandoned"],
        "service_level": total["service_level"],
        "abandon_rate": total["abandon_rate"],
        "abandon_all": (total["abandoned"] + total["short_abandoned"]) / total["offered"],
        "asa": total["asa"],
        "aht": total["aht"],
        "queue_sl_min": min(sls),
        "queue_sl_max": max(sls),
        "queue_abandon_max": max(abandons),
        "occupancy_mean": sum(occupancy) / len(occupancy),
        "calls_in_flight_at_end": m.in_flight(),
    }


def run_skills(calls: int, seed: int) -> dict[str, Any]:
    """One skills run in this process, sampling RSS as it goes (reading /proc every 16,384
    simulator steps costs nothing measurable)."""
    scenario = Scenario.model_validate(skills_scenario(calls))
    t0 = time.perf_counter()
    sim = Simulation(scenario, seed=seed)
    t1, c1 = time.perf_counter(), time.process_time()
    rss_setup = _status_mb("VmRSS")
    samples: list[tuple[float, float]] = []
    duration = scenario.duration

    def progress(now: float) -> None:
        rss = _status_mb("VmRSS")
        if rss is not None:
            samples.append((now / duration, rss))

    result = sim.run(progress)
    t2, c2 = time.perf_counter(), time.process_time()
    deciles = []
    for k in range(1, 11):
        near = [s for s in samples if s[0] <= k / 10]
        if near:
            deciles.append(round(near[-1][1], 1))
    return {
        "scenario": scenario.name,
        "queues": len(scenario.queues),
        "agents": sum(g.count for g in scenario.agents),
        "sim_hours": scenario.duration / 3600.0,
        "calls": result.calls,
        "setup_s": t1 - t0,
        "wall_s": t2 - t1,
        "cpu_s": c2 - c1,
        "calls_per_s": result.calls / (t2 - t1),
        "calls_per_cpu_s": result.calls / (c2 - c1),
        "kpis": _summary(result),
        "rss_setup_mb": rss_setup,
        "rss_by_decile_mb": deciles,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_skills_subprocess(calls: int, seed: int) -> dict[str, Any]:
    """The skills run in a fresh interpreter, so its peak RSS is its own."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-skills",
        str(calls),
        "--seed",
        str(seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run_hotline_mmnm(calls: int, seed: int) -> dict[str, Any]:
    """The comparison queue through Hotline's simulator: events and metrics on, as always."""
    scenario = Scenario.model_validate(mmnm_scenario(calls))
    start, cpu = time.perf_counter(), time.process_time()
    sim = Simulation(scenario, seed=seed)
    result = sim.run()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    total = result.metrics.total()
    base = total["offered"] - total["short_abandoned"]
    return {
        "engine": "hotline",
        "calls": result.calls,
        "wall_s": wall,
        "cpu_s": cpu,
        "calls_per_s": result.calls / wall,
        "calls_per_cpu_s": result.calls / cpu,
        "kpis": {
            "service_level": total["service_level"],
            "abandon_rate": total["abandoned"] / base,
            "abandon_all": (total["abandoned"] + total["short_abandoned"]) / total["offered"],
            "asa": total["asa"],
        },
    }


def erlang_a_reference() -> dict[str, Any] | None:
    """Erlang A's abandon fraction for the comparison queue, a third opinion on equivalence
    (skipped if the calculator's API moves)."""
    try:
        from hotline.wfm.erlang import evaluate

        res = evaluate(
            calls=MMN_RATE * 3600.0,
            period=3600.0,
            aht=MMN_HANDLE,
            agents=MMN_AGENTS,
            sl_time=20.0,
            patience=MMN_PATIENCE,
        )
        return {"abandon_all": res.abandon_rate, "service_level": res.service_level, "asa": res.asa}
    except Exception:  # a reference only; never fail the benchmark over it
        return None


def compare(calls: int, seed: int, repeat: int) -> dict[str, Any]:
    """Hotline vs SimPy on the same queue, same call count, same process; runs alternate
    (so a burst of load elsewhere hits both) and the fastest of ``repeat`` each is kept."""
    hots, refs = [], []
    for _ in range(repeat):
        hots.append(run_hotline_mmnm(calls, seed))
        refs.append(
            run_simpy(
                agents=MMN_AGENTS,
                rate=MMN_RATE,
                mean_handle=MMN_HANDLE,
                mean_patience=MMN_PATIENCE,
                calls=calls,
                seed=seed,
            )
        )
    hot = min(hots, key=lambda r: r["wall_s"])
    ref = min(refs, key=lambda r: r["wall_s"])
    pairs = sorted(h["calls_per_s"] / r["calls_per_s"] for h, r in zip(hots, refs, strict=True))
    return {
        "model": f"M/M/{MMN_AGENTS}+M λ={MMN_RATE:g}/s handle {MMN_HANDLE:g}s "
        f"patience {MMN_PATIENCE:g}s",
        "calls": calls,
        "hotline": hot,
        "simpy": ref,
        "speedup": hot["calls_per_s"] / ref["calls_per_s"],
        "speedup_cpu": hot["calls_per_cpu_s"] / ref["calls_per_cpu_s"],
        "speedup_median_pair": pairs[len(pairs) // 2],
        "repeat": repeat,
        "hotline_calls_per_s_runs": [h["calls_per_s"] for h in hots],
        "simpy_calls_per_s_runs": [r["calls_per_s"] for r in refs],
        "erlang_a": erlang_a_reference(),
    }


# --------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(data: dict[str, Any]) -> None:
    """Human-readable tables (Rich)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    comp = data["compiled"]
    n_comp = sum(comp.values())
    if n_comp == len(comp):
        build = f"[green]compiled (mypyc), {n_comp}/{len(comp)} hot modules[/]"
    else:
        missing = ", ".join(k for k, v in comp.items() if not v)
        build = f"[bold red]NOT fully compiled ({n_comp}/{len(comp)}); pure: {missing}[/]"
    env = data["env"]
    console.print(
        f"[bold]Hotline simulator benchmark[/]  {env['python']}, {env['cpu']} "
        f"×{env['cpus']} (load {env['loadavg_before']:.2f} before, "
        f"{env['loadavg_after']:.2f} after)\nbuild: {build}"
    )

    sk = data["skills"]
    k = sk["kpis"]
    t = Table(
        title=f"Skills scenario: {sk['agents']:,} agents, {sk['queues']} queues, "
        f"{sk['sim_hours']:.1f} simulated hours (events + metrics on)"
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("calls simulated", f"{sk['calls']:,}")
    t.add_row("wall time (run)", f"{sk['wall_s']:.2f} s  (+{sk['setup_s']:.2f} s setup)")
    t.add_row("[bold]calls / s[/]", f"[bold]{sk['calls_per_s']:,.0f}[/]")
    t.add_row("calls / CPU-s", f"{sk['calls_per_cpu_s']:,.0f}")
    t.add_row("service level (20 s)", _pct(k["service_level"]))
    t.add_row("abandon rate (excl. short)", _pct(k["abandon_rate"]))
    t.add_row("ASA", f"{k['asa']:.1f} s")
    t.add_row("queue SL min / max", f"{_pct(k['queue_sl_min'])} / {_pct(k['queue_sl_max'])}")
    t.add_row("worst queue abandon rate", _pct(k["queue_abandon_max"]))
    t.add_row("mean agent occupancy", _pct(k["occupancy_mean"]))
    t.add_row("calls in flight at end", str(k["calls_in_flight_at_end"]))
    console.print(t)

    c = data["compare"]
    t = Table(title=f"Same model, same process: {c['model']}", box=box.SIMPLE_HEAD)
    for col in ("engine", "calls", "wall s", "calls/s", "SL 20 s", "abandoned", "ASA s"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in (c["hotline"], c["simpy"]):
        kk = r["kpis"]
        t.add_row(
            r["engine"],
            f"{r['calls']:,}",
            f"{r['wall_s']:.2f}",
            f"{r['calls_per_s']:,.0f}",
            _pct(kk["service_level"]),
            _pct(kk["abandon_all"]),
            f"{kk['asa']:.2f}",
        )
    if c["erlang_a"]:
        e = c["erlang_a"]
        t.add_row(
            "Erlang A",
            "",
            "",
            "",
            _pct(e["service_level"]),
            _pct(e["abandon_all"]),
            f"{e['asa']:.2f}",
        )
    console.print(t)

    mem = data["memory"]
    t = Table(title="Peak RSS of the skills run, fresh subprocess each")
    for col in ("calls", "RSS after setup", "RSS at 10%…100% of the run (MB)", "peak RSS"):
        t.add_column(col, justify="right")
    for r in mem["runs"]:
        t.add_row(
            f"{r['calls']:,}",
            f"{r['rss_setup_mb']:.0f} MB",
            " ".join(f"{x:.0f}" for x in r["rss_by_decile_mb"]),
            f"{r['peak_rss_mb']:.0f} MB",
        )
    console.print(t)

    g = data["goals"]
    console.print(
        f"Goal ≥ {GOAL_SPEEDUP:g}× SimPy: {c['speedup']:.2f}× best of {c['repeat']} "
        f"(CPU time {c['speedup_cpu']:.2f}×, median pair {c['speedup_median_pair']:.2f}×)"
        f" → {_verdict(g['speedup'])}"
    )
    console.print(
        f"Goal peak RSS < {GOAL_RSS_MB:g} MB ({sk['calls']:,} calls): "
        f"{sk['peak_rss_mb']:.0f} MB → {_verdict(g['rss'])}"
    )
    console.print(
        f"Memory flat with run length: {mem['growth_mb']:+.1f} MB from "
        f"{mem['runs'][0]['calls']:,} to {mem['runs'][-1]['calls']:,} calls → "
        f"{_verdict(g['flat'])}"
    )
    console.print(f"Skills model sane (SL ≥ 50%, abandons < 10%): {_verdict(g['sane'])}")


def main(argv: list[str] | None = None) -> int:
    """CLI entry: the parent runs the memory/throughput children, then the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="skills-run calls (≥)")
    ap.add_argument(
        "--compare-calls",
        type=int,
        default=300_000,
        help="calls for the Hotline vs SimPy comparison",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 50k / 20k calls")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="comparison runs of each engine, alternating; the fastest is kept",
    )
    ap.add_argument("--child-skills", type=int, metavar="CALLS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_skills is not None:
        print(json.dumps(run_skills(args.child_skills, args.seed)))
        return 0
    if args.quick:
        args.calls, args.compare_calls = 50_000, 20_000

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    compiled = compiled_modules()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        say(f"note: load average {load_before:.2f} before start; other processes skew timings")
    if not all(compiled.values()):
        say("warning: running pure Python; install non-editable (pip install .) to compile")
    runs = []
    for n in (args.calls // 4, args.calls):
        say(f"skills scenario, {n:,} calls (subprocess)…")
        runs.append(run_skills_subprocess(n, args.seed))
    say(f"Hotline vs SimPy, {args.compare_calls:,} calls…")
    comp = compare(args.compare_calls, args.seed, max(1, args.repeat))
    skills = runs[-1]
    growth = runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"]
    k = skills["kpis"]
    data = {
        "env": {
            "python": f"Python {platform.python_version()}",
            "cpu": _cpu_name(),
            "executable": sys.executable,
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg()[0],
        },
        "args": {
            "calls": args.calls,
            "compare_calls": args.compare_calls,
            "seed": args.seed,
            "repeat": args.repeat,
        },
        "compiled": compiled,
        "is_compiled": all(compiled.values()),
        "skills": skills,
        "compare": comp,
        "memory": {"runs": runs, "growth_mb": growth},
        "goals": {
            "speedup": comp["speedup"] >= GOAL_SPEEDUP,
            "rss": skills["peak_rss_mb"] < GOAL_RSS_MB,
            # Flat: a 4x longer run may not add more than 10% (or 20 MB) to the peak.
            "flat": growth <= max(20.0, 0.1 * runs[0]["peak_rss_mb"]),
            "sane": k["service_level"] >= 0.5 and k["abandon_rate"] < 0.10,
        },
    }
    if args.json:
        print(json.dumps(data))
    else:
        report(data)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
