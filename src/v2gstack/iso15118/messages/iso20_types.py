"""Shared pieces of the ISO 15118-20 messages (V2G_CI_CommonTypes.xsd) in the EXI JSON view: RationalNumber, the
message header, EVSEStatus, MeterInfo and DisplayParameters.

RationalNumber conversions live here and only here: `rational(x)` codes a float as Value x 10^Exponent with Value an
xs:short and the finest exponent that fits (at most three decimals), `number(d)` reads one back.
"""

from __future__ import annotations

import base64
import functools
import time
from typing import Any

from ..model import Step
from ..model20 import MeterReading20, Notification

Body = dict[str, Any]
NEW_SESSION_ID20 = "0000000000000000"  # sessionIDType is hexBinary of 8 bytes
_SHORT_MIN, _SHORT_MAX = -32768, 32767
_MIN_EXPONENT = -3


REQUESTS20: dict[str, tuple[Step, str]] = {
    "SessionSetupReq": (Step.SESSION_SETUP, "iso20"), "AuthorizationSetupReq": (Step.AUTHORIZATION_SETUP, "iso20"),
    "AuthorizationReq": (Step.AUTHORIZATION, "iso20"), "ServiceDiscoveryReq": (Step.SERVICE_DISCOVERY, "iso20"),
    "ServiceDetailReq": (Step.SERVICE_DETAIL, "iso20"), "ServiceSelectionReq": (Step.SERVICE_SELECTION, "iso20"),
    "ScheduleExchangeReq": (Step.SCHEDULE_EXCHANGE, "iso20"), "PowerDeliveryReq": (Step.POWER_DELIVERY, "iso20"),
    "MeteringConfirmationReq": (Step.METERING_CONFIRMATION, "iso20"), "SessionStopReq": (Step.SESSION_STOP, "iso20"),
    "CertificateInstallationReq": (Step.CERTIFICATE_INSTALLATION, "iso20"),
    "VehicleCheckInReq": (Step.VEHICLE_CHECK_IN, "iso20"), "VehicleCheckOutReq": (Step.VEHICLE_CHECK_OUT, "iso20"),
    "AC_ChargeParameterDiscoveryReq": (Step.CHARGE_PARAMETER_DISCOVERY, "iso20_ac"),
    "AC_ChargeLoopReq": (Step.CHARGE_LOOP, "iso20_ac"),
    "DC_ChargeParameterDiscoveryReq": (Step.CHARGE_PARAMETER_DISCOVERY, "iso20_dc"),
    "DC_CableCheckReq": (Step.CABLE_CHECK, "iso20_dc"), "DC_PreChargeReq": (Step.PRE_CHARGE, "iso20_dc"),
    "DC_ChargeLoopReq": (Step.CHARGE_LOOP, "iso20_dc"), "DC_WeldingDetectionReq": (Step.WELDING_DETECTION, "iso20_dc"),
}
"""Every -20 request of the AC/DC flows: its Step and the namespace it is coded with (its response: ...Res)."""


RESPONSE_CODES20 = frozenset({
    "OK", "OK_CertificateExpiresSoon", "OK_NewSessionEstablished", "OK_OldSessionJoined", "OK_PowerToleranceConfirmed",
    "WARNING_AuthorizationSelectionInvalid", "WARNING_CertificateExpired", "WARNING_CertificateNotYetValid",
    "WARNING_CertificateRevoked", "WARNING_CertificateValidationError", "WARNING_ChallengeInvalid",
    "WARNING_EIMAuthorizationFailure", "WARNING_eMSPUnknown", "WARNING_EVPowerProfileViolation",
    "WARNING_GeneralPnCAuthorizationError", "WARNING_NoCertificateAvailable", "WARNING_NoContractMatchingPCIDFound",
    "WARNING_PowerToleranceNotConfirmed", "WARNING_ScheduleRenegotiationFailed", "WARNING_StandbyNotAllowed",
    "WARNING_WPT", "FAILED", "FAILED_AssociationError", "FAILED_ContactorError", "FAILED_EVPowerProfileInvalid",
    "FAILED_EVPowerProfileViolation", "FAILED_MeteringSignatureNotValid", "FAILED_NoEnergyTransferServiceSelected",
    "FAILED_NoServiceRenegotiationSupported", "FAILED_PauseNotAllowed", "FAILED_PowerDeliveryNotApplied",
    "FAILED_PowerToleranceNotConfirmed", "FAILED_ScheduleRenegotiation", "FAILED_ScheduleSelectionInvalid",
    "FAILED_SequenceError", "FAILED_ServiceIDInvalid", "FAILED_ServiceSelectionInvalid", "FAILED_SignatureError",
    "FAILED_UnknownSession", "FAILED_WrongChargeParameter"})
"""responseCodeType of V2G_CI_CommonTypes.xsd."""


def response_name(request: str) -> str:
    """SessionSetupReq -> SessionSetupRes."""
    return request[:-3] + "Res"


class Iso20Error(ValueError):
    """A -20 document we cannot use: no message element, or a field out of range."""


def rational(x: float) -> Body:
    """A RationalNumber for `x`: the finest exponent (from -3 up) whose Value fits an xs:short, trailing zeros of a
    negative exponent moved into it. Each caller gets a dict of its own; recent values are looked up."""
    exponent, value = _rational_parts(x)
    return {"Exponent": exponent, "Value": value}


