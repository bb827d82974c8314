"""The EVSE hardware seam: `EvseHardware`, what any EVSE's power electronics offer (contactors, isolation monitor,
DC stage, AC outlet, meter; SI units, import positive), and `SimulatedHardware`, its simulator. See
docs/hardware.md."""

from __future__ import annotations

from .pilot import PilotHook, PilotListener
from .protocol import DcOutput, EvseHardware, HardwareLimits, IsolationResult, MeterReading, RestorableMeter
from .simulated import SimulatedHardware, SimulatedHardwareConfig

__all__ = [
    "DcOutput",
    "EvseHardware",
    "HardwareLimits",
    "IsolationResult",
    "MeterReading",
    "PilotHook",
    "PilotListener",
    "RestorableMeter",
    "SimulatedHardware",
    "SimulatedHardwareConfig",
]
