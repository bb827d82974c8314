"""`v2gstack station`: run a simulated OCPP 2.0.1 charging station, optionally with a scripted charging session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import typer

from .config import StationConfig
from .session import simulate_session
from .station import ChargingStation

app = typer.Typer(add_completion=False, help="Run a simulated OCPP 2.0.1 charging station.")


@app.callback(invoke_without_command=True)
def station_command(
    csms: str = typer.Option(..., "--csms", help="CSMS endpoint, e.g. ws://localhost:9000/ocpp (the id is appended)"),
    station_id: str = typer.Option(..., "--id", help="Charging station identity"),
    evses: int = typer.Option(1, "--evses", min=1, help="Number of EVSEs (one connector each)"),
    password: str | None = typer.Option(None, "--password", help="Basic auth password (security profile 1/2)"),
    version: str = typer.Option("2.0.1", "--version", help="OCPP version (only 2.0.1 for now)"),
    state_dir: str | None = typer.Option(None, "--state-dir", help="Folder for the offline queue and device model"),
    simulate: bool = typer.Option(False, "--simulate-session", help="Run one scripted charging session on EVSE 1"),
    seconds: float = typer.Option(30.0, "--session-seconds", help="Charging time of the scripted session"),
    token: str = typer.Option("04A1B2C3", "--token", help="idToken the scripted EV presents"),
    power: float = typer.Option(11000.0, "--power", help="Power the scripted EV draws, W"),
    time_scale: float = typer.Option(1.0, "--time-scale", help="Real seconds per simulated second"),
    meter_interval: int | None = typer.Option(None, "--meter-interval", help="SampledDataCtrlr.TxUpdatedInterval, s"),
    keep_running: bool = typer.Option(False, "--keep-running", help="Stay up after the scripted session"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging"),
) -> None:
    """Connect to the CSMS and run until Ctrl-C (or until the scripted session is delivered)."""
    if version != "2.0.1":
        typer.echo(f"error: OCPP {version} is not supported by the station yet", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = StationConfig(station_id, csms, evses=evses, password=password, version=version,
                           state_dir=Path(state_dir) if state_dir else None, time_scale=time_scale)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(config, meter_interval, simulate, seconds, token, power, keep_running))


async def _main(config: StationConfig, meter_interval: int | None, simulate: bool, seconds: float, token: str,
                power: float, keep_running: bool) -> None:
    """Run the station; with a scripted session, stop once its messages are all delivered (unless keep_running)."""
    station = ChargingStation(config)
    if meter_interval is not None:
        station.model.put("SampledDataCtrlr", "TxUpdatedInterval", str(meter_interval))
    await station.start()
    try:
        if simulate:
            await station.wait_accepted()
            await simulate_session(station, 1, token=token, seconds=seconds, power_w=power)
            await station.wait_queue_empty()
            if not keep_running:
                return
        await asyncio.Event().wait()
    finally:
        await station.stop()
