"""The simulated power stage: `SimulatedHardware` implements EvseHardware for the station's EVSEs in tests, demos and
the simulator, with its figures and fault knobs in `SimulatedHardwareConfig` (the standalone SECC's simulated EVSE
uses the same figures: iso15118/evse_sim.py).

The physics is deliberately simple and exact: what flows is the EV's draw (ac_draw, deliver_dc) held within the
station's power limit and the stage's own limits; the meter integrates that power over the injected clock into the
import and export registers (they only move by power x elapsed time, never jump). The meter sits on the AC supply
side: its voltage is the nominal one and its current the power shared over the phases. Opening the contactors ends
the draw; they and the isolation monitor fail only when told to (`contactor_fault`, `isolation`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from ..times import parse_rfc3339
from . import ocmf
from .protocol import DcOutput, EvseHardware, HardwareLimits, IsolationResult, MeterReading, SignedReading


@dataclass
class SimulatedHardwareConfig:
    """The simulated power stage's figures (SI units) and its fault knobs."""

    nominal_voltage: float = 230.0
    phases: int = 3
    ac_max_current: float = 32.0
    ac_min_current: float = 6.0
    dc_max_current: float = 200.0
    dc_max_power: float = 50_000.0
    dc_max_voltage: float = 500.0
    dc_min_current: float = 0.0
    dc_min_voltage: float = 150.0
    dc_peak_current_ripple: float = 5.0
    ac_max_discharge_power: float = 11_000.0
    dc_max_discharge_power: float = 30_000.0
    dc_max_discharge_current: float = 100.0
    isolation: str = "Valid"  # what the isolation monitor measures (Invalid/Fault: a fault at CableCheck)
    contactor_fault: bool = False  # the contactors do not close (PowerDelivery FAILED_ContactorError)

    def limits(self) -> HardwareLimits:
        """The figures as HardwareLimits."""
        return HardwareLimits(
            nominal_voltage=self.nominal_voltage, phases=self.phases, ac_min_current=self.ac_min_current,
            ac_max_current=self.ac_max_current, ac_max_discharge_power=self.ac_max_discharge_power,
            dc_min_voltage=self.dc_min_voltage, dc_max_voltage=self.dc_max_voltage, dc_min_current=self.dc_min_current,
            dc_max_current=self.dc_max_current, dc_max_power=self.dc_max_power,
            dc_max_discharge_current=self.dc_max_discharge_current,
            dc_max_discharge_power=self.dc_max_discharge_power, dc_peak_current_ripple=self.dc_peak_current_ripple)


