"""From `CsmsSettings` to the CSMS's running parts, in this one place: the CsmsConfig the service runs on, the
OCPP server's TLS context and the REST API's options. A file that will not load or a malformed host pattern is a
SettingsError naming its key (`Loaded.blame` adds the settings file or the flag it came from).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

from ..ocpp import FloodPolicy, server_context
from ..ocpp.throttle import ThrottlePolicy
from ..settings_file import SettingsError
from .admission import AdmissionPolicy
from .grid_control import GridConfig
from .guard import allowed_hosts
from .service import CsmsConfig
from .settings import CsmsSettings


@dataclass(frozen=True)
class ApiOptions:
    """Where and how the REST API listens."""

    host: str
    port: int
    allowed_hosts: list[str]
    max_body: int
    tls_cert: str | None = None  # HTTPS when set (with tls_key)
    tls_key: str | None = None
    metrics_token: str | None = None  # opens GET /metrics alone


def csms_config(s: CsmsSettings) -> CsmsConfig:
    """The service's configuration."""
    if s.cluster.node_id and not s.database.url.startswith(("postgresql://", "postgres://", "postgresql+")):
        raise SettingsError.at(("cluster", "node_id"), "several CSMS nodes need one PostgreSQL database (--db "
                               "postgresql://...): SQLite is for a single node")
    if s.cluster.nats_url and not s.cluster.node_id:
        raise SettingsError.at(("cluster", "nats_url"), "NATS is for a cluster: give this node a --node-id")
    if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", s.cluster.subject_prefix):
        raise SettingsError.at(("cluster", "subject_prefix"), "NATS subject tokens: letters, digits, - and _, "
                               "separated by dots")
    o, ocsp, t, f, a = s.ocpp, s.ocsp, s.auth_throttle, s.flood, s.admission
    return CsmsConfig(
        heartbeat_interval=o.heartbeat_interval, security_profile=o.security_profile, auto_register=o.auto_register,
        node_id=s.cluster.node_id, owner_lease_s=s.cluster.owner_lease, nats_url=s.cluster.nats_url,
        subject_prefix=s.cluster.subject_prefix, singleton_lease_s=s.cluster.singleton_lease,
        command_timeout=o.command_timeout, call_timeout=o.call_timeout, ping_interval=o.ping_interval or None,
        allowed_versions=tuple(o.versions),
        log_session_messages=o.log_messages, accept_valid_contracts=s.contracts.accept_valid_contracts,
        contract_ocsp=s.contracts.check_ocsp, ocsp_required=s.contracts.ocsp_required, ocsp_timeout=ocsp.timeout,
        ocsp_allow=tuple(ocsp.allow), ocsp_allow_private=ocsp.allow_private, ocsp_allow_only=ocsp.allow_only,
        ocsp_max_response=ocsp.max_response, ocsp_cache_size=ocsp.cache_size, ocsp_cache_max_age=ocsp.cache_max_age,
        max_protocol_errors=f.max_protocol_errors,
        auth_throttle=ThrottlePolicy(
            free_failures=t.free_failures, station_free_failures=t.station_free_failures, base_delay=t.base_delay,
            max_delay=t.max_delay, forget_after=t.forget_after, max_entries=t.max_entries,
            verify_rate=t.verify_rate, verify_burst=t.verify_burst),
        flood=FloodPolicy(log_burst=f.log_burst, log_interval=f.log_interval, max_violations=f.max_protocol_errors,
                          violation_window=f.window),
        pki_dir=s.pki.dir, pki_dir20=s.pki.dir20, ocsp_url=s.pki.ocsp_url,
        needs_profiles=s.smart_charging.needs_profiles,
        needs_max_power_w=s.smart_charging.max_power_w or None,
        allowed_energy_transfer=tuple(s.v2x.allowed_energy_transfer),
        pending_until_reported=s.provisioning.pending_until_reported, pending_interval=s.provisioning.pending_interval,
        reconcile_local_lists=s.provisioning.reconcile_local_lists, firmware_dir=s.files.firmware_dir,
        max_upload=s.files.max_upload,
        admission=AdmissionPolicy(boot_rate=a.boot_rate, boot_burst=a.boot_burst, max_backlog=a.max_backlog),
        max_connections=a.max_connections or None, max_handshakes=a.max_handshakes or None,
        busy_retry_after=a.busy_retry_after)


def ocpp_tls(s: CsmsSettings) -> ssl.SSLContext | None:
    """The OCPP server's TLS context (profiles 2 and 3; profile 3 requires station certificates): the ECDSA server
    certificate, and the RSA one beside it when given (OpenSSL picks by the client's cipher suites)."""
    o = s.ocpp
    if o.security_profile < 2 or not o.tls.cert:
        return None
    try:
        return server_context(o.tls.cert, o.tls.key, client_ca=o.tls.client_ca if o.security_profile == 3 else None,
                              rsa_certfile=o.tls.rsa_cert, rsa_keyfile=o.tls.rsa_key)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise SettingsError.at(("ocpp", "tls", "cert"), f"cannot load the TLS files: {e}") from None


@dataclass(frozen=True)
class ListenerPlan:
    """One more OCPP listener (`[[ocpp.listeners]]`): where, its security profile and its TLS context."""

    host: str
    port: int
    security_profile: int
    ssl: ssl.SSLContext | None


def more_listeners(s: CsmsSettings) -> list[ListenerPlan]:
    """The listeners besides the main one, each with the TLS context of its profile (the `[ocpp.tls]` files;
    profile 3 requires station certificates)."""
    o, plans = s.ocpp, []
    for n, more in enumerate(o.listeners):
        ctx = None
        if more.security_profile >= 2 and o.tls.cert:
            try:
                ctx = server_context(o.tls.cert, o.tls.key,
                                     client_ca=o.tls.client_ca if more.security_profile == 3 else None,
                                     rsa_certfile=o.tls.rsa_cert, rsa_keyfile=o.tls.rsa_key)
            except (OSError, ssl.SSLError, ValueError) as e:
                raise SettingsError.at(("ocpp", "listeners", n, "security_profile"),
                                       f"cannot load the TLS files: {e}") from None
        plans.append(ListenerPlan(more.host, more.port, more.security_profile, ctx))
    return plans


def api_options(s: CsmsSettings) -> ApiOptions:
    """Where the API listens, the Host names it answers and its body cap."""
    try:
        hosts = allowed_hosts(s.api.host, s.api.allowed_hosts)
    except ValueError as e:
        raise SettingsError.at(("api", "allowed_hosts"), str(e)) from None
    return ApiOptions(s.api.host, s.api.port, hosts, s.api.max_body, s.api.tls_cert, s.api.tls_key,
                      s.api.metrics_token)


def grid_config(s: CsmsSettings) -> GridConfig | None:
    """The grid control's configuration (None: no grid control)."""
    g = s.grid
    if not g.enabled:
        return None
    groups = {}
    for entry in g.groups:
        name, _, members = entry.partition("=")
        groups[name.strip()] = frozenset(m.strip() for m in members.split(",") if m.strip())
    return GridConfig(dispatch=g.dispatch, site_id=g.site_id, groups=groups, step_s=g.step_s,
                      horizon_steps=g.horizon_steps, time_budget_s=g.time_budget_s,
                      improve_budget_s=g.improve_budget_s, solver_process=g.solver_process, resolve_s=g.resolve_s,
                      stack_level=g.stack_level, max_periods=g.max_periods)
