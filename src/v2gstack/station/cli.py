"""`v2gstack station`: run a simulated OCPP 2.1 / 2.0.1 charging station, optionally with a scripted charging session.

The station's settings come from `--config station.toml` (station/settings.py) and the flags, a flag given
explicitly winning over the file; `--print-config` shows the result (secrets masked) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import typer

from ..heap import freeze_startup_heap
from ..iso15118 import load_grammars
from ..settings_file import Flags, Loaded, SettingsError, apply_flags, dumps
from .assemble import assemble
from .session import simulate_session
from .settings import StationSettings, load_station_settings, resize_evses

app = typer.Typer(add_completion=False, help="Run a simulated OCPP 2.1 / 2.0.1 charging station.")

FLAGS: Flags = {
    "csms": (("csms", "url"), None),
    "station_id": (("station", "id"), None),
    "password": (("csms", "password"), None),
    "version": (("csms", "ocpp_versions"), lambda v: [v]),
    "ocpp_versions": (("csms", "ocpp_versions"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
    "sign_meter_values": (("metering", "sign_readings"), None),
    "grid_frequency": (("v2x", "nominal_frequency"), None),
    "state_dir": (("state_dir",), None),
    "time_scale": (("time_scale",), None),
    "meter_interval": (("metering", "tx_updated_interval"), None),
    "secc_port": (("iso15118", "secc_port"), None),
    "secc_iface": (("iso15118", "interfaces"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
    "sdp_port": (("iso15118", "sdp_port"), None),
    "free_charging": (("authorization", "free_charging"), None),
    "iso_token": (("iso15118", "eim_token"), None),
    "trace_dir": (("trace_dir",), None),
    "mirror": (("iso15118", "mirror", "messages"), None),
    "secc_cert": (("iso15118", "tls_cert"), None),
    "secc_tls_only": (("iso15118", "tls_only"), None),
    "secc_key": (("iso15118", "tls_key"), None),
    "secc_key_password": (("iso15118", "tls_key_password"), None),
    "pnc": (("iso15118", "pnc"), None),
    "slac": (("iso15118", "slac"), None),
    "protocols": (("iso15118", "protocols"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
    "iso20_pki": (("iso15118", "iso20_pki"), None),
    "allow_discharge": (("iso15118", "allow_discharge_w"), None),
    "control": (("iso15118", "control_modes"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
}
"""Each settings flag -> the key it overrides (`--evses` resizes [[evse]]; --secc-port/--secc-iface also enable
ISO 15118)."""


@app.callback(invoke_without_command=True)
def station_command(
    ctx: typer.Context,
    config_file: str | None = typer.Option(None, "--config", help="Settings file (TOML, see examples/station.toml); "
                                           "flags given explicitly override its values"),
    print_config: bool = typer.Option(False, "--print-config", help="Print the effective settings as TOML (secrets "
                                      "masked) and exit"),
    csms: str | None = typer.Option(None, "--csms", help="CSMS endpoint, e.g. ws://localhost:9000/ocpp (the id is "
                                    "appended)"),
    station_id: str | None = typer.Option(None, "--id", help="Charging station identity"),
    evses: int = typer.Option(1, "--evses", min=1, help="Number of EVSEs (one connector each)"),
    password: str | None = typer.Option(None, "--password", help="Basic auth password (security profile 1/2)"),
    version: str = typer.Option("2.1", "--version", "--ocpp", help="Offer only this OCPP version (2.1, 2.0.1, or "
                                "1.6: 1.6J with the security extensions and Plug & Charge over DataTransfer)"),
    ocpp_versions: str = typer.Option("2.1,2.0.1", "--ocpp-versions", help="OCPP versions offered, most preferred "
                                      "first (the CSMS picks one)"),
    sign_meter_values: bool = typer.Option(False, "--sign-meter-values", help="SampledDataCtrlr.SignReadings=true: "
                                           "energy registers signed by the simulated meter (OCMF)"),
    grid_frequency: float = typer.Option(50.0, "--grid-frequency", help="Hz the simulated grid frequency starts at "
                                         "(step it with DataTransfer org.v2gstack.grid SetGridFrequency)"),
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
    slac: bool = typer.Option(False, "--slac", help="With --secc-iface: SLAC (ISO 15118-3) on each interface first "
                              "(the PLC modem's host link); each SECC starts after its EVSE's match"),
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
    protocols: str | None = typer.Option(None, "--protocols", help="ISO 15118 protocols the SECCs offer, in their "
                                         "priority order, e.g. iso20,iso2,din (default iso2,din)"),
    iso20_pki: str | None = typer.Option(None, "--iso20-pki", help="A `pki create --profile iso20` folder: the "
                                         "SECCs' TLS listener serves ISO 15118-20 over TLS 1.3 (vehicle "
                                         "certificate required) instead of --secc-cert"),
    allow_discharge: float | None = typer.Option(None, "--allow-discharge", help="W an ISO 15118-20 EV may feed "
                                                 "back under OCPP 2.0.1 (0: no AC_BPT/DC_BPT offered)"),
    control: str | None = typer.Option(None, "--control", help="ISO 15118-20 control modes offered, in order: "
                                       "scheduled,dynamic (default) or dynamic,scheduled (an EV taking the first "
                                       "parameter set gets the first)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging"),
) -> None:
    """Connect to the CSMS and run until Ctrl-C (or until the scripted session is delivered)."""
    try:
        settings = _settings(ctx, config_file, evses)
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if print_config:
        typer.echo(dumps(settings.tree), nl=False)
        raise typer.Exit(0)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(settings.tree, simulate, seconds, token, power, keep_running))
    except SettingsError as e:  # a file the settings name will not load (raised before the station starts)
        typer.echo(f"error: {settings.blame(e)}", err=True)
        raise typer.Exit(2) from None


def _settings(ctx: typer.Context, config_file: str | None, evses: int) -> Loaded[StationSettings]:
    """The file's settings (or the defaults) with the explicitly given flags applied, checked."""
    settings = load_station_settings(config_file)
    given = apply_flags(settings, ctx, FLAGS)
    if "evses" in given:
        resize_evses(settings.tree, evses)
        settings.origins[("evse",)] = "--evses"
    if "secc_port" in given or "secc_iface" in given:
        settings.override(("iso15118", "enabled"), True, given.get("secc_port", given.get("secc_iface"))[0])
    settings.check()
    return settings


async def _main(settings: StationSettings, simulate: bool, seconds: float, token: str, power: float,
                keep_running: bool) -> None:
    """Run the station; with a scripted session, stop once its messages are all delivered (unless keep_running)."""
    assembly = assemble(settings)
    station = assembly.station
    try:
        await assembly.start()
        for b in assembly.bridges:
            if b.server is None and b.slac is not None:
                typer.echo(f"EVSE {b.evse_id}: SLAC on {b.slac.iface}; the SECC starts after the match")
                continue
            assert b.server is not None
            where = ", ".join(f"{k} [{h}]:{p}" for k, (h, p) in b.server.addresses().items())
            typer.echo(f"EVSE {b.evse_id}: ISO 15118 / DIN 70121 SECC at {where}")
        if assembly.bridges:  # the SECCs' grammars now, then full collections skip the start-up heap (heap.py)
            load_grammars(settings.iso15118.protocols)
        freeze_startup_heap()
        if simulate:
            await station.wait_accepted()
            await simulate_session(station, 1, token=token, seconds=seconds, power_w=power)
            await station.wait_queue_empty()
            if not keep_running:
                return
        await asyncio.Event().wait()
    finally:
        await assembly.stop()
