"""Our CSMS with OCPP 2.1 peers over real sockets: version negotiation on one endpoint, every handler with 2.1
payloads (answers checked against the official 2.1 response schemas with jsonschema), the V2X state the CSMS keeps,
the V2X API (rules checked before sending, the setpoint shortcut, Dynamic profiles pushed and pulled, allowed energy
transfer, aFRR), and signed meter values (OCMF) verified with real keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.csms import PASSWORD, api_client, make_db_url, running_csms
from websockets.asyncio.client import ClientConnection, connect

from v2gstack.csms import v2x_state
from v2gstack.csms.service import Csms
from v2gstack.csms.store import Store
from v2gstack.csms.worker import StoreWorker
from v2gstack.hardware import ocmf
from v2gstack.ocpp.auth import basic_auth_header
from v2gstack.ocpp.schemas import ocpp_package_schema_root

pytestmark = pytest.mark.timeout(120)
NOW = "2026-03-01T12:00:00Z"
SCHEMAS = ocpp_package_schema_root() / "v21" / "schemas"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


def response_schema(action: str) -> jsonschema.Draft7Validator:
    with open(SCHEMAS / f"{action}Response.json", encoding="utf-8-sig") as f:
        return jsonschema.Draft7Validator(json.load(f))


class Peer:
    """A raw OCPP-J station: sends the CALLs a test writes, answers the CSMS's CALLs from a table."""

    def __init__(self, ws: ClientConnection, answers: dict[str, dict[str, Any]]) -> None:
        self.ws = ws
        self.answers = answers
        self.received: list[list[Any]] = []  # the CSMS's CALLs, in order
        self._results: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                frame = json.loads(text)
                if frame[0] == 2:
                    self.received.append(frame)
                    await self.ws.send(json.dumps([3, frame[1], self.answers.get(frame[2], {"status": "Accepted"})]))
                else:
                    await self._results.put(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL; return the CALLRESULT payload after checking it against the 2.1 response schema."""
        mid = uuid.uuid4().hex[:12]
        await self.ws.send(json.dumps([2, mid, action, payload]))
        frame = await asyncio.wait_for(self._results.get(), 10)
        assert frame[1] == mid and frame[0] == 3, frame
        if self.ws.subprotocol == "ocpp2.1":
            response_schema(action).validate(frame[2])
        return frame[2]

    async def call_error(self, action: str, payload: dict[str, Any]) -> str:
        """Send a CALL that must be refused; the CALLERROR code."""
        await self.ws.send(json.dumps([2, "e1", action, payload]))
        frame = await asyncio.wait_for(self._results.get(), 10)
        assert frame[0] == 4, frame
        return frame[2]


@asynccontextmanager
async def peer(csms: Csms, versions: list[str], station: str = "CS1",
               answers: dict[str, dict[str, Any]] | None = None) -> AsyncIterator[Peer]:
    async with connect(f"ws://127.0.0.1:{csms.port}/ocpp/{station}", subprotocols=versions,  # type: ignore[arg-type]
                       additional_headers={"Authorization": basic_auth_header(station, PASSWORD)}, proxy=None) as ws:
        p = Peer(ws, answers or {})
        try:
            yield p
        finally:
            p._task.cancel()


def sampled(value: float, measurand: str, unit: str = "Wh", **kw: Any) -> dict[str, Any]:
    return {"value": value, "measurand": measurand, "unitOfMeasure": {"unit": unit}, **kw}


def event(seq: int, event_type: str, trigger: str, values: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    at = f"2026-03-01T12:{seq:02d}:00Z"
    info = {"transactionId": "tx-21", "chargingState": "Charging", **kw.pop("info", {})}
    out = {"eventType": event_type, "timestamp": at, "triggerReason": trigger, "seqNo": seq, "transactionInfo": info,
           **kw}
    if values:
        out["meterValue"] = [{"timestamp": at, "sampledValue": values}]
    return out


NEEDS = {"evseId": 1, "maxScheduleTuples": 3, "timestamp": NOW, "chargingNeeds": {
    "requestedEnergyTransfer": "DC_BPT", "availableEnergyTransfer": ["DC", "DC_BPT"], "controlMode": "DynamicControl",
    "mobilityNeedsMode": "EVCC_SECC", "departureTime": "2026-03-01T18:00:00Z",
    "v2xChargingParameters": {"minChargePower": 0.0, "maxChargePower": 50000.0, "minDischargePower": 0.0,
                              "maxDischargePower": 20000.0, "evMinV2XEnergyRequest": -10000.0,
                              "evMaxV2XEnergyRequest": 30000.0, "targetSoC": 80},
    "evEnergyOffer": {"evPowerSchedule": {"timeAnchor": NOW, "evPowerScheduleEntries": [
        {"duration": 3600, "power": -7000.0}]}},
    "customData": {"vendorId": "org.example"}}}


async def test_version_negotiation_on_one_endpoint(tmp_path: Path) -> None:
    """A station offering 2.1 and 2.0.1 gets 2.1, one offering 2.0.1 gets 2.0.1; the CSMS stores the version and
    the API shows it; a 2.1-only action on a 2.0.1 connection is NotImplemented; a CSMS configured for 2.0.1 only
    completes no 2.1-only handshake."""
    async with running_csms(f"sqlite:///{tmp_path / 'v.db'}", stations={"CS1": PASSWORD, "CS2": PASSWORD}) as csms:
        async with peer(csms, ["ocpp2.1", "ocpp2.0.1"]) as p1, peer(csms, ["ocpp2.0.1"], "CS2") as p2:
            assert p1.ws.subprotocol == "ocpp2.1" and p2.ws.subprotocol == "ocpp2.0.1"
            assert await p2.call_error("PullDynamicScheduleUpdate", {"chargingProfileId": 1}) == "NotImplemented"
            async with api_client(csms, "viewer") as api:
                stations = {s["id"]: s for s in (await api.get("/api/stations")).json()}
            assert stations["CS1"]["ocppVersion"] == "2.1" and stations["CS2"]["ocppVersion"] == "2.0.1"
        async with peer(csms, ["ocpp2.0.1"]) as p1:  # the same station, reconnecting with the other version
            assert p1.ws.subprotocol == "ocpp2.0.1"
            await p1.call("Heartbeat", {})  # written after the connection's version (the store worker keeps order)
        assert csms.store.station("CS1").ocpp_version == "2.0.1"
    async with running_csms(f"sqlite:///{tmp_path / 'w.db'}", allowed_versions=("2.0.1",)) as csms, \
            peer(csms, ["ocpp2.1"]) as p1:
        assert p1.ws.subprotocol is None
        with pytest.raises(Exception):  # noqa: B017 (the server closes: 1002, no agreed version)
            await asyncio.wait_for(p1.ws.recv(), 5)


async def test_every_handler_serves_21_payloads(db_url: str) -> None:
    """Boot, heartbeat, status, authorize (2.1 free-text idToken type), transaction events with 2.1 fields
    (operationMode, evseSleep, preconditioningStatus, customData, import/export/net/setpoint/SoC), MeterValues with
    the 2.1 location, NotifyEVChargingNeeds with the V2X fields, NotifyEVChargingSchedule with 2.1 fields, NotifyEvent
    with severity, NotifyReport, NotifyPriorityCharging, DataTransfer: each answered within the 2.1 response schema,
    and the CSMS keeps import and export energy, the V2X readings and the charging needs per transaction."""
    async with running_csms(db_url) as csms, peer(csms, ["ocpp2.1"]) as p:
        boot = await p.call("BootNotification", {"chargingStation": {"model": "M21", "vendorName": "V2G",
                                                                     "customData": {"vendorId": "x"}},
                                                 "reason": "PowerUp"})
        assert boot["status"] == "Accepted"
        await p.call("Heartbeat", {})
        await p.call("StatusNotification", {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1,
                                            "connectorId": 1})
        auth = await p.call("Authorize", {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}})
        assert auth["idTokenInfo"]["status"] == "Accepted"
        unknown = await p.call("Authorize", {"idToken": {"idToken": "pay-123", "type": "DirectPayment"}})
        assert unknown["idTokenInfo"]["status"] == "Unknown"
        started = await p.call("TransactionEvent", event(0, "Started", "CablePluggedIn", [
            sampled(1000.0, "Energy.Active.Import.Register"), sampled(200.0, "Energy.Active.Export.Register"),
            sampled(800.0, "Energy.Active.Net"), sampled(40, "SoC", "Percent")],
            idToken={"idToken": "04A1B2C3", "type": "ISO14443"}, evse={"id": 1, "connectorId": 1},
            info={"operationMode": "ChargingOnly"}, preconditioningStatus="Ready", evseSleep=False))
        assert started["idTokenInfo"]["status"] == "Accepted"
        needs_answer = await p.call("NotifyEVChargingNeeds", NEEDS)  # DynamicControl: setpoints, no schedule (K15)
        assert needs_answer["status"] == "NoChargingProfile"
        assert needs_answer["statusInfo"]["reasonCode"] == "DynamicControl"
        await p.call("NotifyEVChargingSchedule", {"timeBase": NOW, "evseId": 1, "selectedChargingScheduleId": 1,
                                                  "powerToleranceAcceptance": True, "chargingSchedule": {
                                                      "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                                                          {"startPeriod": 0, "limit": 7000.0}]}})
        await p.call("TransactionEvent", event(1, "Updated", "OperationModeChanged", [
            sampled(1500.0, "Energy.Active.Import.Register"), sampled(2700.0, "Energy.Active.Export.Register"),
            sampled(-1200.0, "Energy.Active.Net"), sampled(-7000.0, "Power.Active.Setpoint", "W"),
            sampled(7000.0, "Power.Active.Export", "W"), sampled(35, "SoC", "Percent")],
            info={"operationMode": "CentralSetpoint"}))
        await p.call("MeterValues", {"evseId": 0, "meterValue": [{"timestamp": NOW, "sampledValue": [
            sampled(50.0, "Frequency", "Hz", location="Upstream")]}]})
        await p.call("NotifyEvent", {"generatedAt": NOW, "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": NOW, "trigger": "Delta", "actualValue": "true", "eventNotificationType":
                "HardWiredNotification", "severity": 2, "component": {"name": "V2XChargingCtrlr"},
            "variable": {"name": "Enabled"}}]})
        await p.call("NotifyPriorityCharging", {"transactionId": "tx-21", "activated": True})
        assert (await p.call("DataTransfer", {"vendorId": "org.example"}))["status"] == "UnknownVendorId"
        await p.call("TransactionEvent", event(2, "Ended", "EVDeparted", [
            sampled(1600.0, "Energy.Active.Import.Register"), sampled(4200.0, "Energy.Active.Export.Register"),
            sampled(-2600.0, "Energy.Active.Net")], info={"stoppedReason": "EVDisconnected"}))
        async with api_client(csms, "viewer") as api:
            tx = (await api.get("/api/transactions/tx-21")).json()
            needs = (await api.get("/api/stations/CS1/charging-needs")).json()
    assert tx["energyImportWh"] == 600.0 and tx["energyExportWh"] == 4000.0  # 1600-1000, 4200-200
    v2x = tx["v2x"]
    assert v2x["operationMode"] == "CentralSetpoint" and v2x["energyNetWh"] == -3400.0  # -2600 - 800
    assert v2x["latest"]["Power.Active.Setpoint"]["value"] == -7000.0 and v2x["latest"]["SoC"]["value"] == 35
    assert [n["transactionId"] for n in needs] == ["tx-21"] and v2x["chargingNeeds"][0]["id"] == needs[0]["id"]
    n = needs[0]
    assert (n["requestedEnergyTransfer"], n["controlMode"], n["mobilityNeedsMode"]) == ("DC_BPT", "DynamicControl",
                                                                                        "EVCC_SECC")
    assert n["availableEnergyTransfer"] == ["DC", "DC_BPT"] and n["departureTime"] == "2026-03-01T18:00:00Z"
    assert n["v2xChargingParameters"]["maxDischargePower"] == 20000.0
    assert n["evEnergyOffer"]["evPowerSchedule"]["evPowerScheduleEntries"][0]["power"] == -7000.0


async def test_v2x_commands_through_the_api(tmp_path: Path) -> None:
    """A profile breaking a V2X rule is refused 422 with its rule before anything is sent; a good one goes out as
    written; the setpoint shortcut sends a Dynamic CentralSetpoint TxProfile, then UpdateDynamicSchedule; the
    station's PullDynamicScheduleUpdate gets the stored values (also ones kept without a push); allowed energy
    transfer is kept with the transaction; AFRRSignal goes out; a viewer cannot command."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, peer(csms, ["ocpp2.1"]) as p:
        await p.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        await p.call("TransactionEvent", event(0, "Started", "CablePluggedIn", [], evse={"id": 1, "connectorId": 1}))
        async with api_client(csms, "operator") as api, api_client(csms, "viewer") as viewer:
            bad = {"evseId": 1, "chargingProfile": {
                "id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                "transactionId": "tx-21", "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                                               "chargingSchedulePeriod": [
                    {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -9000.0,
                     "dischargeLimit": -5000.0}]}]}}
            r = await api.post("/api/stations/CS1/set-charging-profile", json=bad)
            assert r.status_code == 422 and r.json()["rule"] == "V2X.05" and r.json()["reasonCode"] == \
                "InvalidSchedule"
            assert r.json()["stationWouldAnswer"]["status"] == "Rejected"
            wrong_tx = json.loads(json.dumps(bad).replace("-9000.0", "-4000.0").replace("tx-21", "tx-99"))
            r = await api.post("/api/stations/CS1/set-charging-profile", json=wrong_tx)
            assert r.status_code == 422 and r.json()["reasonCode"] == "TxNotFound"
            good = json.loads(json.dumps(bad).replace("-9000.0", "-4000.0"))
            good["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(
                {"setpoint_L2": -1000.0, "dischargeLimit_L2": -2000.0, "setpoint_L3": -1000.0})
            r = await api.post("/api/stations/CS1/set-charging-profile", json=good)
            assert r.status_code == 200 and r.json()["response"] == {"status": "Accepted"}
            assert [f[2] for f in p.received] == ["SetChargingProfile"] and p.received[0][3] == good
            assert (await viewer.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": 1.0})).status_code == 403

            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0,
                                                                           "dischargeLimit": -11000.0})
            first = r.json()
            assert r.status_code == 200 and first["action"] == "SetChargingProfile", first
            sent = p.received[-1][3]["chargingProfile"]
            assert sent["chargingProfileKind"] == "Dynamic" and sent["transactionId"] == "tx-21"
            assert sent["chargingSchedule"][0]["chargingSchedulePeriod"][0] == {
                "startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -7000.0, "dischargeLimit": -11000.0}
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -9000.0})
            assert r.json()["action"] == "UpdateDynamicSchedule" and p.received[-1][2] == "UpdateDynamicSchedule"
            assert p.received[-1][3] == {"chargingProfileId": 21001, "scheduleUpdate": {"setpoint": -9000.0}}
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -12000.0})
            assert r.status_code == 422 and r.json()["rule"] == "V2X.05"  # beyond the profile's dischargeLimit
            pulled = await p.call("PullDynamicScheduleUpdate", {"chargingProfileId": 21001})
            assert pulled == {"status": "Accepted", "scheduleUpdate": {"setpoint": -9000.0, "dischargeLimit": -11000.0}}
            r = await api.post("/api/stations/CS1/update-dynamic-schedule", json={
                "chargingProfileId": 21001, "scheduleUpdate": {"setpoint": 3000.0}, "push": False})
            assert r.status_code == 200 and p.received[-1][3]["scheduleUpdate"] == {"setpoint": -9000.0}
            pulled = await p.call("PullDynamicScheduleUpdate", {"chargingProfileId": 21001})
            assert pulled["scheduleUpdate"]["setpoint"] == 3000.0
            unknown = await p.call("PullDynamicScheduleUpdate", {"chargingProfileId": 5})
            assert unknown["status"] == "Rejected" and unknown["statusInfo"]["reasonCode"] == "NotFound"
            dynamic = (await viewer.get("/api/stations/CS1/dynamic-schedules")).json()
            assert dynamic[0]["pulls"] == 2 and dynamic[0]["operationMode"] == "CentralSetpoint"

            r = await api.post("/api/stations/CS1/notify-allowed-energy-transfer",
                               json={"transactionId": "tx-21", "allowedEnergyTransfer": ["DC", "DC_BPT"]})
            assert r.status_code == 200 and p.received[-1][2] == "NotifyAllowedEnergyTransfer"
            r = await api.post("/api/stations/CS1/afrr-signal", json={"signal": -50, "timestamp": NOW})
            assert r.status_code == 200 and p.received[-1][3] == {"timestamp": NOW, "signal": -50}
            tx = (await viewer.get("/api/transactions/tx-21")).json()
            assert tx["v2x"]["allowedEnergyTransfer"] == ["DC", "DC_BPT"]
            actions = [m["action"] for m in tx["messages"] if m["direction"] == "tx"]
            assert {"SetChargingProfile", "UpdateDynamicSchedule", "NotifyAllowedEnergyTransfer"} <= set(actions)


