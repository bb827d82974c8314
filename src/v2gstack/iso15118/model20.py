"""Protocol-neutral facts of ISO 15118-20 sessions (SI units), shared by the -20 engines, the EV model and the EVSE
controller; the iso20* message modules translate them to and from the EXI JSON view.

Sign convention: a power or current the EV takes is positive, one it feeds back (bidirectional power transfer, BPT)
is negative. Limits are magnitudes: a maximum discharge power of 7 kW is 7000, not -7000 (the standard leaves the
sign of discharge limits open; we send positive limits and read either sign as a magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from .quickinit import quick_init


class EnergyService(IntEnum):
    """Energy transfer services of ISO 15118-20 (ServiceID)."""

    AC = 1
    DC = 2
    WPT = 3
    DC_ACDP = 4
    AC_BPT = 5
    DC_BPT = 6
    DC_ACDP_BPT = 7

    @property
    def dc(self) -> bool:
        """Whether the service is a DC one."""
        return self in (EnergyService.DC, EnergyService.DC_BPT, EnergyService.DC_ACDP, EnergyService.DC_ACDP_BPT)

    @property
    def bpt(self) -> bool:
        """Whether the service transfers power both ways."""
        return self in (EnergyService.AC_BPT, EnergyService.DC_BPT, EnergyService.DC_ACDP_BPT)

    @classmethod
    def named(cls, name: str) -> EnergyService:
        """'ac', 'dc', 'ac_bpt', 'dc_bpt' -> the service; ValueError otherwise."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown energy service {name!r} (ac, dc, ac_bpt, dc_bpt)") from None


SUPPORTED_SERVICES = (EnergyService.AC, EnergyService.DC, EnergyService.AC_BPT, EnergyService.DC_BPT)


class ControlMode(IntEnum):
    """The ControlMode service parameter: who decides the power during the charge loop."""

    SCHEDULED = 1  # the EV follows a schedule (ScheduleTuple) the SECC offered
    DYNAMIC = 2  # the SECC sends a new target in every charge-loop response

    @classmethod
    def named(cls, name: str) -> ControlMode:
        """'scheduled' or 'dynamic' -> the mode; ValueError otherwise."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown control mode {name!r} (scheduled, dynamic)") from None


class MobilityNeedsMode(IntEnum):
    """The MobilityNeedsMode service parameter: who provides the mobility needs (departure time, SoC targets)."""

    EVCC = 1
    EVCC_AND_SECC = 2


class Pricing(IntEnum):
    """The Pricing service parameter."""

    NONE = 0
    ABSOLUTE = 1
    LEVELS = 2


class Parameter(StrEnum):
    """Names of the energy transfer services' parameters (ServiceDetailRes)."""

    CONNECTOR = "Connector"
    CONTROL_MODE = "ControlMode"
    NOMINAL_VOLTAGE = "EVSENominalVoltage"
    MOBILITY_NEEDS_MODE = "MobilityNeedsMode"
    PRICING = "Pricing"
    BPT_CHANNEL = "BPTChannel"  # 1 unified, 2 separated
    GENERATOR_MODE = "GeneratorMode"  # 1 grid following, 2 grid forming
    ISLANDING_DETECTION = "GridCodeIslandingDetectionMethod"  # 1 active, 2 passive


class Notification(StrEnum):
    """EVSENotification values of -20 (EVSEStatus in charge-loop and PowerDelivery responses)."""

    NONE = "None"  # no EVSEStatus element
    PAUSE = "Pause"
    EXIT_STANDBY = "ExitStandby"
    TERMINATE = "Terminate"
    SCHEDULE_RENEGOTIATION = "ScheduleRenegotiation"
    SERVICE_RENEGOTIATION = "ServiceRenegotiation"
    METERING_CONFIRMATION = "MeteringConfirmation"


ParameterValue = bool | int | float | str


