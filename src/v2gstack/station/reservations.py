"""Reservations at the station (OCPP 2.0.1 H01-H04): ReserveNow and CancelReservation, a reserved EVSE shown as
Reserved, only the reserved idToken (or one of its group) starting there, ReservationStatusUpdate when a
reservation expires.

ReserveNow for an EVSE is Accepted when the EVSE is free (Faulted, Unavailable or Occupied otherwise; Rejected for an
unknown EVSE or with ReservationCtrlr.Enabled false); a ReserveNow with the id of an existing reservation replaces it
(H01.FR.02). Without an evseId the first free EVSE is reserved (a simplification of H01's non-EVSE-specific
reservation). The reservation ends when its idToken starts a transaction there (the TransactionEvent carries the
reservationId, H03), when the CSMS cancels it (H02), or at its expiryDateTime on the station's clock
(ReservationStatusUpdate Expired, H04).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..times import parse_rfc3339
from .context import StationContext
from .evse import Evse
from .link import Link

log = logging.getLogger(__name__)
Payload = dict[str, Any]


@dataclass
class Reservation:
    """One reservation: its EVSE, for whom, until when (the expiry task ends it)."""

    id: int
    evse_id: int
    id_token: Payload
    group_id_token: Payload | None
    expiry: str
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


class Reservations:
    """The station's reservations and the CSMS messages that make and cancel them."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        self.active: dict[int, Reservation] = {}

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """ReserveNow, CancelReservation."""
        return {"ReserveNow": self._reserve, "CancelReservation": self._cancel}

    def on(self, evse: Evse) -> Reservation | None:
        """The reservation holding an EVSE, if any."""
        return next((r for r in self.active.values() if r.evse_id == evse.id), None)

    def admits(self, evse: Evse, token: Payload, info: Payload) -> bool:
        """Whether `token` (with the CSMS's IdTokenInfo `info`) may start on the EVSE: it is not reserved, or
        reserved for this token or for the token's group (H03.FR.02/.03)."""
        r = self.on(evse)
        if r is None:
            return True
        if (token.get("idToken"), token.get("type")) == (r.id_token.get("idToken"), r.id_token.get("type")):
            return True
        group = info.get("groupIdToken") or {}
        return r.group_id_token is not None and group.get("idToken") == r.group_id_token.get("idToken")

    def use(self, evse: Evse) -> int | None:
        """A transaction starts on the EVSE with an admitted token: the reservation is used up; its id."""
        r = self.on(evse)
        if r is None:
            return None
        self._drop(r)
        return r.id

    def _reserve(self, p: Payload) -> Payload:
        """ReserveNow."""
        if not self.ctx.model.bool("ReservationCtrlr", "Enabled"):
            return {"status": "Rejected"}
        previous = self.active.get(p["id"])
        evse_id = p.get("evseId")
        if evse_id is None:
            free = [e for e in self.ctx.evses.values() if self._free(e, previous)]
            if not free:
                return {"status": "Occupied"}
            evse = free[0]
        else:
            evse = self.ctx.evses.get(evse_id)
            if evse is None:
                return {"status": "Rejected"}
            if evse.faulted:
                return {"status": "Faulted"}
            if not evse.operative or not self.ctx.operative:
                return {"status": "Unavailable"}
            if not self._free(evse, previous):
                return {"status": "Occupied"}
        if previous is not None:
            self._drop(previous)
        r = Reservation(p["id"], evse.id, p["idToken"], p.get("groupIdToken"), p["expiryDateTime"])
        self.active[r.id] = r
        r.task = self.ctx.spawn(self._expire(r), f"reservation-{r.id}")
        self._status(evse)
        log.info("%s: reservation %d on EVSE %d for %s until %s", self.ctx.station_id, r.id, evse.id,
                 r.id_token.get("idToken"), r.expiry)
        return {"status": "Accepted"}

    def _free(self, evse: Evse, previous: Reservation | None) -> bool:
        """Nobody plugged, no transaction, no other reservation (the one being replaced aside)."""
        holder = self.on(evse)
        return (not evse.plugged and evse.tx is None and not evse.faulted and evse.operative
                and (holder is None or holder is previous))

    def _cancel(self, p: Payload) -> Payload:
        """CancelReservation: Accepted for a reservation the station holds, else Rejected (H02.FR.02)."""
        r = self.active.get(p["reservationId"])
        if r is None:
            return {"status": "Rejected"}
        self._drop(r)
        return {"status": "Accepted"}

    def _drop(self, r: Reservation) -> None:
        """End a reservation: its EVSE is free again (its status told)."""
        self.active.pop(r.id, None)
        if r.task is not None and r.task is not asyncio.current_task():
            r.task.cancel()
        evse = self.ctx.evses.get(r.evse_id)
        if evse is not None:
            self._status(evse)

    def _status(self, evse: Evse) -> None:
        """The EVSE's connector status (Reserved or back) to the CSMS."""
        evse.reserved = self.on(evse) is not None
        self.ctx.spawn(self.link.send_status(evse), "reservation-status")

    async def _expire(self, r: Reservation) -> None:
        """At the expiry on the station's clock: ReservationStatusUpdate Expired (H04), the EVSE free again."""
        left = (parse_rfc3339(r.expiry) - self.ctx.clock.wall()).total_seconds()
        await self.ctx.clock.sleep(left)
        if self.active.get(r.id) is not r:
            return
        # no longer usable from here; the CSMS hears of the expiry before the connector's Available
        self.active.pop(r.id, None)
        await self.link.try_call("ReservationStatusUpdate", {"reservationId": r.id,
                                                             "reservationUpdateStatus": "Expired"})
        self._drop(r)
