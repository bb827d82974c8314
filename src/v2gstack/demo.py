"""`v2gstack demo`: the whole chain on one machine. A CSMS (SQLite), a station with EVSEs bridged to ISO 15118 SECCs,
and EVs (DIN 70121 DC, ISO 15118-2 AC, ISO 15118-2 DC, Plug & Charge over TLS with a contract installed through
the station and the CSMS, and an ISO 15118-20 DC_BPT EV in dynamic mode at an EVSE that allows discharge) charging at
once; halfway through, the CSMS lowers the -2 DC EV's power with a charging profile (sent through the CSMS REST API
with the demo's own API token) and the EV renegotiates, and gives the -20 EV a negative limit, so it feeds energy
back. Prints progress, a summary per session and where the timelines are; exits 0 when every session ended as it
should (and the CSMS's energy matches each EV's, both ways).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from .csms.api import create_app
from .csms.auth import Role, create_token
from .csms.service import Csms, CsmsConfig
from .csms.store import Store
from .iso15118 import EvccConfig, EVModel, run_evcc
from .iso15118.evcc import SessionResult
from .iso15118.tls import evcc_context
from .ocpp import BackOff
from .sim.pnc import PNC_FAULTS, PncSetup, pnc_setup
from .station import ChargingStation, StationConfig
from .station.bridge import BridgeConfig, EvseBridge, start_bridged_seccs
from .times import parse_rfc3339

STATION_ID = "DEMO-CS01"
PASSWORD = "demo-station-password"
TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}
LOOP_INTERVAL = 0.1  # real s between the EVs' charge-loop requests
LAG_LOOPS = 3
"""After a profile change the hardware holds the new limit at once and the EV, which counts its energy from the
EVSE's answers, learns it with its next charge loop: the two may differ by about that loop's energy at full power
(a few loops on a loaded machine)."""
DISCHARGE_W = 10_000.0  # what the -20 EVSE allows an EV to feed back (allow_discharge_w) and the CSMS asks for


@dataclass(frozen=True)
class DemoEv:
    """One EV of the demo."""

    evse: int
    label: str
    protocol: str
    energy: str
    model: EVModel
    pnc: PncSetup | None = None
    control: str = "scheduled"  # ISO 15118-20: scheduled or dynamic


def _evs(speedup: float) -> list[DemoEv]:
    return [
        DemoEv(1, "DIN 70121 DC", "din", "dc", EVModel(capacity_wh=40_000, soc=20, target_soc=90, dc_max_power=50_000,
                                                       speedup=speedup)),
        DemoEv(2, "ISO 15118-2 AC", "iso2", "ac", EVModel(capacity_wh=60_000, soc=35, target_soc=90, speedup=speedup)),
        DemoEv(3, "ISO 15118-2 DC", "iso2", "dc", EVModel(capacity_wh=77_000, soc=10, target_soc=90,
                                                          dc_max_power=50_000, speedup=speedup)),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_command(
    workdir: str = typer.Option("v2gstack-demo", "--workdir", help="Folder for the database, timelines and state"),
    seconds: float = typer.Option(12.0, "--seconds", help="Real seconds each EV charges"),
    speedup: float = typer.Option(60.0, "--speedup", help="Simulated seconds per real second (EVs and station)"),
    api_port: int = typer.Option(0, "--api-port", help="CSMS REST API port (0: a free one)"),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave the CSMS and its API up afterwards"),
    pnc: bool = typer.Option(True, "--pnc/--no-pnc", help="A fourth EV with Plug & Charge over TLS: it has only its "
                             "OEM provisioning certificate and gets a contract through the station and the CSMS"),
    pnc_fault: str = typer.Option("none", "--pnc-fault", help="Make the Plug & Charge EV fail on purpose: none, "
                                  "revoked, wrong-root, expired, bad-signature, ocsp-down (the demo then checks the "
                                  "expected code)"),
    ocpp: str | None = typer.Option(None, "--ocpp", help="The one OCPP version the station offers: 2.1, 2.0.1 or 1.6 "
                                    "(default: the station's 2.1 then 2.0.1; 1.6: 1.6J, Plug & Charge over "
                                    "DataTransfer per the OCA application note)"),
    iso20: bool = typer.Option(True, "--iso20/--no-iso20", help="An ISO 15118-20 DC_BPT EV (dynamic control) at an "
                               "EVSE that allows 10 kW of discharge; the CSMS asks it to feed back halfway through"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log everything"),
) -> None:
    """Run the end-to-end demo: EVs -> ISO 15118 -> station -> OCPP -> CSMS."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        if pnc_fault not in PNC_FAULTS:
            typer.echo(f"error: --pnc-fault is one of {', '.join(PNC_FAULTS)}", err=True)
            raise typer.Exit(2)
        if ocpp not in (None, "2.1", "2.0.1", "1.6"):
            typer.echo("error: --ocpp is 2.1, 2.0.1 or 1.6", err=True)
            raise typer.Exit(2)
        ok = asyncio.run(run_demo(Path(workdir), seconds=seconds, speedup=speedup, api_port=api_port,
                                  keep_running=keep_running, pnc=pnc, pnc_fault=pnc_fault, ocpp=ocpp,
                                  iso20=iso20))
        raise typer.Exit(0 if ok else 1)


