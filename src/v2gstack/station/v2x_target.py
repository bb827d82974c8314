"""What an EVSE should do now under OCPP 2.1 V2X, sans-I/O: from the composite period in force (ocpp/v2x_composite.py),
the grid frequency, the aFRR signal and an external actor's setpoint, the EVSE's target: the signed power the EV
should follow (negative: discharge) and the import and export limits the hardware holds.

Per operation mode (absent: ChargingOnly):
- ChargingOnly: the EV chooses within `limit` (no profile: the EVSE's rating); no discharge, except a negative
  `limit` (the 2.0.1 way of asking for discharge) or, with no profile at all, the hardware's own reach;
- CentralSetpoint, CentralFrequency: the EV follows `setpoint` (the CSMS's), within `limit` and `dischargeLimit`;
- ExternalSetpoint: the EV follows the external actor's setpoint (NotifyChargingLimit), within the limits;
- ExternalLimits, LocalLoadBalancing: the EV chooses within the limits (the external actor's are in the composite);
- LocalFrequency: the EV follows `v2xBaseline` + the frequency-watt curve at the measured frequency (+ the
  signal-watt curve at the last AFRRSignal, when the period has one), within the limits;
- Idle: nothing flows.
An EV that cannot discharge (ISO 15118-2, DIN 70121, or no bidirectional mode allowed) gets no export, and under a
setpoint its import limit is the setpoint (such an EV cannot be told a target, only limited).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..ocpp.v2x import OperationMode, Quantity, phase_fields

Payload = dict[str, Any]
FOLLOWING = frozenset({OperationMode.CENTRAL_SETPOINT, OperationMode.CENTRAL_FREQUENCY,
                       OperationMode.EXTERNAL_SETPOINT, OperationMode.LOCAL_FREQUENCY})
"""Modes in which the EV follows a setpoint (the others let it choose within the limits)."""


@dataclass(frozen=True)
class EvseTarget:
    """An EVSE's target now: `setpoint_w` the power the EV should follow (W, negative: discharge; None: it chooses
    within the limits), `import_limit_w` and `export_limit_w` what the hardware allows (W, both >= 0), the operation
    mode and where the setpoint comes from (`source`: CSMS, External, LocalFrequency, Idle or EV)."""

    mode: str
    setpoint_w: float | None
    import_limit_w: float
    export_limit_w: float
    source: str = "EV"

    def power_for(self, demand_w: float) -> float:
        """The power that flows for an EV that asks for `demand_w` and follows the setpoint when there is one."""
        wanted = demand_w if self.setpoint_w is None else self.setpoint_w
        return max(-self.export_limit_w, min(self.import_limit_w, wanted)) + 0.0

    @property
    def discharging(self) -> bool:
        """The target asks the EV to give power back."""
        return self.setpoint_w is not None and self.setpoint_w < 0


STOPPED = EvseTarget(OperationMode.CHARGING_ONLY.value, None, 0.0, 0.0, "Station")
"""Nothing may flow (no transaction, not authorized, unplugged, faulted or unavailable)."""


def total(period: Payload, q: Quantity) -> float | None:
    """A quantity of a composite period in W: the value, or the sum of L1, L2 and L3 when the period is per phase."""
    names = phase_fields(q)
    if names[0] not in period:
        return None
    if names[1] in period or names[2] in period:
        return float(sum(period.get(n, period[names[0]]) for n in names))
    return float(period[names[0]])


def curve_power(points: Sequence[Payload], axis: str, x: float) -> float:
    """A frequency-watt or signal-watt curve at `x`: linear between its points, flat beyond the first and last."""
    pts = sorted(((float(p[axis]), float(p["power"])) for p in points), key=lambda p: p[0])
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def compute_target(period: Payload | None, *, rating_w: float, discharge_rating_w: float, can_discharge: bool,
                   frequency_hz: float, afrr_signal: int | None = None, external_setpoint_w: float | None = None,
                   ) -> EvseTarget:
    """The target of one EVSE from the composite period in force now (in W; None: no profile applies)."""
    export_cap = discharge_rating_w if can_discharge else 0.0
    if period is None:
        return EvseTarget(OperationMode.CHARGING_ONLY.value, None, rating_w, export_cap)
    mode = OperationMode(period.get("operationMode", OperationMode.CHARGING_ONLY))
    if mode is OperationMode.IDLE:
        return EvseTarget(mode.value, 0.0, 0.0, 0.0, "Idle")
    limit = total(period, Quantity.LIMIT)
    discharge = total(period, Quantity.DISCHARGE_LIMIT)
    imp = rating_w if limit is None else max(0.0, min(rating_w, limit))
    if discharge is not None:
        exp = min(export_cap, max(0.0, -discharge))
    elif mode is OperationMode.CHARGING_ONLY:
        exp = min(export_cap, -limit) if limit is not None and limit < 0 else 0.0  # 2.0.1: a negative limit
    else:
        exp = export_cap
    setpoint: float | None = None
    source = "EV"
    if mode in (OperationMode.CENTRAL_SETPOINT, OperationMode.CENTRAL_FREQUENCY):
        setpoint, source = total(period, Quantity.SETPOINT), "CSMS"
    elif mode is OperationMode.EXTERNAL_SETPOINT:
        setpoint, source = external_setpoint_w, "External"
    elif mode is OperationMode.LOCAL_FREQUENCY:
        setpoint = float(period.get("v2xBaseline", 0.0))
        curve = period.get("v2xFreqWattCurve")
        if curve:
            setpoint += curve_power(curve, "frequency", frequency_hz)
        signal_curve = period.get("v2xSignalWattCurve")
        if signal_curve and afrr_signal is not None:
            setpoint += curve_power(signal_curve, "signal", float(afrr_signal))
        source = "LocalFrequency"
    if setpoint is not None:
        setpoint = max(-exp, min(imp, setpoint)) + 0.0
        if not can_discharge:  # an EV that only charges (ISO 15118-2, DIN) is held to the setpoint by the limit
            imp = max(0.0, setpoint)
    return EvseTarget(mode.value, setpoint, imp, exp, source)