class SimulatedHardware(EvseHardware):
    """A simulated EVSE power stage with contactors, an isolation monitor and a bidirectional meter."""

    def __init__(self, config: SimulatedHardwareConfig | None = None, clock: Callable[[], float] = time.monotonic,
                 *, meter_id: str = "SIM-METER", signing_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        """`signing_key`: the meter's P-256 key (default: a new one, made with the meter)."""
        self.config = config or SimulatedHardwareConfig()
        self._limits = self.config.limits()
        self.clock = clock
        self.meter_id = meter_id
        self.import_limit = 0.0  # W the station allows into the EV (nothing flows until it says so)
        self.export_limit = 0.0  # W the station allows out of it
        self.contactors = False
        self.draw_w = 0.0  # what the EV asks for (W, negative: gives)
        self.power_w = 0.0  # what flows
        self.dc_voltage = 0.0
        self.import_wh = 0.0
        self.export_wh = 0.0
        self._last_t: float | None = None
        self._key = signing_key or ec.generate_private_key(ec.SECP256R1())  # the meter's own signing key
        self._pagination = 0

    @property
    def limits(self) -> HardwareLimits:
        """The configured figures."""
        return self._limits

    # ----- the meter's physics -----

    def _advance(self) -> None:
        """Integrate the present power up to now."""
        now = self.clock()
        if self._last_t is not None and now > self._last_t:
            wh = self.power_w * (now - self._last_t) / 3600.0
            if wh >= 0:
                self.import_wh += wh
            else:
                self.export_wh -= wh
        if self._last_t is None or now > self._last_t:
            self._last_t = now

    def _flow(self) -> float:
        """What flows from now on: the draw within the station's limits (energy so far at the old power first)."""
        self._advance()
        self.power_w = max(-self.export_limit, min(self.import_limit, self.draw_w)) or 0.0  # never -0.0
        return self.power_w

    # ----- EvseHardware -----

    def set_power_limit(self, import_w: float, export_w: float = 0.0) -> None:
        """The station's limit applies at once."""
        self.import_limit, self.export_limit = max(0.0, import_w), max(0.0, export_w)
        self._flow()

    def set_contactors(self, closed: bool) -> bool:
        """Switch; closing fails when `contactor_fault` is set. Opening ends the draw."""
        if closed and self.config.contactor_fault:
            return False
        self.contactors = closed
        if not closed:
            self.draw_w = 0.0
            self.dc_voltage = 0.0
            self._flow()
        return True

    def isolation_test(self) -> IsolationResult:
        """Done at once, with the configured level."""
        return IsolationResult(True, self.config.isolation)

    def precharge(self, voltage: float, current: float) -> float:
        """The output reaches the target voltage (within the stage's maximum) at once."""
        self.dc_voltage = min(voltage, self._limits.dc_max_voltage)
        return self.dc_voltage

    def deliver_dc(self, voltage: float, current: float) -> DcOutput:
        """Follow the setpoint within voltage, current and power, the station's limit included."""
        lim = self._limits
        volts = min(voltage, lim.dc_max_voltage)
        amps = max(-lim.dc_max_discharge_current, min(current, lim.dc_max_current))
        cap = min(lim.dc_max_power, self.import_limit) if amps >= 0 else min(lim.dc_max_discharge_power,
                                                                              self.export_limit)
        power_limited = volts > 0 and abs(amps * volts) > cap
        if power_limited:
            amps = (cap if amps >= 0 else -cap) / volts
        self.dc_voltage = volts
        self.draw_w = volts * amps
        self._flow()
        return DcOutput(volts, amps, current_limited=current >= lim.dc_max_current,
                        voltage_limited=voltage >= lim.dc_max_voltage, power_limited=power_limited)

    def ac_draw(self, current_per_phase: float, phases: int) -> float:
        """The EV's draw on the outlet; the power flowing within the station's limit."""
        self.draw_w = current_per_phase * self._limits.nominal_voltage * phases
        return self._flow()

    def output_voltage(self) -> float:
        """The DC output: 0 once the contactors are open."""
        return self.dc_voltage if self.contactors else 0.0

    def meter(self) -> MeterReading:
        """Registers integrated up to now; voltage and current on the supply side."""
        self._advance()
        lim = self._limits
        return MeterReading(self.meter_id, self.import_wh, self.export_wh, self.power_w, lim.nominal_voltage,
                            abs(self.power_w) / (lim.nominal_voltage * lim.phases), lim.phases)

    # ----- SigningMeter: OCMF records of both registers -----

    def public_key(self) -> str:
        """The meter's public key (DER SubjectPublicKeyInfo, hex), as the device model publishes it."""
        return ocmf.public_key_hex(self._key)

    def signed_reading(self, reading: MeterReading, timestamp: str, transaction_stage: str) -> SignedReading:
        """An OCMF record of the import (OBIS 1-b:1.8.0) and export (1-b:2.8.0) registers in Wh, as the station
        reports them (3 decimals), signed with ECDSA-secp256r1-SHA256."""
        self._pagination += 1
        at = parse_rfc3339(timestamp)
        tm = at.strftime("%Y-%m-%dT%H:%M:%S,") + f"{at.microsecond // 1000:03d}+0000 S"
        payload = {"FV": "1.0", "GI": "v2gstack simulated meter", "GS": reading.meter_id, "GV": "1",
                   "PG": f"T{self._pagination}", "MS": reading.meter_id, "IS": True, "RD": [
                       {"TM": tm, "TX": transaction_stage, "RV": round(reading.import_wh, 3), "RI": "1-b:1.8.0",
                        "RU": "Wh", "RT": "AC", "ST": "G"},
                       {"TM": tm, "TX": transaction_stage, "RV": round(reading.export_wh, 3), "RI": "1-b:2.8.0",
                        "RU": "Wh", "RT": "AC", "ST": "G"}]}
        return SignedReading(ocmf.sign(payload, self._key), "OCMF", ocmf.DEFAULT_METHOD, self.public_key())

    def restore_registers(self, import_wh: float, export_wh: float) -> None:
        """Continue from registers saved by an earlier run (RestorableMeter)."""
        self.import_wh, self.export_wh = import_wh, export_wh
