"""The CSMS REST API's routes for the OCPP 2.0.1 functional blocks with state: local lists (D), reservations (H),
display messages (O), log uploads, monitors and events (N), firmware (L), tariffs and cost (I).

Reading needs a viewer token; reservations, display messages, GetLocalListVersion and CostUpdated an operator's;
what changes a station's authorization, configuration or software (local lists, monitors, GetLog, UpdateFirmware,
tariffs) an admin's. Commands answer 409 (not connected), 422 (the payload does not fit the schema of the station's
OCPP version, or the CSMS refuses it), 502 (the station answered with a CALLERROR), 504 (no answer). Two routes take
no API token: the log upload URL a GetLog names (its one-time secret is the key) and the firmware files stations
download.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from . import device_model, diagnostics, display, firmware, local_list, reservations, tariffs
from .audit import note
from .auth import ApiAuth, Principal, Role, forbid_unless
from .errors import CommandError
from .service import Csms


class PasswordIn(BaseModel):
    """A new BasicAuthPassword (default: 32 random letters and digits made by the CSMS)."""

    password: str | None = Field(None, min_length=16, max_length=40)


class BaseReportIn(BaseModel):
    """GetBaseReport's reportBase."""

    reportBase: str = Field("FullInventory", pattern="^(ConfigurationInventory|FullInventory|SummaryInventory)$")


class GetVariablesIn(BaseModel):
    """GetVariables' getVariableData (any number: the CSMS splits it by the station's limits)."""

    getVariableData: list[dict[str, Any]] = Field(min_length=1)


class SetVariablesIn(BaseModel):
    """SetVariables' setVariableData (any number: the CSMS splits it by the station's limits)."""

    setVariableData: list[dict[str, Any]] = Field(min_length=1)


class LocalListIn(BaseModel):
    """How to bring a station's local list up to the token registry."""

    full: bool = Field(False, description="Full: the whole registry; else a Differential update of the changes")
    itemsPerMessage: int | None = Field(None, ge=1, le=10000, description="the station's ItemsPerMessage")


class ReservationIn(BaseModel):
    """A reservation to make (ReserveNow): an EVSE (or any), the idToken (and group) it holds for, until when."""

    idToken: dict[str, Any]
    groupIdToken: dict[str, Any] | None = None
    evseId: int | None = Field(None, ge=0)
    connectorType: str | None = Field(None, max_length=20)
    expiryDateTime: datetime | None = None
    minutes: int | None = Field(None, ge=1, le=7 * 24 * 60, description="instead of expiryDateTime: from now")


class LogIn(BaseModel):
    """A GetLog request; the upload URL is this CSMS's (`publicUrl`: how the station reaches this API)."""

    logType: str = Field("DiagnosticsLog", pattern="^(DiagnosticsLog|SecurityLog)$")
    oldestTimestamp: str | None = None
    latestTimestamp: str | None = None
    retries: int | None = Field(None, ge=0)
    retryInterval: int | None = Field(None, ge=0)
    publicUrl: str | None = Field(None, max_length=400, description="default: the URL this request came to")


class MonitorsIn(BaseModel):
    """SetVariableMonitoring's setMonitoringData."""

    setMonitoringData: list[dict[str, Any]] = Field(min_length=1)


class ProfileUpgradeIn(BaseModel):
    """A05: the higher security profile and where the station reaches the CSMS with it."""

    securityProfile: int = Field(ge=2, le=3)
    url: str = Field(min_length=6, max_length=512, pattern="^wss://", examples=["wss://csms.example:8443/ocpp"])
    configurationSlot: int = Field(1, ge=0)


class ClearMonitorsIn(BaseModel):
    """The ids of monitors to clear."""

    ids: list[int] = Field(min_length=1)


class FirmwareIn(BaseModel):
    """An UpdateFirmware: FirmwareType (location, retrieveDateTime, signingCertificate, signature, ...)."""

    firmware: dict[str, Any]
    retries: int | None = Field(None, ge=0)
    retryInterval: int | None = Field(None, ge=0)


class CampaignIn(BaseModel):
    """A firmware campaign: one FirmwareType for many stations."""

    stationIds: list[str] = Field(min_length=1, max_length=10000)
    firmware: dict[str, Any]
    retries: int | None = Field(None, ge=0)
    retryInterval: int | None = Field(None, ge=0)


