"""What an EVSE's power electronics offer the station: contactors, the isolation monitor, the DC power stage, the AC
outlet, and the meter, behind one protocol (`EvseHardware`). No protocol knowledge here: the ISO 15118 controller and
the OCPP station both talk to the hardware through it.

Units are SI (V, A, W, Wh) and the sign convention is import positive, export negative: power into the EV is
positive, power the EV gives back (ISO 15118-20 bidirectional power transfer) is negative; the meter keeps the two
energy registers apart. Every call comes from the event loop and must return at once: hardware that needs time
(an isolation test, a precharge) answers with its present state and is asked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable


@dataclass(frozen=True)
class HardwareLimits:
    """What the power electronics can do (0 where they cannot: e.g. no discharge)."""

    nominal_voltage: float = 230.0  # AC supply, V per phase
    phases: int = 3  # AC supply phases
    ac_min_current: float = 6.0  # A per phase
    ac_max_current: float = 32.0  # A per phase
    ac_max_discharge_power: float = 0.0  # W the outlet can take back (AC bidirectional)
    dc_min_voltage: float = 150.0
    dc_max_voltage: float = 500.0
    dc_min_current: float = 0.0
    dc_max_current: float = 200.0
    dc_max_power: float = 50_000.0
    dc_max_discharge_current: float = 0.0  # A the stage can sink (DC bidirectional)
    dc_max_discharge_power: float = 0.0  # W the stage can sink
    dc_peak_current_ripple: float = 5.0  # A

    @property
    def ac_max_power(self) -> float:
        """The AC outlet's charging power at its maximum current on all phases."""
        return self.ac_max_current * self.nominal_voltage * self.phases


@dataclass(frozen=True)
class IsolationResult:
    """The isolation monitor: whether the test is done, and the level (Valid, Warning, Fault, Invalid, NoIMD)."""

    done: bool
    level: str = "Valid"

    @property
    def fault(self) -> bool:
        """The insulation failed the test."""
        return self.level in ("Invalid", "Fault")


class DcOutput(NamedTuple):
    """The DC stage's output after a setpoint: what flows now (current negative: discharge) and which limit held it.
    (This and MeterReading are named tuples: made in every charge loop, where a frozen dataclass costs about three
    times as much.)"""

    voltage: float
    current: float
    current_limited: bool = False
    voltage_limited: bool = False
    power_limited: bool = False

    @property
    def power(self) -> float:
        """W flowing (negative: the EV gives)."""
        return self.voltage * self.current


class MeterReading(NamedTuple):
    """The EVSE's meter now: both energy registers (they never decrease) and the present values."""

    meter_id: str
    import_wh: float  # Energy.Active.Import.Register: energy into the EV
    export_wh: float  # Energy.Active.Export.Register: energy from the EV
    power_w: float  # positive: import, negative: export
    voltage: float  # V per phase on the supply side
    current: float  # A per phase, magnitude
    phases: int = 3


class EvseHardware(Protocol):
    """An EVSE's power electronics as the station and the ISO 15118 controller use them.

    Implementers subclass this Protocol so that the optional hooks keep their default bodies."""

    @property
    def limits(self) -> HardwareLimits:
        """What the hardware can do."""
        ...

    def set_power_limit(self, import_w: float, export_w: float = 0.0) -> None:
        """What the station allows now (charging profiles, authorization): at most `import_w` into the EV and
        `export_w` out of it; 0 and 0 stop the energy. The hardware holds whatever it delivers within this."""
        ...

    def set_contactors(self, closed: bool) -> bool:
        """Close (energy may flow) or open the output contactors; False when they failed to."""
        ...

    def isolation_test(self) -> IsolationResult:
        """Start or continue the insulation test of the DC cable (CableCheck); asked again until done."""
        ...

    def precharge(self, voltage: float, current: float) -> float:
        """Drive the DC output toward `voltage` with at most `current`; the present output voltage."""
        ...

    def deliver_dc(self, voltage: float, current: float) -> DcOutput:
        """The EV's DC setpoint (current negative: discharge), held within the limits and the power limit; what
        flows now."""
        ...

    def ac_draw(self, current_per_phase: float, phases: int) -> float:
        """What the EV takes from the AC outlet (negative: gives back), as far as the power limit lets it; the power
        flowing now (W). Real hardware measures this; the simulator integrates it into its meter."""
        ...

    def output_voltage(self) -> float:
        """The voltage at the DC output now (welding detection, after the contactors opened)."""
        ...

    def meter(self) -> MeterReading:
        """The meter now."""
        ...

    # ----- optional hooks with defaults -----

    def control_pilot(self, state: str) -> None:
        """The control pilot's state changed (IEC 61851 A-F, e.g. "B" plugged, "C" ready to charge) or the SLAC
        matching needs it; hardware that drives the pilot itself ignores this. Default: ignore."""


@dataclass(frozen=True)
class SignedReading:
    """A meter's signed record of its registers: the record text, its format (`encoding`, e.g. OCMF), the signature
    algorithm, and the meter's public key (DER SubjectPublicKeyInfo, hex)."""

    record: str
    encoding: str
    method: str
    public_key: str


@runtime_checkable
class SigningMeter(Protocol):
    """A meter that signs its readings with its own key (a calibration-law meter); the station publishes the key
    (device model) and passes the records on untouched."""

    def public_key(self) -> str:
        """The meter's public key, DER SubjectPublicKeyInfo in hex."""
        ...

    def signed_reading(self, reading: MeterReading, timestamp: str, transaction_stage: str) -> SignedReading:
        """The signed record of `reading` (both registers) at `timestamp` (RFC 3339); `transaction_stage` is "B"
        (begin), "T" (during) or "E" (end) of a transaction, "-" outside one."""
        ...


@runtime_checkable
class RestorableMeter(Protocol):
    """A meter that the station restores after a restart (a simulated one; real meters keep their registers)."""

    def restore_registers(self, import_wh: float, export_wh: float) -> None:
        """Continue from registers saved by an earlier run."""
        ...
