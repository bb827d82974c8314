"""The OCPP-J engine over real websockets on 127.0.0.1: CallErrors, timeouts, queueing, no deadlock, SEND."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers.ocpp import AUTHORIZE, BOOT, MALFORMED, NOW, PASSWORD, TRANSACTION_EVENT, RawPeer, csms_router, raw_peer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from v2gstack.ocpp import (
    CallContext,
    CallErrorReceived,
    CallTimeoutError,
    Connection,
    ErrorCode,
    OcppError,
    OcppServer,
    PayloadInvalid,
    Router,
    StaticAuthenticator,
    StationClient,
)

pytestmark = pytest.mark.timeout(60)

STATIONS = {"CS1": PASSWORD, "CS2": PASSWORD, "CS16": PASSWORD, "CS21": PASSWORD}


def make_server(router: Router | None = None, **kw: Any) -> OcppServer:
    """Our CSMS-side server with a minimal 2.0.1 router (plus 1.6 and 2.1 ones for version tests)."""
    r16 = Router({"Heartbeat": lambda p: {"currentTime": NOW},
                  "Authorize": lambda p: {"idTagInfo": {"status": "Accepted"}}})
    r21 = csms_router()
    r21.add("NotifyPeriodicEventStream", lambda p: None)
    routers = {"2.0.1": router or csms_router(), "1.6": r16, "2.1": r21}
    return OcppServer(routers, authenticator=StaticAuthenticator(STATIONS), **kw)


@pytest.fixture
async def server() -> AsyncIterator[OcppServer]:
    """A running server on a free port."""
    async with make_server(max_message_size=4096, ws_max_size=16384) as s:
        yield s


def url(server: OcppServer) -> str:
    """The server's OCPP endpoint."""
    return f"ws://127.0.0.1:{server.port}/ocpp"


async def heartbeat_ok(peer: RawPeer, mid: str) -> None:
    """The connection still serves a Heartbeat."""
    assert await peer.exchange([2, mid, "Heartbeat", {}]) == [3, mid, {"currentTime": NOW}]


async def test_every_malformed_case_gets_its_callerror_and_connections_keep_working(server: OcppServer) -> None:
    """Each bad frame gets the exact CALLERROR; the same and another station's connection keep serving."""
    async with raw_peer(url(server), "CS1") as bad, raw_peer(url(server), "CS2") as good:
        for i, (text, code, mid) in enumerate(MALFORMED):
            answer = await bad.exchange(text)
            assert answer[:3] == [4, mid, code], text
            assert isinstance(answer[3], str) and isinstance(answer[4], dict)
            await heartbeat_ok(bad, f"ok-{i}")
            await heartbeat_ok(good, f"good-{i}")
        assert set(server.connections) == {"CS1", "CS2"}


async def test_duplicate_message_id_is_refused(server: OcppServer) -> None:
    """Reusing a CALL's MessageId on the same connection gets RpcFrameworkError; a fresh id is served."""
    async with raw_peer(url(server), "CS1") as peer:
        await heartbeat_ok(peer, "same")
        assert (await peer.exchange([2, "same", "Heartbeat", {}]))[:3] == [4, "same", "RpcFrameworkError"]
        await heartbeat_ok(peer, "fresh")


async def test_frame_above_websocket_limit_closes_only_that_connection(server: OcppServer) -> None:
    """Frames beyond the hard websocket limit close that socket (1009); other stations are untouched."""
    async with raw_peer(url(server), "CS1") as big, raw_peer(url(server), "CS2") as other:
        await big.send(json.dumps([2, "huge", "Heartbeat", {"pad": "x" * 20000}]))
        with pytest.raises(ConnectionClosed) as info:
            await big.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await heartbeat_ok(other, "still-here")


async def test_16_spellings_on_the_wire(server: OcppServer) -> None:
    """A 1.6 station gets FormationViolation / OccurenceConstraintViolation, and unknown types are ignored."""
    async with raw_peer(url(server), "CS16", version="1.6") as peer:
        assert (await peer.exchange("garbage"))[2] == "FormationViolation"
        assert (await peer.exchange([2, "a", "Authorize", {}]))[2] == "OccurenceConstraintViolation"
        await peer.send([9, "ignored", "Heartbeat", {}])  # 1.6: ignore the message payload
        await heartbeat_ok(peer, "after")  # the next frame received is the heartbeat's answer


