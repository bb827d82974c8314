"""The ISO 15118-20 answers of the bridge's controller (a mixin of BridgeController): the energy services (BPT only
when the station allows discharge), the AC/DC limits with discharge, the schedule tuples and the dynamic plan from
the session's policy, and every charge loop through the hardware seam in both directions.

Power follows the station's target for the EVSE (`StationPort.target`, station/v2x.py: the import and export limits
the hardware holds, and under OCPP 2.1 V2X a setpoint), within the EV's limits; discharge is further capped by
`BridgeConfig.allow_discharge_w` within the hardware's discharge figures and the EVSE's rating. Dynamic mode: the
target's setpoint when there is one; else a negative charging-profile limit (OCPP 2.0.1's way, a TxProfile) asks
the EV to discharge that much; else the EV is asked to charge at the import limit. Scheduled mode:
the EV follows its chosen tuple; the hardware holds it within the caps. Nothing flows outside a running transaction
(the target is then zero both ways).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from ...hardware import EvseHardware
from ...iso15118.defaults20 import phase_voltage, services_from_modes
from ...iso15118.evse import SessionInfo
from ...iso15118.model20 import (
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    DynamicSchedule,
    EnergyService,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    LoopRequest,
    MeterReading20,
    ScheduleTuple,
    ServiceOffer,
)
from ..v2x_target import EvseTarget

_INF = float("inf")


class Policy20(Protocol):
    """What the -20 answers ask of the session's policy (policy.SessionPolicy)."""

    def energy_modes(self) -> list[str]:
        """The EVSE's energy transfer modes."""
        ...

    def control_modes(self) -> tuple[str, ...]:
        """The -20 control modes offered, in order ("scheduled", "dynamic")."""
        ...

    def limit_w(self) -> float | None:
        """The charging-profile limit now (W; negative: discharge; None: no profile)."""
        ...

    def max_power_w(self) -> float:
        """The EVSE's rating."""
        ...

    def allow_discharge_w(self) -> float:
        """What the station lets an EV feed back under OCPP 2.0.1 (W)."""
        ...

    def delivering(self) -> bool:
        """A transaction runs: energy may flow."""
        ...

    def schedule_tuples(self, info: SessionInfo, needs: EVNeeds, discharge_w: float | None) -> list[ScheduleTuple]:
        """Scheduled mode: the tuples of the composite schedule (NotifyEVChargingNeeds first)."""
        ...

    def dynamic_schedule(self, info: SessionInfo, needs: EVNeeds) -> DynamicSchedule:
        """Dynamic mode: the plan (NotifyEVChargingNeeds first)."""
        ...

    def target(self) -> EvseTarget:
        """What the station wants of the EVSE now (limits both ways, an OCPP 2.1 setpoint)."""
        ...

    def discharge_refused(self, reason: str) -> None:
        """The station asks the EV to discharge and the EV cannot or will not (reported once per session)."""
        ...

    def offer_services(self, possible: list[str]) -> list[str]:
        """-20 ServiceDiscovery: of the EVSE's services (EnergyService names), those to offer (the CSMS's allowed
        energy transfer)."""
        ...


