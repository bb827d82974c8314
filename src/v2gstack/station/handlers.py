"""Handlers for the CSMS-initiated OCPP 2.0.1 messages, as a Router around a ChargingStation."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..ocpp import ErrorCode, OcppError, Router
from .certificates import InstallRefused
from .smart_charging import Rejection

if TYPE_CHECKING:
    from .station import ChargingStation

log = logging.getLogger(__name__)

Payload = dict[str, Any]

# B02.FR.02/03: while Pending the CSMS may configure the station, nothing else (no transactions)
ALLOWED_WHILE_PENDING = frozenset({
    "GetVariables", "SetVariables", "GetBaseReport", "GetReport", "TriggerMessage", "SetNetworkProfile",
    "ChangeAvailability", "Reset", "DataTransfer", "ClearCache", "GetLocalListVersion", "SendLocalList",
})


def build_router(st: ChargingStation) -> Router:
    """The station's Router: every handler refuses what the registration state does not allow."""
    r = Router()

    def guarded(action: str, func: Any) -> None:
        """Register `func` behind the registration check."""

        def handler(payload: Payload) -> Payload:
            """Refuse what the registration state forbids, else run the handler."""
            if st.registration != "Accepted" and not (st.registration == "Pending"
                                                      and action in ALLOWED_WHILE_PENDING):
                raise OcppError(ErrorCode.SECURITY_ERROR, f"{action} not allowed: registration {st.registration}")
            log.info("%s: CSMS sent %s", st.config.station_id, action)
            return func(payload)

        r.add(action, handler)

    for action, func in _handlers(st).items():
        guarded(action, func)
    return r


def _evse_of(st: ChargingStation, payload: Payload) -> list[Any]:
    """The EVSEs a request's optional `evse` (or `evseId`) field designates."""
    evse = payload.get("evse")
    eid = evse["id"] if evse else payload.get("evseId")
    if eid is None:
        return list(st.evses.values())
    return [st.evses[eid]] if eid in st.evses else []


