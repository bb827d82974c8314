"""The cluster's event feed: what stations told any node, on NATS JetStream subjects, once each.

A node publishes a station's TransactionEvent, NotifyEVChargingNeeds, StatusNotification and BootNotification on
`<prefix>.evt.<kind>.<station>` after the message is committed and **before** the station gets its answer, and waits
for JetStream's acknowledgement. So every acknowledged event is in the stream; a station that got no answer (its node
died between the commit and the answer) sends the message again, to whichever node, and that node publishes it again
with the same `Nats-Msg-Id` (a TransactionEvent: station, transactionId, seqNo), which JetStream drops as a duplicate
within the stream's duplicate window. The stream (`<PREFIX>_EVENTS`, file storage) keeps the events for its retention
time; consumers (the grid scheduler on the elected node, billing) read it from the stream, live views (every node's
dashboard) get the other nodes' events as they are published (`live`); the database stays the truth.
A publish that fails (NATS away) fails the message: the station gets a CALLERROR and sends it again later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

Payload = dict[str, Any]
KINDS = {"TransactionEvent": "tx", "NotifyEVChargingNeeds": "needs", "StatusNotification": "status",
         "BootNotification": "boot", "CertificateExpiry": "cert"}
PUBLISH_TIMEOUT = 5.0  # s for JetStream's acknowledgement of one event


def subject_token(station_id: str) -> str:
    """A station id as one NATS subject token (`.`, `*`, `>` and spaces escaped, reversible)."""
    return quote(station_id, safe="-_~").replace(".", "%2E")


def station_of(token: str) -> str:
    """The station id of a subject token (subject_token's inverse)."""
    return unquote(token)


def stream_name(prefix: str) -> str:
    """The JetStream stream of a subject prefix: `v2g` -> `V2G_EVENTS`."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper() + "_EVENTS"


def message_id(station_id: str, action: str, p: Payload) -> str:
    """The `Nats-Msg-Id` of an event: the same message from the same station has the same id on every node (a
    TransactionEvent by its key, others by their content, which holds their timestamp where they have one)."""
    if action == "TransactionEvent":
        return f"tx|{station_id}|{p['transactionInfo']['transactionId']}|{p['seqNo']}"
    if action == "BootNotification":  # every boot is news (a station boots alike each time), never a duplicate
        return f"boot|{station_id}|{uuid.uuid4().hex}"
    digest = hashlib.sha256(json.dumps(p, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    return f"{KINDS.get(action, action)}|{station_id}|{digest}"


class EventFeed:
    """This node's publisher on the event stream, and readers of it (`follow`)."""

    def __init__(self, node_id: str, prefix: str = "v2g", retention_s: float = 24 * 3600.0,
                 duplicate_window_s: float = 600.0) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.stream = stream_name(prefix)
        self.retention_s = retention_s
        self.duplicate_window_s = min(duplicate_window_s, retention_s)
        self.nc: Any = None
        self.js: Any = None
        self.published = 0  # events JetStream stored
        self.duplicates = 0  # events JetStream had already (a replay after a lost answer, on any node)

    async def start(self, nc: Any) -> None:
        """Make sure the stream exists (every node does this; the same config makes it idempotent)."""
        from nats.js.api import RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        self.nc = nc
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT)
        config = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.evt.>"], storage=StorageType.FILE,
                              retention=RetentionPolicy.LIMITS, max_age=self.retention_s,
                              duplicate_window=self.duplicate_window_s)
        try:
            await self.js.add_stream(config)
        except BadRequestError:  # it exists with another config (an older version, other limits): take ours
            await self.js.update_stream(config)
        log.info("node %s publishes events on %s.evt.> (stream %s)", self.node_id, self.prefix, self.stream)

    def subject(self, station_id: str, action: str) -> str:
        return f"{self.prefix}.evt.{KINDS.get(action, 'other')}.{subject_token(station_id)}"

    async def publish(self, station_id: str, action: str, p: Payload, msg_id: str | None = None) -> bool:
        """Publish one event and wait for JetStream to store it; False when it was a duplicate (already there)."""
        data = json.dumps({"station": station_id, "action": action, "node": self.node_id, "payload": p},
                          separators=(",", ":")).encode()
        ack = await self.js.publish(self.subject(station_id, action), data, timeout=PUBLISH_TIMEOUT,
                                    headers={"Nats-Msg-Id": msg_id or message_id(station_id, action, p)})
        if ack.duplicate:
            self.duplicates += 1
            return False
        self.published += 1
        return True

    async def live(self, on_event: Callable[[str, str, Payload], None]) -> Any:
        """The other nodes' events as they are published (core NATS: no replay, a gap while NATS is away), for live
        views such as the dashboard: `on_event(station, action, payload)`. The subscription."""

        async def deliver(msg: Any) -> None:
            try:
                event = json.loads(msg.data)
                if event.get("node") != self.node_id:
                    on_event(event["station"], event["action"], event["payload"])
            except Exception:
                log.exception("live event %s could not be applied", msg.subject)

        return await self.nc.subscribe(f"{self.prefix}.evt.>", cb=deliver)

    async def follow(self, on_event: Callable[[str, str, Payload], None], kinds: tuple[str, ...] = ()) -> Any:
        """Read the stream from its start, then live, in order: `on_event(station, action, payload)` for each event
        (of `kinds`, e.g. ("tx", "needs"); all when empty). The subscription (unsubscribe() ends it)."""
        from nats.js.api import DeliverPolicy

        async def deliver(msg: Any) -> None:
            try:
                event = json.loads(msg.data)
                on_event(event["station"], event["action"], event["payload"])
            except Exception:
                log.exception("event %s could not be applied", msg.subject)

        subjects = [f"{self.prefix}.evt.{k}.>" for k in kinds] or [f"{self.prefix}.evt.>"]
        if len(subjects) == 1:
            return await self.js.subscribe(subjects[0], cb=deliver, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.ALL)
        # several kinds: one ordered consumer over everything, the others skipped (one order across kinds)
        wanted = set(kinds)

        def only(station: str, action: str, p: Payload) -> None:
            if KINDS.get(action) in wanted:
                on_event(station, action, p)

        return await self.follow(only)
