"""ISO 15118-20 CommonMessages in the EXI JSON view (namespace `iso20`): builders for both roles and readers of the
other's, from SessionSetup to SessionStop (ScheduleExchange and the power profile: iso20_schedule; AC and DC
messages: iso20_ac, iso20_dc).

Each builder returns the message content without the header; `iso20_types.message()` wraps it. Readers raise
KeyError/TypeError/ValueError (or Iso20Error) on content they cannot use; the engines answer those with FAILED.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from ..model20 import EnergyService, MeterReading20, Notification, ParameterSet, ParameterValue, ServiceOffer
from .iso20_types import Body, Iso20Error, evse_status, meter_info, number, rational, read_meter_info

MAX_SERVICES = 8  # ServiceListType
MAX_PARAMETER_SETS = 32
MAX_PARAMETERS = 32
MAX_SUPPORTED_IDS = 16


def b64(data: bytes) -> str:
    """Standard base64 text (the JSON view of base64Binary)."""
    return base64.b64encode(data).decode()


# ----- SessionSetup, AuthorizationSetup, Authorization -----

def session_setup_req(evcc_id: str) -> Body:
    """SessionSetupReq."""
    return {"EVCCID": evcc_id}


def session_setup_res(code: str, evse_id: str) -> Body:
    """SessionSetupRes."""
    return {"ResponseCode": code, "EVSEID": evse_id}


def authorization_setup_res(code: str, services: Sequence[str], certificate_installation: bool,
                            challenge: bytes | None) -> Body:
    """AuthorizationSetupRes: the authorization services offered; with PnC the GenChallenge to sign."""
    out: Body = {"ResponseCode": code, "AuthorizationServices": list(services),
                 "CertificateInstallationService": certificate_installation}
    if challenge is not None:
        out["PnC_ASResAuthorizationMode"] = {"GenChallenge": b64(challenge)}
    else:
        out["EIM_ASResAuthorizationMode"] = {}
    return out


def read_authorization_setup_res(body: Body) -> tuple[list[str], bool, bytes | None]:
    """(services, certificate installation offered, GenChallenge or None)."""
    pnc = body.get("PnC_ASResAuthorizationMode")
    challenge = base64.b64decode(pnc["GenChallenge"]) if pnc else None
    return list(body["AuthorizationServices"]), bool(body["CertificateInstallationService"]), challenge


def authorization_req(pnc_mode: Body | None = None) -> Body:
    """AuthorizationReq: EIM, or PnC with the (signed) PnC_AReqAuthorizationMode."""
    if pnc_mode is None:
        return {"SelectedAuthorizationService": "EIM", "EIM_AReqAuthorizationMode": {}}
    return {"SelectedAuthorizationService": "PnC", "PnC_AReqAuthorizationMode": pnc_mode}


def read_authorization_req(body: Body) -> tuple[str, Body | None]:
    """(SelectedAuthorizationService, PnC_AReqAuthorizationMode or None)."""
    service = str(body["SelectedAuthorizationService"])
    mode = body.get("PnC_AReqAuthorizationMode")
    if service == "PnC" and mode is None:
        raise Iso20Error("PnC selected without PnC_AReqAuthorizationMode")
    return service, mode


def authorization_res(code: str, processing: str) -> Body:
    """AuthorizationRes."""
    return {"ResponseCode": code, "EVSEProcessing": processing}


# ----- ServiceDiscovery, ServiceDetail, ServiceSelection -----

def service_discovery_req(supported: Iterable[int] | None = None) -> Body:
    """ServiceDiscoveryReq, optionally naming the services the EV supports."""
    ids = list(supported or ())[:MAX_SUPPORTED_IDS]
    return {"SupportedServiceIDs": {"ServiceID": ids}} if ids else {}


def read_service_discovery_req(body: Body) -> list[int] | None:
    """The EV's SupportedServiceIDs, None if it named none."""
    ids = body.get("SupportedServiceIDs")
    return None if ids is None else [int(i) for i in ids["ServiceID"]]


def service_discovery_res(code: str, offers: Sequence[ServiceOffer], renegotiation: bool = False) -> Body:
    """ServiceDiscoveryRes: the energy transfer services (at least one entry, as the schema wants)."""
    services = [{"ServiceID": int(o.service), "FreeService": o.free} for o in offers[:MAX_SERVICES]]
    if not services:
        services = [{"ServiceID": int(EnergyService.DC), "FreeService": False}]
    return {"ResponseCode": code, "ServiceRenegotiationSupported": renegotiation,
            "EnergyTransferServiceList": {"Service": services}}


