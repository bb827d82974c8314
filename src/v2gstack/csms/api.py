"""The CSMS REST API (FastAPI, OpenAPI docs at /docs): stations, idTokens, transactions, and commands to stations.

Commands take the OCPP request payload exactly as the schema of the station's version (2.0.1 or 2.1) spells it and
return the station's answer; the engine validates the payload, so a malformed command is refused with 422 before
anything is sent. The OCPP 2.1 V2X commands (csms/api_v2x.py) are also checked by the V2X rules.
Every endpoint but `GET /api/health` needs an API token (csms/auth.py): viewers read, operators also command
stations, admins also change the registry and trust; every change and command is audited (csms/audit.py). Bodies are
capped and must be UTF-8 JSON, and the Host header must name this API (csms/guard.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..ocpp.v2x import EnergyTransferMode
from ..pki.ocsp import REASONS, OcspResponder
from .api_blocks import add_block_routes
from .api_grid import add_grid_routes
from .api_metrics import add_metrics_route
from .api_v2x import add_v2x_routes
from .audit import AuditLog, note
from .auth import ApiAuth, Principal, Role, forbid_unless
from .dashboard.routes import add_dashboard
from .diagnostics import UPLOAD_PATH
from .guard import DEFAULT_MAX_BODY, LOOPBACK_HOSTS, BodyGuard
from .login import LoginPolicy, Sessions, add_login_routes
from .ocpp16 import COMMANDS_16, OPERATOR_ACTIONS_16
from .pnc16 import CSMS_MESSAGES
from .service import CommandError, Csms, _remote_start_id
from .singletons import op_singleton_holders
from .store import StoreError, _iso
from .strict_json import StrictJsonRoute
from .timeline import merged_timeline
from .users import Users

# URL command name -> OCPP 2.0.1 action the CSMS may send.
COMMANDS: dict[str, str] = {
    "request-start": "RequestStartTransaction",
    "request-stop": "RequestStopTransaction",
    "reset": "Reset",
    "get-variables": "GetVariables",
    "set-variables": "SetVariables",
    "trigger-message": "TriggerMessage",
    "change-availability": "ChangeAvailability",
    "unlock-connector": "UnlockConnector",
    "set-charging-profile": "SetChargingProfile",
    "clear-charging-profile": "ClearChargingProfile",
    "get-charging-profiles": "GetChargingProfiles",
    "get-composite-schedule": "GetCompositeSchedule",
    "get-base-report": "GetBaseReport",
    "get-transaction-status": "GetTransactionStatus",
    "data-transfer": "DataTransfer",
    "clear-cache": "ClearCache",
    "send-local-list": "SendLocalList",
    "get-local-list-version": "GetLocalListVersion",
    "get-installed-certificate-ids": "GetInstalledCertificateIds",
    "install-certificate": "InstallCertificate",
    "delete-certificate": "DeleteCertificate",
    "certificate-signed": "CertificateSigned",
}
# What an operator may send; every other action (certificates, variables, local lists, firmware, network profiles,
# vendor DataTransfer, any other `call-<Action>`) changes a station's security or authorization: admin only.
OPERATOR_ACTIONS = frozenset({
    "RequestStartTransaction", "RequestStopTransaction", "Reset", "GetVariables", "TriggerMessage",
    "ChangeAvailability", "UnlockConnector", "SetChargingProfile", "ClearChargingProfile", "GetChargingProfiles",
    "GetCompositeSchedule", "GetBaseReport", "GetReport", "GetTransactionStatus", "ClearCache", "GetLocalListVersion",
    "GetInstalledCertificateIds", "ReserveNow", "CancelReservation", "GetDisplayMessages", "SetDisplayMessage",
    "ClearDisplayMessage", "CostUpdated", "UpdateDynamicSchedule", "NotifyAllowedEnergyTransfer", "AFRRSignal",
})


class StationIn(BaseModel):
    """A station to register."""

    id: str = Field(min_length=1, max_length=48, examples=["CS001"])
    password: str | None = Field(None, min_length=16, max_length=40, description="Basic auth password (profiles 1-2)")
    securityProfile: int = Field(1, ge=0, le=3)


class IdTokenIn(BaseModel):
    """An idToken and the authorization status the CSMS answers for it."""

    idToken: str = Field(min_length=1, max_length=36, examples=["04A1B2C3"])
    type: str = Field("ISO14443", examples=["ISO14443", "eMAID", "Central", "KeyCode", "MacAddress"])
    status: str = Field("Accepted", examples=["Accepted", "Blocked", "Invalid", "Expired"])
    groupId: str | None = None
    account: str | None = None
    expiresAt: datetime | None = None
    allowedEnergyTransfer: list[EnergyTransferMode] | None = Field(
        None, min_length=1, examples=[["DC", "DC_BPT"]],
        description="OCPP 2.1: the energy transfer modes its AuthorizeResponse allows (null: the CSMS's default)")


class RootIn(BaseModel):
    """A root certificate to trust."""

    kind: str = Field(examples=["MORootCertificate", "V2GRootCertificate", "OEMRootCertificate"])
    pem: str


class RevokeIn(BaseModel):
    """A certificate to revoke."""

    pem: str
    reason: str = Field("unspecified", examples=["key_compromise", "superseded", "cessation_of_operation"])


AUTH_STATUSES = {"Accepted", "Blocked", "ConcurrentTx", "Expired", "Invalid", "NoCredit", "NotAllowedTypeEVSE",
                 "NotAtThisLocation", "NotAtThisTime", "Unknown"}
TOKEN_TYPES = {"Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "NoAuthorization"}


def create_app(csms: Csms, *, trace_dir: Path | None = None, allowed_hosts: list[str] | None = None,
               max_body: int = DEFAULT_MAX_BODY, login: LoginPolicy | None = None,
               metrics_token: str | None = None) -> FastAPI:
    """The API of one running CSMS; with `trace_dir` (station timelines on this machine) timelines include them.

    `allowed_hosts`: the names the Host header may carry (default: the loopback names; see guard.allowed_hosts);
    `max_body`: the request size cap in bytes; `login`: browser sessions and lockout (csms/login.py);
    `metrics_token`: a secret that opens /metrics alone (csms/api_metrics.py). No CORS: browsers on other origins get
    no access.
    """
    app = FastAPI(title="v2gstack CSMS", version="0.2",
                  description="Stations, idTokens, transactions (with meter values and events) and OCPP 2.0.1 "
                              "commands to connected stations. Authenticate with `Authorization: Bearer <token>` "
                              "(`v2gstack csms create-token`).")
    app.router.route_class = StrictJsonRoute  # NaN, Infinity and 1e999 in a body: 422 like any invalid JSON
    store = csms.store
    sessions = Sessions(Users(store), login)
    auth = ApiAuth(store, sessions)
    viewer, admin = Depends(auth.require(Role.VIEWER)), Depends(auth.require(Role.ADMIN))  # operator: see command()
    app.add_middleware(AuditLog, worker=csms.worker)  # innermost of the three: sees the principal and the status
    app.add_middleware(BodyGuard, max_body=max_body, raw_prefix=UPLOAD_PATH, max_raw=csms.config.max_upload)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOOPBACK_HOSTS),
                       www_redirect=False)

    def station_json(st: Any) -> dict[str, Any]:
        return {"id": st.id, "online": csms.online(st.id), "securityProfile": st.security_profile,
                "vendor": st.vendor, "model": st.model, "firmware": st.firmware, "serialNumber": st.serial_number,
                "bootStatus": st.boot_status, "lastSeen": _iso(st.last_seen),
                "connectorStatus": st.connector_status or {}, "hasPassword": bool(st.password_hash),
                "ocppVersion": csms.version_of(st.id) or st.ocpp_version,
                **({"connectorErrors": st.connector_errors} if st.connector_errors else {})}

    def token_json(t: Any) -> dict[str, Any]:
        return {"idToken": t.id_token, "type": t.type, "status": t.status, "groupId": t.group_id,
                "account": t.account, "expiresAt": _iso(t.expires_at),
                "allowedEnergyTransfer": t.allowed_energy_transfer}

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness, without a token (and without any data)."""
        return {"status": "ok"}

    @app.get("/api/cluster", tags=["health"], dependencies=[viewer])
    async def cluster() -> dict[str, Any]:
        """This node of a cluster (docs/scale-out.md): its id, the stations connected here, the singletons it runs,
        which node holds each singleton lease, the sessions its grid control follows, and its event feed's counts
        (published, duplicates dropped)."""
        holders = await csms.worker.read(op_singleton_holders) if csms.singletons is not None else {}
        feed = csms.feed
        return {"nodeId": csms.config.node_id, "connected": len(csms.server.connections),
                "singletonsHere": csms.singletons.held() if csms.singletons is not None else {},
                "singletons": {name: {"nodeId": node, "epoch": epoch} for name, (node, epoch) in holders.items()},
                "gridSessions": None if csms.grid is None else len(csms.grid.sessions),
                "events": None if feed is None else {"stream": feed.stream, "published": feed.published,
                                                      "duplicates": feed.duplicates}}

    @app.get("/api/audit", tags=["audit"], dependencies=[admin])
    def audit(limit: int = Query(100, ge=1, le=10000), station: str | None = None,
              token: str | None = Query(None, description="a token id")) -> list[dict[str, Any]]:
        """Commands and administrative changes, newest first: who (token id, name, role), when, method, path,
        action, station, the status answered, the client's address."""
        return store.audit(limit=limit, station_id=station, token_id=token)

    @app.get("/api/stations", tags=["stations"], dependencies=[viewer])
    def list_stations() -> list[dict[str, Any]]:
        """Every registered station, with its connection state and connector statuses."""
        return [station_json(st) for st in store.stations()]

    @app.post("/api/stations", status_code=201, tags=["stations"], dependencies=[admin])
    def add_station(body: StationIn, request: Request) -> dict[str, Any]:
        """Register a station (it may then connect)."""
        note(request, station=body.id)
        try:
            store.add_station(body.id, body.password, body.securityProfile)
        except StoreError as e:
            raise HTTPException(409 if "already" in str(e) else 422, str(e)) from None
        st = store.station(body.id)
        return station_json(st)

    @app.get("/api/stations/{station_id}", tags=["stations"], dependencies=[viewer])
    def get_station(station_id: str) -> dict[str, Any]:
        """One station, with its open transactions."""
        st = store.station(station_id)
        if st is None:
            raise HTTPException(404, f"unknown station {station_id!r}")
        out = station_json(st)
        out["openTransactions"] = [t for t in store.transactions(station_id) if t["state"] != "Ended"]
        return out

    @app.delete("/api/stations/{station_id}", status_code=204, tags=["stations"], dependencies=[admin])
    def delete_station(station_id: str) -> Response:
        """Remove a station from the registry (its transactions stay)."""
        try:
            found = store.delete_station(station_id)
        except Exception as e:  # transactions reference it
            raise HTTPException(409, f"station {station_id!r} has recorded data: {type(e).__name__}") from None
        if not found:
            raise HTTPException(404, f"unknown station {station_id!r}")
        return Response(status_code=204)

    @app.get("/api/stations/{station_id}/meter-values", tags=["stations"], dependencies=[viewer])
    def station_meter_values(station_id: str, evse: int | None = Query(None, ge=0, description="0: main meter"),
                             since: datetime | None = None,
                             limit: int = Query(1000, ge=1, le=10000)) -> list[dict[str, Any]]:
        """A station's sampled values, oldest first (MeterValues and those of transactions), per EVSE: `value` and
        `unit` normalised (Wh, W, ...: multiplier applied, kilo units converted), `sent` as the station sent them."""
        if store.station(station_id) is None:
            raise HTTPException(404, f"unknown station {station_id!r}")
        return store.meter_values(station_id, evse_id=evse, since=since, limit=limit)

    @app.get("/api/idtokens", tags=["idtokens"], dependencies=[viewer])
    def list_tokens() -> list[dict[str, Any]]:
        """Every registered idToken."""
        return [token_json(t) for t in store.id_tokens()]

    @app.post("/api/idtokens", status_code=201, tags=["idtokens"], dependencies=[admin])
    def put_token(body: IdTokenIn) -> dict[str, Any]:
        """Create or replace an idToken."""
        if body.status not in AUTH_STATUSES:
            raise HTTPException(422, f"status must be one of {sorted(AUTH_STATUSES)}")
        if body.type not in TOKEN_TYPES:
            raise HTTPException(422, f"type must be one of {sorted(TOKEN_TYPES)}")
        store.put_id_token(body.idToken, body.type, body.status, body.groupId, body.account, body.expiresAt,
                           body.allowedEnergyTransfer)
        return token_json(store.id_token(body.idToken, body.type))

    @app.get("/api/idtokens/{token_type}/{id_token}", tags=["idtokens"], dependencies=[viewer])
    def get_token(token_type: str, id_token: str) -> dict[str, Any]:
        """One idToken."""
        tok = store.id_token(id_token, token_type)
        if tok is None:
            raise HTTPException(404, f"unknown idToken {token_type}:{id_token}")
        return token_json(tok)

    @app.delete("/api/idtokens/{token_type}/{id_token}", status_code=204, tags=["idtokens"],
                dependencies=[admin])
    def delete_token(token_type: str, id_token: str) -> Response:
        """Remove an idToken (it is then Unknown)."""
        if not store.delete_id_token(id_token, token_type):
            raise HTTPException(404, f"unknown idToken {token_type}:{id_token}")
        return Response(status_code=204)

    @app.get("/api/transactions", tags=["transactions"], dependencies=[viewer])
    def list_transactions(station: str | None = None,
                          state: str | None = Query(None, pattern="^(Started|Updated|Ended)$"),
                          limit: int = Query(1000, ge=1, le=100000)) -> list[dict[str, Any]]:
        """Transactions, oldest first; filter by station and state."""
        return store.transactions(station, state=state, limit=limit)

    @app.get("/api/transactions/{transaction_id}", tags=["transactions"], dependencies=[viewer])
    def get_transaction(transaction_id: str, station: str | None = None) -> dict[str, Any]:
        """A transaction with every event, every meter value, and the session messages the CSMS logged."""
        tx = store.transaction(station, transaction_id)
        if tx is None:
            raise HTTPException(404, f"unknown transaction {transaction_id!r}")
        tx["messages"] = store.messages(station_id=tx["stationId"], transaction_id=transaction_id,
                                        session_id=(tx["iso15118"] or {}).get("sessionId"))
        return tx

    @app.get("/api/roots", tags=["pki"], dependencies=[viewer])
    def list_roots(kind: str | None = None) -> list[dict[str, Any]]:
        """Installed trust anchors (V2G, MO, OEM, CSMS, manufacturer roots)."""
        return store.trust_anchors(kind)

    @app.post("/api/roots", status_code=201, tags=["pki"], dependencies=[admin])
    def add_root(body: RootIn) -> list[dict[str, Any]]:
        """Install root certificate(s) from PEM under a kind (e.g. MORootCertificate)."""
        try:
            fps = store.add_trust_anchor(body.kind, body.pem)
        except StoreError as e:
            raise HTTPException(422, str(e)) from None
        return [r for r in store.trust_anchors(body.kind) if r["fingerprint"] in fps]

    @app.delete("/api/roots/{fingerprint}", status_code=204, tags=["pki"], dependencies=[admin])
    def remove_root(fingerprint: str) -> Response:
        """Remove a trust anchor by its SHA-256 fingerprint."""
        if not store.remove_trust_anchor(fingerprint):
            raise HTTPException(404, f"no root with fingerprint {fingerprint}")
        return Response(status_code=204)

    @app.post("/api/certificates/revoke", tags=["pki"], dependencies=[admin])
    def revoke_certificate(body: RevokeIn) -> dict[str, Any]:
        """Revoke a certificate issued by one of this CSMS's CAs (--pki-dir): its OCSP responder (`v2gstack pki ocsp
        --dir` on the same folder) answers `revoked` from now on, and contract checks see it."""
        if not csms.config.pki_dir:
            raise HTTPException(409, "this CSMS has no PKI folder (--pki-dir)")
        if body.reason not in REASONS:
            raise HTTPException(422, f"reason must be one of {sorted(REASONS)}")
        try:
            cert = x509.load_pem_x509_certificate(body.pem.encode())
        except ValueError:
            raise HTTPException(422, "not a PEM certificate") from None
        responder = OcspResponder.from_pki_dir(Path(csms.config.pki_dir))
        issuer = None
        for ca in responder.cas:  # the CA whose key signed it (names alone can repeat across PKIs)
            try:
                cert.verify_directly_issued_by(ca.cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = ca.cert
            break
        if issuer is None:
            raise HTTPException(404, "no CA of this CSMS issued that certificate")
        responder.revocations.revoke(cert, issuer, body.reason)
        return {"serialNumber": format(cert.serial_number, "x"), "subject": cert.subject.rfc4514_string(),
                "reason": body.reason}

    @app.get("/api/timeline/{key}", tags=["transactions"], dependencies=[viewer])
    def timeline(key: str) -> list[dict[str, Any]]:
        """The merged cross-protocol timeline of a session: `key` is a transactionId, ISO 15118 SessionID or
        trace id. CSMS records always; the station's timelines too when this CSMS was given their folder."""
        entries = merged_timeline(key, trace_dir=trace_dir, store=store)
        if not entries:
            raise HTTPException(404, f"no timeline for {key!r}")
        return [e.to_dict() for e in entries]

    add_login_routes(app, sessions)
    add_metrics_route(app, csms, auth, metrics_token)
    add_dashboard(app, csms, auth)
    add_grid_routes(app, csms, auth)
    add_v2x_routes(app, csms, auth)  # before the generic command route: they take some of its names
    add_block_routes(app, csms, auth)  # local lists, reservations, display messages, logs, firmware, tariffs

    @app.get("/api/stations/{station_id}/commands", tags=["commands"], dependencies=[viewer])
    def station_commands(station_id: str) -> dict[str, Any]:
        """The commands a station's OCPP version has (its open connection's, else the last one agreed): command name
        -> OCPP action, and for 1.6 the Plug & Charge DataTransfer messages (`pnc-<Action>`)."""
        st = store.station(station_id)
        if st is None:
            raise HTTPException(404, f"unknown station {station_id!r}")
        version = csms.version_of(station_id) or st.ocpp_version
        out: dict[str, Any] = {"stationId": station_id, "ocppVersion": version,
                               "commands": COMMANDS_16 if version == "1.6" else COMMANDS}
        if version == "1.6":
            out["pnc"] = [f"pnc-{a}" for a in CSMS_MESSAGES]
        return out

    @app.post("/api/stations/{station_id}/{command}", tags=["commands"])
    async def command(station_id: str, command: str, request: Request,
                      payload: dict[str, Any] = Body(...,  # noqa: B008 (FastAPI's idiom)
                                                     examples=[{"idToken": {"idToken": "04A1B2C3",
                                                                            "type": "ISO14443"}}]),
                      principal: Principal = Depends(auth.authenticated)) -> Any:  # noqa: B008
        """Send an OCPP request to a connected station and return its answer.

        `command` is one of the names in COMMANDS (e.g. `request-start`, `request-stop`, `reset`, `get-variables`,
        `set-variables`, `trigger-message`, `set-charging-profile`) or `call-<Action>` for any other 2.0.1 action.
        The body is required: the request payload, `{}` for a request whose fields are all optional.
        Operators may send the operational actions (OPERATOR_ACTIONS); the rest needs an admin.
        403: role too low; 409: not connected; 422: no body or the payload does not fit the schema;
        502: the station refused (CALLERROR); 504: no answer in time.
        """
        v16 = csms.version_of(station_id) == "1.6"
        table = COMMANDS_16 if v16 else COMMANDS
        action = table.get(command) or (command[5:] if command.startswith("call-") else None)
        if v16 and command.startswith("pnc-"):  # 1.6 Plug & Charge per the application note: admin only
            note(request, action=f"DataTransfer:{command[4:]}", station=station_id)
            forbid_unless(principal, Role.ADMIN, command)
            try:
                answer = await csms.ocpp16.pnc.call(station_id, command[4:], payload)
            except CommandError as e:
                return JSONResponse({"detail": str(e), **e.details}, status_code=e.status)
            return {"stationId": station_id, "action": f"DataTransfer:{command[4:]}", "request": payload,
                    "response": answer}
        note(request, action=action or command, station=station_id)
        forbid_unless(principal, Role.OPERATOR, "a command")
        if action is None:
            raise HTTPException(404, f"unknown command {command!r}; known: {sorted(table)} or call-<Action>")
        if action not in (OPERATOR_ACTIONS_16 if v16 else OPERATOR_ACTIONS):
            forbid_unless(principal, Role.ADMIN, action)
        if action == "RequestStartTransaction" and "remoteStartId" not in payload:
            payload = {**payload, "remoteStartId": _remote_start_id()}
        try:
            answer = await csms.call(station_id, action, payload)
        except CommandError as e:
            return JSONResponse({"detail": str(e), **e.details}, status_code=e.status)
        return {"stationId": station_id, "action": action, "request": payload, "response": answer}

    return app
