"""The EV model behind the EVCC: battery capacity, SoC, limits, departure time and simple charging physics.

Physics: the pack voltage rises linearly with SoC; DC current is the smallest of the EV's and EVSE's current and
power limits, tapering linearly above the bulk SoC (a crude CC-CV); energy in = power x time x `speedup`, where
`speedup` lets demos and tests fill a battery in seconds. For bidirectional power transfer (ISO 15118-20 BPT) the
battery also discharges, never below `min_soc`, and the energy fed back is counted apart (`discharged_wh`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import DCEVStatus


@dataclass
class EVModel:
    """A battery electric vehicle as the EVCC sees it."""

    capacity_wh: float = 60_000.0
    soc: float = 30.0
    target_soc: float = 80.0
    bulk_soc: int = 80
    full_soc: int = 100
    dc_max_current: float = 125.0
    dc_max_voltage: float = 450.0
    dc_max_power: float = 50_000.0
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    ac_max_voltage: float = 400.0
    ac_phases: int = 3
    departure_time: int = 7200  # seconds from now
    pack_voltage_empty: float = 330.0
    pack_voltage_full: float = 420.0
    speedup: float = 1.0
    energy_wh: float = 0.0  # charged in this session
    # ISO 15118-20: the SoC window and the limits of both directions
    min_soc: float = 20.0  # never discharge below (and the minimum the EV asks for)
    max_soc: float = 100.0
    ac_max_power: float = 22_000.0
    ac_min_power: float = 1_400.0
    ac_max_discharge_power: float = 11_000.0
    dc_max_discharge_power: float = 25_000.0
    dc_max_discharge_current: float = 80.0
    dc_min_voltage: float = 200.0
    discharged_wh: float = 0.0  # fed back in this session
    max_step_wh: float = 0.0  # the most moved in one step (one charge-loop interval), either way

    @property
    def pack_voltage(self) -> float:
        """Battery voltage at the present SoC."""
        return self.pack_voltage_empty + (self.pack_voltage_full - self.pack_voltage_empty) * self.soc / 100.0

    @property
    def requested_energy(self) -> float:
        """Wh still needed to reach the target SoC."""
        return max(0.0, (self.target_soc - self.soc) / 100.0 * self.capacity_wh)

    @property
    def capacity_to_full(self) -> float:
        """Wh needed to reach 100 %."""
        return max(0.0, (100.0 - self.soc) / 100.0 * self.capacity_wh)

    @property
    def full(self) -> bool:
        """Whether the target SoC is reached."""
        return self.soc >= self.target_soc

    def dc_status(self, ready: bool = True) -> DCEVStatus:
        """DC_EVStatus now."""
        return DCEVStatus(ready=ready, error_code="NO_ERROR", soc=max(0, min(100, int(self.soc))))

    def charge(self, power_w: float, dt_s: float) -> float:
        """Take `power_w` for `dt_s` real seconds (times `speedup`); return the Wh added."""
        if power_w <= 0 or dt_s <= 0:
            return 0.0
        wh = min(power_w * dt_s * self.speedup / 3600.0, self.capacity_to_full)
        self.energy_wh += wh
        self.max_step_wh = max(self.max_step_wh, wh)
        self.soc = min(100.0, self.soc + wh / self.capacity_wh * 100.0)
        return wh

    def discharge(self, power_w: float, dt_s: float) -> float:
        """Feed back `power_w` (a magnitude) for `dt_s` real seconds (times `speedup`), never below `min_soc`;
        return the Wh given."""
        if power_w <= 0 or dt_s <= 0:
            return 0.0
        room = max(0.0, (self.soc - self.min_soc) / 100.0 * self.capacity_wh)
        wh = min(power_w * dt_s * self.speedup / 3600.0, room)
        self.discharged_wh += wh
        self.max_step_wh = max(self.max_step_wh, wh)
        self.soc = max(self.min_soc, self.soc - wh / self.capacity_wh * 100.0)
        return wh

    def transfer(self, power_w: float, dt_s: float) -> float:
        """Signed power: take (positive) or feed back (negative) for `dt_s` seconds; return the Wh moved."""
        return self.charge(power_w, dt_s) if power_w >= 0 else -self.discharge(-power_w, dt_s)

    @property
    def can_discharge(self) -> bool:
        """Whether the SoC is above the minimum."""
        return self.soc > self.min_soc

    def energy_to(self, soc: float) -> float:
        """Wh from the present SoC to `soc` (negative when below the present SoC)."""
        return (soc - self.soc) / 100.0 * self.capacity_wh

    def dc_request(self, evse_max_current: float | None, evse_max_power: float | None) -> tuple[float, float]:
        """(EVTargetVoltage, EVTargetCurrent) for the next CurrentDemandReq."""
        voltage = min(self.dc_max_voltage, self.pack_voltage + 10.0)
        current = min(self.dc_max_current, self.dc_max_power / voltage)
        if evse_max_current:
            current = min(current, evse_max_current)
        if evse_max_power:
            current = min(current, evse_max_power / voltage)
        if self.soc > self.bulk_soc:
            current *= max(0.1, (100.0 - self.soc) / max(1.0, 100.0 - self.bulk_soc))
        return round(voltage, 1), round(max(0.0, current), 1)

    def ac_power(self, evse_max_current: float | None, nominal_voltage: float) -> float:
        """AC power drawn at the EVSE's current limit (nominal voltage taken as phase voltage if < 300 V)."""
        current = min(self.ac_max_current, evse_max_current if evse_max_current is not None else self.ac_max_current)
        if current < self.ac_min_current:
            return 0.0
        phase_voltage = nominal_voltage if nominal_voltage < 300 else nominal_voltage / 3**0.5
        return current * phase_voltage * self.ac_phases

    def remaining_time(self, power_w: float, to_soc: float) -> float:
        """Seconds to reach `to_soc` at `power_w` (0 if already there, capped for a zero power)."""
        need = max(0.0, (to_soc - self.soc) / 100.0 * self.capacity_wh)
        if need == 0:
            return 0.0
        if power_w <= 0:
            return 86400.0
        return min(86400.0, need / power_w * 3600.0 / self.speedup)