async def run_demo(workdir: Path, *, seconds: float = 12.0, speedup: float = 60.0, api_port: int = 0,
                   keep_running: bool = False, console: Console | None = None, pnc: bool = True,
                   pnc_fault: str = "none", ocpp: str | None = None, iso20: bool = True) -> bool:
    """The demo; True when every session ended OK and the CSMS recorded each EV's energy."""
    out = console or Console(width=None if Console().is_terminal else 150)
    workdir = workdir.resolve()
    for old in ("csms.db", "csms.db-wal", "csms.db-shm", "traces", "station", "pki", "api-token"):
        path = workdir / old
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'csms.db'}"
    store = Store(db_url)
    store.add_station(STATION_ID, PASSWORD)
    # a V2X contract (OCPP 2.1 Q01): its AuthorizeResponse allows the -20 car DC_BPT, so the setpoint can turn it around
    store.put_id_token(TOKEN["idToken"], TOKEN["type"], account="demo-account",
                       allowed_energy_transfer=["AC_single_phase", "AC_three_phase", "DC", "AC_BPT", "DC_BPT"])
    plug_and_charge = await _pnc_setup(workdir, store, pnc_fault, out) if pnc else None
    csms = Csms(store, CsmsConfig(heartbeat_interval=300, ping_interval=None, ocsp_required=pnc_fault == "ocsp-down",
                                  pki_dir=str(workdir / "pki") if pnc else None,
                                  ocsp_url=plug_and_charge.ocsp_url if plug_and_charge else None,
                                  # the demo's responder runs on loopback, which the CSMS only asks when told to
                                  ocsp_allow=(plug_and_charge.ocsp_host,) if plug_and_charge else ()))
    await csms.start("127.0.0.1", 0)
    out.print(f"[bold]CSMS[/] OCPP {'/'.join(csms.config.allowed_versions)} at ws://127.0.0.1:{csms.port}/ocpp "
              f"(SQLite {workdir / 'csms.db'})")
    _, token = create_token(store, "demo", Role.OPERATOR, days=1)
    token_file = workdir / "api-token"
    with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:  # only for us
        f.write(token + "\n")
    api_server, api_task, api_url = await _start_api(csms, api_port or _free_port(), workdir / "traces", out)
    out.print(f"[bold]CSMS API[/] token (operator) in {token_file}: curl -H \"Authorization: Bearer $(cat "
              f"{token_file})\" {api_url}/api/transactions")
    evse_count = 3 + pnc + iso20
    iso20_evse = evse_count if iso20 else None
    station = ChargingStation(StationConfig(
        STATION_ID, f"ws://127.0.0.1:{csms.port}/ocpp", evses=evse_count, password=PASSWORD,
        **({"versions": (ocpp,)} if ocpp else {}),
        state_dir=workdir / "station",
        max_power_w=50_000.0, time_scale=1 / speedup, backoff=BackOff(0.1, 0.1, 3), ping_interval=None))
    station.model.put("SampledDataCtrlr", "TxUpdatedInterval", "60")
    station.model.put("ISO15118Ctrlr", "PnCEnabled", "true" if pnc else "false")
    await station.start()
    bridges: list[EvseBridge] = []
    try:
        await asyncio.wait_for(station.wait_accepted(), 30)
        out.print(f"[bold]Station[/] {STATION_ID}: OCPP {station.link.version}, BootNotification Accepted, "
                  f"{len(station.evses)} EVSEs")
        configs = {iso20_evse: BridgeConfig(id_token=TOKEN, allow_discharge_w=DISCHARGE_W)} if iso20_evse else {}
        bridges = await start_bridged_seccs(station, port=0, sdp_port=0, trace_dir=workdir / "traces",
                                            config=BridgeConfig(id_token=TOKEN), tcp=True,
                                            tls=plug_and_charge.secc_tls if plug_and_charge else None,
                                            protocols=("iso20", "iso2", "din"), configs=configs)
        for b in bridges:
            assert b.server is not None
            addresses = b.server.addresses()
            tls = f", tls [::1]:{addresses['tls'][1]}" if "tls" in addresses else ""
            out.print(f"  EVSE {b.evse_id}: SECC tcp [::1]:{addresses['tcp'][1]}{tls}, SDP [::1]:{addresses['sdp'][1]}")
        evs = _evs(speedup)
        if plug_and_charge is not None:
            evs.append(DemoEv(4, "ISO 15118-2 AC Plug & Charge", "iso2", "ac", EVModel(
                capacity_wh=50_000, soc=25, target_soc=90, speedup=speedup), pnc=plug_and_charge))
        if iso20_evse is not None:
            evs.append(DemoEv(iso20_evse, "ISO 15118-20 DC_BPT", "iso20", "dc_bpt", EVModel(
                capacity_wh=80_000, soc=60, target_soc=90, min_soc=30, dc_max_power=50_000, speedup=speedup),
                control="dynamic"))
        started = time.monotonic()
        loops = max(5, int(seconds / LOOP_INTERVAL))
        tasks = [asyncio.create_task(_run_ev(ev, bridges[ev.evse - 1], loops, out)) for ev in evs]
        ticker = asyncio.create_task(_progress(station, evs, out))
        await asyncio.sleep(seconds / 2)
        await _lower_power(csms, api_url, token, 3, 20_000, out, ev_session=tasks[2])
        if iso20_evse is not None and csms.version_of(STATION_ID) == "2.1":
            await _setpoint(csms, api_url, token, iso20_evse, -DISCHARGE_W, out, ev_session=tasks[-1])
        elif iso20_evse is not None:
            await _lower_power(csms, api_url, token, iso20_evse, -DISCHARGE_W, out, ev_session=tasks[-1])
        results = await asyncio.gather(*tasks)
        ticker.cancel()
        await asyncio.wait_for(station.wait_queue_empty(), 30)
        for b in bridges:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while b.ending:
                        await asyncio.sleep(0.05)
        lag_wh = LAG_LOOPS * station.config.max_power_w * LOOP_INTERVAL * speedup / 3600
        ok = _summary(store, evs, results, time.monotonic() - started, workdir, db_url, out, lag_wh)
        if keep_running:
            out.print("[bold]--keep-running[/]: the CSMS and its API stay up; Ctrl-C stops them.")
            await asyncio.Event().wait()
        return ok
    finally:
        for b in bridges:
            if b.server is not None:
                await b.server.close()
        await station.stop()
        if api_server is not None:
            api_server.should_exit = True
            with contextlib.suppress(Exception):
                await api_task
        await csms.close()
        store.close()
        if plug_and_charge is not None and plug_and_charge.ocsp_server is not None:
            plug_and_charge.ocsp_server.close()


