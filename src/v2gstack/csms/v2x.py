"""The CSMS's OCPP 2.1 V2X commands and handlers: SetChargingProfile checked by the V2X rules before it is sent,
the CentralSetpoint shortcut, UpdateDynamicSchedule, NotifyAllowedEnergyTransfer, AFRRSignal, and the answers to
PullDynamicScheduleUpdate from the per-profile store (csms/v2x_state.py).

A command is validated twice before anything leaves: the engine checks the payload against the schema of the
station's OCPP version (422 `invalid ... request`), and for a 2.1 station the V2X rules (ocpp/v2x.py) check the
profile (422 with the rule, reasonCode and path that failed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..ocpp import CallContext, PayloadInvalid
from ..ocpp.v2x import OperationMode, ProfileRejected, check_profile, check_schedule_update, check_transaction
from ..times import rfc3339
from . import v2x_state
from .store import op_log_message

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]
SETPOINT_PROFILE_BASE = 21000
"""Profile id of the setpoint shortcut on EVSE n: SETPOINT_PROFILE_BASE + n (a new setpoint replaces the last)."""
UPDATE_FIELDS = ("limit", "limit_L2", "limit_L3", "dischargeLimit", "dischargeLimit_L2", "dischargeLimit_L3",
                 "setpoint", "setpoint_L2", "setpoint_L3", "setpointReactive", "setpointReactive_L2",
                 "setpointReactive_L3")


class V2xRuleError(Exception):
    """A command a V2X rule refuses before it is sent (the API answers 422 with `to_dict()`)."""

    def __init__(self, rejected: ProfileRejected) -> None:
        super().__init__(str(rejected))
        self.rejected = rejected

    def to_dict(self) -> Payload:
        """The 422 body: what failed and the answer a 2.1 station would give."""
        return {"detail": f"refused by OCPP 2.1 rule {self.rejected.rule}: {self.rejected.info}",
                **self.rejected.to_dict(), "stationWouldAnswer": self.rejected.response()}


KEEP_AUTHORIZED = 100_000
"""AuthorizeResponses whose allowed energy transfer the CSMS holds for the transactions they start (the oldest go)."""


class V2xService:
    """V2X on top of a Csms: its handlers are registered in the CSMS router, its commands used by the API."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        # the Dynamic profiles this node set (write-through of v2x_state): a setpoint leaves without waiting for the
        # store's worker, which 100 simultaneous setpoints otherwise queue behind each other's writes; an entry is
        # dropped when the station refuses an update (another node may have replaced the profile)
        self._dynamic: dict[tuple[str, int], Payload] = {}
        # Q01: what the latest AuthorizeResponse of (station, idToken, type) allowed (None: left out, charging only)
        # and when, for the TransactionEvents that name that idToken (one token may start several transactions)
        self._authorized: dict[tuple[str, str, str], tuple[list[str] | None, str]] = {}

    async def _known_dynamic(self, station_id: str, profile_id: int) -> Payload | None:
        """A Dynamic profile's stored facts (transactionId, operationMode, chargingRateUnit, scheduleUpdate)."""
        known = self._dynamic.get((station_id, profile_id))
        if known is None:
            known = await self.csms.worker.run(v2x_state.op_get_dynamic, station_id, profile_id)
            if known is not None:
                self._dynamic[(station_id, profile_id)] = known
        return known

    # ----- handlers -----

    async def on_pull_dynamic(self, p: Payload, ctx: CallContext) -> Payload:
        """PullDynamicScheduleUpdate (K29): the stored update of a Dynamic profile this CSMS set, else Rejected."""
        sid = ctx.station_id
        update = await self.csms.worker.run(v2x_state.op_pull_dynamic, sid, p["chargingProfileId"])
        if update is None:
            answer: Payload = {"status": "Rejected", "statusInfo": {
                "reasonCode": "NotFound", "additionalInfo": f"no Dynamic profile {p['chargingProfileId']} was set "
                                                            "by this CSMS"}}
        else:
            answer = {"status": "Accepted", "scheduleUpdate": update}
        await self.csms._log(sid, "rx", "PullDynamicScheduleUpdate", p, answer)
        return answer

    # ----- commands -----

    def _version(self, station_id: str) -> str | None:
        """The OCPP version of the station's open connection (None: not connected)."""
        conn = self.csms.server.connections.get(station_id)
        return None if conn is None else conn.version.value

    def check(self, station_id: str, payload: Payload) -> None:
        """The V2X rules for a SetChargingProfileRequest to a 2.1 station (V2xRuleError when one fails); schema
        errors are left to the engine, which reports them with their own codes."""
        if self._version(station_id) != "2.1":
            return
        profile, evse = payload.get("chargingProfile"), payload.get("evseId")
        if not isinstance(profile, dict) or not isinstance(evse, int):
            return
        try:
            self.csms.server.connections[station_id].engine.validate_request("SetChargingProfile", payload)
        except (PayloadInvalid, KeyError):
            return  # the schema error is the engine's to report (CommandError 422); KeyError: just disconnected
        try:
            check_profile(evse, profile)
            check_transaction(profile, self.csms._state(station_id).active, evse)
        except ProfileRejected as e:
            raise V2xRuleError(e) from None

    async def set_charging_profile(self, station_id: str, payload: Payload) -> Payload:
        """SetChargingProfile after the checks; an accepted Dynamic profile's period becomes its stored update."""
        self.check(station_id, payload)
        answer = await self.csms.call(station_id, "SetChargingProfile", payload)
        profile = payload.get("chargingProfile") or {}  # 1.6: csChargingProfiles, never Dynamic
        if answer.get("status") == "Accepted" and profile.get("chargingProfileKind") == "Dynamic":
            schedule = profile["chargingSchedule"][0]
            period = schedule["chargingSchedulePeriod"][0]
            values = {k: period[k] for k in UPDATE_FIELDS if k in period}
            mode = period.get("operationMode", OperationMode.CHARGING_ONLY.value)
            self._dynamic[(station_id, profile["id"])] = {
                "chargingProfileId": profile["id"], "evseId": payload["evseId"],
                "transactionId": profile.get("transactionId"), "operationMode": mode,
                "chargingRateUnit": schedule["chargingRateUnit"], "scheduleUpdate": values}
            await self.csms.worker.run(
                v2x_state.op_put_dynamic, station_id, profile["id"], values, payload["evseId"],
                profile.get("transactionId"), mode, schedule["chargingRateUnit"])
        elif profile.get("id") is not None:
            self._dynamic.pop((station_id, profile["id"]), None)
        return answer

    async def update_dynamic_schedule(self, station_id: str, profile_id: int, update: Payload, *,
                                      push: bool = True) -> Payload | None:
        """Store a Dynamic profile's new values (checked against its operation mode) and, with `push`, send
        UpdateDynamicSchedule (K28); without it the station gets them at its next PullDynamicScheduleUpdate (K29)."""
        known = await self._known_dynamic(station_id, profile_id)
        merged = {**(known or {}).get("scheduleUpdate", {}), **update}  # K28: the fields given replace theirs
        if known is not None and known.get("operationMode"):
            period = {"startPeriod": 0, "operationMode": known["operationMode"], **known["scheduleUpdate"]}
            try:
                check_schedule_update(update, period,
                                      "TxProfile" if known.get("transactionId") else "TxDefaultProfile",
                                      known.get("chargingRateUnit") or "W")
            except ProfileRejected as e:
                raise V2xRuleError(e) from None
        answer = None
        entry = None
        if push:
            request = {"chargingProfileId": profile_id, "scheduleUpdate": update}
            answer = await self.csms.call(station_id, "UpdateDynamicSchedule", request)
            entry = self.csms.log_entry(station_id, "tx", "UpdateDynamicSchedule", request, answer,
                                        (known or {}).get("transactionId"))
            if answer.get("status") != "Accepted":
                self._dynamic.pop((station_id, profile_id), None)
                if entry is not None:
                    await self.csms.worker.run(op_log_message, *entry)
                return answer
        if known is not None:
            self._dynamic[(station_id, profile_id)] = {**known, "scheduleUpdate": merged}
        # the values and the log of the exchange in one store operation: one wait for the store per setpoint
        await self.csms.worker.run(v2x_state.op_dynamic_pushed, station_id, profile_id, merged, entry)
        return answer

    async def setpoint(self, station_id: str, evse_id: int, body: Payload) -> Payload:
        """The setpoint shortcut: a CentralSetpoint TxProfile (Dynamic unless `dynamic` is false) for the EVSE's
        running transaction; once this node installed such a Dynamic profile, later setpoints go as
        UpdateDynamicSchedule. EVSE 0: a station-wide TxDefaultProfile (evseId 0), the same setpoint for every EVSE
        in one CALL (an EVSE's own TxProfile still outranks it)."""
        station_wide = evse_id == 0  # one TxDefaultProfile for every EVSE: one CALL per station and setpoint
        tx_id = None if station_wide else body.get("transactionId") or self.csms.active_transaction(station_id,
                                                                                                     evse_id)
        if tx_id is None and not station_wide:
            raise V2xRuleError(ProfileRejected("K01.FR.09", "TxNotFound", f"no transaction runs on EVSE {evse_id}",
                                               "transactionId"))
        values = {k: body[k] for k in ("setpoint", "limit", "dischargeLimit", "setpointReactive") if k in body}
        profile_id = body.get("chargingProfileId", SETPOINT_PROFILE_BASE + evse_id)
        dynamic = body.get("dynamic", True)
        # only what this node set (no store read before sending: the read would queue behind the store's writes);
        # without it the setpoint goes as a full SetChargingProfile, which replaces a profile of the same id (K01)
        known = self._dynamic.get((station_id, profile_id)) if dynamic else None
        if known is not None and known.get("transactionId") == tx_id and known.get("operationMode") == \
                OperationMode.CENTRAL_SETPOINT.value:
            answer = await self.update_dynamic_schedule(station_id, profile_id, values)
            if not _profile_lost(answer):
                return {"action": "UpdateDynamicSchedule", "chargingProfileId": profile_id, "transactionId": tx_id,
                        "request": {"chargingProfileId": profile_id, "scheduleUpdate": values}, "response": answer}
            # the station no longer holds the profile: it restarted (a TxProfile is not kept), or the transaction
            # ended there and its TransactionEvent is still on the way; the whole profile again, with the values the
            # CSMS holds for it, gets the setpoint there or the station's own answer (TxNotFound)
            values = {**known.get("scheduleUpdate", {}), **values}
        profile: Payload = {
            "id": profile_id, "stackLevel": body.get("stackLevel", 0),
            "chargingProfilePurpose": "TxDefaultProfile" if station_wide else "TxProfile",
            "chargingProfileKind": "Dynamic" if dynamic else "Relative",
            "chargingSchedule": [{"id": profile_id, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                {"startPeriod": 0, "operationMode": OperationMode.CENTRAL_SETPOINT.value, **values}]}]}
        if tx_id is not None:
            profile["transactionId"] = tx_id
        if dynamic and body.get("dynUpdateInterval"):
            profile["dynUpdateInterval"] = body["dynUpdateInterval"]
        request = {"evseId": evse_id, "chargingProfile": profile}
        answer = await self.set_charging_profile(station_id, request)
        return {"action": "SetChargingProfile", "chargingProfileId": profile_id, "transactionId": tx_id,
                "request": request, "response": answer}

    def authorize_answer(self, station_id: str, id_token: Payload, answer: Payload, own: list[str] | None) -> None:
        """Q01, an AuthorizeResponse over 2.1: an Accepted token gets its own allowed energy transfer modes, else
        the CSMS's default (`allowed_energy_transfer`; none: the field is left out, which means charging only);
        what was sent is kept until the transaction it starts is known (`transaction_authorized`)."""
        if answer["idTokenInfo"].get("status") != "Accepted":
            return
        modes = own or list(self.csms.config.allowed_energy_transfer) or None
        if modes is not None:
            answer["allowedEnergyTransfer"] = modes
        key = (station_id, id_token.get("idToken", ""), id_token.get("type", ""))
        self._authorized.pop(key, None)  # the latest last: the oldest go first beyond the bound
        self._authorized[key] = (modes, rfc3339())
        while len(self._authorized) > KEEP_AUTHORIZED:
            del self._authorized[next(iter(self._authorized))]

    async def transaction_authorized(self, station_id: str, transaction_id: str, id_token: Payload) -> None:
        """A TransactionEvent named the idToken of an AuthorizeResponse: its allowed energy transfer is kept with
        the transaction (unless a NotifyAllowedEnergyTransfer the station accepted came since)."""
        sent = self._authorized.get((station_id, id_token.get("idToken", ""), id_token.get("type", "")))
        if sent is not None:
            await self.csms.worker.run(v2x_state.op_authorized_energy_transfer, station_id, transaction_id, *sent)

    async def notify_allowed_energy_transfer(self, station_id: str, payload: Payload) -> Payload:
        """NotifyAllowedEnergyTransfer (Q01/Q02); what the station accepted is kept with the transaction."""
        answer = await self.csms.call(station_id, "NotifyAllowedEnergyTransfer", payload)
        await self.csms.worker.run(v2x_state.op_allowed_energy_transfer, station_id, payload["transactionId"],
                                   payload["allowedEnergyTransfer"], answer.get("status", ""))
        return answer

    async def afrr_signal(self, station_id: str, signal: int, timestamp: str | None = None) -> Payload:
        """AFRRSignal (Q08 aFRR): the signal the station maps through each period's v2xSignalWattCurve."""
        return await self.csms.call(station_id, "AFRRSignal", {"timestamp": timestamp or rfc3339(),
                                                               "signal": signal})


def _profile_lost(answer: Payload | None) -> bool:
    """An UpdateDynamicSchedule answer that says the station holds no such profile (K28: Rejected, UnknownProfile)."""
    return answer is not None and answer.get("status") == "Rejected" and \
        (answer.get("statusInfo") or {}).get("reasonCode") == "UnknownProfile"