@functools.lru_cache(maxsize=4096)
def _rational_parts(x: float) -> tuple[int, int]:
    """(Exponent, Value) of the RationalNumber for `x` (a charge loop sends the same few values)."""
    for exponent in range(_MIN_EXPONENT, 128):
        value = round(x * 10 ** -exponent) if exponent < 0 else round(x / 10**exponent)
        if _SHORT_MIN <= value <= _SHORT_MAX:
            break
    else:  # pragma: no cover - a float beyond 10^131 is no power or energy
        raise Iso20Error(f"{x!r} does not fit a RationalNumber")
    while exponent < 0 and value % 10 == 0 and value != 0:
        value //= 10
        exponent += 1
    if value == 0:
        exponent = 0
    return exponent, int(value)


def number(d: Body | None) -> float | None:
    """The float of a RationalNumber, None for a missing one."""
    if d is None:
        return None
    value, exponent = int(d["Value"]), int(d["Exponent"])
    return value / 10.0 ** -exponent if exponent < 0 else value * 10.0 ** exponent


def need(d: Body | None, what: str = "value") -> float:
    """The float of a mandatory RationalNumber (Iso20Error if absent)."""
    x = number(d)
    if x is None:
        raise Iso20Error(f"{what} missing")
    return x


def magnitude(d: Body | None) -> float | None:
    """A limit read as a magnitude (peers disagree on the sign of discharge limits)."""
    x = number(d)
    return None if x is None else abs(x)


def put(out: Body, name: str, x: float | None) -> None:
    """Set `name` to a RationalNumber of `x` unless `x` is None."""
    if x is not None:
        out[name] = rational(x)


def header(session_id: str, timestamp: int | None = None, signature: Body | None = None) -> Body:
    """MessageHeaderType: SessionID, TimeStamp (UNIX seconds) and an optional Signature."""
    out: Body = {"SessionID": session_id, "TimeStamp": int(time.time()) if timestamp is None else timestamp}
    if signature is not None:
        out["Signature"] = signature
    return out


def message(name: str, session_id: str, body: Body, signature: Body | None = None) -> dict[str, Any]:
    """A whole -20 document: {name: {"Header": ..., **body}} (the header first, as the schema orders it)."""
    return {name: {"Header": header(session_id, signature=signature), **body}}


def split20(doc: dict[str, Any]) -> tuple[str, str, Body, Body]:
    """(SessionID, message name, content without the header, header) of a -20 document."""
    if len(doc) != 1:
        raise Iso20Error("a -20 document has exactly one message element")
    (name, content), = doc.items()
    if not isinstance(content, dict) or "Header" not in content:
        raise Iso20Error(f"{name} has no Header")
    head = content["Header"]
    body = {k: v for k, v in content.items() if k != "Header"}
    return str(head["SessionID"]), name, body, head


def evse_status(notification: Notification, max_delay: int = 0) -> Body:
    """EVSEStatusType."""
    return {"NotificationMaxDelay": max(0, min(65535, int(max_delay))), "EVSENotification": notification.value}


def read_evse_status(body: Body) -> tuple[Notification, int]:
    """(notification, NotificationMaxDelay) of a response's EVSEStatus (None when absent)."""
    st = body.get("EVSEStatus")
    if not st:
        return Notification.NONE, 0
    return Notification(st["EVSENotification"]), int(st["NotificationMaxDelay"])


def meter_info(m: MeterReading20) -> Body:
    """MeterInfoType (BPT: BPT_DischargedEnergyReadingWh)."""
    out: Body = {"MeterID": m.meter_id[:32], "ChargedEnergyReadingWh": max(0, int(m.imported_wh))}
    if m.exported_wh:
        out["BPT_DischargedEnergyReadingWh"] = max(0, int(m.exported_wh))
    if m.signature is not None:
        out["MeterSignature"] = base64.b64encode(m.signature[:64]).decode()
    if m.timestamp is not None:
        out["MeterTimestamp"] = int(m.timestamp)
    return out


def read_meter_info(d: Body | None) -> MeterReading20 | None:
    """MeterReading20 of a MeterInfo element."""
    if d is None:
        return None
    sig = d.get("MeterSignature")
    return MeterReading20(str(d["MeterID"]), int(d["ChargedEnergyReadingWh"]),
                          int(d.get("BPT_DischargedEnergyReadingWh", 0)), d.get("MeterTimestamp"),
                          base64.b64decode(sig) if sig else None)


def display_parameters(soc: float | None, *, min_soc: int | None = None, target_soc: int | None = None,
                       max_soc: int | None = None, complete: bool | None = None,
                       capacity_wh: float | None = None) -> Body:
    """DisplayParametersType with what is known."""
    out: Body = {}
    if soc is not None:
        out["PresentSOC"] = max(0, min(100, int(soc)))
    for name, v in (("MinimumSOC", min_soc), ("TargetSOC", target_soc), ("MaximumSOC", max_soc)):
        if v is not None:
            out[name] = max(0, min(100, int(v)))
    if complete is not None:
        out["ChargingComplete"] = complete
    put(out, "BatteryEnergyCapacity", capacity_wh)
    return out
