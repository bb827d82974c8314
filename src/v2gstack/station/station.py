"""The charging station: EVSEs, device model, authorization, transactions and the offline queue on an OCPP link.

The OCPP link is the engine's StationClient; this module is the station's logic around it. The public coroutines
`plug_in`, `present_token`, `authorize`, `set_ev`, `unplug` and `stop_transaction` are the SessionPort that the
ISO 15118 bridge (bridge.py) or a scripted EV (session.py) drives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ..ocpp import (
    BackOff,
    CallErrorReceived,
    CallTimeoutError,
    Connection,
    ConnectionClosedError,
    PayloadInvalid,
    StationClient,
)
from .authorization import IdToken, IdTokenInfo, LocalAuthorization
from .certificates import CertificateStore
from .clock import Clock
from .config import StationConfig
from .device_model import DeviceModel, Variable, chunks, standard_variables
from .evse import Evse
from .files import private_folder
from .meter import Meter
from .queue import OfflineQueue
from .sender import QueueSender
from .smart_charging import ChargingProfiles, Installed, Rejection
from .transaction import Transaction

log = logging.getLogger(__name__)

LINK_ERRORS = (ConnectionClosedError, CallTimeoutError)
DataTransferHandler = Callable[[dict[str, Any]], dict[str, Any]]


class ChargingStation:
    """A simulated OCPP 2.0.1 charging station with N EVSEs (one connector each)."""

    def __init__(self, config: StationConfig) -> None:
        from .handlers import build_router  # handlers need this class; import here to keep modules acyclic

        self.config = config
        self.clock = Clock(config.time_scale)
        state = config.state_dir
        if state is not None:
            private_folder(Path(state))  # the device model and the certificates' keys live there
        self.model = DeviceModel(
            standard_variables(config.station_id, config.evses, model=config.model, vendor=config.vendor,
                               security_profile=config.security_profile, max_power_w=config.evse_power),
            path=None if state is None else Path(state) / "device_model.json")
        self.model.on_change.append(self._variable_changed)
        self.auth = LocalAuthorization(self.model, clock=self.clock.now)
        self.queue = OfflineQueue(":memory:" if state is None else Path(state) / "queue.sqlite")
        self.evses: dict[int, Evse] = {
            i: Evse(i, max_power_w=config.evse_power(i), meter=Meter()) for i in range(1, config.evses + 1)}
        self.operative = True
        self.registration = "New"  # New, Pending, Rejected, Accepted
        self.boot_reason = "PowerUp"
        self.data_transfer: dict[str, DataTransferHandler] = {}
        entries = self.model.find("SmartChargingCtrlr", "Entries", instance="ChargingProfiles")
        self.profiles = ChargingProfiles(  # the limits the device model declares
            list(self.evses), max_periods=self.model.int("SmartChargingCtrlr", "PeriodsPerSchedule"),
            max_profiles=int(entries.max_limit) if entries is not None and entries.max_limit else 32)
        self.on_profiles_changed: list[Callable[[int], None]] = []  # evse id (0: station-wide) after Set/Clear
        self._load_profiles()
        self.model.put("SmartChargingCtrlr", "Entries", str(len(self.profiles.items)), instance="ChargingProfiles")
        self.frame_listeners: list[Callable[[str, str], None]] = []  # every OCPP frame (direction, text): traces
        self.certificates = CertificateStore(None if state is None else Path(state) / "certificates")
        self.reboots = 0
        password = self.model.value("SecurityCtrlr", "BasicAuthPassword") or config.password
        self.client = StationClient(
            config.csms_url, config.station_id, build_router(self), versions=[config.version], password=password,
            ssl=config.ssl, call_timeout=config.call_timeout or self.model.int(
                "OCPPCommCtrlr", "MessageTimeout", instance="Default") * config.time_scale,
            backoff=config.backoff or self._backoff(), on_connect=self._on_connect,
            ping_interval=config.ping_interval)
        self._online = asyncio.Event()
        self.sender = QueueSender(self.queue, self._online, lambda: self.client.connection, self.model,
                                  self.clock.sleep, self._transaction_answer, config.station_id)
        self._boot_wake = asyncio.Event()
        self._accepted = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_tasks: dict[str, asyncio.Task[Any]] = {}
        self._reset_when_idle = False
        self._run_task: asyncio.Task[None] | None = None

    # ----- life cycle -----

    async def start(self) -> None:
        """Recover what a previous run left, then connect (in the background) and start sending the queue."""
        self._recover()
        self._spawn(self.sender.run(), "queue-sender")
        self._run_task = asyncio.get_running_loop().create_task(self.client.run(), name="station-link")

    async def stop(self) -> None:
        """Disconnect and stop every task (open transactions stay in the journal, as after a power loss)."""
        await self.client.stop()
        tasks = [*self._tasks, *self._tx_tasks.values()] + ([self._run_task] if self._run_task else [])
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self.queue.close()

    async def run(self) -> None:
        """start(), then run until cancelled (Ctrl-C), then stop()."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def wait_accepted(self) -> None:
        """Wait until the CSMS has accepted the BootNotification."""
        await self._accepted.wait()

    async def wait_queue_empty(self) -> None:
        """Wait until every queued message has been answered by the CSMS."""
        await self.sender.wait_empty()

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS."""
        conn = self.client.connection
        return self._online.is_set() and conn is not None and not conn.closed

    @property
    def connected(self) -> bool:
        """A websocket to the CSMS is open (whether or not the boot was accepted)."""
        conn = self.client.connection
        return conn is not None and not conn.closed

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run a coroutine in the background, keeping a reference and logging its failure."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished background task; log it if it failed."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.config.station_id, task.get_name(), exc_info=task.exception())

    def _backoff(self) -> BackOff:
        """Reconnect waits from the RetryBackOff* variables (scaled like every other interval)."""
        s = self.config.time_scale
        return BackOff(self.model.int("OCPPCommCtrlr", "RetryBackOffWaitMinimum") * s,
                       self.model.int("OCPPCommCtrlr", "RetryBackOffRandomRange") * s,
                       self.model.int("OCPPCommCtrlr", "RetryBackOffRepeatTimes"))

    def _variable_changed(self, v: Variable) -> None:
        """Apply variables that change the link: the Basic auth password."""
        if (v.component, v.name) == ("SecurityCtrlr", "BasicAuthPassword"):
            self.client.password = v.value or None

    # ----- the link: boot, statuses, heartbeat -----

    def _on_connect(self, conn: Connection) -> None:
        """A new websocket: register (if needed), then run the heartbeat; forget it all when it closes."""
        conn.frame_listeners = self.frame_listeners
        link = self._spawn(self._link(conn), "link")
        self._spawn(self._watch(conn, link), "watch")

    async def _watch(self, conn: Connection, link: asyncio.Task[Any]) -> None:
        """When the websocket closes: go offline at once (the link task then ends by itself)."""
        await conn.wait_closed()
        self._online.clear()
        log.info("%s: offline", self.config.station_id)

    async def _pause(self, conn: Connection, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Wait `seconds` of simulated time, less if the connection closes or `wake` is set."""
        waits = [asyncio.ensure_future(conn.wait_closed())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds) * self.clock.scale,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _link(self, conn: Connection) -> None:
        """BootNotification until Accepted, then all connector statuses, the queue, and heartbeats."""
        with contextlib.suppress(*LINK_ERRORS):
            if not await self._register(conn):
                return
            self._online.set()
            self.sender.wake()
            for evse in self.evses.values():
                await self.send_status(evse, force=True)
            while True:
                await self._pause(conn, self.model.int("OCPPCommCtrlr", "HeartbeatInterval"))
                if conn.closed:
                    return
                await self.heartbeat()

    async def _register(self, conn: Connection) -> bool:
        """Send BootNotification until Accepted (Pending/Rejected: wait `interval` and retry); False if closed."""
        while not conn.closed:
            if self.registration == "Accepted":
                return True
            payload = {"chargingStation": self._station_info(), "reason": self.boot_reason}
            self._boot_wake.clear()  # a TriggerMessage from now on asks for the next attempt at once
            try:
                answer = await conn.call("BootNotification", payload)
            except (CallTimeoutError, CallErrorReceived, PayloadInvalid) as e:
                log.warning("%s: BootNotification failed: %s", self.config.station_id, e)
                answer = {"status": None, "interval": 0}  # no decision: try again later
            self.registration = answer["status"] or self.registration
            interval = answer["interval"]
            log.info("%s: BootNotification %s (interval %ss)", self.config.station_id, self.registration, interval)
            if self.registration == "Accepted":
                if interval > 0:
                    self.model.put("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
                self.boot_reason = "PowerUp"
                self._accepted.set()
                return True
            await self._pause(conn, interval if interval > 0 else self.config.boot_retry_s, self._boot_wake)
        return False

    def _station_info(self) -> dict[str, Any]:
        """ChargingStationType for BootNotification."""
        info: dict[str, Any] = {"model": self.config.model, "vendorName": self.config.vendor,
                                "firmwareVersion": self.config.firmware_version}
        if self.config.serial_number:
            info["serialNumber"] = self.config.serial_number
        return info

    def trigger_boot(self) -> None:
        """TriggerMessage(BootNotification) while Pending: send it now instead of after the interval."""
        self._boot_wake.set()

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a message that is not queued: None if offline or the link fails meanwhile."""
        conn = self.client.connection
        if not self.online or conn is None:
            return None
        try:
            return await conn.call(action, payload)
        except (*LINK_ERRORS, CallErrorReceived, PayloadInvalid) as e:
            log.warning("%s: %s failed: %s", self.config.station_id, action, e)
            return None

    async def heartbeat(self) -> dict[str, Any] | None:
        """Send one Heartbeat."""
        return await self._call("Heartbeat", {})

    async def send_status(self, evse: Evse, *, force: bool = False) -> None:
        """StatusNotification for the EVSE's connector when its status changed (or when forced)."""
        status = evse.status(self.operative)
        self.model.put("EVSE", "AvailabilityState", status, evse=evse.id)
        self.model.put("EVSE", "Available", "true" if status != "Unavailable" else "false", evse=evse.id)
        if status == evse.reported_status and not force:
            return
        evse.reported_status = status
        log.info("%s: EVSE %d connector %d is %s", self.config.station_id, evse.id, evse.connector_id, status)
        answer = await self._call("StatusNotification", {"timestamp": self.clock.timestamp(),
                                                         "connectorStatus": status, "evseId": evse.id,
                                                         "connectorId": evse.connector_id})
        if answer is None:
            evse.reported_status = None  # told again after reconnecting

    # ----- the offline queue -----

    def _emit(self, tx: Transaction, event_type: str, trigger: str, *, context: str | None = None,
              stopped_reason: str | None = None) -> dict[str, Any]:
        """Make the transaction's next TransactionEvent and put it in the durable queue (sent in order)."""
        meter_value = None
        if context is not None:
            evse = self.evses[tx.evse_id]
            meter_value = [{"timestamp": self.clock.timestamp(),
                            "sampledValue": self._measurands(evse.meter, context, event_type)}]
        payload = tx.event(event_type, trigger, self.clock.timestamp(), meter_value=meter_value,
                           stopped_reason=stopped_reason, offline=not self.connected)
        self.queue.push("TransactionEvent", payload)
        self.queue.save_state(f"meter/{tx.evse_id}", self.evses[tx.evse_id].meter.registers()
                              if tx.evse_id in self.evses else {})
        if tx.ended:
            self.queue.forget_transaction(tx.id)
        else:
            self.queue.save_transaction(tx.id, tx.snapshot())
        log.info("%s: TransactionEvent %s %s seqNo %d (%s)%s", self.config.station_id, event_type, tx.id,
                 payload["seqNo"], trigger, " offline" if payload.get("offline") else "")
        self.sender.wake()
        return payload

    def _measurands(self, meter: Meter, context: str, event_type: str) -> list[dict[str, Any]]:
        """The meter's sampled values, restricted to the Tx*Measurands variable for this kind of event."""
        var = {"Started": "TxStartedMeasurands", "Ended": "TxEndedMeasurands"}.get(event_type, "TxUpdatedMeasurands")
        wanted = set(self.model.members("SampledDataCtrlr", var))
        values = [v for v in meter.sample(self.clock.now(), context) if v["measurand"] in wanted]
        return values or meter.sample(self.clock.now(), context)[:1]

    def _transaction_answer(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        """Cache the idTokenInfo of a TransactionEvent answer; stop the transaction if the token is not valid."""
        info = answer.get("idTokenInfo")
        if info is None or "idToken" not in request:
            return
        self.auth.remember(request["idToken"], info)
        tx_id = request["transactionInfo"]["transactionId"]
        if info.get("status") != "Accepted" and self.model.bool("TxCtrlr", "StopTxOnInvalidId"):
            evse = self.transaction_evse(tx_id)
            if evse is not None:
                self._spawn(self.stop_transaction(evse.id, "DeAuthorized", "Deauthorized"), "deauthorize")

    def _recover(self) -> None:
        """Meter registers and open transactions of a previous run: the latter end (PowerLoss) into the queue."""
        for evse in self.evses.values():
            registers = self.queue.load_state(f"meter/{evse.id}")
            if registers:
                evse.meter.restore(registers)
        for state in self.queue.open_transactions():
            tx = Transaction.restore(state)
            tx.charging_state = "Idle"
            self._emit(tx, "Ended", "AbnormalCondition", stopped_reason="PowerLoss")
        n = len(self.queue)
        if n:
            log.info("%s: %d queued message(s) from an earlier run", self.config.station_id, n)

    # ----- the session port (what an EV, simulated or over ISO 15118, drives) -----

    def transaction_evse(self, tx_id: str) -> Evse | None:
        """The EVSE running transaction `tx_id`."""
        return next((e for e in self.evses.values() if e.tx is not None and e.tx.id == tx_id), None)

    def _start_points(self) -> list[str]:
        """TxStartPoint items."""
        return self.model.members("TxCtrlr", "TxStartPoint")

    def _begin(self, evse: Evse, trigger: str, remote_start_id: int | None = None) -> Transaction:
        """Start a transaction on the EVSE and send Started with the begin meter values."""
        tx = Transaction(evse.id, evse.connector_id, remote_start_id=remote_start_id,
                         started_epoch=self.clock.wall().timestamp())
        tx.charging_state = "EVConnected" if evse.plugged else "Idle"
        if evse.authorized:
            tx.set_token(evse.id_token)
        evse.tx = tx
        evse.meter.advance(self.clock.now())
        self._emit(tx, "Started", trigger, context="Transaction.Begin")
        self._tx_tasks[tx.id] = self._spawn(self._sample(evse, tx), f"sample-{tx.id}")
        return tx

    async def plug_in(self, evse_id: int) -> None:
        """The EV's cable is plugged in (or the ISO 15118 session began)."""
        evse = self.evses[evse_id]
        if evse.plugged:
            return
        evse.plugged = True
        if evse.tx is None and ("EVConnected" in self._start_points() or (
                evse.authorized and "PowerPathClosed" in self._start_points())):
            self._begin(evse, "CablePluggedIn")
        elif evse.tx is not None:
            evse.tx.charging_state = "EVConnected"
            self._emit(evse.tx, "Updated", "CablePluggedIn")
        await self.send_status(evse)
        self._energize(evse)

    async def authorize_token(self, token: IdToken) -> IdTokenInfo:
        """Authorize an idToken: local pre-authorization, the CSMS (caching its answer), or the offline rules."""
        info = self.auth.decide_online_locally(token)
        if info is not None:
            return info
        if self.online and not self.model.bool("AuthCtrlr", "DisableRemoteAuthorization"):
            answer = await self._call("Authorize", {"idToken": token})
            if answer is not None:
                self.auth.remember(token, answer["idTokenInfo"])
                return answer["idTokenInfo"]
        return self.auth.decide_offline(token)

    async def authorize(self, evse_id: int, token: IdToken, *, remote_start_id: int | None = None,
                        check: bool = True) -> IdTokenInfo:
        """Authorize `token` for charging on the EVSE; start or update the transaction when Accepted."""
        evse = self.evses[evse_id]
        info = await self.authorize_token(token) if check else {"status": "Accepted"}
        log.info("%s: idToken %s on EVSE %d: %s", self.config.station_id, token["idToken"], evse_id, info["status"])
        if info.get("status") != "Accepted" or evse.authorized:  # refused, or someone is already charging here
            return info
        evse.authorized, evse.id_token = True, token
        trigger = "RemoteStart" if remote_start_id is not None else "Authorized"
        starts = self._start_points()
        if evse.tx is None and ("Authorized" in starts or (evse.plugged and "PowerPathClosed" in starts)):
            self._begin(evse, trigger, remote_start_id)
        elif evse.tx is not None:
            evse.tx.set_token(token)
            if remote_start_id is not None:
                evse.tx.remote_start_id = remote_start_id
            self._emit(evse.tx, "Updated", trigger)
        if not evse.plugged:
            self._spawn(self._connection_timeout(evse, token), "ev-connection-timeout")
        await self.send_status(evse)
        self._energize(evse)
        return info

    async def present_token(self, evse_id: int, token: IdToken) -> IdTokenInfo:
        """A driver presents a token: starts charging, or stops the transaction that token (or its group) started."""
        evse = self.evses[evse_id]
        if (evse.authorized and evse.tx is not None and evse.id_token is not None
                and token["idToken"] == evse.id_token["idToken"]):
            stops = self.model.members("TxCtrlr", "TxStopPoint")
            if {"Authorized", "PowerPathClosed", "EnergyTransfer"} & set(stops) or not evse.plugged:
                await self.stop_transaction(evse_id, "Local", "StopAuthorized")
            else:  # the transaction lasts until the EV leaves; only the energy stops
                evse.authorized = False
                self._emit(evse.tx, "Updated", "StopAuthorized")
                self._energize(evse)
            return {"status": "Accepted"}
        return await self.authorize(evse_id, token)

    def set_ev(self, evse_id: int, *, power_w: float | None = None, soc: float | None = None,
               battery_wh: float | None = None) -> None:
        """What the EV asks for and reports (charging needs, SoC): the meter follows from now on."""
        evse = self.evses[evse_id]
        evse.meter.advance(self.clock.now())
        if power_w is not None:
            evse.ev_power_w = power_w
        if soc is not None:
            evse.meter.soc = soc
        if battery_wh is not None:
            evse.meter.battery_wh = battery_wh
        self._energize(evse)

    # ----- smart charging -----

    def limit_w(self, evse_id: int) -> float | None:
        """The charging-profile limit on the EVSE now, in W (None: no profile limits it)."""
        evse = self.evses[evse_id]
        tx = evse.tx
        return self.profiles.limit_w(evse_id, self.clock.wall().timestamp(), voltage=evse.meter.voltage,
                                     default_phases=evse.meter.phases,
                                     tx_start=tx.started_epoch if tx else None, tx_id=tx.id if tx else None)

    def composite_schedule(self, evse_id: int, duration_s: int, unit: str = "W", *,
                           max_periods: int | None = None) -> dict[str, Any]:
        """GetCompositeSchedule for an EVSE (0: the station) from now, within the EVSE's own maximum; at most
        `max_periods` periods (default SmartChargingCtrlr.PeriodsPerSchedule), else Rejection."""
        evse = self.evses.get(evse_id)
        tx = evse.tx if evse else None
        voltage, phases = (evse.meter.voltage, evse.meter.phases) if evse else (230.0, 3)
        if max_periods is None:
            max_periods = self.model.int("SmartChargingCtrlr", "PeriodsPerSchedule")
        return self.profiles.composite(evse_id, self.clock.wall().timestamp(), duration_s, unit, voltage=voltage,
                                       default_phases=phases, tx_start=tx.started_epoch if tx else None,
                                       tx_id=tx.id if tx else None,
                                       evse_max=evse.max_power_w if evse else sum(
                                           e.max_power_w for e in self.evses.values()), max_periods=max_periods)

    def save_profiles(self) -> None:
        """Keep the installed profiles in the state folder (they survive a restart, as K01 expects), and their
        number in SmartChargingCtrlr.Entries."""
        self.model.put("SmartChargingCtrlr", "Entries", str(len(self.profiles.items)), instance="ChargingProfiles")
        if self.config.state_dir is None:
            return
        path = Path(self.config.state_dir) / "charging_profiles.json"
        data = [{"evseId": i.evse_id, "chargingProfile": i.profile} for i in self.profiles.items.values()]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    def _load_profiles(self) -> None:
        """Profiles saved by an earlier run (TxProfiles ended with their transactions and are not kept); each is
        checked again as if the CSMS had just sent it, and one that fails is dropped with a warning."""
        if self.config.state_dir is None:
            return
        path = Path(self.config.state_dir) / "charging_profiles.json"
        if path.exists():
            for item in json.loads(path.read_text()):
                profile = item["chargingProfile"]
                if profile["chargingProfilePurpose"] == "TxProfile":
                    continue
                try:
                    self.profiles.check(profile)
                except (Rejection, KeyError, TypeError) as e:
                    log.warning("%s: dropping saved charging profile %s: %s", self.config.station_id,
                                profile.get("id"), getattr(e, "info", e))
                    continue
                if len(self.profiles.items) < self.profiles.max_profiles:
                    self.profiles.items[profile["id"]] = Installed(item["evseId"], profile)

    async def request_certificate(self, cert_type: str = "V2GCertificate") -> str | None:
        """SignCertificate with a fresh key (A02/A03, M04 for the SECC certificate); the CSMS answers with
        CertificateSigned later. Returns the CSMS's status (None when offline)."""
        cn = self.config.station_id if cert_type == "ChargingStationCertificate" else self.model.value(
            "ISO15118Ctrlr", "SeccId") or self.config.station_id
        csr = self.certificates.new_csr(cert_type, cn, self.config.vendor)
        answer = await self._call("SignCertificate", {"csr": csr, "certificateType": cert_type})
        return None if answer is None else answer["status"]

    async def certificate_status(self, ocsp_request: dict[str, str]) -> dict[str, Any] | None:
        """GetCertificateStatus (M06): the CSMS fetches the OCSP response for one of our chain's certificates."""
        return await self._call("GetCertificateStatus", {"ocspRequestData": ocsp_request})

    def spawn_call(self, action: str, payload: dict[str, Any]) -> None:
        """Send a CALL that is not queued (NotifyEVChargingNeeds, NotifyEvent, ...) in the background."""
        self._spawn(self._call(action, payload), action)

    async def report_profiles(self, request_id: int, found: list[Installed]) -> None:
        """ReportChargingProfiles: one message per EVSE, tbc on all but the last."""
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for item in found:
            by_evse.setdefault(item.evse_id, []).append(item.profile)
        evse_ids = sorted(by_evse)
        for n, evse_id in enumerate(evse_ids):
            await self._call("ReportChargingProfiles", {
                "requestId": request_id, "chargingLimitSource": "CSO", "evseId": evse_id,
                "chargingProfile": by_evse[evse_id], "tbc": n < len(evse_ids) - 1})

    def profiles_changed(self, evse_id: int) -> None:
        """Apply new limits at once and tell the listeners (the ISO 15118 bridge renegotiates)."""
        for evse in self.evses.values():
            if evse_id in (0, evse.id):
                self._energize(evse)
        for listener in list(self.on_profiles_changed):
            try:
                listener(evse_id)
            except Exception:
                log.exception("%s: profile listener failed", self.config.station_id)

    def _energize(self, evse: Evse) -> None:
        """Apply the power the EVSE may deliver now; tell the CSMS when the charging state changes."""
        power = evse.power_allowed()
        limit = self.limit_w(evse.id) if self.profiles.items else None
        if limit is not None and power > limit:
            power = max(0.0, limit)
        if evse.meter.soc is not None and evse.meter.soc >= 100.0 and power > 0:
            power = 0.0
        evse.meter.set_power(power, self.clock.now())
        tx = evse.tx
        if tx is None or tx.ended:
            return
        if power != 0:
            state = "Charging"
        elif evse.plugged and evse.authorized:
            state = "SuspendedEV" if evse.ev_power_w == 0 or (evse.meter.soc or 0) >= 100 else "SuspendedEVSE"
        else:
            state = "EVConnected" if evse.plugged else "Idle"
        if state != tx.charging_state:
            tx.charging_state = state
            self._emit(tx, "Updated", "ChargingStateChanged", context="Sample.Periodic")

    async def unplug(self, evse_id: int) -> None:
        """The EV's cable is unplugged: ends the transaction (TxStopPoint EVConnected / StopTxOnEVSideDisconnect)."""
        evse = self.evses[evse_id]
        if not evse.plugged:
            return
        evse.plugged = False
        if evse.tx is not None and ("EVConnected" in self.model.members("TxCtrlr", "TxStopPoint")
                                    or self.model.bool("TxCtrlr", "StopTxOnEVSideDisconnect")):
            await self.stop_transaction(evse_id, "EVDisconnected", "EVCommunicationLost")
        else:
            self._energize(evse)
        evse.authorized, evse.id_token = False, None
        await self.send_status(evse)

    async def stop_transaction(self, evse_id: int, reason: str = "Local", trigger: str = "StopAuthorized") -> None:
        """End the EVSE's transaction: power off, Ended with the end meter values."""
        evse = self.evses[evse_id]
        tx = evse.tx
        if tx is None or tx.ended:
            return
        evse.authorized = False
        evse.meter.set_power(0.0, self.clock.now())
        tx.charging_state = "EVConnected" if evse.plugged else "Idle"
        self._emit(tx, "Ended", trigger, context="Transaction.End", stopped_reason=reason)
        evse.tx = None
        self.profiles.end_transaction(tx.id)
        self.model.put("SmartChargingCtrlr", "Entries", str(len(self.profiles.items)), instance="ChargingProfiles")
        task = self._tx_tasks.pop(tx.id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if evse.scheduled_operative is not None:
            evse.operative, evse.scheduled_operative = evse.scheduled_operative, None
        await self.send_status(evse)
        if self._reset_when_idle and all(e.tx is None for e in self.evses.values()):
            self._reset_when_idle = False
            self._spawn(self.reboot("ResetCommand", "ImmediateReset"), "reset")

    async def set_fault(self, evse_id: int, faulted: bool = True, reason: str = "Other") -> None:
        """A (simulated) hardware fault on the EVSE, or its end: Faulted status; a running transaction ends."""
        evse = self.evses[evse_id]
        evse.faulted = faulted
        if faulted and evse.tx is not None:
            await self.stop_transaction(evse_id, reason, "AbnormalCondition")
        self._energize(evse)
        await self.send_status(evse)

    async def _sample(self, evse: Evse, tx: Transaction) -> None:
        """Periodic meter values (SampledDataCtrlr.TxUpdatedInterval) while the transaction lasts."""
        while not tx.ended:
            interval = self.model.int("SampledDataCtrlr", "TxUpdatedInterval")
            await self.clock.sleep(interval if interval > 0 else 1)
            if tx.ended or interval <= 0 or not self.model.bool("SampledDataCtrlr", "Enabled"):
                continue
            if evse.meter.power_w:
                tx.charging_seconds += interval
            self._energize(evse)  # e.g. the battery became full
            if not tx.ended:
                self._emit(tx, "Updated", "MeterValuePeriodic", context="Sample.Periodic")

    async def _connection_timeout(self, evse: Evse, token: IdToken) -> None:
        """EVConnectionTimeOut: an authorization without a plugged EV lapses."""
        await self.clock.sleep(self.model.int("TxCtrlr", "EVConnectionTimeOut"))
        if evse.plugged or not evse.authorized or evse.id_token != token:
            return
        if evse.tx is not None:
            await self.stop_transaction(evse.id, "Timeout", "EVConnectTimeout")
        evse.authorized, evse.id_token = False, None

    # ----- commands from the CSMS -----

    async def reboot(self, trigger: str = "ResetCommand", reason: str = "ImmediateReset") -> None:
        """Simulated reboot: end transactions, drop the link, BootNotification(RemoteReset) on reconnecting."""
        for evse in self.evses.values():
            if evse.tx is not None:
                await self.stop_transaction(evse.id, reason, trigger)
        if self.online:  # let the CSMS answer the Ended events first, so that none is sent twice
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait_queue_empty(), self.client.call_timeout)
        self.reboots += 1
        self.registration = "New"
        self._accepted.clear()
        self.boot_reason = "RemoteReset"
        conn = self.client.connection
        if conn is not None:
            await conn.close(1000, "rebooting")

    def schedule_reset_when_idle(self) -> None:
        """Reset(OnIdle) with transactions running: reboot when the last one ends."""
        self._reset_when_idle = True

    async def change_availability(self, evse_id: int | None, operative: bool) -> str:
        """ChangeAvailability: Accepted now, or Scheduled after the running transaction."""
        targets = list(self.evses.values()) if evse_id is None else [self.evses[evse_id]]
        scheduled = False
        if evse_id is None:
            self.operative = operative
            self.model.put("ChargingStation", "Available", "true" if operative else "false")
        for evse in targets:
            if evse.tx is not None and not operative:
                evse.scheduled_operative, scheduled = operative, True
            else:
                evse.operative = operative
            await self.send_status(evse)
        return "Scheduled" if scheduled else "Accepted"

    async def send_meter_values(self, evse: Evse) -> None:
        """MeterValues (TriggerMessage) for one EVSE."""
        await self._call("MeterValues", {"evseId": evse.id, "meterValue": [{
            "timestamp": self.clock.timestamp(), "sampledValue": evse.meter.sample(self.clock.now(), "Trigger")}]})

    def trigger_transaction_event(self, evse: Evse) -> bool:
        """TransactionEvent(Updated, Trigger) for the EVSE's transaction; False if there is none."""
        if evse.tx is None:
            return False
        self._emit(evse.tx, "Updated", "Trigger", context="Trigger")
        return True

    async def send_report(self, request_id: int, base: str) -> None:
        """NotifyReport parts for GetBaseReport."""
        size = self.model.int("DeviceDataCtrlr", "ReportItemsPerMessage")
        parts = chunks(self.model.report(base), size)
        for i, part in enumerate(parts):
            payload: dict[str, Any] = {"requestId": request_id, "generatedAt": self.clock.timestamp(),
                                       "tbc": i < len(parts) - 1, "seqNo": i}
            if part:
                payload["reportData"] = part
            if await self._call("NotifyReport", payload) is None:
                return

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run work a handler started after its answer (e.g. the transaction a RequestStartTransaction begins)."""
        return self._spawn(coro, name)
