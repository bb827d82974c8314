"""Peers nobody here wrote: `TheirStation`, the `ocpp` package's ChargePoint playing a charging station (OCPP 2.0.1
or 2.1) against one of our CSMS servers, connected with Basic auth and reading its websocket while the context lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ocpp import v16, v21, v201
from ocpp.charge_point import ChargePoint
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.routing import on
from websockets.asyncio.client import ClientConnection, connect

from v2gstack.ocpp.auth import basic_auth_header

VERSIONS = {"2.0.1": v201, "2.1": v21}  # the package's message modules per OCPP version


class TheirStation(ChargePoint):
    """A station made with the `ocpp` package, speaking `version` (its payloads, schemas and validation). It records
    every CALL our CSMS sends it in `seen` (action, payload in the package's snake_case) and the transactionIds of
    remote stops in `stops`; it answers remote stops with `stop_status`, an action named in `statuses` with that
    status, and the other CALLs with Accepted. For the functional blocks our station lacks (reservations, display
    messages, logs, firmware, monitors, cost) it answers as a station that takes them would; what such a station
    does next (upload, status notifications) the test does with `call`."""

    def __init__(self, station_id: str, ws: ClientConnection, *, version: str = "2.0.1",
                 response_timeout: float = 10, stop_status: str = "Accepted",
                 statuses: dict[str, str] | None = None) -> None:
        super().__init__(station_id, ws, response_timeout)
        messages = VERSIONS[version]
        self._call, self._call_result, self._ocpp_version = messages.call, messages.call_result, version
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.stops: list[str] = []
        self.stop_status = stop_status
        self.statuses = statuses or {}
        self.local_list_version = 0
        self.next_monitor_id = 1

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol our server agreed to."""
        return self._connection.subprotocol

    def _accept(self, action: str, payload: dict[str, Any], status: str = "Accepted", **fields: Any) -> Any:
        """Record the CALL, answer it with `status` (or the one `statuses` names; the version's own result class)."""
        self.seen.append((action, payload))
        return getattr(self._call_result, action)(status=self.statuses.get(action, status), **fields)

    def actions(self, action: str) -> list[dict[str, Any]]:
        """The payloads of the CALLs of one action received so far."""
        return [p for a, p in self.seen if a == action]

    @on("ReserveNow")
    async def on_reserve_now(self, **kw: Any) -> Any:
        """Accept a reservation."""
        return self._accept("ReserveNow", kw)

    @on("CancelReservation")
    async def on_cancel_reservation(self, **kw: Any) -> Any:
        """Accept a cancellation."""
        return self._accept("CancelReservation", kw)

    @on("SetDisplayMessage")
    async def on_set_display_message(self, **kw: Any) -> Any:
        """Accept a display message."""
        return self._accept("SetDisplayMessage", kw)

    @on("GetDisplayMessages")
    async def on_get_display_messages(self, **kw: Any) -> Any:
        """Accept the query (the test sends NotifyDisplayMessages)."""
        return self._accept("GetDisplayMessages", kw)

    @on("ClearDisplayMessage")
    async def on_clear_display_message(self, **kw: Any) -> Any:
        """Accept clearing a message."""
        return self._accept("ClearDisplayMessage", kw)

    @on("GetLog")
    async def on_get_log(self, **kw: Any) -> Any:
        """Accept a log request, naming the file it will upload."""
        return self._accept("GetLog", kw, filename="diagnostics.log")

    @on("CustomerInformation")
    async def on_customer_information(self, **kw: Any) -> Any:
        """Accept a customer information request (the test sends NotifyCustomerInformation)."""
        return self._accept("CustomerInformation", kw)

    @on("SetNetworkProfile")
    async def on_set_network_profile(self, **kw: Any) -> Any:
        """Accept a network connection profile."""
        return self._accept("SetNetworkProfile", kw)

    @on("SetVariables")
    async def on_set_variables(self, **kw: Any) -> Any:
        """Answer every variable with `statuses["SetVariables"]`; without one, a CALLERROR NotImplemented (a station
        that does not take SetVariables)."""
        self.seen.append(("SetVariables", kw))
        if "SetVariables" not in self.statuses:
            raise OcppNotImplemented("SetVariables is not implemented by this station")
        return self._call_result.SetVariables(set_variable_result=[
            {"attribute_status": self.statuses["SetVariables"], "component": d["component"],
             "variable": d["variable"]} for d in kw["set_variable_data"]])

    @on("Reset")
    async def on_reset(self, **kw: Any) -> Any:
        """Accept a reset (the test reconnects as the rebooted station would)."""
        return self._accept("Reset", kw)

    @on("UpdateFirmware")
    async def on_update_firmware(self, **kw: Any) -> Any:
        """Accept a firmware update."""
        return self._accept("UpdateFirmware", kw)

    @on("SendLocalList")
    async def on_send_local_list(self, **kw: Any) -> Any:
        """Take a local list (a Differential one only above the version held)."""
        status = "Accepted"
        if kw["update_type"] == "Differential" and kw["version_number"] <= self.local_list_version:
            status = "VersionMismatch"
        if self.statuses.get("SendLocalList", status) == "Accepted":
            self.local_list_version = kw["version_number"]
        return self._accept("SendLocalList", kw, status)

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self, **kw: Any) -> Any:
        """The version held."""
        self.seen.append(("GetLocalListVersion", kw))
        return self._call_result.GetLocalListVersion(version_number=self.local_list_version)

    @on("SetVariableMonitoring")
    async def on_set_variable_monitoring(self, **kw: Any) -> Any:
        """Accept each monitor (a new id each) unless its component is named `Unknown*`."""
        self.seen.append(("SetVariableMonitoring", kw))
        results = []
        for m in kw["set_monitoring_data"]:
            known = not m["component"]["name"].startswith("Unknown")
            result = {"status": "Accepted" if known else "UnknownComponent", "type": m["type"],
                      "severity": m["severity"], "component": m["component"], "variable": m["variable"]}
            if known:
                result["id"] = self.next_monitor_id
                self.next_monitor_id += 1
            results.append(result)
        return self._call_result.SetVariableMonitoring(set_monitoring_result=results)

    @on("ClearVariableMonitoring")
    async def on_clear_variable_monitoring(self, **kw: Any) -> Any:
        """Clear the monitors named."""
        self.seen.append(("ClearVariableMonitoring", kw))
        return self._call_result.ClearVariableMonitoring(
            clear_monitoring_result=[{"status": "Accepted", "id": i} for i in kw["id"]])

    @on("CostUpdated")
    async def on_cost_updated(self, **kw: Any) -> Any:
        """Take the running cost."""
        self.seen.append(("CostUpdated", kw))
        return self._call_result.CostUpdated()

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


