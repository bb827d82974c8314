"""CSMS-side websocket server: station identity from the URL, authentication and version at the handshake."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import ssl as ssl_module
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from .admission_gate import BusyRefusal, busy_response
from .auth import AuthDecision, Authenticator, Credentials, SecurityProfile, parse_basic_auth, valid_station_id
from .connection import Connection
from .flood import FloodGuard, FloodPolicy
from .redact import redacted_logger
from .router import Router
from .schemas import SchemaStore
from .tls import peer_common_name
from .versions import Version

log = logging.getLogger(__name__)

ConnectionHook = Callable[[Connection], Awaitable[None] | None]

CLOSE_NO_SUBPROTOCOL = 1002  # protocol error: the station offered no OCPP version we speak
CLOSE_REPLACED = 1000  # a newer connection of the same station took over


class OcppServer:
    """Accepts charging stations at ws(s)://host:port/<path>/<stationId> and runs one Connection per station."""

    def __init__(
        self,
        routers: Mapping[Version | str, Router],
        *,
        security_profile: SecurityProfile | int = SecurityProfile.BASIC,
        authenticator: Authenticator | None = None,
        ssl: ssl_module.SSLContext | None = None,
        path: str = "/ocpp",
        call_timeout: float = 30.0,
        max_message_size: int = 65536,
        ws_max_size: int | None = None,
        ping_interval: float | None = 60.0,
        ping_timeout: float | None = 30.0,
        compression: str | None = "deflate",
        on_connect: ConnectionHook | None = None,
        on_disconnect: ConnectionHook | None = None,
        schemas: SchemaStore | None = None,
        flood: FloodPolicy | None = None,
        max_connections: int | None = None,
        max_handshakes: int | None = None,
        busy_retry_after: float = 10.0,
        backlog: int = 2048,
        open_timeout: float = 10.0,
    ) -> None:
        self.routers: dict[Version, Router] = {Version.parse(v): r for v, r in routers.items()}
        if not self.routers:
            raise ValueError("at least one OCPP version (router) is needed")
        self.security_profile = SecurityProfile(security_profile)
        _check_profile(self.security_profile, ssl, authenticator)
        self.authenticator = authenticator
        self.ssl = ssl
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.call_timeout = call_timeout
        self.max_message_size = max_message_size
        # Frames above max_message_size but below this are answered with a CALLERROR; bigger ones close the socket.
        self.ws_max_size = ws_max_size if ws_max_size is not None else 4 * max_message_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.compression = compression
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.schemas = schemas
        self.flood = flood  # log rate limits and when a peer's protocol errors close its connection
        # Admission: more open connections than max_connections (the node's file descriptors), or more handshakes
        # in progress at once than max_handshakes (a reconnect storm), are answered 503 with a Retry-After of about
        # busy_retry_after seconds (jittered). The check is made when the socket is accepted, and the refusal is a
        # pre-built response written by a bare asyncio protocol (admission_gate.py): no websockets connection, no
        # HTTP parsing, no task, no password check.
        self.max_connections = max_connections
        self.max_handshakes = max_handshakes
        self.busy_retry_after = busy_retry_after
        self.refused_busy = 0  # handshakes answered 503, for reports
        # TCP connections the kernel queues until accepted (capped by net.core.somaxconn): asyncio's default of 100
        # overflows in a reconnect storm, and an overflowed connection fails without any HTTP answer
        self.backlog = backlog
        self.open_timeout = open_timeout  # s from the TCP accept to the open websocket (or the 503 sent and closed)
        self._opening: set[ServerConnection] = set()  # accepted sockets whose websocket is not open yet
        self._refusing: set[BusyRefusal] = set()  # sockets being answered 503 by the admission gate
        self.connections: dict[str, Connection] = {}
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, Credentials] = weakref.WeakKeyDictionary()
        self._server: Server | None = None
        self._extra: list[Server] = []  # add_listener's servers (other security profiles)
        self._hook_tasks: set[asyncio.Task[Any]] = set()
        self._refusals = FloodGuard()  # rate limit of the "refused station" lines

    @property
    def versions(self) -> list[Version]:
        """The versions offered, most preferred first."""
        return list(self.routers)

    @property
    def port(self) -> int:
        """The TCP port listened on (useful after start(port=0))."""
        if self._server is None:
            raise RuntimeError("server not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (port 0: any free port)."""
        self._server = await self._serve(host, port, self.ssl, self.security_profile)

    async def add_listener(self, host: str, port: int, security_profile: SecurityProfile | int,
                           ssl: ssl_module.SSLContext | None = None) -> int:
        """One more listener with its own security profile and TLS context, serving the same routers, connections
        and authenticator (profile 1, 2 and 3 stations of one CSMS); its port."""
        profile = SecurityProfile(security_profile)
        _check_profile(profile, ssl, self.authenticator)
        server = await self._serve(host, port, ssl, profile)
        self._extra.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _serve(self, host: str, port: int, ssl: ssl_module.SSLContext | None,
                     profile: SecurityProfile) -> Server:
        """A websockets server whose handshakes are checked for `profile`."""
        async def process_request(ws: ServerConnection, request: Request) -> Response | None:
            return await self._process_request(ws, request, profile)

        opening = self._opening

        class StationSocket(ServerConnection):
            """websockets' connection, counted among the handshakes in progress until it opens or is lost."""

            def connection_lost(self, exc: Exception | None) -> None:
                opening.discard(self)
                super().connection_lost(exc)

        def create_connection(protocol: ServerProtocol, server: Server, **kw: Any) -> Any:
            """The protocol of an accepted socket: a cheap 503 when the node is busy, else websockets'."""
            busy = self._busy()
            if busy is not None:
                return self._refuse_busy(busy)
            conn = StationSocket(protocol, server, **kw)
            opening.add(conn)
            return conn

        return await serve(
            self._handle,
            host,
            port,
            ssl=ssl,
            process_request=process_request,
            select_subprotocol=self._select_subprotocol,
            max_size=self.ws_max_size,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            compression=self.compression,
            open_timeout=self.open_timeout,
            backlog=self.backlog,
            create_connection=create_connection,  # type: ignore[arg-type]  (a refusal is a bare asyncio protocol)
            logger=redacted_logger(f"{__name__}.websockets"),  # websockets logs headers (Authorization) at DEBUG
        )

    async def close(self) -> None:
        """Stop listening and close every station's connection."""
        for server in self._extra:
            server.close()
            await server.wait_closed()
        self._extra.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for refusal in list(self._refusing):
            if refusal.transport is not None:
                refusal.transport.abort()

    async def __aenter__(self) -> OcppServer:
        """Start on the loopback interface, any free port, unless start() ran already."""
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        await self.close()

    # ----- handshake -----

    def _station_id(self, raw_path: str) -> str | None:
        """The station identity from a request path `<path>/<id>`, or None if the path is not one."""
        path = urlsplit(raw_path).path
        prefix = self.path + "/"
        if not path.startswith(prefix):
            return None
        station_id = unquote(path[len(prefix):])
        return station_id if valid_station_id(station_id) else None

    async def _process_request(self, ws: ServerConnection, request: Request,
                               profile: SecurityProfile | None = None) -> Response | None:
        """Authenticate the station before the websocket opens; refuse with 401/403/404 otherwise (with a password
        profile an unknown station gets the 401 of a wrong password)."""
        station_id = self._station_id(request.path)
        if station_id is None:
            return _refuse(ws, HTTPStatus.NOT_FOUND, "no charging station at this path")
        profile = self.security_profile if profile is None else profile
        password = cn = der = None
        if profile.uses_password:
            basic = parse_basic_auth(request.headers.get("Authorization"))
            if basic is None or basic[0] != station_id:
                return _refuse(ws, HTTPStatus.UNAUTHORIZED, "Basic authentication as the station id is required")
            password = basic[1]
        elif profile is SecurityProfile.TLS_CLIENT_CERT:
            cn, der = peer_common_name(ws.transport.get_extra_info("ssl_object"))
            if cn != station_id:
                return _refuse(ws, HTTPStatus.FORBIDDEN, "client certificate does not name this station")
        offered = tuple(p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(","))
        remote = ws.remote_address
        cred = Credentials(station_id, profile, password, cn, der, f"{remote[0]}:{remote[1]}" if remote else "",
                           offered)
        decision = AuthDecision.ACCEPT
        if self.authenticator is not None:
            try:
                verdict = self.authenticator(cred)
                decision = await verdict if inspect.isawaitable(verdict) else verdict
            except Exception:
                log.exception("authenticator failed for %s", station_id)
                return _refuse(ws, HTTPStatus.SERVICE_UNAVAILABLE, "authentication unavailable")
        if decision is not AuthDecision.ACCEPT:
            self._log_refusal(cred, decision)
            if decision is AuthDecision.UNKNOWN_STATION and profile.uses_password:
                decision = AuthDecision.BAD_CREDENTIALS  # answered as a wrong password: no probing for station ids
            return _refuse(ws, HTTPStatus(decision.value), decision.name.replace("_", " ").lower())
        self._handshakes[ws] = cred
        return None

    def _busy(self) -> str | None:
        """Why a new socket cannot be taken now (connection or handshake limit), None when it can."""
        opening = len(self._opening)
        if self.max_connections is not None and len(self.connections) + opening >= self.max_connections:
            return "connection limit of this node reached"
        if self.max_handshakes is not None and opening >= self.max_handshakes:
            return "too many handshakes at once"
        return None

    def _refuse_busy(self, reason: str) -> BusyRefusal:
        """The 503 of a socket accepted while busy (counted; logged at most `log_burst` times a minute)."""
        self.refused_busy += 1
        ok, ended = self._refusals.should_log("busy")
        if ended:
            log.warning("%d more handshakes refused as busy were not logged", ended)
        if ok:
            log.warning("refused a handshake: %s", reason)
        retry_after = max(1, round(self.busy_retry_after * (0.5 + random.random())))
        return BusyRefusal(busy_response(retry_after, reason), self.open_timeout, self._refusing)

    def _log_refusal(self, cred: Credentials, decision: AuthDecision) -> None:
        """A refused handshake, logged at most `log_burst` times a minute per kind of refusal (guessing floods)."""
        ok, ended = self._refusals.should_log(decision.name)
        if ended:
            log.warning("%d more handshakes refused %s were not logged", ended, decision.name)
        if ok:
            log.warning("refused station %s from %s: %s", cred.station_id, cred.remote_address, decision.name)

    def _select_subprotocol(self, ws: ServerConnection, offered: Sequence[str]) -> str | None:
        """The most preferred of our versions the station offers; None completes the handshake without one."""
        for version in self.routers:
            if version.subprotocol in offered:
                return version.subprotocol
        return None

    # ----- sessions -----

    async def _handle(self, ws: ServerConnection) -> None:
        """Run one station's session from the opened websocket until it closes."""
        self._opening.discard(ws)
        cred = self._handshakes.pop(ws, None)
        if cred is None:
            await ws.close(1011, "handshake state lost")
            return
        if ws.subprotocol is None:
            # OCPP-J: without an agreed version the server completes the handshake and closes at once.
            log.warning("station %s offered no supported OCPP version %s", cred.station_id, cred.subprotocols)
            await ws.close(CLOSE_NO_SUBPROTOCOL, "no agreed OCPP version")
            return
        version = Version.from_subprotocol(ws.subprotocol)
        conn = Connection(ws, version, self.routers[version], station_id=cred.station_id,
                          call_timeout=self.call_timeout, max_message_size=self.max_message_size,
                          schemas=self.schemas, flood=self.flood)
        conn.data["credentials"] = cred
        old = self.connections.get(cred.station_id)
        self.connections[cred.station_id] = conn
        if old is not None:
            log.info("station %s reconnected; closing its older connection", cred.station_id)
            self._run_hook(old.close(CLOSE_REPLACED, "replaced by a newer connection"))
        log.info("station %s connected (ocpp%s)", cred.station_id, version.value)
        serving = conn.start()
        if self.on_connect is not None:
            self._run_hook(self.on_connect(conn))
        try:
            await serving
        finally:
            if self.connections.get(cred.station_id) is conn:
                del self.connections[cred.station_id]
            log.info("station %s disconnected", cred.station_id)
            if self.on_disconnect is not None:
                self._run_hook(self.on_disconnect(conn))

    def _run_hook(self, result: Awaitable[Any] | None) -> None:
        """Run a hook's coroutine in the background, logging its failure."""
        if not inspect.isawaitable(result):
            return

        async def guarded() -> None:
            try:
                await result
            except Exception:
                log.exception("connection hook failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)


def _refuse(ws: ServerConnection, status: HTTPStatus, text: str, retry_after: int | None = None) -> Response:
    """An HTTP error response to the handshake (401 also names the Basic scheme; a 503 says when to retry)."""
    response = ws.respond(status, text + "\n")
    if status is HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _check_profile(profile: SecurityProfile, ctx: ssl_module.SSLContext | None,
                   authenticator: Authenticator | None) -> None:
    """Refuse server settings that do not make up the chosen security profile."""
    if profile.uses_tls and ctx is None:
        raise ValueError(f"security profile {int(profile)} needs a TLS context (tls.server_context)")
    if not profile.uses_tls and ctx is not None:
        raise ValueError(f"security profile {int(profile)} runs without TLS; use profile 2 or 3 with a TLS context")
    if profile is SecurityProfile.TLS_CLIENT_CERT and ctx is not None and ctx.verify_mode != ssl_module.CERT_REQUIRED:
        raise ValueError("security profile 3 needs a TLS context that requires client certificates (client_ca=...)")
    if profile is not SecurityProfile.NONE and authenticator is None:
        raise ValueError(f"security profile {int(profile)} needs an authenticator (the station registry)")

