"""`v2gstack sim run SCENARIO`: play a scenario file and report; exit 0 only if every expectation held."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console

from .fleet_cli import fleet_command
from .report import print_table, write_html
from .runner import run_scenario
from .scenario import ScenarioError, load_scenario

app = typer.Typer(add_completion=False, help="Scenarios: arrivals, faults and expectations, with a report.")


@app.callback()
def sim() -> None:
    """Simulation commands."""


@app.command("run")
def run(scenario: str = typer.Argument(..., help="A scenario file: YAML, JSON or TOML (docs/operations.md)"),
        out: str = typer.Option("v2gstack-scenarios", "--out", help="Folder for the run's database, timelines and "
                                "the HTML report"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the roles do")) -> None:
    """Run a scenario; exit 0 if every expectation held, 1 if one did not, 2 for a scenario that cannot run."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sc = load_scenario(scenario)
    except ScenarioError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    workdir = Path(out) / Path(scenario).stem
    report = asyncio.run(run_scenario(sc, workdir))
    console = Console()
    print_table(report, console)
    page = write_html(report, workdir / "report.html")
    console.print(f"report: {page}")
    raise typer.Exit(0 if report.passed else 1)


app.command("fleet")(fleet_command)
