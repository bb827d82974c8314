"""OCPP 2.0.1 meter values from an EVSE's meter reading (sans-I/O): the SampledValue list of a MeterValue."""

from __future__ import annotations

import math
from typing import Any

from ..hardware import MeterReading

SampledValue = dict[str, Any]


def sampled_values(reading: MeterReading, context: str, soc: float | None = None) -> list[SampledValue]:
    """The sampled values of one MeterValue: both energy registers, import and export power, the current per phase,
    the voltage, and the EV's SoC when known."""
    power = reading.power_w
    values: list[SampledValue] = [
        _value(reading.import_wh, context, "Energy.Active.Import.Register", "Wh"),
        _value(reading.export_wh, context, "Energy.Active.Export.Register", "Wh"),
        _value(max(power, 0.0), context, "Power.Active.Import", "W"),
        _value(max(-power, 0.0), context, "Power.Active.Export", "W"),
        _value(reading.current, context, "Current.Import" if power >= 0 else "Current.Export", "A"),
        _value(reading.voltage, context, "Voltage", "V"),
    ]
    if soc is not None:
        values.append(_value(soc, context, "SoC", "Percent", location="EV"))
    return values


def _value(v: float, context: str, measurand: str, unit: str, location: str = "Outlet") -> SampledValue:
    """One sampledValue entry (rounded to 3 decimals; finite)."""
    if not math.isfinite(v):
        v = 0.0
    return {"value": round(v, 3), "context": context, "measurand": measurand, "location": location,
            "unitOfMeasure": {"unit": unit}}
