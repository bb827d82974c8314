"""`CsmsSettings`: everything the CSMS server is configured with, as one typed tree read from a TOML file
(`v2gstack csms --config csms.toml`) and overridden by flags. `csms/assemble.py` turns it into the running parts
(CsmsConfig, the OCPP TLS context, the API options).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..ocpp.flood import FloodPolicy
from ..ocpp.throttle import ThrottlePolicy
from ..ocpp.v2x import EnergyTransferMode
from ..pki.fetch_policy import FetchPolicy
from ..settings_file import Loaded, load, mask_url_password, setting

KeyProblem = tuple[tuple[str | int, ...], str]
DEFAULT_DB_URL = "sqlite:///v2gstack-csms.db"  # as store.DEFAULT_URL (not imported: no SQLAlchemy to read settings)
DEFAULT_MAX_BODY = 1024 * 1024  # as guard.DEFAULT_MAX_BODY (not imported: no starlette to read settings)
_THROTTLE, _FLOOD = ThrottlePolicy(), FloodPolicy()  # their defaults are ours


@dataclass
class OcppTls:
    """The TLS files of security profiles 2 and 3."""

    cert: str | None = setting(None, path=True, flag="--cert")  # server certificate chain, PEM
    key: str | None = setting(None, path=True, flag="--key")  # its private key, PEM
    # the second server certificate, RSA, for the TLS_RSA AES-GCM suites (A00.FR.318; `cert` is then the ECDSA one)
    rsa_cert: str | None = setting(None, path=True, flag="--rsa-cert")
    rsa_key: str | None = setting(None, path=True, flag="--rsa-key")
    client_ca: str | None = setting(None, path=True, flag="--client-ca")  # profile 3: the CA of station certificates


@dataclass
class MoreListener:
    """One more OCPP listener of the same CSMS with its own security profile (the TLS files of `[ocpp.tls]`):
    profile 1, 2 and 3 stations served by one process, each station held to its stored profile (A00/A05)."""

    host: str = "127.0.0.1"
    port: int = setting(9001, min=0, max=65535)
    security_profile: int = setting(2, min=1, max=3)


@dataclass
class OcppListener:
    """Where stations connect and how they are authenticated."""

    host: str = setting("127.0.0.1", flag="--host")
    port: int = setting(9000, min=0, max=65535, flag="--port")  # ws(s)://host:port/ocpp/<stationId>
    security_profile: int = setting(1, min=0, max=3, flag="--security-profile")  # 0: none (development only)
    heartbeat_interval: int = setting(300, min=1, flag="--heartbeat-interval")  # given at boot, s
    auto_register: bool = setting(False, flag="--auto-register")  # profile 0: accept unknown stations at boot
    call_timeout: float = setting(30.0, min=0.1)  # how long a CALL to a station may wait for its answer, s
    command_timeout: float = setting(30.0, min=0.1)  # the same for API commands, s
    ping_interval: float = setting(60.0, min=0)  # websocket pings, s (0: none)
    versions: list[Literal["2.1", "2.0.1", "1.6"]] = setting(default_factory=lambda: ["2.1", "2.0.1", "1.6"],
                                                            flag="--ocpp-versions")  # offered, most preferred first
    log_messages: bool = True  # keep every OCPP message in the database's message log
    tls: OcppTls = field(default_factory=OcppTls)
    listeners: list[MoreListener] = setting(default_factory=list)  # [[ocpp.listeners]]: other security profiles

    def check(self) -> Iterator[KeyProblem]:
        """At least one OCPP version; profiles 2 and 3 need the server certificate, profile 3 the station CA."""
        if not self.versions or len(set(self.versions)) != len(self.versions):
            yield ("versions",), "one or more OCPP versions, each once: 2.1, 2.0.1 and/or 1.6"
        if self.security_profile >= 2 and not self.tls.cert:
            yield ("tls", "cert"), f"security profile {self.security_profile} needs a server certificate (--cert, " \
                                   "and --key)"
        if self.tls.rsa_cert and not self.tls.cert:
            yield ("tls", "rsa_cert"), "the RSA server certificate goes beside an ECDSA one (--cert, and --key)"
        if self.security_profile == 3 and not self.tls.client_ca:
            yield ("tls", "client_ca"), "security profile 3 needs the CA of the station certificates (--client-ca)"
        for n, more in enumerate(self.listeners):
            if more.security_profile >= 2 and not self.tls.cert:
                yield ("listeners", n, "security_profile"), f"a profile {more.security_profile} listener needs " \
                                                            "the server certificate of [ocpp.tls]"
            if more.security_profile == 3 and not self.tls.client_ca:
                yield ("listeners", n, "security_profile"), "a profile 3 listener needs [ocpp.tls] client_ca"


@dataclass
class Database:
    """Where the CSMS stores stations, tokens, transactions and the audit log."""

    url: str = setting(DEFAULT_DB_URL, mask=mask_url_password, flag="--db")  # sqlite:///FILE or postgresql://...


@dataclass
class Cluster:
    """Several CSMS nodes on one PostgreSQL database and NATS (docs/scale-out.md); empty: a single node."""

    node_id: str | None = setting(None, flag="--node-id")  # this node's name: it keeps owner records of its stations
    owner_lease: float = setting(15.0, min=1.0)  # s an owner record holds without renewal (renewed every third)
    nats_url: str | None = setting(None, flag="--nats")  # nats://host:4222: commands reach other nodes' stations
    subject_prefix: str = setting("v2g")  # the NATS subjects <prefix>.cmd.<node>, <prefix>.evt.> and their stream
    singleton_lease: float = setting(10.0, min=1.0)  # s a singleton's lease (grid scheduler, certificate check) holds


@dataclass
class Api:
    """The REST API and dashboard (HTTPS with tls_cert/tls_key; else plain HTTP, for loopback or behind a TLS
    terminator)."""

    host: str = setting("127.0.0.1", flag="--api-host")
    port: int = setting(8080, min=0, max=65535, flag="--api-port")  # 0: no API
    allowed_hosts: list[str] = setting(default_factory=list, flag="--api-allowed-hosts")  # Host names besides loopback
    max_body: int = setting(DEFAULT_MAX_BODY, min=1024, flag="--api-max-body")  # bytes; larger: 413
    tls_cert: str | None = setting(None, path=True, flag="--api-cert")  # serve HTTPS with this chain, PEM
    tls_key: str | None = setting(None, path=True, flag="--api-key")  # its private key, PEM
    metrics_token: str | None = setting(None, secret=True)  # a secret that opens GET /metrics alone (Bearer)

    def check(self) -> Iterator[KeyProblem]:
        """A certificate and its key come together."""
        if bool(self.tls_cert) != bool(self.tls_key):
            yield ("tls_cert" if not self.tls_cert else "tls_key",), "HTTPS needs both --api-cert and --api-key"


@dataclass
class Pki:
    """The CAs that sign stations' certificate requests and issue contracts."""

    dir: str | None = setting(None, path=True, flag="--pki-dir")  # a `v2gstack pki create` folder
    dir20: str | None = setting(None, path=True, flag="--pki20-dir")  # `pki create --profile iso20`: -20 contracts
    ocsp_url: str | None = setting(None, flag="--ocsp-url")  # written into the certificates it issues