class Controller20:
    """-20 methods of BridgeController; the host provides the hardware, the policy, the contactor state, `_draw`
    and `_dc_power_limit`."""

    hw: EvseHardware
    policy: Policy20
    contactors: bool
    power_w: float

    def _draw(self, power_w: float, soc: float | None = None) -> None:  # pragma: no cover - the host's
        raise NotImplementedError

    def _dc_power_limit(self) -> float:  # pragma: no cover - the host's
        raise NotImplementedError

    def wall_now(self) -> float:  # pragma: no cover - the host's
        raise NotImplementedError

    # ----- what the station allows -----

    def discharge_w(self, dc: bool) -> float:
        """The most the EV may feed back now (W): the station's setting within the hardware and the rating."""
        lim = self.hw.limits
        stage = lim.dc_max_discharge_power if dc else lim.ac_max_discharge_power
        return max(0.0, min(stage, self.policy.allow_discharge_w(), self.policy.max_power_w()))

    def _ac_phases20(self) -> int:
        """The AC outlet's phases (single phase when the EVSE offers only that mode)."""
        modes = self.policy.energy_modes()
        return 1 if "AC_single_phase_core" in modes and "AC_three_phase_core" not in modes else self.hw.limits.phases

    def _ac_watts_per_amp(self) -> float:
        return phase_voltage(self.hw.limits.nominal_voltage) * self._ac_phases20()

    def _ac_charge_w(self) -> float:
        """The AC charging limit: the outlet's within the rating and the profile (0 under a negative limit)."""
        power = min(self.hw.limits.ac_max_current * self._ac_watts_per_amp(), self.policy.max_power_w())
        limit = self.policy.limit_w()
        return max(0.0, power if limit is None else min(power, limit))

    def _wanted_w(self, target: EvseTarget, charge: float, discharge: float, limit: float | None) -> float:
        """Dynamic mode's target (W, negative: discharge) within `charge` and `discharge` (magnitudes): the
        station's setpoint; else a negative charging-profile limit (OCPP 2.0.1's way of asking for discharge) as
        a discharge of that much; else charging at the limit (an export the station merely allows, e.g. for a full
        battery, is no request to discharge). `limit`: the charging-profile limit (the policy's limit_w())."""
        if target.setpoint_w is not None:
            return max(-discharge, min(charge, target.setpoint_w))
        if limit is not None and limit < 0 and discharge > 0:
            return -min(discharge, -limit)
        return max(0.0, charge)

    def _check_discharge(self, info: SessionInfo, request: LoopRequest, station: EvseTarget) -> None:
        """A setpoint asks for discharge while energy flows: the EV must be able to give it; when the EV is the
        reason it cannot (no BPT service, no discharge power in its request), the policy reports it."""
        if station.setpoint_w is None or station.setpoint_w >= 0 or not self._flowing():
            return
        service = info.service
        if service is None or not service.bpt:
            name = service.name if service is not None else "no"
            self.policy.discharge_refused(f"asked for {station.setpoint_w:.0f} W, the EV chose the {name} service "
                                          "(no bidirectional power transfer)")
        elif request.max_discharge_power is not None and request.max_discharge_power == 0:
            self.policy.discharge_refused(f"asked for {station.setpoint_w:.0f} W, the EV's maximum discharge power "
                                          "is 0 W (its minimum SoC, or it will not)")

    # ----- services and limits -----

    def services20(self) -> list[ServiceOffer]:
        """AC and/or DC as the energy modes say; AC_BPT / DC_BPT only where discharge is allowed; of these, those the
        CSMS allows the transaction (OCPP 2.1 NotifyAllowedEnergyTransfer, through the policy)."""
        offers = services_from_modes(self.policy.energy_modes(), self.hw.limits.nominal_voltage, bpt=True)
        allowed = {EnergyService.AC_BPT: self.discharge_w(False) > 0, EnergyService.DC_BPT: self.discharge_w(True) > 0}
        order = {ControlMode.named(m): i for i, m in enumerate(self.policy.control_modes())}
        possible = [replace(o, parameter_sets=tuple(sorted((p for p in o.parameter_sets if p.control_mode in order),
                                                           key=lambda p: order[p.control_mode])))  # type: ignore
                    for o in offers if allowed.get(o.service, True)]
        offered = set(self.policy.offer_services([o.service.name for o in possible]))
        return [o for o in possible if o.service.name in offered]

    def service_renegotiation20(self) -> bool:
        """Service renegotiation is offered (a NotifyAllowedEnergyTransfer makes the EV select its service again)."""
        return True

    def ac_limits20(self, info: SessionInfo, ev: EVACLimits, bpt: bool) -> ACLimits20:
        """The AC limits; with BPT the discharge cap."""
        low = self.hw.limits.ac_min_current * self._ac_watts_per_amp()
        discharge = self.discharge_w(False)
        return ACLimits20(self._ac_charge_w(), low, 50.0, discharge if bpt else None, 0.0 if bpt else None,
                          self.power_w)

    def _dc_limits(self, bpt: bool, discharge: float | None = None) -> DCLimits20:
        """The DC limits (`discharge`: discharge_w(True) when the caller has it already)."""
        lim = self.hw.limits
        if discharge is None:
            discharge = self.discharge_w(True)
        amps = min(lim.dc_max_discharge_current, discharge / lim.dc_min_voltage if lim.dc_min_voltage else _INF)
        return DCLimits20(self._dc_power_limit(), 0.0, lim.dc_max_current, lim.dc_min_current, lim.dc_max_voltage,
                          lim.dc_min_voltage, discharge if bpt else None, 0.0 if bpt else None,
                          amps if bpt else None, 0.0 if bpt else None)

    def dc_limits20(self, info: SessionInfo, ev: EVDCLimits, bpt: bool) -> DCLimits20:
        """The DC limits; with BPT the discharge caps."""
        return self._dc_limits(bpt)

    # ----- schedules: the policy -----

    def schedule_tuples(self, info: SessionInfo, needs: EVNeeds) -> list[ScheduleTuple] | None:
        """The composite schedule as a tuple (BPT: with the discharging schedule the station allows)."""
        service = info.service
        bpt = service is not None and service.bpt
        discharge = self.discharge_w(service.dc) if bpt and service is not None else None
        return self.policy.schedule_tuples(info, needs, discharge)

    def dynamic_schedule(self, info: SessionInfo, needs: EVNeeds) -> DynamicSchedule | None:
        """The EV's own plan, after the station has the needs."""
        return self.policy.dynamic_schedule(info, needs)

    # ----- the charge loops: the hardware -----

    def _flowing(self) -> bool:
        return self.contactors and self.policy.delivering()

    def ac_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> ACLoopAnswer:
        """Dynamic: the target (the station's setpoint, a discharge under a negative limit, else the charging
        limit) within the EV's limits; scheduled: the EV's own power within the caps. What flows is the
        hardware's."""
        bpt = info.service is not None and info.service.bpt
        station = self.policy.target()
        self._check_discharge(info, request, station)
        charge = min(self._ac_charge_w(), station.import_limit_w,
                     _INF if request.max_charge_power is None else request.max_charge_power)
        discharge = min(self.discharge_w(False), station.export_limit_w) if bpt else 0.0
        if request.max_discharge_power is not None:
            discharge = min(discharge, abs(request.max_discharge_power))
        target: float | None
        if request.control_mode is ControlMode.DYNAMIC:
            target = self._wanted_w(station, charge, discharge, self.policy.limit_w())
            power = target
        else:
            target = None
            power = max(-discharge, min(max(0.0, charge), request.present_power or 0.0))
        if not self._flowing():
            power = 0.0
            target = 0.0 if target is not None else None
        per_amp = self._ac_watts_per_amp()
        flowing = self.hw.ac_draw(power / per_amp if per_amp else 0.0, self._ac_phases20())
        self._draw(flowing, soc=float(request.soc) if request.soc is not None else None)
        return ACLoopAnswer(target, flowing)

    def dc_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> DCLoopAnswer:
        """Dynamic: the target as limits (a discharge: no charging power and a minimum discharge power) and the
        output at the EV's voltage; scheduled: the EV's target current within the caps. The hardware delivers.
        (The station's rating, profile limit and target are asked once per loop: the loop runs 4 times a second
        per car.)"""
        lim = self.hw.limits
        policy = self.policy
        service = info.service
        bpt = service is not None and service.bpt
        rating = policy.max_power_w()
        allowed = max(0.0, min(lim.dc_max_discharge_power, policy.allow_discharge_w(), rating))  # discharge_w(True)
        limit = policy.limit_w()
        max_power = min(lim.dc_max_power, rating)  # _dc_power_limit()
        max_power = max(0.0, max_power if limit is None else min(max_power, limit))
        voltage = min(lim.dc_max_voltage, request.target_voltage or request.present_voltage or 0.0)
        station = policy.target()
        self._check_discharge(info, request, station)
        discharge = min(allowed, station.export_limit_w) if bpt else 0.0
        if request.max_discharge_power is not None:
            discharge = min(discharge, abs(request.max_discharge_power))
        charge = min(max_power, station.import_limit_w,
                     _INF if request.max_charge_power is None else request.max_charge_power)
        max_charge, min_charge = max_power, 0.0
        max_discharge, min_discharge = (allowed, 0.0) if bpt else (None, None)
        if request.control_mode is ControlMode.DYNAMIC:
            wanted = self._wanted_w(station, charge, discharge, limit)
            if wanted < 0:
                max_charge = min_charge = 0.0
                max_discharge = min_discharge = -wanted
                current = wanted / voltage if voltage > 0 else 0.0
            else:
                max_charge = wanted
                current = wanted / voltage if voltage > 0 else 0.0
                if request.max_charge_current is not None:
                    current = min(current, request.max_charge_current)
        else:
            current = request.target_current or 0.0
        if bpt:  # _dc_limits(): the discharge current the allowed power gives at the lowest voltage
            amps = min(lim.dc_max_discharge_current, allowed / lim.dc_min_voltage if lim.dc_min_voltage else _INF)
            limits = DCLimits20(max_charge, min_charge, lim.dc_max_current, lim.dc_min_current, lim.dc_max_voltage,
                                lim.dc_min_voltage, max_discharge, min_discharge, amps, 0.0)
        else:
            limits = DCLimits20(max_charge, min_charge, lim.dc_max_current, lim.dc_min_current, lim.dc_max_voltage,
                                lim.dc_min_voltage, max_discharge, min_discharge)
        low = -min(lim.dc_max_discharge_current, discharge / voltage if voltage > 0 else 0.0)
        current = max(low, min(lim.dc_max_current, current))
        if not (self.contactors and policy.delivering()):  # not _flowing()
            current = 0.0
        out = self.hw.deliver_dc(voltage, current)
        self._draw(out.power, soc=float(request.soc) if request.soc is not None else None)
        return DCLoopAnswer(out.voltage, round(out.current, 1), limits, out.power_limited, out.current_limited,
                            out.voltage_limited)

    def meter20(self) -> MeterReading20 | None:
        """The hardware meter's registers, imported and exported: the values OCPP reports."""
        reading = self.hw.meter()
        return MeterReading20(reading.meter_id[:32], int(reading.import_wh), int(reading.export_wh),
                              int(self.wall_now()))
