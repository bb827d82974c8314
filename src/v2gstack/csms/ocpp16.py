"""The CSMS's OCPP 1.6J handlers (Core, Firmware, Local Auth List, Reservation, Smart Charging, Remote Trigger and the
security whitepaper's messages) over the same store as 2.x: 1.6 transactions get CSMS-assigned integer ids and are
kept as events in the `transactions` tables, so the API shows one kind of transaction with its OCPP version.

The Plug & Charge DataTransfer messages of the OCA application note are served by csms/pnc16.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..constants import ISO_FACTS_VENDOR
from ..ocpp import CallContext, Router
from ..ocpp.errors import ErrorCode, OcppError
from ..pki.csr import CsrError
from ..times import rfc3339
from . import store as ops
from .models import IdToken, Ocpp16Transaction, Station, Transaction
from .pnc16 import PNC_VENDOR, PncDataTransfer

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)

Payload = dict[str, Any]

# 1.6 IdTagInfo statuses; a 2.x status outside them (Unknown, NoCredit, NotAtThisTime, ...) is Invalid in 1.6
ID_TAG_STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
# token types a 1.6 idTag is looked up under, most likely first (1.6 idTags carry no type)
ID_TAG_TYPES = ("ISO14443", "ISO15693", "Central", "Local", "KeyCode", "MacAddress", "eMAID")

# StopTransaction reason (1.6) -> the 2.0.1 trigger reason of the Ended event kept for it
STOP_TRIGGERS = {
    "Remote": "RemoteStop", "EVDisconnected": "EVCommunicationLost", "DeAuthorized": "Deauthorized",
    "Local": "StopAuthorized", "HardReset": "ResetCommand", "SoftReset": "ResetCommand", "Reboot": "ResetCommand",
    "UnlockCommand": "UnlockCommand", "EmergencyStop": "AbnormalCondition", "PowerLoss": "AbnormalCondition",
    "Other": "AbnormalCondition",
}
# MeterValues context -> trigger reason of the Updated event kept for it
CONTEXT_TRIGGERS = {"Sample.Clock": "MeterValueClock", "Trigger": "Trigger"}

# The CSMS-initiated actions of OCPP 1.6 (the six profiles and the security whitepaper), by API command name.
COMMANDS_16: dict[str, str] = {
    "request-start": "RemoteStartTransaction",
    "request-stop": "RemoteStopTransaction",
    "reset": "Reset",
    "get-configuration": "GetConfiguration",
    "change-configuration": "ChangeConfiguration",
    "trigger-message": "TriggerMessage",
    "extended-trigger-message": "ExtendedTriggerMessage",
    "change-availability": "ChangeAvailability",
    "unlock-connector": "UnlockConnector",
    "set-charging-profile": "SetChargingProfile",
    "clear-charging-profile": "ClearChargingProfile",
    "get-composite-schedule": "GetCompositeSchedule",
    "data-transfer": "DataTransfer",
    "clear-cache": "ClearCache",
    "send-local-list": "SendLocalList",
    "get-local-list-version": "GetLocalListVersion",
    "reserve-now": "ReserveNow",
    "cancel-reservation": "CancelReservation",
    "update-firmware": "UpdateFirmware",
    "signed-update-firmware": "SignedUpdateFirmware",
    "get-diagnostics": "GetDiagnostics",
    "get-log": "GetLog",
    "get-installed-certificate-ids": "GetInstalledCertificateIds",
    "install-certificate": "InstallCertificate",
    "delete-certificate": "DeleteCertificate",
    "certificate-signed": "CertificateSigned",
}
# What an operator may send to a 1.6 station (the rest, e.g. configuration, certificates, firmware: admin only)
OPERATOR_ACTIONS_16 = frozenset({
    "RemoteStartTransaction", "RemoteStopTransaction", "Reset", "GetConfiguration", "TriggerMessage",
    "ExtendedTriggerMessage", "ChangeAvailability", "UnlockConnector", "SetChargingProfile", "ClearChargingProfile",
    "GetCompositeSchedule", "ClearCache", "GetLocalListVersion", "ReserveNow", "CancelReservation",
    "GetInstalledCertificateIds",
})
# Station-initiated 1.6 messages that are only recorded (the message log and the listeners)
LOGGED_16 = ("DiagnosticsStatusNotification", "FirmwareStatusNotification", "SecurityEventNotification",
             "LogStatusNotification", "SignedFirmwareStatusNotification")


class MeterValue16Error(OcppError):
    """A 1.6 sampled value that is no number where a number is due (format Raw): PropertyConstraintViolation."""

    def __init__(self, description: str) -> None:
        super().__init__(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, description)


@dataclass(frozen=True, slots=True)
class Started:
    """What a StartTransaction gave: the transactionId and whether it was a replay of an earlier one."""

    transaction_id: int
    replay: bool


# ----------------------------------------------------------------- translation of 1.6 meter values

def sampled_value(sv: Payload) -> Payload | None:
    """A 1.6 SampledValue as a 2.x SampledValueType (the value a number, the unit in unitOfMeasure); None for
    SignedData (kept in the event's 1.6 payload, not as a number)."""
    if sv.get("format") == "SignedData":
        return None
    text = sv["value"]
    try:
        value = float(text)
    except ValueError:
        raise MeterValue16Error(f"sampledValue.value {text[:40]!r} is not a number") from None
    out: Payload = {"value": int(value) if value.is_integer() and abs(value) < 2**53 else value}
    for key in ("context", "measurand", "phase", "location"):
        if key in sv:
            out[key] = sv[key]
    if "unit" in sv:
        out["unitOfMeasure"] = {"unit": sv["unit"]}
    return out


def meter_values(items: list[Payload]) -> list[Payload]:
    """1.6 MeterValue items as 2.x MeterValueType items (values that are not numbers left out)."""
    out = []
    for mv in items:
        svs = [x for x in (sampled_value(sv) for sv in mv.get("sampledValue", [])) if x is not None]
        if svs:
            out.append({"timestamp": mv["timestamp"], "sampledValue": svs})
    return out


def register(timestamp: str, wh: int, context: str) -> Payload:
    """meterStart/meterStop (integer Wh) as an Energy.Active.Import.Register reading."""
    return {"timestamp": timestamp, "sampledValue": [{
        "value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"}}]}


