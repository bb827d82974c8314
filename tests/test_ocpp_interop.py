"""Interop with the `ocpp` package (OCPP 2.0.1): its station against our server, our station against its CSMS."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from helpers.ocpp import AUTHORIZE, BOOT, NOW, PASSWORD, TRANSACTION_EVENT, csms_router
from helpers.peers import their_station
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.server import ServerConnection, serve

from v2gstack.ocpp import OcppServer, Router, StaticAuthenticator, StationClient

pytestmark = pytest.mark.timeout(60)


async def test_ocpp_package_station_against_our_csms() -> None:
    """Boot, heartbeat, authorize, a transaction with meter values, and a remote stop from our CSMS."""
    seen: list[tuple[str, dict[str, Any]]] = []
    router = csms_router()
    for action in ("BootNotification", "Authorize", "TransactionEvent"):
        handler = router.get(action)
        assert handler is not None

        def recording(payload: dict[str, Any], *, _f: Any = handler.func, _a: str = action) -> dict[str, Any]:
            seen.append((_a, payload))
            return _f(payload)

        router.add(action, recording)
    srv = OcppServer({"2.0.1": router}, authenticator=StaticAuthenticator({"CS1": PASSWORD}))
    await srv.start()
    try:
        async with their_station(f"ws://127.0.0.1:{srv.port}/ocpp", "CS1", PASSWORD) as cp:
            boot = await cp.call(call.BootNotification(
                charging_station={"model": "M1", "vendor_name": "V2G"}, reason="PowerUp"), suppress=False)
            assert boot.status == "Accepted" and boot.interval == 300
            assert (await cp.call(call.Heartbeat(), suppress=False)).current_time == NOW
            auth = await cp.call(call.Authorize(id_token={"id_token": "04A1B2C3", "type": "ISO14443"}),
                                 suppress=False)
            assert auth.id_token_info["status"] == "Accepted"
            tx = await cp.call(call.TransactionEvent(
                event_type="Started", timestamp=NOW, trigger_reason="Authorized", seq_no=0,
                transaction_info={"transaction_id": "tx-1", "charging_state": "Charging"},
                id_token={"id_token": "04A1B2C3", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
                meter_value=[{"timestamp": NOW, "sampled_value": [
                    {"value": 1234.5, "measurand": "Energy.Active.Import.Register",
                     "unit_of_measure": {"unit": "Wh"}},
                    {"value": 7200.0, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}},
                    {"value": 54, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}},
                ]}]), suppress=False)
            assert tx.id_token_info["status"] == "Accepted"
            answer = await srv.connections["CS1"].call("RequestStopTransaction", {"transactionId": "tx-1"})
            assert answer == {"status": "Accepted"} and cp.stops == ["tx-1"]
            ended = await cp.call(call.TransactionEvent(
                event_type="Ended", timestamp=NOW, trigger_reason="RemoteStop", seq_no=1,
                transaction_info={"transaction_id": "tx-1", "stopped_reason": "Remote"}), suppress=False)
            assert ended is not None
    finally:
        await srv.close()
    assert [a for a, _ in seen] == ["BootNotification", "Authorize", "TransactionEvent", "TransactionEvent"]
    assert seen[0][1] == BOOT and seen[1][1] == AUTHORIZE  # camelCase exactly as the schema spells it
    assert seen[2][1] == TRANSACTION_EVENT


class TheirCsms(ChargePoint):
    """A CSMS built with the `ocpp` package (one ChargePoint object per connected station)."""

    transactions: list[dict[str, Any]]

    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **kw: Any) -> Any:
        """Accept every station."""
        return call_result.BootNotification(current_time=NOW, interval=60, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **kw: Any) -> Any:
        """Current time."""
        return call_result.Heartbeat(current_time=NOW)

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        """Accept any non-empty idToken."""
        return call_result.Authorize(id_token_info={"status": "Accepted" if id_token["id_token"] else "Invalid"})

    @on("TransactionEvent")
    async def on_transaction_event(self, **kw: Any) -> Any:
        """Record the event, accept."""
        self.transactions.append(kw)
        return call_result.TransactionEvent(id_token_info={"status": "Accepted"})


async def test_our_station_against_ocpp_package_csms() -> None:
    """Our station boots, authorizes and runs a transaction against the `ocpp` CSMS; the CSMS calls it back."""
    csms_points: dict[str, TheirCsms] = {}
    ready = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        station_id = ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        cp = csms_points[station_id] = TheirCsms(station_id, ws, response_timeout=10)
        cp.transactions = []
        ready.set()
        with contextlib.suppress(Exception):
            await cp.start()

    station = Router()

    @station.on("GetVariables")
    def get_variables(payload: dict[str, Any]) -> dict[str, Any]:
        return {"getVariableResult": [{"attributeStatus": "Accepted", "component": d["component"],
                                       "variable": d["variable"], "attributeValue": "60"}
                                      for d in payload["getVariableData"]]}

    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"]) as srv:  # type: ignore[list-item]
        port = srv.sockets[0].getsockname()[1]
        conn = await StationClient(f"ws://127.0.0.1:{port}/steve", "CS7", station, call_timeout=10).connect()
        try:
            assert (await conn.call("BootNotification", BOOT)) == {"currentTime": NOW, "interval": 60,
                                                                    "status": "Accepted"}
            assert (await conn.call("Heartbeat", {})) == {"currentTime": NOW}
            assert (await conn.call("Authorize", AUTHORIZE))["idTokenInfo"]["status"] == "Accepted"
            assert (await conn.call("TransactionEvent", TRANSACTION_EVENT))["idTokenInfo"]["status"] == "Accepted"
            await ready.wait()
            cp = csms_points["CS7"]
            assert cp.transactions[0]["meter_value"][0]["sampled_value"][0]["value"] == 1234.5
            result = await cp.call(call.GetVariables(get_variable_data=[
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]), suppress=False)
            assert result.get_variable_result[0]["attribute_value"] == "60"
        finally:
            await conn.close()
