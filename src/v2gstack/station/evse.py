"""One EVSE with its connector (sans-I/O state): plug, authorization, availability, the EV's demand and state of
charge, the power the station allows, and its transaction; the power electronics and the meter are its hardware
(v2gstack.hardware)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..hardware import EvseHardware, MeterReading, SimulatedHardware
from .transaction import Transaction


@dataclass
class Evse:
    """An EVSE and its (single, by default) connector, as the station's logic sees it."""

    id: int
    connector_id: int = 1
    max_power_w: float = 11000.0
    hardware: EvseHardware = field(default_factory=SimulatedHardware)
    operative: bool = True
    scheduled_operative: bool | None = None  # ChangeAvailability waiting for the transaction to end
    faulted: bool = False
    plugged: bool = False
    authorized: bool = False
    id_token: dict[str, Any] | None = None
    allowed_energy_transfer: list[str] | None = None  # OCPP 2.1 Q01: the AuthorizeResponse's (None: not told)
    tx: Transaction | None = None
    reserved: bool = False  # a reservation holds it (station/reservations.py): Reserved while free
    reservation_used: int | None = None  # the reservation the authorized idToken used, for its transaction
    ev_power_w: float = 0.0  # what the EV would draw (or, negative, give) if allowed
    soc: float | None = None  # percent, when the EV tells it (ISO 15118) or the simulation knows it
    battery_wh: float | None = None  # the EV's battery capacity, for a simulated SoC
    reported_status: str | None = None  # last status the CSMS was told
    scripted: bool = False  # a scripted EV (session.py): the station draws for it, following the target
    _soc_mark: float | None = None  # net energy (Wh) when the SoC was last brought up to date

    def status(self, station_operative: bool = True) -> str:
        """ConnectorStatus: Faulted, Occupied (cable in or transaction), Unavailable, Reserved, or Available."""
        if self.faulted:
            return "Faulted"
        if self.plugged or self.tx is not None:
            return "Occupied"
        if not self.operative or not station_operative:
            return "Unavailable"
        return "Reserved" if self.reserved else "Available"

    def reading(self) -> MeterReading:
        """The meter now; the simulated SoC follows the energy that flowed since it was last looked at."""
        reading = self.hardware.meter()
        net = reading.import_wh - reading.export_wh
        if self.soc is not None and self.battery_wh and self._soc_mark is not None:
            self.soc = min(100.0, max(0.0, self.soc + 100.0 * (net - self._soc_mark) / self.battery_wh))
        self._soc_mark = net
        return reading