# ----------------------------------------------------------------- storage helpers (op_*: run in the worker)

def op_id_tag_info(s: Session, id_tag: str) -> Payload:
    """The 1.6 IdTagInfo of an idTag: its registered status (any token type), Expired past its expiry, Invalid when
    not registered or in a status 1.6 lacks; parentIdTag = the token's group."""
    tok = None
    for kind in ID_TAG_TYPES:
        tok = s.get(IdToken, (id_tag, kind))
        if tok is not None:
            break
    if tok is None:
        return {"status": "Invalid"}
    status = tok.status if tok.status in ID_TAG_STATUSES else "Invalid"
    info: Payload = {"status": status}
    if tok.expires_at is not None:
        expiry = tok.expires_at if tok.expires_at.tzinfo else tok.expires_at.replace(tzinfo=UTC)
        if status == "Accepted" and expiry <= datetime.now(UTC):
            info["status"] = "Expired"
        info["expiryDate"] = rfc3339(expiry)
    if tok.group_id:
        info["parentIdTag"] = tok.group_id[:20]
    return info


def op_record_boot16(s: Session, station_id: str, p: Payload, status: str) -> None:
    """A 1.6 BootNotification recorded like a 2.x one (vendor, model, serial, firmware)."""
    cs = {"vendorName": p["chargePointVendor"], "model": p["chargePointModel"]}
    serial = p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber")
    if serial:
        cs["serialNumber"] = serial
    if p.get("firmwareVersion"):
        cs["firmwareVersion"] = p["firmwareVersion"]
    ops.op_record_boot(s, station_id, {"chargingStation": cs}, status)


def op_record_status16(s: Session, station_id: str, p: Payload) -> None:
    """A 1.6 StatusNotification: the status as connector `<connectorId>/1` (0/0: the charge point), its error code,
    info and vendor code kept in `connector_errors`."""
    cid = p["connectorId"]
    ops.op_record_status(s, station_id, cid, 1 if cid else 0, p["status"])
    st = s.get(Station, station_id)
    assert st is not None  # op_record_status checked it
    error = {k: p[k] for k in ("errorCode", "info", "vendorId", "vendorErrorCode", "timestamp") if k in p}
    st.connector_errors = {**(st.connector_errors or {}), str(cid): error}


