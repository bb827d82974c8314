"""Sampled values in one form: OCPP UnitOfMeasureType applied (value x 10^multiplier) and kilo units made base units.

OCPP 2.0.1 SampledValueType carries `value` with `unitOfMeasure` {unit (default "Wh" for an Energy measurand, "W"
taken for Power), multiplier (default 0)}. Energy is totalled in Wh and power in W everywhere in v2gstack, so every
reader (CSMS store, trace merge) normalises with `normalise` instead of reading `value` as it was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ErrorCode, OcppError

DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# kilo units of the OCPP list of standardized units -> the base unit they are stored in (x 1000)
KILO_UNITS = {"kWh": "Wh", "kW": "W", "kvarh": "varh", "kvar": "var", "kVA": "VA", "kVAh": "VAh"}
MAX_MULTIPLIER = 30  # |exponent| beyond any real meter; a larger one is refused rather than overflowed


class MeterValueError(OcppError):
    """A sampled value that cannot be represented (absurd multiplier, not finite): PropertyConstraintViolation."""

    def __init__(self, description: str) -> None:
        super().__init__(ErrorCode.PROPERTY_CONSTRAINT_VIOLATION, description)


@dataclass(frozen=True, slots=True)
class Normalised:
    """A sampled value in its base unit (`value`, `unit`) and as it was sent (`sent_value`, `sent_unit`,
    `multiplier`)."""

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
    measurand = sv.get("measurand", DEFAULT_MEASURAND)
    uom = sv.get("unitOfMeasure") or {}
    unit = str(uom.get("unit", default_unit(measurand)))
    multiplier = uom.get("multiplier", 0)
    if not isinstance(multiplier, int) or isinstance(multiplier, bool) or abs(multiplier) > MAX_MULTIPLIER:
        raise MeterValueError(f"unitOfMeasure.multiplier {multiplier!r} is not an integer within "
                              f"+-{MAX_MULTIPLIER}")
    try:
        sent = Decimal(str(sv["value"]))  # the decimal the station wrote: 7.4 x 10^3 is exactly 7400
    except (InvalidOperation, KeyError):
        raise MeterValueError(f"sampledValue.value {sv.get('value')!r} is not a number") from None
    scaled = sent.scaleb(multiplier)
    base = KILO_UNITS.get(unit)
    if base is not None:
        scaled *= 1000
    value = float(scaled)
    if not math.isfinite(value) or not math.isfinite(float(sent)):
        raise MeterValueError(f"sampledValue.value {sv['value']!r} x 10^{multiplier} {unit} is not finite")
    return Normalised(value, base or unit, float(sent), unit, multiplier)


def energy_wh(sv: dict[str, Any]) -> float | None:
    """An Energy.Active.Import.Register sampled value in Wh (None for another measurand or a non-energy unit)."""
    if sv.get("measurand", DEFAULT_MEASURAND) != DEFAULT_MEASURAND:
        return None
    try:
        n = normalise(sv)
    except MeterValueError:
        return None
    return n.value if n.unit == "Wh" else None
