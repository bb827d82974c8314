"""`v2gstack csms`: run the CSMS (OCPP server + REST API) and manage its station and idToken registry.

The server's settings come from `--config csms.toml` (csms/settings.py) and the flags, a flag given explicitly
winning over the file; `--print-config` shows the result (secrets masked) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from ..grid.model import SignalError, load_signal_file
from ..grid.openadr_map import VenConfig
from ..heap import freeze_startup_heap
from ..ocpp.redact import redact_handlers
from ..ocpp.v2x import ENERGY_TRANSFER_MODES
from ..settings_file import Flags, SettingsError, apply_flags, dumps
from .admission import raise_fd_limit
from .api import AUTH_STATUSES, TOKEN_TYPES, create_app
from .assemble import ApiOptions, ListenerPlan, api_options, csms_config, grid_config, more_listeners, ocpp_tls
from .auth import DEFAULT_DAYS, Role, create_token
from .cluster import ClusterError
from .grid_control import GridConfig, GridControl
from .grid_leader import GridLeader
from .guard import DEFAULT_MAX_BODY
from .service import Csms, CsmsConfig
from .settings import Grid, load_csms_settings
from .singletons import GRID
from .store import DEFAULT_URL, Store, StoreError
from .users import Users

T = TypeVar("T")
app = typer.Typer(add_completion=False, help="Run the CSMS, or manage its registry (add-station, add-idtoken, ...) "
                  "and its API tokens (create-token, tokens, revoke-token).")

DB_HELP = "Database URL: sqlite:///FILE (default, in the working directory) or postgresql://user@host/db"


FLAGS: Flags = {
    "host": (("ocpp", "host"), None),
    "port": (("ocpp", "port"), None),
    "api_port": (("api", "port"), None),
    "api_host": (("api", "host"), None),
    "api_allowed_hosts": (("api", "allowed_hosts"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
    "api_max_body": (("api", "max_body"), None),
    "api_cert": (("api", "tls_cert"), None),
    "api_key": (("api", "tls_key"), None),
    "db": (("database", "url"), None),
    "node_id": (("cluster", "node_id"), None),
    "nats": (("cluster", "nats_url"), None),
    "security_profile": (("ocpp", "security_profile"), None),
    "cert": (("ocpp", "tls", "cert"), None),
    "key": (("ocpp", "tls", "key"), None),
    "rsa_cert": (("ocpp", "tls", "rsa_cert"), None),
    "rsa_key": (("ocpp", "tls", "rsa_key"), None),
    "client_ca": (("ocpp", "tls", "client_ca"), None),
    "heartbeat": (("ocpp", "heartbeat_interval"), None),
    "auto_register": (("ocpp", "auto_register"), None),
    "pki_dir": (("pki", "dir"), None),
    "pki20_dir": (("pki", "dir20"), None),
    "ocsp_url": (("pki", "ocsp_url"), None),
    "ocsp_allow": (("ocsp", "allow"), list),
    "ocsp_allow_private": (("ocsp", "allow_private"), None),
    "ocsp_allow_only": (("ocsp", "allow_only"), None),
    "ocsp_required": (("contracts", "ocsp_required"), None),
    "max_protocol_errors": (("flood", "max_protocol_errors"), None),
    "ocpp_versions": (("ocpp", "versions"), lambda v: [x.strip() for x in v.split(",") if x.strip()]),
    "grid": (("grid", "enabled"), None),
    "grid_dispatch": (("grid", "dispatch"), None),
    "grid_signals": (("grid", "signals_file"), None),
    "openadr_vtn": (("grid", "openadr", "vtn_url"), None),
}
"""Each settings flag of the server -> the key of csms/settings.py it overrides."""


@app.callback(invoke_without_command=True)
def csms_command(
    ctx: typer.Context,
    config_file: str | None = typer.Option(None, "--config", help="Settings file (TOML, see examples/csms.toml); "
                                           "flags given explicitly override its values"),
    print_config: bool = typer.Option(False, "--print-config", help="Print the effective settings as TOML (secrets "
                                      "masked) and exit"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address for the OCPP server (the API has --api-host)"),
    port: int = typer.Option(9000, "--port", help="OCPP websocket port (stations connect to ws://HOST:PORT/ocpp/ID)"),
    api_port: int = typer.Option(8080, "--api-port", help="REST API port (0: no API); OpenAPI docs at /docs"),
    api_host: str = typer.Option("127.0.0.1", "--api-host", help="Address for the REST API; anything but loopback "
                                 "belongs behind a TLS terminator (the API speaks plain HTTP)"),
    api_allowed_hosts: str = typer.Option("", "--api-allowed-hosts", help="Host names the API answers besides the "
                                          "loopback names and --api-host, comma-separated (*.example.com for "
                                          "sub-domains)"),
    api_max_body: int = typer.Option(DEFAULT_MAX_BODY, "--api-max-body", min=1024,
                                     help="Largest API request body, bytes (larger: 413)"),
    api_cert: str | None = typer.Option(None, "--api-cert", help="Serve the API and dashboard over HTTPS with this "
                                        "certificate chain, PEM (with --api-key)"),
    api_key: str | None = typer.Option(None, "--api-key", help="The private key of --api-cert, PEM"),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
    node_id: str | None = typer.Option(None, "--node-id", help="Several CSMS nodes on one database: this node's name "
                                       "(it keeps owner records of its stations; docs/scale-out.md)"),
    nats: str | None = typer.Option(None, "--nats", help="With --node-id: NATS URL (nats://127.0.0.1:4222) through "
                                    "which commands reach stations connected to other nodes"),
    security_profile: int = typer.Option(1, "--security-profile", min=0, max=3,
                                         help="1: ws + Basic auth; 2: wss + Basic auth; 3: wss + client certificate; "
                                              "0: no authentication (development only)"),
    cert: str | None = typer.Option(None, "--cert", help="TLS server certificate chain, PEM (profiles 2, 3)"),
    key: str | None = typer.Option(None, "--key", help="TLS server private key, PEM (profiles 2, 3)"),
    rsa_cert: str | None = typer.Option(None, "--rsa-cert", help="Second TLS server certificate chain, with an RSA "
                                        "key, PEM, for the TLS_RSA AES-GCM suites (--cert is then the ECDSA one; "
                                        "`v2gstack pki create` writes both: chains/csms.chain.pem and "
                                        "chains/csms_rsa.chain.pem)"),
    rsa_key: str | None = typer.Option(None, "--rsa-key", help="The RSA certificate's private key, PEM"),
    client_ca: str | None = typer.Option(None, "--client-ca", help="CA that signs station certificates (profile 3)"),
    heartbeat: int = typer.Option(300, "--heartbeat-interval", help="Heartbeat interval given at boot, s"),
    auto_register: bool = typer.Option(False, "--auto-register", help="Profile 0: accept unknown stations at boot"),
    pki_dir: str | None = typer.Option(None, "--pki-dir", help="A `v2gstack pki create` folder whose CPO Sub-CA and "
                                       "CSMS root sign the stations' certificate requests"),
    pki20_dir: str | None = typer.Option(None, "--pki20-dir", help="A `v2gstack pki create --profile iso20` folder "
                                         "whose eMSP and CPS CAs answer -20 Get15118EVCertificate"),
    ocsp_url: str | None = typer.Option(None, "--ocsp-url", help="OCSP URL put into the certificates it issues"),
    ocsp_allow: Annotated[list[str] | None, typer.Option(
        "--ocsp-allow", help="HOST, HOST:PORT or CIDR of an OCSP responder the CSMS may ask although it is on a "
        "loopback/private address or another port than 80/443 (repeatable)")] = None,
    ocsp_allow_private: bool = typer.Option(False, "--ocsp-allow-private", help="Ask OCSP responders on loopback, "
                                            "private and link-local addresses too"),
    ocsp_allow_only: bool = typer.Option(False, "--ocsp-allow-only", help="Ask no OCSP responder but those of "
                                         "--ocsp-allow"),
    ocsp_required: bool = typer.Option(False, "--ocsp-required/--ocsp-soft-fail",
                                       help="A contract whose OCSP responder cannot be reached (or is refused by the "
                                            "fetch policy) is refused (CertChainError); --ocsp-soft-fail: it is "
                                            "Accepted on its chain alone, logged. Bad answers are never Accepted."),
    max_protocol_errors: int = typer.Option(20, "--max-protocol-errors", min=0,
                                            help="CALLERRORs a station may cause within a minute before it is "
                                                 "disconnected with 1008 (0: never)"),
    ocpp_versions: str = typer.Option("2.1,2.0.1,1.6", "--ocpp-versions",
                                      help="OCPP versions offered on the one endpoint, most preferred first "
                                           "(comma-separated: 2.1, 2.0.1, 1.6)"),
    grid: bool = typer.Option(False, "--grid", help="Run the grid control: signals API, scheduler (docs/grid.md)"),
    grid_dispatch: bool = typer.Option(False, "--grid-dispatch", help="Send the grid plan to stations as charging "
                                                                      "profiles (with --grid)"),
    grid_signals: str | None = typer.Option(None, "--grid-signals", help="A file of grid signals (JSON or TOML) "
                                                                         "applied at start (with --grid)"),
    openadr_vtn: str | None = typer.Option(None, "--openadr-vtn", help="OpenADR 2.0b VTN URL: run a VEN (with "
                                                                       "--grid; needs the `grid` extra)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging"),
) -> None:
    """Run the CSMS until Ctrl-C (without a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        settings = load_csms_settings(config_file)
        apply_flags(settings, ctx, FLAGS)
        settings.check()
    except SettingsError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if print_config:
        typer.echo(dumps(settings.tree), nl=False)
        raise typer.Exit(0)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_handlers()  # no secret in any log line, whichever logger wrote it
    tree = settings.tree
    try:
        ssl_ctx, api, config, grid_cfg = ocpp_tls(tree), api_options(tree), csms_config(tree), grid_config(tree)
        more = more_listeners(tree)
    except SettingsError as e:
        typer.echo(f"error: {settings.blame(e)}", err=True)
        raise typer.Exit(2) from None
    try:
        store = Store(tree.database.url)
    except StoreError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise_fd_limit()  # a node holds one descriptor per station: as many as the hard limit allows
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(store, tree.ocpp.host, tree.ocpp.port, api, ssl_ctx, config, grid_cfg, tree.grid, more))