class TariffIn(BaseModel):
    """A tariff: prices per kWh, per hour and per transaction, for an idToken group (none: the default)."""

    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    perKWh: float = Field(0.0, ge=0)
    perHour: float = Field(0.0, ge=0)
    fixed: float = Field(0.0, ge=0)
    groupId: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=100)


def add_block_routes(app: FastAPI, csms: Csms, auth: ApiAuth) -> None:
    """Register the functional blocks' routes (before the generic `/api/stations/{id}/{command}` route)."""
    viewer, admin = Depends(auth.require(Role.VIEWER)), Depends(auth.require(Role.ADMIN))
    principal_of = Depends(auth.authenticated)
    store = csms.store

    def known(station_id: str) -> None:
        if store.station(station_id) is None:
            raise HTTPException(404, f"unknown station {station_id!r}")

    def act(request: Request, action: str, station_id: str, principal: Principal | None = None,
            role: Role = Role.OPERATOR) -> None:
        note(request, action=action, station=station_id)
        if principal is not None:
            forbid_unless(principal, role, action)
        known(station_id)

    async def run(coro: Any) -> Any:
        try:
            return await coro
        except CommandError as e:
            return JSONResponse({"detail": str(e), **e.details}, status_code=e.status)

    # ----- A: security -----

    @app.post("/api/stations/{station_id}/password", tags=["security"], dependencies=[admin])
    async def rotate_password(station_id: str, body: PasswordIn, request: Request) -> Any:
        """A01: a new BasicAuthPassword through SetVariables, stored (as its hash) only once the station accepted;
        the station uses it from its next connection on. The password is not returned."""
        act(request, "SetVariables", station_id)
        return await run(csms.passwords.rotate(station_id, body.password))

    @app.post("/api/stations/{station_id}/security-profile", tags=["security"], dependencies=[admin])
    async def upgrade_security_profile(station_id: str, body: ProfileUpgradeIn, request: Request) -> Any:
        """A05: SetNetworkProfile with the higher profile's URL, NetworkConfigurationPriority with that slot first,
        Reset OnIdle; the station's first connection with the new profile raises its stored profile (after which
        the lower profile is refused)."""
        act(request, "SetNetworkProfile", station_id)
        return await run(csms.security_profiles.upgrade(station_id, body.securityProfile, body.url,
                                                        slot=body.configurationSlot))

    # ----- B: provisioning -----

    @app.post("/api/stations/{station_id}/base-report", tags=["provisioning"])
    async def base_report(station_id: str, body: BaseReportIn, request: Request,
                          principal: Principal = principal_of) -> Any:
        """GetBaseReport; the station's NotifyReports are stored as its device model."""
        act(request, "GetBaseReport", station_id, principal)
        return await run(csms.device.base_report(station_id, body.reportBase))

    @app.get("/api/stations/{station_id}/device-model", tags=["provisioning"], dependencies=[viewer])
    def device_model_view(station_id: str, component: str | None = None,
                          variable: str | None = None) -> list[dict[str, Any]]:
        """The station's device model as its NotifyReports told it (of a component and/or variable)."""
        known(station_id)
        return store.run(device_model.op_device_model, station_id, component, variable)

    @app.post("/api/stations/{station_id}/variables/get", tags=["provisioning"])
    async def get_variables(station_id: str, body: GetVariablesIn, request: Request,
                            principal: Principal = principal_of) -> Any:
        """GetVariables in messages within the station's ItemsPerMessage and BytesPerMessage (B06.FR.05)."""
        act(request, "GetVariables", station_id, principal)
        return await run(csms.device.variables(station_id, "GetVariables", body.getVariableData))

    @app.post("/api/stations/{station_id}/variables/set", tags=["provisioning"], dependencies=[admin])
    async def set_variables(station_id: str, body: SetVariablesIn, request: Request) -> Any:
        """SetVariables in messages within the station's ItemsPerMessage and BytesPerMessage."""
        act(request, "SetVariables", station_id)
        return await run(csms.device.variables(station_id, "SetVariables", body.setVariableData))

    # ----- D: local authorization lists -----

    @app.get("/api/stations/{station_id}/local-list", tags=["local list"], dependencies=[viewer])
    def get_local_list(station_id: str) -> dict[str, Any]:
        """The local list the CSMS sent (version, entries the station holds) and what the registry would change."""
        known(station_id)
        return store.run(local_list.op_list_state, station_id)

    @app.post("/api/stations/{station_id}/local-list", tags=["local list"], dependencies=[admin])
    async def send_local_list(station_id: str, body: LocalListIn, request: Request) -> Any:
        """SendLocalList from the token registry: Full or Differential, in messages of `itemsPerMessage`."""
        act(request, "SendLocalList", station_id)
        return await run(csms.local_lists.send(station_id, full=body.full, items_per_message=body.itemsPerMessage))

    @app.post("/api/stations/{station_id}/local-list/version", tags=["local list"])
    async def local_list_version(station_id: str, request: Request, principal: Principal = principal_of) -> Any:
        """GetLocalListVersion: the station's version beside the CSMS's (`inSync`)."""
        act(request, "GetLocalListVersion", station_id, principal)
        return await run(csms.local_lists.version(station_id))

    # ----- H: reservations -----

    @app.get("/api/stations/{station_id}/reservations", tags=["reservations"], dependencies=[viewer])
    def list_reservations(station_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """A station's reservations, newest first (filter by status: Accepted, Expired, Used, Cancelled, ...)."""
        known(station_id)
        return store.run(reservations.op_list, station_id, status)

    @app.post("/api/stations/{station_id}/reservations", status_code=201, tags=["reservations"])
    async def reserve(station_id: str, body: ReservationIn, request: Request,
                      principal: Principal = principal_of) -> Any:
        """ReserveNow: the reservation is stored with the station's answer as its status."""
        act(request, "ReserveNow", station_id, principal)
        if (body.expiryDateTime is None) == (body.minutes is None):
            raise HTTPException(422, "give expiryDateTime or minutes")
        expires = body.expiryDateTime or datetime.now(UTC) + timedelta(minutes=body.minutes or 0)
        expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        return await run(csms.reservations.reserve(station_id, body.model_dump(exclude_none=True), expires))

    @app.delete("/api/stations/{station_id}/reservations/{reservation_id}", tags=["reservations"])
    async def cancel_reservation(station_id: str, reservation_id: int, request: Request,
                                 principal: Principal = principal_of) -> Any:
        """CancelReservation of an open reservation; Cancelled once the station accepted."""
        act(request, "CancelReservation", station_id, principal)
        return await run(csms.reservations.cancel(station_id, reservation_id))

    # ----- O: display messages -----

    @app.get("/api/stations/{station_id}/display-messages", tags=["display messages"], dependencies=[viewer])
    def list_messages(station_id: str, cleared: bool = False) -> list[dict[str, Any]]:
        """The display messages set on a station (with what it reported of them; cleared ones on request)."""
        known(station_id)
        return store.run(display.op_list, station_id, cleared)

    @app.post("/api/stations/{station_id}/display-messages", tags=["display messages"])
    async def set_message(station_id: str, request: Request, principal: Principal = principal_of,
                          message: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 (FastAPI's idiom)
        """SetDisplayMessage with a MessageInfoType (id, priority, message, state, start/end, transactionId)."""
        act(request, "SetDisplayMessage", station_id, principal)

        async def go() -> Any:
            display.check_message(message)
            return await csms.display.set(station_id, message)
        return await run(go())

    @app.delete("/api/stations/{station_id}/display-messages/{message_id}", tags=["display messages"])
    async def clear_message(station_id: str, message_id: int, request: Request,
                            principal: Principal = principal_of) -> Any:
        """ClearDisplayMessage; Cleared once the station accepted."""
        act(request, "ClearDisplayMessage", station_id, principal)
        return await run(csms.display.clear(station_id, message_id))

    @app.post("/api/stations/{station_id}/display-messages/query", tags=["display messages"])
    async def query_messages(station_id: str, request: Request, principal: Principal = principal_of,
                             criteria: dict[str, Any] = Body({})) -> Any:  # noqa: B008
        """GetDisplayMessages (ids, priority, state); the station's NotifyDisplayMessages are stored."""
        act(request, "GetDisplayMessages", station_id, principal)
        return await run(csms.display.get(station_id, criteria))

    # ----- N: logs, monitors, events -----

    @app.post("/api/stations/{station_id}/logs", tags=["diagnostics"], dependencies=[admin])
    async def get_log(station_id: str, body: LogIn, request: Request) -> Any:
        """GetLog with a one-time upload URL on this CSMS; the request then follows LogStatusNotification."""
        act(request, "GetLog", station_id)
        base = body.publicUrl or str(request.base_url)
        return await run(csms.diagnostics.get_log(station_id, base, body.model_dump(exclude_none=True)))

    @app.get("/api/stations/{station_id}/logs", tags=["diagnostics"], dependencies=[viewer])
    def list_logs(station_id: str) -> list[dict[str, Any]]:
        """A station's log requests: answer, status history, the uploaded file's name, size and SHA-256."""
        known(station_id)
        return store.run(diagnostics.op_log_requests, station_id)

    @app.get("/api/stations/{station_id}/logs/{request_id}/file", tags=["diagnostics"], dependencies=[admin])
    def log_file(station_id: str, request_id: int) -> Response:
        """The log file a station uploaded (admin: logs may hold what only admins see)."""
        found = store.run(diagnostics.op_log_file, station_id, request_id)
        if found is None:
            raise HTTPException(404, f"no uploaded log for request {request_id} of {station_id}")
        name, data = found
        safe = "".join(c for c in (name or f"log-{request_id}") if c.isalnum() or c in "._-")[:100]
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{safe}"'})

    async def upload(secret: str, request: Request) -> Response:
        """A station's log upload (PUT or POST; raw body or multipart/form-data), at most the upload cap."""
        body = await request.body()
        try:
            data, name = diagnostics.upload_body(request.headers.get("content-type", ""), body)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        stored = await csms.worker.run(diagnostics.op_store_upload, secret, data, name)
        if stored is None:
            raise HTTPException(404, "no log request awaits this upload")
        return JSONResponse({"requestId": stored["requestId"], "size": stored["size"], "sha256": stored["sha256"]},
                            status_code=201)

    for method in ("PUT", "POST"):
        app.add_api_route(diagnostics.UPLOAD_PATH + "{secret}", upload, methods=[method], tags=["diagnostics"],
                          name=f"log_upload_{method.lower()}")

    @app.post("/api/stations/{station_id}/monitors", tags=["diagnostics"], dependencies=[admin])
    async def set_monitors(station_id: str, body: MonitorsIn, request: Request) -> Any:
        """SetVariableMonitoring; the monitors the station accepted are stored under its ids."""
        act(request, "SetVariableMonitoring", station_id)
        return await run(csms.diagnostics.set_monitoring(station_id, body.setMonitoringData))

    @app.post("/api/stations/{station_id}/monitors/clear", tags=["diagnostics"], dependencies=[admin])
    async def clear_monitors(station_id: str, body: ClearMonitorsIn, request: Request) -> Any:
        """ClearVariableMonitoring; cleared monitors are removed."""
        act(request, "ClearVariableMonitoring", station_id)
        return await run(csms.diagnostics.clear_monitoring(station_id, body.ids))

    @app.get("/api/stations/{station_id}/monitors", tags=["diagnostics"], dependencies=[viewer])
    def list_monitors(station_id: str) -> list[dict[str, Any]]:
        """The monitors the CSMS set on a station."""
        known(station_id)
        return store.run(diagnostics.op_monitors, station_id)

    @app.get("/api/stations/{station_id}/events", tags=["diagnostics"], dependencies=[viewer])
    def list_events(station_id: str, limit: int = Query(100, ge=1, le=10000),
                    component: str | None = None) -> list[dict[str, Any]]:
        """The station's NotifyEvent data, newest first (of one component, if given)."""
        known(station_id)
        return store.run(diagnostics.op_events, station_id, limit, component)

    @app.post("/api/stations/{station_id}/customer-information", tags=["diagnostics"], dependencies=[admin])
    async def customer_information(station_id: str, request: Request,
                                   body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 (FastAPI's idiom)
        """CustomerInformation `{"report", "clear", "customerIdentifier"? | "idToken"? | "customerCertificate"?}`
        (N09/N10; admin: personal data); the station's NotifyCustomerInformation parts are stored."""
        act(request, "CustomerInformation", station_id)
        return await run(csms.diagnostics.customer_information(station_id, body))

    @app.get("/api/stations/{station_id}/customer-information", tags=["diagnostics"], dependencies=[admin])
    def list_customer_information(station_id: str) -> list[dict[str, Any]]:
        """The customer information requests of a station with the data reported (admin: personal data)."""
        known(station_id)
        return store.run(diagnostics.op_customer_requests, station_id)

    # ----- L: firmware -----

    @app.post("/api/stations/{station_id}/firmware", tags=["firmware"], dependencies=[admin])
    async def update_firmware(station_id: str, body: FirmwareIn, request: Request) -> Any:
        """UpdateFirmware; the request follows FirmwareStatusNotification."""
        act(request, "UpdateFirmware", station_id)
        return await run(csms.firmware.update(station_id, body.firmware, body.retries, body.retryInterval))

    @app.get("/api/stations/{station_id}/firmware", tags=["firmware"], dependencies=[viewer])
    def list_firmware(station_id: str) -> list[dict[str, Any]]:
        """A station's firmware requests with their status history."""
        known(station_id)
        return store.run(firmware.op_updates, station_id)

    @app.post("/api/firmware/campaigns", tags=["firmware"], dependencies=[admin])
    async def start_campaign(body: CampaignIn, request: Request) -> Any:
        """UpdateFirmware to many stations under one campaign id; per station its request or why it was not sent."""
        note(request, action="UpdateFirmware")
        return await csms.firmware.campaign(body.stationIds, body.firmware, body.retries, body.retryInterval)

    @app.get("/api/firmware/campaigns/{campaign}", tags=["firmware"], dependencies=[viewer])
    def get_campaign(campaign: str) -> dict[str, Any]:
        """A campaign's stations with their requests, counted by latest status."""
        out = store.run(firmware.op_campaign, campaign)
        if not out["stations"]:
            raise HTTPException(404, f"no campaign {campaign!r}")
        return out

    @app.get(firmware.FIRMWARE_PATH + "{name}", tags=["firmware"])
    def firmware_download(name: str) -> FileResponse:
        """A file of the CSMS's firmware folder, for stations (no API token)."""
        path = firmware.firmware_file(csms.config.firmware_dir, name)
        if path is None:
            raise HTTPException(404, "no such firmware file")
        return FileResponse(path, media_type="application/octet-stream")

    # ----- I: tariffs and cost -----

    @app.get("/api/tariffs", tags=["tariffs"], dependencies=[viewer])
    def list_tariffs() -> list[dict[str, Any]]:
        """Every tariff."""
        return store.run(tariffs.op_tariffs)

    @app.put("/api/tariffs/{tariff_id}", tags=["tariffs"], dependencies=[admin])
    async def put_tariff(tariff_id: str, body: TariffIn, request: Request) -> dict[str, Any]:
        """Create or replace a tariff."""
        note(request, action="put-tariff")
        if len(tariff_id) > 36:
            raise HTTPException(422, "a tariff id is at most 36 characters")
        tariff = await csms.worker.run(tariffs.op_put_tariff, {"id": tariff_id, **body.model_dump()})
        csms.tariffs.changed()
        return tariff

    @app.delete("/api/tariffs/{tariff_id}", status_code=204, tags=["tariffs"], dependencies=[admin])
    async def delete_tariff(tariff_id: str, request: Request) -> Response:
        """Remove a tariff."""
        note(request, action="delete-tariff")
        if not await csms.worker.run(tariffs.op_delete_tariff, tariff_id):
            raise HTTPException(404, f"no tariff {tariff_id!r}")
        csms.tariffs.changed()
        return Response(status_code=204)

    @app.post("/api/stations/{station_id}/transactions/{transaction_id}/cost-updated", tags=["tariffs"])
    async def cost_updated(station_id: str, transaction_id: str, request: Request,
                           principal: Principal = principal_of) -> Any:
        """CostUpdated with the transaction's running cost at its tariff."""
        act(request, "CostUpdated", station_id, principal)
        return await run(csms.tariffs.cost_updated(station_id, transaction_id))
