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
    secc_port: int | None = typer.Option(None, "--secc-port", help="ISO 15118 SECC per EVSE on loopback ::1, TCP "
                                         "ports P, P+1, ... (with --secc-cert TLS ports P+N, P+N+1, ... for N "
                                         "EVSEs; SDP on --sdp-port, +1, ...); 0 picks free ports"),
    secc_iface: str | None = typer.Option(None, "--secc-iface", help="ISO 15118 SECC per EVSE on these network "
                                          "interfaces, comma-separated (SDP by multicast on each)"),
    sdp_port: int = typer.Option(15118, "--sdp-port", help="SDP UDP port (loopback: first EVSE's)"),
    free_charging: bool = typer.Option(False, "--free-charging", help="AuthCtrlr.Enabled=false: ISO 15118 EIM "
                                       "sessions start without an idToken"),
    iso_token: str | None = typer.Option(None, "--iso-token", help="idToken presented for each ISO 15118 EIM "
                                         "session (else the station waits for RequestStartTransaction)"),
    trace_dir: str | None = typer.Option(None, "--trace-dir", help="Folder for the per-session timelines"),
    mirror: bool = typer.Option(False, "--mirror-iso", help="Mirror each ISO 15118 message to the CSMS "
                                "(DataTransfer EXI::<base64>)"),
    secc_cert: str | None = typer.Option(None, "--secc-cert", help="SECC TLS chain, PEM (leaf first): the SECCs "
                                         "serve TLS 1.2 (ISO 15118-2) beside TCP; SDP answers each EV with the "
                                         "transport it asks for"),
    secc_tls_only: bool = typer.Option(False, "--secc-tls-only", help="With --secc-cert: serve TLS only (EVs that "
                                       "ask for TCP, and every DIN 70121 EV, cannot charge)"),
    secc_key: str | None = typer.Option(None, "--secc-key", help="SECC private key, PEM"),
    secc_key_password: str | None = typer.Option(None, "--secc-key-password", envvar="V2GSTACK_SECC_KEY_PASSWORD",
                                                 help="Password of an encrypted SECC key"),
    pnc: bool = typer.Option(False, "--pnc", help="ISO15118Ctrlr.PnCEnabled=true: offer Plug & Charge (over TLS; "
                             "needs --secc-cert; EIM stays open to EVs over TCP)"),
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
    iso = None
    if secc_port is not None or secc_iface:
        iso = {"port": secc_port, "ifaces": secc_iface.split(",") if secc_iface else None, "sdp_port": sdp_port,
               "token": iso_token, "trace_dir": Path(trace_dir) if trace_dir else None, "tls": None, "pnc": pnc,
               "tcp": not (secc_tls_only and secc_cert)}
        if secc_cert:
            from ..iso15118.tls import secc_context

            iso["tls"] = secc_context(secc_cert, secc_key, secc_key_password)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(config, meter_interval, simulate, seconds, token, power, keep_running, iso, free_charging,
                          mirror))


async def _main(config: StationConfig, meter_interval: int | None, simulate: bool, seconds: float, token: str,
                power: float, keep_running: bool, iso: dict | None = None, free_charging: bool = False,
                mirror: bool = False) -> None:
    """Run the station; with a scripted session, stop once its messages are all delivered (unless keep_running)."""
    station = ChargingStation(config)
    if meter_interval is not None:
        station.model.put("SampledDataCtrlr", "TxUpdatedInterval", str(meter_interval))
    if free_charging:
        station.model.put("AuthCtrlr", "Enabled", "false")
    if mirror:
        station.model.put("BridgeCtrlr", "MirrorISO15118Messages", "true")
    if iso is not None and iso["pnc"]:
        station.model.put("ISO15118Ctrlr", "PnCEnabled", "true")
    await station.start()
    bridges = []
    if iso is not None:
        from .bridge import BridgeConfig, start_bridged_seccs

        token_value = {"idToken": iso["token"], "type": "ISO14443"} if iso["token"] else None
        bridges = await start_bridged_seccs(station, port=iso["port"], ifaces=iso["ifaces"],
                                            sdp_port=iso["sdp_port"], config=BridgeConfig(id_token=token_value),
                                            trace_dir=iso["trace_dir"], tls=iso["tls"], tcp=iso["tcp"])
        for b in bridges:
            assert b.server is not None
            where = ", ".join(f"{k} [{h}]:{p}" for k, (h, p) in b.server.addresses().items())
            typer.echo(f"EVSE {b.evse_id}: ISO 15118 / DIN 70121 SECC at {where}")
    try:
        if simulate:
            await station.wait_accepted()
            await simulate_session(station, 1, token=token, seconds=seconds, power_w=power)
            await station.wait_queue_empty()
            if not keep_running:
                return
        await asyncio.Event().wait()
    finally:
        for b in bridges:
            if b.server is not None:
                await b.server.close()
        await station.stop()