@dataclass
class Contracts:
    """How Plug & Charge contracts are authorized."""

    accept_valid_contracts: bool = True  # a valid contract of a trusted MO is Accepted even if its eMAID is unlisted
    check_ocsp: bool = True  # ask the OCSP responders named in a contract chain
    # an unreachable (or policy-refused) responder fails the contract; false: soft-fail, logged. Malformed hash data
    # and answers that fail verification are never Accepted either way.
    ocsp_required: bool = setting(False, flag="--ocsp-required")


@dataclass
class SmartCharging:
    """ISO 15118 smart charging (K15-K17): the TxProfile the CSMS computes from an EV's charging needs."""

    needs_profiles: bool = True  # false: NotifyEVChargingNeeds is answered Rejected/NoChargingProfile
    max_power_w: float = setting(0.0, min=0)  # the per-EVSE limit those profiles keep within, W (0: the EV's maximum)


@dataclass
class V2x:
    """OCPP 2.1 V2X (docs/v2x.md)."""

    # Q01: what an AuthorizeResponse allows an accepted idToken without modes of its own (add-idtoken
    # --allowed-energy-transfer, the API's allowedEnergyTransfer); empty: the field is left out, which 2.1 defines as
    # charging only. E.g. ["AC_three_phase", "AC_BPT", "DC", "DC_BPT"] lets every contract discharge.
    allowed_energy_transfer: list[EnergyTransferMode] = setting(default_factory=list)


