"""Provisioning (OCPP 2.0.1 B02/B03, B06-B08): a station's device model as its NotifyReports tell it, GetBaseReport,
GetVariables/SetVariables within the station's limits, and the Pending boot that reads a new station first.

NotifyReport parts are stored per station and variable attribute (the latest value wins). GetVariables and
SetVariables from the API are split into messages of at most DeviceDataCtrlr.ItemsPerMessage items and
BytesPerMessage bytes (instance GetVariables / SetVariables) as the stored device model says (B06.FR.05 and
B07.FR.?: the CSMS SHALL NOT send more): an item that alone exceeds the byte limit is refused (422) before anything is
sent. With `pending_until_reported`, a registered station whose device model the CSMS has not read yet is answered
Pending at boot (B02): the CSMS sends GetBaseReport(FullInventory), and once the report is complete
(`tbc` false) it asks the station to boot again (TriggerMessage BootNotification) and Accepts it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..times import rfc3339
from .errors import CommandError
from .models import DeviceVariable

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]
_request_ids = itertools.count(int(datetime.now(UTC).timestamp()) % 1_000_000)
LIST_KEYS = {"GetVariables": ("getVariableData", "getVariableResult"),
             "SetVariables": ("setVariableData", "setVariableResult")}


def _key(component: Payload, variable: Payload, attribute_type: str) -> str:
    evse = component.get("evse") or {}
    return (f"{component['name']}[{component.get('instance', '')}]@{evse.get('id', '')}/{evse.get('connectorId', '')}"
            f".{variable['name']}[{variable.get('instance', '')}]/{attribute_type}")[:400]


def op_record_report(s: Session, station_id: str, p: Payload) -> int:
    """Store a NotifyReport part's variable attributes; how many."""
    now, n = datetime.now(UTC), 0
    for item in p.get("reportData") or []:
        component, variable = item["component"], item["variable"]
        evse = component.get("evse") or {}
        for attr in item.get("variableAttribute") or []:
            kind = attr.get("type", "Actual")
            key = _key(component, variable, kind)
            row = s.get(DeviceVariable, (station_id, key)) or DeviceVariable(station_id=station_id, key=key)
            row.component, row.component_instance = component["name"], component.get("instance")
            row.evse_id, row.connector_id = evse.get("id"), evse.get("connectorId")
            row.variable, row.variable_instance = variable["name"], variable.get("instance")
            row.attribute_type, row.value, row.mutability = kind, attr.get("value"), attr.get("mutability")
            row.characteristics, row.request_id, row.updated_at = item.get("variableCharacteristics"), p.get(
                "requestId"), now
            s.merge(row)
            n += 1
    return n


def op_device_model(s: Session, station_id: str, component: str | None = None,
                    variable: str | None = None) -> list[Payload]:
    """The stored variable attributes of a station (of a component and/or variable)."""
    q = select(DeviceVariable).where(DeviceVariable.station_id == station_id).order_by(DeviceVariable.key)
    if component is not None:
        q = q.where(DeviceVariable.component == component)
    if variable is not None:
        q = q.where(DeviceVariable.variable == variable)
    return [{"component": r.component, "componentInstance": r.component_instance, "evseId": r.evse_id,
             "connectorId": r.connector_id, "variable": r.variable, "variableInstance": r.variable_instance,
             "type": r.attribute_type, "value": r.value, "mutability": r.mutability,
             "characteristics": r.characteristics,
             "updatedAt": rfc3339(r.updated_at if r.updated_at.tzinfo else r.updated_at.replace(tzinfo=UTC),
                                  timespec="auto")} for r in s.scalars(q)]


def op_has_model(s: Session, station_id: str) -> bool:
    """Whether the CSMS holds any of the station's device model."""
    return s.scalars(select(DeviceVariable.key).where(DeviceVariable.station_id == station_id).limit(1)).first() \
        is not None


def op_limit(s: Session, station_id: str, component: str, variable: str, instance: str | None) -> int | None:
    """A positive integer limit from the station's device model (Actual value), or None."""
    q = select(DeviceVariable).where(DeviceVariable.station_id == station_id, DeviceVariable.component == component,
                                     DeviceVariable.variable == variable, DeviceVariable.attribute_type == "Actual")
    for row in s.scalars(q):
        if (row.variable_instance or None) == instance and row.value and row.value.isdigit() and int(row.value) > 0:
            return int(row.value)
    return None


