"""The station's logs and their upload (OCPP 2.0.1 N01): GetLog, the file PUT to the CSMS's `remoteLocation`, each
step told with LogStatusNotification.

The station keeps two bounded logs in memory (the newest lines up to `max_bytes` each, the oldest dropped): the
DiagnosticsLog, every OCPP frame sent and received with its time on the station's clock, and the SecurityLog, the
security events the station sent (SecurityEventNotification). Frames go through the OCPP package's `redact` (the
values of SetVariables such as the BasicAuthPassword, credentials, private keys masked): a log leaves the station,
its secrets must not.

GetLog is Accepted with the file name it will upload (`<station>-<logType>-<requestId>.log`), AcceptedCanceled when
it replaces an upload still running (N01.FR.12), Rejected for a location that is not http(s). The upload sends only
the lines between `oldestTimestamp` and `latestTimestamp` when given: Uploading, then Uploaded, or UploadFailure
after `retries` more attempts `retryInterval` s apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..ocpp.redact import redact
from ..times import parse_rfc3339
from .context import StationContext
from .link import Link
from .transfer import TransferError, upload

log = logging.getLogger(__name__)
Payload = dict[str, Any]
DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 10.0


class Logs:
    """The station's DiagnosticsLog and SecurityLog, and GetLog."""

    max_bytes = 256 * 1024
    """Bytes of lines kept per log (a station's memory stays bounded however long it runs)."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        self.lines: dict[str, deque[tuple[str, str]]] = {"DiagnosticsLog": deque(), "SecurityLog": deque()}
        self._size = dict.fromkeys(self.lines, 0)
        self.status = "Idle"
        self.request_id: int | None = None
        self._task: asyncio.Task[Any] | None = None
        link.frame_listeners.append(self.record)
        link.triggers["LogStatusNotification"] = self._trigger

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """GetLog."""
        return {"GetLog": self._get_log}

    def record(self, direction: str, text: str) -> None:
        """Every OCPP frame into the DiagnosticsLog; the security events also into the SecurityLog."""
        at = self.ctx.clock.timestamp()
        line = redact(text)
        self._add("DiagnosticsLog", at, f"{at} {direction} {line}")
        if '"SecurityEventNotification"' in text:
            self._add("SecurityLog", at, f"{at} {line}")

    def _add(self, log_type: str, at: str, line: str) -> None:
        """Append a line, dropping the oldest beyond `max_bytes`."""
        lines = self.lines[log_type]
        lines.append((at, line))
        self._size[log_type] += len(line) + 1
        while self._size[log_type] > self.max_bytes and len(lines) > 1:
            self._size[log_type] -= len(lines.popleft()[1]) + 1

    def text(self, log_type: str, oldest: str | None = None, latest: str | None = None) -> bytes:
        """The lines of a log between two times (RFC 3339, either optional), as the uploaded file."""
        lo = parse_rfc3339(oldest) if oldest else None
        hi = parse_rfc3339(latest) if latest else None
        out = [line for at, line in self.lines[log_type]
               if (lo is None or parse_rfc3339(at) >= lo) and (hi is None or parse_rfc3339(at) <= hi)]
        return "".join(f"{line}\n" for line in out).encode()

    def _get_log(self, p: Payload) -> Payload:
        """GetLog: answer with the file name, upload in the background."""
        location = p["log"]["remoteLocation"]
        if not location.startswith(("http://", "https://")):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedLocation",
                                                         "additionalInfo": "http or https only"}}
        status = "Accepted"
        if self._task is not None and not self._task.done():
            self._task.cancel()  # N01.FR.12: the new request replaces the upload in progress
            status = "AcceptedCanceled"
        filename = f"{self.ctx.station_id}-{p['logType']}-{p['requestId']}.log"
        self.request_id = p["requestId"]
        data = self.text(p["logType"], p["log"].get("oldestTimestamp"), p["log"].get("latestTimestamp"))
        self._task = self.ctx.spawn(self._upload(location, data, p), f"log-{p['requestId']}")
        return {"status": status, "filename": filename}

    async def _upload(self, url: str, data: bytes, p: Payload) -> None:
        """PUT the file, retrying; each step told."""
        rid = p["requestId"]
        attempts = 1 + (DEFAULT_RETRIES if p.get("retries") is None else p["retries"])
        wait = DEFAULT_RETRY_INTERVAL_S if p.get("retryInterval") is None else float(p["retryInterval"])
        tls = self.ctx.config.ssl if url.startswith("https://") else None
        for attempt in range(1, attempts + 1):
            await self._tell("Uploading", rid)
            try:
                await asyncio.to_thread(upload, url, data, tls)
            except TransferError as e:
                log.warning("%s: log %d upload %d/%d failed: %s", self.ctx.station_id, rid, attempt, attempts, e)
                if attempt < attempts:
                    await self.ctx.clock.sleep(wait)
                continue
            await self._tell("Uploaded", rid)
            return
        await self._tell("UploadFailure", rid)

    async def _tell(self, status: str, rid: int | None) -> None:
        """LogStatusNotification (kept for TriggerMessage)."""
        self.status = status
        payload: Payload = {"status": status}
        if rid is not None:
            payload["requestId"] = rid
        await self.link.try_call("LogStatusNotification", payload)

    def _trigger(self, evses: list[Any]) -> bool:
        """TriggerMessage(LogStatusNotification): Uploading while an upload runs, else Idle."""
        running = self._task is not None and not self._task.done()
        self.ctx.spawn(self._tell("Uploading" if running else "Idle", self.request_id if running else None),
                       "trigger-log")
        return True
