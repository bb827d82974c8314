"""Asyncio SDP over UDP: the SECC's responder and the EVCC's discovery with the standard's retries.

On a real link the EVCC multicasts to ff02::1 on its interface and the SECC listens on port 15118 of that
interface; on loopback both use unicast to ::1 or 127.0.0.1. The EVCC sends up to 50 requests 250 ms apart
(ISO 15118-2 [V2G2-160]..[V2G2-162]) and takes the first valid response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from .netif import interface_index
from .sdp import SDP_MULTICAST_GROUP, SDP_PORT, SDPError, SDPRequest, SDPResponse

log = logging.getLogger(__name__)

SDP_RETRY_INTERVAL = 0.25
SDP_MAX_REQUESTS = 50

Responder = Callable[[SDPRequest], SDPResponse | None]


class SDPTimeoutError(TimeoutError):
    """No valid SDP response arrived after the last retry."""


class _ServerProtocol(asyncio.DatagramProtocol):
    """Answers each valid SDP request with the responder's SDPResponse; ignores everything else."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to answer on."""
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Answer a valid request."""
        try:
            request = SDPRequest.from_datagram(data)
        except SDPError as e:
            log.info("SDP: ignoring datagram from %s: %s", addr[0], e)
            return
        response = self.responder(request)
        if response is None or self.transport is None:
            return
        log.debug("SDP: %s asks %s, answering %s port %d %s", addr[0], request.security.name, response.host,
                  response.port, response.security.name)
        self.transport.sendto(response.to_datagram(), addr)


class SDPServer:
    """A running SDP responder; `close()` stops it."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    @property
    def port(self) -> int:
        """The UDP port it listens on (useful when started on port 0)."""
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        """Stop listening."""
        self.transport.close()


async def start_sdp_server(responder: Responder, *, host: str = "::1", port: int = SDP_PORT,
                           iface: str | None = None) -> SDPServer:
    """Listen for SDP requests: on `iface` (all-nodes multicast and unicast), otherwise unicast on `host`."""
    loop = asyncio.get_running_loop()
    if iface is None:
        transport, _ = await loop.create_datagram_endpoint(lambda: _ServerProtocol(responder), local_addr=(host, port))
        return SDPServer(transport)
    index = interface_index(iface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # needs CAP_NET_RAW; without it we answer on every interface
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        sock.bind(("::", port))
        mreq = socket.inet_pton(socket.AF_INET6, SDP_MULTICAST_GROUP) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    transport, _ = await loop.create_datagram_endpoint(lambda: _ServerProtocol(responder), sock=sock)
    return SDPServer(transport)


class _ClientProtocol(asyncio.DatagramProtocol):
    """Resolves a future with the first valid SDP response."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[SDPResponse] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Keep the first valid response."""
        try:
            response = SDPResponse.from_datagram(data)
        except SDPError as e:
            log.info("SDP: ignoring datagram from %s: %s", addr[0], e)
            return
        if not self.answer.done():
            self.answer.set_result(response)


async def discover(request: SDPRequest, *, host: str = "::1", port: int = SDP_PORT, iface: str | None = None,
                   max_requests: int = SDP_MAX_REQUESTS, interval: float = SDP_RETRY_INTERVAL) -> SDPResponse:
    """Send `request` until a response arrives: multicast on `iface`, else unicast to `host`; SDPTimeoutError."""
    loop = asyncio.get_running_loop()
    if iface is not None:
        index = interface_index(iface)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(("::", 0, 0, index))
        sock.setblocking(False)
        target: tuple[Any, ...] = (SDP_MULTICAST_GROUP, port, 0, index)
        transport, protocol = await loop.create_datagram_endpoint(_ClientProtocol, sock=sock)
    else:
        transport, protocol = await loop.create_datagram_endpoint(_ClientProtocol, remote_addr=(host, port))
        target = ()
    try:
        datagram = request.to_datagram()
        for n in range(1, max_requests + 1):
            if target:
                transport.sendto(datagram, target)
            else:
                transport.sendto(datagram)
            try:
                return await asyncio.wait_for(asyncio.shield(protocol.answer), interval)
            except TimeoutError:
                log.debug("SDP: no response to request %d of %d", n, max_requests)
        raise SDPTimeoutError(f"no SDP response after {max_requests} requests {interval:g} s apart")
    finally:
        transport.close()
