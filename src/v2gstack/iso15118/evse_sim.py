"""A simulated EVSE implementing EVSEController: authorizes EIM, a bidirectional power stage, contactors and a meter.

Deterministic by design (rounds count requests, not wall time) except for the meter, which integrates power over the
injected clock (imported and exported energy apart). Knobs let tests provoke Ongoing loops, StopCharging, isolation
faults and contactor errors; for ISO 15118-20 it offers AC, DC, AC_BPT and DC_BPT, discharges first for a number of
loops (dynamic) or seconds (scheduled) when asked, and can ask for a pause or a schedule renegotiation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..hardware import SimulatedHardwareConfig
from ..pki.contracts import ContractService
from ..pki.contracts20 import ContractService20
from . import pnc, pnc20
from .defaults20 import phase_voltage, services_from_modes
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
from .model20 import (
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    DynamicSchedule,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    LoopRequest,
    MeterReading20,
    PowerEntry,
    PowerSchedule,
    PriceLevels,
    ScheduleTuple,
    ServiceOffer,
)


@dataclass
class SimulatedEVSEConfig(SimulatedHardwareConfig):
    """Behaviour of the simulated EVSE; its power figures and fault knobs (isolation, contactor_fault) are those of
    the simulated hardware (v2gstack.hardware), inherited."""

    evse_id: str = "DE*V2G*E00001*1"
    din_evse_id: str = "00"
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    payment_options: tuple[str, ...] = ("ExternalPayment",)
    services: tuple[Service, ...] = ()
    authorize: bool = True
    auth_ongoing_rounds: int = 0
    schedule_ongoing_rounds: int = 0
    cable_check_rounds: int = 1
    precharge_step: float = 200.0  # volts per PreChargeReq
    schedule_duration: int = 86400
    sales_tariff: bool = False  # add an unsigned two-level SalesTariff (-2) to the schedule
    stop_after_loops: int | None = None  # send EVSENotification=StopCharging after this many charge-loop messages
    renegotiate_after_loops: int | None = None  # ask once for ReNegotiation (-2) after this many loop messages
    receipt_required: bool = False
    meter_id: str = "SIM-METER-0001"
    contract_service: ContractService | None = None  # answers CertificateInstallationReq locally (tests, demos)
    # ISO 15118-20 (the discharge figures are the hardware's too)
    bpt: bool = True  # offer AC_BPT and DC_BPT besides AC and DC
    control_modes: tuple[ControlMode, ...] = (ControlMode.SCHEDULED, ControlMode.DYNAMIC)  # parameter sets, in order
    discharge_loops: int = 0  # dynamic BPT: ask for full discharge in the first N charge loops, then charge
    discharge_seconds: int = 0  # scheduled BPT: the tuples start with N s of discharging only, then charging
    schedule_tuples: int = 1  # tuples offered (1-3; tuple n allows 1/n of the power)
    pause_after_loops: int | None = None  # EVSENotification=Pause after this many charge-loop messages
    standby: bool = False  # accept PowerDeliveryReq(Standby)
    service_renegotiation_after_loops: int | None = None  # -20: announce service renegotiation and ask for it once
    # after this many loop messages; the services offered again then have no BPT twins
    contract_service20: ContractService20 | None = None  # answers -20 CertificateInstallationReq locally


class SimulatedEVSE(EVSEController):
    """EVSEController for tests, demos and the standalone SECC."""

    def __init__(self, config: SimulatedEVSEConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or SimulatedEVSEConfig()
        self.clock = clock
        self.auth_calls = 0
        self.schedule_calls = 0
        self.cable_check_calls = 0
        self.loops = 0
        self.service_discoveries = 0  # -20 ServiceDiscoveryRes answered (more than one: a service renegotiation)
        self.voltage = 0.0
        self.current = 0.0
        self.contactors_closed = False
        self.isolation: str | None = None
        self.energy_wh = 0.0
        self.export_wh = 0.0
        self.power = 0.0  # W flowing now (-20: negative while discharging)
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
        """Ready; StopCharging, Pause, ServiceRenegotiation (-20) or ReNegotiation once the configured number of
        charge-loop messages has passed."""
        c = self.config
        notification = "None"
        if c.stop_after_loops is not None and self.loops >= c.stop_after_loops:
            notification = "StopCharging"
        elif c.pause_after_loops is not None and self.loops >= c.pause_after_loops:
            notification = "Pause"
        elif c.service_renegotiation_after_loops is not None and self.loops >= c.service_renegotiation_after_loops \
                and self.service_discoveries < 2:
            notification = "ServiceRenegotiation"
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
        if not closed and self.power:
            self._flow(0.0)  # the energy flowed until the contactors opened
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
        """CertificateInstallationReq answered by the configured contract service (FAILED_* code without one); -20
        requests by the -20 one."""
        if info.protocol == "iso20":
            if self.config.contract_service20 is None:
                return "FAILED_NoCertificateAvailable"
            try:
                return pnc20.answer_installation(self.config.contract_service20, request)[0]
            except pnc20.Pnc20Error as e:
                return e.code
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

    # ----- ISO 15118-20 -----

    def services20(self) -> list[ServiceOffer]:
        """AC and/or DC as the energy modes say, with their BPT twins unless `bpt` is off; the parameter sets of the
        configured control modes in their order (an EV that takes the first set gets the first mode); after a
        service renegotiation without the BPT twins."""
        self.service_discoveries += 1
        bpt = self.config.bpt and self.service_discoveries < 2
        offers = services_from_modes(list(self.config.energy_modes), self.config.nominal_voltage, bpt)
        order = {mode: i for i, mode in enumerate(self.config.control_modes)}
        return [replace(o, parameter_sets=tuple(sorted((p for p in o.parameter_sets if p.control_mode in order),
                                                       key=lambda p: order[p.control_mode])))  # type: ignore[index]
                for o in offers]

    def service_renegotiation20(self) -> bool:
        """Announced when configured to ask for one."""
        return self.config.service_renegotiation_after_loops is not None

    def _ac_phases(self) -> int:
        """Phases of the AC outlet."""
        return 3 if "AC_three_phase_core" in self.config.energy_modes else 1

    def _ac_max(self) -> float:
        """The AC charging power limit (W)."""
        c = self.config
        return c.ac_max_current * phase_voltage(c.nominal_voltage) * self._ac_phases()

    def ac_limits20(self, info: SessionInfo, ev: EVACLimits, bpt: bool) -> ACLimits20:
        """The AC limits; with BPT the discharge limit."""
        c = self.config
        low = c.ac_min_current * phase_voltage(c.nominal_voltage) * self._ac_phases()
        return ACLimits20(self._ac_max(), low, 50.0, c.ac_max_discharge_power if bpt else None, 0.0 if bpt else None,
                          self.power)

    def _dc_limits(self, bpt: bool) -> DCLimits20:
        """The DC limits; with BPT the discharge limits."""
        c = self.config
        return DCLimits20(c.dc_max_power, 0.0, c.dc_max_current, c.dc_min_current, c.dc_max_voltage, c.dc_min_voltage,
                          c.dc_max_discharge_power if bpt else None, 0.0 if bpt else None,
                          c.dc_max_discharge_current if bpt else None, 0.0 if bpt else None)

    def dc_limits20(self, info: SessionInfo, ev: EVDCLimits, bpt: bool) -> DCLimits20:
        """The DC limits of the session."""
        return self._dc_limits(bpt)

    def schedule_tuples(self, info: SessionInfo, needs: EVNeeds) -> list[ScheduleTuple] | None:
        """After the Ongoing rounds: 1-3 tuples for the schedule duration; BPT tuples start with the discharge
        window and carry a discharging schedule; price levels on both schedules with `sales_tariff`."""
        self.schedule_calls += 1
        c = self.config
        if self.schedule_calls <= c.schedule_ongoing_rounds:
            return None
        service = info.service
        dc, bpt = (service.dc, service.bpt) if service is not None else (True, False)
        full = c.dc_max_power if dc else self._ac_max()
        discharge = c.dc_max_discharge_power if dc else c.ac_max_discharge_power
        window = min(c.discharge_seconds, c.schedule_duration - 1) if bpt else 0
        prices = dis_prices = None
        if c.sales_tariff:  # the discharging schedule is priced too (its own PriceScheduleID): a ChargingSchedule
            half = c.schedule_duration // 2  # of a tuple may carry one, and some EVs refuse one without
            levels = ((half, 0), (c.schedule_duration - half, 1))
            prices, dis_prices = PriceLevels(1, 2, levels), PriceLevels(2, 2, levels)
        out = []
        for n in range(1, max(1, min(3, c.schedule_tuples)) + 1):
            rest = c.schedule_duration - window
            charging = ((PowerEntry(window, 0.0),) if window else ()) + (PowerEntry(rest, full / n),)
            dis = PowerSchedule((PowerEntry(c.schedule_duration, discharge / n),), prices=dis_prices) if bpt else None
            out.append(ScheduleTuple(n, PowerSchedule(charging, prices=prices), dis))
        return out

    def dynamic_schedule(self, info: SessionInfo, needs: EVNeeds) -> DynamicSchedule | None:
        """After the Ongoing rounds: the EV's own departure time and SoC targets."""
        self.schedule_calls += 1
        if self.schedule_calls <= self.config.schedule_ongoing_rounds:
            return None
        return DynamicSchedule(needs.departure_time, needs.min_soc, needs.target_soc)

    def _discharging_now(self, info: SessionInfo) -> bool:
        """Dynamic BPT: whether this loop asks for discharge."""
        return bool(info.service and info.service.bpt and info.control_mode is ControlMode.DYNAMIC and
                    self.loops <= self.config.discharge_loops)

    def _flow(self, power: float) -> None:
        """Integrate the power that flowed since the last change (import and export apart), then set `power`."""
        now = self.clock()
        if self._last_tick is not None:
            wh = self.power * min(now - self._last_tick, 5.0) / 3600.0
            if wh >= 0:
                self.energy_wh += wh
            else:
                self.export_wh -= wh
        self._last_tick = now
        self.power = power

    def ac_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> ACLoopAnswer:
        """Dynamic: discharge at the discharge limit in the first `discharge_loops` loops (BPT), else charge at the
        limit; scheduled: the EV's own power within the limits."""
        self.loops += 1
        c = self.config
        bpt = bool(info.service and info.service.bpt)
        top = min(self._ac_max(), request.max_charge_power if request.max_charge_power is not None else self._ac_max())
        bottom = -min(c.ac_max_discharge_power, request.max_discharge_power or c.ac_max_discharge_power) if bpt else 0.0
        if request.control_mode is ControlMode.DYNAMIC:
            target = bottom if self._discharging_now(info) else top
            self._flow(target)
            return ACLoopAnswer(target, target)
        power = max(bottom, min(top, request.present_power or 0.0))
        self._flow(power)
        return ACLoopAnswer(None, power)

    def dc_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> DCLoopAnswer:
        """Dynamic: the setpoint as limits (discharge: max charge power 0, a minimum discharge power), the output at
        the EV's voltage; scheduled: follow the EV's target current within the limits."""
        self.loops += 1
        c = self.config
        bpt = bool(info.service and info.service.bpt)
        limits = self._dc_limits(bpt)
        voltage = min(c.dc_max_voltage, request.target_voltage or request.present_voltage or 0.0)
        ev_dis = request.max_discharge_current if request.max_discharge_current is not None else \
            c.dc_max_discharge_current
        low = -min(c.dc_max_discharge_current, ev_dis) if bpt else 0.0
        high = min(c.dc_max_current, request.max_charge_current or c.dc_max_current)
        if request.control_mode is ControlMode.DYNAMIC:
            if self._discharging_now(info):
                p = min(c.dc_max_discharge_power, request.max_discharge_power or c.dc_max_discharge_power)
                limits = DCLimits20(0.0, 0.0, limits.max_charge_current, 0.0, limits.max_voltage, limits.min_voltage,
                                    p, p, limits.max_discharge_current, 0.0)
                current = -p / voltage if voltage > 0 else 0.0
            else:
                p = min(c.dc_max_power, request.max_charge_power or c.dc_max_power)
                limits = DCLimits20(p, 0.0, limits.max_charge_current, 0.0, limits.max_voltage, limits.min_voltage,
                                    limits.max_discharge_power, limits.min_discharge_power,
                                    limits.max_discharge_current, limits.min_discharge_current)
                current = p / voltage if voltage > 0 else 0.0
        else:
            current = request.target_current or 0.0
        current = max(low, min(high, current))
        power_cap = c.dc_max_power if current >= 0 else c.dc_max_discharge_power
        power_limited = voltage > 0 and abs(current * voltage) > power_cap
        if power_limited:
            current = (power_cap if current > 0 else -power_cap) / voltage
        self.voltage, self.current = voltage, current
        self._flow(voltage * current)
        return DCLoopAnswer(voltage, current, limits, power_limited, current in (low, high) and current != 0,
                            voltage >= c.dc_max_voltage)

    def meter20(self) -> MeterReading20 | None:
        """The meter: imported and exported energy."""
        return MeterReading20(self.config.meter_id, int(self.energy_wh), int(self.export_wh), int(time.time()))

    def standby_allowed(self) -> bool:
        """As configured."""
        return self.config.standby