def op_start16(s: Session, station_id: str, p: Payload) -> Started:
    """StartTransaction: a new integer transactionId (the same one again for a replay: same station, connector and
    timestamp), the Started event with the meterStart reading, the transaction marked as 1.6."""
    ops._station(s, station_id)
    row = s.scalars(select(Ocpp16Transaction).where(
        Ocpp16Transaction.station_id == station_id, Ocpp16Transaction.connector_id == p["connectorId"],
        Ocpp16Transaction.started == p["timestamp"])).first()
    if row is not None:
        return Started(row.id, True)
    row = Ocpp16Transaction(station_id=station_id, connector_id=p["connectorId"], started=p["timestamp"],
                            id_tag=p["idTag"], next_seq=1, stopped=False)
    s.add(row)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError:  # the same start raced in on another connection
        existing = s.scalars(select(Ocpp16Transaction).where(
            Ocpp16Transaction.station_id == station_id, Ocpp16Transaction.connector_id == p["connectorId"],
            Ocpp16Transaction.started == p["timestamp"])).one()
        return Started(existing.id, True)
    event: Payload = {
        "eventType": "Started", "timestamp": p["timestamp"], "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": str(row.id), "chargingState": "Charging"},
        "idToken": {"idToken": p["idTag"], "type": "ISO14443"},
        "evse": {"id": p["connectorId"], "connectorId": 1},
        "meterValue": [register(p["timestamp"], p["meterStart"], "Transaction.Begin")],
        "ocpp16": {"action": "StartTransaction", "request": p},
    }
    ops.op_record_transaction_event(s, station_id, event)
    tx = s.get(Transaction, (station_id, str(row.id)))
    if tx is not None:
        tx.ocpp_version = "1.6"
    return Started(row.id, False)


def _next_seq(s: Session, station_id: str, transaction_id: int) -> Ocpp16Transaction | None:
    """The 1.6 transaction row (its next seqNo taken) if this CSMS started it for the station."""
    row = s.get(Ocpp16Transaction, transaction_id)
    if row is None or row.station_id != station_id:
        return None
    row.next_seq += 1
    return row


def op_meter_values16(s: Session, station_id: str, p: Payload) -> int:
    """MeterValues: with a transactionId this CSMS assigned, an Updated event of that transaction; otherwise the
    values are stored under the connector (0: the main meter). Returns how many values were stored."""
    values = meter_values(p["meterValue"])
    tx_id = p.get("transactionId")
    row = _next_seq(s, station_id, tx_id) if tx_id is not None else None
    if row is None or row.stopped:
        if not values:
            return 0
        return ops.op_record_meter_values(s, station_id, {"evseId": p["connectorId"], "meterValue": values})
    contexts = {sv.get("context") for mv in values for sv in mv["sampledValue"]}
    trigger = next((CONTEXT_TRIGGERS[c] for c in contexts if c in CONTEXT_TRIGGERS), "MeterValuePeriodic")
    event = {"eventType": "Updated", "timestamp": p["meterValue"][0]["timestamp"], "triggerReason": trigger,
             "seqNo": row.next_seq - 1, "transactionInfo": {"transactionId": str(row.id)},
             "meterValue": values, "ocpp16": {"action": "MeterValues", "request": p}}
    ops.op_record_transaction_event(s, station_id, event)
    return sum(len(mv["sampledValue"]) for mv in values)


