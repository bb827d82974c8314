"""Transactions and metering: start and stop points, TransactionEvents through the durable queue, periodic meter
values, the power each EVSE may deliver, recovery after a restart, and the CSMS's start/stop requests.

The public coroutines `plug_in`, `authorize`, `present_token`, `unplug`, `stop_transaction` and `set_ev` are what
drives an EVSE (a scripted EV, session.py, or the ISO 15118 bridge through the station's port).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..hardware import MeterReading, RestorableMeter, SigningMeter
from .authorization import Authorization, IdToken, IdTokenInfo
from .context import StationContext
from .evse import Evse
from .link import Link
from .metering import sampled_values
from .reservations import Reservations
from .smart_charging import SmartCharging
from .transaction import Transaction
from .v2x import V2x

log = logging.getLogger(__name__)

Payload = dict[str, Any]


class Transactions:
    """The transactions of the station's EVSEs and the meter values they carry."""

    def __init__(self, ctx: StationContext, link: Link, authorization: Authorization,
                 smart_charging: SmartCharging, v2x: V2x) -> None:
        self.ctx = ctx
        self.link = link
        self.authorization = authorization
        self.smart_charging = smart_charging
        self.v2x = v2x
        v2x.apply = lambda evse_id: self.apply_power(self.ctx.evses[evse_id])
        self.ended_hooks: list[Callable[[], None]] = []  # after each transaction's end (Reset OnIdle waits for it)
        self.reservations: Reservations | None = None  # who may start on a reserved EVSE (set by the station)
        self._samplers: dict[str, asyncio.Task[Any]] = {}
        link.on_queue_answer = self._answered
        link.triggers["MeterValues"] = self._trigger_meter_values
        link.triggers["TransactionEvent"] = self._trigger_events
        smart_charging.subscribe(self._profiles_changed)

    # ----- TransactionEvents through the durable queue -----

    def emit(self, tx: Transaction, event_type: str, trigger: str, *, context: str | None = None,
             stopped_reason: str | None = None) -> Payload:
        """Make the transaction's next TransactionEvent and put it in the durable queue (sent in order)."""
        ctx = self.ctx
        evse = ctx.evses.get(tx.evse_id)
        reading = evse.reading() if evse is not None else None  # one reading: the values sent are those kept
        meter_value = None
        if context is not None and evse is not None and reading is not None:
            now = ctx.clock.timestamp()
            stage = {"Started": "B", "Ended": "E"}.get(event_type, "T")
            meter_value = [{"timestamp": now, "sampledValue": self._measurands(
                evse, reading, context, event_type, now, stage, first=event_type == "Started")}]
        payload = tx.event(event_type, trigger, ctx.clock.timestamp(), meter_value=meter_value,
                           stopped_reason=stopped_reason, offline=not self.link.connected, v21=self.link.v21)
        with ctx.queue.together():  # one durable write for the event, the registers and the transaction
            ctx.queue.push("TransactionEvent", payload)
            if reading is not None:  # the registers survive a restart (a real meter does not reset)
                ctx.queue.save_state(f"meter/{tx.evse_id}", {"import_wh": reading.import_wh,
                                                             "export_wh": reading.export_wh})
            if tx.ended:
                ctx.queue.forget_transaction(tx.id)
            else:
                ctx.queue.save_transaction(tx.id, tx.snapshot())
        log.info("%s: TransactionEvent %s %s seqNo %d (%s)%s", ctx.station_id, event_type, tx.id,
                 payload["seqNo"], trigger, " offline" if payload.get("offline") else "")
        self.link.sender.wake()
        return payload

    def _measurands(self, evse: Evse, reading: MeterReading, context: str, event_type: str, timestamp: str,
                    stage: str = "-", *, first: bool = False) -> list[Payload]:
        """The meter's sampled values, restricted to the Tx*Measurands variable for this kind of event (those the
        agreed version knows); the energy registers signed by the meter when SampledDataCtrlr.SignReadings."""
        var = {"Started": "TxStartedMeasurands", "Ended": "TxEndedMeasurands"}.get(event_type, "TxUpdatedMeasurands")
        wanted = set(self.ctx.model.members("SampledDataCtrlr", var))
        every = self.sampled(evse, reading, context, timestamp, stage, first=first)
        return [v for v in every if v["measurand"] in wanted] or every[:1]

    def sampled(self, evse: Evse, reading: MeterReading, context: str, timestamp: str, stage: str = "-", *,
                first: bool = False) -> list[Payload]:
        """Every sampled value of one reading for the agreed version: registers, powers, Energy.Active.Net, SoC,
        Power.Active.Setpoint (2.1, while a setpoint is in force), signed when the device model says so."""
        model = self.ctx.model
        signed = None
        if model.bool("SampledDataCtrlr", "SignReadings") and isinstance(evse.hardware, SigningMeter):
            signed = evse.hardware.signed_reading(reading, timestamp, stage)
        with_key = model.value("OCPPCommCtrlr", "PublicKeyWithSignedMeterValue")
        target = self.v2x.targets.get(evse.id)
        return sampled_values(reading, context, evse.soc, version=self.link.version,
                              setpoint_w=target.setpoint_w if target is not None else None, signed=signed,
                              public_key=with_key == "EveryMeterValue" or (with_key == "OncePerTransaction" and first))

    def _answered(self, request: Payload, answer: Payload) -> None:
        """Cache the idTokenInfo of a TransactionEvent answer; stop the transaction if the token is not valid."""
        info = answer.get("idTokenInfo")
        if info is None or "idToken" not in request:
            return
        self.authorization.local.remember(request["idToken"], info)
        tx_id = request["transactionInfo"]["transactionId"]
        if info.get("status") != "Accepted" and self.ctx.model.bool("TxCtrlr", "StopTxOnInvalidId"):
            evse = self.transaction_evse(tx_id)
            if evse is not None:
                self.ctx.spawn(self.stop_transaction(evse.id, "DeAuthorized", "Deauthorized"), "deauthorize")

    def recover(self) -> None:
        """Meter registers and open transactions of a previous run: the latter end (PowerLoss) into the queue."""
        ctx = self.ctx
        for evse in ctx.evses.values():
            registers = ctx.queue.load_state(f"meter/{evse.id}")
            if registers and isinstance(evse.hardware, RestorableMeter):
                evse.hardware.restore_registers(registers.get("import_wh", 0.0), registers.get("export_wh", 0.0))
        for state in ctx.queue.open_transactions():
            tx = Transaction.restore(state)
            tx.charging_state = "Idle"
            self.emit(tx, "Ended", "AbnormalCondition", stopped_reason="PowerLoss")
        n = len(ctx.queue)
        if n:
            log.info("%s: %d queued message(s) from an earlier run", ctx.station_id, n)

    # ----- what drives an EVSE -----

    def transaction_evse(self, tx_id: str) -> Evse | None:
        """The EVSE running transaction `tx_id`."""
        return next((e for e in self.ctx.evses.values() if e.tx is not None and e.tx.id == tx_id), None)

    def _start_points(self) -> list[str]:
        """TxStartPoint items."""
        return self.ctx.model.members("TxCtrlr", "TxStartPoint")

    def _begin(self, evse: Evse, trigger: str, remote_start_id: int | None = None) -> Transaction:
        """Start a transaction on the EVSE and send Started with the begin meter values."""
        clock = self.ctx.clock
        tx = Transaction(evse.id, evse.connector_id, remote_start_id=remote_start_id,
                         started_epoch=clock.epoch(), reservation_id=evse.reservation_used)
        evse.reservation_used = None
        tx.charging_state = "EVConnected" if evse.plugged else "Idle"
        if evse.authorized:
            tx.set_token(evse.id_token)
        evse.tx = tx
        self.emit(tx, "Started", trigger, context="Transaction.Begin")
        self._samplers[tx.id] = self.ctx.spawn(self._sample(evse, tx), f"sample-{tx.id}")
        return tx

    async def plug_in(self, evse_id: int) -> None:
        """The EV's cable is plugged in (or the ISO 15118 session began)."""
        evse = self.ctx.evses[evse_id]
        if evse.plugged:
            return
        evse.plugged = True
        if evse.tx is None and ("EVConnected" in self._start_points() or (
                evse.authorized and "PowerPathClosed" in self._start_points())):
            self._begin(evse, "CablePluggedIn")
        elif evse.tx is not None:
            evse.tx.charging_state = "EVConnected"
            self.emit(evse.tx, "Updated", "CablePluggedIn")
        await self.link.send_status(evse)
        self.apply_power(evse)

    async def authorize(self, evse_id: int, token: IdToken, *, remote_start_id: int | None = None,
                        check: bool = True, authorize_response: Payload | None = None) -> IdTokenInfo:
        """Authorize `token` for charging on the EVSE; start or update the transaction when Accepted. Over OCPP 2.1
        the AuthorizeResponse (asked here, or `authorize_response` when the caller asked: Plug & Charge) sets the
        energy transfer modes the EVSE's session may use (V2x.authorized)."""
        evse = self.ctx.evses[evse_id]
        if check:
            decision = await self.authorization.decide(token)
            info, modes = decision.info, decision.allowed_energy_transfer
        else:
            info = {"status": "Accepted"}
            modes = None if authorize_response is None else self.authorization.allowed_by(authorize_response)
        log.info("%s: idToken %s on EVSE %d: %s", self.ctx.station_id, token["idToken"], evse_id, info["status"])
        if info.get("status") != "Accepted" or evse.authorized:  # refused, or someone is already charging here
            return info
        reservations = self.reservations
        if reservations is not None and not reservations.admits(evse, token, info):
            log.info("%s: EVSE %d is reserved for another idToken", self.ctx.station_id, evse_id)
            return {**info, "status": "Invalid"}  # not for this EVSE now (H03): no charging starts
        if reservations is not None:
            evse.reservation_used = reservations.use(evse)  # told with the idToken (H03)
        evse.authorized, evse.id_token = True, token
        self.v2x.authorized(evse, modes)
        trigger = "RemoteStart" if remote_start_id is not None else "Authorized"
        starts = self._start_points()
        if evse.tx is None and ("Authorized" in starts or (evse.plugged and "PowerPathClosed" in starts)):
            self._begin(evse, trigger, remote_start_id)
        elif evse.tx is not None:
            evse.tx.reservation_id, evse.reservation_used = evse.reservation_used, None
            evse.tx.set_token(token)
            if remote_start_id is not None:
                evse.tx.remote_start_id = remote_start_id
            self.emit(evse.tx, "Updated", trigger)
        if not evse.plugged:
            self.ctx.spawn(self._connection_timeout(evse, token), "ev-connection-timeout")
        await self.link.send_status(evse)
        self.apply_power(evse)
        return info

    async def present_token(self, evse_id: int, token: IdToken) -> IdTokenInfo:
        """A driver presents a token: starts charging, or stops the transaction that token (or its group) started."""
        evse = self.ctx.evses[evse_id]
        if (evse.authorized and evse.tx is not None and evse.id_token is not None
                and token["idToken"] == evse.id_token["idToken"]):
            stops = self.ctx.model.members("TxCtrlr", "TxStopPoint")
            if {"Authorized", "PowerPathClosed", "EnergyTransfer"} & set(stops) or not evse.plugged:
                await self.stop_transaction(evse_id, "Local", "StopAuthorized")
            else:  # the transaction lasts until the EV leaves; only the energy stops
                evse.authorized = False
                self.emit(evse.tx, "Updated", "StopAuthorized")
                self.apply_power(evse)
            return {"status": "Accepted"}
        return await self.authorize(evse_id, token)

    def set_ev(self, evse_id: int, *, power_w: float | None = None, soc: float | None = None,
               battery_wh: float | None = None) -> None:
        """A scripted EV (session.py): it draws `power_w` from the EVSE's AC outlet (negative: gives back) as far as
        the station allows, and reports its SoC and battery size."""
        evse = self.ctx.evses[evse_id]
        evse.scripted = True  # the station draws for it: its demand, or the setpoint when one is in force
        self.ev_update(evse_id, demand_w=power_w, soc=soc, battery_wh=battery_wh)

    def ev_update(self, evse_id: int, *, demand_w: float | None = None, soc: float | None = None,
                  battery_wh: float | None = None) -> None:
        """What the EV asks for (W) and reports (SoC %, battery Wh), as the ISO 15118 session tells it: the power
        allowed and the charging state follow."""
        evse = self.ctx.evses[evse_id]
        evse.reading()  # the simulated SoC up to now, before the EV's own figure replaces it
        before = evse.ev_power_w, evse.soc  # what _drawing_state reads (compared only when they changed)
        if demand_w is not None:
            evse.ev_power_w = demand_w
        if soc is not None:
            evse.soc = soc
        if battery_wh is not None:
            evse.battery_wh = battery_wh
        # an ISO 15118 EV tells its demand and SoC in every charge loop (4 times a second); the target depends on
        # them only through the direction of the demand and a full battery (the V2X control loop moves schedules on
        # every control period, profile changes apply at once), so only a change of those is applied now
        if evse.scripted or ((evse.ev_power_w, evse.soc) != before
                             and _drawing_state(evse) != _drawing_state(evse, *before)):
            self.apply_power(evse)

    def _profiles_changed(self, evse_id: int) -> None:
        """New charging limits apply at once (on every EVSE for a station-wide change, else on that EVSE only)."""
        evses = self.ctx.evses
        for evse in (evses.values() if evse_id == 0 else [evses[evse_id]] if evse_id in evses else []):
            self.apply_power(evse)

    def apply_power(self, evse: Evse) -> None:
        """Put the EVSE's target (v2x.py) on its hardware: the import and export limits, and for a scripted EV its
        draw (the setpoint when one is in force, else its demand); tell the CSMS when the charging state or the
        operation mode changes."""
        evse.reading()  # the SoC up to now
        target = self.v2x.target(evse.id)
        evse.hardware.set_power_limit(target.import_limit_w, target.export_limit_w)
        power = target.power_for(evse.ev_power_w)
        if evse.scripted:
            limits = evse.hardware.limits
            evse.hardware.ac_draw(power / (limits.nominal_voltage * limits.phases), limits.phases)
        self.v2x.told(evse.id, target)
        tx = evse.tx
        if tx is None or tx.ended:
            return
        if self.link.v21 and target.mode != tx.operation_mode and (tx.operation_mode is not None or target.mode
                                                                   != "ChargingOnly"):
            tx.operation_mode = target.mode
            self.emit(tx, "Updated", "OperationModeChanged", context="Sample.Periodic")
        if power != 0:
            state = "Charging"
        elif evse.plugged and evse.authorized:
            state = "SuspendedEV" if evse.ev_power_w == 0 or (evse.soc or 0) >= 100 else "SuspendedEVSE"
        else:
            state = "EVConnected" if evse.plugged else "Idle"
        if state != tx.charging_state:
            tx.charging_state = state
            self.emit(tx, "Updated", "ChargingStateChanged", context="Sample.Periodic")

    async def unplug(self, evse_id: int) -> None:
        """The EV's cable is unplugged: ends the transaction (TxStopPoint EVConnected / StopTxOnEVSideDisconnect)."""
        evse = self.ctx.evses[evse_id]
        if not evse.plugged:
            return
        evse.plugged = False
        self.v2x.ev_gone(evse_id)
        model = self.ctx.model
        if evse.tx is not None and ("EVConnected" in model.members("TxCtrlr", "TxStopPoint")
                                    or model.bool("TxCtrlr", "StopTxOnEVSideDisconnect")):
            await self.stop_transaction(evse_id, "EVDisconnected", "EVCommunicationLost")
        else:
            self.apply_power(evse)
        evse.authorized, evse.id_token, evse.allowed_energy_transfer = False, None, None
        await self.link.send_status(evse)

    async def stop_transaction(self, evse_id: int, reason: str = "Local", trigger: str = "StopAuthorized") -> None:
        """End the EVSE's transaction: power off, Ended with the end meter values."""
        evse = self.ctx.evses[evse_id]
        tx = evse.tx
        if tx is None or tx.ended:
            return
        evse.authorized = False
        evse.hardware.set_power_limit(0.0, 0.0)
        tx.charging_state = "EVConnected" if evse.plugged else "Idle"
        self.emit(tx, "Ended", trigger, context="Transaction.End", stopped_reason=reason)
        evse.tx = None
        self.smart_charging.end_transaction(tx.id)
        task = self._samplers.pop(tx.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if evse.scheduled_operative is not None:
            evse.operative, evse.scheduled_operative = evse.scheduled_operative, None
        await self.link.send_status(evse)
        for hook in list(self.ended_hooks):
            hook()

    async def set_fault(self, evse_id: int, faulted: bool = True, reason: str = "Other") -> None:
        """A (simulated) hardware fault on the EVSE, or its end: Faulted status; a running transaction ends."""
        evse = self.ctx.evses[evse_id]
        evse.faulted = faulted
        if faulted and evse.tx is not None:
            await self.stop_transaction(evse_id, reason, "AbnormalCondition")
        self.apply_power(evse)
        await self.link.send_status(evse)

    async def _sample(self, evse: Evse, tx: Transaction) -> None:
        """Periodic meter values (SampledDataCtrlr.TxUpdatedInterval) while the transaction lasts."""
        model = self.ctx.model
        while not tx.ended:
            interval = model.int("SampledDataCtrlr", "TxUpdatedInterval")
            await self.ctx.clock.sleep(interval if interval > 0 else 1)
            if tx.ended or interval <= 0 or not model.bool("SampledDataCtrlr", "Enabled"):
                continue
            if evse.reading().power_w:
                tx.charging_seconds += interval
            self.apply_power(evse)  # e.g. the battery became full
            if not tx.ended:
                self.emit(tx, "Updated", "MeterValuePeriodic", context="Sample.Periodic")

    async def _connection_timeout(self, evse: Evse, token: IdToken) -> None:
        """EVConnectionTimeOut: an authorization without a plugged EV lapses."""
        await self.ctx.clock.sleep(self.ctx.model.int("TxCtrlr", "EVConnectionTimeOut"))
        if evse.plugged or not evse.authorized or evse.id_token != token:
            return
        if evse.tx is not None:
            await self.stop_transaction(evse.id, "Timeout", "EVConnectTimeout")
        evse.authorized, evse.id_token, evse.allowed_energy_transfer = False, None, None

    # ----- CSMS-initiated messages -----

    async def send_meter_values(self, evse: Evse) -> None:
        """MeterValues (TriggerMessage) for one EVSE."""
        now = self.ctx.clock.timestamp()
        await self.link.try_call("MeterValues", {"evseId": evse.id, "meterValue": [{
            "timestamp": now, "sampledValue": self.sampled(evse, evse.reading(), "Trigger", now)}]})

    def _trigger_meter_values(self, evses: list[Evse]) -> bool:
        """TriggerMessage(MeterValues): one MeterValues per EVSE, after the answer."""
        for e in evses:
            self.ctx.spawn(self.send_meter_values(e), "trigger-meter")
        return True

    def _trigger_events(self, evses: list[Evse]) -> bool:
        """TriggerMessage(TransactionEvent): Updated (Trigger) for each EVSE's transaction; False if none runs."""
        running = [e for e in evses if e.tx is not None]
        for e in running:
            assert e.tx is not None
            self.emit(e.tx, "Updated", "Trigger", context="Trigger")
        return bool(running)

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """RequestStartTransaction, RequestStopTransaction."""
        return {"RequestStartTransaction": self._request_start, "RequestStopTransaction": self._request_stop}

    def _request_start(self, p: Payload) -> Payload:
        """RequestStartTransaction: pick the EVSE, answer, then authorize and start in the background."""
        ctx = self.ctx
        evses = ([ctx.evses[p["evseId"]]] if p.get("evseId") in ctx.evses else []) if "evseId" in p else [
            e for e in ctx.evses.values() if not e.authorized and e.status(ctx.operative) != "Unavailable"][:1]
        if not evses or evses[0].authorized or evses[0].status(ctx.operative) in ("Unavailable", "Faulted"):
            return {"status": "Rejected"}
        evse = evses[0]
        check = ctx.model.bool("AuthCtrlr", "AuthorizeRemoteStart")
        ctx.spawn(self.authorize(evse.id, p["idToken"], remote_start_id=p["remoteStartId"], check=check),
                  "remote-start")
        answer: Payload = {"status": "Accepted"}
        if evse.tx is not None:
            answer["transactionId"] = evse.tx.id
        return answer

    def _request_stop(self, p: Payload) -> Payload:
        """RequestStopTransaction: end the transaction if it runs here."""
        evse = self.transaction_evse(p["transactionId"])
        if evse is None:
            return {"status": "Rejected"}
        self.ctx.spawn(self.stop_transaction(evse.id, "Remote", "RemoteStop"), "remote-stop")
        return {"status": "Accepted"}


def _drawing_state(evse: Evse, power_w: float | None = None, soc: float | None = None) -> tuple[bool, bool, bool]:
    """What of an EV's demand and SoC the EVSE's target and charging state depend on: draws, gives, is full (of
    `power_w` and `soc` when given, else the EVSE's)."""
    if power_w is None:
        power_w, soc = evse.ev_power_w, evse.soc
    return power_w > 0, power_w < 0, (soc or 0.0) >= 100.0
