"""Waiting for the offline queue to empty (station/sender.py): woken by each removal, for what was queued so far."""

from __future__ import annotations

import asyncio

from v2gstack.station.device_model import DeviceModel, standard_variables
from v2gstack.station.queue import OfflineQueue
from v2gstack.station.sender import QueueSender


def _sender(queue: OfflineQueue) -> QueueSender:
    model = DeviceModel(standard_variables("CS1", 1, model="m", vendor="v", security_profile=1, max_power_w=1.0))
    return QueueSender(queue, asyncio.Event(), lambda: None, model, asyncio.sleep, lambda _p, _a: None)


async def test_the_wait_ends_with_the_last_message_queued_before_it() -> None:
    queue = OfflineQueue()
    sender = _sender(queue)
    first = queue.push("TransactionEvent", {"seqNo": 0})
    second = queue.push("TransactionEvent", {"seqNo": 1})
    assert queue.first_seq() == first
    waiting = asyncio.create_task(sender.wait_empty())
    await asyncio.sleep(0)
    later = queue.push("TransactionEvent", {"seqNo": 2})  # queued after the wait began: not waited for
    sender._forget(first)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiting.done()
    sender._forget(second)
    await asyncio.wait_for(waiting, 1)
    assert queue.first_seq() == later and len(queue) == 1


async def test_an_empty_queue_is_not_waited_for_and_waiters_share_the_wake_up() -> None:
    queue = OfflineQueue()
    sender = _sender(queue)
    assert queue.first_seq() == 0
    await asyncio.wait_for(sender.wait_empty(), 1)
    seq = queue.push("TransactionEvent", {"seqNo": 0})
    waiters = [asyncio.create_task(sender.wait_empty()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one waiter given up does not cancel the others' wake-up
    sender._forget(seq)
    await asyncio.wait_for(asyncio.gather(*waiters[1:]), 1)
