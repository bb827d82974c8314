"""`v2gstack trace KEY`: the merged cross-protocol timeline of one session, as a table or JSON lines.

A top-level command (it reads the CSMS database through csms/timeline.py), though it lives beside the low trace
modules it renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..csms.store import Store, StoreError
from ..csms.timeline import merged_timeline


def trace_command(
    key: str = typer.Argument(..., help="OCPP transactionId, ISO 15118 SessionID (hex) or trace id"),
    trace_dir: str | None = typer.Option(None, "--trace-dir", help="Folder of the station's session timelines"),
    db: str | None = typer.Option(None, "--db", help="CSMS database URL (sqlite:///FILE or postgresql://...)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
) -> None:
    """Print one session's timeline across ISO 15118 and OCPP, station and CSMS."""
    if trace_dir is None and db is None:
        typer.echo("error: give --trace-dir (station timelines) and/or --db (CSMS database)", err=True)
        raise typer.Exit(2)
    store = None
    if db is not None:
        try:
            store = Store(db)
        except StoreError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    try:
        entries = merged_timeline(key, trace_dir=Path(trace_dir) if trace_dir else None, store=store)
    finally:
        if store is not None:
            store.close()
    if not entries:
        typer.echo(f"no timeline found for {key}", err=True)
        raise typer.Exit(1)
    if as_json:
        for e in entries:
            typer.echo(json.dumps(e.to_dict(), separators=(",", ":"), default=str))
        return
    table = Table(title=f"session {key}", show_lines=False)
    for col in ("time (UTC)", "side", "protocol", "dir", "message / event", "details"):
        table.add_column(col, overflow="fold")
    start = entries[0].wall
    for e in entries:
        offset = (e.wall - start).total_seconds()
        table.add_row(f"{e.wall:%H:%M:%S.%f}"[:-3] + f" (+{offset:.3f}s)", e.source, e.protocol,
                      {"tx": "->", "rx": "<-"}.get(e.direction, ""), e.name, e.details)
    Console(width=200).print(table)
