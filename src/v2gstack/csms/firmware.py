"""Firmware updates (OCPP 2.0.1 L01): UpdateFirmware with the request's state followed from FirmwareStatusNotification,
and the firmware files the CSMS serves for stations to download (`/firmware/<name>` from its firmware folder).

The firmware's signature and signing certificate (the security whitepaper's signed firmware update) are passed on as
the operator gives them: the station checks them (InvalidSignature / InvalidCertificate statuses are kept like the
others). A request's status is the latest notification naming its requestId.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ocpp import CallContext
from ..times import rfc3339
from .errors import CommandError
from .models import FirmwareUpdate

if TYPE_CHECKING:
    from .service import Csms

Payload = dict[str, Any]
FIRMWARE_PATH = "/firmware/"
"""Where stations download the files of the CSMS's firmware folder (API app, no API token)."""
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else rfc3339(t if t.tzinfo else t.replace(tzinfo=UTC), timespec="auto")


def update_dict(u: FirmwareUpdate) -> Payload:
    """A firmware request as the API serves it."""
    return {"requestId": u.request_id, "stationId": u.station_id, "campaign": u.campaign, "firmware": u.firmware,
            "answer": u.answer,
            "status": u.status, "history": u.history or [], "requestedAt": _iso(u.requested_at),
            "updatedAt": _iso(u.updated_at)}


def op_new_update(s: Session, station_id: str, firmware: Payload, campaign: str | None = None) -> int:
    """An UpdateFirmware about to be sent; its requestId."""
    now = datetime.now(UTC)
    row = FirmwareUpdate(station_id=station_id, firmware=firmware, history=[], requested_at=now, updated_at=now,
                         campaign=campaign)
    s.add(row)
    s.flush()
    return row.request_id


def op_answer(s: Session, request_id: int, answer: str) -> Payload:
    """The station's UpdateFirmware answer."""
    row = s.get(FirmwareUpdate, request_id)
    assert row is not None
    row.answer, row.updated_at = answer, datetime.now(UTC)
    return update_dict(row)


def op_status(s: Session, station_id: str, request_id: int | None, status: str) -> bool:
    """A FirmwareStatusNotification; False when it names no request of this station (Idle carries none)."""
    if request_id is None:
        return False
    row = s.get(FirmwareUpdate, request_id)
    if row is None or row.station_id != station_id:
        return False
    row.status, row.updated_at = status, datetime.now(UTC)
    row.history = [*(row.history or []), {"status": status, "at": rfc3339()}]
    return True


def op_updates(s: Session, station_id: str) -> list[Payload]:
    """A station's firmware requests, newest first."""
    q = select(FirmwareUpdate).where(FirmwareUpdate.station_id == station_id).order_by(
        FirmwareUpdate.request_id.desc())
    return [update_dict(u) for u in s.scalars(q)]


def op_campaign(s: Session, campaign: str) -> Payload:
    """A campaign: each station's request, and how many stations are at each latest status."""
    rows = list(s.scalars(select(FirmwareUpdate).where(FirmwareUpdate.campaign == campaign).order_by(
        FirmwareUpdate.station_id)))
    counts: dict[str, int] = {}
    for r in rows:
        key = r.status or r.answer or "NotAnswered"
        counts[key] = counts.get(key, 0) + 1
    return {"campaign": campaign, "stations": len(rows), "byStatus": counts, "updates": [update_dict(r) for r in rows]}


def firmware_file(folder: str | None, name: str) -> Path | None:
    """The file `name` of the firmware folder (None: no folder, an unsafe name, or no such file)."""
    if not folder or not SAFE_NAME.match(name):
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


class FirmwareService:
    """UpdateFirmware for the API; FirmwareStatusNotification."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def handlers(self) -> dict[str, Any]:
        """The station messages this block answers."""
        return {"FirmwareStatusNotification": self.on_status}

    async def update(self, station_id: str, firmware: Payload, retries: int | None = None,
                     retry_interval: int | None = None, campaign: str | None = None) -> Payload:
        """UpdateFirmware with a new requestId; the answer is stored with the request."""
        if not self.csms.online(station_id):
            raise CommandError(409, f"station {station_id} is not connected")
        request_id = await self.csms.worker.run(op_new_update, station_id, firmware, campaign)
        request: Payload = {"requestId": request_id, "firmware": firmware}
        if retries is not None:
            request["retries"] = retries
        if retry_interval is not None:
            request["retryInterval"] = retry_interval
        answer = await self.csms.call(station_id, "UpdateFirmware", request)
        stored = await self.csms.worker.run(op_answer, request_id, str(answer["status"]))
        return {"update": stored, "request": request, "response": answer}

    async def campaign(self, station_ids: list[str], firmware: Payload, retries: int | None = None,
                       retry_interval: int | None = None) -> Payload:
        """UpdateFirmware to many stations under one campaign id (at most 8 at a time); a station that is offline or
        refuses is listed with the reason, the others follow their FirmwareStatusNotifications."""
        campaign = uuid.uuid4().hex[:12]
        slots = asyncio.Semaphore(8)

        async def one(station_id: str) -> Payload:
            async with slots:
                try:
                    out = await self.update(station_id, firmware, retries, retry_interval, campaign)
                    return {"stationId": station_id, "requestId": out["update"]["requestId"],
                            "answer": out["response"]["status"]}
                except CommandError as e:
                    return {"stationId": station_id, "error": str(e), "status": e.status}

        results = await asyncio.gather(*(one(sid) for sid in dict.fromkeys(station_ids)))
        return {"campaign": campaign, "results": list(results)}

    async def on_status(self, p: Payload, ctx: CallContext) -> Payload:
        """FirmwareStatusNotification: the request's status history."""
        await self.csms.worker.run(op_status, ctx.station_id, p.get("requestId"), p["status"])
        await self.csms._log(ctx.station_id, "rx", "FirmwareStatusNotification", p)
        return {}