def _handlers(st: ChargingStation) -> dict[str, Any]:
    """Action -> sync handler (slow work goes to st.spawn after the answer)."""

    def request_start(p: Payload) -> Payload:
        """RequestStartTransaction: pick the EVSE, answer, then authorize and start in the background."""
        evses = ([st.evses[p["evseId"]]] if p.get("evseId") in st.evses else []) if "evseId" in p else [
            e for e in st.evses.values() if not e.authorized and e.status(st.operative) != "Unavailable"][:1]
        if not evses or evses[0].authorized or evses[0].status(st.operative) in ("Unavailable", "Faulted"):
            return {"status": "Rejected"}
        evse = evses[0]
        check = st.model.bool("AuthCtrlr", "AuthorizeRemoteStart")
        st.spawn(st.authorize(evse.id, p["idToken"], remote_start_id=p["remoteStartId"], check=check),
                 "remote-start")
        answer: Payload = {"status": "Accepted"}
        if evse.tx is not None:
            answer["transactionId"] = evse.tx.id
        return answer

    def request_stop(p: Payload) -> Payload:
        """RequestStopTransaction: end the transaction if it runs here."""
        evse = st.transaction_evse(p["transactionId"])
        if evse is None:
            return {"status": "Rejected"}
        st.spawn(st.stop_transaction(evse.id, "Remote", "RemoteStop"), "remote-stop")
        return {"status": "Accepted"}

    def reset(p: Payload) -> Payload:
        """Reset: now, when idle (Scheduled), or one EVSE's transaction."""
        if "evseId" in p:
            if p["evseId"] not in st.evses:
                return {"status": "Rejected"}
            st.spawn(st.stop_transaction(p["evseId"], "ImmediateReset", "ResetCommand"), "evse-reset")
            return {"status": "Accepted"}
        busy = any(e.tx is not None for e in st.evses.values())
        if p["type"] == "OnIdle" and busy:
            st.schedule_reset_when_idle()
            return {"status": "Scheduled"}
        st.spawn(st.reboot(), "reset")
        return {"status": "Accepted"}

    def change_availability(p: Payload) -> Payload:
        """ChangeAvailability of the station or one EVSE."""
        evse = p.get("evse")
        if evse is not None and (evse["id"] not in st.evses or evse.get("connectorId", 1) != 1):
            return {"status": "Rejected"}
        operative = p["operationalStatus"] == "Operative"
        scheduled = any(e.tx is not None for e in _evse_of(st, p)) and not operative
        st.spawn(st.change_availability(evse["id"] if evse else None, operative), "availability")
        return {"status": "Scheduled" if scheduled else "Accepted"}

    def unlock(p: Payload) -> Payload:
        """UnlockConnector: refused while an authorized transaction runs."""
        evse = st.evses.get(p["evseId"])
        if evse is None or p["connectorId"] != evse.connector_id:
            return {"status": "UnknownConnector"}
        if evse.tx is not None and evse.authorized:
            return {"status": "OngoingAuthorizedTransaction"}
        return {"status": "Unlocked"}

    def trigger(p: Payload) -> Payload:
        """TriggerMessage: send the requested message after answering."""
        what = p["requestedMessage"]
        evses = _evse_of(st, p)
        if what == "BootNotification":
            if st.registration == "Accepted":
                return {"status": "Rejected"}
            st.trigger_boot()
        elif what == "Heartbeat":
            st.spawn(st.heartbeat(), "trigger-heartbeat")
        elif what == "StatusNotification":
            for e in evses:
                st.spawn(st.send_status(e, force=True), "trigger-status")
        elif what == "MeterValues":
            for e in evses:
                st.spawn(st.send_meter_values(e), "trigger-meter")
        elif what == "TransactionEvent":
            if not [e for e in evses if st.trigger_transaction_event(e)]:
                return {"status": "Rejected"}
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted" if evses else "Rejected"}

    def get_variables(p: Payload) -> Payload:
        """GetVariables from the device model."""
        return {"getVariableResult": [st.model.get_variable(d) for d in p["getVariableData"]]}

    def set_variables(p: Payload) -> Payload:
        """SetVariables into the device model."""
        return {"setVariableResult": [st.model.set_variable(d) for d in p["setVariableData"]]}

    def get_base_report(p: Payload) -> Payload:
        """GetBaseReport: NotifyReport parts follow the answer."""
        st.spawn(st.send_report(p["requestId"], p["reportBase"]), "report")
        return {"status": "Accepted"}

    def data_transfer(p: Payload) -> Payload:
        """DataTransfer to a registered vendor handler."""
        handler = st.data_transfer.get(p["vendorId"])
        return {"status": "UnknownVendorId"} if handler is None else handler(p)

    def send_local_list(p: Payload) -> Payload:
        """SendLocalList into the local authorization list."""
        return {"status": st.auth.send_local_list(p)}

    def local_list_version(p: Payload) -> Payload:
        """GetLocalListVersion."""
        return {"versionNumber": st.auth.list_version}

    def clear_cache(p: Payload) -> Payload:
        """ClearCache of the authorization cache."""
        return {"status": st.auth.clear_cache()}

    def set_charging_profile(p: Payload) -> Payload:
        """SetChargingProfile (K01): validate and install; the new limits apply at once."""
        active = {e.id: e.tx.id for e in st.evses.values() if e.tx is not None}
        try:
            st.profiles.set(p["evseId"], p["chargingProfile"], active)
        except Rejection as e:
            log.info("%s: SetChargingProfile rejected: %s", st.config.station_id, e.info)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": e.info[:512]}}
        st.save_profiles()
        st.profiles_changed(p["evseId"])
        return {"status": "Accepted"}

    def clear_charging_profile(p: Payload) -> Payload:
        """ClearChargingProfile (K10) by id or criteria."""
        criteria = p.get("chargingProfileCriteria") or {}
        if not st.profiles.clear(p.get("chargingProfileId"), criteria):
            return {"status": "Unknown"}
        st.save_profiles()
        st.profiles_changed(criteria.get("evseId", 0))
        return {"status": "Accepted"}

    def get_charging_profiles(p: Payload) -> Payload:
        """GetChargingProfiles (K09): answer, then ReportChargingProfiles per EVSE with the same requestId."""
        found = st.profiles.report(p.get("evseId"), p["chargingProfile"])
        if not found:
            return {"status": "NoProfiles"}
        st.spawn(st.report_profiles(p["requestId"], found), "report-profiles")
        return {"status": "Accepted"}

    def get_composite_schedule(p: Payload) -> Payload:
        """GetCompositeSchedule (K08) for an EVSE or (evseId 0) the station; Rejected (K08.FR.05/07) for an unknown
        EVSE, an unsupported unit, or a schedule longer than SmartChargingCtrlr.PeriodsPerSchedule periods."""
        unit = p.get("chargingRateUnit", "W")
        if p["evseId"] != 0 and p["evseId"] not in st.evses:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        if unit not in st.model.members("SmartChargingCtrlr", "RateUnit"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRateUnit"}}
        if p["duration"] <= 0:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "ValuePositiveOnly",
                                                         "additionalInfo": "duration is at least 1 s"}}
        try:
            schedule = st.composite_schedule(p["evseId"], p["duration"], unit)
        except Rejection as e:
            log.info("%s: GetCompositeSchedule rejected: %s", st.config.station_id, e.info)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": e.info[:512]}}
        return {"status": "Accepted", "schedule": schedule}

    def install_certificate(p: Payload) -> Payload:
        """InstallCertificate (M05): a root into the station's store; Rejected/Failed with the reason why not."""
        try:
            st.certificates.install(p["certificateType"], p["certificate"])
        except InstallRefused as e:
            log.info("%s: InstallCertificate %s: %s", st.config.station_id, e.status, e.info)
            return e.answer()
        return {"status": "Accepted"}

    def get_installed(p: Payload) -> Payload:
        """GetInstalledCertificateIds (M03)."""
        found = st.certificates.installed(p.get("certificateType"))
        return {"status": "Accepted", "certificateHashDataChain": found} if found else {"status": "NotFound"}

    def delete_certificate(p: Payload) -> Payload:
        """DeleteCertificate (M04)."""
        return {"status": st.certificates.delete(p["certificateHashData"])}

    def certificate_signed(p: Payload) -> Payload:
        """CertificateSigned (A02/A03): only a chain for the key of our open request is taken."""
        return {"status": st.certificates.signed(p.get("certificateType", "ChargingStationCertificate"),
                                                 p["certificateChain"])}

    return {
        "InstallCertificate": install_certificate, "GetInstalledCertificateIds": get_installed,
        "DeleteCertificate": delete_certificate, "CertificateSigned": certificate_signed,
        "SetChargingProfile": set_charging_profile, "ClearChargingProfile": clear_charging_profile,
        "GetChargingProfiles": get_charging_profiles, "GetCompositeSchedule": get_composite_schedule,
        "RequestStartTransaction": request_start, "RequestStopTransaction": request_stop, "Reset": reset,
        "ChangeAvailability": change_availability, "UnlockConnector": unlock, "TriggerMessage": trigger,
        "GetVariables": get_variables, "SetVariables": set_variables, "GetBaseReport": get_base_report,
        "DataTransfer": data_transfer, "SendLocalList": send_local_list,
        "GetLocalListVersion": local_list_version, "ClearCache": clear_cache,
    }
