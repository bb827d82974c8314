"""Local authorization lists (OCPP 2.0.1 D01-D03): the CSMS's token registry sent to a station as a versioned list.

The CSMS keeps, per station, the version the station accepted and the entries it then holds. A Full update sends
the whole registry (split in messages of at most `items_per_message` entries: a Full one, then Differential ones,
each with the next version); a Differential update sends only what changed since (new or changed entries with their
IdTokenInfo, removed ones without, D01.FR.16/17). Nothing is stored as sent until the station Accepted it. After a
station (re)connects and boots, GetLocalListVersion reconciles (D02): a version other than the one the CSMS holds
makes the CSMS send a Full update.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .device_model import op_limit
from .errors import CommandError
from .models import IdToken, LocalList

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]


def _key(token_type: str, id_token: str) -> str:
    return f"{token_type}:{id_token}"


def registry_entries(s: Session) -> dict[str, Payload]:
    """The token registry as local list entries: "type:idToken" -> IdTokenInfo (status, group, expiry)."""
    out: dict[str, Payload] = {}
    for t in s.scalars(select(IdToken).order_by(IdToken.id_token, IdToken.type)):
        if t.type == "NoAuthorization":
            continue
        info: Payload = {"status": t.status}
        if t.group_id:
            info["groupIdToken"] = {"idToken": t.group_id, "type": "Central"}
        if t.expires_at is not None:
            expiry = t.expires_at if t.expires_at.tzinfo else t.expires_at.replace(tzinfo=UTC)
            info["cacheExpiryDateTime"] = expiry.isoformat().replace("+00:00", "Z")
        out[_key(t.type, t.id_token)] = info
    return out


def op_list_state(s: Session, station_id: str) -> Payload:
    """What the CSMS holds of a station's local list, and what would change: the API's view."""
    row = s.get(LocalList, station_id)
    registry = registry_entries(s)
    held = dict(row.entries) if row is not None else {}
    changed = sorted(k for k in registry if held.get(k) != registry[k])
    removed = sorted(k for k in held if k not in registry)
    return {"stationId": station_id, "version": row.version if row else 0, "entries": len(held),
            "lastStatus": row.last_status if row else None, "lastUpdateType": row.last_update_type if row else None,
            "stationVersion": row.station_version if row else None,
            "checkedAt": _iso(row.checked_at) if row else None, "updatedAt": _iso(row.updated_at) if row else None,
            "pending": {"changed": changed, "removed": removed}, "list": held}


def op_plan(s: Session, station_id: str, full: bool) -> tuple[int, dict[str, Payload], list[Payload]]:
    """(current version, entries the station holds before, entries to send): for Full the whole registry (from
    nothing), else the differences from what the station holds."""
    row = s.get(LocalList, station_id)
    registry = registry_entries(s)
    version = row.version if row else 0
    if full:
        return version, {}, [_entry(k, v) for k, v in registry.items()]
    held = dict(row.entries) if row is not None else {}
    entries = [_entry(k, v) for k, v in registry.items() if held.get(k) != v]
    entries += [_entry(k, None) for k in held if k not in registry]
    return version, held, entries


def op_record_sent(s: Session, station_id: str, version: int, update_type: str, status: str,
                   entries: dict[str, Payload] | None) -> None:
    """The station's answer to one SendLocalList; with Accepted, the version and the entries it now holds."""
    row = s.get(LocalList, station_id)
    if row is None:
        row = LocalList(station_id=station_id, version=0, entries={})
        s.add(row)
    row.last_status, row.last_update_type, row.updated_at = status, update_type, datetime.now(UTC)
    if status == "Accepted" and entries is not None:
        row.version, row.entries = version, entries


def op_has_list(s: Session, station_id: str) -> bool:
    """Whether the CSMS ever sent this station a local list (then it reconciles after a boot)."""
    return s.get(LocalList, station_id) is not None


def op_record_version(s: Session, station_id: str, version: int) -> int | None:
    """A GetLocalListVersion answer; returns the version the CSMS holds (None: it never sent a list)."""
    row = s.get(LocalList, station_id)
    if row is None:
        return None
    row.station_version, row.checked_at = version, datetime.now(UTC)
    return row.version


