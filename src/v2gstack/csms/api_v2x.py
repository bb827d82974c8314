"""The CSMS REST API's OCPP 2.1 V2X routes: SetChargingProfile checked by the V2X rules, the setpoint shortcut,
UpdateDynamicSchedule, NotifyAllowedEnergyTransfer, AFRRSignal; charging needs, Dynamic profile updates and meter
keys to read (and meter keys to register).

Commands need an operator token (registering a meter key, which decides what the CSMS trusts: admin). A command a
V2X rule refuses is answered 422 with the rule, the reasonCode and the path; the other statuses are the generic
command route's (409 not connected, 422 schema, 502 refused, 504 no answer).
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..hardware.ocmf import OcmfError
from . import signed_meter, v2x_state
from .audit import note
from .auth import ApiAuth, Principal, Role, forbid_unless
from .service import CommandError, Csms
from .v2x import V2xRuleError


class SetpointIn(BaseModel):
    """A CentralSetpoint for the EVSE's transaction, in W (negative: discharge)."""

    setpoint: float = Field(ge=-10_000_000, le=10_000_000, examples=[-7000.0])
    limit: float | None = Field(None, ge=0, le=10_000_000)
    dischargeLimit: float | None = Field(None, ge=-10_000_000, le=0)
    setpointReactive: float | None = Field(None, ge=-10_000_000, le=10_000_000)
    dynamic: bool = Field(True, description="Dynamic profile (later setpoints as UpdateDynamicSchedule); false: a "
                                            "Relative TxProfile each time")
    transactionId: str | None = Field(None, max_length=36, description="default: the EVSE's running transaction")
    chargingProfileId: int | None = Field(None, description="default: 21000 + evseId (EVSE 0: station-wide)")
    stackLevel: int = Field(0, ge=0)
    dynUpdateInterval: int | None = Field(None, ge=0, description="seconds between the station's pulls (K29)")


class DynamicUpdateIn(BaseModel):
    """New values for a Dynamic profile (ChargingScheduleUpdateType); `push` false: kept for the station's pull."""

    chargingProfileId: int
    scheduleUpdate: dict[str, Any]
    push: bool = True


class AfrrIn(BaseModel):
    """An aFRR signal (AFRRSignalRequest.signal) and when it becomes active (default: now)."""

    signal: int
    timestamp: str | None = None


class MeterKeyIn(BaseModel):
    """A meter's public key (DER SubjectPublicKeyInfo as hex or base64, or PEM) for an EVSE (0: any)."""

    evseId: int = Field(0, ge=0)
    publicKey: str = Field(min_length=1, max_length=2500)


