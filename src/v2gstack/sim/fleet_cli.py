"""`v2gstack sim fleet`: run the fleet simulation and write its report (sim/cli.py registers the command)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from pathlib import Path

import typer

from ..grid.model import SignalError
from .fleet import FleetConfig, FleetRun, signals_from_file
from .fleet_report import FILES, write_report
from .population import Distributions, parse_mix


def fleet_command(
    stations: int = typer.Option(2, "--stations", help="Stations (OCPP over websockets to the CSMS)"),
    evses: int = typer.Option(3, "--evses", help="EVSEs per station, each bridged to an SECC on loopback"),
    hours: float = typer.Option(4.0, "--hours", help="Simulated hours"),
    signals: str | None = typer.Option(None, "--signals", help="Grid signals (JSON or TOML) in simulated time: "
                                       "start/end now+15m count from the start of the run"),
    time_scale: float = typer.Option(60.0, "--time-scale", help="Simulated seconds per wall-clock second"),
    seed: int = typer.Option(1, "--seed", help="Seed of the arrival, stay, need and car-kind draws"),
    out: str = typer.Option("fleet-report", "--out", help="Folder of the report"),
    step_min: float = typer.Option(15.0, "--step-min", help="The CSMS's planning step, simulated minutes"),
    mix: str = typer.Option("din-dc=1,iso2-dc=1,iso2-ac=1,iso20-dc-bpt=1,iso20-ac-bpt=1", "--mix",
                            help="Car kinds and their weights: din-dc, iso2-dc, iso2-ac (charge only), iso20-dc-bpt, "
                            "iso20-ac-bpt (bidirectional: they discharge when the plan says so)"),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes for the stations and cars (the "
                                       "CSMS stays in the main one); default: the number of cores; 0: one process"),
    control20: str = typer.Option("dynamic", "--control20", help="The -20 BPT cars' control mode: dynamic or "
                                  "scheduled"),
    openadr_vtn: str | None = typer.Option(None, "--openadr-vtn", help="Run the CSMS's OpenADR 2.0b VEN against "
                                           "this VTN (events in wall-clock time)"),
    timeout_scale: float = typer.Option(1.0, "--timeout-scale", help="Multiply the SECCs' sequence timeouts and the "
                                        "EVCCs' timeouts (1: the standards' values, e.g. -20's 0.5 s after a charge "
                                        "loop; more for a starved machine)"),
    dynamic_v2x: bool = typer.Option(False, "--dynamic-v2x", help="Send the V2X cars' setpoints as Dynamic profiles "
                                     "updated with UpdateDynamicSchedule (else Absolute TxProfiles per re-plan)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run our CSMS (grid control and dispatch on) in this process, our stations and a seeded fleet of our EVs
    (DIN 70121, ISO 15118-2 and ISO 15118-20 BPT sessions over loopback) in --workers processes, for simulated
    hours at a time scale; write summary.json, PNG plots and report.html into --out."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if importlib.util.find_spec("matplotlib") is None:
        typer.echo("error: the report's plots need matplotlib: pip install 'v2gstack[sim]'", err=True)
        raise typer.Exit(2)
    try:
        raws = signals_from_file(signals) if signals else []
        if control20 not in ("dynamic", "scheduled"):
            raise ValueError("--control20 must be dynamic or scheduled")
        config = FleetConfig(stations=stations, evses=evses, hours=hours, time_scale=time_scale, seed=seed,
                             signals=raws, step_min=step_min, openadr_vtn=openadr_vtn, control20=control20,
                             dist=Distributions(mix=parse_mix(mix)), timeout_scale=timeout_scale,
                             dynamic_v2x=dynamic_v2x,
                             **({} if workers is None else {"workers": workers}))
    except (SignalError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    run = FleetRun(config)
    typer.echo(f"{len(run.specs)} car visits over {hours:g} simulated h at x{time_scale:g} "
               f"(about {hours * 3600 / time_scale:.0f} s of wall time), {config.workers} worker processes")
    try:
        result = asyncio.run(run.run())
    except SignalError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    data = write_report(result, Path(out))
    e = data["energy"]
    typer.echo(json.dumps({"cars": data["fleet"]["cars"], "requestedKWh": round(e["requestedWh"] / 1000, 1),
                           "deliveredKWh": round(e["deliveredWh"] / 1000, 1), "followed": data["followed"],
                           "windows": len(data["windows"]), "solves": data["solves"]}))
    typer.echo(f"report: {Path(out) / FILES['html']}")
