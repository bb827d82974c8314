"""The grid frequency as the station measures it (OCPP 2.1 LocalFrequency runs the frequency-watt curve against it):
`GridFrequency` is what the station reads, `SimulatedGridFrequency` a source the tests, the CLI and the simulator step.

No protocol knowledge here; a real station reads its meter's or inverter's frequency behind the same protocol.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol


class GridFrequency(Protocol):
    """The grid frequency at the station's connection point, in Hz."""

    def frequency(self) -> float:
        """The frequency now."""
        ...


class SimulatedGridFrequency(GridFrequency):
    """A grid frequency that stays where it was put: `step(hz)` moves it at once and tells the listeners (the
    station's control loop reacts to a listener at once, and reads it again every control period anyway)."""

    def __init__(self, nominal: float = 50.0) -> None:
        self.nominal = nominal
        self._hz = nominal
        self.listeners: list[Callable[[float], None]] = []

    def frequency(self) -> float:
        """The frequency now."""
        return self._hz

    def step(self, hz: float) -> None:
        """Move the frequency to `hz` (a finite, positive number; ValueError otherwise)."""
        if not math.isfinite(hz) or hz <= 0:
            raise ValueError(f"a grid frequency is a positive number of Hz, not {hz!r}")
        self._hz = float(hz)
        for listener in list(self.listeners):
            listener(self._hz)