@dataclass
class Provisioning:
    """B02/B03: a new station is Pending until the CSMS has read its device model; local lists after a boot (D02)."""

    pending_until_reported: bool = False  # Pending at boot until GetBaseReport's NotifyReports are in
    pending_interval: int = setting(10, min=1)  # s: the interval of a Pending answer
    reconcile_local_lists: bool = True  # GetLocalListVersion after each boot; a Full update when it differs


@dataclass
class Admission:
    """Boot storms (csms/admission.py): boots beyond `boot_rate` per second are answered Pending with the seconds to
    wait (B02); handshakes beyond the connection or handshake limit are answered 503 with a Retry-After."""

    boot_rate: float = setting(0.0, min=0)  # accepted BootNotifications per second (0: any)
    boot_burst: int = setting(50, min=1)  # accepted at once before the rate applies
    max_backlog: int = setting(0, min=0)  # queued database operations beyond which boots wait (0: no check)
    max_connections: int = setting(0, min=0)  # station sockets (0: the fd limit - 256)
    max_handshakes: int = setting(0, min=0)  # handshakes in progress at once (0: any)
    busy_retry_after: float = setting(10.0, min=1.0)  # s, about: the Retry-After of a 503


@dataclass
class Files:
    """What stations download from and upload to the CSMS's API: firmware files, log uploads."""

    firmware_dir: str | None = setting(None, path=True)  # served at /firmware/<name>
    max_upload: int = setting(16 * 1024 * 1024, min=1024)  # bytes: the largest log a station may upload


@dataclass
class Ocsp:
    """Which OCSP responders stations may make the CSMS ask, and how (pki/fetch_policy.py)."""

    allow: list[str] = setting(default_factory=list, flag="--ocsp-allow")  # HOST, HOST:PORT or CIDR
    allow_private: bool = setting(False, flag="--ocsp-allow-private")  # loopback/private/link-local as well
    allow_only: bool = setting(False, flag="--ocsp-allow-only")  # none but those of `allow`
    timeout: float = setting(3.0, min=0.1)  # s
    max_response: int = setting(65536, min=1024)  # bytes
    cache_size: int = setting(1024, min=0)  # checked answers kept until their nextUpdate (0: no cache)
    cache_max_age: float = setting(3600.0, min=0)  # s

    def check(self) -> Iterator[KeyProblem]:
        """Each allow entry is a host, host:port or CIDR."""
        try:
            FetchPolicy(allow=tuple(self.allow))
        except ValueError as e:
            yield ("allow",), str(e)


@dataclass
class AuthThrottle:
    """Password guessing at the OCPP handshake: back-off per source and station, a verification budget."""

    free_failures: int = setting(_THROTTLE.free_failures, min=1)  # failures of a source before it waits
    station_free_failures: int = setting(_THROTTLE.station_free_failures, min=1)  # against one station
    base_delay: float = setting(_THROTTLE.base_delay, min=0)  # the first wait, doubled per failure, s
    max_delay: float = setting(_THROTTLE.max_delay, min=0)  # s
    forget_after: float = setting(_THROTTLE.forget_after, min=0)  # a record without failure is dropped, s
    max_entries: int = setting(_THROTTLE.max_entries, min=1)  # records per table
    verify_rate: float = setting(_THROTTLE.verify_rate, min=0.001)  # password checks per second
    verify_burst: int = setting(_THROTTLE.verify_burst, min=1)