def _signed_value(key: ec.EllipticCurvePrivateKey, kwh: float, *, method: str = "ECDSA-secp256r1-SHA256",
                  report: float | None = None, with_key: bool = False, tamper: bool = False,
                  v201: bool = False) -> dict[str, Any]:
    """An Energy.Active.Import.Register sampled value with its OCMF record (reporting `report` Wh, default the
    signed reading); 2.0.1 requires signingMethod and publicKey (empty when the key is not sent)."""
    payload = {"FV": "1.0", "GS": "SIM-1", "PG": "T1", "RD": [{"TM": "2026-03-01T12:00:00,000+0000 S", "TX": "B",
                                                             "RV": kwh, "RI": "1-b:1.8.0", "RU": "kWh"}]}
    record = ocmf.sign(payload, key, method)
    if tamper:
        record = record.replace(f'"RV":{kwh}', f'"RV":{kwh + 1}')
    signed: dict[str, Any] = {"signedMeterData": base64.b64encode(record.encode()).decode(),
                              "encodingMethod": "OCMF"}
    if with_key:
        signed["publicKey"] = ocmf.public_key_base64(key)
    if v201:
        signed.update({"signingMethod": method, "publicKey": signed.get("publicKey", "")})
    return {"value": kwh * 1000 if report is None else report, "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"}, "signedMeterValue": signed}