def add_v2x_routes(app: FastAPI, csms: Csms, auth: ApiAuth) -> None:
    """Register the V2X routes (before the generic `/api/stations/{id}/{command}` route, which they specialise)."""
    viewer, admin = Depends(auth.require(Role.VIEWER)), Depends(auth.require(Role.ADMIN))
    operator = Depends(auth.authenticated)

    def _operator(request: Request, principal: Principal, action: str, station_id: str) -> None:
        note(request, action=action, station=station_id)
        forbid_unless(principal, Role.OPERATOR, action)

    async def _run(station_id: str, action: str, request: Any, coro: Any) -> Any:
        try:
            answer = await coro
        except V2xRuleError as e:
            return JSONResponse(e.to_dict(), status_code=422)
        except CommandError as e:
            return JSONResponse({"detail": str(e), **e.details}, status_code=e.status)
        return {"stationId": station_id, "action": action, "request": request, "response": answer}

    @app.post("/api/stations/{station_id}/set-charging-profile", tags=["v2x"])
    async def set_charging_profile(station_id: str, request: Request,
                                   payload: dict[str, Any] = Body(...),  # noqa: B008 (FastAPI's idiom)
                                   principal: Principal = operator) -> Any:
        """SetChargingProfile: the 2.0.1 or 2.1 schema of the station's connection, and for 2.1 the V2X rules
        (operationMode per purpose, limits/setpoints per mode, signs, ranges, per-phase values), before sending;
        an accepted Dynamic profile's values are kept for PullDynamicScheduleUpdate."""
        _operator(request, principal, "SetChargingProfile", station_id)
        return await _run(station_id, "SetChargingProfile", payload,
                          csms.v2x.set_charging_profile(station_id, payload))

    @app.post("/api/stations/{station_id}/evse/{evse_id}/setpoint", tags=["v2x"])
    async def setpoint(station_id: str, evse_id: int, body: SetpointIn, request: Request,
                       principal: Principal = operator) -> Any:
        """The setpoint shortcut (W; negative discharges): a CentralSetpoint TxProfile for the EVSE's transaction;
        with `dynamic` (default) the profile is Dynamic and later setpoints go as UpdateDynamicSchedule. EVSE 0: one
        station-wide TxDefaultProfile, the same setpoint for every EVSE in one CALL (an EVSE's TxProfile outranks
        it)."""
        _operator(request, principal, "SetChargingProfile", station_id)
        if csms.version_of(station_id) not in (None, "2.1"):
            raise HTTPException(409, f"station {station_id} runs OCPP {csms.version_of(station_id)}: setpoints need "
                                     "OCPP 2.1")
        values = body.model_dump(exclude_none=True)
        try:
            return await csms.v2x.setpoint(station_id, evse_id, values)
        except V2xRuleError as e:
            return JSONResponse(e.to_dict(), status_code=422)
        except CommandError as e:
            return JSONResponse({"detail": str(e), **e.details}, status_code=e.status)

    @app.post("/api/stations/{station_id}/update-dynamic-schedule", tags=["v2x"])
    async def update_dynamic_schedule(station_id: str, body: DynamicUpdateIn, request: Request,
                                      principal: Principal = operator) -> Any:
        """UpdateDynamicSchedule (K28), checked against the profile's operation mode; with `push: false` the values
        are only kept, for the station's next PullDynamicScheduleUpdate (K29)."""
        _operator(request, principal, "UpdateDynamicSchedule", station_id)
        payload = {"chargingProfileId": body.chargingProfileId, "scheduleUpdate": body.scheduleUpdate}
        return await _run(station_id, "UpdateDynamicSchedule", payload, csms.v2x.update_dynamic_schedule(
            station_id, body.chargingProfileId, body.scheduleUpdate, push=body.push))

    @app.post("/api/stations/{station_id}/notify-allowed-energy-transfer", tags=["v2x"])
    async def notify_allowed_energy_transfer(station_id: str, request: Request,
                                             payload: dict[str, Any] = Body(...),  # noqa: B008
                                             principal: Principal = operator) -> Any:
        """NotifyAllowedEnergyTransfer (Q01/Q02): the modes the CSMS allows a transaction (e.g. adding DC_BPT)."""
        _operator(request, principal, "NotifyAllowedEnergyTransfer", station_id)
        return await _run(station_id, "NotifyAllowedEnergyTransfer", payload,
                          csms.v2x.notify_allowed_energy_transfer(station_id, payload))

    @app.post("/api/stations/{station_id}/afrr-signal", tags=["v2x"])
    async def afrr_signal(station_id: str, body: AfrrIn, request: Request, principal: Principal = operator) -> Any:
        """AFRRSignal (Q08): the signal stations map through their periods' v2xSignalWattCurve."""
        _operator(request, principal, "AFRRSignal", station_id)
        return await _run(station_id, "AFRRSignal", body.model_dump(exclude_none=True),
                          csms.v2x.afrr_signal(station_id, body.signal, body.timestamp))

    def _known(station_id: str) -> None:
        if csms.store.station(station_id) is None:
            raise HTTPException(404, f"unknown station {station_id!r}")

    @app.get("/api/stations/{station_id}/charging-needs", tags=["v2x"], dependencies=[viewer])
    def charging_needs(station_id: str, limit: int = Query(100, ge=1, le=10000)) -> list[dict[str, Any]]:
        """The station's NotifyEVChargingNeeds, oldest first (V2X parameters, energy offer, control mode, ...)."""
        _known(station_id)
        return csms.store.run(v2x_state.op_charging_needs, station_id, None, limit)

    @app.get("/api/stations/{station_id}/dynamic-schedules", tags=["v2x"], dependencies=[viewer])
    def dynamic_schedules(station_id: str) -> list[dict[str, Any]]:
        """The Dynamic profiles this CSMS set on the station: current values, when pushed and pulled."""
        _known(station_id)
        return csms.store.run(v2x_state.op_dynamic_schedules, station_id)

    @app.get("/api/stations/{station_id}/meter-keys", tags=["v2x"], dependencies=[viewer])
    def meter_keys(station_id: str) -> list[dict[str, Any]]:
        """The meter keys held for signed meter values (operator-registered or from the device model)."""
        _known(station_id)
        return csms.store.run(v2x_state.op_meter_key_list, station_id)

    @app.put("/api/stations/{station_id}/meter-keys", tags=["v2x"], dependencies=[admin])
    def put_meter_key(station_id: str, body: MeterKeyIn, request: Request) -> dict[str, Any]:
        """Register a meter's public key: signed values of that EVSE are verified with it from now on."""
        note(request, action="put-meter-key", station=station_id)
        _known(station_id)
        try:
            key = signed_meter.held_key(body.publicKey)
        except OcmfError as e:
            raise HTTPException(422, str(e)) from None
        csms.store.run(v2x_state.op_put_meter_key, station_id, body.evseId, key, "operator")
        return {"evseId": body.evseId, "source": "operator", "publicKey": key}