# The answers TheirStation16 gives to each CSMS-initiated OCPP 1.6 action (snake_case, the package's result classes).
ANSWERS_16: dict[str, dict[str, Any]] = {
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "GetConfiguration": {"configuration_key": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
                         "unknown_key": []},
    "ChangeConfiguration": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "ExtendedTriggerMessage": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Accepted", "connector_id": 1},
    "DataTransfer": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "GetLocalListVersion": {"list_version": 3},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "UpdateFirmware": {},
    "SignedUpdateFirmware": {"status": "Accepted"},
    "GetDiagnostics": {"file_name": "diagnostics.tar.gz"},
    "GetLog": {"status": "Accepted", "filename": "security.log"},
    "GetInstalledCertificateIds": {"status": "NotFound"},
    "InstallCertificate": {"status": "Accepted"},
    "DeleteCertificate": {"status": "NotFound"},
    "CertificateSigned": {"status": "Accepted"},
}


class TheirStation16(ChargePoint):
    """A station made with the `ocpp` package's OCPP 1.6 ChargePoint: it records every CALL our CSMS sends it in
    `seen` (action, snake_case payload) and answers each CSMS-initiated 1.6 action with ANSWERS_16 (its
    DataTransfer answers can be replaced through `data_transfer`)."""

    def __init__(self, station_id: str, ws: ClientConnection, *, response_timeout: float = 10) -> None:
        super().__init__(station_id, ws, response_timeout)
        self._call, self._call_result, self._ocpp_version = v16.call, v16.call_result, "1.6"
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.data_transfer: Any = None  # async (vendor_id, message_id, data) -> (status, data) for DataTransfer
        for action in ANSWERS_16:
            self.route_map[action] = {"_on_action": self._answer_for(action), "_skip_schema_validation": False}

    def _answer_for(self, action: str) -> Any:
        async def handler(**kw: Any) -> Any:
            self.seen.append((action, kw))
            if action == "DataTransfer" and self.data_transfer is not None:
                status, data = await self.data_transfer(kw["vendor_id"], kw.get("message_id"), kw.get("data"))
                return v16.call_result.DataTransfer(status=status, data=data)
            return getattr(v16.call_result, action)(**ANSWERS_16[action])

        handler.__name__ = f"on_{action}"
        return handler


@asynccontextmanager
async def their_station16(url: str, station_id: str, password: str | None, **options: Any
                          ) -> AsyncIterator[TheirStation16]:
    """`TheirStation16` connected to `url`/`station_id` (Basic auth unless password is None) offering `ocpp1.6`."""
    headers = {"Authorization": basic_auth_header(station_id, password)} if password else {}
    async with connect(f"{url}/{station_id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                       additional_headers=headers, proxy=None) as ws:
        cp = TheirStation16(station_id, ws, **options)
        reader = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
