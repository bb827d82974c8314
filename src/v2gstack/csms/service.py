"""The CSMS: OCPP 2.0.1 handlers over the store, station authentication, and the CSMS-initiated commands.

`Csms` owns an OcppServer, a Store and its StoreWorker. Handlers answer only after what they record has committed,
so a station that got a CALLRESULT can drop the message from its queue without risk of loss.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import ssl as ssl_module
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .. import exi
from ..constants import ISO_FACTS_VENDOR
from ..iso15118.messages import for_protocol
from ..iso15118.model import Step
from ..iso15118.pnc import InstallationError, answer_installation, answer_update
from ..ocpp import (
    AuthDecision,
    CallContext,
    CallErrorReceived,
    CallTimeoutError,
    Connection,
    ConnectionClosedError,
    Credentials,
    FloodPolicy,
    OcppServer,
    PayloadInvalid,
    Router,
    SecurityProfile,
)
from ..ocpp.throttle import AuthThrottle, ThrottlePolicy, source_key
from ..pki import errors as pki_errors
from ..pki.contracts import ContractService
from ..pki.contracts20 import ContractService20
from ..pki.csr import CsrError
from ..pki.fetch_policy import FetchPolicy
from ..pki.ocsp import OcspError, OcspRefused
from ..pki.ocsp_cache import OcspCache
from ..pki.verify import Purpose, verify_chain
from ..times import parse_rfc3339, rfc3339
from . import signed_meter, v2x_state
from . import store as ops
from .admission import AdmissionPolicy, BootAdmission, default_max_connections
from .cert_expiry import CertificateExpiryCheck, Finding
from .certificates import CertificateIssuer, chain_pem
from .certificates20 import SCHEMA20, answer_get_certificate20
from .cluster import CommandRelay, RelayError
from .device_model import DeviceModelService, op_has_model
from .diagnostics import DiagnosticsService
from .display import DisplayService
from .errors import CommandError
from .ev_needs import NeedsService
from .events import EventFeed
from .firmware import FirmwareService
from .local_list import LocalListService, op_has_list
from .mirror import MirrorRejected, is_mirror_vendor, parse_mirror
from .models import Station
from .ocpp16 import Ocpp16Service
from .ownership import Ownership, op_station_owner
from .passwords import PasswordService
from .reservations import ReservationService
from .revocation import OcspChecker, chain_status, hash_data_status
from .security_profiles import SecurityProfileService, op_raise_security_profile
from .singletons import CERT_EXPIRY, Singletons
from .store import Store
from .tariffs import TariffService
from .v2x import V2xService
from .worker import StoreWorker

log = logging.getLogger(__name__)

Payload = dict[str, Any]

@dataclass
class CsmsConfig:
    """How the CSMS behaves: heartbeat interval, what unknown stations get, how long commands may take."""

    heartbeat_interval: int = 300
    node_id: str | None = None  # several nodes on one database: this node's name (owner records, csms/ownership.py)
    owner_lease_s: float = 15.0  # how long an owner record holds without renewal
    nats_url: str | None = None  # with node_id: commands for stations on other nodes go there (csms/cluster.py)
    subject_prefix: str = "v2g"  # the cluster's NATS subjects (<prefix>.cmd.<node>, <prefix>.evt.>) and stream
    singleton_lease_s: float = 10.0  # how long a singleton's lease holds without renewal (csms/singletons.py)
    cert_check_interval_s: float = 3600.0  # the certificate expiry check (csms/cert_expiry.py)
    cert_warn_days: float = 30.0
    security_profile: int = 1
    auto_register: bool = False  # profile 0 only: register a station at its first BootNotification
    command_timeout: float = 30.0
    call_timeout: float = 30.0
    ping_interval: float | None = 60.0
    allowed_versions: tuple[str, ...] = ("2.1", "2.0.1", "1.6")  # offered on one endpoint, most preferred first
    log_session_messages: bool = True
    accept_valid_contracts: bool = True  # a valid contract of a trusted MO is Accepted even if its eMAID is not listed
    contract_ocsp: bool = True  # ask the OCSP responders named in a contract chain
    ocsp_required: bool = False  # an unreachable responder fails the contract (else: soft-fail, logged)
    ocsp_timeout: float = 3.0
    # Which responders stations may make the CSMS ask (pki/fetch_policy.py): HOST, HOST:PORT or CIDR entries are
    # always allowed; others only on a public address and port 80/443, unless private targets are allowed.
    ocsp_allow: tuple[str, ...] = ()
    ocsp_allow_private: bool = False
    ocsp_allow_only: bool = False
    ocsp_max_response: int = 65536
    ocsp_cache_size: int = 1024  # checked answers kept until their nextUpdate (0: no cache)
    ocsp_cache_max_age: float = 3600.0
    max_protocol_errors: int = 20  # CALLERRORs a station causes within a minute before it is disconnected (0: never)
    auth_throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)  # password guessing: back-off, budget
    flood: FloodPolicy | None = None  # protocol-error policy; None: the defaults with max_protocol_errors
    pki_dir: str | None = None  # a `v2gstack pki create` folder: CAs that sign stations' CSRs (SignCertificate)
    pki_dir20: str | None = None  # a `v2gstack pki create --profile iso20` folder: issues -20 contracts
    ocsp_url: str | None = None  # put into the AIA of the certificates this CSMS issues
    pending_until_reported: bool = False  # B02: Pending at boot until the station's device model has been read
    pending_interval: int = 10  # s: the interval of a Pending answer (the station boots again after it)
    firmware_dir: str | None = None  # firmware files stations download from the API at /firmware/<name>
    max_upload: int = 16 * 1024 * 1024  # the largest log file a station may upload, bytes
    reconcile_local_lists: bool = True  # GetLocalListVersion after each boot; a Full update when it differs (D02)
    needs_profiles: bool = True  # answer NotifyEVChargingNeeds with a computed TxProfile (csms/ev_needs.py)
    needs_max_power_w: float | None = None  # the per-EVSE limit those profiles keep within (None: the EV's maximum)
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)  # boot storms: Pending with a wait (B02)
    max_connections: int | None = None  # station sockets on this node; beyond: 503 (None: the fd limit less a reserve)
    max_handshakes: int | None = None  # handshakes in progress at once; beyond: 503 Retry-After (None: any)
    busy_retry_after: float = 10.0  # s, about (jittered): the Retry-After of those 503s
    # OCPP 2.1 Q01: the modes an AuthorizeResponse allows a token without its own (empty: left out = charging only)
    allowed_energy_transfer: tuple[str, ...] = ()


@dataclass
class StationState:
    """What the CSMS keeps in memory about a connected station (the database keeps the rest)."""

    station_id: str
    active: dict[int, str] = field(default_factory=dict)  # evse id -> running transactionId
    session_ids: dict[str, str] = field(default_factory=dict)  # transactionId -> ISO 15118 SessionID


class StoreAuthenticator:
    """Accepts registered stations: Basic auth checked against the scrypt hash (profiles 1-2), certificate CN = id
    (profile 3, checked by the TLS layer and the server). Verified passwords are remembered as a keyed digest, so a
    reconnecting station does not pay the scrypt cost again. Guessing is throttled (ocpp/throttle.py): a source or
    station that failed too often is answered 429 without hashing, scrypt runs one at a time and within a budget
    per second (beyond it: 429 at once)."""

    def __init__(self, worker: StoreWorker, throttle: AuthThrottle | None = None) -> None:
        self.worker = worker
        self.throttle = throttle or AuthThrottle()
        self._key = uuid.uuid4().bytes
        self._verified: dict[str, tuple[str, bytes]] = {}  # station -> (stored hash, keyed digest of the password)
        self._scrypt = asyncio.Semaphore(1)  # one password hash at a time: the others wait, the loop keeps serving
        self.check_seconds = 0.1  # how long the last scrypt check took: fast refusals wait as long

    async def __call__(self, cred: Credentials) -> AuthDecision:
        """The verdict for one handshake.

        With a password profile every refusal takes about as long as a password check: an unknown station, a station
        without a password and a wrong password the remembered digest already decides wait (asleep: no CPU, no
        verification budget) as long as the last scrypt check took, so neither the answer (the server sends 401 for
        all of them) nor its time tells which station ids exist.
        """
        source = source_key(cred.remote_address)
        if self.throttle.wait(cred.station_id, source) > 0:
            return AuthDecision.TOO_MANY_REQUESTS
        # a read on its own connection (SQLite WAL, PostgreSQL): handshakes do not queue behind the batched writes
        st = await self.worker.read(ops.op_station, cred.station_id)
        uses_password = cred.security_profile.uses_password
        if st is None:
            self.throttle.failed(None, source)
            if uses_password:
                await asyncio.sleep(self.check_seconds)
            return AuthDecision.UNKNOWN_STATION
        if not uses_password:
            return await self._profile_decision(st, cred)
        if cred.password is None or not st.password_hash:
            self.throttle.failed(cred.station_id, source)
            await asyncio.sleep(self.check_seconds)
            return AuthDecision.BAD_CREDENTIALS
        digest = hmac.new(self._key, cred.password.encode(), hashlib.sha256).digest()
        known = self._verified.get(cred.station_id)
        if known is not None and known[0] == st.password_hash:
            ok = hmac.compare_digest(known[1], digest)
            if not ok:
                await asyncio.sleep(self.check_seconds)
        else:
            if not self.throttle.take_verification():
                return AuthDecision.TOO_MANY_REQUESTS
            async with self._scrypt:
                if self.throttle.wait(cred.station_id, source) > 0:  # failures of others while this one waited
                    return AuthDecision.TOO_MANY_REQUESTS
                started = time.monotonic()
                ok = await asyncio.to_thread(ops.check_password, cred.password, st.password_hash)
                self.check_seconds = time.monotonic() - started
        if not ok:
            self.throttle.failed(cred.station_id, source)
            return AuthDecision.BAD_CREDENTIALS
        self.throttle.succeeded(cred.station_id, source)
        self._verified[cred.station_id] = (st.password_hash, digest)
        return await self._profile_decision(st, cred)

    async def _profile_decision(self, st: Station, cred: Credentials) -> AuthDecision:
        """A05: a listener below the station's stored profile is refused (403); a higher one raises the stored
        profile (csms/security_profiles.py)."""
        if cred.security_profile < st.security_profile:
            log.warning("station %s refused: security profile %d below its profile %d", cred.station_id,
                        cred.security_profile, st.security_profile)
            return AuthDecision.FORBIDDEN
        if cred.security_profile > st.security_profile:
            await self.worker.run(op_raise_security_profile, cred.station_id, int(cred.security_profile))
        return AuthDecision.ACCEPT


class Csms:
    """A CSMS with storage: `await csms.start(host, port)`, then stations connect at ws://host:port/ocpp/<id>."""

    def __init__(self, store: Store, config: CsmsConfig | None = None, *, ssl: ssl_module.SSLContext | None = None,
                 path: str = "/ocpp") -> None:
        self.store = store
        self.config = config or CsmsConfig()
        self.worker = StoreWorker(store)
        self.ownership = (Ownership(self.worker, self.config.node_id, self.config.owner_lease_s)
                          if self.config.node_id else None)
        self.relay = (CommandRelay(self.config.nats_url, self.config.node_id, self._call_local, _command_error_of,
                                   self.config.subject_prefix)
                      if self.config.node_id and self.config.nats_url else None)
        # the event stream (csms/events.py) and the singletons (csms/singletons.py) of a cluster
        self.feed = EventFeed(self.config.node_id, self.config.subject_prefix) if self.relay is not None else None
        self.singletons = (Singletons(self.worker, self.config.node_id, self.config.singleton_lease_s)
                           if self.config.node_id else None)
        self.cert_check = CertificateExpiryCheck(self.worker, self.config.cert_check_interval_s,
                                                 self.config.cert_warn_days, self._publish_certificate)
        if self.singletons is not None:
            self.singletons.add(CERT_EXPIRY, self.cert_check.start, self.cert_check.stop)
        self.states: dict[str, StationState] = {}
        self.v2x = V2xService(self)
        self.needs = NeedsService(self)
        self.local_lists = LocalListService(self)
        self.reservations = ReservationService(self)
        self.display = DisplayService(self)
        self.diagnostics = DiagnosticsService(self)
        self.firmware = FirmwareService(self)
        self.tariffs = TariffService(self)
        self.passwords = PasswordService(self)
        self.device = DeviceModelService(self)
        self.security_profiles = SecurityProfileService(self)
        self.router = self._build_router()
        self.ocpp16 = Ocpp16Service(self)  # the 1.6 router, on the same endpoint
        profile = SecurityProfile(self.config.security_profile)
        self.authenticator = (StoreAuthenticator(self.worker, AuthThrottle(self.config.auth_throttle))
                              if profile is not SecurityProfile.NONE else None)
        self.server = OcppServer({v: self.ocpp16.router if v == "1.6" else self.router
                                  for v in self.config.allowed_versions}, security_profile=profile,
                                 authenticator=self.authenticator, ssl=ssl, path=path,
                                 call_timeout=self.config.call_timeout, ping_interval=self.config.ping_interval,
                                 on_connect=self._connected, on_disconnect=self._disconnected,
                                 flood=self.config.flood or FloodPolicy(
                                     max_violations=self.config.max_protocol_errors),
                                 max_connections=(self.config.max_connections
                                                  if self.config.max_connections is not None
                                                  else default_max_connections()),
                                 max_handshakes=self.config.max_handshakes,
                                 busy_retry_after=self.config.busy_retry_after)
        self.admission = BootAdmission(self.config.admission)
        self.listeners: list[Callable[[str, str, Payload], None]] = []  # (station, action, payload) of each CALL
        # the same for the other nodes of a cluster (their stations' events from the event feed): live views
        self.cluster_listeners: list[Callable[[str, str, Payload], None]] = []
        self.grid: Any = None  # the grid control (csms/grid_control.py) when one is attached
        self.issuer = (CertificateIssuer.from_pki_dir(Path(self.config.pki_dir), self.config.ocsp_url)
                       if self.config.pki_dir else None)
        self.contract_service: ContractService | None = None  # issues contracts for certificate installation
        if self.config.pki_dir:
            try:
                self.contract_service = ContractService.from_pki_dir(Path(self.config.pki_dir), self.config.ocsp_url)
            except (OSError, ValueError) as e:
                log.warning("no contract issuing (the PKI folder lacks MO/CPS/OEM CAs): %s", e)
        self.contract_service20: ContractService20 | None = None  # issues -20 contracts (Get15118EVCertificate)
        if self.config.pki_dir20:
            try:
                self.contract_service20 = ContractService20.from_pki_dir(Path(self.config.pki_dir20),
                                                                         self.config.ocsp_url)
            except (OSError, ValueError) as e:
                log.warning("no -20 contract issuing (the -20 PKI folder lacks eMSP/CPS/OEM CAs): %s", e)
        self._background: set[asyncio.Task[Any]] = set()
        self.ocsp = OcspChecker(
            FetchPolicy(allow=tuple(self.config.ocsp_allow), allow_private=self.config.ocsp_allow_private,
                        allow_only=self.config.ocsp_allow_only, timeout=self.config.ocsp_timeout,
                        max_response=self.config.ocsp_max_response),
            OcspCache(self.config.ocsp_cache_size, timedelta(seconds=self.config.ocsp_cache_max_age)))

    # ----- lifecycle -----

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen for stations."""
        if self.relay is not None:
            await self.relay.start()  # ClusterError when NATS is missing: before stations are accepted
        if self.feed is not None and self.relay is not None:
            await self.feed.start(self.relay.nc)
            await self.feed.live(self._notify_cluster)
        await self.server.start(host, port)
        if self.ownership is not None:
            self.ownership.start()
        if self.singletons is not None:
            self.singletons.start()
        else:  # one node: it runs every periodic job itself
            await self.cert_check.start()
        log.info("CSMS listening on %s:%d (security profile %d)", host, self.server.port,
                 self.config.security_profile)

    @property
    def port(self) -> int:
        """The OCPP port (after start)."""
        return self.server.port

    async def add_listener(self, host: str, port: int, security_profile: int,
                           ssl: ssl_module.SSLContext | None = None) -> int:
        """Listen for stations of another security profile too (after start); the port."""
        bound = await self.server.add_listener(host, port, security_profile, ssl)
        log.info("CSMS listening on %s:%d (security profile %d)", host, bound, security_profile)
        return bound

    async def close(self) -> None:
        """Close every station connection, stop listening, finish pending writes."""
        if self.singletons is not None:
            await self.singletons.stop()  # released: another node takes them at once
        await self.cert_check.stop()
        if self.grid is not None:
            await self.grid.close()
        if self.ownership is not None:
            await self.ownership.stop()
        if self.relay is not None:
            await self.relay.close()
        await self.server.close()
        await asyncio.to_thread(self.worker.close)

    async def __aenter__(self) -> Csms:
        """Start on loopback, any free port."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        await self.close()

    def online(self, station_id: str) -> bool:
        """Whether the station has an open connection."""
        return station_id in self.server.connections

    def _state(self, station_id: str) -> StationState:
        st = self.states.get(station_id)
        if st is None:
            st = self.states[station_id] = StationState(station_id)
        return st

    async def _connected(self, conn: Connection) -> None:
        """A station connected: its state, and the OCPP version it agreed (stored, shown by the API)."""
        self._state(conn.station_id)
        version = self.worker.run(v2x_state.op_record_version, conn.station_id, conn.version.value)
        if self.ownership is not None:  # both in one batch: a reconnect storm after a node died waits one commit
            await asyncio.gather(self.ownership.claim(conn), version)
        else:
            await version

    def version_of(self, station_id: str) -> str | None:
        """The OCPP version of a station's open connection (None when it is not connected)."""
        conn = self.server.connections.get(station_id)
        return None if conn is None else conn.version.value

    def _disconnected(self, conn: Connection) -> None:
        log.info("station %s offline", conn.station_id)
        if self.ownership is not None:
            self.ownership.release(conn)

    def _notify_cluster(self, station_id: str, action: str, payload: Payload) -> None:
        _tell(self.cluster_listeners, station_id, action, payload)

    def _notify(self, station_id: str, action: str, payload: Payload) -> None:
        _tell(self.listeners, station_id, action, payload)

    # ----- handlers -----

    def _build_router(self) -> Router:
        r = Router()
        r.add("BootNotification", self.on_boot)
        r.add("Heartbeat", self.on_heartbeat)
        r.add("StatusNotification", self.on_status)
        r.add("Authorize", self.on_authorize)
        r.add("TransactionEvent", self.on_transaction_event)
        r.add("MeterValues", self.on_meter_values)
        r.add("NotifyEVChargingNeeds", self.on_charging_needs)
        r.add("NotifyEVChargingSchedule", self.on_charging_schedule)
        r.add("DataTransfer", self.on_data_transfer)
        r.add("SignCertificate", self.on_sign_certificate)
        r.add("Get15118EVCertificate", self.on_get_15118_certificate)
        r.add("GetCertificateStatus", self.on_get_certificate_status)
        r.add("NotifyReport", self.on_notify_report)
        r.add("PullDynamicScheduleUpdate", self.v2x.on_pull_dynamic)  # 2.1 only (a 2.0.1 engine refuses it)
        for action in ("NotifyEvent", "SecurityEventNotification", "ReportChargingProfiles",
                       "NotifyMonitoringReport", "NotifyCustomerInformation", "NotifyDisplayMessages",
                       "NotifyChargingLimit", "ClearedChargingLimit", "FirmwareStatusNotification",
                       "LogStatusNotification", "PublishFirmwareStatusNotification", "ReservationStatusUpdate",
                       # OCPP 2.1 only: V2X priority charging and DER control reports
                       "NotifyPriorityCharging", "NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl"):
            r.add(action, self._logged_notification(action))
        for block in (self.reservations, self.display, self.diagnostics, self.firmware):  # with state: theirs
            for action, handler in block.handlers().items():
                r.add(action, handler)
        return r

    async def on_notify_report(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyReport: logged; a meter's public key in it (FiscalMetering.PublicKey) is held for signed meter
        values unless an operator registered one."""
        sid = ctx.station_id
        for evse_id, value in v2x_state.device_model_keys(p):
            try:
                key = signed_meter.held_key(value)
            except ValueError as e:
                log.warning("station %s: FiscalMetering.PublicKey of EVSE %s is no usable key: %s", sid, evse_id, e)
                continue
            await self.worker.run(v2x_state.op_put_meter_key, sid, evse_id, key, "deviceModel")
        await self._log(sid, "rx", "NotifyReport", p)
        await self.device.record_report(sid, p)  # the device model, per variable attribute (csms/device_model.py)
        self._notify(sid, "NotifyReport", p)
        return {}

    async def on_boot(self, p: Payload, ctx: CallContext) -> Payload:
        """BootNotification: Accepted for registered stations (profile 0 may register them), Rejected otherwise;
        with `pending_until_reported`, Pending until the CSMS has read the station's device model (B02). In a boot
        storm, boots beyond the admission rate are answered Pending with the seconds to wait (csms/admission.py),
        before any database access."""
        sid = ctx.station_id
        wait = self.admission.decide(sid, self.worker.queued)
        if wait is not None:
            return {"currentTime": rfc3339(), "interval": wait, "status": "Pending",
                    "statusInfo": {"reasonCode": "Busy", "additionalInfo": "boot storm: boot again after interval"}}
        known = await self.worker.read(ops.op_station, sid) is not None  # reads do not wait behind the writes
        if not known and self.config.auto_register and self.config.security_profile == 0:
            await self.worker.run(ops.op_add_station, sid, None, 1)
            known = True
        status = "Accepted" if known else "Rejected"
        interval = self.config.heartbeat_interval if known else 60
        if known and self.config.pending_until_reported and not await self.worker.read(op_has_model, sid):
            status, interval = "Pending", self.config.pending_interval
        if known:
            await self.worker.run(ops.op_record_boot, sid, p, status)
            await self._publish(sid, "BootNotification", p)
        if status == "Pending":
            self.device.pending_boot(sid)
        elif known and self.config.reconcile_local_lists and await self.worker.read(op_has_list, sid):
            self._spawn(self.local_lists.reconcile(sid))
        self._notify(sid, "BootNotification", p)
        return {"currentTime": rfc3339(), "interval": interval, "status": status}

    async def _contract_status(self, pem_chain: str, emaid: str) -> str:
        """Chain to an installed MO root, validity, usage, eMAID; then OCSP for every certificate of the path that
        names a responder (csms/revocation.py: only `good` passes; an unreachable or refused responder soft-fails
        unless `ocsp_required`)."""
        anchors = await self.worker.read(ops.op_anchor_certificates, "MORootCertificate")
        status, path = await asyncio.to_thread(validate_contract, pem_chain, emaid, anchors)
        if status != "Accepted" or not self.config.contract_ocsp:
            return status
        return await chain_status(self.ocsp, path, required=self.config.ocsp_required)

    async def _hash_data_status(self, items: list[dict[str, str]]) -> str:
        """Revocation of a chain known only by its OCSP request data (C07.FR.05), csms/revocation.py: malformed
        hash data and unverifiable answers are never Accepted; the chain itself cannot be checked without the
        certificates."""
        if not self.config.contract_ocsp:
            return "Accepted"
        return await hash_data_status(self.ocsp, items, required=self.config.ocsp_required)

    async def on_heartbeat(self, p: Payload, ctx: CallContext) -> Payload:
        """Heartbeat: the time, and the station is marked seen."""
        await self.worker.run(ops.op_seen, ctx.station_id)
        return {"currentTime": rfc3339()}

    async def on_status(self, p: Payload, ctx: CallContext) -> Payload:
        """StatusNotification: the connector's status is stored."""
        await self.worker.run(ops.op_record_status, ctx.station_id, p["evseId"], p["connectorId"],
                              p["connectorStatus"])
        await self._publish(ctx.station_id, "StatusNotification", p)
        self._notify(ctx.station_id, "StatusNotification", p)
        return {}

    async def on_authorize(self, p: Payload, ctx: CallContext) -> Payload:
        """Authorize: the idToken's status from the registry (Unknown if not registered); a Plug & Charge contract
        (PEM `certificate`) is verified against the installed MO roots first (C07)."""
        v21 = ctx.connection.version.value == "2.1"
        own: list[str] | None = None
        if v21:  # Q01: the token's allowed energy transfer modes too
            info, own = await self.worker.read(ops.op_token_authorization, p["idToken"])
        else:
            info = await self.worker.read(ops.op_id_token_info, p["idToken"])
        answer: Payload = {"idTokenInfo": info}
        status = None
        if "certificate" in p:
            status = await self._contract_status(p["certificate"], p["idToken"]["idToken"])
        elif p.get("iso15118CertificateHashData"):
            status = await self._hash_data_status(p["iso15118CertificateHashData"])
        if status is not None:
            # C07.FR.13-17: the certificate's verdict and the token's travel together
            if status != "Accepted":
                answer["idTokenInfo"] = {"status": "Expired" if status == "CertificateExpired" else "Invalid"}
            elif info["status"] == "Unknown" and self.config.accept_valid_contracts and "certificate" in p:
                answer["idTokenInfo"] = {"status": "Accepted"}
                # registered, so that the transaction's TransactionEvents get the same answer (else the station
                # would deauthorize the EV at its first TransactionEvent with this idToken)
                await self.worker.run(ops.op_put_id_token, p["idToken"]["idToken"], "eMAID", "Accepted", None,
                                      f"contract-validated-at-{ctx.station_id}")
            elif info["status"] in ("Blocked", "Expired", "Invalid", "Unknown"):
                status = "ContractCancelled"  # a valid certificate for a contract the MO no longer honours
            answer["certificateStatus"] = status
        if v21:
            self.v2x.authorize_answer(ctx.station_id, p["idToken"], answer, own)
        self._notify(ctx.station_id, "Authorize", p)
        await self._log(ctx.station_id, "rx", "Authorize", p, answer)
        return answer

    async def on_transaction_event(self, p: Payload, ctx: CallContext) -> Payload:
        """TransactionEvent: recorded exactly once (a replay is acknowledged again, not stored twice)."""
        sid = ctx.station_id
        stored, info = await self.worker.run(ops.op_record_event_and_authorize, sid, p, ctx.connection.version.value)
        tx_id = p["transactionInfo"]["transactionId"]
        state = self._state(sid)
        evse = (p.get("evse") or {}).get("id")
        if p["eventType"] == "Ended":
            for k in [k for k, v in state.active.items() if v == tx_id]:
                self.needs.forget(sid, k)
            state.active = {k: v for k, v in state.active.items() if v != tx_id}
        elif evse is not None:
            state.active[evse] = tx_id
            self.needs.transaction_seen(sid, evse, tx_id)
        custom = p.get("customData") or {}
        if custom.get("vendorId") == ISO_FACTS_VENDOR and custom.get("sessionId"):
            state.session_ids[tx_id] = str(custom["sessionId"]).upper()
        if not stored:
            log.info("station %s replayed TransactionEvent %s seqNo %s: already recorded", sid, tx_id, p["seqNo"])
        await self.reservations.on_transaction_event(sid, p)
        if "idToken" in p and ctx.connection.version.value == "2.1":
            await self.v2x.transaction_authorized(sid, tx_id, p["idToken"])
        answer: Payload = {} if info is None else {"idTokenInfo": info}
        answer.update(await self.tariffs.on_transaction_event(sid, p, _event_time(p)))
        await self._publish(sid, "TransactionEvent", p)  # stored or a replay: the stream drops a duplicate
        self._notify(sid, "TransactionEvent", p)
        return answer

    async def on_meter_values(self, p: Payload, ctx: CallContext) -> Payload:
        """MeterValues (outside a transaction): every sampled value is stored."""
        await self.worker.run(ops.op_record_meter_values, ctx.station_id, p)
        return {}

    async def on_charging_needs(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyEVChargingNeeds: kept with the EVSE's transaction (the ISO 15118 facts; 2.1: the V2X parameters,
        energy offer, control and mobility-needs modes, available energy transfer) and in the message log, and
        answered as K15-K17 ask (csms/ev_needs.py): Accepted only when a TxProfile follows."""
        sid = ctx.station_id
        tx_id = self._state(sid).active.get(p["evseId"])
        row = await self.worker.run(v2x_state.op_record_charging_needs, sid, tx_id, p)
        if tx_id is not None:
            await self.worker.run(ops.op_link_iso15118, sid, tx_id, {"chargingNeeds": p["chargingNeeds"]})
        answer = self.needs.answer(sid, p["evseId"], tx_id, p["chargingNeeds"], row)
        await self.worker.run(v2x_state.op_needs_status, row, answer["status"])
        await self._log(sid, "rx", "NotifyEVChargingNeeds", p, answer, tx_id)
        await self._publish(sid, "NotifyEVChargingNeeds", p)
        self._notify(sid, "NotifyEVChargingNeeds", p)
        if answer["status"] == "Accepted" and tx_id is not None:
            self.needs.follow(sid, p["evseId"], tx_id, p["chargingNeeds"], row)
        return answer

    async def on_charging_schedule(self, p: Payload, ctx: CallContext) -> Payload:
        """NotifyEVChargingSchedule: the schedule the EV chose, logged with the EVSE's transaction; Rejected when it
        is above the TxProfile the CSMS sent for the EV's needs (K17)."""
        sid = ctx.station_id
        tx_id = self._state(sid).active.get(p["evseId"])
        answer = self.needs.check_schedule(sid, p)
        await self._log(sid, "rx", "NotifyEVChargingSchedule", p, answer, tx_id)
        self._notify(sid, "NotifyEVChargingSchedule", p)
        return answer

    async def on_data_transfer(self, p: Payload, ctx: CallContext) -> Payload:
        """DataTransfer: ISO 15118 message mirrors (csms/mirror.py: `EXI::<base64>`, plain or gzip, checked against
        vendorId and messageId) are decoded into the log; a bad one is Rejected with a reason; others are unknown."""
        sid = ctx.station_id
        if not is_mirror_vendor(p["vendorId"]):
            return {"status": "UnknownVendorId"}
        try:
            mirror = parse_mirror(p["vendorId"], p.get("messageId"), p.get("data"))
        except MirrorRejected as e:
            log.warning("station %s: ISO 15118 mirror %s/%s rejected (SessionID %s): %s", sid, p["vendorId"],
                        p.get("messageId"), e.session_id or "-", e.info)
            return {"status": "Rejected", "statusInfo": e.status_info()}
        log.info("station %s: ISO 15118 mirror %s:%s SessionID %s%s", sid, mirror.namespace, mirror.message,
                 mirror.session_id or "-", " (gzip)" if mirror.compression else "")
        tx_id = None
        if mirror.session_id:
            for t, sess in self._state(sid).session_ids.items():
                if sess == mirror.session_id:
                    tx_id = t
        await self._log(sid, "rx", "DataTransfer",
                        {**p, "decoded": {"namespace": mirror.namespace, "messageId": mirror.message,
                                          "json": mirror.doc, "exi": mirror.exi.hex().upper(),
                                          "compression": mirror.compression}}, None, tx_id, mirror.session_id)
        return {"status": "Accepted"}

    async def on_sign_certificate(self, p: Payload, ctx: CallContext) -> Payload:
        """SignCertificate: check the CSR, answer, then send CertificateSigned with the new chain (A02/A03)."""
        sid = ctx.station_id
        kind = p.get("certificateType", "ChargingStationCertificate")
        try:
            chain = await self.sign_csr(sid, p["csr"], kind)
        except CsrError as e:
            await self._log(sid, "rx", "SignCertificate", p, {"status": "Rejected", "reason": str(e)})
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": str(e)[:512]}}
        await self._log(sid, "rx", "SignCertificate", p, {"status": "Accepted"})
        self.send_after_answer(sid, f"CertificateSigned {kind}", lambda: self.call(
            sid, "CertificateSigned", {"certificateChain": chain, "certificateType": kind}))
        return {"status": "Accepted"}

    async def sign_csr(self, station_id: str, csr: str, kind: str) -> str:
        """The PEM chain for a station's CSR (SignCertificate of 2.x, of the 1.6 whitepaper and of the Plug & Charge
        note); CsrError when the CSR is refused or this CSMS signs nothing (reason NoCA)."""
        if self.issuer is None:
            raise CsrError("NoCA", "this CSMS signs no certificates")
        try:
            signed = await asyncio.to_thread(self.issuer.sign, station_id, csr, kind)
        except CsrError as e:
            log.warning("station %s: SignCertificate (%s) rejected: %s", station_id, kind, e)
            raise
        return chain_pem(signed)

    async def on_get_15118_certificate(self, p: Payload, ctx: CallContext) -> Payload:
        """Get15118EVCertificate (M01): the EV's EXI CertificateInstallationReq is checked (signature, OEM chain),
        a contract is issued under the MO Sub-CA and the signed EXI response returned; the new eMAID is registered."""
        sid = ctx.station_id
        if p["iso15118SchemaVersion"] == SCHEMA20:
            return await self._get_certificate20(p, sid)
        if "urn:iso:15118:2" not in p["iso15118SchemaVersion"]:
            return {"status": "Failed", "exiResponse": "", "statusInfo": {
                "reasonCode": "NotSupported", "additionalInfo": "ISO 15118-2 and -20 (CommonMessages) only"}}
        update = p["action"] == "Update"
        step = Step.CERTIFICATE_UPDATE if update else Step.CERTIFICATE_INSTALLATION
        try:
            request = exi.decode("iso2", base64.b64decode(p["exiRequest"], validate=True))
        except Exception as e:
            return {"status": "Failed", "exiResponse": "", "statusInfo": {"reasonCode": "InvalidExi",
                                                                          "additionalInfo": str(e)[:512]}}
        session_id = request.get("V2G_Message", {}).get("Header", {}).get("SessionID", "00")
        if self.contract_service is None:
            code, emaid, doc = "FAILED_NoCertificateAvailable", None, None
        else:
            try:
                answer = answer_update if update else answer_installation
                doc, emaid = await asyncio.to_thread(answer, self.contract_service, request)
                code = "OK"
            except InstallationError as e:
                code, emaid, doc = e.code, None, None
            except KeyError as e:
                code, emaid, doc = "FAILED", None, None
                log.warning("station %s: CertificateInstallationReq without %s", sid, e)
        if doc is None:
            msgs = for_protocol("iso2")
            doc = msgs.response(session_id, step, msgs.failed_res(step, code, False))
        else:
            await self.worker.run(ops.op_put_id_token, emaid, "eMAID", "Accepted", None, f"installed-at-{sid}")
        answer: Payload = {"status": "Accepted" if code == "OK" else "Failed",
                           "exiResponse": base64.b64encode(exi.encode("iso2", doc)).decode()}
        if code != "OK":
            answer["statusInfo"] = {"reasonCode": code[:20], "additionalInfo": code}
        await self._log(sid, "rx", "Get15118EVCertificate", p, {"status": answer["status"], "code": code,
                                                                "eMAID": emaid}, session_id=session_id)
        return answer

    async def _get_certificate20(self, p: Payload, sid: str) -> Payload:
        """Get15118EVCertificate of a -20 EV (installation only: -20 has no CertificateUpdate): a contract from the
        -20 PKI's eMSP, its eMAID registered."""
        if p["action"] != "Install":
            return {"status": "Failed", "exiResponse": "", "statusInfo": {
                "reasonCode": "NotSupported", "additionalInfo": "ISO 15118-20 has no certificate update"}}
        try:
            answer = await asyncio.to_thread(answer_get_certificate20, self.contract_service20, p["exiRequest"])
        except Exception as e:  # not a -20 document at all
            return {"status": "Failed", "exiResponse": "", "statusInfo": {"reasonCode": "InvalidExi",
                                                                          "additionalInfo": str(e)[:512]}}
        emaid = answer.emaid
        if emaid is not None:
            await self.worker.run(ops.op_put_id_token, emaid, "eMAID", "Accepted", None, f"installed-at-{sid}")
        result: Payload = {"status": "Accepted" if answer.code == "OK" else "Failed",
                           "exiResponse": answer.exi_response}
        if answer.code != "OK":
            result["statusInfo"] = {"reasonCode": answer.code[:20], "additionalInfo": answer.code}
        await self._log(sid, "rx", "Get15118EVCertificate", p, {"status": result["status"], "code": answer.code,
                                                                "eMAID": emaid}, session_id=answer.session_id)
        return result

    async def on_get_certificate_status(self, p: Payload, ctx: CallContext) -> Payload:
        """GetCertificateStatus (M06): the CSMS asks the responder named in the request data and returns its DER
        answer (base64) for the station to keep (and staple for EVs). Within the OCSP fetch policy and through the
        cache; what went wrong stays in our log (the station learns nothing about the responder's network)."""
        data = p["ocspRequestData"]
        try:
            raw = await self.ocsp.answer_for(data)
        except OcspRefused as e:
            log.warning("station %s: GetCertificateStatus: %s", ctx.station_id, e)
            return {"status": "Failed", "statusInfo": {"reasonCode": "OCSPUnavailable",
                                                       "additionalInfo": "responderURL not allowed by the CSMS"}}
        except (OcspError, ValueError, KeyError) as e:
            log.warning("station %s: GetCertificateStatus failed: %s", ctx.station_id, e)
            return {"status": "Failed", "statusInfo": {"reasonCode": "OCSPUnavailable",
                                                       "additionalInfo": "no usable answer from the OCSP responder"}}
        return {"status": "Accepted", "ocspResult": base64.b64encode(raw).decode()}

    def send_after_answer(self, station_id: str, what: str, send: Callable[[], Awaitable[Payload]]) -> None:
        """Send a command right after the answer being written goes out (CertificateSigned after SignCertificate);
        its outcome is logged, a station gone meanwhile only warned about."""

        async def later() -> None:
            await asyncio.sleep(0.01)  # let the answer go out first
            try:
                answer = await send()
                log.info("station %s: %s -> %s", station_id, what, answer.get("status"))
            except CommandError as e:
                log.warning("station %s: %s not delivered: %s", station_id, what, e)

        self._spawn(later())

    async def _publish(self, station_id: str, action: str, p: Payload) -> None:
        """In a cluster: the event on the stream (csms/events.py) before the station's answer; a failure fails the
        message (the station sends it again)."""
        if self.feed is not None:
            await self.feed.publish(station_id, action, p)

    async def _publish_certificate(self, finding: Finding) -> None:
        """A certificate expiry finding on the stream, once per certificate and day."""
        if self.feed is not None:
            day = datetime.now(UTC).date().isoformat()
            await self.feed.publish(finding["fingerprint"], "CertificateExpiry", finding,
                                    f"cert|{finding['fingerprint']}|{day}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _logged_notification(self, action: str) -> Callable[[Payload, CallContext], Any]:
        async def handler(p: Payload, ctx: CallContext) -> Payload:
            await self._log(ctx.station_id, "rx", action, p)
            self._notify(ctx.station_id, action, p)
            return {}

        handler.__name__ = f"on_{action}"
        return handler

    async def _log(self, station_id: str, direction: str, action: str, payload: Payload,
                   response: Payload | None = None, transaction_id: str | None = None,
                   session_id: str | None = None) -> None:
        entry = self.log_entry(station_id, direction, action, payload, response, transaction_id, session_id)
        if entry is not None:
            await self.worker.run(ops.op_log_message, *entry)

    def log_entry(self, station_id: str, direction: str, action: str, payload: Payload,
                  response: Payload | None = None, transaction_id: str | None = None,
                  session_id: str | None = None) -> tuple[Any, ...] | None:
        """The arguments of `op_log_message` for one exchanged message (None: messages are not logged), for an
        operation that writes it in the same store operation as its own rows."""
        if not self.config.log_session_messages:
            return None
        if session_id is None and transaction_id is not None:
            session_id = self._state(station_id).session_ids.get(transaction_id)
        return (station_id, direction, action, payload, response, transaction_id, session_id)

    # ----- CSMS-initiated messages -----

    async def call(self, station_id: str, action: str, payload: Payload, *, timeout: float | None = None) -> Payload:
        """Send a CALL to a connected station and return its answer; CommandError if that is impossible.

        In a cluster (node_id and nats_url), a station connected to another node is reached through that node."""
        if self.relay is not None and station_id not in self.server.connections:
            owner = await self.worker.read(op_station_owner, station_id)
            if owner is not None and owner[0] != self.config.node_id:
                wait = timeout or self.config.command_timeout
                try:
                    return await self.relay.forward(owner[0], station_id, action, payload, wait + 2.0)
                except RelayError as e:
                    raise CommandError(e.status, str(e), e.details) from None
        return await self._call_local(station_id, action, payload, timeout=timeout)

    async def _call_local(self, station_id: str, action: str, payload: Payload, *,
                          timeout: float | None = None) -> Payload:
        """Send a CALL to a station connected to this node."""
        conn = self.server.connections.get(station_id)
        if conn is None:
            raise CommandError(409, f"station {station_id} is not connected")
        try:
            conn.engine.validate_request(action, payload)
        except PayloadInvalid as e:
            raise CommandError(422, f"invalid {action} request: {e.description}", {"code": e.code.value}) from e
        try:
            answer = await conn.call(action, payload, timeout=timeout or self.config.command_timeout, validated=True)
        except PayloadInvalid as e:
            raise CommandError(502, f"the station's answer to {action} is invalid: {e.description}") from e
        except CallErrorReceived as e:
            raise CommandError(502, f"station answered {action} with CALLERROR {e.wire_code}: {e.description}",
                               {"code": e.wire_code, "description": e.description, "details": e.details}) from e
        except CallTimeoutError as e:
            raise CommandError(504, f"no answer to {action} from {station_id}") from e
        except ConnectionClosedError as e:
            raise CommandError(409, f"station {station_id} disconnected during {action}") from e
        tx_id = _transaction_of(action, payload)
        if tx_id is not None or action in ("RequestStartTransaction", "SetChargingProfile", "ClearChargingProfile",
                                           "CertificateSigned", "AFRRSignal"):
            await self._log(station_id, "tx", action, payload, answer, tx_id)
        return answer

    async def request_start(self, station_id: str, id_token: Payload, *, evse_id: int | None = None,
                            remote_start_id: int | None = None, profile: Payload | None = None) -> Payload:
        """RequestStartTransaction."""
        p: Payload = {"idToken": id_token,
                      "remoteStartId": remote_start_id if remote_start_id is not None else _remote_start_id()}
        if evse_id is not None:
            p["evseId"] = evse_id
        if profile is not None:
            p["chargingProfile"] = profile
        return await self.call(station_id, "RequestStartTransaction", p)

    async def request_stop(self, station_id: str, transaction_id: str) -> Payload:
        """RequestStopTransaction."""
        return await self.call(station_id, "RequestStopTransaction", {"transactionId": transaction_id})

    def active_transaction(self, station_id: str, evse_id: int) -> str | None:
        """The transactionId running on an EVSE, as the station reported it."""
        return self._state(station_id).active.get(evse_id)


def validate_contract(pem_chain: str, emaid: str, anchors: list[Any]) -> tuple[str, list[Any]]:
    """(AuthorizeCertificateStatus, verified path leaf first) of a contract chain (PEM, leaf first): chain to an MO
    root, validity, usage, and the eMAID as the leaf's CN (separators and case aside)."""
    try:
        certs = x509.load_pem_x509_certificates(pem_chain.encode())
    except ValueError:
        return "CertChainError", []
    if not certs:
        return "NoCertificateAvailable", []
    cn = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or str(cn[0].value).replace("-", "").upper() != emaid.replace("-", "").upper():
        return "CertChainError", []
    try:
        verified = verify_chain(certs[0], certs[1:], anchors, purpose=Purpose.CONTRACT)
    except pki_errors.PkiError as e:
        return e.ocpp_status, []
    return "Accepted", list(verified.path)


def _event_time(p: Payload) -> datetime:
    """A TransactionEvent's timestamp."""
    return parse_rfc3339(p["timestamp"])


def _remote_start_id() -> int:
    return uuid.uuid4().int % 2**31


def _transaction_of(action: str, payload: Payload) -> str | None:
    if "transactionId" in payload:
        return str(payload["transactionId"])
    profile = payload.get("chargingProfile") or payload.get("csChargingProfiles") or {}  # 2.x, 1.6
    tx_id = profile.get("transactionId")
    return None if tx_id is None else str(tx_id)


def _tell(listeners: list[Callable[[str, str, Payload], None]], station_id: str, action: str,
          payload: Payload) -> None:
    """Call each listener; one that fails is logged and the others still hear it."""
    for listener in listeners:
        try:
            listener(station_id, action, payload)
        except Exception:
            log.exception("CSMS listener failed")


def _command_error_of(e: Exception) -> tuple[int, str, dict[str, Any]] | None:
    """A CommandError as the cluster relays it (status, message, details); None for anything else."""
    return (e.status, str(e), e.details) if isinstance(e, CommandError) else None
