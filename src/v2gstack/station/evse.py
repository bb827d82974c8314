"""One EVSE with its connector (sans-I/O state): plug, authorization, availability, meter and transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .meter import Meter
from .transaction import Transaction


@dataclass
class Evse:
    """An EVSE and its (single, by default) connector, as the station's logic sees it."""

    id: int
    connector_id: int = 1
    max_power_w: float = 11000.0
    meter: Meter = field(default_factory=Meter)
    operative: bool = True
    scheduled_operative: bool | None = None  # ChangeAvailability waiting for the transaction to end
    faulted: bool = False
    plugged: bool = False
    authorized: bool = False
    id_token: dict[str, Any] | None = None
    tx: Transaction | None = None
    ev_power_w: float = 0.0  # what the EV would draw (or, negative, give) if allowed
    reported_status: str | None = None  # last status the CSMS was told

    def status(self, station_operative: bool = True) -> str:
        """ConnectorStatus: Faulted, Occupied (cable in or transaction), Unavailable, or Available."""
        if self.faulted:
            return "Faulted"
        if self.plugged or self.tx is not None:
            return "Occupied"
        if not self.operative or not station_operative:
            return "Unavailable"
        return "Available"

    def power_allowed(self) -> float:
        """Power flowing now: the EV's demand within the EVSE's limit, only when plugged, authorized and usable."""
        if not (self.plugged and self.authorized and self.tx is not None and self.operative and not self.faulted):
            return 0.0
        return max(-self.max_power_w, min(self.max_power_w, self.ev_power_w))
