"""How a -2 EVSE controller answers ISO 15118-20 questions: the default bodies of EVSEController's -20 methods, built
from its -2 answers (energy modes, AC/DC parameters, the SAScheduleList, the AC current limit, CurrentDemand), and
the standard parameter sets of the AC, DC, AC_BPT and DC_BPT services.

So a controller written for ISO 15118-2 serves -20 sessions (AC and DC, scheduled and dynamic, charging only) as it
is; one that implements the -20 methods itself adds BPT, discharge targets and its own schedules.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import (
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    DCEVStatus,
    DCOutput,
    EVChargeParameters,
    MeterReading,
    SASchedule,
)
from .model20 import (
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    EnergyService,
    LoopRequest,
    MeterReading20,
    MobilityNeedsMode,
    Parameter,
    ParameterSet,
    PowerEntry,
    PowerSchedule,
    Pricing,
    ScheduleTuple,
    ServiceOffer,
)

DAY = 86400
SCHEDULED_SET, DYNAMIC_SET = 1, 2  # the parameter set ids of the standard sets below


def parameter_sets(service: EnergyService, nominal_voltage: float = 230.0, three_phase: bool = True,
                   pricing: Pricing = Pricing.NONE) -> tuple[ParameterSet, ...]:
    """Set 1 scheduled (the EV provides its mobility needs), set 2 dynamic (EV and SECC do); AC sets carry the
    connector and nominal voltage, BPT sets the BPT channel (unified), generator mode (grid following) and, for AC,
    the islanding detection method (active)."""
    sets = []
    for set_id, mode, needs in ((SCHEDULED_SET, ControlMode.SCHEDULED, MobilityNeedsMode.EVCC),
                                (DYNAMIC_SET, ControlMode.DYNAMIC, MobilityNeedsMode.EVCC_AND_SECC)):
        values: dict[str, bool | int | float | str] = {}
        if service.dc:
            values[Parameter.CONNECTOR] = 2  # extended (CCS)
        else:
            values[Parameter.CONNECTOR] = 2 if three_phase else 1
            values[Parameter.NOMINAL_VOLTAGE] = round(nominal_voltage)
        values[Parameter.CONTROL_MODE] = int(mode)
        values[Parameter.MOBILITY_NEEDS_MODE] = int(needs)
        values[Parameter.PRICING] = int(pricing)
        if service.bpt:
            values[Parameter.BPT_CHANNEL] = 1
            values[Parameter.GENERATOR_MODE] = 1
            if not service.dc:
                values[Parameter.ISLANDING_DETECTION] = 1
        sets.append(ParameterSet(set_id, values))
    return tuple(sets)


def services_from_modes(modes: Sequence[str], nominal_voltage: float, bpt: bool = False) -> list[ServiceOffer]:
    """The services of the -2 energy transfer modes: AC if any AC mode, DC if any DC mode (and their BPT twins)."""
    out: list[ServiceOffer] = []
    three_phase = "AC_three_phase_core" in modes
    if any(m.startswith("DC_") for m in modes):
        out.append(ServiceOffer(EnergyService.DC, parameter_sets(EnergyService.DC)))
        if bpt:
            out.append(ServiceOffer(EnergyService.DC_BPT, parameter_sets(EnergyService.DC_BPT)))
    if any(m.startswith("AC_") for m in modes):
        out.append(ServiceOffer(EnergyService.AC, parameter_sets(EnergyService.AC, nominal_voltage, three_phase)))
        if bpt:
            out.append(ServiceOffer(EnergyService.AC_BPT,
                                    parameter_sets(EnergyService.AC_BPT, nominal_voltage, three_phase)))
    return out


def phase_voltage(nominal: float) -> float:
    """The phase voltage of a nominal AC voltage (taken as line-to-line from 300 V up)."""
    return nominal if nominal < 300 else nominal / 3**0.5


def ac_limits(p: ACEVSEParameters, phases: int, bpt: bool) -> ACLimits20:
    """AC limits of the -2 parameters: current limits times the phase voltage and phases, no discharge."""
    v = phase_voltage(p.nominal_voltage) * phases
    return ACLimits20(p.max_current * v, p.min_current * v, 50.0, 0.0 if bpt else None, 0.0 if bpt else None)


def dc_limits(p: DCEVSEParameters, bpt: bool) -> DCLimits20:
    """DC limits of the -2 parameters, no discharge."""
    zero = 0.0 if bpt else None
    return DCLimits20(p.max_power, 0.0, p.max_current, p.min_current, p.max_voltage, p.min_voltage, zero, zero, zero,
                      zero)


def ev_parameters(service: EnergyService, departure_time: int | None, energy: float | None) -> EVChargeParameters:
    """The -2 view of a -20 EV's needs, to ask a -2 controller for its SAScheduleList."""
    if service.dc:
        return EVChargeParameters(mode="DC_extended", departure_time=departure_time, status=DCEVStatus(),
                                  energy_request=energy)
    return EVChargeParameters(mode="AC_three_phase_core", departure_time=departure_time, energy_amount=energy)


