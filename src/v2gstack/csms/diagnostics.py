"""Diagnostics (OCPP 2.0.1 N01, N04, N07): log uploads to the CSMS itself, variable monitors, and NotifyEvent.

GetLog names an upload URL on this CSMS with a one-time secret (`/upload/logs/<secret>`, served by the API app
without an API token): the station PUTs or POSTs the file (raw, or the first file of a multipart/form-data body),
at most `max_upload` bytes; the CSMS stores it with its size and SHA-256 under the request, and tracks the
request's LogStatusNotification statuses. SetVariableMonitoring stores the monitors the station set (with the ids it
gave them); ClearVariableMonitoring removes the cleared ones. Every NotifyEvent's EventData is stored per station.
CustomerInformation requests (N09/N10) are stored with the NotifyCustomerInformation parts that answer them.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ocpp import CallContext
from ..times import parse_rfc3339, rfc3339
from .errors import CommandError
from .models import CustomerRequest, LogUpload, Monitor, StationEvent

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]
UPLOAD_PATH = "/upload/logs/"
"""Where stations upload the logs GetLog asked for (API app, no API token: the secret in the URL is the key)."""


def _iso(t: datetime | None) -> str | None:
    return None if t is None else rfc3339(t if t.tzinfo else t.replace(tzinfo=UTC), timespec="auto")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ----- log uploads -----

def upload_dict(u: LogUpload) -> Payload:
    """A log request as the API serves it (without the file)."""
    return {"requestId": u.request_id, "stationId": u.station_id, "logType": u.log_type, "answer": u.answer,
            "status": u.status, "history": u.history or [], "filename": u.filename, "size": u.size,
            "sha256": u.sha256, "requestedAt": _iso(u.requested_at), "uploadedAt": _iso(u.uploaded_at)}


def op_new_log_request(s: Session, station_id: str, log_type: str, secret: str) -> int:
    """A GetLog request about to be sent; its requestId."""
    row = LogUpload(station_id=station_id, log_type=log_type, token_sha256=_digest(secret), history=[],
                    requested_at=datetime.now(UTC))
    s.add(row)
    s.flush()
    return row.request_id


def op_log_answer(s: Session, request_id: int, answer: str, filename: str | None) -> Payload:
    """The station's GetLog answer (and the file name it will use)."""
    row = s.get(LogUpload, request_id)
    assert row is not None
    row.answer = answer
    if filename:
        row.filename = filename
    return upload_dict(row)


def op_log_status(s: Session, station_id: str, request_id: int | None, status: str) -> bool:
    """A LogStatusNotification; False when it names no request of this station (Idle carries none)."""
    if request_id is None:
        return False
    row = s.get(LogUpload, request_id)
    if row is None or row.station_id != station_id:
        return False
    row.status = status
    row.history = [*(row.history or []), {"status": status, "at": rfc3339()}]
    return True


def op_store_upload(s: Session, secret: str, data: bytes, filename: str | None) -> Payload | None:
    """The uploaded file of the request whose secret this is (None: no such request, or already uploaded)."""
    row = s.scalars(select(LogUpload).where(LogUpload.token_sha256 == _digest(secret))).first()
    if row is None or row.data is not None:
        return None
    row.data, row.size, row.sha256 = data, len(data), hashlib.sha256(data).hexdigest()
    row.uploaded_at = datetime.now(UTC)
    if filename:
        row.filename = filename[:255]
    return upload_dict(row)


def op_log_requests(s: Session, station_id: str) -> list[Payload]:
    """A station's log requests, newest first."""
    q = select(LogUpload).where(LogUpload.station_id == station_id).order_by(LogUpload.request_id.desc())
    return [upload_dict(u) for u in s.scalars(q)]


def op_log_file(s: Session, station_id: str, request_id: int) -> tuple[str | None, bytes] | None:
    """(file name, content) of an uploaded log."""
    row = s.get(LogUpload, request_id)
    if row is None or row.station_id != station_id or row.data is None:
        return None
    return row.filename, row.data


