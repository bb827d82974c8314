"""Helpers for the station's OCPP 2.1 V2X tests: our station (with a grid-frequency input of the test's choosing)
connected to our CSMS, a running transaction with a scripted EV, charging profiles with V2X periods, a grid
frequency that only a measurement reveals (no listeners: the control loop must find the change itself), and the
`ocpp` package's 2.1 CSMS role (`their_csms21`) for interop."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ocpp.routing import on
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call_result as call_result21
from websockets.asyncio.server import ServerConnection, serve

from helpers.csms import PASSWORD, SCALE, TOKEN, csms_url
from v2gstack.csms.service import Csms
from v2gstack.hardware import GridFrequency
from v2gstack.ocpp import BackOff
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.times import rfc3339

Payload = dict[str, Any]


class MeasuredFrequency(GridFrequency):
    """A grid frequency the station can only read (like a meter's): changing `hz` tells nobody."""

    def __init__(self, hz: float = 50.0) -> None:
        self.hz = hz

    def frequency(self) -> float:
        """The frequency now."""
        return self.hz


@asynccontextmanager
async def station21(csms: Csms | str, station_id: str = "CS1", *, frequency: GridFrequency | None = None,
                    tx_interval: int = 3600, **kw: Any) -> AsyncIterator[ChargingStation]:
    """Our station connected to our CSMS (or to the URL given), fast clock, both OCPP versions offered unless
    `versions` says; yields once the boot is accepted."""
    kw.setdefault("time_scale", SCALE)
    kw.setdefault("boot_retry_s", 1.0)
    url = csms if isinstance(csms, str) else csms_url(csms)
    st = ChargingStation(StationConfig(station_id, url, password=PASSWORD, backoff=BackOff(0.02, 0.02, 1),
                                       call_timeout=5.0, ping_interval=None, **kw), frequency=frequency)
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", str(tx_interval))
    await st.start()
    try:
        await st.wait_accepted()
        yield st
    finally:
        await st.stop()


async def start_transaction(st: ChargingStation, evse_id: int = 1, *, power_w: float = 11000.0,
                            soc: float = 50.0) -> str:
    """A scripted EV plugs in and is authorized; the CSMS has the transaction when this returns its id."""
    st.set_ev(evse_id, power_w=power_w, soc=soc, battery_wh=60000.0)
    await st.plug_in(evse_id)
    info = await st.authorize(evse_id, TOKEN)
    assert info["status"] == "Accepted", info
    await st.wait_queue_empty()
    tx = st.evses[evse_id].tx
    assert tx is not None
    return tx.id


def profile(pid: int, periods: list[Payload], *, purpose: str = "TxProfile", kind: str = "Relative",
            tx_id: str | None = None, stack: int = 0, unit: str = "W", **extra: Any) -> Payload:
    """A ChargingProfileType with one schedule of `periods` (startPeriod given or 0, 60, 120, ...)."""
    schedule: Payload = {"id": pid, "chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": 60 * i, **p} for i, p in enumerate(periods)]}
    if "startSchedule" in extra:
        schedule["startSchedule"] = extra.pop("startSchedule")
    out: Payload = {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
                    "chargingSchedule": [schedule], **extra}
    if tx_id is not None:
        out["transactionId"] = tx_id
    return out


class TheirCsms21(ChargePoint21):
    """The `ocpp` package's OCPP 2.1 CSMS role for one station connection: it records every CALL it receives
    (action, payload as sent, camelCase) and answers a PullDynamicScheduleUpdate with `pull_answer`."""

    received: list[tuple[str, Payload]]
    pull_answer: Payload

    async def route_message(self, raw_msg: str) -> None:
        """Record CALLs as received, then route them."""
        msg = json.loads(raw_msg)
        if msg[0] == 2:
            self.received.append((msg[2], msg[3]))
        await super().route_message(raw_msg)

    @on("BootNotification")
    async def on_boot(self, **kw: Any) -> Any:
        """Accepted."""
        return call_result21.BootNotification(current_time=rfc3339(), interval=300, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **kw: Any) -> Any:
        """The time."""
        return call_result21.Heartbeat(current_time=rfc3339())

    @on("StatusNotification")
    async def on_status(self, **kw: Any) -> Any:
        """Noted."""
        return call_result21.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, **kw: Any) -> Any:
        """Every token is accepted, V2X allowed (Q01: without allowedEnergyTransfer it could only charge)."""
        return call_result21.Authorize(id_token_info={"status": "Accepted"},
                                       allowed_energy_transfer=["AC_three_phase", "AC_BPT", "DC", "DC_BPT"])

    @on("TransactionEvent")
    async def on_transaction_event(self, **kw: Any) -> Any:
        """Accepted (with the token's status when one is sent)."""
        if "id_token" in kw:
            return call_result21.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result21.TransactionEvent()

    @on("MeterValues")
    async def on_meter_values(self, **kw: Any) -> Any:
        """Noted."""
        return call_result21.MeterValues()

    @on("NotifyEVChargingNeeds")
    async def on_needs(self, **kw: Any) -> Any:
        """Accepted."""
        return call_result21.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyChargingLimit")
    async def on_limit(self, **kw: Any) -> Any:
        """Noted."""
        return call_result21.NotifyChargingLimit()

    @on("PullDynamicScheduleUpdate")
    async def on_pull(self, **kw: Any) -> Any:
        """The scripted answer (snake_case keys: the package camel-cases them)."""
        return call_result21.PullDynamicScheduleUpdate(**self.pull_answer)


@asynccontextmanager
async def their_csms21(points: dict[str, TheirCsms21]) -> AsyncIterator[str]:
    """A `websockets` server offering ocpp2.1 only whose connections are `TheirCsms21`; yields its URL."""
    async def handler(ws: ServerConnection) -> None:
        station_id = ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        cp = TheirCsms21(station_id, ws, response_timeout=10)
        cp.received, cp.pull_answer = [], {"status": "Rejected"}
        points[station_id] = cp
        with contextlib.suppress(Exception):
            await cp.start()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.1"]) as srv:  # type: ignore[list-item]
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/ocpp"
