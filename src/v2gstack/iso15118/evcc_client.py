"""The asyncio EVCC: find the SECC (SDP) or use a given address, connect over TCP or TLS, run one session.

`run_evcc()` returns the SessionResult: ok only when the session ended with SessionStopRes OK.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from .. import exi
from .ev import EVModel
from .evcc import EvccConfig, EvccSession, SessionResult
from .msglog import ConnectionLog, MessageSink
from .netif import scoped
from .sdp import SDP_PORT, SDPRequest, Security
from .sdp_io import SDP_MAX_REQUESTS, SDP_RETRY_INTERVAL, SDPTimeoutError, discover
from .stream import ConnectionClosedError, FrameStream, V2GTPStream, open_v2gtp
from .tls import describe, evcc_context
from .tls_stream import tls_connect
from .v2gtp import DEFAULT_MAX_PAYLOAD, V2GTPError

log = logging.getLogger(__name__)


async def find_secc(*, tls: bool, iface: str | None = None, sdp_host: str = "::1", sdp_port: int = SDP_PORT,
                    max_requests: int = SDP_MAX_REQUESTS,
                    interval: float = SDP_RETRY_INTERVAL) -> tuple[str, int, bool]:
    """SDP: (host, port, use TLS) of the SECC; SDPTimeoutError when nobody answers."""
    response = await discover(SDPRequest(Security.TLS if tls else Security.NO_TLS), host=sdp_host, port=sdp_port,
                              iface=iface, max_requests=max_requests, interval=interval)
    use_tls = response.security is Security.TLS
    if use_tls != tls:
        log.warning("SDP: asked for %s, the SECC offers %s; following the SECC", "TLS" if tls else "TCP",
                    "TLS" if use_tls else "TCP")
    return scoped(response.host, iface), response.port, use_tls


async def run_evcc(config: EvccConfig | None = None, ev: EVModel | None = None, *,
                   secc: tuple[str, int] | None = None, tls: bool = False, tls_context: ssl.SSLContext | None = None,
                   iface: str | None = None, sdp_host: str = "::1", sdp_port: int = SDP_PORT,
                   sdp_requests: int = SDP_MAX_REQUESTS, sdp_interval: float = SDP_RETRY_INTERVAL,
                   on_message: MessageSink | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD) -> SessionResult:
    """Run one charging session as the EV and return how it ended."""
    config = config or EvccConfig()
    engine = EvccSession(config, ev)
    if secc is None:
        try:
            host, port, use_tls = await find_secc(tls=tls, iface=iface, sdp_host=sdp_host, sdp_port=sdp_port,
                                                  max_requests=sdp_requests, interval=sdp_interval)
        except SDPTimeoutError as e:
            return engine.on_closed(f"SDP: {e}")
    else:
        (host, port), use_tls = secc, tls
    context = (tls_context or evcc_context()) if use_tls else None
    stream: FrameStream
    try:
        if context is None:  # plain TCP: V2GTP cut from the socket's bytes by a Protocol (stream.py)
            stream = await asyncio.wait_for(open_v2gtp(host, port, max_payload=max_payload),
                                            config.timers.communication_setup)
        else:  # tls_stream: a SECC the EV refuses gets the alert (asyncio's own TLS drops it)
            conn = await asyncio.wait_for(tls_connect(host, port, context), config.timers.communication_setup)
            stream = V2GTPStream(conn.reader, conn.writer, max_payload=max_payload)  # type: ignore[arg-type]
    except (OSError, TimeoutError) as e:
        return engine.on_closed(f"cannot connect to [{host}]:{port} over {'TLS' if use_tls else 'TCP'}: "
                                f"{type(e).__name__} {e}")
    log.info("EVCC: connected to %s over %s", stream.peer, describe(stream.ssl_object))  # type: ignore[arg-type]
    try:
        return await _session(engine, stream, on_message)
    finally:
        await stream.close()


async def _session(engine: EvccSession, stream: FrameStream, on_message: MessageSink | None) -> SessionResult:
    """Request/response until the engine returns a result."""
    loop = asyncio.get_running_loop()
    messages = ConnectionLog("EVCC", stream.peer)
    step = engine.start(loop.time())
    while True:
        if isinstance(step, SessionResult):
            return step
        if step.delay > 0:
            await asyncio.sleep(step.delay)
        data = exi.encode(step.ns, step.doc)
        try:
            await stream.send(data, step.payload_type)
        except (ConnectionError, OSError) as e:
            return engine.on_closed(f"cannot send {step.name}: {e}")
        _record(on_message, messages, "tx", step.ns, step.doc, data, engine)
        try:
            frame = await stream.recv(step.timeout)  # V2G_EVCC_Msg_Timeout or a sequence timer
        except TimeoutError:
            return engine.on_timeout(loop.time())
        except V2GTPError as e:
            return engine.on_closed(f"V2GTP error from SECC ({e.reason}): {e}")
        except ConnectionClosedError:
            return engine.on_closed(f"SECC closed the connection while we waited for the answer to {step.name}")
        except (ConnectionError, OSError) as e:
            return engine.on_closed(f"connection error: {e}")
        ns = engine.rx_namespace_for(frame.payload_type)
        if ns is None:
            return engine.on_closed(f"V2GTP payload type 0x{frame.payload_type:04X} from SECC is not allowed in "
                                    f"{engine.rx_namespace}")
        try:
            doc = exi.decode(ns, frame.payload)
        except exi.ExiDecodeError as e:
            return engine.on_closed(f"undecodable EXI from SECC ({ns}): {e}")
        _record(on_message, messages, "rx", ns, doc, frame.payload, engine)
        step = engine.handle(doc, loop.time())


def _record(sink: MessageSink | None, messages: ConnectionLog, direction: str, ns: str, doc: dict, data: bytes,
            engine: EvccSession) -> None:
    """Hand one message to the sink."""
    if sink is not None:
        sink(messages.record(direction, ns, doc, data, engine.session_id))
