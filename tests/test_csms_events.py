"""The cluster's event feed (csms/events.py) on the local NATS JetStream: a TransactionEvent published twice (a
replay after a lost answer, on another node) is stored once in the stream; a reader from the stream's start gets
each event once, in order; station ids that are not subject tokens travel escaped and come back as they were."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.csms import NATS_URL, nats_available
from helpers.wait import until

from v2gstack.csms.events import EventFeed, station_of, subject_token

pytestmark = pytest.mark.timeout(60)



def _event(seq: int) -> dict[str, Any]:
    return {"eventType": "Updated", "timestamp": "2026-12-07T10:00:00Z", "triggerReason": "MeterValuePeriodic",
            "seqNo": seq, "transactionInfo": {"transactionId": "T1"}}


@pytest.fixture
async def nc() -> AsyncIterator[Any]:
    if not nats_available():
        pytest.skip("no NATS server at 127.0.0.1:4222")
    import nats

    conn = await nats.connect(NATS_URL)
    yield conn
    await conn.close()


def test_station_ids_become_one_subject_token_and_back() -> None:
    for sid in ("CS1", "site.7*>", "a b%c"):
        token = subject_token(sid)
        assert not any(c in token for c in ".*> ") and station_of(token) == sid


async def test_a_replayed_event_is_in_the_stream_once(nc: Any) -> None:
    prefix = f"v2gtest{uuid.uuid4().hex[:8]}"
    a, b = EventFeed("node-a", prefix), EventFeed("node-b", prefix)
    await a.start(nc)
    await b.start(nc)  # the second node finds the stream there
    try:
        assert await a.publish("CS.1", "TransactionEvent", _event(0)) is True
        assert await a.publish("CS.1", "TransactionEvent", _event(1)) is True
        assert await b.publish("CS.1", "TransactionEvent", _event(1)) is False  # the replay on the other node
        assert await b.publish("CS.1", "StatusNotification", {"evseId": 1}) is True
        assert (a.published, a.duplicates, b.published, b.duplicates) == (2, 0, 1, 1)
        live: list[tuple[str, str]] = []
        await b.live(lambda st, action, p: live.append((st, action)))  # node A's events, as they come
        assert await b.publish("CS.2", "StatusNotification", {"evseId": 3}) is True  # its own: not delivered
        assert await a.publish("CS.2", "StatusNotification", {"evseId": 2}) is True  # (one connection: in order)
        await until(lambda: len(live) >= 1)
        assert live == [("CS.2", "StatusNotification")]
        got: list[tuple[str, str, int]] = []
        sub = await b.follow(lambda st, action, p: got.append((st, action, p["seqNo"])), ("tx",))
        await until(lambda: len(got) >= 2)
        assert got == [("CS.1", "TransactionEvent", 0), ("CS.1", "TransactionEvent", 1)]
        await sub.unsubscribe()
    finally:
        await a.js.delete_stream(a.stream)