async def test_handler_errors_become_callerrors(server: OcppServer) -> None:
    """A handler's OcppError is sent as is; an exception or an invalid response becomes InternalError."""
    router = csms_router()

    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise OcppError(ErrorCode.SECURITY_ERROR, "not you", {"why": "test"})

    async def crash(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    router.add("Authorize", refuse)
    router.add("StatusNotification", crash)
    router.add("Heartbeat", lambda p: {"currentTime": "not a time"})
    async with make_server(router) as srv, raw_peer(url(srv), "CS1") as peer:
        assert await peer.exchange([2, "a", "Authorize", AUTHORIZE]) == [4, "a", "SecurityError", "not you",
                                                                          {"why": "test"}]
        status = {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        assert (await peer.exchange([2, "b", "StatusNotification", status]))[:3] == [4, "b", "InternalError"]
        answer = await peer.exchange([2, "c", "Heartbeat", {}])
        assert answer[:3] == [4, "c", "InternalError"] and "not a time" not in json.dumps(answer)
        assert (await peer.exchange([2, "d", "BootNotification", BOOT]))[0] == 3


async def test_station_client_calls_and_validates(server: OcppServer) -> None:
    """Our station client: calls succeed, invalid outgoing payloads are refused before sending, CallErrors raise."""
    client = StationClient(url(server), "CS1", Router(), password=PASSWORD)
    conn = await client.connect()
    try:
        assert (await conn.call("BootNotification", BOOT))["status"] == "Accepted"
        assert (await conn.call("TransactionEvent", TRANSACTION_EVENT)) == {"idTokenInfo": {"status": "Accepted"}}
        with pytest.raises(PayloadInvalid) as bad:
            await conn.call("Authorize", {"idToken": {"idToken": "A"}})
        assert bad.value.code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
        with pytest.raises(CallErrorReceived) as err:
            await conn.call("FirmwareStatusNotification", {"status": "Idle"})
        assert err.value.code is ErrorCode.NOT_SUPPORTED and err.value.wire_code == "NotSupported"
        assert (await conn.call("Heartbeat", {})) == {"currentTime": NOW}
    finally:
        await conn.close()


async def test_call_timeout_then_connection_keeps_working() -> None:
    """A CALL without answer raises CallTimeoutError after the timeout; the late answer is ignored."""
    release = asyncio.Event()
    router = csms_router()

    async def slow(payload: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"idTokenInfo": {"status": "Accepted"}}

    router.add("Authorize", slow)
    async with make_server(router) as srv:
        client = StationClient(url(srv), "CS1", Router(), password=PASSWORD, call_timeout=0.3)
        conn = await client.connect()
        try:
            with pytest.raises(CallTimeoutError):
                await conn.call("Authorize", AUTHORIZE)
            assert conn.engine.pending == {}
            release.set()  # the CSMS now answers the timed-out call: it must be ignored
            assert (await conn.call("Heartbeat", {}, timeout=5)) == {"currentTime": NOW}
            assert (await conn.call("Heartbeat", {}, timeout=5)) == {"currentTime": NOW}
        finally:
            await conn.close()


async def test_handler_may_await_a_call_to_the_same_peer() -> None:
    """No deadlock: while the station's BootNotification waits, the CSMS handler calls the station and gets its
    answer; and while the CSMS's TriggerMessage waits, the station handler calls the CSMS."""
    csms = csms_router()
    station = Router()

    async def boot(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        got = await ctx.connection.call("GetVariables", {"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
        interval = int(got["getVariableResult"][0]["attributeValue"])
        return {"currentTime": NOW, "interval": interval, "status": "Accepted"}

    def get_variables(payload: dict[str, Any]) -> dict[str, Any]:
        var = payload["getVariableData"][0]
        return {"getVariableResult": [{"attributeStatus": "Accepted", "component": var["component"],
                                       "variable": var["variable"], "attributeValue": "42"}]}

    async def trigger(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        await ctx.connection.call(payload["requestedMessage"], {})
        return {"status": "Accepted"}

    csms.add("BootNotification", boot)
    station.add("GetVariables", get_variables)
    station.add("TriggerMessage", trigger)
    async with make_server(csms) as srv:
        conn = await StationClient(url(srv), "CS1", station, password=PASSWORD, call_timeout=10).connect()
        try:
            assert (await conn.call("BootNotification", BOOT))["interval"] == 42
            answer = await srv.connections["CS1"].call("TriggerMessage", {"requestedMessage": "Heartbeat"})
            assert answer == {"status": "Accepted"}
        finally:
            await conn.close()


async def test_one_outstanding_call_per_direction() -> None:
    """Concurrent call()s queue: the CSMS never sees two CALLs of the station at once; all get answers."""
    in_progress = 0
    most = 0
    router = csms_router()

    async def authorize(payload: dict[str, Any]) -> dict[str, Any]:
        nonlocal in_progress, most
        in_progress += 1
        most = max(most, in_progress)
        for _ in range(5):
            await asyncio.sleep(0)
        in_progress -= 1
        return {"idTokenInfo": {"status": "Accepted"}}

    router.add("Authorize", authorize)
    async with make_server(router) as srv:
        conn = await StationClient(url(srv), "CS1", Router(), password=PASSWORD).connect()
        try:
            results = await asyncio.gather(*(conn.call("Authorize", AUTHORIZE) for _ in range(10)))
            assert all(r["idTokenInfo"]["status"] == "Accepted" for r in results)
            assert most == 1
        finally:
            await conn.close()


async def test_queued_calls_survive_a_timeout_a_cancel_and_fail_on_close() -> None:
    """Queued CALLs: the head timing out hands the turn on, a caller that gives up while queued is skipped (never
    sent), every answer reaches its own caller in order, and closing fails the CALLs still waiting their turn."""
    release = asyncio.Event()
    seen: list[str] = []
    router = csms_router()

    async def authorize(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload["idToken"]["idToken"])
        if payload["idToken"]["idToken"] == "slow":
            await release.wait()
        return {"idTokenInfo": {"status": "Accepted" if payload["idToken"]["idToken"] != "b" else "Blocked"}}

    def token(name: str) -> dict[str, Any]:
        return {"idToken": {"idToken": name, "type": "Central"}}

    router.add("Authorize", authorize)
    async with make_server(router) as srv:
        conn = await StationClient(url(srv), "CS1", Router(), password=PASSWORD, call_timeout=30).connect()
        try:
            head = asyncio.ensure_future(conn.call("Authorize", token("slow"), timeout=0.3))
            gone = asyncio.ensure_future(conn.call("Authorize", token("gone")))
            a = asyncio.ensure_future(conn.call("Authorize", token("a")))
            b = asyncio.ensure_future(conn.call("Authorize", token("b")))
            await asyncio.sleep(0.05)
            gone.cancel()
            with pytest.raises(CallTimeoutError):
                await head
            assert (await a)["idTokenInfo"]["status"] == "Accepted"
            assert (await b)["idTokenInfo"]["status"] == "Blocked"
            assert seen == ["slow", "a", "b"]
            assert conn.engine.pending == {}
            hang = asyncio.ensure_future(conn.call("Authorize", token("slow")))
            waiting = asyncio.ensure_future(conn.call("Authorize", token("c")))
            while not conn.engine.pending or len(seen) < 4:
                await asyncio.sleep(0.01)
            await srv.connections["CS1"].close()
            for pending in (hang, waiting):
                with pytest.raises(ConnectionError):
                    await pending
            assert seen == ["slow", "a", "b", "slow"]
        finally:
            release.set()
            await conn.close()


async def test_csms_calls_station_through_server(server: OcppServer) -> None:
    """The server exposes connected stations; the CSMS calls them by id."""
    station = Router({"RequestStopTransaction": lambda p: {"status": "Accepted"}})
    conn = await StationClient(url(server), "CS2", station, password=PASSWORD).connect()
    try:
        while "CS2" not in server.connections:
            await asyncio.sleep(0.01)
        answer = await server.connections["CS2"].call("RequestStopTransaction", {"transactionId": "tx-1"})
        assert answer == {"status": "Accepted"}
    finally:
        await conn.close()


async def test_connection_closing_fails_outstanding_call() -> None:
    """If the socket drops while our CALL waits, call() raises ConnectionClosedError (not a timeout)."""
    router = csms_router()
    never = asyncio.Event()

    async def hang(payload: dict[str, Any]) -> dict[str, Any]:
        await never.wait()
        return {}

    router.add("Authorize", hang)
    async with make_server(router) as srv:
        conn = await StationClient(url(srv), "CS1", Router(), password=PASSWORD, call_timeout=30).connect()
        pending = asyncio.ensure_future(conn.call("Authorize", AUTHORIZE))
        while not conn.engine.pending:
            await asyncio.sleep(0.01)
        await srv.connections["CS1"].close()
        with pytest.raises(ConnectionError):
            await pending
        never.set()


async def test_ocpp21_send_and_callresulterror() -> None:
    """2.1: a SEND reaches its handler unanswered; our SEND goes out; an invalid CALLRESULT gets a [5,...]."""
    received: asyncio.Queue[list[Any]] = asyncio.Queue()
    got_send = asyncio.Event()

    async def peer(ws: ServerConnection) -> None:
        async for text in ws:
            frame = json.loads(text)
            await received.put(frame)
            if frame[0] == 2 and frame[2] == "Heartbeat":
                await ws.send(json.dumps([3, frame[1], {}]))  # invalid: currentTime is required
            if frame[0] == 2 and frame[2] == "BootNotification":
                await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream",
                                          {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0, "v": "1"}]}]))
                await ws.send(json.dumps([3, frame[1], {"currentTime": NOW, "interval": 60, "status": "Accepted"}]))

    station = Router()

    @station.on("NotifyPeriodicEventStream")
    def stream(payload: dict[str, Any]) -> None:
        got_send.set()

    async with serve(peer, "127.0.0.1", 0, subprotocols=["ocpp2.1"]) as srv:  # type: ignore[list-item]
        port = srv.sockets[0].getsockname()[1]
        conn = await StationClient(f"ws://127.0.0.1:{port}/ocpp", "CS21", station, versions=["2.1"]).connect()
        try:
            assert conn.version.value == "2.1"
            assert (await conn.call("BootNotification", BOOT))["status"] == "Accepted"
            await asyncio.wait_for(got_send.wait(), 5)
            with pytest.raises(PayloadInvalid) as bad:
                await conn.call("Heartbeat", {})
            assert bad.value.code is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
            frames = [await asyncio.wait_for(received.get(), 5) for _ in range(3)]
            assert frames[2][:3] == [5, frames[1][1], "OccurrenceConstraintViolation"]
            await conn.send("NotifyPeriodicEventStream", {"id": 2, "pending": 0, "basetime": NOW,
                                                          "data": [{"t": 1.5, "v": "2"}]})
            sent = await asyncio.wait_for(received.get(), 5)
            assert sent[:3] == [6, await _last_id(conn), "NotifyPeriodicEventStream"]
        finally:
            await conn.close()


async def _last_id(conn: Connection) -> str:
    """The id the engine gave its latest outgoing message."""
    return f"{conn.engine._prefix}-{conn.engine._counter}"


async def test_reconnecting_station_replaces_its_old_connection() -> None:
    """A second connection of the same station takes over; the first is closed; on_disconnect sees it go."""
    gone: list[Connection] = []
    async with make_server(on_disconnect=gone.append) as srv:
        first = await StationClient(url(srv), "CS1", Router(), password=PASSWORD).connect()
        await first.call("Heartbeat", {})
        old = srv.connections["CS1"]
        second = await StationClient(url(srv), "CS1", Router(), password=PASSWORD).connect()
        await first.wait_closed()
        assert await second.call("Heartbeat", {}) == {"currentTime": NOW}
        assert srv.connections["CS1"] is not old
        while not gone:
            await asyncio.sleep(0.01)
        assert gone == [old]
        await second.close()