def upload_body(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """(file content, file name) of an upload: the body itself, or the first file part of multipart/form-data.
    ValueError for a multipart body without a file."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body, None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    for part in message.iter_parts():  # type: ignore[attr-defined]
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return (payload if isinstance(payload, bytes) else b""), part.get_filename()
    raise ValueError("a multipart/form-data upload without a file part")


# ----- monitors and events -----

def monitor_dict(m: Monitor) -> Payload:
    """A stored monitor."""
    return {"id": m.monitor_id, "component": m.component, "variable": m.variable, "type": m.type, "value": m.value,
            "severity": m.severity, "transaction": m.transaction, "status": m.status, "setAt": _iso(m.set_at)}


def op_monitors_set(s: Session, station_id: str, requested: list[Payload], results: list[Payload]) -> list[Payload]:
    """The SetMonitoringResults of a SetVariableMonitoring: the Accepted ones stored under the station's ids."""
    out = []
    for req, res in zip(requested, results, strict=False):
        if res.get("status") != "Accepted" or res.get("id") is None:
            out.append({**res, "stored": False})
            continue
        row = s.get(Monitor, (station_id, res["id"])) or Monitor(station_id=station_id, monitor_id=res["id"])
        row.component, row.variable = res.get("component", req["component"]), res.get("variable", req["variable"])
        row.type, row.value = res.get("type", req["type"]), float(req["value"])
        row.severity, row.transaction = int(res.get("severity", req["severity"])), bool(req.get("transaction"))
        row.status, row.set_at = "Accepted", datetime.now(UTC)
        s.merge(row)
        out.append({**res, "stored": True})
    return out


def op_monitors_cleared(s: Session, station_id: str, results: list[Payload]) -> int:
    """ClearMonitoringResults: the Accepted (and NotFound: gone anyway) monitors are removed; how many."""
    n = 0
    for res in results:
        if res.get("status") in ("Accepted", "NotFound"):
            row = s.get(Monitor, (station_id, res["id"]))
            if row is not None:
                s.delete(row)
                n += 1
    return n


def op_monitors(s: Session, station_id: str) -> list[Payload]:
    """A station's monitors by id."""
    q = select(Monitor).where(Monitor.station_id == station_id).order_by(Monitor.monitor_id)
    return [monitor_dict(m) for m in s.scalars(q)]


def op_record_events(s: Session, station_id: str, p: Payload) -> int:
    """Every EventData of a NotifyEvent; how many."""
    now = datetime.now(UTC)
    for e in p.get("eventData") or []:
        s.add(StationEvent(
            station_id=station_id, event_id=e["eventId"], timestamp=parse_rfc3339(e["timestamp"]),
            trigger=e["trigger"], actual_value=str(e["actualValue"])[:2500], component=e["component"],
            variable=e["variable"], notification_type=e["eventNotificationType"],
            monitor_id=e.get("variableMonitoringId"), cleared=e.get("cleared"), tech_code=e.get("techCode"),
            data=e, received_at=now))
    return len(p.get("eventData") or [])


def op_events(s: Session, station_id: str, limit: int = 100, component: str | None = None) -> list[Payload]:
    """A station's events, newest first (of one component, if given)."""
    q = select(StationEvent).where(StationEvent.station_id == station_id).order_by(StationEvent.id.desc())
    if component is None:
        rows = list(s.scalars(q.limit(limit)))
    else:  # the component's name is inside its JSON: filtered here, newest first, until `limit` are found
        rows = []
        for e in s.scalars(q.execution_options(yield_per=500)):
            if e.component.get("name") == component:
                rows.append(e)
                if len(rows) == limit:
                    break
    return [{"eventId": e.event_id, "timestamp": _iso(e.timestamp),
             "trigger": e.trigger, "actualValue": e.actual_value, "component": e.component, "variable": e.variable,
             "eventNotificationType": e.notification_type, "variableMonitoringId": e.monitor_id,
             "cleared": e.cleared, "techCode": e.tech_code, "receivedAt": _iso(e.received_at), "data": e.data}
            for e in rows]


# ----- customer information (N09/N10) -----

def customer_dict(c: CustomerRequest) -> Payload:
    """A customer information request with the data reported so far."""
    return {"requestId": c.request_id, "stationId": c.station_id, "request": c.request, "answer": c.answer,
            "data": c.data, "parts": c.parts, "complete": c.complete, "requestedAt": _iso(c.requested_at)}


def op_new_customer_request(s: Session, station_id: str, request: Payload) -> int:
    """A CustomerInformation about to be sent; its requestId."""
    row = CustomerRequest(station_id=station_id, request=request, data="", parts=0, complete=False,
                          requested_at=datetime.now(UTC))
    s.add(row)
    s.flush()
    return row.request_id


def op_customer_answer(s: Session, request_id: int, answer: str) -> Payload:
    """The station's CustomerInformation answer."""
    row = s.get(CustomerRequest, request_id)
    assert row is not None
    row.answer = answer
    return customer_dict(row)


def op_customer_part(s: Session, station_id: str, p: Payload) -> bool:
    """A NotifyCustomerInformation part appended to its request; False when it names no request of this station."""
    row = s.get(CustomerRequest, p["requestId"])
    if row is None or row.station_id != station_id:
        return False
    row.data, row.parts = (row.data or "") + p["data"], (row.parts or 0) + 1
    row.complete = row.complete or not p.get("tbc", False)
    return True


def op_customer_requests(s: Session, station_id: str) -> list[Payload]:
    """A station's customer information requests, newest first."""
    q = select(CustomerRequest).where(CustomerRequest.station_id == station_id).order_by(
        CustomerRequest.request_id.desc())
    return [customer_dict(c) for c in s.scalars(q)]


class DiagnosticsService:
    """GetLog with uploads to this CSMS, LogStatusNotification, monitors and NotifyEvent."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    def handlers(self) -> dict[str, Any]:
        """The station messages this block answers."""
        return {"LogStatusNotification": self.on_log_status, "NotifyEvent": self.on_event,
                "NotifyCustomerInformation": self.on_customer_information}

    async def get_log(self, station_id: str, base_url: str, body: Payload) -> Payload:
        """GetLog with an upload URL on this CSMS (`base_url`: how the station reaches the API)."""
        if not self.csms.online(station_id):
            raise CommandError(409, f"station {station_id} is not connected")
        secret = secrets.token_urlsafe(24)
        request_id = await self.csms.worker.run(op_new_log_request, station_id, body["logType"], secret)
        log_params: Payload = {"remoteLocation": base_url.rstrip("/") + UPLOAD_PATH + secret}
        for key in ("oldestTimestamp", "latestTimestamp"):
            if body.get(key):
                log_params[key] = body[key]
        request: Payload = {"logType": body["logType"], "requestId": request_id, "log": log_params}
        for key in ("retries", "retryInterval"):
            if body.get(key) is not None:
                request[key] = body[key]
        answer = await self.csms.call(station_id, "GetLog", request)
        stored = await self.csms.worker.run(op_log_answer, request_id, str(answer["status"]), answer.get("filename"))
        return {"logRequest": stored, "request": {**request, "log": {**log_params, "remoteLocation": "(secret)"}},
                "response": answer}

    async def on_log_status(self, p: Payload, ctx: CallContext) -> Payload:
        """LogStatusNotification: the request's status history."""
        await self.csms.worker.run(op_log_status, ctx.station_id, p.get("requestId"), p["status"])
        await self.csms._log(ctx.station_id, "rx", "LogStatusNotification", p)
        return {}

    async def set_monitoring(self, station_id: str, monitors: list[Payload]) -> Payload:
        """SetVariableMonitoring; the monitors the station Accepted are stored under the ids it gave them."""
        answer = await self.csms.call(station_id, "SetVariableMonitoring", {"setMonitoringData": monitors})
        results = await self.csms.worker.run(op_monitors_set, station_id, monitors,
                                             answer.get("setMonitoringResult") or [])
        return {"response": answer, "results": results}

    async def clear_monitoring(self, station_id: str, ids: list[int]) -> Payload:
        """ClearVariableMonitoring; the cleared monitors are removed."""
        answer = await self.csms.call(station_id, "ClearVariableMonitoring", {"id": ids})
        removed = await self.csms.worker.run(op_monitors_cleared, station_id, answer.get("clearMonitoringResult")
                                             or [])
        return {"response": answer, "removed": removed}

    async def on_event(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyEvent: every EventData stored."""
        await self.csms.worker.run(op_record_events, ctx.station_id, p)
        await self.csms._log(ctx.station_id, "rx", "NotifyEvent", p)
        self.csms._notify(ctx.station_id, "NotifyEvent", p)
        return {}

    async def customer_information(self, station_id: str, body: Payload) -> Payload:
        """CustomerInformation (N09/N10) with a new requestId; the station's NotifyCustomerInformation parts are
        stored with the request."""
        if not self.csms.online(station_id):
            raise CommandError(409, f"station {station_id} is not connected")
        request_id = await self.csms.worker.run(op_new_customer_request, station_id, body)
        request = {"requestId": request_id, **body}
        answer = await self.csms.call(station_id, "CustomerInformation", request)
        stored = await self.csms.worker.run(op_customer_answer, request_id, str(answer["status"]))
        return {"customerRequest": stored, "request": request, "response": answer}

    async def on_customer_information(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyCustomerInformation: the part appended to its request."""
        if not await self.csms.worker.run(op_customer_part, ctx.station_id, p):
            log.warning("station %s: NotifyCustomerInformation for unknown request %s", ctx.station_id,
                        p.get("requestId"))
        await self.csms._log(ctx.station_id, "rx", "NotifyCustomerInformation", p)
        return {}
