"""The station's OCPP 1.6J: its services speak 2.0.1 payloads, and this module maps them onto 1.6 at the connection, so
the services stay as they are.

Outgoing, `Ocpp16Mapping.send` turns each 2.0.1 CALL into its 1.6 counterpart and the 1.6 answer back into the 2.0.1
answer: TransactionEvents become StartTransaction (when the transaction has an idToken: 1.6 starts transactions at
authorization), MeterValues with the CSMS's integer transactionId, and StopTransaction; Plug & Charge messages
(Authorize with a contract, Get15118EVCertificate, GetCertificateStatus, SignCertificate for the V2G certificate) go
as DataTransfer per the OCA application note; the ISO 15118 facts of a transaction go as DataTransfer
`org.v2gstack.iso15118`/`SessionFacts`. Incoming, `router` serves the 1.6 actions by handing the 2.0.1 form to the
services' handlers (RemoteStart/Stop, Reset, availability, unlock, charging profiles, the composite schedule,
configuration keys onto the device model, local list, certificates, and the note's CSMS -> station messages).
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..constants import ISO_FACTS_VENDOR
from ..ocpp import Connection, ErrorCode, OcppError, Router
from ..ocpp.engine import RpcEngine
from ..ocpp.errors import CallErrorReceived
from .context import StationContext

log = logging.getLogger(__name__)

Payload = dict[str, Any]

PNC_VENDOR = "org.openchargealliance.iso15118pnc"
PNC_TO_STATION = ("CertificateSigned", "InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds",
                  "TriggerMessage")
# 2.0.1 messages with no 1.6 counterpart (the note leaves ISO 15118 smart charging to 2.0.1): answered here, not sent
NOT_IN_16: dict[str, Payload] = {
    "NotifyEVChargingNeeds": {"status": "Accepted"}, "NotifyEVChargingSchedule": {"status": "Accepted"},
    "NotifyEvent": {}, "NotifyReport": {}, "ReportChargingProfiles": {}, "NotifyMonitoringReport": {},
}

# 1.6 configuration key -> (component, variable) of the device model (the note's PnC keys included)
CONFIGURATION_KEYS: dict[str, tuple[str, str]] = {
    "HeartbeatInterval": ("OCPPCommCtrlr", "HeartbeatInterval"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
    "ClockAlignedDataInterval": ("AlignedDataCtrlr", "Interval"),
    "MeterValuesSampledData": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "StopTxnSampledData": ("SampledDataCtrlr", "TxEndedMeasurands"),
    "ConnectionTimeOut": ("TxCtrlr", "EVConnectionTimeOut"),
    "StopTransactionOnEVSideDisconnect": ("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "StopTransactionOnInvalidId": ("TxCtrlr", "StopTxOnInvalidId"),
    "AuthorizeRemoteTxRequests": ("AuthCtrlr", "AuthorizeRemoteStart"),
    "LocalAuthorizeOffline": ("AuthCtrlr", "LocalAuthorizeOffline"),
    "LocalPreAuthorize": ("AuthCtrlr", "LocalPreAuthorize"),
    "AllowOfflineTxForUnknownId": ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    "TransactionMessageAttempts": ("OCPPCommCtrlr", "MessageAttempts"),
    "TransactionMessageRetryInterval": ("OCPPCommCtrlr", "MessageAttemptInterval"),
    "WebSocketPingInterval": ("OCPPCommCtrlr", "WebSocketPingInterval"),
    "SecurityProfile": ("SecurityCtrlr", "SecurityProfile"),
    "AuthorizationKey": ("SecurityCtrlr", "BasicAuthPassword"),
    "CpoName": ("SecurityCtrlr", "OrganizationName"),
    "CertSigningWaitMinimum": ("SecurityCtrlr", "CertSigningWaitMinimum"),
    "CertSigningRepeatTimes": ("SecurityCtrlr", "CertSigningRepeatTimes"),
    "ISO15118PnCEnabled": ("ISO15118Ctrlr", "PnCEnabled"),
    "CentralContractValidationAllowed": ("ISO15118Ctrlr", "CentralContractValidationAllowed"),
    "ContractValidationOffline": ("ISO15118Ctrlr", "ContractValidationOffline"),
}
# variables whose device-model instance is not the default one
_INSTANCES = {("OCPPCommCtrlr", "MessageAttempts"): "TransactionEvent",
              ("OCPPCommCtrlr", "MessageAttemptInterval"): "TransactionEvent"}

# 2.0.1 -> 1.6 value sets
STATUS_16 = {"Available": "Available", "Reserved": "Reserved", "Unavailable": "Unavailable", "Faulted": "Faulted"}
STOP_REASONS_16 = {"DeAuthorized": "DeAuthorized", "EmergencyStop": "EmergencyStop",
                   "EVDisconnected": "EVDisconnected", "ImmediateReset": "HardReset", "Local": "Local",
                   "PowerLoss": "PowerLoss", "Reboot": "Reboot", "Remote": "Remote"}
ID_STATUSES_16 = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
MEASURANDS_16 = frozenset({
    "Energy.Active.Export.Register", "Energy.Active.Import.Register", "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval", "Power.Active.Export",
    "Power.Active.Import", "Power.Offered", "Power.Reactive.Export", "Power.Reactive.Import", "Power.Factor",
    "Current.Import", "Current.Export", "Current.Offered", "Voltage", "Frequency", "Temperature", "SoC", "RPM"})
UNITS_16 = frozenset({"Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V", "Celsius",
                      "Fahrenheit", "K", "Percent"})
LOCATIONS_16 = frozenset({"Cable", "EV", "Inlet", "Outlet", "Body"})
PURPOSE_TO_201 = {"ChargePointMaxProfile": "ChargingStationMaxProfile", "TxDefaultProfile": "TxDefaultProfile",
                  "TxProfile": "TxProfile"}
TRIGGERS_TO_201 = {"BootNotification": "BootNotification", "Heartbeat": "Heartbeat", "MeterValues": "MeterValues",
                   "StatusNotification": "StatusNotification",
                   "FirmwareStatusNotification": "FirmwareStatusNotification",
                   "DiagnosticsStatusNotification": "LogStatusNotification",
                   "LogStatusNotification": "LogStatusNotification",
                   "SignChargePointCertificate": "SignChargingStationCertificate"}


@dataclass
class Tx16:
    """One 2.0.1 transaction of the station as 1.6 sees it: started at the CSMS (its integer id) or not yet."""

    evse_id: int
    id16: int | None = None
    id_tag: str | None = None
    meter_start: int = 0
    facts: Payload = field(default_factory=dict)  # ISO 15118 facts not sent yet


# ----------------------------------------------------------------- value translations

def id_token_info(info16: Payload) -> Payload:
    """1.6 IdTagInfo -> 2.0.1 IdTokenInfo."""
    out: Payload = {"status": info16["status"]}
    if "expiryDate" in info16:
        out["cacheExpiryDateTime"] = info16["expiryDate"]
    if "parentIdTag" in info16:
        out["groupIdToken"] = {"idToken": info16["parentIdTag"], "type": "Central"}
    return out


def id_tag_info(info: Payload) -> Payload:
    """2.0.1 IdTokenInfo -> 1.6 IdTagInfo (statuses 1.6 lacks are Invalid)."""
    out: Payload = {"status": info["status"] if info["status"] in ID_STATUSES_16 else "Invalid"}
    if "cacheExpiryDateTime" in info:
        out["expiryDate"] = info["cacheExpiryDateTime"]
    group = (info.get("groupIdToken") or {}).get("idToken")
    if group:
        out["parentIdTag"] = group[:20]
    return out


def _number(value: float) -> str:
    """A number as 1.6 writes sampled values (a decimal string, no exponent for ordinary values)."""
    return str(int(value)) if float(value).is_integer() else format(value, "g" if abs(value) >= 1e16 else "f").rstrip(
        "0").rstrip(".")


def sampled_values_16(values: list[Payload]) -> list[Payload]:
    """2.0.1 MeterValueType items -> 1.6 MeterValue items (measurands, units and locations 1.6 lacks left out,
    multipliers applied, signed values dropped)."""
    out = []
    for mv in values:
        svs = []
        for sv in mv.get("sampledValue", []):
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            if measurand not in MEASURANDS_16:
                continue
            uom = sv.get("unitOfMeasure") or {}
            value = float(sv["value"]) * 10 ** uom.get("multiplier", 0)
            item: Payload = {"value": _number(value), "measurand": measurand, "format": "Raw"}
            for key in ("context", "phase"):
                if key in sv:
                    item[key] = sv[key]
            if sv.get("location") in LOCATIONS_16:
                item["location"] = sv["location"]
            if uom.get("unit") in UNITS_16:
                item["unit"] = uom["unit"]
            svs.append(item)
        if svs:
            out.append({"timestamp": mv["timestamp"], "sampledValue": svs})
    return out


def energy_wh(values: list[Payload]) -> int | None:
    """The first Energy.Active.Import.Register reading of 2.0.1 meter values, in whole Wh."""
    for mv in values:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                uom = sv.get("unitOfMeasure") or {}
                wh = float(sv["value"]) * 10 ** uom.get("multiplier", 0)
                return round(wh * 1000 if uom.get("unit") == "kWh" else wh)
    return None


def charging_profile_201(p: Payload, transaction_id: str | None) -> Payload:
    """A 1.6 ChargingProfile -> the 2.0.1 ChargingProfileType (one schedule, ids kept)."""
    s = p["chargingSchedule"]
    schedule: Payload = {"id": p["chargingProfileId"], "chargingRateUnit": s["chargingRateUnit"],
                         "chargingSchedulePeriod": [
                             {k: v for k, v in period.items() if k in ("startPeriod", "limit", "numberPhases")}
                             for period in s["chargingSchedulePeriod"]]}
    for key in ("startSchedule", "duration", "minChargingRate"):
        if key in s:
            schedule[key] = s[key]
    out: Payload = {"id": p["chargingProfileId"], "stackLevel": p["stackLevel"],
                    "chargingProfilePurpose": PURPOSE_TO_201[p["chargingProfilePurpose"]],
                    "chargingProfileKind": p["chargingProfileKind"], "chargingSchedule": [schedule]}
    for key in ("recurrencyKind", "validFrom", "validTo"):
        if key in p:
            out[key] = p[key]
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    return out


def composite_16(connector_id: int, answer: Payload) -> Payload:
    """A 2.0.1 GetCompositeSchedule answer -> the 1.6 one."""
    if answer["status"] != "Accepted" or "schedule" not in answer:
        return {"status": "Rejected"}
    s = answer["schedule"]
    return {"status": "Accepted", "connectorId": connector_id, "scheduleStart": s["scheduleStart"],
            "chargingSchedule": {"duration": s["duration"], "startSchedule": s["scheduleStart"],
                                 "chargingRateUnit": s["chargingRateUnit"], "chargingSchedulePeriod": [
                                     {k: v for k, v in period.items() if k in ("startPeriod", "limit", "numberPhases")}
                                     for period in s["chargingSchedulePeriod"]]}}


class Translated:
    """A 1.6 connection as the station's services see it: `call` takes and returns 2.0.1 payloads."""

    def __init__(self, conn: Connection, mapping: Ocpp16Mapping) -> None:
        self.conn = conn
        self.mapping = mapping
        self.engine = mapping.engine201  # the services' own payloads are checked as 2.0.1

    @property
    def closed(self) -> bool:
        """Whether the websocket is closed."""
        return self.conn.closed

    async def call(self, action: str, payload: Payload, *, timeout: float | None = None) -> Payload:
        """The 2.0.1 CALL through its 1.6 counterpart."""
        return await self.mapping.send(self.conn, action, payload, timeout)

    def __getattr__(self, name: str) -> Any:
        """Everything else is the connection's (close, wait_closed, station_id, ...)."""
        return getattr(self.conn, name)


