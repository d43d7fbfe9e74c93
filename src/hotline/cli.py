"""The ``hotline`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hotline.cms.tables import simulation_report
from hotline.sim.runner import Simulation
from hotline.sim.scenario import ScenarioError, load_scenario, parse_clock
from hotline.wfm.commands import erlang, forecast, history_command, staff
from hotline.wfm.plan_commands import publish, roster, schedule
from hotline.wfm.simulate import simulate

if TYPE_CHECKING:
    from hotline.calls.switch import SwitchConfig

app = typer.Typer(
    help="Hotline: an open-source call center (ACD, CMS, simulator, workforce management).",
    no_args_is_help=True,
    add_completion=False,
)
app.command("erlang", help="Erlang C / Erlang A staffing: agents needed, or SL of a staffing.")(
    erlang
)
wfm = typer.Typer(help="Workforce management: history, forecast, staffing, shift schedule, "
                  "roster, simulation and publishing.",
                  no_args_is_help=True)
wfm.command("forecast")(forecast)
wfm.command("staff")(staff)
wfm.command("history")(history_command)
wfm.command("schedule")(schedule)
wfm.command("roster")(roster)
wfm.command("simulate")(simulate)
wfm.command("publish")(publish)
app.add_typer(wfm, name="wfm")


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
    sip: Annotated[
        str,
        typer.Option(help="SIP address:port (UDP and TCP), or 'off'."),
    ] = "0.0.0.0:5060",
    sip_address: Annotated[
        str | None,
        typer.Option(help="Address phones and trunks reach us at (SDP, Contact); default: "
                     "the SIP address, or this machine's primary address."),
    ] = None,
    rtp_ports: Annotated[str, typer.Option(help="RTP port range.")] = "20000-29999",
    sip_realm: Annotated[str, typer.Option(help="Digest realm of phone passwords.")] = "hotline",
    sip_digest: Annotated[
        str,
        typer.Option(help="Digest algorithms to challenge with, preferred first: e.g. "
                     "'SHA-256,MD5' (RFC 8760) when every phone supports SHA-256."),
    ] = "MD5",
    music_on_hold: Annotated[
        Path | None, typer.Option(help="A WAV file for callers waiting (default: chimes).")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error (debug shows SIP traffic).")
    ] = "info",
) -> None:
    """Run the Hotline server: API, CTI event stream, the live ACD and SIP/RTP."""
    from hotline.db.database import DatabaseURLError, normalise_url
    from hotline.server.app import serve as run_server

    if db is not None:
        try:
            normalise_url(db)
        except DatabaseURLError as err:
            fail(str(err))
    if not 0 < port < 65536:
        fail(f"--port: {port} is not a TCP port")
    if log_level not in ("debug", "info", "warning", "error"):
        fail(f"--log-level: {log_level!r} is not debug, info, warning or error")
    run_server(db, host, port, data_dir, demo, log_level,
               sip=None if sip == "off" else sip_config(sip, sip_address, rtp_ports, sip_realm,
                                                     sip_digest, music_on_hold))


def sip_config(
    listen: str, advertised: str | None, rtp_ports: str, realm: str, digest: str = "MD5",
    music: Path | None = None,
) -> SwitchConfig:
    """Check the SIP options at the edge; every mistake is one clear line and exit 2."""
    import ipaddress
    import socket

    from hotline.calls.switch import SwitchConfig

    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        fail(f"--sip: {listen!r} is not ADDRESS:PORT (or 'off')")
    try:
        if ipaddress.ip_address(host).version != 4:
            fail("--sip: only IPv4 is supported for now (RTP is IPv4)")
    except ValueError:
        fail(f"--sip: {host!r} is not an IP address")
    low, sep, high = rtp_ports.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) < 65536):
        fail(f"--rtp-ports: {rtp_ports!r} is not a range like 20000-29999")
    if advertised is None:
        advertised = host
        if host in ("0.0.0.0", "::"):
            # the address the default route leaves from (connect() on UDP sends nothing)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect(("192.0.2.1", 9))
                    advertised = probe.getsockname()[0]
                except OSError:
                    advertised = "127.0.0.1"
    else:
        try:
            ipaddress.ip_address(advertised)
        except ValueError:
            fail(f"--sip-address: {advertised!r} is not an IP address")
    algorithms = tuple(a.strip().upper() for a in digest.split(",") if a.strip())
    if not algorithms or any(a not in ("MD5", "SHA-256") for a in algorithms):
        fail(f"--sip-digest: {digest!r} is not a list of MD5 and SHA-256")
    if music is not None:
        from hotline.media.wav import PromptError, load_prompt

        try:
            load_prompt(music)
        except PromptError as err:
            fail(f"--music-on-hold: {music}: {err}")
    return SwitchConfig(host=host, port=int(port_text), advertised=advertised,
                        rtp_ports=(int(low), int(high)), realm=realm,
                        digest_algorithms=algorithms, music=music)
