"""Charging-station side websocket client: connects with a subprotocol and credentials, keeps reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from .auth import basic_auth_header
from .connection import Connection, WebSocketLike
from .flood import FloodPolicy
from .redact import redacted_logger
from .router import Router
from .schemas import SchemaStore
from .versions import Version

log = logging.getLogger(__name__)

ConnectionHook = Callable[[Connection], Awaitable[None] | None]
Dialer = Callable[[str, list[str], dict[str, str]], Awaitable[tuple[WebSocketLike, str | None]]]
"""Opens the websocket instead of `websockets`: (url, subprotocols offered, headers) -> (the websocket, the agreed
subprotocol or None); raises HandshakeRefused, OSError or TimeoutError like connect() (tests: an in-memory pair)."""


class HandshakeRefused(ConnectionError):
    """The CSMS refused the websocket handshake (`status` is the HTTP status; 0 when no version was agreed)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds of a 503/429's Retry-After header, when it gave them


@dataclass(frozen=True, slots=True)
class BackOff:
    """Reconnect waits as the OCPP 2.x RetryBackOff* variables define them: the minimum wait doubles with every
    failed attempt (at most `repeat_times` times) and a random 0..`random_range` seconds is added (jitter)."""

    wait_minimum: float = 3.0  # RetryBackOffWaitMinimum
    random_range: float = 10.0  # RetryBackOffRandomRange
    repeat_times: int = 5  # RetryBackOffRepeatTimes

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before reconnection attempt number `attempt` (0 = first after a loss)."""
        return self.wait_minimum * 2 ** min(attempt, self.repeat_times) + rng() * self.random_range

    def wait(self, attempt: int, retry_after: float | None = None, rng: Callable[[], float] = random.random) -> float:
        """The wait before attempt `attempt`, and never less than a refusal's Retry-After (HTTP 503/429): the
        CSMS's hint is a lower bound, the station's own back-off still grows and stays jittered."""
        return max(self.delay(attempt, rng), retry_after or 0.0)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header given in seconds (the HTTP-date form is not used by CSMSs and is ignored)."""
    if value is None:
        return None
    value = value.strip()
    return float(value) if value.isdigit() else None


