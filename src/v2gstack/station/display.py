"""Display messages at the station (OCPP 2.0.1 O01-O06): SetDisplayMessage, GetDisplayMessages with
NotifyDisplayMessages, ClearDisplayMessage; the messages kept in the state folder (display_messages.json).

SetDisplayMessage answers (DisplayMessageStatusEnumType): Rejected with DisplayMessageCtrlr.Enabled false or when
`DisplayMessageCtrlr.DisplayMessages` messages are already kept (a message with the same id replaces the old
one), NotSupportedMessageFormat for a format outside `SupportedFormats` (ASCII, UTF8), NotSupportedPriority
outside `SupportedPriorities`, UnknownTransaction for a transactionId no EVSE runs, else Accepted.
GetDisplayMessages is Accepted when a kept message matches the ids / priority / state asked for (then one
NotifyDisplayMessages with them) and Unknown otherwise. ClearDisplayMessage: Accepted for a kept id, else Unknown.
A message bound to a transaction is dropped once that transaction has ended (when the messages are next looked
at). `shown()` is what a display would show now: the messages within their validity window (and state), AlwaysFront
first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..times import parse_rfc3339
from .context import StationContext
from .files import write_private
from .link import Link

log = logging.getLogger(__name__)
Payload = dict[str, Any]
PRIORITY_ORDER = {"AlwaysFront": 0, "InFront": 1, "NormalCycle": 2}


class DisplayMessages:
    """The station's display messages and the O handlers."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        self._path = None if ctx.config.state_dir is None else Path(ctx.config.state_dir) / "display_messages.json"
        self.messages: dict[int, Payload] = self._load()

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """SetDisplayMessage, GetDisplayMessages, ClearDisplayMessage."""
        return {"SetDisplayMessage": self._set, "GetDisplayMessages": self._get,
                "ClearDisplayMessage": self._clear}

    def shown(self, state: str | None = None) -> list[Payload]:
        """The messages a display shows now (within their validity; of `state` when given), AlwaysFront first."""
        self._prune()
        now = self.ctx.clock.wall()
        out = []
        for m in self.messages.values():
            if m.get("startDateTime") and parse_rfc3339(m["startDateTime"]) > now:
                continue
            if m.get("endDateTime") and parse_rfc3339(m["endDateTime"]) <= now:
                continue
            if state is not None and m.get("state") not in (None, state):
                continue
            out.append(m)
        return sorted(out, key=lambda m: (PRIORITY_ORDER.get(m["priority"], 3), m["id"]))

    def _running(self, transaction_id: str) -> bool:
        return any(e.tx is not None and e.tx.id == transaction_id for e in self.ctx.evses.values())

    def _prune(self) -> None:
        """Drop the messages bound to a transaction that has ended."""
        gone = [i for i, m in self.messages.items() if m.get("transactionId") and not self._running(m["transactionId"])]
        for i in gone:
            del self.messages[i]
        if gone:
            self._save()

    # ----- handlers -----

    def _set(self, p: Payload) -> Payload:
        """SetDisplayMessage."""
        m = p["message"]
        model = self.ctx.model
        if not model.bool("DisplayMessageCtrlr", "Enabled"):
            return {"status": "Rejected"}
        if m["message"]["format"] not in model.members("DisplayMessageCtrlr", "SupportedFormats"):
            return {"status": "NotSupportedMessageFormat"}
        if m["priority"] not in model.members("DisplayMessageCtrlr", "SupportedPriorities"):
            return {"status": "NotSupportedPriority"}
        tx = m.get("transactionId")
        if tx is not None and not self._running(tx):
            return {"status": "UnknownTransaction"}
        self._prune()
        if m["id"] not in self.messages and len(self.messages) >= model.int("DisplayMessageCtrlr",
                                                                            "DisplayMessages"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "TooManyElements"}}
        self.messages[m["id"]] = m
        self._save()
        log.info("%s: display message %d (%s) set", self.ctx.station_id, m["id"], m["priority"])
        return {"status": "Accepted"}

    def _get(self, p: Payload) -> Payload:
        """GetDisplayMessages: Accepted and a NotifyDisplayMessages when any message matches, else Unknown."""
        self._prune()
        ids = set(p.get("id") or [])
        found = [m for m in self.messages.values()
                 if (not ids or m["id"] in ids) and p.get("priority") in (None, m["priority"])
                 and p.get("state") in (None, m.get("state"))]
        if not found:
            return {"status": "Unknown"}
        self.link.notify("NotifyDisplayMessages", {"requestId": p["requestId"], "messageInfo": found})
        return {"status": "Accepted"}

    def _clear(self, p: Payload) -> Payload:
        """ClearDisplayMessage."""
        if self.messages.pop(p["id"], None) is None:
            return {"status": "Unknown"}
        self._save()
        return {"status": "Accepted"}

    # ----- persistence -----

    def _load(self) -> dict[int, Payload]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            kept = json.loads(self._path.read_text())
            return {int(m["id"]): m for m in kept}
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("%s: unreadable %s: %s", self.ctx.station_id, self._path.name, e)
            return {}

    def _save(self) -> None:
        if self._path is not None:
            write_private(self._path, json.dumps(list(self.messages.values())).encode())