def _applied(held: dict[str, Payload], chunk: list[Payload]) -> dict[str, Payload]:
    """The entries a station holds after it accepted one more message."""
    out = dict(held)
    for e in chunk:
        key = _key(e["idToken"]["type"], e["idToken"]["idToken"])
        if "idTokenInfo" in e:
            out[key] = e["idTokenInfo"]
        else:
            out.pop(key, None)
    return out


def _entry(key: str, info: Payload | None) -> Payload:
    """An AuthorizationData item (no idTokenInfo: remove the token, D01.FR.17)."""
    type_, _, token = key.partition(":")
    out: Payload = {"idToken": {"idToken": token, "type": type_}}
    if info is not None:
        out["idTokenInfo"] = info
    return out


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")


class LocalListService:
    """The local list commands of a Csms and the reconciliation after a station boots."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    async def send(self, station_id: str, *, full: bool = False, items_per_message: int | None = None) -> Payload:
        """Bring the station's list up to the registry: Full (the whole registry) or Differential (the changes).
        Several messages when the entries exceed `items_per_message` (the station's LocalAuthListCtrlr
        ItemsPerMessage). Returns each message's version and answer."""
        worker = self.csms.worker
        if items_per_message is None:  # the station's own limit, when its device model was read
            items_per_message = await worker.run(op_limit, station_id, "LocalAuthListCtrlr", "ItemsPerMessage", None)
        version, held, entries = await worker.run(op_plan, station_id, full)
        if not full and not entries:
            return {"updateType": "Differential", "version": version, "messages": [], "status": "UpToDate"}
        size = items_per_message or max(len(entries), 1)
        chunks = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        sent: list[Payload] = []
        for i, chunk in enumerate(chunks):
            update_type = "Full" if full and i == 0 else "Differential"
            version += 1
            request: Payload = {"versionNumber": version, "updateType": update_type}
            if chunk:
                request["localAuthorizationList"] = chunk
            try:
                answer = await self.csms.call(station_id, "SendLocalList", request)
            except CommandError:
                await worker.run(op_record_sent, station_id, version, update_type, "NotDelivered", None)
                raise
            status = str(answer.get("status"))
            if status == "Accepted":
                held = _applied(held, chunk)
            await worker.run(op_record_sent, station_id, version, update_type, status, held)
            sent.append({"versionNumber": version, "updateType": update_type, "entries": len(chunk),
                         "status": status})
            if status != "Accepted":
                break
        status = sent[-1]["status"]
        if status == "VersionMismatch" and not full:  # the station holds another list than the CSMS thinks
            log.info("station %s: differential local list refused (VersionMismatch): Full update", station_id)
            retry = await self.send(station_id, full=True, items_per_message=items_per_message)
            retry["messages"] = sent + retry["messages"]
            return retry
        return {"updateType": "Full" if full else "Differential",
                "version": version if status == "Accepted" else None, "messages": sent, "status": status}

    async def version(self, station_id: str) -> Payload:
        """GetLocalListVersion: the station's version beside the one the CSMS holds."""
        answer = await self.csms.call(station_id, "GetLocalListVersion", {})
        held = await self.csms.worker.run(op_record_version, station_id, int(answer["versionNumber"]))
        return {"stationVersion": answer["versionNumber"], "version": held,
                "inSync": held is None or held == answer["versionNumber"]}

    async def reconcile(self, station_id: str) -> None:
        """After a boot: GetLocalListVersion, and a Full update when the station's version is not the CSMS's."""
        await asyncio.sleep(0.01)  # after the BootNotificationResponse
        try:
            state = await self.version(station_id)
            if not state["inSync"]:
                log.info("station %s holds local list version %s, the CSMS sent %s: Full update", station_id,
                         state["stationVersion"], state["version"])
                await self.send(station_id, full=True)
        except CommandError as e:
            log.warning("station %s: local list reconciliation failed: %s", station_id, e)