def read_service_discovery_res(body: Body) -> list[tuple[int, bool]]:
    """[(ServiceID, FreeService)] of the energy transfer services."""
    return [(int(s["ServiceID"]), bool(s["FreeService"])) for s in body["EnergyTransferServiceList"]["Service"]]


def service_detail_req(service_id: int) -> Body:
    """ServiceDetailReq."""
    return {"ServiceID": service_id}


def _parameter(name: str, value: ParameterValue) -> Body:
    """ParameterType: bool, int, RationalNumber (float) or string."""
    if isinstance(value, bool):
        return {"Name": name, "boolValue": value}
    if isinstance(value, int):
        return {"Name": name, "intValue": value}
    if isinstance(value, float):
        return {"Name": name, "rationalNumber": rational(value)}
    return {"Name": name, "finiteString": str(value)[:80]}


def _read_parameter(p: Body) -> ParameterValue:
    """The value of one ParameterType."""
    for key in ("boolValue", "byteValue", "shortValue", "intValue", "finiteString"):
        if key in p:
            return p[key]  # type: ignore[no-any-return]
    return float(number(p["rationalNumber"]) or 0.0)


def service_detail_res(code: str, service_id: int, sets: Sequence[ParameterSet]) -> Body:
    """ServiceDetailRes with the service's parameter sets (a placeholder set when there are none: the schema needs
    one)."""
    out = [{"ParameterSetID": s.set_id, "Parameter": [_parameter(k, v) for k, v in s.values.items()][:MAX_PARAMETERS]}
           for s in sets[:MAX_PARAMETER_SETS] if s.values]
    if not out:
        out = [{"ParameterSetID": 0, "Parameter": [{"Name": "None", "boolValue": False}]}]
    return {"ResponseCode": code, "ServiceID": service_id, "ServiceParameterList": {"ParameterSet": out}}


def read_service_detail_res(body: Body) -> tuple[int, list[ParameterSet]]:
    """(ServiceID, parameter sets)."""
    sets = [ParameterSet(int(s["ParameterSetID"]), {str(p["Name"]): _read_parameter(p) for p in s["Parameter"]})
            for s in body["ServiceParameterList"]["ParameterSet"]]
    return int(body["ServiceID"]), sets


def service_selection_req(service_id: int, set_id: int, vas: Sequence[tuple[int, int]] = ()) -> Body:
    """ServiceSelectionReq: the energy transfer service and its parameter set (and value-added services)."""
    out: Body = {"SelectedEnergyTransferService": {"ServiceID": service_id, "ParameterSetID": set_id}}
    if vas:
        out["SelectedVASList"] = {"SelectedService": [{"ServiceID": s, "ParameterSetID": p} for s, p in vas]}
    return out


def read_service_selection_req(body: Body) -> tuple[int, int, list[tuple[int, int]]]:
    """(ServiceID, ParameterSetID, [(VAS ServiceID, ParameterSetID)])."""
    sel = body["SelectedEnergyTransferService"]
    vas = body.get("SelectedVASList", {}).get("SelectedService", [])
    return int(sel["ServiceID"]), int(sel["ParameterSetID"]), [(int(v["ServiceID"]), int(v["ParameterSetID"]))
                                                               for v in vas]


# ----- PowerDelivery, MeteringConfirmation, SessionStop -----

def power_delivery_req(progress: str, profile: Body | None = None, processing: str = "Finished",
                       channel: str | None = None) -> Body:
    """PowerDeliveryReq: ChargeProgress Start/Stop/Standby/ScheduleRenegotiation, the EV's power profile (Start),
    BPT_ChannelSelection where the EVSE's channel needs switching."""
    out: Body = {"EVProcessing": processing, "ChargeProgress": progress}
    if profile is not None:
        out["EVPowerProfile"] = profile
    if channel is not None:
        out["BPT_ChannelSelection"] = channel
    return out


def read_power_delivery_req(body: Body) -> tuple[str, str, Body | None, str | None]:
    """(ChargeProgress, EVProcessing, EVPowerProfile or None, BPT_ChannelSelection or None)."""
    return (str(body["ChargeProgress"]), str(body["EVProcessing"]), body.get("EVPowerProfile"),
            body.get("BPT_ChannelSelection"))


