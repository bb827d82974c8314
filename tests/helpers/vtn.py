"""A real openleadr VTN (OpenADRServer) on a free loopback port for the grid tests: 1 s polls, recording
registrations, report offers, TELEMETRY_USAGE readings and opt answers; events added, updated and cancelled."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import OpenADRServer, utils


class Vtn:
    """openleadr's VTN on a free loopback port (1 s polls), recording registrations, reports and opt answers."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = OpenADRServer(vtn_id="VTN", http_host="127.0.0.1", http_port=self.port,
                                    requested_poll_freq=timedelta(seconds=1))
        self.server.add_handler("on_create_party_registration", self.on_registration)
        self.server.add_handler("on_register_report", self.on_register_report)
        self.registered: list[str] = []
        self.offered: list[tuple[str | None, str]] = []
        self.readings: dict[str, list[float]] = {}
        self.answers: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        """The VTN's OpenADR 2.0b endpoint."""
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def on_registration(self, info: dict[str, Any]) -> tuple[str, str]:
        self.registered.append(info["ven_name"])
        return "ven-csms", "reg-1"

    async def on_register_report(self, ven_id: str, resource_id: str, measurement: str, unit: str, scale: str,
                                 min_sampling_interval: timedelta, max_sampling_interval: timedelta) -> Any:
        self.offered.append((resource_id, measurement))

        async def on_data(data: list[tuple[datetime, float]]) -> None:
            self.readings.setdefault(resource_id, []).extend(v for _, v in data)

        return on_data, timedelta(seconds=1)

    def event(self, signal_name: str, signal_type: str, payloads: list[float], minutes: float = 15,
              **kw: Any) -> str:
        """Add an event for the VEN: one interval of `minutes` per payload, from now; its id."""
        now = datetime.now(UTC)
        intervals = [{"dtstart": now + timedelta(minutes=minutes * n), "duration": timedelta(minutes=minutes),
                      "signal_payload": p} for n, p in enumerate(payloads)]
        return self.server.add_event("ven-csms", signal_name, signal_type, intervals, market_context="oadr://v2g.test",
                                     callback=self.on_answer, **kw)

    async def on_answer(self, ven_id: str, event_id: str, opt_type: str) -> None:
        """The VEN's optIn/optOut answer to an event."""
        self.answers.append((event_id, opt_type))

    def update(self, event_id: str, payload: float) -> None:
        """Change the first interval's payload of an event (a new modification number)."""
        event = utils.find_by(self.server.events["ven-csms"], "event_descriptor.event_id", event_id)
        interval = event.event_signals[0].intervals[0]  # the VTN keeps intervals as given (dicts here)
        if isinstance(interval, dict):
            interval["signal_payload"] = payload
        else:
            interval.signal_payload = payload
        utils.increment_event_modification_number(event)
        self.server.events_updated["ven-csms"] = True


@asynccontextmanager
async def vtn() -> AsyncIterator[Vtn]:
    """A running VTN, stopped afterwards."""
    v = Vtn()
    await v.server.run()
    try:
        yield v
    finally:
        await v.server.stop()
