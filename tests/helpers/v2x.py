"""Helpers for the station's OCPP 2.1 V2X tests: our station (with a grid-frequency input of the test's choosing)
connected to our CSMS, a running transaction with a scripted EV, charging profiles with V2X periods, and a
grid frequency that only a measurement reveals (no listeners: the control loop must find the change itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from helpers.csms import PASSWORD, SCALE, TOKEN, csms_url
from v2gstack.csms.service import Csms
from v2gstack.hardware import GridFrequency
from v2gstack.ocpp import BackOff
from v2gstack.station import ChargingStation, StationConfig

Payload = dict[str, Any]


class MeasuredFrequency(GridFrequency):
    """A grid frequency the station can only read (like a meter's): changing `hz` tells nobody."""

    def __init__(self, hz: float = 50.0) -> None:
        self.hz = hz

    def frequency(self) -> float:
        """The frequency now."""
        return self.hz


@asynccontextmanager
async def station21(csms: Csms, station_id: str = "CS1", *, frequency: GridFrequency | None = None,
                    tx_interval: int = 3600, **kw: Any) -> AsyncIterator[ChargingStation]:
    """Our station connected to our CSMS (fast clock, both OCPP versions offered unless `versions` says), accepted."""
    kw.setdefault("time_scale", SCALE)
    kw.setdefault("boot_retry_s", 1.0)
    st = ChargingStation(StationConfig(station_id, csms_url(csms), password=PASSWORD, backoff=BackOff(0.02, 0.02, 1),
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