@dataclass
class Flood:
    """Stations that cause protocol errors: when they are disconnected, how often a kind of warning is logged."""

    max_protocol_errors: int = setting(_FLOOD.max_violations, min=0, flag="--max-protocol-errors")  # 0: never
    window: float = setting(_FLOOD.violation_window, min=1)  # s
    log_burst: int = setting(_FLOOD.log_burst, min=0)  # lines of one kind per interval (0: no limit)
    log_interval: float = setting(_FLOOD.log_interval, min=1)  # s


@dataclass
class OpenAdr:
    """The OpenADR 2.0b VEN (needs the `grid` extra: openleadr)."""

    vtn_url: str | None = setting(None, flag="--openadr-vtn")  # e.g. http://vtn:8080/OpenADR2/Simple/2.0b
    ven_name: str = "v2gstack-csms"
    site_import_w: float | None = setting(None, min=0)  # the site's import capacity: SIMPLE levels scale it
    telemetry_s: float = setting(10.0, min=0.1)  # sampling rate offered for TELEMETRY_USAGE, s


@dataclass
class Grid:
    """Grid signals and the scheduler (csms/grid_control.py, docs/grid.md)."""

    enabled: bool = setting(False, flag="--grid")  # run the grid control (signals API, planning)
    dispatch: bool = setting(False, flag="--grid-dispatch")  # send the plan to stations as charging profiles
    site_id: str = "site"  # the id signals name the whole site by
    groups: list[str] = setting(default_factory=list)  # "name=CS1,CS2": station groups signals may target
    step_s: float = setting(900.0, min=1)  # the scheduler's time step, s
    horizon_steps: int = setting(96, min=1, max=2000)
    time_budget_s: float = setting(2.0, min=0)  # the LP's budget; then the heuristic answers (0: heuristic first)
    improve_budget_s: float = setting(60.0, min=0)  # then the LP goes on in the background this long, s
    solver_process: bool = True  # solve in worker processes (the event loop keeps serving stations)
    resolve_s: float = setting(60.0, min=1)  # re-plan at least this often, s
    stack_level: int = setting(1, min=0)
    max_periods: int = setting(24, min=1, max=1024)  # periods per profile (stations' PeriodsPerSchedule)
    signals_file: str | None = setting(None, path=True, flag="--grid-signals")  # signals applied at start
    openadr: OpenAdr = field(default_factory=OpenAdr)

    def check(self) -> Iterator[KeyProblem]:
        """Each group reads name=STATION[,STATION...]."""
        for n, g in enumerate(self.groups):
            name, _, members = g.partition("=")
            if not name.strip() or not [m for m in members.split(",") if m.strip()]:
                yield ("groups", n), f"a group reads name=CS1,CS2, not {g!r}"


@dataclass
class CsmsSettings:
    """The CSMS's settings tree (the TOML file's tables)."""

    ocpp: OcppListener = field(default_factory=OcppListener)
    database: Database = field(default_factory=Database)
    cluster: Cluster = field(default_factory=Cluster)
    api: Api = field(default_factory=Api)
    pki: Pki = field(default_factory=Pki)
    contracts: Contracts = field(default_factory=Contracts)
    smart_charging: SmartCharging = field(default_factory=SmartCharging)
    v2x: V2x = field(default_factory=V2x)
    provisioning: Provisioning = field(default_factory=Provisioning)
    admission: Admission = field(default_factory=Admission)
    files: Files = field(default_factory=Files)
    ocsp: Ocsp = field(default_factory=Ocsp)
    auth_throttle: AuthThrottle = field(default_factory=AuthThrottle)
    flood: Flood = field(default_factory=Flood)
    grid: Grid = field(default_factory=Grid)


def load_csms_settings(file: str | None = None) -> Loaded[CsmsSettings]:
    """The CSMS settings in a TOML file (or the defaults); SettingsError names the file and the key."""
    return load(CsmsSettings, file)
