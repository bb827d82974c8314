"""The station's OCPP 1.6J, incoming: the CSMS's 1.6 CALLs served by the station's own 2.0.1 handlers.

`Ocpp16Handlers.router` answers each 1.6 action by handing its 2.0.1 form to the services' handlers and mapping the
answer back: RemoteStart/Stop (by the CSMS's integer transaction id, through `Ocpp16Mapping`), Reset, availability,
unlock, charging profiles, the composite schedule, configuration keys onto the device model, the local list,
certificates, the security extension's SignedUpdateFirmware and GetLog, and the OCA Plug & Charge application
note's CSMS -> station messages over DataTransfer. The outgoing side is `ocpp16.py`.
"""

from __future__ import annotations

import inspect
import json
import uuid
from typing import Any

from ..ocpp import ErrorCode, OcppError, Router
from .context import StationContext
from .ocpp16 import PNC_VENDOR, Ocpp16Mapping, id_token_info

Payload = dict[str, Any]

# the application note's CSMS -> station messages (DataTransfer messageIds), served by the 2.0.1 handlers
PNC_TO_STATION = ("CertificateSigned", "InstallCertificate", "DeleteCertificate", "GetInstalledCertificateIds",
                  "TriggerMessage")
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

PURPOSE_TO_201 = {"ChargePointMaxProfile": "ChargingStationMaxProfile", "TxDefaultProfile": "TxDefaultProfile",
                  "TxProfile": "TxProfile"}
TRIGGERS_TO_201 = {"BootNotification": "BootNotification", "Heartbeat": "Heartbeat", "MeterValues": "MeterValues",
                   "StatusNotification": "StatusNotification",
                   "FirmwareStatusNotification": "FirmwareStatusNotification",
                   "DiagnosticsStatusNotification": "LogStatusNotification",
                   "LogStatusNotification": "LogStatusNotification",
                   "SignChargePointCertificate": "SignChargingStationCertificate"}


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


class Ocpp16Handlers:
    """The 1.6 CALLs of the CSMS to one station, onto the services' 2.0.1 handlers."""

    def __init__(self, ctx: StationContext, inner: Router, mapping: Ocpp16Mapping) -> None:
        self.ctx = ctx
        self.inner = inner  # the services' 2.0.1 handlers
        self.mapping = mapping  # the transactions' 1.6 ids and the 2.0.1 engine
        self.router = self._build_router()

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
        r.add("SignedUpdateFirmware", self.on_signed_update_firmware)
        r.add("GetLog", self.on_get_log)
        return r

    async def on_signed_update_firmware(self, p: Payload) -> Payload:
        """SignedUpdateFirmware (the 1.6 security extension) -> UpdateFirmware: the same request; the answer's
        status alone (1.6 has no statusInfo)."""
        answer = await self._inner("UpdateFirmware", p)
        return {"status": answer["status"]}

    async def on_get_log(self, p: Payload) -> Payload:
        """GetLog (the 1.6 security extension): the same request and answer as 2.0.1's, without statusInfo."""
        answer = await self._inner("GetLog", p)
        return {k: v for k, v in answer.items() if k in ("status", "filename")}

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
        tid = self.mapping.transaction_id(p["transactionId"])
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
            tid = self.mapping.transaction_id(profile["transactionId"])
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
            self.mapping.engine201.validate_request(action, request)
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
