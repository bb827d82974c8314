"""The grid scheduler of a CSMS cluster: one GridControl, on the node holding the `grid-scheduler` singleton lease.

When this node gets the lease it builds the grid control (`make`: the settings' signals file and VEN too) and feeds
it the cluster's TransactionEvents and NotifyEVChargingNeeds from the event stream (csms/events.py), from the
stream's start, so a new leader rebuilds the sessions that were running when the old one died; the plan's
SetChargingProfiles reach stations on other nodes through Csms.call (csms/cluster.py). When it loses the lease it
stops the control. Signals posted through the API of another node are refused there (409): post them to the leader.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for type hints: the service is built before this
    from .grid_control import GridControl
    from .service import Csms

log = logging.getLogger(__name__)


class GridLeader:
    """The singleton job (csms/singletons.py) that runs the grid control on this node while it holds the lease."""

    def __init__(self, csms: Csms, make: Callable[[], Awaitable[GridControl]]) -> None:
        self.csms = csms
        self.make = make  # a GridControl built with listen=False, started
        self.grid: GridControl | None = None
        self._sub: Any = None

    async def start(self, epoch: int) -> None:
        self.grid = await self.make()
        if self.csms.feed is not None:
            self._sub = await self.csms.feed.follow(self.grid.on_message, ("tx", "needs"))
        log.info("node %s runs the grid scheduler (lease epoch %d)", self.csms.config.node_id, epoch)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as e:  # NATS away: the subscription dies with the connection
                log.warning("grid: event stream subscription not ended: %s", e)
            self._sub = None
        if self.grid is not None:
            await self.grid.close()
            if self.csms.grid is self.grid:
                self.csms.grid = None
            self.grid = None
