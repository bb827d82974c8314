"""Display messages (OCPP 2.0.1 O01-O06): messages per station with priority, state and validity, kept by the CSMS.

SetDisplayMessage stores the message with the station's answer (Accepted, NotSupportedMessageFormat, Rejected,
NotSupportedPriority, NotSupportedState, UnknownTransaction); ClearDisplayMessage marks it Cleared once the station
accepted; GetDisplayMessages asks the station, whose NotifyDisplayMessages reports are stored with each message
(messages the CSMS did not set are stored as reported, status "Reported").
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ocpp import CallContext
from ..times import parse_rfc3339, rfc3339
from .errors import CommandError
from .models import DisplayMessage

if TYPE_CHECKING:
    from .service import Csms

Payload = dict[str, Any]
_request_ids = itertools.count(1)


def _time(value: str | None) -> datetime | None:
    return parse_rfc3339(value) if value else None


def _iso(t: datetime | None) -> str | None:
    return None if t is None else rfc3339(t if t.tzinfo else t.replace(tzinfo=UTC), timespec="auto")


def message_dict(m: DisplayMessage) -> Payload:
    """A stored display message as the API serves it."""
    return {"id": m.message_id, "priority": m.priority, "state": m.state, "startDateTime": _iso(m.start_at),
            "endDateTime": _iso(m.end_at), "transactionId": m.transaction_id, "message": m.message,
            "status": m.status, "reported": m.reported, "updatedAt": _iso(m.updated_at)}


def op_put(s: Session, station_id: str, info: Payload, status: str, reported: bool = False) -> Payload:
    """Store a MessageInfoType (as set, with the answer; or as the station reported it)."""
    row = s.get(DisplayMessage, (station_id, info["id"]))
    if row is None:
        row = DisplayMessage(station_id=station_id, message_id=info["id"], message=info.get("message") or {},
                             priority=info["priority"], status=status)
        s.add(row)
    if reported:
        row.reported = info
        if row.status in ("Cleared",):
            row.status = "Reported"
    else:
        row.message, row.priority, row.status = info["message"], info["priority"], status
        row.state, row.transaction_id = info.get("state"), info.get("transactionId")
        row.start_at, row.end_at = _time(info.get("startDateTime")), _time(info.get("endDateTime"))
    row.updated_at = datetime.now(UTC)
    return message_dict(row)


def op_clear(s: Session, station_id: str, message_id: int) -> Payload | None:
    """A message the station cleared."""
    row = s.get(DisplayMessage, (station_id, message_id))
    if row is None:
        return None
    row.status, row.updated_at = "Cleared", datetime.now(UTC)
    return message_dict(row)


def op_list(s: Session, station_id: str, include_cleared: bool = False) -> list[Payload]:
    """A station's display messages by id (cleared ones only when asked)."""
    q = select(DisplayMessage).where(DisplayMessage.station_id == station_id).order_by(DisplayMessage.message_id)
    return [message_dict(m) for m in s.scalars(q) if include_cleared or m.status != "Cleared"]


class DisplayService:
    """The display message commands of a Csms and NotifyDisplayMessages."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def handlers(self) -> dict[str, Any]:
        """The station messages this block answers."""
        return {"NotifyDisplayMessages": self.on_notify}

    async def set(self, station_id: str, info: Payload) -> Payload:
        """SetDisplayMessage; the message is stored with the answer (only Accepted ones are shown as active)."""
        answer = await self.csms.call(station_id, "SetDisplayMessage", {"message": info})
        stored = await self.csms.worker.run(op_put, station_id, info, str(answer["status"]))
        return {"message": stored, "response": answer}

    async def clear(self, station_id: str, message_id: int) -> Payload:
        """ClearDisplayMessage; Cleared once the station accepted."""
        answer = await self.csms.call(station_id, "ClearDisplayMessage", {"id": message_id})
        stored = None
        if answer.get("status") == "Accepted":
            stored = await self.csms.worker.run(op_clear, station_id, message_id)
        return {"message": stored, "response": answer}

    async def get(self, station_id: str, criteria: Payload) -> Payload:
        """GetDisplayMessages (O04): the station reports with NotifyDisplayMessages under the returned requestId."""
        request = {"requestId": next(_request_ids), **criteria}
        answer = await self.csms.call(station_id, "GetDisplayMessages", request)
        return {"request": request, "response": answer}

    async def on_notify(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyDisplayMessages: each reported message is stored with the station's view of it."""
        for info in p.get("messageInfo") or []:
            await self.csms.worker.run(op_put, ctx.station_id, info, "Reported", True)
        await self.csms._log(ctx.station_id, "rx", "NotifyDisplayMessages", p)
        return {}


def check_message(info: Payload) -> None:
    """CommandError 422 for a message the CSMS itself refuses: an end before its start."""
    start, end = _time(info.get("startDateTime")), _time(info.get("endDateTime"))
    if start is not None and end is not None and end <= start:
        raise CommandError(422, "endDateTime is not after startDateTime")
