"""What every service of the station shares: its settings, clock, device model, EVSEs, durable queue and tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .config import StationConfig
from .device_model import DeviceModel
from .evse import Evse
from .queue import OfflineQueue

log = logging.getLogger(__name__)


class Tasks:
    """The station's background tasks: each is kept until it ends, its failure is logged, and all are cancelled when
    the station stops."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run a coroutine in the background, keeping a reference and logging its failure."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished task; log it if it failed."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.label, task.get_name(), exc_info=task.exception())

    async def cancel_all(self, *more: asyncio.Task[Any]) -> None:
        """Cancel every task (and `more`) and wait for them to end."""
        tasks = [*self._tasks, *more]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


@dataclass
class StationContext:
    """The state the services share; each service owns its own part besides (link, transactions, profiles...)."""

    config: StationConfig
    clock: Clock
    model: DeviceModel
    evses: dict[int, Evse]
    queue: OfflineQueue
    tasks: Tasks
    operative: bool = True  # the station as a whole (ChangeAvailability without an EVSE)

    @property
    def station_id(self) -> str:
        """The station's identity (log lines start with it)."""
        return self.config.station_id

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run work in the background (see Tasks)."""
        return self.tasks.spawn(coro, name)

    def evses_of(self, payload: dict[str, Any]) -> list[Evse]:
        """The EVSEs a request's optional `evse` (or `evseId`) field designates (all without one)."""
        evse = payload.get("evse")
        eid = evse["id"] if evse else payload.get("evseId")
        if eid is None:
            return list(self.evses.values())
        return [self.evses[eid]] if eid in self.evses else []
