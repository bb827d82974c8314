"""Our CSMS serving OCPP 1.6J on the endpoint that serves 2.0.1 and 2.1: the `ocpp` package's 1.6 ChargePoint as the
station (Core, the status notifications, the security whitepaper's messages), every CSMS-initiated 1.6 command the
API offers, three versions connected at once, and malformed 1.6 input answered with 1.6's CallError spellings."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers.csms import api_client, csms_url, running_csms
from helpers.node_peer import node_peers_dir, script
from helpers.ocpp import make_pki, refused_with
from helpers.ocsp import start_responder
from helpers.peers import ANSWERS_16, their_station, their_station16
from ocpp.v16 import call
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from v2gstack import exi
from v2gstack.csms.ocpp16 import COMMANDS_16
from v2gstack.csms.store import Store
from v2gstack.iso15118.messages import for_protocol
from v2gstack.iso15118.model import Step
from v2gstack.iso15118.pnc import installation_request
from v2gstack.ocpp import Router, StationClient, client_context, server_context
from v2gstack.ocpp.auth import basic_auth_header
from v2gstack.pki.ocsp_data import ocsp_request_data
from v2gstack.pki.profiles import Kind

pytestmark = pytest.mark.timeout(90)
PASSWORD = "their-station-password"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _mv(*values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"timestamp": _now(), "sampled_value": list(values)}]


# A request payload for every CSMS-initiated 1.6 command of the API (camelCase, as an operator sends it).
COMMAND_PAYLOADS: dict[str, dict[str, Any]] = {
    "request-start": {"idTag": "PKG-TAG-1", "connectorId": 1},
    "request-stop": {"transactionId": 1},
    "reset": {"type": "Soft"},
    "get-configuration": {"key": ["HeartbeatInterval"]},
    "change-configuration": {"key": "HeartbeatInterval", "value": "120"},
    "trigger-message": {"requestedMessage": "StatusNotification", "connectorId": 1},
    "extended-trigger-message": {"requestedMessage": "SignChargePointCertificate"},
    "change-availability": {"connectorId": 1, "type": "Inoperative"},
    "unlock-connector": {"connectorId": 1},
    "set-charging-profile": {"connectorId": 0, "csChargingProfiles": {
        "chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "startSchedule": "2026-12-07T00:00:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}},
    "clear-charging-profile": {"id": 7},
    "get-composite-schedule": {"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"},
    "data-transfer": {"vendorId": "com.example", "messageId": "Ping", "data": "x"},
    "clear-cache": {},
    "send-local-list": {"listVersion": 3, "updateType": "Full",
                        "localAuthorizationList": [{"idTag": "LOCAL-1", "idTagInfo": {"status": "Accepted"}}]},
    "get-local-list-version": {},
    "reserve-now": {"connectorId": 1, "expiryDate": "2026-12-08T00:00:00Z", "idTag": "PKG-TAG-1",
                    "reservationId": 11},
    "cancel-reservation": {"reservationId": 11},
    "update-firmware": {"location": "https://fw.example/fw.bin", "retrieveDate": "2026-12-07T01:00:00Z"},
    "signed-update-firmware": {"requestId": 5, "firmware": {
        "location": "https://fw.example/fw.bin", "retrieveDateTime": "2026-12-07T01:00:00Z",
        "signingCertificate": "-----BEGIN CERTIFICATE-----x", "signature": "c2ln"}},
    "get-diagnostics": {"location": "ftp://diag.example/"},
    "get-log": {"logType": "SecurityLog", "requestId": 6, "log": {"remoteLocation": "https://logs.example/"}},
    "get-installed-certificate-ids": {"certificateType": "CentralSystemRootCertificate"},
    "install-certificate": {"certificateType": "CentralSystemRootCertificate",
                            "certificate": "-----BEGIN CERTIFICATE-----x"},
    "delete-certificate": {"certificateHashData": {"hashAlgorithm": "SHA256", "issuerNameHash": "aa",
                                                   "issuerKeyHash": "bb", "serialNumber": "01"}},
    "certificate-signed": {"certificateChain": "-----BEGIN CERTIFICATE-----x"},
}


async def test_ocpp_package_16_station_against_our_csms(tmp_path: Path) -> None:
    """Boot, heartbeat, status per connector with 1.6 error codes, authorize, a transaction with CSMS-assigned integer
    id and 1.6 meter values (kWh, kW, phases, SoC, temperature), the notifications and security messages; the API
    shows it all as one transaction of version 1.6."""
    tag = {"idToken": "PKG-TAG-1", "type": "ISO14443"}
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"CS16": PASSWORD},
                            tokens=[tag, {"idToken": "BLOCKED-1", "type": "ISO14443", "status": "Blocked"}]) as csms, \
            their_station16(csms_url(csms), "CS16", PASSWORD) as cp:
        assert cp._connection.subprotocol == "ocpp1.6"
        boot = await cp.call(call.BootNotification(charge_point_vendor="pkg", charge_point_model="m16",
                                                   charge_point_serial_number="SN-16", firmware_version="1.2.3"),
                             suppress=False)
        assert boot.status == "Accepted" and boot.interval == 300
        assert (await cp.call(call.Heartbeat(), suppress=False)).current_time
        await cp.call(call.StatusNotification(connector_id=0, error_code="NoError", status="Available"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted",
                                              info="RCD tripped", vendor_error_code="E42", timestamp=_now()))
        await cp.call(call.StatusNotification(connector_id=2, error_code="NoError", status="Preparing"))
        assert (await cp.call(call.Authorize(id_tag="PKG-TAG-1"), suppress=False)).id_tag_info["status"] == "Accepted"
        assert (await cp.call(call.Authorize(id_tag="NOPE"), suppress=False)).id_tag_info["status"] == "Invalid"
        assert (await cp.call(call.Authorize(id_tag="BLOCKED-1"), suppress=False)).id_tag_info["status"] == "Blocked"
        start = call.StartTransaction(connector_id=2, id_tag="PKG-TAG-1", meter_start=1000, timestamp=_now())
        started = await cp.call(start, suppress=False)
        assert started.id_tag_info["status"] == "Accepted" and isinstance(started.transaction_id, int)
        tx = started.transaction_id
        again = await cp.call(start, suppress=False)  # a replay from the station's queue: the same id, stored once
        assert again.transaction_id == tx
        second = await cp.call(call.StartTransaction(connector_id=1, id_tag="PKG-TAG-1", meter_start=0,
                                                     timestamp=_now()), suppress=False)
        assert second.transaction_id != tx
        await cp.call(call.MeterValues(connector_id=2, transaction_id=tx, meter_value=_mv(
            {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh",
             "context": "Sample.Periodic", "location": "Outlet"},
            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "16.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
            {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"},
            {"value": "31.5", "measurand": "Temperature", "unit": "Celsius", "location": "Body"})), suppress=False)
        await cp.call(call.MeterValues(connector_id=0, meter_value=_mv(
            {"value": "230.1", "measurand": "Voltage", "unit": "V", "phase": "L1-N"})), suppress=False)
        for note in (call.FirmwareStatusNotification(status="Downloaded"),
                     call.DiagnosticsStatusNotification(status="Uploaded"),
                     call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=_now(), tech_info="boot"),
                     call.LogStatusNotification(status="Uploaded", request_id=6),
                     call.SignedFirmwareStatusNotification(status="SignatureVerified", request_id=5)):
            await cp.call(note, suppress=False)
        stop = call.StopTransaction(meter_stop=4000, timestamp=_now(), transaction_id=tx, reason="EVDisconnected",
                                    id_tag="PKG-TAG-1", transaction_data=_mv(
                                        {"value": "4.0", "measurand": "Energy.Active.Import.Register",
                                         "unit": "kWh", "context": "Transaction.End"}))
        stopped = await cp.call(stop, suppress=False)
        assert stopped.id_tag_info["status"] == "Accepted"
        assert (await cp.call(stop, suppress=False)).id_tag_info["status"] == "Accepted"  # replay: acknowledged

        st = csms.store.station("CS16")
        assert (st.vendor, st.model, st.serial_number, st.firmware, st.ocpp_version) == (
            "pkg", "m16", "SN-16", "1.2.3", "1.6")
        assert st.connector_status == {"0/0": "Available", "1/1": "Faulted", "2/1": "Preparing"}
        fault = dict(st.connector_errors["1"])
        assert fault.pop("timestamp") and fault == {"errorCode": "GroundFailure", "info": "RCD tripped",
                                                    "vendorErrorCode": "E42"}
        record = csms.store.transaction("CS16", str(tx))
        assert record["ocppVersion"] == "1.6" and record["state"] == "Ended"
        assert record["stoppedReason"] == "EVDisconnected" and record["evseId"] == 2
        assert [e["eventType"] for e in record["events"]] == ["Started", "Updated", "Ended"]
        values = {(m["measurand"], m["context"]): (m["value"], m["unit"]) for m in record["meterValues"]}
        assert values[("Energy.Active.Import.Register", "Sample.Periodic")] == (1500.0, "Wh")
        assert values[("Power.Active.Import", None)] == (7400.0, "W")
        assert values[("SoC", None)] == (55.0, "Percent")
        assert values[("Temperature", None)] == (31.5, "Celsius")
        ends = sorted(m["value"] for m in record["meterValues"] if m["context"] == "Transaction.End")
        assert ends == [4000.0, 4000.0]  # transactionData in kWh, and meterStop in Wh
        assert record["energyImportWh"] == 3000.0  # meterStop 4000 - meterStart 1000
        main = csms.store.meter_values("CS16", evse_id=0)
        assert [(m["measurand"], m["phase"], m["value"]) for m in main] == [("Voltage", "L1-N", 230.1)]
        logged = {m["action"] for m in csms.store.messages(station_id="CS16")}
        assert {"SecurityEventNotification", "LogStatusNotification", "SignedFirmwareStatusNotification",
                "FirmwareStatusNotification", "DiagnosticsStatusNotification"} <= logged

        async with api_client(csms) as api:
            r = await api.get("/api/stations/CS16/commands")
            assert r.status_code == 200 and r.json()["ocppVersion"] == "1.6"
            assert r.json()["commands"] == COMMANDS_16 and "pnc-InstallCertificate" in r.json()["pnc"]
            r = await api.get(f"/api/transactions/{tx}", params={"station": "CS16"})
            assert r.json()["ocppVersion"] == "1.6" and r.json()["transactionId"] == str(tx)
            # every CSMS-initiated 1.6 command the API offers, validated by the station's own schemas
            for command, payload in COMMAND_PAYLOADS.items():
                r = await api.post(f"/api/stations/CS16/{command}", json=payload)
                assert r.status_code == 200, (command, r.text)
                assert r.json()["action"] == COMMANDS_16[command]
            # a 2.x payload for a 1.6 command is refused before anything is sent
            r = await api.post("/api/stations/CS16/request-start",
                               json={"idToken": {"idToken": "X", "type": "ISO14443"}, "remoteStartId": 1})
            assert r.status_code == 422
        assert {a for a, _ in cp.seen} == set(COMMANDS_16.values()) == set(ANSWERS_16)


async def test_one_csms_serves_16_201_and_21_at_once(tmp_path: Path) -> None:
    """Three stations, one per version, on the one endpoint; the API sends each a reset in its version's form and
    shows each version."""
    stations = {"S16": PASSWORD, "S201": PASSWORD, "S21": PASSWORD}
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations=stations) as csms, \
            their_station16(csms_url(csms), "S16", PASSWORD) as cp16, \
            their_station(csms_url(csms), "S201", PASSWORD, version="2.0.1") as cp201, \
            their_station(csms_url(csms), "S21", PASSWORD, version="2.1") as cp21:
        assert (cp16._connection.subprotocol, cp201.subprotocol, cp21.subprotocol) == (
            "ocpp1.6", "ocpp2.0.1", "ocpp2.1")
        await cp16.call(call.BootNotification(charge_point_vendor="v", charge_point_model="m"), suppress=False)
        for cp, module in ((cp201, call201), (cp21, call21)):
            await cp.call(module.BootNotification(charging_station={"model": "m", "vendor_name": "v"},
                                                  reason="PowerUp"), suppress=False)
        started = await cp16.call(call.StartTransaction(connector_id=1, id_tag="04A1B2C3", meter_start=0,
                                                        timestamp=_now()), suppress=False)
        async with api_client(csms) as api:
            listed = {s["id"]: s["ocppVersion"] for s in (await api.get("/api/stations")).json()}
            assert listed == {"S16": "1.6", "S201": "2.0.1", "S21": "2.1"}
            r16 = await api.post("/api/stations/S16/request-stop", json={"transactionId": started.transaction_id})
            r201 = await api.post("/api/stations/S201/request-stop", json={"transactionId": "tx-201"})
            r21 = await api.post("/api/stations/S21/request-stop", json={"transactionId": "tx-21"})
            assert (r16.json()["action"], r201.json()["action"], r21.json()["action"]) == (
                "RemoteStopTransaction", "RequestStopTransaction", "RequestStopTransaction")
            assert all(r.json()["response"]["status"] == "Accepted" for r in (r16, r201, r21))
        assert cp16.seen == [("RemoteStopTransaction", {"transaction_id": started.transaction_id})]
        assert cp201.stops == ["tx-201"] and cp21.stops == ["tx-21"]


async def _raw(url: str, station_id: str) -> Any:
    return connect(f"{url}/{station_id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                   additional_headers={"Authorization": basic_auth_header(station_id, PASSWORD)}, proxy=None)


async def test_bad_16_input_gets_16_answers(tmp_path: Path) -> None:
    """Malformed 1.6 frames get 1.6's CallError spellings; DataTransfer with an unknown vendor or messageId and PnC
    payloads that do not fit the 2.0.1 schemas get their DataTransfer statuses; the connection keeps serving."""
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"CS16": PASSWORD}) as csms, \
            await _raw(csms_url(csms), "CS16") as ws:
        async def exchange(text: str) -> list[Any]:
            await ws.send(text)
            return json.loads(await ws.recv())

        assert (await exchange("[2, \"a\", \"Heartbeat\""))[2] == "FormationViolation"
        missing = await exchange(json.dumps([2, "b", "BootNotification", {"chargePointVendor": "v"}]))
        assert missing[:3] == [4, "b", "OccurenceConstraintViolation"]
        extra = await exchange(json.dumps([2, "c", "Heartbeat", {"surprise": 1}]))
        assert extra[:3] == [4, "c", "FormationViolation"]
        wrong_type = await exchange(json.dumps([2, "d", "Authorize", {"idTag": 5}]))
        assert wrong_type[:3] == [4, "d", "TypeConstraintViolation"]
        too_long = await exchange(json.dumps([2, "e", "Authorize", {"idTag": "x" * 21}]))
        assert too_long[:3] == [4, "e", "PropertyConstraintViolation"]
        two_x = await exchange(json.dumps([2, "f", "TransactionEvent", {}]))  # a 2.x action on a 1.6 connection
        assert two_x[:3] == [4, "f", "NotImplemented"]
        not_a_number = await exchange(json.dumps([2, "g", "MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": _now(), "sampledValue": [{"value": "lots"}]}]}]))
        assert not_a_number[:3] == [4, "g", "PropertyConstraintViolation"]

        async def transfer(mid: str, vendor: str, message: str | None, data: str | None) -> dict[str, Any]:
            p: dict[str, Any] = {"vendorId": vendor}
            if message is not None:
                p["messageId"] = message
            if data is not None:
                p["data"] = data
            answer = await exchange(json.dumps([2, mid, "DataTransfer", p]))
            assert answer[0] == 3, answer
            return answer[2]

        assert (await transfer("h", "com.unknown", "X", "y"))["status"] == "UnknownVendorId"
        pnc = "org.openchargealliance.iso15118pnc"
        assert (await transfer("i", pnc, "Nonsense", "{}"))["status"] == "UnknownMessageId"
        not_json = await transfer("j", pnc, "Authorize", "{idToken")
        assert not_json["status"] == "Rejected"
        assert json.loads(not_json["data"])["statusInfo"]["reasonCode"] == "FormatViolation"
        bad_schema = await transfer("k", pnc, "Authorize", json.dumps({"idToken": {"idToken": "E1"}}))
        assert bad_schema["status"] == "Rejected"
        info = json.loads(bad_schema["data"])["statusInfo"]
        assert info["reasonCode"] == "OccurrenceViolation" and "type" in info["additionalInfo"]
        bad_enum = await transfer("l", pnc, "Get15118EVCertificate", json.dumps(
            {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Renew", "exiRequest": "AA=="}))
        assert bad_enum["status"] == "Rejected"
        assert json.loads(bad_enum["data"])["statusInfo"]["reasonCode"] == "PropertyViolation"
        assert (await exchange(json.dumps([2, "m", "Heartbeat", {}])))[0] == 3


async def test_plug_and_charge_over_data_transfer_matches_201(tmp_path: Path) -> None:
    """The application note's station messages (Authorize with the contract chain and OCSP, Get15118EVCertificate,
    GetCertificateStatus, SignCertificate -> CertificateSigned wrapped) get the answers a 2.0.1 station gets from the
    same CSMS; a revoked contract is CertificateRevoked on both; CSMS -> station PnC messages go through the API."""
    pki, responder, _url, server = await start_responder(tmp_path / "pki")
    contract = pki.cert(Kind.CONTRACT)
    emaid = contract.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                    for c in [contract, *pki.intermediates(Kind.CONTRACT)])
    pnc = "org.openchargealliance.iso15118pnc"
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    store.add_trust_anchor("MORootCertificate", pki.cert(Kind.MO_ROOT).public_bytes(serialization.Encoding.PEM))
    store.close()
    try:
        async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"P16": PASSWORD, "P201": PASSWORD},
                                pki_dir=str(tmp_path / "pki"), ocsp_allow=("127.0.0.1",),
                                ocsp_cache_size=0) as csms, \
                their_station16(csms_url(csms), "P16", PASSWORD) as cp16, \
                their_station(csms_url(csms), "P201", PASSWORD) as cp201:
            signed: list[dict[str, Any]] = []

            async def station_side(vendor: str, message: str | None, data: str | None) -> tuple[str, str]:
                assert vendor == pnc
                signed.append({"messageId": message, **json.loads(data or "{}")})
                return "Accepted", json.dumps({"status": "Accepted"})

            cp16.data_transfer = station_side

            async def wrapped(message: str, payload: dict[str, Any]) -> dict[str, Any]:
                answer = await cp16.call(call.DataTransfer(vendor_id=pnc, message_id=message,
                                                           data=json.dumps(payload)), suppress=False)
                assert answer.status == "Accepted", answer
                return json.loads(answer.data)

            async def direct(payload: dict[str, Any]) -> dict[str, Any]:
                answer = await cp201.call(call201.Authorize(**snake(payload)), suppress=False)
                return {"idTokenInfo": answer.id_token_info, "certificateStatus": answer.certificate_status}

            authorize = {"idToken": {"idToken": emaid, "type": "eMAID"}, "certificate": chain}
            good16 = await wrapped("Authorize", authorize)
            assert good16 == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
            assert good16 == await direct(authorize)
            responder.revocations.revoke(contract, pki.cert(Kind.MO_SUB_CA2), "key_compromise")
            revoked16 = await wrapped("Authorize", authorize)
            assert revoked16 == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertificateRevoked"}
            assert revoked16 == await direct(authorize)

            status = await wrapped("GetCertificateStatus", {"ocspRequestData": dict(ocsp_request_data(
                pki.cert(Kind.SECC), pki.cert(Kind.CPO_SUB_CA2)))})
            assert status["status"] == "Accepted" and base64.b64decode(status["ocspResult"])

            body, sig = installation_request(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key,
                                             [pki.cert(Kind.V2G_ROOT)])
            exi_request = exi.encode("iso2", for_protocol("iso2").request(
                "0011223344556677", Step.CERTIFICATE_INSTALLATION, body, sig))
            installed = await wrapped("Get15118EVCertificate", {
                "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                "exiRequest": base64.b64encode(exi_request).decode()})
            assert installed["status"] == "Accepted"
            res = exi.decode("iso2", base64.b64decode(installed["exiResponse"]))
            assert res["V2G_Message"]["Body"]["CertificateInstallationRes"]["ResponseCode"] == "OK"

            key = ec.generate_private_key(ec.SECP256R1())
            csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, "DE*V2G*E0016*1"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Station maker")])).sign(key, hashes.SHA256()))
            assert await wrapped("SignCertificate", {
                "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                "certificateType": "V2GCertificate"}) == {"status": "Accepted"}
            for _ in range(200):
                if signed:
                    break
                await asyncio.sleep(0.02)
            [certificate_signed] = signed
            assert certificate_signed["messageId"] == "CertificateSigned"
            assert certificate_signed["certificateType"] == "V2GCertificate"
            leaf = x509.load_pem_x509_certificates(certificate_signed["certificateChain"].encode())[0]
            assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DE*V2G*E0016*1"

            async with api_client(csms) as api:
                root = pki.cert(Kind.V2G_ROOT).public_bytes(serialization.Encoding.PEM).decode()
                r = await api.post("/api/stations/P16/pnc-InstallCertificate",
                                   json={"certificateType": "V2GRootCertificate", "certificate": root})
                assert r.status_code == 200 and r.json()["response"] == {"status": "Accepted"}
                r = await api.post("/api/stations/P16/pnc-InstallCertificate",
                                   json={"certificateType": "NoSuchRoot", "certificate": root})
                assert r.status_code == 422  # checked against the 2.0.1 schema before it is sent
                r = await api.post("/api/stations/P16/pnc-Authorize", json=authorize)
                assert r.status_code == 404  # a station -> CSMS message
            assert signed[-1]["messageId"] == "InstallCertificate" and len(signed) == 2
    finally:
        server.close()  # type: ignore[attr-defined]


def snake(payload: dict[str, Any]) -> dict[str, Any]:
    """A 2.0.1 payload's top-level keys in the `ocpp` package's snake_case."""
    return {"id_token": payload["idToken"], "certificate": payload["certificate"]}


async def test_ocpp_rpc_strict_16_station_against_our_csms(tmp_path: Path) -> None:
    """ocpp-rpc (npm) in strict mode as a 1.6 charge point: its run, then every CSMS-initiated 1.6 command of the API
    (request-stop last, which makes it stop the transaction); each message passes its schema checks both ways."""
    peers = node_peers_dir()
    if peers is None:
        pytest.skip("node/npm not available or the npm registry is unreachable: cannot install ocpp-rpc")
    password = "rpc-station-password-16"
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"RPC16": password},
                            tokens=[{"idToken": "RPC-TAG-1", "type": "ISO14443"}]) as csms, \
            api_client(csms) as api:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node", str(script("ocpp_rpc_station16.js")), csms_url(csms), "RPC16", password,
            cwd=peers, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(peers / "node_modules")})
        steps: list[dict[str, Any]] = []
        try:
            assert proc.stdout is not None and proc.stderr is not None
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, f"ocpp-rpc station ended early: {steps} {(await proc.stderr.read()).decode()}"
                step = json.loads(line)
                steps.append(step)
                assert step["step"] != "error", step
                if step["step"] == "ready":
                    tx = step["data"]["transactionId"]
                    for command, payload in [*((c, p) for c, p in COMMAND_PAYLOADS.items() if c != "request-stop"),
                                             ("request-stop", {"transactionId": tx})]:
                        r = await api.post(f"/api/stations/RPC16/{command}", json=payload)
                        assert r.status_code == 200, (command, r.text)
                if step["step"] == "done":
                    break
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
    by_step = {s["step"]: s["data"] for s in steps}
    assert by_step["BootNotification"]["status"] == "Accepted"
    assert by_step["Authorize"]["idTagInfo"]["status"] == "Accepted"
    assert set(COMMANDS_16.values()) <= set(by_step)  # every command reached it and passed its strict checks
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    try:
        got = store.transaction("RPC16", str(tx))
        assert got is not None and got["ocppVersion"] == "1.6" and got["stoppedReason"] == "Remote"
        assert [e["eventType"] for e in got["events"]] == ["Started", "Updated", "Ended"]
        assert got["energyImportWh"] == 2000.0  # meterStop 2100 - meterStart 100
    finally:
        store.close()


async def test_security_profiles_2_and_3_for_16_stations(tmp_path: Path) -> None:
    """A 1.6 station is authenticated like a 2.x one: TLS + Basic auth (profile 2), TLS client certificate whose CN
    is the station id (profile 3); wrong credentials are refused the same way."""
    pki = make_pki()

    async def heartbeat(client: StationClient) -> None:
        conn = await client.connect()
        try:
            assert conn.version.value == "1.6" and "currentTime" in await conn.call("Heartbeat", {})
        finally:
            await conn.close()

    async with running_csms(f"sqlite:///{tmp_path / 'p2.db'}", stations={"CS1": PASSWORD}, security_profile=2,
                            ssl=server_context(pki.server_cert, pki.server_key)) as csms:
        url, tls = f"wss://127.0.0.1:{csms.port}/ocpp", client_context(pki.root)
        await heartbeat(StationClient(url, "CS1", Router(), password=PASSWORD, ssl=tls, versions=["1.6"]))
        assert await refused_with(StationClient(url, "CS1", Router(), password="wrong-password-123", ssl=tls,
                                                versions=["1.6"])) == 401
    async with running_csms(f"sqlite:///{tmp_path / 'p3.db'}", stations={"CS001": None}, security_profile=3,
                            ssl=server_context(pki.server_cert, pki.server_key, client_ca=pki.root)) as csms:
        url = f"wss://127.0.0.1:{csms.port}/ocpp"
        await heartbeat(StationClient(url, "CS001", Router(), versions=["1.6"], ssl=client_context(
            pki.root, certfile=pki.cs1_cert, keyfile=pki.cs1_key)))
        cs2 = client_context(pki.root, certfile=pki.cs2_cert, keyfile=pki.cs2_key)
        assert await refused_with(StationClient(url, "CS001", Router(), ssl=cs2, versions=["1.6"])) == 403
