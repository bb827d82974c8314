"""Protocol-neutral facts exchanged by the state machines, the EV model and the EVSE controller (SI units).

The message modules translate these to and from each protocol's JSON view, so the state machines and the
controllers never see DIN or -2 spellings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .quickinit import quick_init


class Step(StrEnum):
    """A request/response pair, named as ISO 15118-2 names it (DIN spellings are mapped by the message modules); the
    last group exists in ISO 15118-20 only (its AC_/DC_ messages map onto the -2 names: DC_CableCheck ->
    CableCheck, AC_ChargeLoop and DC_ChargeLoop -> ChargeLoop)."""

    SESSION_SETUP = "SessionSetup"
    SERVICE_DISCOVERY = "ServiceDiscovery"
    SERVICE_DETAIL = "ServiceDetail"
    PAYMENT_SERVICE_SELECTION = "PaymentServiceSelection"
    PAYMENT_DETAILS = "PaymentDetails"
    AUTHORIZATION = "Authorization"
    CHARGE_PARAMETER_DISCOVERY = "ChargeParameterDiscovery"
    POWER_DELIVERY = "PowerDelivery"
    CHARGING_STATUS = "ChargingStatus"
    METERING_RECEIPT = "MeteringReceipt"
    CABLE_CHECK = "CableCheck"
    PRE_CHARGE = "PreCharge"
    CURRENT_DEMAND = "CurrentDemand"
    WELDING_DETECTION = "WeldingDetection"
    SESSION_STOP = "SessionStop"
    CERTIFICATE_INSTALLATION = "CertificateInstallation"
    CERTIFICATE_UPDATE = "CertificateUpdate"
    # ISO 15118-20 only
    AUTHORIZATION_SETUP = "AuthorizationSetup"
    SERVICE_SELECTION = "ServiceSelection"
    SCHEDULE_EXCHANGE = "ScheduleExchange"
    CHARGE_LOOP = "ChargeLoop"
    METERING_CONFIRMATION = "MeteringConfirmation"
    VEHICLE_CHECK_IN = "VehicleCheckIn"
    VEHICLE_CHECK_OUT = "VehicleCheckOut"


STEPS_ISO20_ONLY = frozenset({Step.AUTHORIZATION_SETUP, Step.SERVICE_SELECTION, Step.SCHEDULE_EXCHANGE,
                              Step.CHARGE_LOOP, Step.METERING_CONFIRMATION, Step.VEHICLE_CHECK_IN,
                              Step.VEHICLE_CHECK_OUT})
STEPS_ISO2 = frozenset(Step) - STEPS_ISO20_ONLY
"""The request/response pairs of ISO 15118-2 (DIN uses a subset)."""


class Processing(StrEnum):
    """EVSEProcessing values."""

    FINISHED = "Finished"
    ONGOING = "Ongoing"
    ONGOING_CUSTOMER = "Ongoing_WaitingForCustomerInteraction"  # -2 only; DIN gets Ongoing


AC_MODES = ("AC_single_phase_core", "AC_three_phase_core")


def is_dc(mode: str) -> bool:
    """Whether an energy transfer mode is DC."""
    return mode.startswith("DC_")


@quick_init
@dataclass(frozen=True)
class EVSEStatus:
    """AC_EVSEStatus / DC_EVSEStatus content."""

    notification: str = "None"  # None | StopCharging | ReNegotiation
    notification_max_delay: int = 0
    rcd: bool = False  # AC: residual current device tripped
    isolation: str | None = "Valid"  # DC: Invalid | Valid | Warning | Fault | No_IMD (-2)
    status_code: str = "EVSE_Ready"  # DC
    power_switch_closed: bool = False  # DIN AC only


@quick_init
@dataclass(frozen=True)
class ACEVSEParameters:
    """AC_EVSEChargeParameter: what the AC EVSE can deliver."""

    nominal_voltage: float
    max_current: float
    min_current: float = 6.0  # DIN only
    max_voltage: float = 400.0  # DIN only


@quick_init
@dataclass(frozen=True)
class DCEVSEParameters:
    """DC_EVSEChargeParameter: the DC EVSE's limits."""

    max_current: float
    max_power: float
    max_voltage: float
    min_current: float
    min_voltage: float
    peak_current_ripple: float
    current_regulation_tolerance: float | None = None
    energy_to_be_delivered: float | None = None


@quick_init
@dataclass(frozen=True)
class PMaxEntry:
    """One PMaxScheduleEntry: from `start` seconds, at most `pmax` W (for `duration` seconds on the last one)."""

    start: int
    pmax: float
    duration: int | None = None


@quick_init
@dataclass(frozen=True)
class TariffEntry:
    """One SalesTariffEntry with a relative price level."""

    start: int
    price_level: int
    duration: int | None = None


@quick_init
@dataclass(frozen=True)
class SASchedule:
    """One SAScheduleTuple: a power schedule and an optional (unsigned, EIM) sales tariff."""

    tuple_id: int
    entries: tuple[PMaxEntry, ...]
    tariff: tuple[TariffEntry, ...] | None = None
    tariff_id: int = 1
    price_levels: int = 1


@quick_init
@dataclass(frozen=True)
class ProfileEntry:
    """One ChargingProfile entry the EV announces with PowerDeliveryReq."""

    start: int
    max_power: float
    max_phases: int | None = None


@quick_init
@dataclass(frozen=True)
class DCEVStatus:
    """DC_EVStatus."""

    ready: bool = True
    error_code: str = "NO_ERROR"
    soc: int = 0


@quick_init
@dataclass(frozen=True)
class EVChargeParameters:
    """What the EV asks for in ChargeParameterDiscoveryReq (AC fields or DC fields are filled)."""

    mode: str
    departure_time: int | None = None
    # AC
    energy_amount: float | None = None  # Wh
    max_voltage: float | None = None
    max_current: float | None = None
    min_current: float | None = None
    # DC (max_current / max_voltage above are shared)
    status: DCEVStatus | None = None
    max_power: float | None = None
    energy_capacity: float | None = None  # Wh
    energy_request: float | None = None  # Wh
    full_soc: int | None = None
    bulk_soc: int | None = None


@quick_init
@dataclass(frozen=True)
class MeterReading:
    """MeterInfo: meter id and energy register in Wh."""

    meter_id: str
    wh: int
    timestamp: int | None = None


@quick_init
@dataclass(frozen=True)
class CurrentDemand:
    """CurrentDemandReq content (DC charge loop)."""

    status: DCEVStatus
    target_current: float
    target_voltage: float
    max_voltage: float | None = None
    max_current: float | None = None
    max_power: float | None = None
    bulk_complete: bool | None = None
    complete: bool = False
    remaining_time_full: float | None = None
    remaining_time_bulk: float | None = None


@quick_init
@dataclass(frozen=True)
class DCOutput:
    """What the DC EVSE reports back in CurrentDemandRes."""

    voltage: float
    current: float
    current_limit_achieved: bool = False
    voltage_limit_achieved: bool = False
    power_limit_achieved: bool = False
    max_voltage: float | None = None
    max_current: float | None = None
    max_power: float | None = None


@quick_init
@dataclass(frozen=True)
class Service:
    """A value-added service the SECC lists in ServiceDiscoveryRes, with its ServiceDetail parameter sets."""

    service_id: int
    name: str
    category: str = "Internet"
    free: bool = True
    parameter_sets: dict[int, dict[str, bool | int | str]] = field(default_factory=dict)
