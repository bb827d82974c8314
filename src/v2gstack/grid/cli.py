"""`v2gstack grid signal ...`: grid signals to a running CSMS through its REST API (an operator token), and the
offline check of a signals file.

    v2gstack grid signal add --setpoint -50000 --minutes 15            # now, for the site
    v2gstack grid signal add --import-limit 40000 --start now+1h --minutes 120 --target group:depot
    v2gstack grid signal load scenario.toml | list | cancel ID | opt ID optOut | check scenario.toml

The API and token come from --api / --token or V2GSTACK_API / V2GSTACK_API_TOKEN.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import typer

from ..times import rfc3339
from .model import SignalError, load_signal_file, parse_signal, resolve_times

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Grid signals and the grid plan.")
signal_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Send, list, cancel and check grid signals (a running CSMS with --grid).")
app.add_typer(signal_app, name="signal")

API = typer.Option("http://127.0.0.1:8080", "--api", envvar="V2GSTACK_API", help="The CSMS REST API")
TOKEN = typer.Option(..., "--token", envvar="V2GSTACK_API_TOKEN", help="An operator API token")


def _json(value: Any) -> Any:
    """Datetimes (from TOML files) as RFC 3339 text."""
    if isinstance(value, datetime):
        return rfc3339(value, "seconds")
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _call(method: str, api: str, path: str, token: str, body: Any = None) -> Any:
    """One API request; its JSON answer (an HTTP error: its body printed, exit 1)."""
    data = None if body is None else json.dumps(_json(body)).encode()
    req = urllib.request.Request(api.rstrip("/") + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        typer.echo(f"error: HTTP {e.code}: {e.read().decode(errors='replace')}", err=True)
        raise typer.Exit(1) from None
    except urllib.error.URLError as e:
        typer.echo(f"error: cannot reach {api}: {e.reason}", err=True)
        raise typer.Exit(1) from None


def _show(answer: Any) -> None:
    typer.echo(json.dumps(answer, indent=2))


def _target(text: str) -> dict[str, str]:
    if text == "site":
        return {"kind": "site", "id": "site"}
    kind, _, ident = text.partition(":")
    return {"kind": kind, "id": ident or kind}


@signal_app.command("add")
def add(setpoint: float | None = typer.Option(None, "--setpoint", help="W; negative: export"),
        import_limit: float | None = typer.Option(None, "--import-limit", help="W"),
        export_limit: float | None = typer.Option(None, "--export-limit", help="W (a magnitude)"),
        price: float | None = typer.Option(None, "--price", help="per kWh"),
        start: str = typer.Option("now", "--start", help="RFC 3339, or now, now+15m, now+1h"),
        minutes: float = typer.Option(15.0, "--minutes", help="how long"),
        target: str = typer.Option("site", "--target", help="site, group:NAME or station:ID"),
        signal_id: str | None = typer.Option(None, "--id", help="default: op-<time>"),
        priority: int = typer.Option(0, "--priority"),
        api: str = API, token: str = TOKEN) -> None:
    """Send one signal of one interval; prints the CSMS's report after it re-planned."""
    now = datetime.now(UTC)
    interval: dict[str, Any] = {"start": start, "durationS": minutes * 60}
    for key, value in (("setpointW", setpoint), ("importLimitW", import_limit), ("exportLimitW", export_limit),
                       ("price", price)):
        if value is not None:
            interval[key] = value
    raw = resolve_times({"id": signal_id or f"op-{now:%Y%m%dT%H%M%S}", "target": _target(target),
                         "priority": priority, "intervals": [interval]}, now)
    try:
        parse_signal(raw)  # the same checks as the CSMS's: refused here before anything is sent
    except SignalError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    _show(_call("POST", api, "/api/grid/signals", token, raw))


@signal_app.command("load")
def load(file: str = typer.Argument(..., help="JSON or TOML signals file (relative times: now+15m)"),
         api: str = API, token: str = TOKEN) -> None:
    """Send every signal of a file as one batch (all or none)."""
    try:
        raws = load_signal_file(file, datetime.now(UTC))
    except SignalError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    _show(_call("POST", api, "/api/grid/signals", token, {"signals": raws}))


@signal_app.command("check")
def check(file: str = typer.Argument(..., help="JSON or TOML signals file")) -> None:
    """Check a signals file offline: each signal as the CSMS would read it, or the first error (exit 1)."""
    try:
        signals = [parse_signal(_json(r), source="file") for r in load_signal_file(file, datetime.now(UTC))]
    except SignalError as e:
        typer.echo(f"error: {e} [{e.code}]", err=True)
        raise typer.Exit(1) from None
    _show([s.to_dict() for s in signals])


@signal_app.command("list")
def list_signals(api: str = API, token: str = TOKEN) -> None:
    """The signals in force, the plan and the last dispatch."""
    _show(_call("GET", api, "/api/grid/signals", token))


@signal_app.command("cancel")
def cancel(signal_id: str, api: str = API, token: str = TOKEN) -> None:
    """Cancel a signal."""
    _show(_call("DELETE", api, f"/api/grid/signals/{urllib.request.quote(signal_id, safe='')}", token))


@signal_app.command("opt")
def opt(signal_id: str, choice: str = typer.Argument(..., help="optIn or optOut"), api: str = API,
        token: str = TOKEN) -> None:
    """Opt in or out of a signal."""
    _show(_call("POST", api, f"/api/grid/signals/{urllib.request.quote(signal_id, safe='')}/opt", token,
                {"opt": choice}))