def tuples_from_sa_schedules(schedules: Sequence[SASchedule], discharge_power: float | None) -> list[ScheduleTuple]:
    """ScheduleTuples of a -2 SAScheduleList: PMax entries become power entries with durations; a BPT tuple gets a
    discharging schedule at `discharge_power` for the same time."""
    out = []
    for s in schedules[:3]:
        entries = []
        items = sorted(s.entries, key=lambda e: e.start)
        for i, e in enumerate(items):
            end = items[i + 1].start if i + 1 < len(items) else e.start + (e.duration or DAY)
            entries.append(PowerEntry(max(1, end - e.start), e.pmax))
        charging = PowerSchedule(tuple(entries))
        discharging = None
        if discharge_power is not None:
            discharging = PowerSchedule((PowerEntry(charging.duration or DAY, discharge_power),))
        out.append(ScheduleTuple(s.tuple_id, charging, discharging))
    return out


def ac_loop(current_limit: float | None, p: ACEVSEParameters, phases: int, request: LoopRequest) -> ACLoopAnswer:
    """The AC answer of a -2 controller: its current limit as power, within the EV's maximum, charging only."""
    power = (current_limit if current_limit is not None else p.max_current) * phase_voltage(p.nominal_voltage) * phases
    if request.max_charge_power is not None:
        power = min(power, request.max_charge_power)
    return ACLoopAnswer(max(0.0, power), None)


def dc_demand(request: LoopRequest, limits: DCLimits20) -> CurrentDemand:
    """The -2 CurrentDemand of a -20 DC charge-loop request: the EV's targets (scheduled) or its maxima (dynamic),
    charging only."""
    voltage = request.target_voltage or request.present_voltage or 0.0
    if request.control_mode is ControlMode.SCHEDULED:
        current = max(0.0, request.target_current or 0.0)
    else:
        current = request.max_charge_current or limits.max_charge_current
        if request.max_charge_power and voltage > 0:
            current = min(current, request.max_charge_power / voltage)
    return CurrentDemand(status=DCEVStatus(soc=int(request.soc or 0)), target_current=current, target_voltage=voltage,
                         max_voltage=request.max_voltage, max_current=request.max_charge_current,
                         max_power=request.max_charge_power, complete=request.charging_complete)


def dc_answer(out: DCOutput, limits: DCLimits20) -> DCLoopAnswer:
    """A -2 DCOutput as a -20 answer."""
    return DCLoopAnswer(out.voltage, out.current, limits, out.power_limit_achieved, out.current_limit_achieved,
                        out.voltage_limit_achieved)


def meter20(m: MeterReading | None) -> MeterReading20 | None:
    """A -2 meter reading as imported energy."""
    return None if m is None else MeterReading20(m.meter_id, m.wh, 0, m.timestamp)
