"""Availability and resets: ChangeAvailability of the station or an EVSE (now, or Scheduled after the running
transaction), Reset (now, OnIdle after the last transaction, or one EVSE's transaction), UnlockConnector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from .context import StationContext
from .link import Link
from .transactions import Transactions

Payload = dict[str, Any]


class Availability:
    """Whether the station and its EVSEs may be used, and the (simulated) reboot."""

    def __init__(self, ctx: StationContext, link: Link, transactions: Transactions) -> None:
        self.ctx = ctx
        self.link = link
        self.transactions = transactions
        self.reboots = 0
        self._reset_when_idle = False
        transactions.ended_hooks.append(self._transaction_ended)

    async def reboot(self, trigger: str = "ResetCommand", reason: str = "ImmediateReset") -> None:
        """Simulated reboot: end transactions, drop the link, BootNotification(RemoteReset) on reconnecting."""
        for evse in self.ctx.evses.values():
            if evse.tx is not None:
                await self.transactions.stop_transaction(evse.id, reason, trigger)
        if self.link.online:  # let the CSMS answer the Ended events first, so that none is sent twice
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.link.wait_queue_empty(), self.link.client.call_timeout)
        self.reboots += 1
        await self.link.restart("RemoteReset")

    def _transaction_ended(self) -> None:
        """Reset(OnIdle) with transactions running: reboot when the last one ends."""
        if self._reset_when_idle and all(e.tx is None for e in self.ctx.evses.values()):
            self._reset_when_idle = False
            self.ctx.spawn(self.reboot("ResetCommand", "ImmediateReset"), "reset")

    async def change_availability(self, evse_id: int | None, operative: bool) -> str:
        """ChangeAvailability: Accepted now, or Scheduled after the running transaction."""
        ctx = self.ctx
        targets = list(ctx.evses.values()) if evse_id is None else [ctx.evses[evse_id]]
        scheduled = False
        if evse_id is None:
            ctx.operative = operative
            ctx.model.put("ChargingStation", "Available", "true" if operative else "false")
        for evse in targets:
            if evse.tx is not None and not operative:
                evse.scheduled_operative, scheduled = operative, True
            else:
                evse.operative = operative
            await self.link.send_status(evse)
        return "Scheduled" if scheduled else "Accepted"

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """Reset, ChangeAvailability, UnlockConnector."""
        return {"Reset": self._reset, "ChangeAvailability": self._change_availability,
                "UnlockConnector": self._unlock}

    def _reset(self, p: Payload) -> Payload:
        """Reset: now, when idle (Scheduled), or one EVSE's transaction."""
        ctx = self.ctx
        if "evseId" in p:
            if p["evseId"] not in ctx.evses:
                return {"status": "Rejected"}
            ctx.spawn(self.transactions.stop_transaction(p["evseId"], "ImmediateReset", "ResetCommand"), "evse-reset")
            return {"status": "Accepted"}
        busy = any(e.tx is not None for e in ctx.evses.values())
        if p["type"] == "OnIdle" and busy:
            self._reset_when_idle = True
            return {"status": "Scheduled"}
        ctx.spawn(self.reboot(), "reset")
        return {"status": "Accepted"}

    def _change_availability(self, p: Payload) -> Payload:
        """ChangeAvailability of the station or one EVSE."""
        evse = p.get("evse")
        if evse is not None and (evse["id"] not in self.ctx.evses or evse.get("connectorId", 1) != 1):
            return {"status": "Rejected"}
        operative = p["operationalStatus"] == "Operative"
        scheduled = any(e.tx is not None for e in self.ctx.evses_of(p)) and not operative
        self.ctx.spawn(self.change_availability(evse["id"] if evse else None, operative), "availability")
        return {"status": "Scheduled" if scheduled else "Accepted"}

    def _unlock(self, p: Payload) -> Payload:
        """UnlockConnector: refused while an authorized transaction runs."""
        evse = self.ctx.evses.get(p["evseId"])
        if evse is None or p["connectorId"] != evse.connector_id:
            return {"status": "UnknownConnector"}
        if evse.tx is not None and evse.authorized:
            return {"status": "OngoingAuthorizedTransaction"}
        return {"status": "Unlocked"}
