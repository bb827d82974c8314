"""A simulated EVSE implementing EVSEController: authorizes EIM, a simple power stage, contactors and a meter.

Deterministic by design (rounds count requests, not wall time) except for the meter, which integrates power over the
injected clock. Knobs let tests provoke Ongoing loops, StopCharging, isolation faults and contactor errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..pki.contracts import ContractService
from . import pnc
from .events import SessionEnded
from .evse import AuthorizationStatus, CableCheckResult, EVSEController, SessionInfo
from .model import (
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    DCOutput,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    PMaxEntry,
    SASchedule,
    Service,
    TariffEntry,
    is_dc,
)


@dataclass
class SimulatedEVSEConfig:
    """Limits and behaviour of the simulated EVSE."""

    evse_id: str = "DE*V2G*E00001*1"
    din_evse_id: str = "00"
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    payment_options: tuple[str, ...] = ("ExternalPayment",)
    services: tuple[Service, ...] = ()
    authorize: bool = True
    auth_ongoing_rounds: int = 0
    schedule_ongoing_rounds: int = 0
    cable_check_rounds: int = 1
    isolation: str = "Valid"
    nominal_voltage: float = 230.0
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    dc_max_current: float = 200.0
    dc_max_power: float = 50_000.0
    dc_max_voltage: float = 500.0
    dc_min_current: float = 0.0
    dc_min_voltage: float = 150.0
    dc_peak_current_ripple: float = 5.0
    precharge_step: float = 200.0  # volts per PreChargeReq
    schedule_duration: int = 86400
    sales_tariff: bool = False  # add an unsigned two-level SalesTariff (-2) to the schedule
    stop_after_loops: int | None = None  # send EVSENotification=StopCharging after this many charge-loop messages
    renegotiate_after_loops: int | None = None  # ask once for ReNegotiation (-2) after this many loop messages
    contactor_fault: bool = False
    receipt_required: bool = False
    meter_id: str = "SIM-METER-0001"
    contract_service: ContractService | None = None  # answers CertificateInstallationReq locally (tests, demos)


class SimulatedEVSE(EVSEController):
    """EVSEController for tests, demos and the standalone SECC."""

    def __init__(self, config: SimulatedEVSEConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SimulatedEVSEConfig()
        self.clock = clock
        self.auth_calls = 0
        self.schedule_calls = 0
        self.cable_check_calls = 0
        self.loops = 0
        self.voltage = 0.0
        self.current = 0.0
        self.contactors_closed = False
        self.isolation: str | None = None
        self.energy_wh = 0.0
        self._last_tick: float | None = None
        self.ev: EVChargeParameters | None = None
        self.events: list[str] = []
        self.ended: SessionEnded | None = None

    # ----- identity and offer -----

    def evse_id(self, protocol: str) -> str:
        """EVSEID per protocol."""
        return self.config.din_evse_id if protocol == "din" else self.config.evse_id

    def payment_options(self) -> list[str]:
        """Offered payment options."""
        return list(self.config.payment_options)

    def energy_modes(self) -> list[str]:
        """Supported energy transfer modes."""
        return list(self.config.energy_modes)

    def services(self) -> list[Service]:
        """Value-added services."""
        return list(self.config.services)

    def session_started(self, info: SessionInfo) -> None:
        """Record the start."""
        self.events.append(f"started {info.session_id}{' (resumed)' if info.resumed else ''}")

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """Ongoing for the configured rounds, then accepted or rejected."""
        self.auth_calls += 1
        if self.auth_calls <= self.config.auth_ongoing_rounds:
            return AuthorizationStatus.ONGOING
        return AuthorizationStatus.ACCEPTED if self.config.authorize else AuthorizationStatus.REJECTED

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """One schedule at full power for a day, after the configured Ongoing rounds."""
        self.schedule_calls += 1
        self.ev = ev
        if self.schedule_calls <= self.config.schedule_ongoing_rounds:
            return None
        c = self.config
        pmax = c.dc_max_power if is_dc(ev.mode) else c.nominal_voltage * c.ac_max_current * self._phases(ev.mode)
        tariff = None
        if c.sales_tariff and info.protocol == "iso2":
            half = c.schedule_duration // 2
            tariff = (TariffEntry(0, 1), TariffEntry(half, 2, c.schedule_duration - half))
        return [SASchedule(1, (PMaxEntry(0, pmax, c.schedule_duration),), tariff, price_levels=2)]

    @staticmethod
    def _phases(mode: str) -> int:
        """Phases of an AC mode."""
        return 3 if mode == "AC_three_phase_core" else 1

    def ac_parameters(self) -> ACEVSEParameters:
        """AC limits."""
        c = self.config
        return ACEVSEParameters(c.nominal_voltage, c.ac_max_current, c.ac_min_current, c.nominal_voltage)

    def dc_parameters(self) -> DCEVSEParameters:
        """DC limits."""
        c = self.config
        return DCEVSEParameters(c.dc_max_current, c.dc_max_power, c.dc_max_voltage, c.dc_min_current,
                                c.dc_min_voltage, c.dc_peak_current_ripple, current_regulation_tolerance=5.0)

    def status(self) -> EVSEStatus:
        """Ready; StopCharging or ReNegotiation once the configured number of charge-loop messages has passed."""
        c = self.config
        notification = "None"
        if c.stop_after_loops is not None and self.loops >= c.stop_after_loops:
            notification = "StopCharging"
        elif c.renegotiate_after_loops is not None and self.loops >= c.renegotiate_after_loops and \
                self.schedule_calls - c.schedule_ongoing_rounds < 2:
            notification = "ReNegotiation"
        return EVSEStatus(notification=notification, isolation=self.isolation, status_code="EVSE_Ready")

    # ----- DC power stage -----

    def cable_check(self) -> CableCheckResult:
        """Ongoing for the configured rounds, then the configured isolation level."""
        self.cable_check_calls += 1
        if self.cable_check_calls <= self.config.cable_check_rounds:
            return CableCheckResult(False, "Invalid")
        self.isolation = self.config.isolation
        return CableCheckResult(True, self.config.isolation)

    def precharge(self, voltage: float, current: float) -> float:
        """Move toward the target by `precharge_step` volts per request."""
        target = min(voltage, self.config.dc_max_voltage)
        step = self.config.precharge_step
        self.voltage = min(target, self.voltage + step) if self.voltage < target else max(target, self.voltage - step)
        self.current = min(current, 2.0)
        return self.voltage

    def set_contactors(self, closed: bool) -> bool:
        """Switch; fails when `contactor_fault` is set."""
        if self.config.contactor_fault:
            return False
        self.contactors_closed = closed
        if not closed:
            self.current = 0.0
        self._last_tick = self.clock() if closed else None
        self.events.append("contactors closed" if closed else "contactors open")
        return True

    def _tick(self, power: float) -> None:
        """Integrate delivered energy since the last charge-loop message."""
        now = self.clock()
        if self._last_tick is not None:
            self.energy_wh += power * min(now - self._last_tick, 5.0) / 3600.0
        self._last_tick = now

    def ac_max_current(self) -> float | None:
        """The AC limit; meter integrates what the EV may draw."""
        self.loops += 1
        c = self.config
        ev_max = self.ev.max_current if self.ev and self.ev.max_current else c.ac_max_current
        mode = self.ev.mode if self.ev else "AC_three_phase_core"
        self._tick(min(ev_max, c.ac_max_current) * c.nominal_voltage * self._phases(mode))
        return c.ac_max_current

    def current_demand(self, demand: CurrentDemand) -> DCOutput:
        """Follow the EV's targets within the DC limits."""
        self.loops += 1
        c = self.config
        voltage = min(demand.target_voltage, c.dc_max_voltage)
        current = min(demand.target_current, c.dc_max_current)
        power_limited = voltage > 0 and current * voltage > c.dc_max_power
        if power_limited:
            current = c.dc_max_power / voltage
        self.voltage, self.current = voltage, current
        self._tick(voltage * current)
        return DCOutput(voltage=voltage, current=current,
                        current_limit_achieved=demand.target_current >= c.dc_max_current,
                        voltage_limit_achieved=demand.target_voltage >= c.dc_max_voltage,
                        power_limit_achieved=power_limited, max_voltage=c.dc_max_voltage,
                        max_current=c.dc_max_current, max_power=c.dc_max_power)

    def welding_detection(self) -> float:
        """Output voltage halves per request once the contactors are open."""
        self.voltage = 0.0 if self.voltage < 10 else self.voltage / 2
        return self.voltage

    def meter(self) -> MeterReading | None:
        """The simulated meter."""
        return MeterReading(self.config.meter_id, int(self.energy_wh), int(time.time()))

    def receipt_required(self) -> bool:
        """As configured."""
        return self.config.receipt_required

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """CertificateInstallationReq answered by the configured contract service (FAILED_* code without one)."""
        service = self.config.contract_service
        if service is None:
            return "FAILED_NoCertificateAvailable"
        try:
            return pnc.answer_installation(service, request)[0]
        except pnc.InstallationError as e:
            return e.code

    async def certificate_update(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """CertificateUpdateReq answered by the configured contract service."""
        service = self.config.contract_service
        if service is None:
            return "FAILED_NoCertificateAvailable"
        try:
            return pnc.answer_update(service, request)[0]
        except pnc.InstallationError as e:
            return e.code

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """Open contactors and record the end."""
        if self.contactors_closed:
            self.set_contactors(False)
        self.ended = ended
        self.events.append(f"{'paused' if ended.paused else 'stopped'} ({ended.kind}): {ended.detail}")
