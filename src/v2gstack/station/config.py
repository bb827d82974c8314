"""Settings of one simulated charging station (what the CLI and the tests choose)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from ..hardware import SimulatedHardwareConfig
from ..ocpp import BackOff


@dataclass
class StationConfig:
    """Identity, CSMS endpoint, hardware figures and timing of a charging station."""

    station_id: str
    csms_url: str
    fallback_urls: tuple[str, ...] = ()  # more CSMS addresses: NetworkConnectionProfiles after csms_url's
    evses: int = 1
    password: str | None = None
    versions: tuple[str, ...] = ("2.1", "2.0.1")  # OCPP versions offered, most preferred first
    state_dir: Path | None = None  # offline queue + device model; None keeps them in memory
    model: str = "v2gstack-sim"
    vendor: str = "v2gstack"
    serial_number: str | None = None
    firmware_version: str = "0.1.0"
    max_power_w: float = 11000.0  # what each EVSE can deliver (its rating), W
    evse_max_power_w: dict[int, float] = field(default_factory=dict)  # per EVSE where it differs from max_power_w
    hardware: SimulatedHardwareConfig = field(default_factory=SimulatedHardwareConfig)  # the simulated power stage
    evse_hardware: dict[int, SimulatedHardwareConfig] = field(default_factory=dict)  # per EVSE where it differs
    time_scale: float = 1.0  # real seconds per simulated second; < 1 runs the simulation faster
    boot_retry_s: float = 30.0  # wait before re-sending BootNotification when the CSMS gives interval 0
    backoff: BackOff | None = None  # reconnect waits; default from the RetryBackOff* variables
    call_timeout: float | None = None  # real seconds; default OCPPCommCtrlr.MessageTimeout (not time-scaled)
    ssl: ssl.SSLContext | None = None
    ping_interval: float | None = 60.0
    control_period_s: float = 1.0  # simulated s between two runs of the V2X control loop (LocalFrequency, schedules)
    nominal_frequency: float = 50.0  # Hz the simulated grid-frequency source starts at

    def evse_power(self, evse_id: int) -> float:
        """The maximum power of one EVSE, W."""
        return self.evse_max_power_w.get(evse_id, self.max_power_w)

    def evse_hardware_config(self, evse_id: int) -> SimulatedHardwareConfig:
        """The simulated power stage's figures of one EVSE."""
        return self.evse_hardware.get(evse_id, self.hardware)

    @property
    def security_profile(self) -> int:
        """The security profile the URL and credentials make up."""
        if self.csms_url.startswith("wss:"):
            return 2 if self.password else 3
        return 1 if self.password else 0