async def _start_api(csms: Csms, port: int, trace_dir: Path, out: Console) -> tuple[Any, Any, str]:
    """The CSMS REST API in this event loop, once it listens: (server, its task, its base URL)."""
    server = uvicorn.Server(uvicorn.Config(create_app(csms, trace_dir=trace_dir), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
        raise RuntimeError(f"the CSMS API could not listen on port {port}")
    url = f"http://127.0.0.1:{port}"
    out.print(f"[bold]CSMS API[/] {url}/api (OpenAPI docs at /docs)")
    return server, task, url


async def _run_ev(ev: DemoEv, bridge: EvseBridge, loops: int, out: Console) -> SessionResult:
    """One EV: SDP on loopback, then the session."""
    assert bridge.server is not None
    config = EvccConfig(protocols=(ev.protocol,), energy=ev.energy, control=ev.control, loops=loops,
                        loop_interval=LOOP_INTERVAL,
                        ongoing_interval=0.05, evcc_id=f"0A0B0C0D0E{ev.evse:02X}",
                        payment="Contract" if ev.pnc else "ExternalPayment",
                        contract=ev.pnc.contract if ev.pnc else None, oem=ev.pnc.oem if ev.pnc else None,
                        pnc_fault=ev.pnc.ev_fault if ev.pnc else None)
    out.print(f"[cyan]EV {ev.evse}[/] ({ev.label}) plugs in at EVSE {ev.evse}"
              + (" with only its OEM provisioning certificate" if ev.pnc and ev.pnc.oem else ""))
    context = None
    if ev.pnc is not None:
        context = evcc_context(cadata=ev.pnc.v2g_root_pem)
    result = await run_evcc(config, ev.model, sdp_port=bridge.server.addresses()["sdp"][1], tls=ev.pnc is not None,
                            tls_context=context)
    if result.installed_contract is not None:
        out.print(f"[cyan]EV {ev.evse}[/] got contract {result.installed_contract.emaid} through the station and the "
                  "CSMS (Get15118EVCertificate)")
    back = f", fed back {result.exported_wh / 1000:.2f} kWh" if result.exported_wh else ""
    out.print(f"[cyan]EV {ev.evse}[/] ({ev.label}) {'done' if result.ok else 'FAILED'}: {result.reason}{back}")
    return result


async def _progress(station: ChargingStation, evs: list[DemoEv], out: Console) -> None:
    """One line per second: each EVSE's power and energy as the station's meter sees them."""
    while True:
        await asyncio.sleep(1.0)
        parts = []
        for ev in evs:
            meter = station.hardware(ev.evse).meter()
            parts.append(f"EVSE {ev.evse}: {meter.power_w / 1000:+5.1f} kW {meter.import_wh / 1000:5.2f} kWh")
        out.print("  " + " | ".join(parts), style="dim")


async def _transaction_of(csms: Csms, evse_id: int, ev_session: asyncio.Task[Any]) -> str | None:
    """The EVSE's transaction; on a loaded machine the EV may not have started yet: wait as long as its session
    runs."""
    tx_id = csms.active_transaction(STATION_ID, evse_id)
    while tx_id is None and not ev_session.done():
        await asyncio.sleep(0.05)
        tx_id = csms.active_transaction(STATION_ID, evse_id)
    return tx_id


async def _setpoint(csms: Csms, api_url: str, token: str, evse_id: int, watts: float, out: Console, *,
                    ev_session: asyncio.Task[Any]) -> None:
    """OCPP 2.1: the operator's setpoint through the REST API (a Dynamic CentralSetpoint TxProfile); the -20 EV
    follows it in its next charge loop."""
    if await _transaction_of(csms, evse_id, ev_session) is None:
        out.print(f"[yellow]no transaction on EVSE {evse_id} yet; no setpoint sent[/]")
        return
    status, body = await asyncio.to_thread(_post_json, f"{api_url}/api/stations/{STATION_ID}/evse/{evse_id}/setpoint",
                                           token, {"setpoint": watts})
    if status != 200:
        out.print(f"[red]CSMS API refused the setpoint: {status} {body.get('detail')}[/]")
        return
    out.print(f"[magenta]CSMS[/] OCPP 2.1 CentralSetpoint {watts / 1000:g} kW on EVSE {evse_id}: "
              f"{body['response']['status']} (through the REST API; the -20 EV feeds energy back)")


async def _lower_power(csms: Csms, api_url: str, token: str, evse_id: int, watts: float, out: Console, *,
                       ev_session: asyncio.Task[Any]) -> None:
    """The mid-session change: a TxProfile for the EVSE's transaction, sent as an operator would, through the REST
    API with a bearer token. On a loaded machine the EV may not have started yet: wait for its transaction as long
    as its session runs."""
    tx_id = csms.active_transaction(STATION_ID, evse_id)
    while tx_id is None and not ev_session.done():
        await asyncio.sleep(0.05)
        tx_id = csms.active_transaction(STATION_ID, evse_id)
    if tx_id is None:
        out.print(f"[yellow]no transaction on EVSE {evse_id} yet; no profile sent[/]")
        return
    if csms.version_of(STATION_ID) == "1.6":  # the 1.6 form: csChargingProfiles, one schedule, the CSMS's integer id
        request: dict[str, Any] = {"connectorId": evse_id, "csChargingProfiles": {
            "chargingProfileId": 100 + evse_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "transactionId": int(tx_id), "chargingSchedule": {
                "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}]}}}
    else:  # stack level 1: above the TxProfile the CSMS sent for the EV's charging needs (K15, stack level 0)
        request = {"evseId": evse_id, "chargingProfile": {
            "id": 100 + evse_id, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "transactionId": tx_id, "chargingSchedule": [{
                "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}]}]}}
    status, body = await asyncio.to_thread(_post_json, f"{api_url}/api/stations/{STATION_ID}/set-charging-profile",
                                           token, request)
    if status != 200:
        out.print(f"[red]CSMS API refused SetChargingProfile: {status} {body.get('detail')}[/]")
        return
    effect = "the EV renegotiates" if watts >= 0 else "the -20 EV feeds energy back"
    out.print(f"[magenta]CSMS[/] SetChargingProfile TxProfile {watts / 1000:g} kW on EVSE {evse_id}: "
              f"{body['response']['status']} (through the REST API; {effect})")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a configured proxy


def _post_json(url: str, token: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST JSON with a bearer token (blocking: run it in a thread); (HTTP status, decoded answer)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with _DIRECT.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _short(text: str, width: int = 12) -> str:
    """A long id cut to `width` characters with an ellipsis (a 1.6 integer id stays whole)."""
    return text if len(text) <= width else text[:width] + "…"


def _summary(store: Store, evs: list[DemoEv], results: list[SessionResult], elapsed: float, workdir: Path,
             db_url: str, out: Console, lag_wh: float = 0.0) -> bool:
    """The table per session; True when all went well (EV and CSMS energies agree within 5 %, or after a profile
    change within `lag_wh`: LAG_LOOPS charge loops at full power)."""
    table = Table(title="v2gstack demo: one row per charging session")
    for col in ("EVSE", "protocol", "transactionId", "SessionID", "EV energy", "CSMS energy", "profile change",
                "duration (simulated)", "outcome"):
        table.add_column(col)
    ok = True
    by_session: dict[Any, Any] = {}
    for tx in store.transactions(STATION_ID):
        by_session[(tx.get("iso15118") or {}).get("sessionId")] = tx
    first_tx = None
    for ev, res in zip(evs, results, strict=True):
        tx = by_session.get(res.session_id)
        full = store.transaction(STATION_ID, tx["transactionId"]) if tx else None
        csms_wh = None
        csms_out = 0.0
        reneg = "-"
        duration = "-"
        if full is not None:
            first_tx = first_tx or full["transactionId"]
            csms_wh = full["energyImportWh"]  # Wh, from the normalised registers (csms/store.py energy_totals)
            csms_out = full.get("energyExportWh") or 0.0
            needs = [m for m in store.messages(station_id=STATION_ID, transaction_id=full["transactionId"])
                     if m["action"] == "SetChargingProfile"]
            reneg = "yes" if needs else "-"
            if full["startedAt"] and full["endedAt"]:
                minutes = (parse_rfc3339(full["endedAt"]) - parse_rfc3339(full["startedAt"])).total_seconds() / 60
                duration = f"{minutes:.0f} min"
        # a profile change holds the hardware at once; the EV learns it with its next charge loop (the lag)
        slack = max(5.0, 0.05 * res.energy_wh, lag_wh if reneg == "yes" else 0.0)
        matches = csms_wh is not None and abs(csms_wh - res.energy_wh) <= slack and \
            abs(csms_out - res.exported_wh) <= max(5.0, 0.05 * res.exported_wh)
        good = res.ok and full is not None and full["state"] == "Ended" and matches
        expected = ev.pnc.expected if ev.pnc else None
        if expected is not None:
            good = not res.ok and res.response_code == expected
        ok = ok and good
        ev_energy, csms_energy = f"{res.energy_wh / 1000:.2f} kWh", "-"
        if csms_wh is not None:
            csms_energy = f"{csms_wh / 1000:.2f} kWh"
        if res.exported_wh or csms_out:  # bidirectional: what went back, with a minus sign
            ev_energy += f" / -{res.exported_wh / 1000:.2f}"
            csms_energy += f" / -{csms_out / 1000:.2f}"
        table.add_row(str(ev.evse), ev.label, _short(full["transactionId"]) if full else "-",
                      res.session_id or "-", ev_energy, csms_energy, reneg,
                      duration, ("[green]OK[/]" if expected is None else f"[green]{expected} as injected[/]") if good
                      else f"[red]{res.reason}[/]")
    out.print(table)
    out.print(f"All sessions ran at once in {elapsed:.1f} s of real time.")
    out.print(f"Timelines (one JSON-lines file per session): {workdir / 'traces'}")
    if first_tx:
        out.print(f"Show one: v2gstack trace {first_tx} --db {db_url} --trace-dir {workdir / 'traces'}")
    out.print("[bold green]demo OK[/]" if ok else "[bold red]demo FAILED[/]")
    return ok


async def _pnc_setup(workdir: Path, store: Store, fault: str, out: Console) -> PncSetup:
    """A PKI for the demo (with a running OCSP responder), the MO root trusted by the CSMS, the SECC's TLS chain, and
    the Plug & Charge EV's credentials: only its OEM certificate, or, for a fault, a prepared contract."""
    folder = workdir / "pki"
    setup = await pnc_setup(folder, store, fault)
    out.print(f"[bold]PKI[/] V2G/MO/OEM/CPS hierarchies in {folder}, OCSP responder at {setup.ocsp_url}; the CSMS "
              "trusts the MO root and issues contracts with the MO and CPS CAs")
    if fault != "none":
        out.print(f"[yellow]fault injected[/]: {fault} -> the Plug & Charge EV must get {setup.expected}")
    return setup