def power_delivery_res(code: str, notification: Notification = Notification.NONE, max_delay: int = 0) -> Body:
    """PowerDeliveryRes (EVSEStatus only when there is something to notify)."""
    out: Body = {"ResponseCode": code}
    if notification is not Notification.NONE:
        out["EVSEStatus"] = evse_status(notification, max_delay)
    return out


def signed_metering_data(ref_id: str, session_id: str, meter: MeterReading20, tuple_id: int | None) -> Body:
    """SignedMeteringData: the meter reading the EV confirms, with the schedule tuple (scheduled) or none
    (dynamic)."""
    out: Body = {"Id": ref_id, "SessionID": session_id, "MeterInfo": meter_info(meter)}
    if tuple_id is not None:
        out["Scheduled_SMDTControlMode"] = {"SelectedScheduleTupleID": tuple_id}
    else:
        out["Dynamic_SMDTControlMode"] = {}
    return out


def metering_confirmation_req(signed: Body) -> Body:
    """MeteringConfirmationReq."""
    return {"SignedMeteringData": signed}


def read_metering_confirmation_req(body: Body) -> Body:
    """The SignedMeteringData element (checked by the SECC: session, meter, signature)."""
    data = body["SignedMeteringData"]
    if not isinstance(data, dict) or "MeterInfo" not in data:
        raise Iso20Error("SignedMeteringData without MeterInfo")
    return data


def session_stop_req(kind: str, code: str | None = None, explanation: str | None = None) -> Body:
    """SessionStopReq: Terminate, Pause or ServiceRenegotiation, with the EV's reason if any."""
    out: Body = {"ChargingSession": kind}
    if code:
        out["EVTerminationCode"] = code[:80]
    if explanation:
        out["EVTerminationExplanation"] = explanation[:160]
    return out


def read_session_stop_req(body: Body) -> str:
    """ChargingSession."""
    return str(body["ChargingSession"])


def code_only(code: str) -> Body:
    """A response that has nothing but its ResponseCode (ServiceSelectionRes, MeteringConfirmationRes, ...)."""
    return {"ResponseCode": code}


def meter_of(body: Body) -> MeterReading20 | None:
    """Helper for readers: the MeterInfo of a charge-loop response."""
    return read_meter_info(body.get("MeterInfo"))


_EMPTY_CERT = b64(b"\x30\x00")


def failed_common(name: str, code: str) -> Body:
    """A FAILED response of a CommonMessages request: mandatory elements filled with neutral placeholders."""
    placeholders: dict[str, Body] = {
        "SessionSetupRes": {"EVSEID": "ZZ00000"},
        "AuthorizationSetupRes": {"AuthorizationServices": ["EIM"], "CertificateInstallationService": False,
                                  "EIM_ASResAuthorizationMode": {}},
        "AuthorizationRes": {"EVSEProcessing": "Finished"},
        "ServiceDiscoveryRes": {"ServiceRenegotiationSupported": False,
                                "EnergyTransferServiceList": {"Service": [{"ServiceID": 2, "FreeService": False}]}},
        "ServiceDetailRes": {"ServiceID": 0, "ServiceParameterList": {"ParameterSet": [
            {"ParameterSetID": 0, "Parameter": [{"Name": "None", "boolValue": False}]}]}},
        "ScheduleExchangeRes": {"EVSEProcessing": "Finished", "Dynamic_SEResControlMode": {}},
        "CertificateInstallationRes": {
            "EVSEProcessing": "Finished", "CPSCertificateChain": {"Certificate": _EMPTY_CERT},
            "SignedInstallationData": {"Id": "id1", "ContractCertificateChain": {
                "Certificate": _EMPTY_CERT, "SubCertificates": {"Certificate": [_EMPTY_CERT]}},
                "ECDHCurve": "SECP521", "DHPublicKey": b64(bytes(133)), "SECP521_EncryptedPrivateKey": b64(bytes(94))},
            "RemainingContractCertificateChains": 0},
        "VehicleCheckInRes": {},
        "VehicleCheckOutRes": {"EVSECheckOutStatus": "Completed"},
    }
    return {"ResponseCode": code, **placeholders.get(name, {})}


def any_key(body: Body, *names: str) -> Any:
    """The first of `names` present in `body` (KeyError if none)."""
    for name in names:
        if name in body:
            return body[name]
    raise KeyError(names[0])
