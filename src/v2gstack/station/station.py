"""The charging station: a thin assembly of services of one job each over a shared context (context.py).

- `link` (link.py): connection, BootNotification, heartbeats, StatusNotification, the offline queue's sender, CALLs
  with typed errors, DataTransfer and TriggerMessage;
- `authorization` (authorization.py): local list, cache, Authorize, offline rules;
- `smart_charging` (smart_charging.py): charging profiles, limits, composite schedules, their persistence;
- `transactions` (transactions.py): transactions, TransactionEvents and meter values, the power each EVSE may give;
- `availability` (availability.py): ChangeAvailability, Reset, UnlockConnector;
- `certificates` (certificates.py): the certificate store, SignCertificate, GetCertificateStatus;
- `reports` (reports.py): GetVariables, SetVariables, GetBaseReport;
- `firmware` (firmware.py): UpdateFirmware, the signed firmware's download, check, simulated install and reboot;
- `logs` (logs.py): the DiagnosticsLog (OCPP frames) and SecurityLog, GetLog's upload;
- `display` (display.py): display messages (Set/Get/ClearDisplayMessage), kept in the state folder;
- `v2x` (v2x.py): OCPP 2.1 V2X: each EVSE's target (charge or discharge power), the control loop, the grid frequency,
  NotifyAllowedEnergyTransfer, Dynamic profiles, AFRRSignal, the external actor's limits.

Each service declares its CSMS-initiated handlers (handlers.py puts them behind the registration check).
`ChargingStation` itself is what drives the station: the SessionPort of a scripted EV (session.py) and the
StationPort of the ISO 15118 bridge (ports.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..hardware import EvseHardware, GridFrequency, SigningMeter, SimulatedHardware
from ..ocpp import Dialer, Router
from .authorization import Authorization, IdToken, IdTokenInfo
from .availability import Availability
from .certificates import Certificates
from .clock import Clock
from .config import StationConfig
from .context import StationContext, Tasks
from .device_model import DeviceModel, standard_variables
from .display import DisplayMessages
from .evse import Evse
from .files import private_folder, write_private
from .firmware import Firmware
from .handlers import register
from .link import Link
from .logs import Logs
from .ports import EvseFacts, FrameListener, SettingsView
from .queue import OfflineQueue
from .reports import Reports
from .reservations import Reservations
from .smart_charging import SmartCharging
from .transactions import Transactions
from .v2x import V2x, charging_needs_for
from .v2x_target import EvseTarget

Payload = dict[str, Any]


class ChargingStation:
    """A simulated OCPP 2.1 / 2.0.1 charging station with N EVSEs (one connector each)."""

    def __init__(self, config: StationConfig, *, hardware: Callable[[int], EvseHardware] | None = None,
                 dial: Dialer | None = None, frequency: GridFrequency | None = None) -> None:
        """`hardware(evse_id)` makes each EVSE's power electronics (default: SimulatedHardware with
        `config.evse_hardware_config(evse_id)`); `dial` opens the websocket instead of `websockets` (tests run the
        link in memory); `frequency` is the grid-frequency input (default: a simulated one, `step_frequency`)."""
        self.config = config
        self.clock = Clock(config.time_scale)
        state = config.state_dir
        if state is not None:
            private_folder(Path(state))  # the device model and the certificates' keys live there
        self.model = DeviceModel(
            standard_variables(config.station_id, config.evses, model=config.model, vendor=config.vendor,
                               security_profile=config.security_profile, max_power_w=config.evse_power),
            path=None if state is None else Path(state) / "device_model.json")
        self.queue = OfflineQueue(":memory:" if state is None else Path(state) / "queue.sqlite")
        make = hardware or self._simulated_hardware
        self.evses: dict[int, Evse] = {
            i: Evse(i, max_power_w=config.evse_power(i), hardware=make(i)) for i in range(1, config.evses + 1)}
        self.context = ctx = StationContext(config, self.clock, self.model, self.evses, self.queue,
                                            Tasks(config.station_id))
        router = Router()
        self.link = Link(ctx, router, dial)
        self.authorization = Authorization(ctx, self.link)
        self.smart_charging = SmartCharging(ctx, self.link)
        self.v2x = V2x(ctx, self.link, self.smart_charging, frequency)
        self.transactions = Transactions(ctx, self.link, self.authorization, self.smart_charging, self.v2x)
        self.availability = Availability(ctx, self.link, self.transactions)
        self.reservations = self.transactions.reservations = Reservations(ctx, self.link)
        self.certificates = Certificates(ctx, self.link)
        self.reports = Reports(ctx, self.link)
        self.firmware = Firmware(ctx, self.link, self.certificates)
        self.logs = Logs(ctx, self.link)
        self.display = DisplayMessages(ctx, self.link)
        register(router, lambda: self.link.registration, config.station_id, self.link.handlers(),
                 self.authorization.handlers(), self.smart_charging.handlers(), self.transactions.handlers(),
                 self.availability.handlers(), self.certificates.handlers(), self.reports.handlers(),
                 self.reservations.handlers(), self.firmware.handlers(), self.logs.handlers(), self.display.handlers(),
                 self.v2x.handlers())
        for evse in self.evses.values():  # the meter's key, for the CSMS to check signed meter values
            if isinstance(evse.hardware, SigningMeter):
                self.model.put("FiscalMetering", "PublicKey", evse.hardware.public_key(), evse=evse.id)

    def _simulated_hardware(self, evse_id: int) -> EvseHardware:
        """The default power stage of an EVSE: simulated, on the station's clock, its meter's signing key kept in
        the state folder (a meter keeps its key: the CSMS's copy stays good across restarts)."""
        meter_id = f"V2GSTACK-METER-{self.config.station_id}-{evse_id}"[:32]
        return SimulatedHardware(self.config.evse_hardware_config(evse_id), self.clock.now, meter_id=meter_id,
                                 signing_key=self._meter_key(evse_id))

    def _meter_key(self, evse_id: int) -> ec.EllipticCurvePrivateKey | None:
        """The simulated meter's key from the state folder (made and kept there on first use); None without one."""
        if self.config.state_dir is None:
            return None
        path = Path(self.config.state_dir) / f"meter-key-{evse_id}.pem"
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        return key

    # ----- life cycle -----

    async def start(self) -> None:
        """Recover what a previous run left, then connect (in the background) and start sending the queue."""
        self.transactions.recover()
        self.firmware.start()
        self.link.start()
        self.context.spawn(self.v2x.run(), "v2x-control")

    async def stop(self) -> None:
        """Disconnect and stop every task (open transactions stay in the journal, as after a power loss)."""
        await self.context.tasks.cancel_all(*await self.link.stop())
        self.queue.close()

    async def wait_accepted(self) -> None:
        """Wait until the CSMS has accepted the BootNotification."""
        await self.link.wait_accepted()

    async def wait_queue_empty(self) -> None:
        """Wait until every message queued so far has been answered by the CSMS."""
        await self.link.wait_queue_empty()

    @property
    def online(self) -> bool:
        """Connected and accepted by the CSMS."""
        return self.link.online

    @property
    def connected(self) -> bool:
        """A websocket to the CSMS is open (whether or not the boot was accepted)."""
        return self.link.connected

    # ----- the ports: what drives an EVSE (session.py's SessionPort, ports.py's StationPort) -----

    @property
    def station_id(self) -> str:
        """The station's identity."""
        return self.config.station_id

    @property
    def settings(self) -> SettingsView:
        """The device model's values."""
        return self.model

    def evse(self, evse_id: int) -> EvseFacts:
        """The facts of one EVSE now."""
        e = self.evses[evse_id]
        return EvseFacts(e.id, e.tx.id if e.tx is not None else None, e.authorized, e.id_token, e.plugged,
                         e.max_power_w)

    async def plug_in(self, evse_id: int) -> None:
        """The EV's cable is plugged in (or the ISO 15118 session began)."""
        await self.transactions.plug_in(evse_id)

    async def unplug(self, evse_id: int) -> None:
        """The EV's cable is unplugged."""
        await self.transactions.unplug(evse_id)

    async def authorize(self, evse_id: int, token: IdToken, *, remote_start_id: int | None = None,
                        check: bool = True, authorize_response: Payload | None = None) -> IdTokenInfo:
        """Authorize `token` for charging on the EVSE; start or update the transaction when Accepted (OCPP 2.1: the
        AuthorizeResponse's allowedEnergyTransfer, `authorize_response` when the caller asked, sets the modes)."""
        return await self.transactions.authorize(evse_id, token, remote_start_id=remote_start_id, check=check,
                                                 authorize_response=authorize_response)

    async def present_token(self, evse_id: int, token: IdToken) -> IdTokenInfo:
        """A driver presents a token: starts charging, or stops the transaction that token started."""
        return await self.transactions.present_token(evse_id, token)

    def set_ev(self, evse_id: int, *, power_w: float | None = None, soc: float | None = None,
               battery_wh: float | None = None) -> None:
        """A scripted EV draws `power_w` from the EVSE's outlet and reports its SoC and battery size."""
        self.transactions.set_ev(evse_id, power_w=power_w, soc=soc, battery_wh=battery_wh)

    def ev_update(self, evse_id: int, *, demand_w: float | None = None, soc: float | None = None,
                  battery_wh: float | None = None) -> None:
        """What the EV asks for and reports over ISO 15118 (it draws through the hardware itself)."""
        self.transactions.ev_update(evse_id, demand_w=demand_w, soc=soc, battery_wh=battery_wh)

    def hardware(self, evse_id: int) -> EvseHardware:
        """The EVSE's power electronics and meter."""
        return self.evses[evse_id].hardware

    async def stop_transaction(self, evse_id: int, reason: str = "Local", trigger: str = "StopAuthorized") -> None:
        """End the EVSE's transaction."""
        await self.transactions.stop_transaction(evse_id, reason, trigger)

    async def set_fault(self, evse_id: int, faulted: bool = True, reason: str = "Other") -> None:
        """A (simulated) hardware fault on the EVSE, or its end."""
        await self.transactions.set_fault(evse_id, faulted, reason)

    def set_transaction_data(self, evse_id: int, custom_data: Payload) -> str | None:
        """customData for the next TransactionEvent of the EVSE's transaction; its id (None: no transaction)."""
        tx = self.evses[evse_id].tx
        if tx is None:
            return None
        tx.set_custom_data(custom_data)
        self.v2x.ev_facts(evse_id, custom_data)
        return tx.id

    async def call(self, action: str, payload: Payload) -> Payload:
        """A CALL to the CSMS (raises Offline, CallRefused, OwnPayloadInvalid, AnswerInvalid)."""
        return await self.link.call(action, payload)

    def notify(self, action: str, payload: Payload) -> None:
        """A CALL in the background; failures are logged by kind. NotifyEVChargingNeeds may carry OCPP 2.1's fields:
        the station notes what the EV can do and drops them for a 2.0.1 CSMS."""
        if action == "NotifyEVChargingNeeds":
            self.v2x.ev_charging_needs(payload["evseId"], payload["chargingNeeds"])
            payload = charging_needs_for(self.link.version, payload)
        self.link.notify(action, payload)

    def on_frame(self, listener: FrameListener) -> Callable[[], None]:
        """Hear every OCPP frame; returns the unsubscribe function."""
        listeners = self.link.frame_listeners
        listeners.append(listener)
        return lambda: listeners.remove(listener) if listener in listeners else None

    def limit_w(self, evse_id: int) -> float | None:
        """The charging-profile limit on the EVSE now, in W (None: no profile limits it)."""
        return self.smart_charging.limit_w(evse_id)

    def composite_schedule(self, evse_id: int, duration_s: int, unit: str = "W", *,
                           max_periods: int | None = None) -> Payload:
        """The composite schedule of an EVSE (0: the station) from now (Rejection if too long)."""
        return self.smart_charging.composite_schedule(evse_id, duration_s, unit, max_periods=max_periods)

    def on_profiles_changed(self, listener: Callable[[int], None], evse_id: int | None = None) -> Callable[[], None]:
        """Hear each change of the charging profiles (with `evse_id`: that EVSE's and the station-wide ones only);
        returns the unsubscribe function."""
        return self.smart_charging.subscribe(listener, evse_id)

    # ----- V2X (OCPP 2.1) -----

    def target(self, evse_id: int) -> EvseTarget:
        """What the EVSE's EV should do now: its power target (W, negative: discharge; None: its own choice within
        the limits) and the import/export limits (the bridge passes them to a -20 EV's charge loop)."""
        return self.v2x.target(evse_id)

    def on_target(self, listener: Callable[[int, EvseTarget], None], evse_id: int | None = None) -> Callable[[], None]:
        """Hear each change of an EVSE's target (evse id, target; with `evse_id`: of that EVSE only); returns the
        unsubscribe function."""
        return self.v2x.on_target(listener, evse_id)

    def allowed_energy_transfer(self, evse_id: int) -> list[str] | None:
        """The energy transfer modes the CSMS allows the EVSE's transaction (NotifyAllowedEnergyTransfer, else the
        2.1 AuthorizeResponse; None: it did not say)."""
        return self.v2x.allowed_modes(evse_id)

    def on_allowed_energy_transfer(self, listener: Callable[[int, list[str]], None]) -> Callable[[], None]:
        """Hear each accepted NotifyAllowedEnergyTransfer and each 2.1 authorization's modes (evse id, modes); returns
        the unsubscribe function."""
        listeners = self.v2x.allowed_listeners
        listeners.append(listener)
        return lambda: listeners.remove(listener) if listener in listeners else None

    def step_frequency(self, hz: float) -> None:
        """Move the simulated grid frequency (LocalFrequency EVSEs follow at once, without asking the CSMS)."""
        self.v2x.step_frequency(hz)

    def set_external_limit(self, evse_id: int, **values: Any) -> bool:
        """An external actor's setpoint/limits for the EVSE (V2x.set_external: NotifyChargingLimit)."""
        return self.v2x.set_external(evse_id, **values)

    def installed_roots(self, cert_type: str) -> list[x509.Certificate]:
        """The installed root certificates of a type."""
        return self.certificates.roots(cert_type)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run work in the background (kept, failure logged, cancelled when the station stops)."""
        return self.context.spawn(coro, name)
