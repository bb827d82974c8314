"""OCPP meter values from an EVSE's meter reading (sans-I/O): the SampledValue list of a MeterValue, per version."""

from __future__ import annotations

import base64
import math
from typing import Any

from ..hardware import MeterReading, SignedReading

SampledValue = dict[str, Any]
ONLY_21 = frozenset({"Power.Active.Setpoint"})
"""Measurands OCPP 2.0.1 does not have (a 2.0.1 CSMS never gets them)."""
SIGNED = frozenset({"Energy.Active.Import.Register", "Energy.Active.Export.Register"})
"""The registers a signing meter's record covers."""


def sampled_values(reading: MeterReading, context: str, soc: float | None = None, *, version: str = "2.0.1",
                   setpoint_w: float | None = None, signed: SignedReading | None = None,
                   public_key: bool = False) -> list[SampledValue]:
    """The sampled values of one MeterValue: both energy registers (each with the meter's signed record when
    `signed`, its public key too when `public_key`), import and export power, Energy.Active.Net (the reported import
    register minus the reported export register),
    the current per phase, the voltage, the EV's SoC when known, and (2.1) the power setpoint in force."""
    power = reading.power_w
    values: list[SampledValue] = [
        _value(reading.import_wh, context, "Energy.Active.Import.Register", "Wh"),
        _value(reading.export_wh, context, "Energy.Active.Export.Register", "Wh"),
        _value(max(power, 0.0), context, "Power.Active.Import", "W"),
        _value(max(-power, 0.0), context, "Power.Active.Export", "W"),
        _value(reading.current, context, "Current.Import" if power >= 0 else "Current.Export", "A"),
        _value(reading.voltage, context, "Voltage", "V"),
        _value(round(reading.import_wh, 3) - round(reading.export_wh, 3), context, "Energy.Active.Net", "Wh"),
    ]
    if soc is not None:
        values.append(_value(soc, context, "SoC", "Percent", location="EV"))
    if setpoint_w is not None:
        values.append(_value(setpoint_w, context, "Power.Active.Setpoint", "W"))
    if version != "2.1":
        values = [v for v in values if v["measurand"] not in ONLY_21]
    if signed is not None:
        for v in values:
            if v["measurand"] in SIGNED:
                v["signedMeterValue"] = signed_meter_value(signed, version, public_key)
    return values


def signed_meter_value(signed: SignedReading, version: str, public_key: bool) -> dict[str, Any]:
    """SignedMeterValueType: the record base64 (as OCPP says), its format and algorithm, and the meter's key when
    asked (base64 DER; 2.0.1 requires the field, empty when the key is not sent)."""
    out: dict[str, Any] = {"signedMeterData": base64.b64encode(signed.record.encode()).decode(),
                           "encodingMethod": signed.encoding, "signingMethod": signed.method}
    if public_key:
        out["publicKey"] = base64.b64encode(bytes.fromhex(signed.public_key)).decode()
    elif version != "2.1":
        out["publicKey"] = ""
    return out


def _value(v: float, context: str, measurand: str, unit: str, location: str = "Outlet") -> SampledValue:
    """One sampledValue entry (rounded to 3 decimals; finite)."""
    if not math.isfinite(v):
        v = 0.0
    return {"value": round(v, 3), "context": context, "measurand": measurand, "location": location,
            "unitOfMeasure": {"unit": unit}}


def queued_for(action: str, payload: dict[str, Any], version: str) -> dict[str, Any]:
    """A queued message made for OCPP 2.1, as a 2.0.1 connection may carry it (the CSMS came back speaking 2.0.1):
    without operationMode and the 2.1-only measurands, OperationModeChanged told as ChargingStateChanged, a signed
    value with the fields 2.0.1 requires. Unchanged for 2.1 and for anything but a TransactionEvent."""
    if version == "2.1" or action != "TransactionEvent":
        return payload
    # copied only where it changes (a deepcopy of each event was most of the sender's CPU in a grid signal's burst,
    # a TransactionEvent per car); the parts left as they were are shared with the queued original, never changed
    p = dict(payload)
    p["transactionInfo"] = {k: v for k, v in payload["transactionInfo"].items() if k != "operationMode"}
    if p.get("triggerReason") == "OperationModeChanged":
        p["triggerReason"] = "ChargingStateChanged"
    meter = []
    for mv in payload.get("meterValue", []):
        values = []
        for sv in mv["sampledValue"]:
            if sv.get("measurand") in ONLY_21:
                continue
            signed = sv.get("signedMeterValue")
            if signed is not None:
                sv = {**sv, "signedMeterValue": {"signingMethod": "", "publicKey": "", **signed}}
            values.append(sv)
        if values:
            meter.append({**mv, "sampledValue": values})
    if meter:
        p["meterValue"] = meter
    else:
        p.pop("meterValue", None)
    return p
