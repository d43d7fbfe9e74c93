"""The ``hotline`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hotline.cms.tables import simulation_report
from hotline.sim.runner import Simulation
from hotline.sim.scenario import ScenarioError, load_scenario, parse_clock
from hotline.wfm.commands import erlang

app = typer.Typer(
    help="Hotline: an open-source call center (ACD, CMS, simulator, workforce management).",
    no_args_is_help=True,
    add_completion=False,
)
app.command("erlang", help="Erlang C / Erlang A staffing: agents needed, or SL of a staffing.")(
    erlang
)


def fail(message: str) -> NoReturn:
    """One plain line on stderr (never wrapped, never a traceback) and exit status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def sim(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the file's).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    events: Annotated[
        Path | None, typer.Option(help="Write every event to this JSON-lines file.")
    ] = None,
) -> None:
    """Run a scenario through the real ACD engine on a virtual clock and report KPIs."""
    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        fail(str(exc))
    out = None
    try:
        out = events.open("w", encoding="utf-8") if events else None
    except OSError as exc:
        fail(f"{events}: cannot write: {exc.strerror}")
    try:
        simulation = Simulation(spec, seed=seed, events_out=out)
        if json_out:
            result = simulation.run()
        else:
            with Progress(
                TextColumn("[bold]simulating[/bold] {task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}% of simulated time"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            ) as bar:
                task = bar.add_task(spec.name, total=spec.duration)
                result = simulation.run(lambda t: bar.update(task, completed=t))
    finally:
        if out is not None:
            out.close()
    report = result.to_dict()
    if json_out:
        json.dump(report, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    console = Console()
    if not console.is_terminal:
        console.width = 120  # a report piped to a file keeps its columns
    console.print(simulation_report(report, parse_clock(spec.start)[1]))


@app.command()
def serve(
    db: Annotated[
        str | None,
        typer.Option(help="Database URL (default: SQLite in the data dir); postgresql://..."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Where the embedded database lives.")] = Path(
        "data"
    ),
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed 演示银行 Demo Bank and run simulated traffic.")
    ] = False,
) -> None:
    """Run the Hotline server: API, CTI event stream and the live ACD."""
    from hotline.db.database import DatabaseURLError, normalise_url
    from hotline.server.app import serve as run_server

    if db is not None:
        try:
            normalise_url(db)
        except DatabaseURLError as err:
            fail(str(err))
    if not 0 < port < 65536:
        fail(f"--port: {port} is not a TCP port")
    run_server(db, host, port, data_dir, demo)
