"""From `StationSettings` to a running station, in this one place: the StationConfig the station runs on, each
EVSE's bridge config, the SECCs' plan and TLS context, and the settings' values in the OCPP device model
(`apply_device_model`, the only code that writes settings into it).

Files named by the settings (TLS certificates and keys) are read here; a file that will not load is a
SettingsError naming its key (`Loaded.blame` adds the settings file or the flag it came from).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hardware import SimulatedHardwareConfig
from ..iso15118.cli20 import secc_from_pki
from ..iso15118.tls import secc_context
from ..ocpp import client_context
from ..settings_file import SettingsError
from .bridge import BridgeConfig, EvseBridge, start_bridged_seccs
from .bridge.pacer import RenegotiationPacing
from .config import StationConfig
from .device_model import VENDOR_COMPONENT, DeviceModel
from .settings import StationSettings
from .station import ChargingStation


@dataclass(frozen=True)
class SeccPlan:
    """Where and how the bridged SECCs listen (the arguments of `start_bridged_seccs`)."""

    host: str
    port: int | None
    ifaces: list[str] | None
    sdp_port: int
    tls: ssl.SSLContext | None
    tcp: bool
    protocols: tuple[str, ...]
    timeout_scale: float
    trace_dir: Path | None
    slac: bool = False
    pacing: RenegotiationPacing | None = None  # how fast the station asks its EVs to renegotiate


def _bool(value: bool) -> str:
    return "true" if value else "false"


def device_model_values(s: StationSettings) -> list[tuple[str, str, str]]:
    """(component, variable, value) for every device-model variable the settings set: standard OCPP 2.0.1 variables
    where one exists, ours under VENDOR_COMPONENT. Unset (None) settings leave the variable alone."""
    iso, auth, meter = s.iso15118, s.authorization, s.metering
    optional: list[tuple[str, str, Any]] = [
        ("AuthCtrlr", "Enabled", None if auth.free_charging is None else not auth.free_charging),
        ("AuthCtrlr", "AuthorizeRemoteStart", auth.authorize_remote_start),
        ("AuthCtrlr", "LocalAuthorizeOffline", auth.local_authorize_offline),
        ("AuthCtrlr", "LocalPreAuthorize", auth.local_pre_authorize),
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", auth.offline_tx_for_unknown_id),
        ("SampledDataCtrlr", "TxUpdatedInterval", meter.tx_updated_interval),
        ("SampledDataCtrlr", "TxEndedInterval", meter.tx_ended_interval),
        ("SampledDataCtrlr", "SignReadings", meter.sign_readings),
        ("OCPPCommCtrlr", "PublicKeyWithSignedMeterValue", meter.public_key_with_signed_meter_value),
        ("ISO15118Ctrlr", "Enabled", iso.enabled),
        ("ISO15118Ctrlr", "PnCEnabled", iso.pnc),
        ("ISO15118Ctrlr", "CentralContractValidationAllowed", iso.central_contract_validation_allowed),
        ("ISO15118Ctrlr", "ContractValidationOffline", iso.contract_validation_offline),
        ("SecurityCtrlr", "OrganizationName", s.station.organization_name),
        (VENDOR_COMPONENT, "MirrorISO15118Messages", iso.mirror.messages),
        (VENDOR_COMPONENT, "MirrorISO15118Compression", iso.mirror.compression),
    ]
    out = [(c, v, _bool(x) if isinstance(x, bool) else str(x)) for c, v, x in optional if x is not None]
    if s.v2x.enabled is not None:
        out += [("V2XChargingCtrlr", "Enabled", _bool(s.v2x.enabled))]
    return out


def apply_device_model(s: StationSettings, model: DeviceModel) -> None:
    """Write the settings' values into the device model (at start, before the station connects). The identity,
    vendor, model, security profile and each EVSE's power are read-only variables the station makes from its
    StationConfig."""
    for component, variable, value in device_model_values(s):
        if component == "V2XChargingCtrlr":  # one per EVSE
            for n in range(1, len(s.evse) + 1):
                model.put(component, variable, value, evse=n)
            continue
        if model.find(component, variable) is None:
            raise KeyError(f"{component}.{variable}")  # a mapping without its variable: a bug of ours
        model.put(component, variable, value)


def station_config(s: StationSettings) -> StationConfig:
    """The station's runtime input (identity, link, EVSE power and hardware figures, folders, time scale)."""
    link = s.csms
    powers = {n: e.max_power_w for n, e in enumerate(s.evse, start=1)}
    hardware = {n: SimulatedHardwareConfig(
        nominal_voltage=e.nominal_voltage, ac_max_current=e.ac_max_current, ac_min_current=e.ac_min_current,
        dc_max_current=e.dc_max_current, dc_max_power=e.dc_max_power, dc_max_voltage=e.dc_max_voltage,
        dc_min_voltage=e.dc_min_voltage, dc_min_current=e.dc_min_current,
        ac_max_discharge_power=e.ac_max_discharge_power, dc_max_discharge_power=e.dc_max_discharge_power,
        dc_max_discharge_current=e.dc_max_discharge_current) for n, e in enumerate(s.evse, start=1)}
    return StationConfig(
        s.station.id, link.url, evses=len(s.evse), password=link.password, versions=tuple(link.ocpp_versions),
        fallback_urls=tuple(link.fallback_urls),
        state_dir=Path(s.state_dir) if s.state_dir else None, model=s.station.model, vendor=s.station.vendor,
        serial_number=s.station.serial_number, firmware_version=s.station.firmware_version,
        max_power_w=powers[1], evse_max_power_w=powers, hardware=hardware[1], evse_hardware=hardware,
        time_scale=s.time_scale, ssl=csms_tls(s),
        ping_interval=link.ping_interval or None, control_period_s=s.v2x.control_period,
        nominal_frequency=s.v2x.nominal_frequency)


