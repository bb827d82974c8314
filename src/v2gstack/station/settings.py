"""`StationSettings`: everything a charging station is configured with, as one typed tree read from a TOML file
(`v2gstack station --config station.toml`) and overridden by flags. `station/assemble.py` turns it into the running
parts (StationConfig, the bridges' configs, the SECCs, the device-model values) in one place.

Values that map onto the OCPP device model (free charging, Plug & Charge, the meter interval, the ISO message
mirror, ...) are optional: unset, the station keeps its device model's value (the standard default, or what a CSMS
set and the state folder kept); set, the value is applied at every start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..iso15118.apphand import FAMILIES, PROTOCOLS
from ..settings_file import Loaded, load, setting

KeyProblem = tuple[tuple[str | int, ...], str]
ID_TOKEN_TYPES = Literal["Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress"]
ENERGY_MODES = Literal["AC_single_phase_core", "AC_three_phase_core", "DC_core", "DC_extended", "DC_combo_core",
                       "DC_unique"]
SUPPORTED_OCPP = ("2.1", "2.0.1", "1.6")


@dataclass
class Identity:
    """Who the station is: its OCPP identity and what BootNotification reports."""

    id: str = setting("", flag="--id")  # the charging station identity (also the Basic auth user name)
    model: str = "v2gstack-sim"
    vendor: str = "v2gstack"
    serial_number: str | None = None
    firmware_version: str = "0.1.0"
    organization_name: str | None = None  # SecurityCtrlr.OrganizationName: the O of the station's certificate

    def check(self) -> Iterator[KeyProblem]:
        """The identity is required: OCPP puts it in the URL and the certificate."""
        if not self.id:
            yield ("id",), "the station needs an identity (--id, or id in [station])"
        elif len(self.id) > 48 or not all(c.isascii() and (c.isalnum() or c in "*-_=:+|@.") for c in self.id):
            yield ("id",), "an identifierString: up to 48 of a-z A-Z 0-9 *-_=:+|@. (it is part of the URL)"


@dataclass
class CsmsLink:
    """Where the CSMS is and how the station proves who it is (OCPP security profiles 1-3)."""

    url: str = setting("", flag="--csms")  # ws://host:port/path or wss://...; the station id is appended
    # more CSMS addresses (other nodes): NetworkConnectionProfiles 1, 2, ... tried in turn when one stops answering
    fallback_urls: list[str] = setting(default_factory=list)
    ocpp_versions: list[str] = setting(default_factory=lambda: ["2.1", "2.0.1"],
                                       flag="--ocpp-versions")  # offered, most preferred first
    password: str | None = setting(None, secret=True, flag="--password")  # Basic auth (profiles 1 and 2)
    ca: str | None = setting(None, path=True)  # wss://: the CSMS root certificate(s), PEM (else the system's)
    client_cert: str | None = setting(None, path=True)  # wss:// profile 3: the station certificate chain, PEM
    client_key: str | None = setting(None, path=True)  # its private key, PEM
    ping_interval: float = setting(60.0, min=0)  # websocket pings, s (0: none)

    def check(self) -> Iterator[KeyProblem]:
        """A ws/wss URL; TLS files only with wss; a supported OCPP version."""
        if not self.url:
            yield ("url",), "the station needs the CSMS endpoint (--csms, or url in [csms])"
        elif not self.url.startswith(("ws://", "wss://")):
            yield ("url",), "expected a ws:// or wss:// URL"
        for url in self.fallback_urls:
            if url.split("://", 1)[0] != self.url.split("://", 1)[0]:
                yield ("fallback_urls",), f"{url!r}: every address uses the scheme of url (one security profile)"
        for v in self.ocpp_versions:
            if v not in SUPPORTED_OCPP:
                speaks = ", ".join(SUPPORTED_OCPP)
                yield ("ocpp_versions",), f"OCPP {v} is not supported by the station (it speaks {speaks})"
        if not self.ocpp_versions or len(set(self.ocpp_versions)) != len(self.ocpp_versions):
            yield ("ocpp_versions",), "one or more OCPP versions, each once: 2.1 and/or 2.0.1, or 1.6 alone"
        elif "1.6" in self.ocpp_versions and len(self.ocpp_versions) > 1:
            # the 1.6 mapping (station/ocpp16.py) runs the whole connection: 1.6 is offered alone
            yield ("ocpp_versions",), "OCPP 1.6 is offered alone (not beside 2.x)"
        tls = self.url.startswith("wss://")
        for name in ("ca", "client_cert", "client_key"):
            if getattr(self, name) and not tls:
                yield (name,), "TLS files need a wss:// URL"
        if self.client_key and not self.client_cert:
            yield ("client_key",), "a client key needs client_cert"
        if self.client_cert and not self.client_key:
            yield ("client_cert",), "a client certificate needs client_key"


@dataclass
class Authorization:
    """Standard authorization variables (AuthCtrlr) the station starts with."""

    free_charging: bool | None = setting(None, flag="--free-charging")  # AuthCtrlr.Enabled = not this
    authorize_remote_start: bool | None = None  # AuthCtrlr.AuthorizeRemoteStart
    local_authorize_offline: bool | None = None  # AuthCtrlr.LocalAuthorizeOffline
    local_pre_authorize: bool | None = None  # AuthCtrlr.LocalPreAuthorize
    offline_tx_for_unknown_id: bool | None = None  # AuthCtrlr.OfflineTxForUnknownIdEnabled


@dataclass
class Metering:
    """Standard sampled-data variables (SampledDataCtrlr)."""

    tx_updated_interval: int | None = setting(None, min=0, flag="--meter-interval")  # TxUpdatedInterval, s
    tx_ended_interval: int | None = setting(None, min=0)  # TxEndedInterval, s
    sign_readings: bool | None = setting(None, flag="--sign-meter-values")  # SampledDataCtrlr.SignReadings (OCMF)
    public_key_with_signed_meter_value: Literal["Never", "OncePerTransaction", "EveryMeterValue"] | None = None
    # OCPPCommCtrlr.PublicKeyWithSignedMeterValue


@dataclass
class EvseSettings:
    """One EVSE (one connector) and the figures of its power electronics (SI units)."""

    max_power_w: float = setting(11000.0, min=0)  # EVSE.Power: what the EVSE can deliver
    iso_evse_id: str | None = None  # ISO 15118-2 EVSEID; default DE*V2G*E<station id>*<n>
    energy_modes: list[ENERGY_MODES] = field(default_factory=lambda: ["AC_three_phase_core", "DC_extended"])
    nominal_voltage: float = setting(230.0, min=0)  # AC, V
    ac_max_current: float = setting(32.0, min=0)  # A per phase
    ac_min_current: float = setting(6.0, min=0)
    dc_max_current: float = setting(200.0, min=0)  # A
    dc_min_current: float = setting(0.0, min=0)
    dc_max_power: float = setting(50_000.0, min=0)  # W
    dc_max_voltage: float = setting(500.0, min=0)  # V
    dc_min_voltage: float = setting(150.0, min=0)
    ac_max_discharge_power: float = setting(11_000.0, min=0)  # W the outlet can take back (ISO 15118-20 AC_BPT)
    dc_max_discharge_power: float = setting(30_000.0, min=0)  # W the DC stage can sink (DC_BPT)
    dc_max_discharge_current: float = setting(100.0, min=0)  # A the DC stage can sink

    def check(self) -> Iterator[KeyProblem]:
        """Minimums below maximums; at least one energy transfer mode."""
        if not self.energy_modes:
            yield ("energy_modes",), "at least one energy transfer mode"
        for low, high in (("ac_min_current", "ac_max_current"), ("dc_min_current", "dc_max_current"),
                          ("dc_min_voltage", "dc_max_voltage")):
            if getattr(self, low) > getattr(self, high):
                yield (low,), f"above {high}"


@dataclass
class Mirror:
    """Our DataTransfer mirror of every ISO 15118 message to the CSMS (vendor variables, docs/station.md)."""

    messages: bool | None = setting(None, flag="--mirror-iso")  # MirrorISO15118Messages
    compression: Literal["None", "Gzip"] | None = None  # MirrorISO15118Compression


@dataclass
class Iso15118:
    """The bridged ISO 15118 / DIN 70121 SECCs, one per EVSE: where they listen, TLS and Plug & Charge, EIM."""

    enabled: bool = False  # run the SECCs (set by --secc-port / --secc-iface as well)
    host: str = "::1"  # loopback address of the SECCs without interfaces
    secc_port: int | None = setting(None, min=0, max=65535, flag="--secc-port")  # TCP ports P, P+1, ... (0: free)
    interfaces: list[str] = setting(default_factory=list, flag="--secc-iface")  # one per EVSE, SDP by multicast
    slac: bool = setting(False, flag="--slac")  # SLAC (ISO 15118-3) on each interface first; the SECC after the match
    sdp_port: int = setting(15118, min=0, max=65535, flag="--sdp-port")  # loopback: EVSE n at sdp_port + n - 1
    protocols: list[str] = setting(default_factory=lambda: ["iso2", "din"], flag="--protocols")  # offered in the
    # handshake, in the SECC's priority order: e.g. ["iso20", "iso2", "din"] (-20 chosen when the EV offers it too)
    timers_scale: float = setting(1.0, min=0.001)  # the SECC's sequence timeout x this (tests, slow links)
    tls_cert: str | None = setting(None, path=True, flag="--secc-cert")  # SECC chain, PEM, leaf first
    tls_key: str | None = setting(None, path=True, flag="--secc-key")  # its private key, PEM
    tls_key_password: str | None = setting(None, secret=True, flag="--secc-key-password")
    tls_only: bool = setting(False, flag="--secc-tls-only")  # no TCP (EIM cars asking for TCP and DIN cannot charge)
    iso20_pki: str | None = setting(None, path=True, flag="--iso20-pki")  # `pki create --profile iso20` folder: the
    # TLS listener serves ISO 15118-20 (TLS 1.3, its SECC certificate, vehicle certificates of its OEM/V2G roots
    # required); instead of tls_cert (one TLS listener per EVSE); its keys' password: tls_key_password
    allow_discharge_w: float = setting(0.0, min=0, flag="--allow-discharge")  # OCPP 2.0.1 has no discharge
    # permission: the most an ISO 15118-20 EV may feed back (W; 0: AC_BPT/DC_BPT not offered)
    control_modes: list[str] = setting(default_factory=lambda: ["scheduled", "dynamic"], flag="--control")  # -20
    # control modes offered, in order (an EV that takes the first parameter set gets the first mode)
    renegotiations_at_once: int = setting(2, min=1)  # EVs of the station renegotiating a schedule at a time
    renegotiations_per_second: float = setting(4.0, min=0)  # renegotiations started per second at most (0: no
    # limit); a profile change's new limit reaches every car in its next charge loop anyway (bridge/pacer.py)
    renegotiation_settle_s: float = setting(0.0, min=0)  # s from an EVSE's last profile change to its renegotiation
    # at the soonest (0: off; one re-plan of the CSMS arrives as several changes; real seconds, whatever time_scale)
    pnc: bool | None = setting(None, flag="--pnc")  # ISO15118Ctrlr.PnCEnabled (Contract over TLS only)
    central_contract_validation_allowed: bool | None = None  # ISO15118Ctrlr.CentralContractValidationAllowed
    contract_validation_offline: bool | None = None  # ISO15118Ctrlr.ContractValidationOffline
    eim_token: str | None = setting(None, secret=True, flag="--iso-token")  # idToken presented for EIM sessions
    eim_token_type: ID_TOKEN_TYPES = "ISO14443"
    mirror: Mirror = field(default_factory=Mirror)

    def check(self) -> Iterator[KeyProblem]:
        """Known protocols; TLS-only and Plug & Charge need a certificate."""
        known = [*FAMILIES, *(p for p in PROTOCOLS if p not in FAMILIES)]
        for p in self.protocols:
            if p not in known:
                yield ("protocols",), f"unknown protocol {p!r} (known: {', '.join(known)})"
        if not self.protocols:
            yield ("protocols",), "at least one protocol"
        if not self.control_modes or len(set(self.control_modes)) != len(self.control_modes) or \
                set(self.control_modes) - {"scheduled", "dynamic"}:
            yield ("control_modes",), "scheduled, dynamic or both, each once"
        if self.slac and not self.interfaces:
            yield ("slac",), "SLAC needs the modems' interfaces (--secc-iface)"
        tls = self.tls_cert or self.iso20_pki
        if self.tls_only and not tls:
            yield ("tls_only",), "TLS only needs tls_cert (--secc-cert) or iso20_pki (--iso20-pki)"
        if self.pnc and not tls:
            yield ("pnc",), "Plug & Charge needs tls_cert (--secc-cert) or iso20_pki (--iso20-pki): Contract " \
                "payment is offered over TLS only"
        if self.tls_cert and self.iso20_pki:
            yield ("iso20_pki",), "one TLS listener per EVSE: tls_cert (TLS 1.2, ISO 15118-2) or iso20_pki " \
                "(TLS 1.3, ISO 15118-20), not both"
        if self.iso20_pki and "iso20" not in self.protocols:
            yield ("iso20_pki",), "the -20 TLS listener needs iso20 in protocols"
        if self.tls_key and not self.tls_cert:
            yield ("tls_key",), "a key needs tls_cert"


@dataclass
class V2x:
    """OCPP 2.1 V2X at the station (docs/v2x.md, station side): the control loop and the simulated grid frequency."""

    control_period: float = setting(1.0, min=0.001)  # s between two runs of the control loop (LocalFrequency)
    nominal_frequency: float = setting(50.0, min=1, flag="--grid-frequency")  # Hz the simulated grid starts at
    enabled: bool | None = None  # V2XChargingCtrlr.Enabled of every EVSE


@dataclass
class StationSettings:
    """The station's settings tree (the TOML file's tables)."""

    station: Identity = field(default_factory=Identity)
    csms: CsmsLink = field(default_factory=CsmsLink)
    evse: list[EvseSettings] = field(default_factory=lambda: [EvseSettings()])
    authorization: Authorization = field(default_factory=Authorization)
    metering: Metering = field(default_factory=Metering)
    iso15118: Iso15118 = field(default_factory=Iso15118)
    v2x: V2x = field(default_factory=V2x)
    state_dir: str | None = setting(None, path=True, flag="--state-dir")  # offline queue, device model, certificates
    trace_dir: str | None = setting(None, path=True, flag="--trace-dir")  # per-session timelines
    time_scale: float = setting(1.0, min=0.0001, flag="--time-scale")  # real s per simulated s (< 1: faster)

    def check(self) -> Iterator[KeyProblem]:
        """At least one EVSE."""
        if not self.evse:
            yield ("evse",), "at least one [[evse]]"


def resize_evses(settings: StationSettings, count: int) -> None:
    """`--evses N`: keep the first N EVSEs, or add copies of the last one's figures."""
    template = settings.evse[-1] if settings.evse else EvseSettings()
    del settings.evse[count:]
    while len(settings.evse) < count:
        settings.evse.append(EvseSettings(**{**vars(template), "iso_evse_id": None,
                                             "energy_modes": list(template.energy_modes)}))


def load_station_settings(file: str | None = None) -> Loaded[StationSettings]:
    """The station settings in a TOML file (or the defaults); SettingsError names the file and the key."""
    return load(StationSettings, file)
