"""The asyncio SECC: TCP and/or TLS listeners, an SDP responder, and one SeccSession per connection.

Each connection runs in its own task; a failure in one (bad framing, undecodable EXI, a timeout, an exception in a
controller) ends that connection with a log line and leaves the others running. The shell tells each session what
it saw (messages, the time each answer took, how the connection ended: iso15118/events.py); failed TLS handshakes,
which happen before any session, go to the server's SeccObserver.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable

from .. import exi
from ..trace.error_map import FailureKind
from .events import SeccObserver, TlsFailed
from .evse import EVSEController
from .msglog import ConnectionLog, MessageRecord, MessageSink
from .netif import link_local_address
from .sdp import SDP_PORT, SDPRequest, SDPResponse, Security, Transport
from .sdp_io import SDPServer, start_sdp_server
from .secc import PausedSessions, SeccConfig, SeccSession
from .stream import ConnectionClosedError, FrameStream, V2GTPProtocol, V2GTPStream
from .tls import TlsPolicyError, check_session20, describe, failure_kind
from .tls_stream import tls_accept
from .v2gtp import DEFAULT_MAX_PAYLOAD, V2GTPError

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS client has to complete the handshake (when the SECC reports handshake failures)."""

DYNAMIC_PORTS = (49152, 65535)
"""[V2G2-064]/[DIN 70121]: the SECC's TCP/TLS port, announced by SDP, is in the dynamic range; EVCCs check it."""


async def _listen(start: Callable[[str, int], Awaitable[asyncio.Server]], host: str, port: int) -> asyncio.Server:
    """A listener on `port`, or with port 0 on a free port of the dynamic range (the OS's ephemeral range is wider).

    The OS picks ephemeral ports from 32768 up on Linux; an SDP answer with such a port is rejected by EVCCs that
    check the standard's range, so port 0 means "a random free port in 49152-65535" here. `start(host, port)` opens
    the listener.
    """
    if port:
        return await start(host, port)
    low, high = DYNAMIC_PORTS
    for _ in range(64):
        try:
            return await start(host, random.randint(low, high))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port in {low}-{high}")


