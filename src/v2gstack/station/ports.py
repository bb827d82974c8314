"""The station's port: everything the ISO 15118 bridge (or any other driver of an EVSE) may use of the station.

The bridge's OCPP policy talks to the station through `StationPort` only; `ChargingStation` implements it. CALLs raise
the typed errors of errors.py (Offline, CallRefused, OwnPayloadInvalid, AnswerInvalid: all CallFailed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple, Protocol

from cryptography import x509

from ..hardware import EvseHardware
from .authorization import IdToken, IdTokenInfo
from .clock import Clock
from .errors import AnswerInvalid, CallFailed, CallRefused, Offline, OwnPayloadInvalid
from .v2x_target import EvseTarget

Payload = dict[str, Any]
FrameListener = Callable[[str, str], None]  # (direction "rx"/"tx", OCPP-J frame text)


class SettingsView(Protocol):
    """Read access to the station's settings (the OCPP device model's Actual values)."""

    def value(self, component: str, name: str, *, evse: int | None = None, instance: str | None = None) -> str:
        """A variable's value (KeyError if the station has no such variable)."""
        ...

    def bool(self, component: str, name: str, **kw: Any) -> bool:
        """A boolean variable."""
        ...

    def int(self, component: str, name: str, **kw: Any) -> int:
        """An integer variable."""
        ...


class EvseFacts(NamedTuple):
    """What the station knows of one EVSE now (a named tuple: the bridge asks several times per charge loop, and a
    frozen dataclass costs about three times as much to make)."""

    evse_id: int
    transaction_id: str | None  # the running transaction
    authorized: bool  # energy may flow (an idToken, free vend or a remote start authorized it)
    id_token: IdToken | None
    plugged: bool
    max_power_w: float  # the EVSE's rating


class StationPort(Protocol):
    """The station as the bridge sees it."""

    @property
    def station_id(self) -> str:
        """The station's identity."""
        ...

    @property
    def clock(self) -> Clock:
        """The station's (possibly sped-up) clock."""
        ...

    @property
    def settings(self) -> SettingsView:
        """The station's settings (ISO15118Ctrlr.PnCEnabled, AuthCtrlr.Enabled, ...)."""
        ...

    @property
    def online(self) -> bool:
        """Connected to the CSMS and accepted by it."""
        ...

    def evse(self, evse_id: int) -> EvseFacts:
        """The facts of one EVSE now."""
        ...

    def hardware(self, evse_id: int) -> EvseHardware:
        """The EVSE's power electronics and meter."""
        ...

    # ----- what happens at an EVSE -----

    async def plug_in(self, evse_id: int) -> None:
        """The EV is connected (the ISO session began)."""
        ...

    async def unplug(self, evse_id: int) -> None:
        """The EV is gone."""
        ...

    async def authorize(self, evse_id: int, token: IdToken, *, remote_start_id: int | None = None,
                        check: bool = True, authorize_response: Payload | None = None) -> IdTokenInfo:
        """Authorize a token for the EVSE (`check=False`: already checked, e.g. free vend or a verified contract;
        `authorize_response`: the CSMS's AuthorizeResponse the caller had, whose OCPP 2.1 allowedEnergyTransfer sets
        the modes); starts or updates the transaction when Accepted."""
        ...

    async def stop_transaction(self, evse_id: int, reason: str = "Local", trigger: str = "StopAuthorized") -> None:
        """End the EVSE's transaction with this stoppedReason and triggerReason."""
        ...

    async def set_fault(self, evse_id: int, faulted: bool = True, reason: str = "Other") -> None:
        """The EVSE is faulted (or no longer)."""
        ...

    def ev_update(self, evse_id: int, *, demand_w: float | None = None, soc: float | None = None,
                  battery_wh: float | None = None) -> None:
        """What the EV asks for (W, negative: gives back; it draws through the hardware) and reports (SoC %, battery
        size Wh): the station's power limit on the hardware and the transaction's charging state follow."""
        ...

    def set_transaction_data(self, evse_id: int, custom_data: Payload) -> str | None:
        """customData for the next TransactionEvent of the EVSE's transaction (the ISO facts); its id, or None
        when no transaction runs."""
        ...

    # ----- the CSMS -----

    async def call(self, action: str, payload: Payload) -> Payload:
        """A CALL to the CSMS; raises a CallFailed (Offline, CallRefused, OwnPayloadInvalid, AnswerInvalid)."""
        ...

    def notify(self, action: str, payload: Payload) -> None:
        """A CALL in the background whose answer nobody waits for (failures are logged by kind)."""
        ...

    async def wait_queue_empty(self) -> None:
        """Wait until the CSMS has answered every (transaction) message queued so far."""
        ...

    def on_frame(self, listener: FrameListener) -> Callable[[], None]:
        """Hear every OCPP frame sent or received; returns the unsubscribe function."""
        ...

    # ----- smart charging and certificates -----

    def limit_w(self, evse_id: int) -> float | None:
        """The charging-profile limit on the EVSE now (W; None: no profile limits it)."""
        ...

    def composite_schedule(self, evse_id: int, duration_s: int, unit: str = "W", *,
                           max_periods: int | None = None) -> Payload:
        """The EVSE's composite schedule from now (Rejection when it needs more than `max_periods` periods)."""
        ...

    def on_profiles_changed(self, listener: Callable[[int], None], evse_id: int | None = None) -> Callable[[], None]:
        """Hear each change of the charging profiles (the EVSE id, 0: the station; with `evse_id`: only that EVSE's
        and the station-wide ones); returns the unsubscribe."""
        ...

    def target(self, evse_id: int) -> EvseTarget:
        """OCPP 2.1 V2X: what the EVSE's EV should do now: its power target (W, negative: discharge; None: its own
        choice within the limits), the import and export limits, the operation mode (station/v2x.py)."""
        ...

    def on_target(self, listener: Callable[[int, EvseTarget], None], evse_id: int | None = None) -> Callable[[], None]:
        """Hear each change of an EVSE's target (evse id, target; with `evse_id`: of that EVSE only); returns the
        unsubscribe function."""
        ...

    def allowed_energy_transfer(self, evse_id: int) -> list[str] | None:
        """OCPP 2.1 Q01/Q02: the energy transfer modes the CSMS allows the EVSE's transaction
        (NotifyAllowedEnergyTransfer, else the AuthorizeResponse; None: it did not say)."""
        ...

    def on_allowed_energy_transfer(self, listener: Callable[[int, list[str]], None]) -> Callable[[], None]:
        """Hear each accepted NotifyAllowedEnergyTransfer and each 2.1 authorization's modes (evse id, modes); returns
        the unsubscribe function."""
        ...

    def installed_roots(self, cert_type: str) -> list[x509.Certificate]:
        """The root certificates of a type the CSMS installed (e.g. MORootCertificate)."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run work in the station's background (kept, failures logged, cancelled when the station stops)."""
        ...


__all__ = ["AnswerInvalid", "CallFailed", "CallRefused", "EvseFacts", "EvseTarget", "FrameListener", "Offline",
           "OwnPayloadInvalid", "SettingsView", "StationPort"]
