"""The audit log of the CSMS REST API: every state-changing request made with a valid token, with its outcome.

An ASGI middleware: when a POST/PUT/PATCH/DELETE was authenticated (the auth dependency left its principal on the
request state) it records who (token id, name, role), when, method, path, action, station and the status answered,
through the CSMS's store worker, and lets the answer go out only after the record is committed. Refused attempts
(403) are recorded too; requests without a valid token (401) are logged, not recorded, so an anonymous peer cannot
grow the database. Endpoints name their action and station with `note`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Principal
from .store import op_record_audit
from .worker import StoreWorker

log = logging.getLogger(__name__)

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def note(request: Request, *, action: str | None = None, station: str | None = None) -> None:
    """Name the action (e.g. the OCPP action of a command) and the station of a request for its audit record."""
    if action is not None:
        request.state.audit_action = action
    if station is not None:
        request.state.audit_station = station


class AuditLog:
    """ASGI middleware recording authenticated state-changing requests (see the module docstring)."""

    def __init__(self, app: ASGIApp, worker: StoreWorker) -> None:
        self.app = app
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; record it when its answer starts (or when it fails)."""
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS:
            await self.app(scope, receive, send)
            return
        started = datetime.now(UTC)
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            entry = _entry(scope, status, started)
            recorded = True
            if entry is None:
                return
            try:
                await self.worker.run(op_record_audit, entry)
            except Exception:  # the action is done; losing its record must be loud
                log.exception("audit record lost: %s %s by %s -> %s", entry["method"], entry["path"],
                              entry["token_id"], status)

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not recorded:
                await record(500)
            raise


def _entry(scope: Scope, status: int, started: datetime) -> dict[str, Any] | None:
    """The audit record of a finished request, or None when no token authenticated it."""
    state = scope.get("state") or {}
    principal = state.get("principal")
    if not isinstance(principal, Principal):
        return None
    route = scope.get("route")
    path_params = scope.get("path_params") or {}
    client = scope.get("client")
    return {"time": started, "token_id": principal.token_id, "actor": principal.name, "role": principal.role.label,
            "method": scope["method"], "path": scope.get("path", ""),
            "action": state.get("audit_action") or getattr(route, "name", None) or "",
            "station_id": state.get("audit_station") or path_params.get("station_id"), "status": status,
            "client": f"{client[0]}:{client[1]}" if client else None}
