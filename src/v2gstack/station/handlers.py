"""The station's Router: the handlers each service declares for the CSMS-initiated messages, behind the check of the
registration state (B02.FR.02/03)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..ocpp import ErrorCode, OcppError, Router

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Handler = Callable[[Payload], Payload]

# B02.FR.02/03: while Pending the CSMS may configure the station, nothing else (no transactions)
ALLOWED_WHILE_PENDING = frozenset({
    "GetVariables", "SetVariables", "GetBaseReport", "GetReport", "TriggerMessage", "SetNetworkProfile",
    "ChangeAvailability", "Reset", "DataTransfer", "ClearCache", "GetLocalListVersion", "SendLocalList",
})


def register(router: Router, registration: Callable[[], str], station_id: str,
             *handler_sets: Mapping[str, Handler]) -> Router:
    """Add every service's handlers to `router`, each refusing what the registration state does not allow."""
    for handlers in handler_sets:
        for action, func in handlers.items():
            router.add(action, _guarded(action, func, registration, station_id))
    return router


def _guarded(action: str, func: Handler, registration: Callable[[], str], station_id: str) -> Handler:
    """`func` behind the registration check."""

    def handler(payload: Payload) -> Payload:
        """Refuse what the registration state forbids, else run the handler."""
        state = registration()
        if state != "Accepted" and not (state == "Pending" and action in ALLOWED_WHILE_PENDING):
            raise OcppError(ErrorCode.SECURITY_ERROR, f"{action} not allowed: registration {state}")
        log.info("%s: CSMS sent %s", station_id, action)
        return func(payload)

    return handler