@quick_init
@dataclass(frozen=True)
class ParameterSet:
    """One ParameterSet of a service: its id and named values (ints for the enumerations above)."""

    set_id: int
    values: dict[str, ParameterValue]

    @property
    def control_mode(self) -> ControlMode | None:
        """The ControlMode parameter, None when absent or unknown."""
        value = self.values.get(Parameter.CONTROL_MODE)
        return ControlMode(value) if value in (1, 2) else None


@quick_init
@dataclass(frozen=True)
class ServiceOffer:
    """An energy transfer service the SECC offers, with its parameter sets (ServiceDiscovery + ServiceDetail)."""

    service: EnergyService
    parameter_sets: tuple[ParameterSet, ...]
    free: bool = True

    def parameter_set(self, set_id: int) -> ParameterSet | None:
        """The parameter set with `set_id`, None if not offered."""
        return next((p for p in self.parameter_sets if p.set_id == set_id), None)


@quick_init
@dataclass(frozen=True)
class PowerEntry:
    """One PowerScheduleEntry: `power` W for `duration` s (L2/L3: per-phase values of 3-phase AC)."""

    duration: int
    power: float
    power_l2: float | None = None
    power_l3: float | None = None


@quick_init
@dataclass(frozen=True)
class PriceLevels:
    """PriceLevelSchedule: relative price levels 0..levels-1, each for `duration` seconds."""

    schedule_id: int
    levels: int
    entries: tuple[tuple[int, int], ...]  # (duration s, price level)


@quick_init
@dataclass(frozen=True)
class PriceRule:
    """One PriceRule of a PriceRuleStack: the energy fee (per kWh) from `power_range_start` W up."""

    energy_fee: float
    power_range_start: float = 0.0


@quick_init
@dataclass(frozen=True)
class AbsolutePrices:
    """AbsolutePriceSchedule (reduced to what we use): currency, algorithm and one rule stack per period."""

    schedule_id: int
    currency: str
    stacks: tuple[tuple[int, tuple[PriceRule, ...]], ...]  # (duration s, rules)
    language: str = "ENG"
    algorithm: str = "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power"


Prices = PriceLevels | AbsolutePrices


@quick_init
@dataclass(frozen=True)
class PowerSchedule:
    """A ChargingSchedule or DischargingSchedule: power entries (magnitudes) and an optional price schedule."""

    entries: tuple[PowerEntry, ...]
    time_anchor: int = 0
    available_energy: float | None = None  # Wh
    power_tolerance: float | None = None  # W
    prices: Prices | None = None

    def power_at(self, offset: float) -> float:
        """The entry's power `offset` seconds after the start (0 after the last entry ends)."""
        start = 0.0
        for entry in self.entries:
            if offset < start + entry.duration:
                return entry.power
            start += entry.duration
        return 0.0

    @property
    def duration(self) -> int:
        """Seconds covered."""
        return sum(e.duration for e in self.entries)


@quick_init
@dataclass(frozen=True)
class ScheduleTuple:
    """One ScheduleTuple: the power the EV may take over time and, for BPT, the power it may feed back."""

    tuple_id: int
    charging: PowerSchedule
    discharging: PowerSchedule | None = None


@quick_init
@dataclass(frozen=True)
class EVNeeds:
    """What the EV asks for in ScheduleExchangeReq (energies in Wh, SoC in %; V2X: the range for discharging)."""

    control_mode: ControlMode
    max_supporting_points: int = 1024
    departure_time: int | None = None  # seconds from now
    min_soc: int | None = None
    target_soc: int | None = None
    target_energy: float | None = None
    max_energy: float | None = None
    min_energy: float | None = None
    max_v2x_energy: float | None = None
    min_v2x_energy: float | None = None
    offer: tuple[PowerEntry, ...] = ()  # Scheduled: the EV's own power offer (EVEnergyOffer), if any


@quick_init
@dataclass(frozen=True)
class DynamicSchedule:
    """ScheduleExchangeRes in dynamic mode: what the SECC plans with (echoed or its own mobility needs)."""

    departure_time: int | None = None
    min_soc: int | None = None
    target_soc: int | None = None
    prices: Prices | None = None


