"""The EVSE hardware seam: `EvseHardware`, what any EVSE's power electronics offer (contactors, isolation monitor,
DC stage, AC outlet, meter; SI units, import positive), and `SimulatedHardware`, its simulator. See
docs/hardware.md."""

from __future__ import annotations

from .grid import GridFrequency, SimulatedGridFrequency
from .pilot import PilotHook, PilotListener
from .protocol import (
    DcOutput,
    EvseHardware,
    HardwareLimits,
    IsolationResult,
    MeterReading,
    RestorableMeter,
    SignedReading,
    SigningMeter,
)
from .simulated import SimulatedHardware, SimulatedHardwareConfig

__all__ = [
    "DcOutput",
    "EvseHardware",
    "GridFrequency",
    "HardwareLimits",
    "IsolationResult",
    "MeterReading",
    "PilotHook",
    "PilotListener",
    "RestorableMeter",
    "SignedReading",
    "SigningMeter",
    "SimulatedGridFrequency",
    "SimulatedHardware",
    "SimulatedHardwareConfig",
]
