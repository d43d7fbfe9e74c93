"""Rich tables for KPI reports (terminal output of the simulator and reports)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


_COLUMNS = (
    ("offered", "Offered", str),
    ("answered", "Answered", str),
    ("abandoned", "Abandoned", str),
    ("short_abandoned", "Short ab.", str),
    ("service_level", "SL", _pct),
    ("asa", "ASA", _secs),
    ("aht", "AHT", _secs),
    ("abandon_rate", "Abandon %", _pct),
    ("max_wait", "Max wait", _secs),
)


def kpi_table(title: str, rows: list[tuple[str, dict[str, Any]]], first: str = "Queue") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for _, header, _ in _COLUMNS:
        table.add_column(header, justify="right")
    for label, m in rows:
        table.add_row(label, *(fmt(m[key]) for key, _, fmt in _COLUMNS))
    return table


def agent_group_table(agents: dict[str, dict[str, Any]]) -> Table:
    """Agents summarised by group (the id before the last dash)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for agent_id, m in agents.items():
        groups.setdefault(agent_id.rsplit("-", 1)[0], []).append(m)
    table = Table(title="Agents by group", title_justify="left")
    for header in ("Group", "Agents", "Answered", "Calls/agent", "Avg talk", "Occupancy"):
        table.add_column(header, justify="right" if header != "Group" else "left")
    for group, members in groups.items():
        answered = sum(m["answered"] for m in members)
        talk = sum(m["talk_time"] for m in members)
        occ = [m["occupancy"] for m in members if m["occupancy"] is not None]
        table.add_row(
            group,
            str(len(members)),
            str(answered),
            f"{answered / len(members):.1f}",
            _secs(talk / answered if answered else None),
            _pct(sum(occ) / len(occ) if occ else None),
        )
    return table


def simulation_report(result: dict[str, Any], clock_start: float = 0.0) -> Group:
    total = result["total"]
    parts: list[Any] = [
        kpi_table(
            f"Scenario {result['scenario']} (seed {result['seed']})",
            [("all calls", total), *result["queues"].items()],
        ),
        agent_group_table(result["agents"]),
    ]
    rows = []
    for row in result["intervals"]:
        start = clock_start + row["start"]
        label = f"{int(start // 3600) % 24:02d}:{int(start % 3600 // 60):02d} {row['queue']}"
        rows.append((label, row))
    parts.append(kpi_table("Intervals", rows, first="Interval"))
    ewt = result.get("ewt")
    if ewt and ewt["calls"]:
        parts.append(
            f"Expected-wait announcements ({ewt['calls']} callers who waited): mean absolute "
            f"error Hotline {ewt['hotline_mae']:.1f}s vs Asterisk running average "
            f"{ewt['asterisk_mae']:.1f}s"
        )
    if result.get("unfinished_calls"):
        parts.append(
            f"[yellow]{result['unfinished_calls']} calls were still waiting at the end: "
            "no agent able to serve them was left logged in.[/yellow]"
        )
    return Group(*parts)