async def test_signed_meter_values_are_verified(db_url: str) -> None:
    """OCMF records on secp256r1 and secp384r1: verified with the operator's key ('valid'); a tampered record
    ('invalid'), a reported value that is not the signed reading ('valueMismatch') and another meter's key in the
    message ('keyMismatch') are flagged bad in the API; a key only in the message gives 'validMessageKey'; a key
    from the device model (NotifyReport FiscalMetering.PublicKey) verifies the next station's values."""
    meter = ec.generate_private_key(ec.SECP256R1())
    meter2 = ec.generate_private_key(ec.SECP384R1())
    async with running_csms(db_url, stations={"CS1": PASSWORD, "CS2": PASSWORD}) as csms:
        async with api_client(csms, "admin") as admin:
            r = await admin.put("/api/stations/CS1/meter-keys", json={"publicKey": ocmf.public_key_base64(meter)})
            assert r.status_code == 200 and r.json()["publicKey"] == ocmf.public_key_hex(meter)
            assert (await admin.put("/api/stations/CS1/meter-keys", json={"publicKey": "nope"})).status_code == 422
        async with peer(csms, ["ocpp2.1"]) as p:
            await p.call("TransactionEvent", event(0, "Started", "CablePluggedIn", [
                _signed_value(meter, 1.5), _signed_value(meter, 1.6, tamper=True),
                _signed_value(meter, 1.7, report=1800.0),
                _signed_value(meter2, 1.8, method="ECDSA-secp384r1-SHA256", with_key=True)],
                evse={"id": 1, "connectorId": 1}))
        async with peer(csms, ["ocpp2.0.1"], "CS2") as p2:
            await p2.call("NotifyReport", {"requestId": 1, "generatedAt": NOW, "seqNo": 0, "reportData": [{
                "component": {"name": "FiscalMetering", "evse": {"id": 1}}, "variable": {"name": "PublicKey"},
                "variableAttribute": [{"type": "Actual", "value": ocmf.public_key_hex(meter2)}]}]})
            tx2 = event(0, "Started", "CablePluggedIn", [
                _signed_value(meter2, 2.0, method="ECDSA-secp384r1-SHA256", v201=True)],
                        evse={"id": 1, "connectorId": 1})
            tx2["transactionInfo"]["transactionId"] = "tx-cs2"
            await p2.call("TransactionEvent", tx2)
            await p2.call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [
                _signed_value(meter, 2.1, with_key=True, v201=True)]}]})
        async with api_client(csms, "viewer") as api:
            tx = (await api.get("/api/transactions/tx-21")).json()
            tx2 = (await api.get("/api/transactions/tx-cs2")).json()
            values2 = (await api.get("/api/stations/CS2/meter-values")).json()
            keys2 = (await api.get("/api/stations/CS2/meter-keys")).json()
    verdicts = [(m["signature"], m["signatureBad"]) for m in tx["meterValues"]]
    assert verdicts == [("valid", False), ("invalid", True), ("valueMismatch", True), ("keyMismatch", True)]
    assert tx["v2x"]["badSignatures"] == 3 and tx["v2x"]["signatures"]["valid"] == 1
    assert keys2[0]["source"] == "deviceModel" and tx2["meterValues"][0]["signature"] == "valid"
    # CS2's EVSE 1 key is meter2's; a record of `meter` carrying its own key in the message does not match it
    assert [m["signature"] for m in values2 if m["transactionId"] is None] == ["keyMismatch"]


