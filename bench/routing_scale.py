"""Routing cost as the call center grows: the time of one routing decision should not depend
on how many agents and queues exist, only on the few candidates a decision looks at.

    python bench/routing_scale.py            # 100 agents/10 queues ... 10,000 agents/1,000 queues

Each size: every agent holds 3 random skills of the queues' skills (one skill per queue) and
logs in; then calls arrive in random queues and are answered and hung up at once, so each
call costs one arrival decision (find the best free agent) and one freed-agent decision
(find the best waiting call across the agent's queues).
"""

from __future__ import annotations

import argparse
import json
import random
import time

from hotline.acd.config import AgentConfig, QueueConfig
from hotline.acd.engine import ACD

STRATEGIES = ("longest-idle", "least-calls", "best-skill", "round-robin", "top-down")


def build(agents: int, queues: int, seed: int) -> tuple[ACD, list[str]]:
    rng = random.Random(seed)
    qcfgs = [
        QueueConfig(f"q{i}", {f"s{i}": 1}, strategy=STRATEGIES[i % len(STRATEGIES)])
        for i in range(queues)
    ]
    acfgs = [
        AgentConfig(f"a{j}", {f"s{i}": rng.randint(1, 10) for i in rng.sample(range(queues), 3)})
        for j in range(agents)
    ]
    acd = ACD(qcfgs, acfgs, seed=seed)
    for a in acfgs:
        acd.login(0.0, a.id)
    acd.events.clear()
    return acd, [q.id for q in qcfgs]


def measure(agents: int, queues: int, calls: int, seed: int = 1) -> dict[str, float]:
    acd, qids = build(agents, queues, seed)
    rng = random.Random(seed)
    # Keep about 80 % of agents busy so both decisions have real work: pre-load calls.
    now = 1.0
    busy: list[str] = []
    for n in range(int(agents * 0.8)):
        acd.call_arrived(now, f"pre{n}", rng.choice(qids))
        for cmd in acd.commands:
            acd.answer(now, cmd.call, cmd.agent)  # type: ignore[attr-defined]
            busy.append(cmd.call)
        acd.commands.clear()
    acd.events.clear()
    start = time.perf_counter()
    for n in range(calls):
        now += 0.01
        acd.call_arrived(now, f"c{n}", rng.choice(qids))
        offers = acd.commands[:]
        acd.commands.clear()
        for cmd in offers:
            acd.answer(now, cmd.call, cmd.agent)  # type: ignore[attr-defined]
            busy.append(cmd.call)
        if busy:
            i = rng.randrange(len(busy))
            busy[i], busy[-1] = busy[-1], busy[i]
            acd.hangup(now, busy.pop())
        acd.commands.clear()
        acd.events.clear()
    elapsed = time.perf_counter() - start
    return {
        "agents": agents,
        "queues": queues,
        "calls": calls,
        "us_per_call": elapsed / calls * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import hotline.acd.engine as engine

    compiled = not engine.__file__.endswith(".py")
    rows = [measure(a, q, args.calls) for a, q in ((100, 10), (1_000, 100), (10_000, 1_000))]
    if args.json:
        print(json.dumps({"compiled": compiled, "sizes": rows}))
        return
    print(f"ACD routing cost per call (arrival + hang-up decisions), compiled={compiled}")
    for r in rows:
        print(f"  {r['agents']:>6} agents {r['queues']:>5} queues: {r['us_per_call']:6.1f} µs/call")


if __name__ == "__main__":
    main()
