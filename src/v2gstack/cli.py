"""The `v2gstack` command. Each role adds its sub-command here; `exi` is the codec's."""

from __future__ import annotations

import json
import sys

import typer

from . import exi
from .csms.cli import app as csms_app
from .demo import demo_command
from .iso15118.cli import ev_command, secc_command
from .pki.cli import app as pki_app
from .station.cli import app as station_app
from .trace.cli import trace_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help="v2gstack: the smart-charging chain in Python.")
exi_app = typer.Typer(no_args_is_help=True, help="Encode and decode ISO 15118 / DIN 70121 EXI messages.")
app.add_typer(exi_app, name="exi")
app.add_typer(pki_app, name="pki")
app.command("ev")(ev_command)
app.command("secc")(secc_command)
app.add_typer(station_app, name="station")
app.add_typer(csms_app, name="csms")
app.command("trace")(trace_command)
app.command("demo")(demo_command)

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