def op_stop16(s: Session, station_id: str, p: Payload) -> bool:
    """StopTransaction: the Ended event (meterStop reading, transactionData, the 1.6 reason as stoppedReason); False
    when the transaction was already stopped (a replay) and nothing was written."""
    tx_id = p["transactionId"]
    row = _next_seq(s, station_id, tx_id)
    if row is not None and row.stopped:
        return False
    seq = row.next_seq - 1 if row is not None else 1
    if row is not None:
        row.stopped = True
    values = meter_values(p.get("transactionData", []))
    values.append(register(p["timestamp"], p["meterStop"], "Transaction.End"))
    reason = p.get("reason", "Local")
    info: Payload = {"transactionId": str(tx_id), "stoppedReason": reason, "chargingState": "Idle"}
    event: Payload = {"eventType": "Ended", "timestamp": p["timestamp"],
                      "triggerReason": STOP_TRIGGERS.get(reason, "AbnormalCondition"), "seqNo": seq,
                      "transactionInfo": info, "meterValue": values,
                      "ocpp16": {"action": "StopTransaction", "request": p}}
    if p.get("idTag"):
        event["idToken"] = {"idToken": p["idTag"], "type": "ISO14443"}
    stored = ops.op_record_transaction_event(s, station_id, event)
    tx = s.get(Transaction, (station_id, str(tx_id)))
    if tx is not None:
        tx.ocpp_version = "1.6"
    return stored


# ----------------------------------------------------------------- handlers