class Ocpp16Mapping:
    """The 1.6 face of one station: `router` for the CSMS's 1.6 CALLs, `wrap` for the connection the services use."""

    def __init__(self, ctx: StationContext, inner: Router) -> None:
        self.ctx = ctx
        self.inner = inner  # the services' 2.0.1 handlers
        self.engine201 = RpcEngine("2.0.1")
        self.txs: dict[str, Tx16] = {}  # 2.0.1 transactionId -> its 1.6 side (kept in the state folder)
        self._path = None if ctx.config.state_dir is None else Path(ctx.config.state_dir) / "ocpp16_transactions.json"
        self._load()
        self._wrapped: tuple[Connection, Translated] | None = None
        self.reported: dict[int, str] = {}  # connectorId -> the 1.6 status last sent
        self.router = self._build_router()

    def _load(self) -> None:
        """The map of an earlier run: queued TransactionEvents of its transactions still need their 1.6 ids."""
        if self._path is None or not self._path.exists():
            return
        try:
            self.txs = {t: Tx16(**v) for t, v in json.loads(self._path.read_text()).items()}
        except (ValueError, TypeError) as e:
            log.warning("%s: %s unreadable, starting without it: %s", self.ctx.station_id, self._path.name, e)

    def _save(self) -> None:
        """Keep the map (written after each change, replaced atomically)."""
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({t: asdict(tx) for t, tx in self.txs.items()}))
        tmp.replace(self._path)

    def wrap(self, conn: Connection) -> Translated:
        """The translating view of a connection (one per connection)."""
        if self._wrapped is None or self._wrapped[0] is not conn:
            self._wrapped = (conn, Translated(conn, self))
        return self._wrapped[1]

    def transaction_id(self, id16: int) -> str | None:
        """The 2.0.1 transactionId of the CSMS's integer id."""
        return next((t for t, tx in self.txs.items() if tx.id16 == id16), None)

    # ----- outgoing: 2.0.1 CALL -> 1.6 -----

    async def send(self, conn: Connection, action: str, p: Payload, timeout: float | None) -> Payload:
        """Send the 1.6 form of a 2.0.1 CALL and return the 2.0.1 form of the answer."""
        if action in NOT_IN_16:
            log.debug("%s: %s has no OCPP 1.6 counterpart: not sent", self.ctx.station_id, action)
            return dict(NOT_IN_16[action])
        if action == "BootNotification":
            cs = p["chargingStation"]
            boot: Payload = {"chargePointVendor": cs["vendorName"], "chargePointModel": cs["model"]}
            if cs.get("firmwareVersion"):
                boot["firmwareVersion"] = cs["firmwareVersion"]
            if cs.get("serialNumber"):
                boot["chargePointSerialNumber"] = cs["serialNumber"]
            return await conn.call("BootNotification", boot, timeout=timeout)
        if action == "StatusNotification":
            status = self._status(p)
            await conn.call("StatusNotification", status, timeout=timeout)
            self.reported[status["connectorId"]] = status["status"]
            return {}
        if action == "Authorize":
            if p["idToken"].get("type") == "eMAID" or "certificate" in p or "iso15118CertificateHashData" in p:
                return await self._pnc(conn, "Authorize", p, timeout)
            answer = await conn.call("Authorize", {"idTag": p["idToken"]["idToken"][:20]}, timeout=timeout)
            return {"idTokenInfo": id_token_info(answer["idTagInfo"])}
        if action == "TransactionEvent":
            return await self._transaction_event(conn, p, timeout)
        if action == "MeterValues":
            values = sampled_values_16(p["meterValue"])
            if values:
                await conn.call("MeterValues", {"connectorId": p["evseId"], "meterValue": values}, timeout=timeout)
            return {}
        if action in ("Get15118EVCertificate", "GetCertificateStatus"):
            return await self._pnc(conn, action, p, timeout)
        if action == "SignCertificate":
            if p.get("certificateType") == "ChargingStationCertificate":
                return {"status": (await conn.call("SignCertificate", {"csr": p["csr"]}, timeout=timeout))["status"]}
            return await self._pnc(conn, "SignCertificate", p, timeout)
        if action == "DataTransfer":
            data = p.get("data")
            out = {k: v for k, v in p.items() if k in ("vendorId", "messageId")}
            if data is not None:
                out["data"] = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
            return await conn.call("DataTransfer", out, timeout=timeout)
        # same shape in 1.6: SecurityEventNotification, Heartbeat, LogStatusNotification, FirmwareStatusNotification
        if action == "FirmwareStatusNotification":
            return await conn.call("SignedFirmwareStatusNotification", p, timeout=timeout)
        return await conn.call(action, p, timeout=timeout)

    def _status(self, p: Payload) -> Payload:
        """2.0.1 StatusNotification -> 1.6: Occupied is Charging while energy flows in a transaction, else
        Preparing (or Finishing after the transaction); Faulted carries OtherError."""
        status = p["connectorStatus"]
        evse = self.ctx.evses.get(p["evseId"])
        if status == "Occupied":
            if evse is not None and evse.tx is not None:
                status = "Charging" if evse.authorized else "Preparing"
            else:
                status = "Preparing" if evse is None or evse.id_token is None else "Finishing"
        return {"connectorId": p["evseId"], "errorCode": "OtherError" if status == "Faulted" else "NoError",
                "status": STATUS_16.get(status, status), "timestamp": p["timestamp"]}

    async def _sync_status(self, conn: Connection, evse_id: int, status: str, timeout: float | None) -> None:
        """StatusNotification when the 1.6 status changes within what 2.0.1 calls Occupied (Preparing -> Charging ->
        Finishing)."""
        if self.reported.get(evse_id) in (None, status, "Faulted", "Unavailable"):
            return
        await conn.call("StatusNotification", {"connectorId": evse_id, "errorCode": "NoError", "status": status,
                                               "timestamp": self.ctx.clock.timestamp()}, timeout=timeout)
        self.reported[evse_id] = status

    async def _pnc(self, conn: Connection, action: str, p: Payload, timeout: float | None) -> Payload:
        """A 2.0.1 message wrapped per the application note; the answer unwrapped (checked as 2.0.1)."""
        answer = await conn.call("DataTransfer", {"vendorId": PNC_VENDOR, "messageId": action,
                                                  "data": json.dumps(p, separators=(",", ":"))}, timeout=timeout)
        if answer["status"] != "Accepted":
            raise CallErrorReceived(ErrorCode.GENERIC_ERROR, f"DataTransfer {action}: {answer['status']} "
                                    f"{answer.get('data', '')}"[:255], {}, "GenericError")
        try:
            inner = json.loads(answer.get("data") or "")
            self.engine201._responses[action](inner)
        except Exception as e:  # not JSON, or not the 2.0.1 answer
            raise CallErrorReceived(ErrorCode.FORMAT_VIOLATION, f"DataTransfer {action}: the answer's data is "
                                    f"no 2.0.1 {action} response: {e}"[:255], {}, "FormationViolation") from None
        return inner

    async def _transaction_event(self, conn: Connection, p: Payload, timeout: float | None) -> Payload:
        """Started/Updated/Ended -> StartTransaction (once an idToken is known), MeterValues, StopTransaction."""
        info = p["transactionInfo"]
        tid = info["transactionId"]
        tx = self.txs.get(tid)
        if tx is None:
            evse = (p.get("evse") or {}).get("id")
            if evse is None:
                evse = next((e.id for e in self.ctx.evses.values() if e.tx is not None and e.tx.id == tid), 1)
            tx = self.txs[tid] = Tx16(evse)
            self._save()
        values = p.get("meterValue", [])
        wh = energy_wh(values)
        custom = p.get("customData") or {}
        if custom.get("vendorId") == ISO_FACTS_VENDOR:
            tx.facts.update({k: v for k, v in custom.items() if k != "vendorId"})
        answer: Payload = {}
        if tx.id16 is None and p.get("idToken") and p["eventType"] != "Ended":
            tx.id_tag = p["idToken"]["idToken"][:20]
            tx.meter_start = wh if wh is not None else tx.meter_start
            started = await conn.call("StartTransaction", {
                "connectorId": tx.evse_id, "idTag": tx.id_tag, "meterStart": tx.meter_start,
                "timestamp": p["timestamp"]}, timeout=timeout)
            tx.id16 = started["transactionId"]
            self._save()
            answer["idTokenInfo"] = id_token_info(started["idTagInfo"])
            if started["idTagInfo"]["status"] == "Accepted":
                await self._sync_status(conn, tx.evse_id, "Charging", timeout)
        elif tx.id16 is None:
            if wh is not None:
                tx.meter_start = wh  # the reading when the 1.6 transaction will start
            if p["eventType"] == "Ended":
                self.txs.pop(tid, None)  # never authorized: never a 1.6 transaction
                self._save()
            return answer
        if tx.facts and tx.id16 is not None:
            await conn.call("DataTransfer", {"vendorId": ISO_FACTS_VENDOR, "messageId": "SessionFacts", "data":
                                             json.dumps({"transactionId": tx.id16, **tx.facts})}, timeout=timeout)
            tx.facts = {}
        if p["eventType"] == "Ended":
            stop: Payload = {"transactionId": tx.id16, "timestamp": p["timestamp"],
                             "meterStop": wh if wh is not None else tx.meter_start,
                             "reason": STOP_REASONS_16.get(info.get("stoppedReason", "Local"), "Other")}
            if p.get("idToken"):
                stop["idTag"] = p["idToken"]["idToken"][:20]
            data = sampled_values_16(values)
            if data:
                stop["transactionData"] = data
            stopped = await conn.call("StopTransaction", stop, timeout=timeout)
            self.txs.pop(tid, None)
            self._save()
            evse = self.ctx.evses.get(tx.evse_id)
            if evse is not None and evse.plugged:
                await self._sync_status(conn, tx.evse_id, "Finishing", timeout)
            if "idTagInfo" in stopped:
                answer["idTokenInfo"] = id_token_info(stopped["idTagInfo"])
            return answer
        if p["eventType"] == "Updated" and values and "idTokenInfo" not in answer:
            mv = sampled_values_16(values)
            if mv:
                await conn.call("MeterValues", {"connectorId": tx.evse_id, "transactionId": tx.id16,
                                                "meterValue": mv}, timeout=timeout)
        return answer

    # ----- incoming: the CSMS's 1.6 CALL -> the services' 2.0.1 handlers -----

    async def _inner(self, action: str, payload: Payload) -> Payload:
        """Run the 2.0.1 handler of `action` (NotSupported when the station has none)."""
        handler = self.inner.get(action)
        if handler is None:
            raise OcppError(ErrorCode.NOT_SUPPORTED, f"{action} is not supported here")
        answer = handler.func(payload)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer or {}

    def _build_router(self) -> Router:
        r = Router()
        r.add("RemoteStartTransaction", self.on_remote_start)
        r.add("RemoteStopTransaction", self.on_remote_stop)
        r.add("Reset", self.on_reset)
        r.add("ChangeAvailability", self.on_change_availability)
        r.add("UnlockConnector", self.on_unlock)
        r.add("TriggerMessage", self.on_trigger)
        r.add("ExtendedTriggerMessage", self.on_trigger)
        r.add("SetChargingProfile", self.on_set_profile)
        r.add("ClearChargingProfile", self.on_clear_profile)
        r.add("GetCompositeSchedule", self.on_composite)
        r.add("GetConfiguration", self.on_get_configuration)
        r.add("ChangeConfiguration", self.on_change_configuration)
        r.add("ClearCache", self.on_clear_cache)
        r.add("GetLocalListVersion", self.on_local_list_version)
        r.add("SendLocalList", self.on_send_local_list)
        r.add("DataTransfer", self.on_data_transfer)
        r.add("CertificateSigned", self.on_certificate_signed)
        r.add("InstallCertificate", self.on_install_certificate)
        r.add("GetInstalledCertificateIds", self.on_installed_certificates)
        r.add("DeleteCertificate", self.on_delete_certificate)
        return r

    async def on_remote_start(self, p: Payload) -> Payload:
        """RemoteStartTransaction -> RequestStartTransaction (a TxProfile with it becomes the transaction's)."""
        req: Payload = {"idToken": {"idToken": p["idTag"], "type": "Central"},
                        "remoteStartId": uuid.uuid4().int % 2**31}
        if "connectorId" in p:
            req["evseId"] = p["connectorId"]
        if "chargingProfile" in p:
            req["chargingProfile"] = charging_profile_201(p["chargingProfile"], None)
        answer = await self._inner("RequestStartTransaction", req)
        return {"status": answer["status"]}

    async def on_remote_stop(self, p: Payload) -> Payload:
        """RemoteStopTransaction -> RequestStopTransaction of the transaction with that 1.6 id."""
        tid = self.transaction_id(p["transactionId"])
        if tid is None:
            return {"status": "Rejected"}
        return {"status": (await self._inner("RequestStopTransaction", {"transactionId": tid}))["status"]}

    async def on_reset(self, p: Payload) -> Payload:
        """Reset Hard -> Immediate, Soft -> OnIdle (Scheduled is Accepted in 1.6)."""
        answer = await self._inner("Reset", {"type": "Immediate" if p["type"] == "Hard" else "OnIdle"})
        return {"status": "Rejected" if answer["status"] == "Rejected" else "Accepted"}

    async def on_change_availability(self, p: Payload) -> Payload:
        """ChangeAvailability: connector N is EVSE N; 0 the whole station."""
        req: Payload = {"operationalStatus": p["type"]}
        if p["connectorId"]:
            req["evse"] = {"id": p["connectorId"]}
        return {"status": (await self._inner("ChangeAvailability", req))["status"]}

    async def on_unlock(self, p: Payload) -> Payload:
        """UnlockConnector: Unlocked, UnlockFailed, else NotSupported."""
        answer = await self._inner("UnlockConnector", {"evseId": p["connectorId"], "connectorId": 1})
        status = answer["status"]
        return {"status": status if status in ("Unlocked", "UnlockFailed") else "NotSupported"}

    async def on_trigger(self, p: Payload) -> Payload:
        """TriggerMessage and ExtendedTriggerMessage -> the 2.0.1 TriggerMessage."""
        what = TRIGGERS_TO_201.get(p["requestedMessage"])
        if what is None:
            return {"status": "NotImplemented"}
        req: Payload = {"requestedMessage": what}
        if p.get("connectorId"):
            req["evse"] = {"id": p["connectorId"]}
        status = (await self._inner("TriggerMessage", req))["status"]
        return {"status": status if status in ("Accepted", "Rejected") else "NotImplemented"}

    async def on_set_profile(self, p: Payload) -> Payload:
        """SetChargingProfile: the 1.6 profile onto the smart-charging service (a TxProfile names the transaction
        by its 2.0.1 id)."""
        profile = p["csChargingProfiles"]
        tid = None
        if "transactionId" in profile:
            tid = self.transaction_id(profile["transactionId"])
            if tid is None:
                return {"status": "Rejected"}
        elif profile["chargingProfilePurpose"] == "TxProfile":
            evse = self.ctx.evses.get(p["connectorId"])
            if evse is None or evse.tx is None:
                return {"status": "Rejected"}
            tid = evse.tx.id
        answer = await self._inner("SetChargingProfile", {"evseId": p["connectorId"],
                                                          "chargingProfile": charging_profile_201(profile, tid)})
        return {"status": answer["status"] if answer["status"] in ("Accepted", "Rejected") else "NotSupported"}

    async def on_clear_profile(self, p: Payload) -> Payload:
        """ClearChargingProfile by id or by connector/purpose/stack level."""
        req: Payload = {}
        if "id" in p:
            req["chargingProfileId"] = p["id"]
        criteria: Payload = {}
        if "connectorId" in p:
            criteria["evseId"] = p["connectorId"]
        if "chargingProfilePurpose" in p:
            criteria["chargingProfilePurpose"] = PURPOSE_TO_201[p["chargingProfilePurpose"]]
        if "stackLevel" in p:
            criteria["stackLevel"] = p["stackLevel"]
        if criteria:
            req["chargingProfileCriteria"] = criteria
        return {"status": (await self._inner("ClearChargingProfile", req))["status"]}

    async def on_composite(self, p: Payload) -> Payload:
        """GetCompositeSchedule of a connector (0: the station)."""
        req: Payload = {"evseId": p["connectorId"], "duration": p["duration"]}
        if "chargingRateUnit" in p:
            req["chargingRateUnit"] = p["chargingRateUnit"]
        return composite_16(p["connectorId"], await self._inner("GetCompositeSchedule", req))

    def _variable(self, key: str) -> Payload | None:
        """GetVariableData of a 1.6 key, None for a key the station does not map."""
        where = CONFIGURATION_KEYS.get(key)
        if where is None:
            return None
        data: Payload = {"component": {"name": where[0]}, "variable": {"name": where[1]}}
        if where in _INSTANCES:
            data["variable"]["instance"] = _INSTANCES[where]
        return data

    async def on_get_configuration(self, p: Payload) -> Payload:
        """GetConfiguration: the mapped keys from the device model (all, or those asked); others are unknownKey."""
        keys = p.get("key") or list(CONFIGURATION_KEYS)
        found, unknown = [], []
        for key in keys:
            data = self._variable(key)
            if data is None:
                unknown.append(key)
                continue
            component, name = CONFIGURATION_KEYS[key]
            variable = self.ctx.model.find(component, name, instance=_INSTANCES.get((component, name)))
            result = (await self._inner("GetVariables", {"getVariableData": [data]}))["getVariableResult"][0]
            if variable is None or (result["attributeStatus"] != "Accepted" and key != "AuthorizationKey"):
                if p.get("key"):
                    unknown.append(key)
                continue
            item: Payload = {"key": key, "readonly": variable.mutability == "ReadOnly"}
            if key != "AuthorizationKey":  # write-only (the whitepaper): never read back
                item["value"] = result.get("attributeValue", "")[:500]
            found.append(item)
        out: Payload = {"configurationKey": found}
        if unknown:
            out["unknownKey"] = unknown
        return out

    async def on_change_configuration(self, p: Payload) -> Payload:
        """ChangeConfiguration -> SetVariables (Rejected for read-only and invalid values, NotSupported for keys the
        station does not map)."""
        data = self._variable(p["key"])
        if data is None:
            return {"status": "NotSupported"}
        data["attributeValue"] = p["value"]
        result = (await self._inner("SetVariables", {"setVariableData": [data]}))["setVariableResult"][0]
        status = result["attributeStatus"]
        return {"status": status if status in ("Accepted", "Rejected", "RebootRequired") else "NotSupported"}

    async def on_clear_cache(self, p: Payload) -> Payload:
        """ClearCache."""
        return {"status": (await self._inner("ClearCache", {}))["status"]}

    async def on_local_list_version(self, p: Payload) -> Payload:
        """GetLocalListVersion."""
        return {"listVersion": (await self._inner("GetLocalListVersion", {}))["versionNumber"]}

    async def on_send_local_list(self, p: Payload) -> Payload:
        """SendLocalList: 1.6 idTags as Central idTokens."""
        req: Payload = {"versionNumber": p["listVersion"], "updateType": p["updateType"]}
        entries = [{"idToken": {"idToken": e["idTag"], "type": "Central"},
                    **({"idTokenInfo": id_token_info(e["idTagInfo"])} if "idTagInfo" in e else {})}
                   for e in p.get("localAuthorizationList", [])]
        if entries:
            req["localAuthorizationList"] = entries
        status = (await self._inner("SendLocalList", req))["status"]
        return {"status": status if status in ("Accepted", "Failed", "VersionMismatch") else "NotSupported"}

    async def on_data_transfer(self, p: Payload) -> Payload:
        """DataTransfer: the note's CSMS -> station messages, else the station's vendor handlers."""
        if p["vendorId"] != PNC_VENDOR:
            answer = await self._inner("DataTransfer", p)
            return {k: v for k, v in answer.items() if k in ("status", "data") and isinstance(v, str)}
        action = p.get("messageId") or ""
        if action not in PNC_TO_STATION:
            return {"status": "UnknownMessageId"}
        if not self.ctx.model.bool("ISO15118Ctrlr", "PnCEnabled"):
            return {"status": "Rejected", "data": json.dumps({"statusInfo": {"reasonCode": "PnCDisabled"}})}
        try:
            request = json.loads(p.get("data") or "")
            self.engine201.validate_request(action, request)
        except Exception as e:  # not JSON, or not the 2.0.1 request
            return {"status": "Rejected", "data": json.dumps({"statusInfo": {
                "reasonCode": "FormatViolation", "additionalInfo": str(e)[:512]}})}
        answer = await self._inner(action, request)
        return {"status": "Accepted", "data": json.dumps(answer, separators=(",", ":"))}

    async def on_certificate_signed(self, p: Payload) -> Payload:
        """CertificateSigned (security whitepaper): the station's own client certificate."""
        answer = await self._inner("CertificateSigned", {"certificateChain": p["certificateChain"],
                                                         "certificateType": "ChargingStationCertificate"})
        return {"status": answer["status"]}

    async def on_install_certificate(self, p: Payload) -> Payload:
        """InstallCertificate: CentralSystemRootCertificate is the CSMS root."""
        kind = {"CentralSystemRootCertificate": "CSMSRootCertificate"}.get(p["certificateType"], p["certificateType"])
        answer = await self._inner("InstallCertificate", {"certificateType": kind, "certificate": p["certificate"]})
        return {"status": answer["status"] if answer["status"] in ("Accepted", "Failed") else "Rejected"}

    async def on_installed_certificates(self, p: Payload) -> Payload:
        """GetInstalledCertificateIds of one type."""
        kind = {"CentralSystemRootCertificate": "CSMSRootCertificate"}.get(p["certificateType"], p["certificateType"])
        answer = await self._inner("GetInstalledCertificateIds", {"certificateType": [kind]})
        chains = answer.get("certificateHashDataChain") or []
        out: Payload = {"status": answer["status"]}
        if chains:
            out["certificateHashData"] = [c["certificateHashData"] for c in chains]
        return out

    async def on_delete_certificate(self, p: Payload) -> Payload:
        """DeleteCertificate."""
        return {"status": (await self._inner("DeleteCertificate", p))["status"]}
