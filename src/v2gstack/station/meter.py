"""A simulated, physically consistent energy meter for one EVSE (sans-I/O: it is told the time and the power)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SampledValue = dict[str, Any]


@dataclass(slots=True)
class Meter:
    """Integrates power over time: energy registers only move by power x elapsed time, never jump.

    Power is positive when importing (charging the EV) and negative when exporting (V2G discharge).
    """

    voltage: float = 230.0  # V, per phase
    phases: int = 3
    import_wh: float = 0.0  # Energy.Active.Import.Register
    export_wh: float = 0.0  # Energy.Active.Export.Register
    power_w: float = 0.0
    soc: float | None = None  # percent, when the EV tells it (ISO 15118) or the simulation knows it
    battery_wh: float | None = None  # EV battery capacity, for a simulated SoC
    last_t: float = 0.0

    def advance(self, t: float) -> None:
        """Integrate the present power up to simulated time `t` (seconds)."""
        dt = t - self.last_t
        if dt <= 0:
            return
        wh = self.power_w * dt / 3600.0
        if wh >= 0:
            self.import_wh += wh
        else:
            self.export_wh -= wh
        if self.soc is not None and self.battery_wh:
            self.soc = min(100.0, max(0.0, self.soc + 100.0 * wh / self.battery_wh))
        self.last_t = t

    def set_power(self, watts: float, t: float) -> None:
        """Change the power from time `t` on (energy so far is integrated at the old power first)."""
        self.advance(t)
        self.power_w = watts

    def registers(self) -> dict[str, float]:
        """The energy registers, to keep them across a restart (a real meter does not reset)."""
        return {"import_wh": self.import_wh, "export_wh": self.export_wh}

    def restore(self, registers: dict[str, float]) -> None:
        """Continue from registers saved by an earlier run."""
        self.import_wh = registers.get("import_wh", 0.0)
        self.export_wh = registers.get("export_wh", 0.0)

    def current_a(self) -> float:
        """Current per phase for the present power."""
        return abs(self.power_w) / (self.voltage * self.phases)

    def sample(self, t: float, context: str) -> list[SampledValue]:
        """The sampled values of an OCPP 2.0.1 MeterValue at time `t` (after integrating up to it)."""
        self.advance(t)
        values: list[SampledValue] = [
            _value(self.import_wh, context, "Energy.Active.Import.Register", "Wh"),
            _value(self.export_wh, context, "Energy.Active.Export.Register", "Wh"),
            _value(max(self.power_w, 0.0), context, "Power.Active.Import", "W"),
            _value(max(-self.power_w, 0.0), context, "Power.Active.Export", "W"),
            _value(self.current_a(), context, "Current.Import" if self.power_w >= 0 else "Current.Export", "A"),
            _value(self.voltage, context, "Voltage", "V"),
        ]
        if self.soc is not None:
            values.append(_value(self.soc, context, "SoC", "Percent", location="EV"))
        return values


def _value(v: float, context: str, measurand: str, unit: str, location: str = "Outlet") -> SampledValue:
    """One sampledValue entry (rounded to 3 decimals; finite)."""
    if not math.isfinite(v):
        v = 0.0
    return {"value": round(v, 3), "context": context, "measurand": measurand, "location": location,
            "unitOfMeasure": {"unit": unit}}