class SeccServer:
    """Serves many concurrent EVCC sessions."""

    def __init__(self, controller_factory: Callable[[], EVSEController], config: SeccConfig | None = None, *,
                 host: str = "::1", port: int = 0, tcp: bool = True, tls: ssl.SSLContext | None = None,
                 tls_port: int = 0, iface: str | None = None, sdp: bool = True, sdp_port: int = SDP_PORT,
                 on_message: MessageSink | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 keep_finished: int = 1000, on_handled: Callable[[str, float], None] | None = None,
                 observer: SeccObserver | None = None) -> None:
        """`on_message(record)` gets every message of every connection (the CLI's log; controllers get them as
        MessageExchanged events). `on_handled(response name, seconds)` is called after each response is sent, with
        the time from the request's last byte read to the response written (what V2G_SECC_Msg_Performance_Time
        limits). `observer.tls_failed(TlsFailed)` hears each failed TLS handshake (the SECC runs TLS itself,
        tls_stream, so that a refused EV gets the alert)."""
        if not tcp and tls is None:
            raise ValueError("enable TCP, TLS or both")
        self.controller_factory = controller_factory
        self.config = config or SeccConfig()
        self.iface = iface
        self.host = f"{link_local_address(iface)}%{iface}" if iface else host
        if sdp and not iface and ipaddress.ip_address(host.split("%")[0]).is_unspecified:
            raise ValueError("SDP needs a concrete address to announce: give --iface or a host such as ::1")
        self.port, self.tls_port = port, tls_port
        self.tcp, self.tls = tcp, tls
        self.sdp, self.sdp_port = sdp, sdp_port
        self.on_message = on_message
        self.on_handled = on_handled
        self.observer = observer
        self._handshakes: set[asyncio.StreamWriter] = set()
        self.max_payload = max_payload
        self.paused = PausedSessions()
        self.active: set[SeccSession] = set()
        self.finished: deque[SeccSession] = deque(maxlen=keep_finished)
        self._servers: list[asyncio.Server] = []
        self._tcp_server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._sdp: SDPServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: set[FrameStream] = set()

    # ----- lifecycle -----

    async def start(self) -> None:
        """Open the listeners and the SDP responder."""
        if self.tcp:  # plain TCP: V2GTP cut from the socket's bytes by a Protocol (stream.py)
            loop = asyncio.get_running_loop()

            def tcp_connection() -> V2GTPProtocol:
                return V2GTPProtocol(lambda stream: self._accept(stream, False), max_payload=self.max_payload)

            self._tcp_server = await _listen(lambda h, p: loop.create_server(tcp_connection, h, p), self.host,
                                             self.port)
            self._servers.append(self._tcp_server)
        if self.tls is not None:
            self._tls_server = await _listen(lambda h, p: asyncio.start_server(self._accept_tls, h, p), self.host,
                                             self.tls_port)
            self._servers.append(self._tls_server)
        if self.sdp:
            self._sdp = await start_sdp_server(self.sdp_answer, host=self.host.split("%")[0], port=self.sdp_port,
                                               iface=self.iface)
        log.info("SECC listening: %s", ", ".join(f"{k} [{h}]:{p}" for k, (h, p) in self.addresses().items()))

    async def close(self) -> None:
        """Stop listening and end every running session."""
        if self._sdp is not None:
            self._sdp.close()
        for server in self._servers:
            server.close()
        for session in list(self.active):  # ended as a shutdown, not as the EV's disconnect the abort looks like
            session.on_closed(FailureKind.SHUTDOWN, "SECC shutting down")
        for stream in list(self._streams):  # aborting lets each connection task end by itself
            stream.abort()
        for writer in list(self._handshakes):
            writer.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def __aenter__(self) -> SeccServer:
        """Start; the server is the context value."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        await self.close()

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Where each listener is: {'tcp': (host, port), 'tls': ..., 'sdp': ...}."""
        out: dict[str, tuple[str, int]] = {}
        for key, server in (("tcp", self._tcp_server), ("tls", self._tls_server)):
            if server is not None and server.sockets:
                sockname = server.sockets[0].getsockname()
                out[key] = (self.host, int(sockname[1]))
        if self._sdp is not None:
            out["sdp"] = (self.host, self._sdp.port)
        return out

    # ----- SDP -----

    def sdp_answer(self, request: SDPRequest) -> SDPResponse | None:
        """Point the EVCC at the listener with the security it asked for, or at the other one."""
        if request.transport is not Transport.TCP:
            log.info("SDP: ignoring a request for transport %s", request.transport.name)
            return None
        addrs = self.addresses()
        want_tls = request.security is Security.TLS
        key = "tls" if (want_tls and "tls" in addrs) or "tcp" not in addrs else "tcp"
        host, port = addrs[key]
        return SDPResponse.for_host(host, port, Security.TLS if key == "tls" else Security.NO_TLS)

    # ----- connections -----

    def _accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A TCP connection on the TLS port: the handshake (and then the session) in a tracked task."""
        task = asyncio.get_running_loop().create_task(self._handshake(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The TLS handshake, run by tls_stream so that a refusal reaches the EV as a TLS alert (asyncio's own TLS
        drops it); a failure is logged, goes to the observer as TlsFailed and closes the connection."""
        assert self.tls is not None
        peer = V2GTPStream(reader, writer).peer
        self._handshakes.add(writer)
        try:
            conn = await asyncio.wait_for(tls_accept(reader, writer, self.tls), TLS_HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, EOFError) as e:
            code = e.reason if isinstance(e, ssl.SSLError) and e.reason else type(e).__name__
            event = TlsFailed(peer, failure_kind(e), f"TLS handshake failed ({code}): {e}")
            log.warning("SECC %s: %s", peer, event.detail)
            writer.close()  # the alert is queued: close (not abort) lets it leave
            if self.observer is not None:
                self.observer.tls_failed(event)
            return
        finally:
            self._handshakes.discard(writer)
        stream = V2GTPStream(conn.reader, conn.writer, max_payload=self.max_payload)  # type: ignore[arg-type]
        await self._accept(stream, True)

    async def _accept(self, stream: FrameStream, tls: bool) -> None:
        """Run one connection as a tracked task."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._streams.add(stream)
        version = self._tls_version(stream) if tls else None
        session = SeccSession(self.controller_factory(), self.config, self.paused, peer=stream.peer, tls=tls,
                              tls_version=version)
        self.active.add(session)
        log.info("SECC: connection from %s over %s", stream.peer, describe(stream.ssl_object))  # type: ignore[arg-type]
        try:
            await self._serve(stream, session)
        except asyncio.CancelledError:
            session.on_closed(FailureKind.SHUTDOWN, "SECC shutting down")
            raise
        except Exception as e:
            log.exception("SECC %s: internal error", stream.peer)
            session.on_closed(FailureKind.INTERNAL_ERROR, f"internal error: {type(e).__name__}: {e}")
        finally:
            self.active.discard(session)
            self.finished.append(session)
            self._streams.discard(stream)
            await stream.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    def _tls_version(stream: FrameStream) -> str | None:
        """The TLS version of a connection as the session needs it: "TLSv1.3" only when -20 may run on it (Table 6
        suite, check_session20), else the version with the reason -20 may not."""
        ssl_object = stream.ssl_object
        if ssl_object is None:
            return None
        version = str(ssl_object.version())  # type: ignore[attr-defined]
        if version == "TLSv1.3":
            try:
                check_session20(ssl_object)  # type: ignore[arg-type]
            except TlsPolicyError as e:
                return f"{version} ({e})"
        return version

    async def _serve(self, stream: FrameStream, session: SeccSession) -> None:
        """Request/response until the session ends."""
        messages = ConnectionLog("SECC", stream.peer)
        while not session.ended:
            try:
                frame = await stream.recv(session.timeout)  # V2G_SECC_Sequence_Timeout
            except TimeoutError:
                session.on_timeout()
                return
            except V2GTPError as e:
                session.on_closed(FailureKind.V2GTP_ERROR, f"V2GTP error ({e.reason}): {e}")
                return
            except ConnectionClosedError:
                session.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
                return
            except ConnectionResetError:  # the EV closed abruptly (TCP RST), e.g. right after its own timeout
                session.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection (reset)")
                return
            except (ConnectionError, OSError) as e:
                session.on_closed(FailureKind.DISCONNECTED, f"connection error: {e}")
                return
            started = time.perf_counter()
            ns = session.rx_namespace_for(frame.payload_type)
            if ns is None:
                session.on_closed(FailureKind.V2GTP_ERROR, f"V2GTP payload type 0x{frame.payload_type:04X} is not "
                                  f"allowed in {session.rx_namespace}")
                return
            try:
                doc = exi.decode(ns, frame.payload)
            except exi.ExiDecodeError as e:
                session.on_closed(FailureKind.EXI_ERROR, f"undecodable EXI ({ns}, {len(frame.payload)} bytes): {e}")
                return
            self._record(messages.record("rx", ns, doc, frame.payload, session.session_id), session)
            reply = session.handle(doc, frame.payload_type)
            if reply.pending is not None:  # the controller answers asynchronously (certificate installation)
                limit = self.config.timers.performance_time(session.rx_namespace, reply.step)
                try:
                    result = await asyncio.wait_for(reply.pending, limit)
                except TimeoutError:
                    result = "FAILED"
                    log.warning("%s: no answer for %s within %.1f s", session.label, reply.name, limit)
                except Exception as e:
                    result = "FAILED"
                    log.warning("%s: %s failed: %s", session.label, reply.name, e)
                reply = session.complete(reply, result)
            if reply.doc is not None:
                data = exi.encode(reply.ns, reply.doc)
                await stream.send(data, reply.payload_type)
                elapsed = time.perf_counter() - started
                self._record(messages.record("tx", reply.ns, reply.doc, data, session.session_id), session)
                session.sent(reply, elapsed)
                if self.on_handled is not None:
                    self.on_handled(reply.name, elapsed)
            if reply.close:
                return

    def _record(self, record: MessageRecord, session: SeccSession) -> None:
        """Hand one message to the sink and to the session's controller."""
        if self.on_message is not None:
            self.on_message(record)
        session.exchanged(record)