class Ocpp16Service:
    """The 1.6 router of a Csms: the same store, state, listeners, message log and PKI services as 2.x."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.pnc = PncDataTransfer(csms)
        self.router = self._build_router()

    def _build_router(self) -> Router:
        r = Router()
        r.add("BootNotification", self.on_boot)
        r.add("Heartbeat", self.csms.on_heartbeat)
        r.add("StatusNotification", self.on_status)
        r.add("Authorize", self.on_authorize)
        r.add("StartTransaction", self.on_start)
        r.add("StopTransaction", self.on_stop)
        r.add("MeterValues", self.on_meter_values)
        r.add("DataTransfer", self.on_data_transfer)
        r.add("SignCertificate", self.on_sign_certificate)
        for action in LOGGED_16:
            r.add(action, self.csms._logged_notification(action))
        return r

    async def on_boot(self, p: Payload, ctx: CallContext) -> Payload:
        """BootNotification: Accepted for registered stations (profile 0 may register them), Rejected otherwise;
        Pending with the seconds to wait in a boot storm (csms/admission.py), as for 2.x."""
        csms, sid = self.csms, ctx.station_id
        wait = csms.admission.decide(sid, csms.worker.queued)
        if wait is not None:
            return {"currentTime": rfc3339(), "interval": wait, "status": "Pending"}
        known = await csms.worker.run(ops.op_station, sid) is not None
        if not known and csms.config.auto_register and csms.config.security_profile == 0:
            await asyncio.to_thread(csms.store.add_station, sid)
            known = True
        status = "Accepted" if known else "Rejected"
        if known:
            await csms.worker.run(op_record_boot16, sid, p, status)
        csms._notify(sid, "BootNotification", p)
        return {"currentTime": rfc3339(), "interval": csms.config.heartbeat_interval if known else 60,
                "status": status}

    async def on_status(self, p: Payload, ctx: CallContext) -> Payload:
        """StatusNotification: the connector's status and its 1.6 error code stored."""
        await self.csms.worker.run(op_record_status16, ctx.station_id, p)
        self.csms._notify(ctx.station_id, "StatusNotification", p)
        return {}

    async def on_authorize(self, p: Payload, ctx: CallContext) -> Payload:
        """Authorize: the idTag's 1.6 IdTagInfo."""
        info = await self.csms.worker.run(op_id_tag_info, p["idTag"])
        answer = {"idTagInfo": info}
        self.csms._notify(ctx.station_id, "Authorize", p)
        await self.csms._log(ctx.station_id, "rx", "Authorize", p, answer)
        return answer

    async def on_start(self, p: Payload, ctx: CallContext) -> Payload:
        """StartTransaction: the CSMS assigns the integer transactionId (a replay gets the same one)."""
        csms, sid = self.csms, ctx.station_id
        started = await csms.worker.run(op_start16, sid, p)
        info = await csms.worker.run(op_id_tag_info, p["idTag"])
        tx_id = str(started.transaction_id)
        csms._state(sid).active[p["connectorId"]] = tx_id
        answer = {"idTagInfo": info, "transactionId": started.transaction_id}
        if started.replay:
            log.info("station %s replayed StartTransaction: transactionId %s again", sid, tx_id)
        else:
            await csms._log(sid, "rx", "StartTransaction", p, answer, tx_id)
        csms._notify(sid, "StartTransaction", {**p, "transactionId": started.transaction_id})
        return answer

    async def on_stop(self, p: Payload, ctx: CallContext) -> Payload:
        """StopTransaction: the Ended event (once: a replay is acknowledged, not stored twice)."""
        csms, sid = self.csms, ctx.station_id
        stored = await csms.worker.run(op_stop16, sid, p)
        tx_id = str(p["transactionId"])
        state = csms._state(sid)
        state.active = {k: v for k, v in state.active.items() if v != tx_id}
        answer: Payload = {}
        if p.get("idTag"):
            answer["idTagInfo"] = await csms.worker.run(op_id_tag_info, p["idTag"])
        if stored:
            await csms._log(sid, "rx", "StopTransaction", p, answer, tx_id)
        csms._notify(sid, "StopTransaction", p)
        return answer

    async def on_meter_values(self, p: Payload, ctx: CallContext) -> Payload:
        """MeterValues: normalised like 2.x (ocpp/units.py), within the transaction when one is named."""
        await self.csms.worker.run(op_meter_values16, ctx.station_id, p)
        self.csms._notify(ctx.station_id, "MeterValues", p)
        return {}

    async def on_data_transfer(self, p: Payload, ctx: CallContext) -> Payload:
        """DataTransfer: Plug & Charge per the application note, the station's ISO 15118 session facts, the ISO
        15118 message mirrors (as for 2.x); other vendors are UnknownVendorId."""
        vendor = p["vendorId"]
        if vendor == PNC_VENDOR:
            return await self.pnc.serve(p, ctx)
        if vendor == ISO_FACTS_VENDOR:
            return await self._session_facts(p, ctx)
        answer = await self.csms.on_data_transfer(p, ctx)
        out: Payload = {"status": answer["status"]}
        if "statusInfo" in answer:  # 1.6 has no statusInfo: the reason travels in data
            out["data"] = json.dumps({"statusInfo": answer["statusInfo"]})
        return out

    async def _session_facts(self, p: Payload, ctx: CallContext) -> Payload:
        """The ISO 15118 facts of a session (SessionID, EVCCID, protocol, trace id) joined to its 1.6 transaction,
        as a 2.x station sends them in TransactionEvent customData."""
        csms, sid = self.csms, ctx.station_id
        if p.get("messageId") != "SessionFacts":
            return {"status": "UnknownMessageId"}
        try:
            facts = json.loads(p.get("data") or "")
            tx_id = str(int(facts.pop("transactionId")))
        except (ValueError, TypeError, KeyError, AttributeError):
            return {"status": "Rejected", "data": "data must be a JSON object with an integer transactionId"}
        if not isinstance(facts, dict):
            return {"status": "Rejected", "data": "data must be a JSON object"}
        linked = await csms.worker.run(ops.op_link_iso15118, sid, tx_id, facts)
        if not linked:
            return {"status": "Rejected", "data": f"unknown transaction {tx_id}"}
        if facts.get("sessionId"):
            csms._state(sid).session_ids[tx_id] = str(facts["sessionId"]).upper()
        await csms._log(sid, "rx", "DataTransfer", p, {"status": "Accepted"}, tx_id, facts.get("sessionId"))
        return {"status": "Accepted"}

    async def on_sign_certificate(self, p: Payload, ctx: CallContext) -> Payload:
        """SignCertificate (security whitepaper): the CSR checked and signed, then CertificateSigned sent."""
        csms, sid = self.csms, ctx.station_id
        try:
            chain = await csms.sign_csr(sid, p["csr"], "ChargingStationCertificate")
        except CsrError as e:
            await csms._log(sid, "rx", "SignCertificate", p, {"status": "Rejected", "reason": str(e)})
            return {"status": "Rejected"}
        await csms._log(sid, "rx", "SignCertificate", p, {"status": "Accepted"})
        # 1.6: the chain only
        csms.send_after_answer(sid, "CertificateSigned", lambda: csms.call(
            sid, "CertificateSigned", {"certificateChain": chain}))
        return {"status": "Accepted"}

