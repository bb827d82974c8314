"""The station's OCPP link: the connection, BootNotification, heartbeats, StatusNotification, the durable queue's
sender, DataTransfer and TriggerMessage, and CALLs to the CSMS with typed errors (errors.py).

`call()` raises Offline, CallRefused, OwnPayloadInvalid or AnswerInvalid; `try_call()` awaits and logs each of them
distinctly, returning None; `notify()` does the same in the background (fire and forget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..ocpp import (
    BackOff,
    CallErrorReceived,
    CallTimeoutError,
    Connection,
    ConnectionClosedError,
    Dialer,
    PayloadInvalid,
    Router,
    RpcEngine,
    StationClient,
    Version,
)
from ..ocpp.schemas import default_store
from .context import StationContext
from .device_model import Variable
from .errors import AnswerInvalid, CallRefused, Offline, OwnPayloadInvalid
from .evse import Evse
from .network_profiles import NetworkProfiles
from .ocpp16 import Ocpp16Mapping
from .ocpp16_handlers import Ocpp16Handlers
from .sender import AnswerHook, QueueSender

log = logging.getLogger(__name__)

LINK_ERRORS = (ConnectionClosedError, CallTimeoutError)
# What a charging session makes the station send (and check the answers of): their validators (generated ahead of
# time, ocpp/generated/) are imported in a thread as soon as the boot is accepted, not on the event loop in the middle
# of the first session: from bytecode that takes ~1 ms each, but where no bytecode can be written (a read-only
# install without .pyc files) the 2.1 TransactionEvent module's source takes ~0.15 s to compile.
SESSION_ACTIONS = ["TransactionEvent", "MeterValues", "Authorize", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule",
                   "NotifyEvent", "SecurityEventNotification", "Get15118EVCertificate", "GetCertificateStatus",
                   "DataTransfer"]
Payload = dict[str, Any]
DataTransferHandler = Callable[[Payload], Payload]
Trigger = Callable[[list[Evse]], bool]  # TriggerMessage for these EVSEs: False to answer Rejected


SENT_WHILE_PENDING = frozenset({"NotifyReport"})
"""What the station sends while its registration is Pending (B02): the reports of a GetBaseReport/GetReport the CSMS
may send then; everything else waits for Accepted."""


class Link:
    """The connection to the CSMS and everything that keeps it: registration, heartbeats, statuses, the queue."""

    def __init__(self, ctx: StationContext, router: Router, dial: Dialer | None = None) -> None:
        self.ctx = ctx
        config, model = ctx.config, ctx.model
        self.registration = "New"  # New, Pending, Rejected, Accepted
        self.boot_reason = "PowerUp"
        self.data_transfer: dict[str, DataTransferHandler] = {}  # vendorId -> handler of the CSMS's DataTransfer
        self.triggers: dict[str, Trigger] = {}  # TriggerMessage requestedMessage -> what other services send
        self.frame_listeners: list[Callable[[str, str], None]] = []  # every OCPP frame (direction, text): traces
        self.on_queue_answer: AnswerHook | None = None  # the transactions' look at each queued message's answer
        password = model.value("SecurityCtrlr", "BasicAuthPassword") or config.password
        # OCPP 1.6: the services keep speaking 2.0.1; the mapping translates at the connection (station/ocpp16.py),
        # and the CSMS's 1.6 CALLs reach their 2.0.1 handlers through station/ocpp16_handlers.py
        self.v16 = Ocpp16Mapping(ctx) if tuple(config.versions) == ("1.6",) else None
        served = router if self.v16 is None else Ocpp16Handlers(ctx, router, self.v16).router
        self.profiles = NetworkProfiles(
            model, [config.csms_url, *config.fallback_urls], config.security_profile,
            path=config.state_dir / "network_profiles.json" if config.state_dir else None)
        self.client = StationClient(
            config.csms_url, config.station_id, served,
            versions=list(config.versions), password=password,
            # a CALL waits on the network and the CSMS, which a faster simulation does not speed up: real seconds
            ssl=config.ssl, call_timeout=config.call_timeout or model.int(
                "OCPPCommCtrlr", "MessageTimeout", instance="Default"),
            backoff=config.backoff or self._backoff(), on_connect=self._on_connect,
            ping_interval=config.ping_interval, dial=dial, endpoints=self.profiles.urls,
            attempts_per_endpoint=self.profiles.attempts)
        self._agreed = Version.parse(config.versions[0])  # the version of the last connection (else the preferred)
        # our payloads while no connection exists (1.6: the services' 2.0.1 payloads, translated at the connection)
        self._validators = {v: RpcEngine(Version.V201 if v is Version.V16 else v) for v in self.client.versions}
        self._online = asyncio.Event()
        self.sender = QueueSender(ctx.queue, self._online, self.connection, model,
                                  ctx.clock.sleep, self._queue_answer, config.station_id)
        self._boot_wake = asyncio.Event()
        self._accepted = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        model.on_change.append(self._variable_changed)

    # ----- life cycle -----

    def start(self) -> None:
        """Connect (in the background, reconnecting as needed) and start sending the queue."""
        self.ctx.spawn(self.sender.run(), "queue-sender")
        self._run_task = asyncio.get_running_loop().create_task(self.client.run(), name="station-link")

    async def stop(self) -> list[asyncio.Task[None]]:
        """Disconnect; the tasks still to cancel."""
        await self.client.stop()
        return [self._run_task] if self._run_task else []

    async def wait_accepted(self) -> None:
        """Wait until the CSMS has accepted the BootNotification."""
        await self._accepted.wait()

    async def wait_queue_empty(self) -> None:
        """Wait until every message queued so far has been answered by the CSMS."""
        await self.sender.wait_empty()

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS."""
        conn = self.client.connection
        return self._online.is_set() and conn is not None and not conn.closed

    @property
    def version(self) -> str:
        """The OCPP version agreed with the CSMS ("2.1" or "2.0.1"): the open connection's, else the last one's, else
        the most preferred one offered (what payloads made while offline are built for)."""
        return self._agreed.value

    @property
    def v21(self) -> bool:
        """The link speaks (or last spoke) OCPP 2.1."""
        return self._agreed is Version.V21

    @property
    def connected(self) -> bool:
        """A websocket to the CSMS is open (whether or not the boot was accepted)."""
        conn = self.client.connection
        return conn is not None and not conn.closed

    def _backoff(self) -> BackOff:
        """Reconnect waits from the RetryBackOff* variables (scaled like every other interval)."""
        s, model = self.ctx.config.time_scale, self.ctx.model
        return BackOff(model.int("OCPPCommCtrlr", "RetryBackOffWaitMinimum") * s,
                       model.int("OCPPCommCtrlr", "RetryBackOffRandomRange") * s,
                       model.int("OCPPCommCtrlr", "RetryBackOffRepeatTimes"))

    def _variable_changed(self, v: Variable) -> None:
        """Apply variables that change the link: the Basic auth password."""
        if (v.component, v.name) == ("SecurityCtrlr", "BasicAuthPassword"):
            self.client.password = v.value or None

    def _queue_answer(self, request: Payload, answer: Payload) -> None:
        """Hand the answer to a queued message to whoever cares (the transactions)."""
        if self.on_queue_answer is not None:
            self.on_queue_answer(request, answer)

    # ----- boot, statuses, heartbeat -----

    def _on_connect(self, conn: Connection) -> None:
        """A new websocket: register (if needed), then run the heartbeat; forget it all when it closes."""
        conn.frame_listeners = self.frame_listeners
        self._agreed = conn.version
        if self.v16 is not None:
            conn = self.v16.wrap(conn)
        self.ctx.spawn(self._link(conn), "link")
        self.ctx.spawn(self._watch(conn), "watch")

    async def _watch(self, conn: Connection) -> None:
        """When the websocket closes: go offline at once (the link task then ends by itself)."""
        await conn.wait_closed()
        self._online.clear()
        log.info("%s: offline", self.ctx.station_id)

    async def _pause(self, conn: Connection, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Wait `seconds` of simulated time, less if the connection closes or `wake` is set."""
        waits = [asyncio.ensure_future(conn.wait_closed())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds) * self.ctx.clock.scale,
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
            schemas = default_store()[conn.version]
            self.ctx.spawn(asyncio.to_thread(schemas.warm, [a for a in SESSION_ACTIONS if a in schemas.actions]),
                           "schema-warm")
            for evse in self.ctx.evses.values():
                await self.send_status(evse, force=True)
            while True:
                await self._pause(conn, self.ctx.model.int("OCPPCommCtrlr", "HeartbeatInterval"))
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
                log.warning("%s: BootNotification failed: %s", self.ctx.station_id, e)
                answer = {"status": None, "interval": 0}  # no decision: try again later
            self.registration = answer["status"] or self.registration
            interval = answer["interval"]
            log.info("%s: BootNotification %s (interval %ss)", self.ctx.station_id, self.registration, interval)
            if self.registration == "Accepted":
                if interval > 0:
                    self.ctx.model.put("OCPPCommCtrlr", "HeartbeatInterval", str(interval))
                self.boot_reason = "PowerUp"
                self._accepted.set()
                return True
            await self._pause(conn, interval if interval > 0 else self.ctx.config.boot_retry_s, self._boot_wake)
        return False

    def _station_info(self) -> Payload:
        """ChargingStationType for BootNotification."""
        c = self.ctx.config
        info: Payload = {"model": c.model, "vendorName": c.vendor, "firmwareVersion": c.firmware_version}
        if c.serial_number:
            info["serialNumber"] = c.serial_number
        return info

    def connection(self) -> Any:
        """The open connection as the services use it (for 1.6: its translating view), or None."""
        conn = self.client.connection
        return conn if conn is None or self.v16 is None else self.v16.wrap(conn)

    async def restart(self, reason: str) -> None:
        """A (simulated) reboot of the link: register again with `reason` (e.g. RemoteReset) after reconnecting."""
        self.registration = "New"
        self._accepted.clear()
        self.boot_reason = reason
        conn = self.client.connection
        if conn is not None:
            await conn.close(1000, "rebooting")

    async def heartbeat(self) -> Payload | None:
        """Send one Heartbeat."""
        return await self.try_call("Heartbeat", {})

    async def send_status(self, evse: Evse, *, force: bool = False) -> None:
        """StatusNotification for the EVSE's connector when its status changed (or when forced)."""
        status = evse.status(self.ctx.operative)
        model = self.ctx.model
        model.put("EVSE", "AvailabilityState", status, evse=evse.id)
        model.put("EVSE", "Available", "true" if status != "Unavailable" else "false", evse=evse.id)
        if status == evse.reported_status and not force:
            return
        evse.reported_status = status
        log.info("%s: EVSE %d connector %d is %s", self.ctx.station_id, evse.id, evse.connector_id, status)
        answer = await self.try_call("StatusNotification", {
            "timestamp": self.ctx.clock.timestamp(), "connectorStatus": status, "evseId": evse.id,
            "connectorId": evse.connector_id})
        if answer is None:
            evse.reported_status = None  # told again after reconnecting

    # ----- CALLs to the CSMS -----

    async def call(self, action: str, payload: Payload) -> Payload:
        """Send a CALL that is not queued and return the CSMS's answer; raise Offline, CallRefused,
        OwnPayloadInvalid (logged here as the bug of ours it is) or AnswerInvalid."""
        conn = self.connection()
        pending_report = action in SENT_WHILE_PENDING and self.registration == "Pending" and self.connected
        if (not self.online and not pending_report) or conn is None:
            self._check_own(action, payload, self._validators[self._agreed])
            raise Offline(action, "not connected to the CSMS" if not self.connected else "not accepted by the CSMS")
        try:
            return await conn.call(action, payload)
        except ConnectionClosedError:
            raise Offline(action, "the connection closed") from None
        except CallTimeoutError:
            raise Offline(action, "no answer in time") from None
        except CallErrorReceived as e:
            raise CallRefused(action, e.wire_code, e.description) from None
        except PayloadInvalid as e:  # ours (checked before sending) or the CSMS's answer
            self._check_own(action, payload, conn.engine)
            raise AnswerInvalid(action, e.description) from None

    def _check_own(self, action: str, payload: Payload, engine: RpcEngine) -> None:
        """Raise (and log) OwnPayloadInvalid if our request breaks the schema."""
        try:
            engine.validate_request(action, payload)
        except PayloadInvalid as e:
            log.error("%s: BUG: our %s request breaks the OCPP schema and was not sent: %s", self.ctx.station_id,
                      action, e.description)
            raise OwnPayloadInvalid(action, e.description) from None

    async def try_call(self, action: str, payload: Payload) -> Payload | None:
        """call(), but a failure is logged by its kind and gives None."""
        try:
            return await self.call(action, payload)
        except OwnPayloadInvalid:
            return None  # logged as a bug by call()
        except Offline as e:
            log.info("%s: %s not sent: %s", self.ctx.station_id, action, e.description)
        except CallRefused as e:
            log.warning("%s: the CSMS refused %s: %s %s", self.ctx.station_id, action, e.code, e.reason)
        except AnswerInvalid as e:
            log.warning("%s: the CSMS's answer to %s breaks the schema: %s", self.ctx.station_id, action,
                        e.description)
        return None

    def notify(self, action: str, payload: Payload) -> None:
        """Send a CALL that is not queued (NotifyEvent, NotifyEVChargingNeeds, ...) in the background; a failure is
        logged by its kind."""
        self.ctx.spawn(self.try_call(action, payload), action)

    # ----- CSMS-initiated messages of the link -----

    def trigger_boot(self) -> None:
        """TriggerMessage(BootNotification) while Pending: send it now instead of after the interval."""
        self._boot_wake.set()

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """DataTransfer, TriggerMessage and SetNetworkProfile."""
        return {"DataTransfer": self._data_transfer, "TriggerMessage": self._trigger, **self.profiles.handlers()}

    def _data_transfer(self, p: Payload) -> Payload:
        """DataTransfer to a registered vendor handler."""
        handler = self.data_transfer.get(p["vendorId"])
        return {"status": "UnknownVendorId"} if handler is None else handler(p)

    def _trigger(self, p: Payload) -> Payload:
        """TriggerMessage: send the requested message after answering (the link's own, or another service's)."""
        what = p["requestedMessage"]
        evses = self.ctx.evses_of(p)
        if what == "BootNotification":
            if self.registration == "Accepted":
                return {"status": "Rejected"}
            self.trigger_boot()
        elif what == "Heartbeat":
            self.ctx.spawn(self.heartbeat(), "trigger-heartbeat")
        elif what == "StatusNotification":
            for e in evses:
                self.ctx.spawn(self.send_status(e, force=True), "trigger-status")
        elif what in self.triggers:
            if not self.triggers[what](evses):
                return {"status": "Rejected"}
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted" if evses else "Rejected"}

