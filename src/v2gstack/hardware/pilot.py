"""The control-pilot hook of the hardware seam: an `EvseHardware` whose pilot changes also reach listeners.

SLAC (ISO 15118-3) starts when the pilot goes to B (a car plugged in) and leaves the logical network on A, E or F;
the listener is a SLAC service (`v2gstack.slac.io.EvseSlacService`), which has the same `control_pilot(state)` hook.
`PilotHook` hands every change to the wrapped hardware first, then to each listener; the listeners ask for pilot
states themselves (E/F for T_step_EF in 5 % mode) through `PilotHook.control_pilot` as well.
"""

from __future__ import annotations

from typing import Protocol

from .protocol import DcOutput, EvseHardware, HardwareLimits, IsolationResult, MeterReading


class PilotListener(Protocol):
    """Anything that follows the control pilot (IEC 61851 states A-F)."""

    def control_pilot(self, state: str) -> None:
        """The pilot changed."""
        ...


class PilotHook(EvseHardware):
    """Wraps an `EvseHardware`: everything goes to it, and pilot changes also go to the listeners."""

    def __init__(self, inner: EvseHardware, *listeners: PilotListener) -> None:
        self.inner = inner
        self.listeners = list(listeners)
        self.state = "A"
        self.history: list[str] = []

    def add_listener(self, listener: PilotListener) -> None:
        self.listeners.append(listener)

    def control_pilot(self, state: str) -> None:
        """The pilot changed: tell the hardware, then every listener."""
        self.state = state
        self.history.append(state)
        self.inner.control_pilot(state)
        for listener in self.listeners:
            listener.control_pilot(state)

    @property
    def limits(self) -> HardwareLimits:
        return self.inner.limits

    def set_power_limit(self, import_w: float, export_w: float = 0.0) -> None:
        self.inner.set_power_limit(import_w, export_w)

    def set_contactors(self, closed: bool) -> bool:
        return self.inner.set_contactors(closed)

    def isolation_test(self) -> IsolationResult:
        return self.inner.isolation_test()

    def precharge(self, voltage: float, current: float) -> float:
        return self.inner.precharge(voltage, current)

    def deliver_dc(self, voltage: float, current: float) -> DcOutput:
        return self.inner.deliver_dc(voltage, current)

    def ac_draw(self, current_per_phase: float, phases: int) -> float:
        return self.inner.ac_draw(current_per_phase, phases)

    def output_voltage(self) -> float:
        return self.inner.output_voltage()

    def meter(self) -> MeterReading:
        return self.inner.meter()
