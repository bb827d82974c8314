"""Sampled values in one form: OCPP UnitOfMeasureType applied (value x 10^multiplier) and kilo units made base units.

OCPP 2.0.1 SampledValueType carries `value` with `unitOfMeasure` {unit (default "Wh" for an Energy measurand, "W"
taken for Power), multiplier (default 0)}. Energy is totalled in Wh and power in W everywhere in v2gstack, so every
reader (CSMS store, trace merge) normalises with `normalise` instead of reading `value` as it was sent.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, NamedTuple

from .errors import ErrorCode, OcppError

DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# kilo units of the OCPP list of standardized units -> the base unit they are stored in (x 1000)
KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA", "kVAh": "VAh"}
MAX_MULTIPLIER = 30  # |exponent| beyond any real meter; a larger one is refused rather than overflowed


class MeterValueError(OcppError):
    """A sampled value that cannot be represented (absurd multiplier, not finite): PropertyConstraintViolation."""

    def __init__(self, description: str) -> None:
        super().__init__(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, description)


class Normalised(NamedTuple):
    """A sampled value in its base unit (`value`, `unit`) and as it was sent (`sent_value`, `sent_unit`,
    `multiplier`). A named tuple: made for every sampled value the CSMS stores, and a tuple is built in C (a frozen
    dataclass cost several times more per value)."""

    value: float
    unit: str
    sent_value: float
    sent_unit: str
    multiplier: int


def default_unit(measurand: str) -> str:
    """The unit of a sampled value without unitOfMeasure: Wh for Energy, W for Power, none for the rest."""
    return "Wh" if measurand.startswith("Energy") else "W" if measurand.startswith("Power") else ""


def normalise(sv: dict[str, Any]) -> Normalised:
    """One SampledValueType as (value x 10^multiplier, x 1000 for a kilo unit) in its base unit."""
    uom = sv.get("unitOfMeasure")
    if uom is None:
        uom = {}
    unit = uom.get("unit")
    if unit is None:
        unit = default_unit(sv.get("measurand", DEFAULT_MEASURAND))
    multiplier = uom.get("multiplier", 0)
    value = sv.get("value")
    if type(value) not in (int, float):  # bool is no number here, as in the JSON schema
        raise MeterValueError(f"sampledValue.value {value!r} is not a number")
    try:
        sent = float(value)
    except OverflowError:  # an integer beyond any float
        raise MeterValueError("sampledValue.value is an integer beyond any float") from None
    base = KILO_UNITS.get(unit)
    if multiplier == 0 and type(multiplier) is int and base is None and math.isfinite(sent):
        return Normalised(sent, unit, sent, unit, 0)  # the common case, on the CSMS's hot path
    if type(multiplier) is not int or abs(multiplier) > MAX_MULTIPLIER:
        raise MeterValueError(f"unitOfMeasure.multiplier {multiplier!r} is not an integer within "
                              f"+-{MAX_MULTIPLIER}")
    scaled = Decimal(str(value)).scaleb(multiplier)  # the decimal the station wrote: 7.4 x 10^3 is exactly 7400
    if base is not None:
        scaled *= 1000
    result = float(scaled)
    if not math.isfinite(result) or not math.isfinite(sent):
        raise MeterValueError(f"sampledValue.value {value!r} x 10^{multiplier} {unit} is not finite")
    return Normalised(result, base or unit, sent, unit, multiplier)


def energy_wh(sv: dict[str, Any]) -> float | None:
    """An Energy.Active.Import.Register sampled value in Wh (None for another measurand or a non-energy unit)."""
    if sv.get("measurand", DEFAULT_MEASURAND) != DEFAULT_MEASURAND:
        return None
    try:
        n = normalise(sv)
    except MeterValueError:
        return None
    return n.value if n.unit == "Wh" else None
