"""The station's OCPP 1.6J, outgoing: its services speak 2.0.1 payloads, and this module maps them onto 1.6 at the
connection, so the services stay as they are.

`Ocpp16Mapping.send` turns each 2.0.1 CALL into its 1.6 counterpart and the 1.6 answer back into the 2.0.1 answer:
TransactionEvents become StartTransaction (when the transaction has an idToken: 1.6 starts transactions at
authorization), MeterValues with the CSMS's integer transactionId, and StopTransaction; Plug & Charge messages
(Authorize with a contract, Get15118EVCertificate, GetCertificateStatus, SignCertificate for the V2G certificate) go
as DataTransfer per the OCA application note; the ISO 15118 facts of a transaction go as DataTransfer
`org.v2gstack.iso15118`/`SessionFacts`. It keeps the map of 2.0.1 transactions to the CSMS's integer ids. The CSMS's
1.6 CALLs to the station are served by `ocpp16_handlers.py`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..constants import ISO_FACTS_VENDOR
from ..ocpp import Connection, ErrorCode
from ..ocpp.engine import RpcEngine
from ..ocpp.errors import CallErrorReceived
from .context import StationContext

log = logging.getLogger(__name__)

Payload = dict[str, Any]

PNC_VENDOR = "org.openchargealliance.iso15118pnc"
# 2.0.1 messages with no 1.6 counterpart (the note leaves ISO 15118 smart charging to 2.0.1): answered here, not sent
NOT_IN_16: dict[str, Payload] = {
    "NotifyEVChargingNeeds": {"status": "Accepted"}, "NotifyEVChargingSchedule": {"status": "Accepted"},
    "NotifyEvent": {}, "NotifyReport": {}, "ReportChargingProfiles": {}, "NotifyMonitoringReport": {},
}

# 2.0.1 -> 1.6 value sets
STATUS_16 = {"Available": "Available", "Reserved": "Reserved", "Unavailable": "Unavailable", "Faulted": "Faulted"}
STOP_REASONS_16 = {"DeAuthorized": "DeAuthorized", "EmergencyStop": "EmergencyStop",
                   "EVDisconnected": "EVDisconnected", "ImmediateReset": "HardReset", "Local": "Local",
                   "PowerLoss": "PowerLoss", "Reboot": "Reboot", "Remote": "Remote"}
MEASURANDS_16 = frozenset({
    "Energy.Active.Export.Register", "Energy.Active.Import.Register", "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval", "Power.Active.Export",
    "Power.Active.Import", "Power.Offered", "Power.Reactive.Export", "Power.Reactive.Import", "Power.Factor",
    "Current.Import", "Current.Export", "Current.Offered", "Voltage", "Frequency", "Temperature", "SoC", "RPM"})
UNITS_16 = frozenset({"Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V", "Celsius",
                      "Fahrenheit", "K", "Percent"})
LOCATIONS_16 = frozenset({"Cable", "EV", "Inlet", "Outlet", "Body"})


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
    """The 1.6 face of one station's outgoing CALLs: `wrap` gives the connection the services use."""

    def __init__(self, ctx: StationContext) -> None:
        self.ctx = ctx
        self.engine201 = RpcEngine("2.0.1")
        self.txs: dict[str, Tx16] = {}  # 2.0.1 transactionId -> its 1.6 side (kept in the state folder)
        self._path = None if ctx.config.state_dir is None else Path(ctx.config.state_dir) / "ocpp16_transactions.json"
        self._load()
        self._wrapped: tuple[Connection, Translated] | None = None
        self.reported: dict[int, str] = {}  # connectorId -> the 1.6 status last sent

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
