"""The reference stack's ISO 15118-20 DC_BPT EVCC (iso15118 0.31.2, its example configuration) discharges at our
station under an OCPP 2.1 CentralSetpoint set through our CSMS's REST API.

Two network namespaces joined by a veth pair, as in test_bridge_interop20.py: our CSMS (with its API) and our
station (`--protocols iso20,iso2,din --allow-discharge 10000 --control dynamic,scheduled`) in the EVSE namespace,
the reference EVCC in the EV namespace. The reference EV takes the first parameter set it is offered, so the
station offers dynamic control first: in dynamic mode the reference EV follows the SECC's target (in scheduled mode
its simulator asks for +200 A whatever the DischargingSchedule says, docs/iso15118.md "Interop", so it cannot
discharge there). Its session is short (its own loop count), so the setpoint is in place before it plugs in: a
TxDefaultProfile with a CentralSetpoint of -5 kW for EVSE 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import josev, netns
from helpers.interop import start, wait, wait_for_text
from helpers.interop20 import loop_power, reference_stop_ok, wait_reference_evcc

from v2gstack.csms.auth import Role, create_token
from v2gstack.csms.store import Store

PASSWORD = "interop-station-pass"
LOOPS = ("DC_ChargeLoopRes", "AC_ChargeLoopRes")


def _skip_reason() -> str | None:
    return netns.skip_reason() or (None if josev.available() else "no .venv-ref (make ref-venv; needs Java)")


pytestmark = [pytest.mark.reference, pytest.mark.timeout(300),
              pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

POST = """
import json, sys, urllib.request
url, token, body = sys.argv[1], sys.argv[2], sys.argv[3]
request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
    "Authorization": "Bearer " + token, "Content-Type": "application/json"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(request, timeout=30) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def _ours(link: netns.VethLink, args: list[str]) -> list[str]:
    return link.command(link.evse_ns, [sys.executable, "-m", "v2gstack", *args])


def _loop_powers(trace_dir: Path) -> list[float]:
    """The powers of every charge-loop response our SECCs sent (the station's session timelines)."""
    out = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("direction") == "tx" and r.get("message") in LOOPS:
                power = loop_power(r["message"], r["json"][r["message"]])
                if power is not None:
                    out.append(power)
    return out


def _ended_transaction(db: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        store = Store(db)
        txs = [store.transaction("CS1", t["transactionId"]) for t in store.transactions("CS1")]
        store.close()
        if (txs and all(t["state"] == "Ended" for t in txs)) or time.monotonic() > deadline:
            assert len(txs) == 1, txs
            return txs[0]
        time.sleep(0.5)


def test_reference_dc_bpt_evcc_discharges_under_a_central_setpoint(tmp_path: Path) -> None:
    """The operator's TxDefaultProfile (CentralSetpoint -5 kW) is Accepted over OCPP 2.1; the reference DC_BPT EV
    (dynamic control) ends with SessionStopRes OK; every charge loop our SECC answered carried -5 kW (within the
    EV's and the station's limits) and the CSMS's transaction has export energy and no import beyond rounding."""
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    store = Store(db)
    store.add_station("CS1", PASSWORD)
    _, token = create_token(store, "interop", Role.OPERATOR)
    store.close()
    settings = tmp_path / "station.toml"
    settings.write_text("[iso15118]\ntimers_scale = 3.0\n")
    trace_dir = tmp_path / "traces"
    link = netns.VethLink.create()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        csms = start(_ours(link, ["csms", "--db", db, "--port", "9000", "--api-port", "9001"]), tmp_path / "csms.log")
        procs.append(csms)
        wait_for_text(tmp_path / "csms.log", "CSMS: OCPP ", csms, 30)
        station = start(_ours(link, [
            "station", "--config", str(settings), "--csms", "ws://127.0.0.1:9000/ocpp", "--id", "CS1",
            "--password", PASSWORD, "--secc-iface", link.evse_if, "--protocols", "iso20,iso2,din",
            "--allow-discharge", "10000", "--control", "dynamic,scheduled", "--free-charging",
            "--trace-dir", str(trace_dir), "--meter-interval", "1"]), tmp_path / "station.log")
        procs.append(station)
        wait_for_text(tmp_path / "station.log", "SECC at", station, 30)
        profile = {"evseId": 1, "chargingProfile": {
            "id": 77, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 77, "chargingRateUnit": "W", "chargingSchedulePeriod": [{
                "startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000.0}]}]}}
        deadline = time.monotonic() + 30
        while True:  # the station may still be connecting (409) or booting (its registration still New)
            posted = subprocess.run(link.command(link.evse_ns, [
                sys.executable, "-c", POST, "http://127.0.0.1:9001/api/stations/CS1/set-charging-profile", token,
                json.dumps(profile)]), capture_output=True, text=True, timeout=60)
            status, _, body = posted.stdout.strip().partition(" ")
            booting = status == "409" or (status == "502" and "registration New" in body)  # not yet Accepted
            if not booting or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == "200", posted.stdout + posted.stderr
        assert json.loads(body)["response"] == {"status": "Accepted"}
        evcc_dir = tmp_path / "evcc-dc_bpt"
        argv, env = josev.evcc_command(link.command(link.ev_ns, []), evcc_dir, link.ev_if, "iso20", "dc_bpt")
        evcc = josev.start(argv, env, evcc_dir, "evcc.log")
        rc = wait_reference_evcc(evcc, evcc_dir / "evcc.log", 150)
        evcc_log = (evcc_dir / "evcc.log").read_text(errors="replace")
        station_log = (tmp_path / "station.log").read_text(errors="replace")[-3000:]
        assert rc == 0 and reference_stop_ok(evcc_log), f"{evcc_log[-3000:]}\n--- station ---\n{station_log}"
        tx = _ended_transaction(db)
        powers = _loop_powers(trace_dir)
        assert powers and all(p == pytest.approx(-5000.0, rel=0.02) for p in powers), powers
        assert tx["iso15118"]["energyTransferMode"] == "DC_BPT" and tx["iso15118"]["controlMode"] == "Dynamic"
        assert tx["energyExportWh"] > 0 and tx["energyImportWh"] < 1, tx
    finally:
        for p in reversed(procs):
            p.terminate()
            wait(p, 15)
        link.destroy()
