"""Peers nobody here wrote: `TheirStation`, the `ocpp` package's ChargePoint playing a charging station (OCPP 2.0.1
or 2.1) against one of our CSMS servers, connected with Basic auth and reading its websocket while the context lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ocpp import v21, v201
from ocpp.charge_point import ChargePoint
from ocpp.routing import on
from websockets.asyncio.client import ClientConnection, connect

from v2gstack.ocpp.auth import basic_auth_header

VERSIONS = {"2.0.1": v201, "2.1": v21}  # the package's message modules per OCPP version


class TheirStation(ChargePoint):
    """A station made with the `ocpp` package, speaking `version` (its payloads, schemas and validation). It records
    every CALL our CSMS sends it in `seen` (action, payload in the package's snake_case) and the transactionIds of
    remote stops in `stops`; it answers remote stops with `stop_status` and the other CALLs with Accepted."""

    def __init__(self, station_id: str, ws: ClientConnection, *, version: str = "2.0.1",
                 response_timeout: float = 10, stop_status: str = "Accepted") -> None:
        super().__init__(station_id, ws, response_timeout)
        messages = VERSIONS[version]
        self._call, self._call_result, self._ocpp_version = messages.call, messages.call_result, version
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.stops: list[str] = []
        self.stop_status = stop_status

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol our server agreed to."""
        return self._connection.subprotocol

    def _accept(self, action: str, payload: dict[str, Any], status: str = "Accepted") -> Any:
        """Record the CALL, answer it with `status` (the version's own result class)."""
        self.seen.append((action, payload))
        return getattr(self._call_result, action)(status=status)

    @on("RequestStopTransaction")
    async def on_request_stop(self, **kw: Any) -> Any:
        """Remote stop: remember the transaction, answer with the configured status."""
        self.stops.append(kw["transaction_id"])
        return self._accept("RequestStopTransaction", kw, self.stop_status)

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, **kw: Any) -> Any:
        """Accept a charging profile."""
        return self._accept("SetChargingProfile", kw)

    @on("UpdateDynamicSchedule")
    async def on_update_dynamic_schedule(self, **kw: Any) -> Any:
        """Accept a Dynamic profile's update (2.1)."""
        return self._accept("UpdateDynamicSchedule", kw)

    @on("NotifyAllowedEnergyTransfer")
    async def on_notify_allowed_energy_transfer(self, **kw: Any) -> Any:
        """Accept the allowed energy transfer modes (2.1)."""
        return self._accept("NotifyAllowedEnergyTransfer", kw)

    @on("AFRRSignal")
    async def on_afrr_signal(self, **kw: Any) -> Any:
        """Accept an aFRR signal (2.1)."""
        return self._accept("AFRRSignal", kw)


@asynccontextmanager
async def their_station(url: str, station_id: str, password: str, *, version: str = "2.0.1",
                        **options: Any) -> AsyncIterator[TheirStation]:
    """`TheirStation` connected to `url`/`station_id` with Basic auth offering `ocpp<version>`, its reader running
    until the context ends (`options`: more TheirStation arguments)."""
    async with connect(f"{url}/{station_id}", subprotocols=[f"ocpp{version}"],  # type: ignore[list-item]
                       additional_headers={"Authorization": basic_auth_header(station_id, password)},
                       proxy=None) as ws:
        cp = TheirStation(station_id, ws, version=version, **options)
        reader = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