@quick_init
@dataclass(frozen=True)
class EVACLimits:
    """AC_ChargeParameterDiscoveryReq: the EV's power limits (discharge: BPT only)."""

    max_charge_power: float
    min_charge_power: float
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None


@quick_init
@dataclass(frozen=True)
class ACLimits20:
    """AC_ChargeParameterDiscoveryRes: the EVSE's power limits and grid facts (discharge: BPT only)."""

    max_charge_power: float
    min_charge_power: float
    nominal_frequency: float = 50.0
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    present_power: float | None = None


@quick_init
@dataclass(frozen=True)
class EVDCLimits:
    """DC_ChargeParameterDiscoveryReq: the EV's limits (discharge: BPT only)."""

    max_charge_power: float
    min_charge_power: float
    max_charge_current: float
    min_charge_current: float
    max_voltage: float
    min_voltage: float
    target_soc: int | None = None
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_discharge_current: float | None = None
    min_discharge_current: float | None = None


@quick_init
@dataclass(frozen=True)
class DCLimits20:
    """DC_ChargeParameterDiscoveryRes: the EVSE's limits (discharge: BPT only)."""

    max_charge_power: float
    min_charge_power: float
    max_charge_current: float
    min_charge_current: float
    max_voltage: float
    min_voltage: float
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_discharge_current: float | None = None
    min_discharge_current: float | None = None


@quick_init
@dataclass(frozen=True)
class EnergyRequest:
    """The energy requests a dynamic-mode EV repeats in each charge-loop request (Wh)."""

    target: float
    maximum: float
    minimum: float
    max_v2x: float | None = None
    min_v2x: float | None = None
    departure_time: int | None = None


@quick_init
@dataclass(frozen=True)
class LoopRequest:
    """What the EV says in one AC_ChargeLoopReq / DC_ChargeLoopReq (signed: + import, - export)."""

    dc: bool
    control_mode: ControlMode
    bpt: bool
    soc: int | None = None
    charging_complete: bool = False
    meter_requested: bool = False
    present_power: float | None = None  # AC: EVPresentActivePower
    present_voltage: float | None = None  # DC: EVPresentVoltage
    target_current: float | None = None  # DC scheduled: EVTargetCurrent (negative: discharge)
    target_voltage: float | None = None  # DC scheduled
    max_charge_power: float | None = None
    min_charge_power: float | None = None
    max_charge_current: float | None = None
    max_voltage: float | None = None
    min_voltage: float | None = None
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_discharge_current: float | None = None
    energy: EnergyRequest | None = None  # dynamic mode


@quick_init
@dataclass(frozen=True)
class ACLoopAnswer:
    """The controller's answer to one AC charge-loop request: the target active power (signed; dynamic mode needs
    it, scheduled mode may give it) and the power flowing now."""

    target_power: float | None
    present_power: float | None = None
    frequency: float | None = None


@quick_init
@dataclass(frozen=True)
class DCLoopAnswer:
    """The controller's answer to one DC charge-loop request: the output now (current signed) and the limits it
    sets; in dynamic mode the limits are the target (a discharge is asked for with max charge power 0 and a minimum
    discharge power above 0)."""

    voltage: float
    current: float
    limits: DCLimits20
    power_limit_achieved: bool = False
    current_limit_achieved: bool = False
    voltage_limit_achieved: bool = False


@quick_init
@dataclass(frozen=True)
class MeterReading20:
    """MeterInfo of -20: energy imported and exported (Wh), an optional signature of the meter."""

    meter_id: str
    imported_wh: int
    exported_wh: int = 0
    timestamp: int | None = None
    signature: bytes | None = None


@quick_init
@dataclass(frozen=True)
class LoopStatus:
    """What the SECC tells the EV besides the power: a notification and the delay the EV has to act on it."""

    notification: Notification = Notification.NONE
    max_delay: int = 0
    meter: MeterReading20 | None = None