async def _serve(store: Store, host: str, port: int, api_options: ApiOptions, ssl_ctx: object,
                 config: CsmsConfig, grid_cfg: GridConfig | None = None, grid_settings: Grid | None = None,
                 more: list[ListenerPlan] | None = None) -> None:
    """The OCPP server, the API and the grid control in one event loop, until SIGINT/SIGTERM."""
    profile = config.security_profile
    csms = Csms(store, config, ssl=ssl_ctx)  # type: ignore[arg-type]
    try:
        await csms.start(host, port)
    except ClusterError as e:
        typer.echo(f"error: {e}", err=True)
        await csms.close()
        store.close()
        raise typer.Exit(2) from None
    if config.node_id and not config.nats_url:
        typer.echo("CSMS: node without --nats: commands do not reach stations on other nodes and there is no event "
                   "feed; a CSMS cluster needs PostgreSQL and NATS (docs/scale-out.md)", err=True)
    if grid_cfg is not None and grid_settings is not None:
        if csms.singletons is not None:
            _grid_singleton(csms, grid_cfg, grid_settings)
        else:
            await _start_grid(csms, grid_cfg, grid_settings)
    freeze_startup_heap()  # full collections then skip what lives for the whole run (v2gstack/heap.py)
    scheme = "wss" if profile >= 2 else "ws"
    typer.echo(f"CSMS: OCPP {' and '.join(config.allowed_versions)} at {scheme}://{host}:{csms.port}/ocpp/<stationId> "
               f"(security profile {profile}, database {store.engine.url.render_as_string(hide_password=True)})")
    for plan in more or []:
        bound = await csms.add_listener(plan.host, plan.port, plan.security_profile, plan.ssl)
        typer.echo(f"CSMS: OCPP {' and '.join(config.allowed_versions)} at "
                   f"{'wss' if plan.security_profile >= 2 else 'ws'}://{plan.host}:{bound}/ocpp/<stationId> "
                   f"(security profile {plan.security_profile}, another listener)")
    api = None
    if api_options.port:
        app = create_app(csms, allowed_hosts=api_options.allowed_hosts, max_body=api_options.max_body,
                         metrics_token=api_options.metrics_token)
        api = uvicorn.Server(uvicorn.Config(app, host=api_options.host, port=api_options.port, log_level="warning",
                                            lifespan="off", server_header=False,
                                            ssl_certfile=api_options.tls_cert, ssl_keyfile=api_options.tls_key,
                                            timeout_graceful_shutdown=3))  # open dashboard event streams end
        api.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        api_task = asyncio.create_task(api.serve())
        while not api.started and not api_task.done():  # announce it only once it listens
            await asyncio.sleep(0.01)
        if api_task.done():  # uvicorn could not listen (it logged why)
            await csms.close()
            store.close()
            raise typer.Exit(1)
        shown = f"[{api_options.host}]" if ":" in api_options.host else api_options.host
        scheme = "https" if api_options.tls_cert else "http"
        typer.echo(f"CSMS: REST API at {scheme}://{shown}:{api_options.port}/api (docs at /docs, dashboard at /; "
                   f"Host names "
                   f"{', '.join(api_options.allowed_hosts)})")
        now = datetime.now(UTC)
        if not any(t["revokedAt"] is None and _after(t["expiresAt"], now) for t in store.api_tokens()):
            typer.echo("CSMS: no valid API token yet: `v2gstack csms create-token --role admin` makes one", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if api is not None:
            app.state.close_streams()  # the dashboard's event streams end, so the server stops at once
            api.should_exit = True
            await api_task
        await csms.close()
        store.close()


async def _start_grid(csms: Csms, cfg: GridConfig, settings: Grid) -> None:
    """The grid control, its signals file and its OpenADR VEN (a bad file or a VTN that cannot be reached: exit 2)."""
    grid = GridControl(csms, cfg)
    grid.start()
    if settings.signals_file:
        try:
            applied = grid.apply(load_signal_file(settings.signals_file, datetime.now(UTC)), source="file")
        except SignalError as e:
            await csms.close()
            typer.echo(f"error: grid signals file {settings.signals_file}: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"CSMS: grid signals applied from {settings.signals_file}: {', '.join(s.id for s in applied)}")
    o = settings.openadr
    if o.vtn_url:
        try:
            ven = await grid.start_ven(VenConfig(o.vtn_url, o.ven_name, cfg.site_id, o.site_import_w, o.telemetry_s))
        except ImportError:
            await csms.close()
            typer.echo("error: the OpenADR VEN needs openleadr: pip install 'v2gstack[grid]'", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"CSMS: OpenADR VEN {o.ven_name} registered at {o.vtn_url} (venID {ven.ven_id})")
    typer.echo(f"CSMS: grid control on (dispatch {'on' if cfg.dispatch else 'off'}; signals at /api/grid/signals)")


def _grid_singleton(csms: Csms, cfg: GridConfig, settings: Grid) -> None:
    """In a cluster the grid control runs on the elected node only (csms/grid_leader.py); the signals file is
    checked now (a bad one: exit 2) and applied by every node that becomes the leader."""
    if settings.signals_file:
        try:
            load_signal_file(settings.signals_file, datetime.now(UTC))
        except SignalError as e:
            typer.echo(f"error: grid signals file {settings.signals_file}: {e}", err=True)
            raise typer.Exit(2) from None

    async def make() -> GridControl:
        grid = GridControl(csms, cfg, listen=csms.feed is None)  # a cluster's events come from the stream
        grid.start()
        if settings.signals_file:
            grid.apply(load_signal_file(settings.signals_file, datetime.now(UTC)), source="file")
        o = settings.openadr
        if o.vtn_url:
            await grid.start_ven(VenConfig(o.vtn_url, o.ven_name, cfg.site_id, o.site_import_w, o.telemetry_s))
        return grid

    leader = GridLeader(csms, make)
    assert csms.singletons is not None
    csms.singletons.add(GRID, leader.start, leader.stop)
    typer.echo(f"CSMS: grid control on the elected node of the cluster (singleton {GRID!r}; dispatch "
               f"{'on' if cfg.dispatch else 'off'})")


@app.command("add-station")
def add_station(
    station_id: str = typer.Argument(..., help="Charging station identity"),
    password: str | None = typer.Option(None, "--password", help="Basic auth password, 16-40 characters"),
    security_profile: int = typer.Option(1, "--security-profile", min=0, max=3),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
) -> None:
    """Register a charging station."""
    _with_store(db, lambda s: s.add_station(station_id, password, security_profile),
                audit=("add-station", station_id, station_id))
    typer.echo(f"station {station_id} registered" + (" (with password)" if password else ""))


@app.command("add-idtoken")
def add_idtoken(
    id_token: str = typer.Argument(..., help="The idToken value (RFID UID hex, eMAID, ...)"),
    type_: str = typer.Option("ISO14443", "--type", help="IdTokenEnumType: ISO14443, eMAID, Central, KeyCode, ..."),
    status: str = typer.Option("Accepted", "--status", help="Accepted, Blocked, Invalid, Expired, ..."),
    group: str | None = typer.Option(None, "--group", help="Group idToken"),
    account: str | None = typer.Option(None, "--account", help="Billing account"),
    allowed: str | None = typer.Option(None, "--allowed-energy-transfer", help="OCPP 2.1: the energy transfer "
                                       "modes its AuthorizeResponse allows, comma-separated (e.g. DC,DC_BPT; "
                                       "default: the CSMS's [v2x] allowed_energy_transfer)"),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
) -> None:
    """Register (or update) an idToken."""
    if status not in AUTH_STATUSES or type_ not in TOKEN_TYPES:
        typer.echo(f"error: --type is one of {sorted(TOKEN_TYPES)}, --status one of {sorted(AUTH_STATUSES)}",
                   err=True)
        raise typer.Exit(2)
    modes = [m.strip() for m in allowed.split(",") if m.strip()] if allowed is not None else None
    if modes is not None and (not modes or set(modes) - set(ENERGY_TRANSFER_MODES)):
        typer.echo(f"error: --allowed-energy-transfer takes modes of {', '.join(ENERGY_TRANSFER_MODES)}", err=True)
        raise typer.Exit(2)
    _with_store(db, lambda s: s.put_id_token(id_token, type_, status, group, account,
                                             allowed_energy_transfer=modes),
                audit=("add-idtoken", None, f"{type_}:{id_token} {status}" + (f" {','.join(modes)}" if modes else "")))
    typer.echo(f"idToken {type_}:{id_token} {status}" + (f", allowed {', '.join(modes)}" if modes else ""))


KIND_ALIASES = {"v2g": "V2GRootCertificate", "mo": "MORootCertificate", "csms": "CSMSRootCertificate",
                "manufacturer": "ManufacturerRootCertificate", "oem": "OEMRootCertificate"}


@app.command("add-root")
def add_root(
    pem_file: str = typer.Argument(..., help="PEM file with one or more root certificates"),
    kind: str = typer.Option(..., "--kind", help="v2g, mo, oem, csms, manufacturer (or the OCPP enum name)"),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
) -> None:
    """Trust a root certificate (e.g. an MO root for Plug & Charge contracts)."""
    try:
        data = Path(pem_file).read_bytes()
    except OSError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    fps = _with_store(db, lambda s: s.add_trust_anchor(KIND_ALIASES.get(kind.lower(), kind), data),
                      audit=("add-root", None, KIND_ALIASES.get(kind.lower(), kind)))
    for fp in fps:
        typer.echo(f"trusted {fp} as {KIND_ALIASES.get(kind.lower(), kind)}")


@app.command("remove-root")
def remove_root(fingerprint: str = typer.Argument(..., help="SHA-256 fingerprint (hex)"),
                db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """Stop trusting a root certificate."""
    if not _with_store(db, lambda s: s.remove_trust_anchor(fingerprint), audit=("remove-root", None, fingerprint)):
        typer.echo(f"error: no root with fingerprint {fingerprint}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {fingerprint}")


@app.command("roots")
def list_roots(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """List trusted root certificates."""
    for r in _with_store(db, lambda s: s.trust_anchors()):
        typer.echo(f"{r['fingerprint']}\t{r['kind']}\t{r['subject']}\tvalid until {r['notAfter']}")


@app.command("stations")
def list_stations(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """List registered stations."""
    rows = _with_store(db, lambda s: [(st.id, st.security_profile, st.boot_status, st.last_seen) for st in
                                      s.stations()])
    for sid, profile, boot, seen in rows:
        typer.echo(f"{sid}\tprofile {profile}\t{boot or '-'}\t{seen.isoformat() if seen else 'never seen'}")


@app.command("transactions")
def list_transactions(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
                      station: str | None = typer.Option(None, "--station")) -> None:
    """List recorded transactions as JSON lines."""
    for tx in _with_store(db, lambda s: s.transactions(station)):
        typer.echo(json.dumps(tx))


@app.command("create-token")
def create_token_command(
    role: str = typer.Option(..., "--role", help="viewer (read), operator (+ commands to stations), admin (+ registry, "
                             "trust anchors, revocations, security-relevant commands, audit log)"),
    name: str = typer.Option("api", "--name", help="Who or what uses it (shown in listings and the audit log)"),
    days: float = typer.Option(DEFAULT_DAYS, "--days", "--expires-in", help="Valid for this many days"),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
) -> None:
    """Make an API token and print it once (only its hash is stored): `Authorization: Bearer <token>`."""
    try:
        parsed = Role.parse(role)
    except ValueError as e:
        typer.echo(f"error: --role: {e}", err=True)
        raise typer.Exit(2) from None
    token_id, token = _with_store(db, lambda s: create_token(s, name, parsed, days=days),
                                  audit=("create-token", None, f"--role {parsed.label} --name {name}"))
    typer.echo(f"API token {token_id} ({parsed.label}, {name!r}, valid {days:g} days); it is shown only now:",
               err=True)
    typer.echo(token)


@app.command("tokens")
def list_tokens(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """List API tokens (never their secrets): id, role, name, expiry, state."""
    now = datetime.now(UTC)
    for t in _with_store(db, lambda s: s.api_tokens()):
        state = "revoked" if t["revokedAt"] else "active" if _after(t["expiresAt"], now) else "expired"
        typer.echo(f"{t['id']}\t{t['role']}\t{t['name']}\texpires {t['expiresAt']}\t{state}")


@app.command("revoke-token")
def revoke_token(token_id: str = typer.Argument(..., help="The token's id (`tokens` lists them)"),
                 db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """Revoke an API token: refused from the next request on."""
    if not _with_store(db, lambda s: s.revoke_api_token(token_id), audit=("revoke-token", None, token_id)):
        typer.echo(f"error: no API token {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@app.command("add-user")
def add_user(
    name: str = typer.Argument(..., help="The user's login name"),
    role: str = typer.Option(..., "--role", help="viewer, operator or admin (the API's roles)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of "
                                        "stdin (else it is asked for twice)"),
    db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
) -> None:
    """Create a dashboard user (or set the role and password of an existing one); the password is stored as scrypt."""
    try:
        parsed = Role.parse(role)
    except ValueError as e:
        typer.echo(f"error: --role: {e}", err=True)
        raise typer.Exit(2) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            typer.echo("error: the passwords differ", err=True)
            raise typer.Exit(2)
    user = _with_store(db, lambda s: Users(s).add(name, parsed, password),
                       audit=("add-user", None, f"{name} --role {parsed.label}"))
    typer.echo(f"user {user.name} ({user.role.label}, id {user.id})")


@app.command("users")
def list_users(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """List dashboard users (never their password hashes): id, name, role, state."""
    for u in _with_store(db, lambda s: Users(s).list()):
        typer.echo(f"{u['id']}\t{u['name']}\t{u['role']}\t{'disabled' if u['disabledAt'] else 'active'}")


@app.command("disable-user")
def disable_user(name: str = typer.Argument(..., help="The user's login name"),
                 db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP)) -> None:
    """Disable a dashboard user: its sessions end at their next request (`add-user` enables it again)."""
    if not _with_store(db, lambda s: Users(s).disable(name), audit=("disable-user", None, name)):
        typer.echo(f"error: no user {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {name}")


@app.command("audit")
def list_audit(db: str = typer.Option(DEFAULT_URL, "--db", help=DB_HELP),
               limit: int = typer.Option(100, "--limit", min=1),
               station: str | None = typer.Option(None, "--station")) -> None:
    """The audit log (API commands and changes, CLI changes), newest first, as JSON lines."""
    for entry in _with_store(db, lambda s: s.audit(limit=limit, station_id=station)):
        typer.echo(json.dumps(entry))


def _after(iso: str | None, now: datetime) -> bool:
    """Whether an RFC 3339 time from the store lies after `now`."""
    return iso is not None and datetime.fromisoformat(iso.replace("Z", "+00:00")) > now


def _cli_user() -> str:
    """Who runs the CLI, for the audit log."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _with_store(db: str, fn: Callable[[Store], T], audit: tuple[str, str | None, str] | None = None) -> T:
    """Run `fn` on the store at `db`, turning store errors into a clear exit; `audit` = (sub-command, station,
    arguments): record the change in the audit log (status 0 done, 1 refused; never a secret in the arguments)."""
    try:
        store = Store(db)
    except StoreError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None

    def record(status: int) -> None:
        if audit is not None:
            entry: dict[str, Any] = {"token_id": None, "actor": f"cli:{_cli_user()}", "role": "admin",
                                     "method": "CLI", "path": f"v2gstack csms {audit[0]} {audit[2]}",
                                     "action": audit[0], "station_id": audit[1], "status": status, "client": None}
            store.record_audit(entry)

    try:
        result = fn(store)
        record(1 if result is False else 0)
        return result
    except StoreError as e:
        record(1)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
