"""An OCPP link in memory: a websocket pair on asyncio queues (`ocpp.connection.WebSocketLike`), our CSMS's router
behind one end (`MemoryCsms.dial` is the station's Dialer), and a scripted raw CSMS for answers our CSMS never gives
(CALLERRORs, invalid results). No sockets: the station's and the CSMS's own Connection classes talk to each other."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from v2gstack.csms.service import Csms
from v2gstack.ocpp import Connection, Version

_CLOSED = object()


class MemorySocket:
    """One end of an in-memory websocket: what it sends arrives at the other end's recv()."""

    def __init__(self, subprotocol: str = "ocpp2.0.1") -> None:
        self.subprotocol = subprotocol
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.peer: MemorySocket | None = None
        self.closed = False

    async def send(self, message: str) -> None:
        """Hand the message to the other end."""
        if self.closed or self.peer is None or self.peer.closed:
            raise ConnectionError("the in-memory websocket is closed")
        self.peer.inbox.put_nowait(message)

    async def recv(self) -> str:
        """The next message from the other end; ConnectionError once either end closed."""
        item = await self.inbox.get()
        if item is _CLOSED:
            self.closed = True
            self.inbox.put_nowait(_CLOSED)  # every later recv() fails too
            raise ConnectionError("the in-memory websocket is closed")
        return str(item)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close both ends (each side's read loop ends)."""
        for end in (self, self.peer):
            if end is not None and not end.closed:
                end.closed = True
                end.inbox.put_nowait(_CLOSED)


def socket_pair(subprotocol: str = "ocpp2.0.1") -> tuple[MemorySocket, MemorySocket]:
    """Two connected ends."""
    a, b = MemorySocket(subprotocol), MemorySocket(subprotocol)
    a.peer, b.peer = b, a
    return a, b


def _station_id(url: str) -> str:
    return unquote(url.rsplit("/", 1)[-1])


class MemoryCsms:
    """Our CSMS (its router, store and services) reached in memory: pass `dial` to ChargingStation."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.reachable = True  # False: dialing fails as if the CSMS were down
        self.delays: dict[str, float] = {}  # action -> seconds the CSMS takes to answer it
        self.connections: list[Connection] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def dial(self, url: str, subprotocols: list[str], headers: dict[str, str]) -> tuple[MemorySocket, str]:
        """The station's Dialer: a new in-memory connection served by the CSMS's router."""
        if not self.reachable:
            raise OSError("the CSMS is unreachable (in-memory test)")
        station_id = _station_id(url)
        ours, theirs = socket_pair()
        conn = Connection(theirs, Version.V201, self.csms.router, station_id=station_id,
                          call_timeout=self.csms.config.call_timeout)
        self.csms.server.connections[station_id] = conn  # what csms.call() looks up
        self.connections.append(conn)
        task = asyncio.get_running_loop().create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ours, "ocpp2.0.1"

    async def _serve(self, conn: Connection) -> None:
        try:
            await conn.serve()
        finally:
            if self.csms.server.connections.get(conn.station_id) is conn:
                del self.csms.server.connections[conn.station_id]

    async def drop(self) -> None:
        """Close every open connection (the station sees its link fail)."""
        for conn in self.connections:
            if not conn.closed:
                await conn.close(1001, "going away")

    async def close(self) -> None:
        """Drop the connections and wait for their tasks."""
        self.reachable = False
        await self.drop()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


Script = Callable[[str, dict[str, Any]], list[Any] | None]  # (action, payload) -> the frame to answer (None: ours)


class RawCsms:
    """A scripted CSMS for one station in memory: BootNotification Accepted, every other CALL answered by `script`
    (a whole frame, so that it can be a CALLERROR or an invalid CALLRESULT), else with an empty CALLRESULT."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or (lambda action, payload: None)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.sockets: list[MemorySocket] = []
        self.reachable = True  # False: dialing fails as if the CSMS were down
        self.delays: dict[str, float] = {}  # action -> seconds the CSMS takes to answer it

    async def dial(self, url: str, subprotocols: list[str], headers: dict[str, str]) -> tuple[MemorySocket, str]:
        """The station's Dialer."""
        if not self.reachable:
            raise OSError("the CSMS is unreachable (in-memory test)")
        ours, theirs = socket_pair()
        self.sockets.append(theirs)
        task = asyncio.get_running_loop().create_task(self._serve(theirs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ours, "ocpp2.0.1"

    async def _serve(self, ws: MemorySocket) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                frame = json.loads(await ws.recv())
                if frame[0] != 2:
                    continue
                _, mid, action, payload = frame
                self.received.append((action, payload))
                await asyncio.sleep(self.delays.get(action, 0.0))
                answer = self.script(action, payload)
                if answer is None:
                    result: dict[str, Any] = {}
                    if action == "BootNotification":
                        result = {"currentTime": "2024-05-01T12:00:00Z", "interval": 300, "status": "Accepted"}
                    elif action == "Heartbeat":
                        result = {"currentTime": "2024-05-01T12:00:00Z"}
                    answer = [3, mid, result]
                else:
                    answer = [answer[0], mid, *answer[2:]]
                await ws.send(json.dumps(answer))

    async def close(self) -> None:
        """Close the connections; the CSMS is unreachable from now on."""
        self.reachable = False
        for ws in self.sockets:
            await ws.close()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