def csms_tls(s: StationSettings) -> ssl.SSLContext | None:
    """The TLS context of a wss:// link with a CA or a client certificate (else None: the system's trust)."""
    link = s.csms
    if not link.url.startswith("wss://") or not (link.ca or link.client_cert):
        return None
    key = ("csms", "ca")
    try:
        if link.ca is None:
            ctx = ssl.create_default_context()
            key = ("csms", "client_cert")
            ctx.load_cert_chain(link.client_cert, link.client_key)  # type: ignore[arg-type]
            return ctx
        return client_context(link.ca, certfile=link.client_cert, keyfile=link.client_key)
    except (OSError, ssl.SSLError) as e:
        raise SettingsError.at(key, f"cannot load the TLS files: {e}") from None


def bridge_configs(s: StationSettings) -> dict[int, BridgeConfig]:
    """Each EVSE's bridge config: its EVSEID, energy modes, the EIM token, the discharge allowed to -20 EVs (its power
    figures are its hardware's: station_config)."""
    iso = s.iso15118
    token = {"idToken": iso.eim_token, "type": iso.eim_token_type} if iso.eim_token else None
    out = {}
    for n, e in enumerate(s.evse, start=1):
        out[n] = BridgeConfig(
            evse_ids={n: e.iso_evse_id} if e.iso_evse_id else {}, energy_modes=tuple(e.energy_modes),
            id_token=token, allow_discharge_w=iso.allow_discharge_w, control_modes=tuple(iso.control_modes))
    return out


def secc_plan(s: StationSettings) -> SeccPlan | None:
    """Where the SECCs listen and their TLS context (TLS 1.2 with tls_cert, or the -20 TLS 1.3 one of iso20_pki);
    None without ISO 15118."""
    iso = s.iso15118
    if not iso.enabled:
        return None
    tls = None
    if iso.iso20_pki:
        try:
            tls = secc_from_pki(Path(iso.iso20_pki), iso.tls_key_password).context
        except (OSError, ValueError, ssl.SSLError) as e:  # the reason never repeats the password
            raise SettingsError.at(("iso15118", "iso20_pki"), f"cannot load the -20 SECC certificate, key and roots: "
                                   f"{getattr(e, 'strerror', None) or e}") from None
    elif iso.tls_cert:
        try:
            tls = secc_context(iso.tls_cert, iso.tls_key, iso.tls_key_password)
        except (OSError, ssl.SSLError) as e:  # the reason never repeats the password
            raise SettingsError.at(("iso15118", "tls_cert"), f"cannot load the SECC certificate and key: "
                                   f"{getattr(e, 'strerror', None) or e}") from None
    return SeccPlan(host=iso.host, port=iso.secc_port, ifaces=list(iso.interfaces) or None, sdp_port=iso.sdp_port,
                    tls=tls, tcp=not iso.tls_only, protocols=tuple(iso.protocols), timeout_scale=iso.timers_scale,
                    trace_dir=Path(s.trace_dir) if s.trace_dir else None, slac=iso.slac,
                    pacing=RenegotiationPacing(iso.renegotiations_at_once, iso.renegotiations_per_second,
                                               iso.renegotiation_settle_s))


@dataclass
class Assembly:
    """A station made from settings, its device model set, and the plan of its SECCs (started by `start`)."""

    settings: StationSettings
    station: ChargingStation
    secc: SeccPlan | None
    bridges: list[EvseBridge]

    async def start(self) -> None:
        """Connect the station (in the background), then start the SECCs."""
        await self.station.start()
        plan = self.secc
        if plan is not None:
            self.bridges = await start_bridged_seccs(
                self.station, host=plan.host, port=plan.port, ifaces=plan.ifaces, sdp_port=plan.sdp_port,
                configs=bridge_configs(self.settings), trace_dir=plan.trace_dir, tls=plan.tls,
                protocols=plan.protocols, timeout_scale=plan.timeout_scale, tcp=plan.tcp, slac=plan.slac,
                pacing=plan.pacing)

    async def stop(self) -> None:
        """Close the SECCs, then the station."""
        for b in self.bridges:
            await b.close()
        await self.station.stop()


def assemble(s: StationSettings) -> Assembly:
    """The station of these settings (not started): SettingsError if a file they name will not load."""
    config = station_config(s)
    plan = secc_plan(s)
    station = ChargingStation(config)
    apply_device_model(s, station.model)
    return Assembly(s, station, plan, [])
