"""Every 2.0.1 message a station may send gets a schema-valid answer from our CSMS (the engine would turn an invalid
handler result into InternalError), and every malformed frame its exact CallError, while the connection and the other
stations keep working."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import MALFORMED, RawPeer, raw_peer

from v2gstack import exi

NOW = "2026-11-24T10:00:00Z"
EVSE_ID_MSG = {"V2G_Message": {"Header": {"SessionID": "0A0B0C0D0E0F1011"},
                               "Body": {"SessionStopReq": {"ChargingSession": "Terminate"}}}}


def _messages() -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(action, payload, expected answer or None for 'any valid answer')."""
    tx = {"transactionId": "conf-tx-1", "chargingState": "Charging"}
    mv = [{"timestamp": NOW, "sampledValue": [{"value": 10.5}]}]
    mirror = base64.b64encode(exi.encode("iso2", EVSE_ID_MSG)).decode()
    return [
        ("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}, None),
        ("Heartbeat", {}, None),
        ("StatusNotification", {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}, {}),
        ("Authorize", {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}},
         {"idTokenInfo": {"status": "Accepted"}}),
        ("TransactionEvent", {"eventType": "Started", "timestamp": NOW, "triggerReason": "CablePluggedIn",
                              "seqNo": 0, "transactionInfo": tx, "evse": {"id": 1, "connectorId": 1},
                              "meterValue": mv}, {}),
        ("TransactionEvent", {"eventType": "Started", "timestamp": NOW, "triggerReason": "CablePluggedIn",
                              "seqNo": 0, "transactionInfo": tx, "evse": {"id": 1, "connectorId": 1},
                              "meterValue": mv}, {}),  # a replay: answered, stored once
        ("MeterValues", {"evseId": 1, "meterValue": mv}, {}),
        ("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC",
                                                                  "dcChargingParameters": {"evMaxCurrent": 100,
                                                                                           "evMaxVoltage": 450}}},
         {"status": "Rejected", "statusInfo": {"reasonCode": "NoProfile", "additionalInfo":
                                               "this CSMS sends no profiles for charging needs"}}),  # see below
        ("NotifyEVChargingSchedule", {"timeBase": NOW, "evseId": 1, "chargingSchedule": {
            "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}]}},
         {"status": "Accepted"}),
        ("DataTransfer", {"vendorId": "ISO15118-2", "messageId": "SessionStopReq", "data": f"EXI::{mirror}"},
         {"status": "Accepted"}),
        ("DataTransfer", {"vendorId": "ISO15118-2", "messageId": "X", "data": "EXI::%%%"}, None),
        ("DataTransfer", {"vendorId": "ISO15118-2", "messageId": "X", "data": "EXI::AAAA"}, None),
        ("DataTransfer", {"vendorId": "com.example", "messageId": "X"}, {"status": "UnknownVendorId"}),
        ("NotifyEvent", {"generatedAt": NOW, "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": NOW, "trigger": "Alerting", "actualValue": "x", "eventNotificationType":
            "HardWiredNotification", "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]}, {}),
        ("SecurityEventNotification", {"type": "SettingSystemTime", "timestamp": NOW}, {}),
        ("NotifyReport", {"requestId": 1, "generatedAt": NOW, "seqNo": 0}, {}),
        ("FirmwareStatusNotification", {"status": "Idle"}, {}),
        ("LogStatusNotification", {"status": "Idle"}, {}),
        ("ReportChargingProfiles", {"requestId": 1, "chargingLimitSource": "CSO", "evseId": 1,
                                    "chargingProfile": [{"id": 1, "stackLevel": 0,
                                                         "chargingProfilePurpose": "TxDefaultProfile",
                                                         "chargingProfileKind": "Relative", "chargingSchedule": [{
                                                             "id": 1, "chargingRateUnit": "A",
                                                             "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                         "limit": 16}]}]}]}, {}),
        ("ClearedChargingLimit", {"chargingLimitSource": "EMS"}, {}),
        ("ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": "Expired"}, {}),
        ("SignCertificate", {"csr": "x"}, None),
    ]


async def test_every_station_message_gets_a_valid_answer(tmp_path: Path) -> None:
    """(Automatic profiles for charging needs are off: this peer answers no CALLs; test_csms_ev_needs.py has them.)"""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", needs_profiles=False) as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        for i, (action, payload, expected) in enumerate(_messages()):
            answer = await peer.exchange([2, f"m{i}", action, payload])
            assert answer[0] == 3 and answer[1] == f"m{i}", (action, answer)
            if expected is not None:
                assert answer[2] == expected, (action, answer)
        tx = csms.store.transaction("CS1", "conf-tx-1")
        assert tx is not None and len(tx["events"]) == 1 and len(tx["meterValues"]) == 1
        assert tx["iso15118"]["chargingNeeds"]["requestedEnergyTransfer"] == "DC"
        mirrored = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "DataTransfer"]
        assert [m["payload"]["decoded"]["json"] for m in mirrored] == [EVSE_ID_MSG]
        assert mirrored[0]["sessionId"] == "0A0B0C0D0E0F1011"
        bad = [await peer.exchange([2, f"d{i}", "DataTransfer", p]) for i, p in enumerate([
            {"vendorId": "ISO15118-2", "data": "EXI::%%%"}, {"vendorId": "ISO15118-2", "data": "EXI::AAAA"},
            {"vendorId": "DIN70121", "data": "plain"}])]
        assert [b[2]["status"] for b in bad] == ["Rejected"] * 3
        # the Plug & Charge certificate messages: bad input gets a schema-valid Failed, not an error
        for action, payload in [("Get15118EVCertificate", {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
                                                           "action": "Install", "exiRequest": "AA=="}),
                                ("GetCertificateStatus", {"ocspRequestData": {
                                    "hashAlgorithm": "SHA256", "issuerNameHash": "a", "issuerKeyHash": "b",
                                    "serialNumber": "1", "responderURL": "http://x"}})]:
            answer = await peer.exchange([2, action, action, payload])
            assert answer[:2] == [3, action] and answer[2]["status"] == "Failed", answer


async def _heartbeat(peer: RawPeer, mid: str) -> None:
    answer = await peer.exchange([2, mid, "Heartbeat", {}])
    assert answer[:2] == [3, mid] and "currentTime" in answer[2]


async def test_malformed_frames_get_exact_callerrors(tmp_path: Path) -> None:
    max_size = 4096
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD, "CS2": PASSWORD}) as csms:
        csms.server.max_message_size = max_size  # as the engine tests: frames above it are FormatViolation
        csms.server.ws_max_size = 4 * max_size
        async with raw_peer(csms_url(csms), "CS1", password=PASSWORD) as bad, \
                raw_peer(csms_url(csms), "CS2", password=PASSWORD) as good:
            for i, (text, code, mid) in enumerate(MALFORMED):
                if "Reset" in text:  # a CSMS-side action: the station may not send it
                    code = "NotSupported"
                answer = await bad.exchange(text)
                assert answer[:3] == [4, mid, code], text
                await _heartbeat(bad, f"ok-{i}")
                await _heartbeat(good, f"good-{i}")
            # a frame bigger than the websocket limit closes only that connection
            await bad.send(json.dumps([2, "big", "Heartbeat", {"pad": "x" * (5 * max_size)}]))
            await _heartbeat(good, "after-big")
            assert set(csms.server.connections) <= {"CS1", "CS2"} and "CS2" in csms.server.connections