async def test_dynamic_updates_are_written_in_one_batched_operation(db_url: str) -> None:
    """Setpoints' UpdateDynamicSchedule values and their message-log rows go in one store operation whose batch form
    writes a run of them with one UPDATE and one INSERT; a profile without a stored row is stored all the same."""
    store = Store(db_url)
    store.add_station("CS1", PASSWORD)
    worker = StoreWorker(store)
    try:
        for pid in (21001, 21002):
            await worker.run(v2x_state.op_put_dynamic, "CS1", pid, {"setpoint": -1000.0}, pid - 21000, f"tx-{pid}",
                             "CentralSetpoint", "W")
        entry = ("CS1", "tx", "UpdateDynamicSchedule", {"chargingProfileId": 21001,
                 "scheduleUpdate": {"setpoint": -5000.0}}, {"status": "Accepted"}, "tx-21001", "ab12")
        await asyncio.gather(*(worker.run(v2x_state.op_dynamic_pushed, "CS1", pid, {"setpoint": value}, e)
                               for pid, value, e in ((21001, -5000.0, entry), (21002, -6000.0, None),
                                                     (21009, -7000.0, None))))
        got = {pid: store.run(v2x_state.op_get_dynamic, "CS1", pid) for pid in (21001, 21002, 21009)}
        assert [got[p]["scheduleUpdate"]["setpoint"] for p in (21001, 21002, 21009)] == [-5000.0, -6000.0, -7000.0]
        assert (got[21001]["transactionId"], got[21001]["operationMode"]) == ("tx-21001", "CentralSetpoint")
        logged = store.messages(station_id="CS1")
        assert [(m["action"], m["response"], m["transactionId"], m["sessionId"]) for m in logged] == [
            ("UpdateDynamicSchedule", {"status": "Accepted"}, "tx-21001", "AB12")]
    finally:
        worker.close()
        store.close()
