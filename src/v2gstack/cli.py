"""The `v2gstack` command. Each role adds its sub-command here; `exi` is the codec's.

Every role's command is listed with a short help and imported only when it runs, so a command starts without loading
the others (`v2gstack exi` does not import the ISO 15118 engines, the station or the PKI). `csms`, `trace`, `demo`
and `sim` need the optional `csms` extra (SQLAlchemy, FastAPI, uvicorn; `sim` its own `sim` extra, which includes
it): without it they say which extra to install, so `v2gstack station`/`ev`/`secc`/`pki`/`exi` work on a core install.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from . import exi

# name -> (module, attribute, short help): the commands imported when they run (the last four need the `csms` extra)
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "pki": ("v2gstack.pki.cli", "app", "ISO 15118 / OCPP PKI: create, inspect, verify."),
    "ev": ("v2gstack.iso15118.cli", "ev_command",
           "Run one charging session as the EV; exit 0 only if it ended with SessionStopRes OK."),
    "secc": ("v2gstack.iso15118.cli", "secc_command",
             "Run a standalone SECC with a simulated EVSE that authorizes EIM at once."),
    "slac": ("v2gstack.slac.cli", "app",
             "SLAC (ISO 15118-3) over HomePlug Green PHY: match a car and a charger before ISO 15118."),
    "station": ("v2gstack.station.cli", "app", "Run a simulated OCPP 2.1 / 2.0.1 charging station."),
    "grid": ("v2gstack.grid.cli", "app", "Grid signals and the grid plan."),
    "csms": ("v2gstack.csms.cli", "app", "Run the CSMS, or manage its registry (add-station, add-idtoken, ...) and "
             "its API tokens (create-token, tokens, revoke-token)."),
    "trace": ("v2gstack.trace.cli", "trace_command",
              "Print one session's timeline across ISO 15118 and OCPP, station and CSMS."),
    "demo": ("v2gstack.demo", "demo_command",
             "Run the end-to-end demo: EVs -> ISO 15118 -> station -> OCPP -> CSMS."),
    "sim": ("v2gstack.sim.cli", "app", "Scenarios: arrivals, faults and expectations against the whole chain, with a "
            "report (sim run SCENARIO); a fleet under grid signals (sim fleet)."),
}
EXTRA_PACKAGES = frozenset({"sqlalchemy", "fastapi", "starlette", "pydantic", "uvicorn", "psycopg", "numpy", "scipy",
                            "matplotlib", "yaml"})
"""What the optional extras bring (csms: the first ones and the scheduler's numpy/scipy; sim: matplotlib, PyYAML)."""
COMMAND_EXTRA = {"sim": "sim"}  # the extra a lazy command names when a package is missing (else csms)
ORDER = ("exi", "pki", "ev", "secc", "slac", "station", "csms", "grid", "trace", "demo", "sim")


class _Placeholder(TyperCommand):
    """A lazy command as `v2gstack --help` lists it; replaced by the real one when it runs."""


def _load(name: str) -> Any:
    """The real (click) command of a lazy sub-command; a command explaining the missing extra if it is absent."""
    module_name, attribute, short_help = LAZY_COMMANDS[name]
    try:
        # lazy on purpose: the module needs the optional `csms` extra (SQLAlchemy, FastAPI, uvicorn)
        target: Any = getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in EXTRA_PACKAGES:
            raise
        missing, extra = e.name, COMMAND_EXTRA.get(name, "csms")

        def explain() -> None:
            typer.echo(f"error: `v2gstack {name}` needs the {extra} extra (missing: {missing}); "
                       f"install it with: pip install 'v2gstack[{extra}]'", err=True)
            raise typer.Exit(2)

        return TyperCommand(name, callback=explain, help=short_help, context_settings={
            "ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The top-level group: the lazy commands are placeholders until invoked."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, _, short_help) in LAZY_COMMANDS.items():
            self.commands.setdefault(name, _Placeholder(name, help=short_help))
        rank: Callable[[str], int] = lambda n: ORDER.index(n) if n in ORDER else len(ORDER)  # noqa: E731
        self.commands = dict(sorted(self.commands.items(), key=lambda item: rank(item[0])))

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """Load a lazy command the moment it is the one to run."""
        if args and isinstance(self.commands.get(args[0]), _Placeholder):
            self.commands[args[0]] = _load(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  help="v2gstack: the smart-charging chain in Python.")
exi_app = typer.Typer(no_args_is_help=True, help="Encode and decode ISO 15118 / DIN 70121 EXI messages.")
app.add_typer(exi_app, name="exi")

NS_HELP = f"Namespace: {', '.join(exi.NAMESPACES)}"


def _read_arg(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


@exi_app.command("decode")
def exi_decode(
    data: str = typer.Argument(..., help="EXI stream as hex, or - to read hex from standard input"),
    ns: str = typer.Option(..., "--ns", help=NS_HELP),
    fragment: bool = typer.Option(False, "--fragment", help="Decode an EXI fragment (e.g. SignedInfo)"),
    compact: bool = typer.Option(False, "--compact", help="One line of JSON"),
) -> None:
    """Decode EXI (hex) to the JSON view."""
    text = "".join(_read_arg(data).split())
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        typer.echo(f"error: input is not hex: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        doc = exi.decode(ns, raw, fragment=fragment)
    except (exi.ExiError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(doc, separators=(",", ":")) if compact else json.dumps(doc, indent=2))


@exi_app.command("encode")
def exi_encode(
    doc: str = typer.Argument(..., help="Document in the JSON view, or - to read it from standard input"),
    ns: str = typer.Option(..., "--ns", help=NS_HELP),
    fragment: bool = typer.Option(False, "--fragment", help="Encode an EXI fragment (e.g. SignedInfo)"),
) -> None:
    """Encode a JSON-view document to EXI and print it as hex."""
    try:
        parsed = json.loads(_read_arg(doc))
    except json.JSONDecodeError as e:
        typer.echo(f"error: input is not JSON: {e}", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(exi.encode(ns, parsed, fragment=fragment).hex())
    except (exi.ExiError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