def split(items: list[Payload], list_key: str, max_items: int | None, max_bytes: int | None) -> list[list[Payload]]:
    """The items in messages of at most `max_items` items whose request JSON is at most `max_bytes` bytes;
    CommandError 422 for an item that alone is too large."""
    messages: list[list[Payload]] = []
    current: list[Payload] = []
    for item in items:
        candidate = [*current, item]
        too_many = max_items is not None and len(candidate) > max_items
        too_big = max_bytes is not None and _size(list_key, candidate) > max_bytes
        if current and (too_many or too_big):
            messages.append(current)
            candidate = [item]
        if max_bytes is not None and _size(list_key, candidate) > max_bytes:
            raise CommandError(422, f"one item alone is larger than the station's BytesPerMessage ({max_bytes})")
        current = candidate
    if current:
        messages.append(current)
    return messages


def _size(list_key: str, items: list[Payload]) -> int:
    """Bytes of a request payload with these items (as the engine sends it: compact JSON)."""
    return len(json.dumps({list_key: items}, separators=(",", ":"), ensure_ascii=False).encode())


class DeviceModelService:
    """GetBaseReport and NotifyReport storage, limited GetVariables/SetVariables, the Pending boot."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.reading: dict[str, int] = {}  # station -> requestId of the base report read while Pending

    async def record_report(self, station_id: str, p: Payload) -> None:
        """A NotifyReport part stored; the last part of a report read while Pending lets the station in."""
        await self.csms.worker.run(op_record_report, station_id, p)
        if not p.get("tbc") and self.reading.get(station_id) == p.get("requestId"):
            del self.reading[station_id]
            self.csms._spawn(self._boot_again(station_id))

    async def base_report(self, station_id: str, report_base: str = "FullInventory") -> Payload:
        """GetBaseReport with a new requestId; the station's NotifyReports are stored as they come."""
        request = {"requestId": next(_request_ids), "reportBase": report_base}
        answer = await self.csms.call(station_id, "GetBaseReport", request)
        return {"request": request, "response": answer}

    async def variables(self, station_id: str, action: str, items: list[Payload]) -> Payload:
        """GetVariables or SetVariables in as many messages as the station's limits need; the results joined."""
        list_key, result_key = LIST_KEYS[action]
        worker = self.csms.worker
        max_items = await worker.run(op_limit, station_id, "DeviceDataCtrlr", "ItemsPerMessage", action)
        max_bytes = await worker.run(op_limit, station_id, "DeviceDataCtrlr", "BytesPerMessage", action)
        messages = split(items, list_key, max_items, max_bytes)
        results: list[Payload] = []
        for chunk in messages:
            answer = await self.csms.call(station_id, action, {list_key: chunk})
            results.extend(answer.get(result_key) or [])
        return {"messages": len(messages), "itemsPerMessage": max_items, "bytesPerMessage": max_bytes,
                result_key: results}

    def pending_boot(self, station_id: str) -> None:
        """The station was answered Pending: read its device model now."""
        if station_id not in self.reading:
            self.csms._spawn(self._read(station_id))

    async def _read(self, station_id: str) -> None:
        await asyncio.sleep(0.01)  # after the BootNotificationResponse
        try:
            request_id = next(_request_ids)
            self.reading[station_id] = request_id
            answer = await self.csms.call(station_id, "GetBaseReport", {"requestId": request_id,
                                                                         "reportBase": "FullInventory"})
            if answer.get("status") != "Accepted":
                log.warning("station %s refused GetBaseReport while Pending: %s", station_id, answer)
                self.reading.pop(station_id, None)
        except CommandError as e:
            log.warning("station %s: device model not read while Pending: %s", station_id, e)
            self.reading.pop(station_id, None)

    async def _boot_again(self, station_id: str) -> None:
        """TriggerMessage(BootNotification): the station boots again now instead of after the interval."""
        await asyncio.sleep(0.01)
        try:
            await self.csms.call(station_id, "TriggerMessage", {"requestedMessage": "BootNotification"})
        except CommandError as e:
            log.info("station %s: no TriggerMessage(BootNotification) (%s); it boots after the interval",
                     station_id, e)
