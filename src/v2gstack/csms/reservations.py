"""Reservations (OCPP 2.0.1 H01-H04): ReserveNow and CancelReservation with the reservation's state kept by the CSMS.

A reservation is stored before ReserveNow goes out (its row id is the reservationId) and takes the station's answer
as its status (Accepted, Faulted, Occupied, Rejected, Unavailable). From Accepted it becomes Cancelled (the station
accepted CancelReservation), Expired or Removed (ReservationStatusUpdate, H04), or Used (a TransactionEvent that
names it, H03). An Accepted reservation past its expiry is shown as Expired even before the station says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ocpp import CallContext
from ..times import rfc3339
from .errors import CommandError
from .models import Reservation

if TYPE_CHECKING:
    from .service import Csms

Payload = dict[str, Any]
OPEN = "Accepted"  # the one state a reservation holds an EVSE in


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def reservation_dict(r: Reservation, now: datetime | None = None) -> Payload:
    """A reservation as the API serves it (an open one past its expiry shows as Expired)."""
    status = r.status
    if status == OPEN and _aware(r.expires_at) <= (now or datetime.now(UTC)):
        status = "Expired"
    return {"id": r.id, "stationId": r.station_id, "evseId": r.evse_id, "connectorType": r.connector_type,
            "idToken": r.id_token, "groupIdToken": r.group_id_token,
            "expiryDateTime": rfc3339(_aware(r.expires_at), timespec="seconds"), "status": status,
            "transactionId": r.transaction_id, "createdAt": rfc3339(_aware(r.created_at), timespec="auto"),
            "updatedAt": rfc3339(_aware(r.updated_at), timespec="auto")}


def op_create(s: Session, station_id: str, body: Payload, expires_at: datetime) -> int:
    """A new reservation in state Requested; its id is the reservationId."""
    now = datetime.now(UTC)
    row = Reservation(station_id=station_id, evse_id=body.get("evseId"), connector_type=body.get("connectorType"),
                      id_token=body["idToken"], group_id_token=body.get("groupIdToken"), expires_at=expires_at,
                      status="Requested", created_at=now, updated_at=now)
    s.add(row)
    s.flush()
    return row.id


def op_set_status(s: Session, station_id: str, reservation_id: int, status: str,
                  transaction_id: str | None = None, only_from: str | None = None) -> Payload | None:
    """A reservation's new status (only when it is `only_from` now, if given); the reservation, or None."""
    row = s.get(Reservation, reservation_id)
    if row is None or row.station_id != station_id:
        return None
    if only_from is None or row.status == only_from:
        row.status, row.updated_at = status, datetime.now(UTC)
        if transaction_id is not None:
            row.transaction_id = transaction_id
    return reservation_dict(row)


def op_get(s: Session, station_id: str, reservation_id: int) -> Payload | None:
    """One reservation of a station."""
    row = s.get(Reservation, reservation_id)
    return None if row is None or row.station_id != station_id else reservation_dict(row)


def op_list(s: Session, station_id: str, status: str | None = None) -> list[Payload]:
    """A station's reservations, newest first, optionally of one (shown) status."""
    rows = s.scalars(select(Reservation).where(Reservation.station_id == station_id).order_by(Reservation.id.desc()))
    out = [reservation_dict(r) for r in rows]
    return [r for r in out if status is None or r["status"] == status]


class ReservationService:
    """ReserveNow/CancelReservation for the API; ReservationStatusUpdate and the transactions that use them."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def handlers(self) -> dict[str, Any]:
        """The station messages this block answers."""
        return {"ReservationStatusUpdate": self.on_status_update}

    async def reserve(self, station_id: str, body: Payload, expires_at: datetime) -> Payload:
        """Store the reservation, send ReserveNow, keep the answer as its status."""
        if expires_at <= datetime.now(UTC):
            raise CommandError(422, "expiryDateTime is in the past")
        if not self.csms.online(station_id):
            raise CommandError(409, f"station {station_id} is not connected")
        rid = await self.csms.worker.run(op_create, station_id, body, expires_at)
        request: Payload = {"id": rid, "expiryDateTime": rfc3339(expires_at, timespec="seconds"),
                            "idToken": body["idToken"]}
        for key in ("evseId", "connectorType", "groupIdToken"):
            if body.get(key) is not None:
                request[key] = body[key]
        try:
            answer = await self.csms.call(station_id, "ReserveNow", request)
        except CommandError:
            await self.csms.worker.run(op_set_status, station_id, rid, "NotDelivered")
            raise
        reservation = await self.csms.worker.run(op_set_status, station_id, rid, str(answer["status"]))
        return {"reservation": reservation, "request": request, "response": answer}

    async def cancel(self, station_id: str, reservation_id: int) -> Payload:
        """CancelReservation; Cancelled once the station accepted it."""
        current = await self.csms.worker.run(op_get, station_id, reservation_id)
        if current is None:
            raise CommandError(404, f"no reservation {reservation_id} of station {station_id}")
        if current["status"] != OPEN:
            raise CommandError(409, f"reservation {reservation_id} is {current['status']}, not open")
        answer = await self.csms.call(station_id, "CancelReservation", {"reservationId": reservation_id})
        if answer.get("status") == "Accepted":
            current = await self.csms.worker.run(op_set_status, station_id, reservation_id, "Cancelled")
        return {"reservation": current, "response": answer}

    async def on_status_update(self, p: Payload, ctx: CallContext) -> Payload:
        """ReservationStatusUpdate (H04): Expired or Removed, for an open reservation of this station."""
        await self.csms.worker.run(op_set_status, ctx.station_id, p["reservationId"], p["reservationUpdateStatus"],
                                   None, OPEN)
        await self.csms._log(ctx.station_id, "rx", "ReservationStatusUpdate", p)
        return {}

    async def on_transaction_event(self, station_id: str, p: Payload) -> None:
        """A TransactionEvent that names a reservation (H03): that reservation is Used by the transaction."""
        rid = p.get("reservationId")
        if rid is not None:
            await self.csms.worker.run(op_set_status, station_id, int(rid), "Used",
                                       p["transactionInfo"]["transactionId"], OPEN)
