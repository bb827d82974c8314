"""The queue sender: delivers the durable offline queue in order, removing each message only once answered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..ocpp import CallErrorReceived, CallTimeoutError, Connection, ConnectionClosedError, PayloadInvalid
from .device_model import DeviceModel
from .metering import queued_for
from .queue import OfflineQueue

log = logging.getLogger(__name__)

AnswerHook = Callable[[dict[str, Any], dict[str, Any]], None]


class QueueSender:
    """One task that sends queued messages oldest first whenever the station is online (connected and accepted),
    each as the connection's OCPP version carries it (metering.queued_for).

    A drop or a timeout keeps the message for the next attempt (at least once); a CallError is retried
    OCPPCommCtrlr.MessageAttempts[TransactionEvent] times, MessageAttemptInterval apart (growing), then dropped.
    """

    def __init__(self, queue: OfflineQueue, online: asyncio.Event, connection: Callable[[], Connection | None],
                 model: DeviceModel, sleep: Callable[[float], Awaitable[None]], on_answer: AnswerHook,
                 name: str = "") -> None:
        self.queue = queue
        self.online = online
        self.connection = connection
        self.model = model
        self.sleep = sleep
        self.on_answer = on_answer
        self.name = name
        self._wake = asyncio.Event()
        self._removed: asyncio.Future[None] | None = None  # resolved when a message leaves the queue

    def wake(self) -> None:
        """Something was queued, or the station came online: look at the queue again."""
        self._wake.set()

    async def wait_empty(self) -> None:
        """Wait until every message queued so far has been answered (not those queued meanwhile: a periodic sampler
        that queues faster than a busy CSMS answers would otherwise keep the wait going for ever). Woken by each
        removal rather than polling: a station with many sessions ending at once has as many waiters."""
        last = self.queue.last_seq()
        while 0 < self.queue.first_seq() <= last:
            if self._removed is None or self._removed.done():
                self._removed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._removed)

    def _forget(self, seq: int) -> None:
        """Remove a message from the queue and wake whoever waits for it to empty."""
        self.queue.remove(seq)
        removed, self._removed = self._removed, None
        if removed is not None and not removed.done():
            removed.set_result(None)

    async def run(self) -> None:
        """Send forever (until cancelled)."""
        attempts = 0
        while True:
            item = self.queue.peek()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.online.wait()
            conn = self.connection()
            if conn is None or conn.closed:
                await asyncio.sleep(0.01)
                continue
            try:
                answer = await conn.call(item.action, queued_for(item.action, item.payload, conn.version.value))
            except ConnectionClosedError:
                continue  # sent again after reconnecting
            except (CallTimeoutError, CallErrorReceived, PayloadInvalid) as e:
                attempts += 1
                limit = self.model.int("OCPPCommCtrlr", "MessageAttempts", instance="TransactionEvent")
                log.warning("%s: %s (queue #%d) failed, attempt %d of %d: %s", self.name, item.action, item.seq,
                            attempts, limit, e)
                if attempts >= limit and not isinstance(e, CallTimeoutError):
                    log.error("%s: gave up %s %s", self.name, item.action, item.payload)
                    self._forget(item.seq)
                    attempts = 0
                else:
                    await self.sleep(attempts * self.model.int("OCPPCommCtrlr", "MessageAttemptInterval",
                                                               instance="TransactionEvent"))
                continue
            attempts = 0
            self._forget(item.seq)
            self.on_answer(item.payload, answer)
