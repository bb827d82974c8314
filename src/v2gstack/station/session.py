"""The session port (what drives an EVSE: a scripted EV here; the ISO 15118 bridge uses the wider StationPort of
ports.py) and `simulate_session`, a scripted EV."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .authorization import IdToken, IdTokenInfo
from .clock import Clock

log = logging.getLogger(__name__)


class SessionPort(Protocol):
    """The EVSE-side events of a charging session; ChargingStation implements it."""

    clock: Clock

    async def plug_in(self, evse_id: int) -> None:
        """The EV is connected."""

    async def authorize(self, evse_id: int, token: IdToken, *, remote_start_id: int | None = None,
                        check: bool = True) -> IdTokenInfo:
        """Authorize an idToken (eMAID for contracts, ISO14443 for RFID) for this EVSE."""

    async def present_token(self, evse_id: int, token: IdToken) -> IdTokenInfo:
        """A token is presented: start, or stop the transaction it started."""

    def set_ev(self, evse_id: int, *, power_w: float | None = None, soc: float | None = None,
               battery_wh: float | None = None) -> None:
        """The EV's demand and state: power it draws (negative: gives back), SoC, battery size."""

    async def stop_transaction(self, evse_id: int, reason: str = "Local", trigger: str = "StopAuthorized") -> None:
        """End the transaction (the EV or the driver stopped)."""

    async def unplug(self, evse_id: int) -> None:
        """The EV is disconnected."""


async def simulate_session(port: SessionPort, evse_id: int = 1, *, token: str = "04A1B2C3",
                           token_type: str = "ISO14443", seconds: float = 60.0, power_w: float = 11000.0,
                           soc: float | None = 40.0, battery_wh: float = 60000.0) -> dict[str, Any]:
    """A scripted EV: plug in, present a token, charge for `seconds` (simulated), stop with the token, unplug."""
    id_token = {"idToken": token, "type": token_type}
    port.set_ev(evse_id, power_w=power_w, soc=soc, battery_wh=battery_wh if soc is not None else None)
    await port.plug_in(evse_id)
    info = await port.present_token(evse_id, id_token)
    log.info("simulated EV on EVSE %d: token %s %s", evse_id, token, info.get("status"))
    if info.get("status") == "Accepted":
        await port.clock.sleep(seconds)
        await port.present_token(evse_id, id_token)
    await port.unplug(evse_id)
    return info