class StationClient:
    """One charging station's link to its CSMS: connect, serve, and reconnect with back-off when it drops."""

    def __init__(
        self,
        csms_url: str,
        station_id: str,
        router: Router,
        *,
        versions: Sequence[Version | str] = (Version.V201,),
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        call_timeout: float = 30.0,
        max_message_size: int = 65536,
        ws_max_size: int | None = None,
        ping_interval: float | None = 60.0,
        ping_timeout: float | None = 30.0,
        open_timeout: float = 10.0,
        compression: str | None = "deflate",
        proxy: str | Literal[True] | None = None,
        backoff: BackOff | None = None,
        on_connect: ConnectionHook | None = None,
        schemas: SchemaStore | None = None,
        flood: FloodPolicy | None = None,
        dial: Dialer | None = None,
        endpoints: Callable[[], Sequence[str]] | None = None,
        attempts_per_endpoint: Callable[[], int] | None = None,
    ) -> None:
        self.csms_url = csms_url.rstrip("/")
        # several CSMS addresses (OCPP NetworkConnectionProfiles in priority order): after `attempts_per_endpoint()`
        # failed attempts on one, the next is tried; a connection that drops is retried on the same address first
        self.endpoints = endpoints
        self.attempts_per_endpoint = attempts_per_endpoint
        self._endpoint = 0
        self.station_id = station_id
        self.router = router
        self.versions = [Version.parse(v) for v in versions]
        self.password = password
        self.ssl = ssl
        self.call_timeout = call_timeout
        self.max_message_size = max_message_size
        self.ws_max_size = ws_max_size if ws_max_size is not None else 4 * max_message_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.compression = compression
        self.proxy = proxy
        self.backoff = backoff or BackOff()
        self.on_connect = on_connect
        self.schemas = schemas
        self.flood = flood
        self.dial = dial
        self.connection: Connection | None = None
        self.connects = 0  # successful connections so far
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()

    @property
    def url(self) -> str:
        """The connection URL: the CSMS endpoint plus '/' and the percent-encoded station identity."""
        return f"{self.csms_url}/{quote(self.station_id, safe='')}"

    async def connect(self) -> Connection:
        """Open one connection (no retry) and start serving it; raises HandshakeRefused, OSError, TimeoutError."""
        headers = {}
        if self.password is not None:
            headers["Authorization"] = basic_auth_header(self.station_id, self.password)
        if self.dial is not None:
            ws, subprotocol = await self.dial(self.url, [v.subprotocol for v in self.versions], headers)
            if subprotocol is None:
                await ws.close(1002, "no agreed OCPP version")
                raise HandshakeRefused(0, f"CSMS agreed to none of {[v.subprotocol for v in self.versions]}")
            return self._serve(ws, subprotocol)
        kwargs: dict[str, Any] = {"ssl": self.ssl} if self.url.startswith("wss:") else {}
        try:
            ws = await connect(
                self.url,
                subprotocols=[v.subprotocol for v in self.versions],  # type: ignore[misc]
                additional_headers=headers,
                max_size=self.ws_max_size,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                open_timeout=self.open_timeout,
                compression=self.compression,
                proxy=self.proxy,
                logger=redacted_logger(f"{__name__}.websockets"),  # its DEBUG lines show our Authorization header
                **kwargs,
            )
        except InvalidStatus as e:
            raise HandshakeRefused(e.response.status_code, f"CSMS refused {self.station_id}: {e}",
                                   retry_after_seconds(e.response.headers.get("Retry-After"))) from e
        except InvalidHandshake as e:
            raise HandshakeRefused(0, f"handshake with the CSMS failed: {e}") from e
        if ws.subprotocol is None:
            await ws.close(1002, "no agreed OCPP version")
            raise HandshakeRefused(0, f"CSMS agreed to none of {[v.subprotocol for v in self.versions]}")
        return self._serve(ws, ws.subprotocol)

    def _serve(self, ws: WebSocketLike, subprotocol: str) -> Connection:
        """The Connection over an opened websocket, serving in the background."""
        conn = Connection(ws, Version.from_subprotocol(subprotocol), self.router, station_id=self.station_id,
                          call_timeout=self.call_timeout, max_message_size=self.max_message_size,
                          schemas=self.schemas, flood=self.flood)
        conn.start()
        return conn

    async def run(self) -> None:
        """Stay connected until stop(): connect, run on_connect, wait for the drop, back off, reconnect."""
        attempt = -1  # no wait before the very first attempt
        failures = 0  # failed attempts on the current endpoint
        retry_after: float | None = None  # the last refusal's Retry-After
        while not self._stop.is_set():
            if attempt >= 0:
                delay = self.backoff.wait(attempt, retry_after)
                log.info("%s: reconnecting in %.1fs", self.station_id, delay)
                if await self._stopped_within(delay):
                    break
            self._choose_endpoint()
            try:
                conn = await self.connect()
            except (OSError, TimeoutError, HandshakeRefused) as e:
                log.warning("%s: cannot connect to %s: %s", self.station_id, self.csms_url, e)
                retry_after = e.retry_after if isinstance(e, HandshakeRefused) else None
                attempt += 1
                failures += 1
                if self.endpoints is not None and failures >= (self.attempts_per_endpoint or (lambda: 1))():
                    self._endpoint += 1  # the next network profile; its back-off starts afresh
                    failures, attempt = 0, 0
                continue
            attempt, failures, retry_after = 0, 0, None
            self.connection = conn
            self.connects += 1
            self._connected.set()
            log.info("%s: connected to %s (ocpp%s)", self.station_id, self.csms_url, conn.version.value)
            if self.on_connect is not None:
                try:
                    r = self.on_connect(conn)
                    if inspect.isawaitable(r):
                        await r
                except Exception:
                    log.exception("%s: on_connect failed", self.station_id)
            await conn.wait_closed()
            self._connected.clear()
            self.connection = None
            log.info("%s: connection to the CSMS lost", self.station_id)

    def _choose_endpoint(self) -> None:
        """Point csms_url at the current network profile (the list may have changed: SetNetworkProfile)."""
        if self.endpoints is None:
            return
        urls = list(self.endpoints())
        if urls:
            self._endpoint %= len(urls)
            url = urls[self._endpoint].rstrip("/")
            if url != self.csms_url:
                log.info("%s: trying network profile %d of %d: %s", self.station_id, self._endpoint + 1, len(urls),
                         url)
                self.csms_url = url

    async def wait_connected(self) -> Connection:
        """Wait until a connection is up and return it."""
        while True:
            await self._connected.wait()
            if self.connection is not None:
                return self.connection

    async def stop(self) -> None:
        """Stop reconnecting and close the current connection."""
        self._stop.set()
        if self.connection is not None:
            await self.connection.close(1000, "station stopping")

    async def _stopped_within(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if stop() was called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()
