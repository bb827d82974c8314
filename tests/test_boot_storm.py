"""Boot storms at the CSMS (csms/admission.py, the handshake limits of ocpp/server.py): boots beyond the admission
rate are answered Pending with the seconds to wait (B02), deferred stations are admitted when they come back, and
handshakes beyond the connection or handshake limit get 503 with a Retry-After. The admission engine with a fake
clock; the storm with 200 real websocket stations against the real CSMS."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from pathlib import Path

import pytest
import websockets
from helpers.csms import PASSWORD, running_csms
from sqlalchemy import insert
from websockets.exceptions import InvalidMessage, InvalidStatus

from v2gstack.csms.admission import AdmissionPolicy, BootAdmission
from v2gstack.csms.models import Station
from v2gstack.csms.store import Store, hash_password
from v2gstack.ocpp import BackOff, OcppServer, Router, StationClient
from v2gstack.ocpp.auth import AuthDecision, Credentials
from v2gstack.ocpp.client import HandshakeRefused, retry_after_seconds
from v2gstack.ocpp.throttle import ThrottlePolicy

pytestmark = pytest.mark.timeout(300)
# the test stations' reconnect back-off (OCPP's rule, shortened for a test)
RETRY = BackOff(wait_minimum=0.5, random_range=1.0, repeat_times=3)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_boots_beyond_the_rate_wait_their_turn_and_are_not_overtaken() -> None:
    clock = Clock()
    adm = BootAdmission(AdmissionPolicy(boot_rate=10, boot_burst=5), clock)
    waits = {f"S{i}": adm.decide(f"S{i}") for i in range(50)}  # 50 boots at the same instant
    assert [w for w in waits.values()][:5] == [None] * 5
    deferred = {sid: w for sid, w in waits.items() if w is not None}
    assert len(deferred) == 45 and adm.deferred == 45
    told = list(deferred.values())
    assert told == sorted(told) and told[0] == 1 and told[-1] == 5  # 45 more at 10/s: the last waits 4.5 s -> 5
    # a newcomer while they wait is put behind them, a deferred station that comes back too early is told the rest
    clock.t += 1.0
    assert adm.decide("NEW") == 4  # its slot is 4.6 s after the storm, after S49's at 4.5 s
    assert adm.decide("S49") == 4
    # every deferred station that comes back when told is in, on the token reserved for it
    for sid, w in deferred.items():
        clock.t = 100.0 + w
        assert adm.decide(sid) is None, sid
    assert adm.admitted == 50 and adm.waiting == 1  # NEW's slot is still open


def test_no_rate_admits_everyone_and_a_backlog_defers_even_with_tokens() -> None:
    clock = Clock()
    free = BootAdmission(AdmissionPolicy(), clock)
    assert all(free.decide(f"S{i}") is None for i in range(1000))
    busy = BootAdmission(AdmissionPolicy(boot_rate=100, boot_burst=50, max_backlog=500), clock)
    assert busy.decide("A", backlog=10) is None
    assert busy.decide("B", backlog=501) == 1  # the database is behind: wait, although tokens are left
    clock.t += 1.0
    assert busy.decide("B", backlog=0) is None


async def test_a_storm_of_200_stations_is_admitted_with_backoff_hints(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    ids = [f"STORM-{i}" for i in range(200)]
    store = Store(db)
    hashed = hash_password(PASSWORD, n=2**4)  # cheap: the handshake's scrypt is not what this test is about
    with store.session() as s:
        s.execute(insert(Station), [{"id": sid, "password_hash": hashed, "security_profile": 1,
                                     "connector_status": {}} for sid in ids])
    store.close()
    seen: dict[str, list[str]] = {}
    hints: Counter[int] = Counter()
    retries: Counter[str] = Counter()
    accepted: set[str] = set()
    async with running_csms(db, stations={sid: PASSWORD for sid in ids[:1]}, admission=AdmissionPolicy(
            boot_rate=20, boot_burst=5), auth_throttle=ThrottlePolicy(verify_rate=1e4, verify_burst=10**4)) as csms:
        csms.listeners.append(lambda sid, action, _: seen.setdefault(sid, []).append(action))
        url = f"ws://127.0.0.1:{csms.port}/ocpp"

        async def station(sid: str) -> None:
            auth = base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()
            for attempt in range(20):
                try:
                    async with websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                                  additional_headers={"Authorization": f"Basic {auth}"},
                                                  open_timeout=120) as ws:
                        await boot(sid, ws)
                        return
                except (InvalidStatus, InvalidMessage) as e:
                    # refused (503), or, on a starved machine, closed by the server's handshake timeout before any
                    # answer: as a station does, back off (never less than a Retry-After) and connect again
                    retries[type(e).__name__] += 1
                    hint = retry_after_seconds(e.response.headers.get("Retry-After")) \
                        if isinstance(e, InvalidStatus) else None
                    await asyncio.sleep(RETRY.wait(attempt, hint))
            raise AssertionError(f"{sid} never got in")

        async def boot(sid: str, ws: websockets.ClientConnection) -> None:
            n = 0
            while True:
                n += 1
                await ws.send(json.dumps([2, f"b{n}", "BootNotification", {
                    "reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}]))
                answer = json.loads(await ws.recv())[2]
                if answer["status"] == "Accepted":
                    break
                assert answer["status"] == "Pending" and answer["interval"] >= 1
                hints[answer["interval"]] += 1
                await asyncio.sleep(answer["interval"])  # B02: nothing else before the interval is over
            accepted.add(sid)
            await ws.send(json.dumps([2, "s1", "StatusNotification", {
                "timestamp": "2026-12-07T04:00:00Z", "connectorStatus": "Available", "evseId": 1,
                "connectorId": 1}]))
            assert json.loads(await ws.recv())[0] == 3

        await asyncio.gather(*(station(sid) for sid in ids))
        assert accepted == set(ids)
        assert sum(hints.values()) == csms.admission.deferred > 0  # backoff hints were given, and obeyed
        # (how long the hints are depends on how fast the stations get in: a starved machine lets them in slower
        # than the boot rate; the hints' growth with the queue is the admission engine's tests' above)
        assert csms.admission.admitted == len(ids)  # each station admitted once: the deferred on their slots
        # the CSMS saw each station boot once (deferred boots cost nothing) and then its status
        assert all(seen[sid] == ["BootNotification", "StatusNotification"] for sid in ids)


def _router() -> Router:
    r = Router()
    r.add("Heartbeat", lambda p: {"currentTime": "2026-12-07T04:00:00Z"})
    return r


async def test_handshakes_beyond_the_connection_limit_get_503_with_retry_after() -> None:
    async with OcppServer({"2.0.1": _router()}, security_profile=0, max_connections=3, busy_retry_after=4,
                          ping_interval=None) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        held = [await websockets.connect(f"{url}/CS{i}", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
                for i in range(3)]
        while len(server.connections) < 3:
            await asyncio.sleep(0.01)
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(f"{url}/CS9", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 503
        assert 2 <= int(refused.value.response.headers["Retry-After"]) <= 6
        assert server.refused_busy == 1
        await held[0].close()
        while len(server.connections) > 2:
            await asyncio.sleep(0.01)
        async with websockets.connect(f"{url}/CS9", subprotocols=["ocpp2.0.1"]):  # type: ignore[list-item]
            pass  # a place came free
        for ws in held[1:]:
            await ws.close()


async def test_handshakes_beyond_the_handshake_limit_get_503_before_any_password_check() -> None:
    release = asyncio.Event()
    checked: list[str] = []

    async def slow(cred: Credentials) -> AuthDecision:
        checked.append(cred.station_id)
        await release.wait()
        return AuthDecision.ACCEPT

    async with OcppServer({"2.0.1": _router()}, security_profile=1, authenticator=slow, max_handshakes=1,
                          ping_interval=None) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"

        async def connect(sid: str) -> websockets.ClientConnection:
            auth = base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()
            return await websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                            additional_headers={"Authorization": f"Basic {auth}"})

        first = asyncio.create_task(connect("CS1"))
        while not checked:
            await asyncio.sleep(0.01)
        with pytest.raises(InvalidStatus) as refused:
            await connect("CS2")
        assert refused.value.response.status_code == 503 and "Retry-After" in refused.value.response.headers
        assert checked == ["CS1"]  # the refused one cost no password check
        release.set()
        ws = await first
        await ws.close()


def test_reconnect_waits_follow_retry_backoff_and_respect_retry_after() -> None:
    """OCPP 2.0.1 OCPPCommCtrlr RetryBackOff*: minimum * 2^attempt (doubling at most RepeatTimes times) plus random
    0..RandomRange; a refusal's Retry-After is a lower bound, never a shortcut."""
    b = BackOff(wait_minimum=3.0, random_range=10.0, repeat_times=5)
    assert [b.wait(n, rng=lambda: 0.0) for n in range(8)] == [3, 6, 12, 24, 48, 96, 96, 96]
    assert b.wait(0, rng=lambda: 0.5) == 8.0 and b.wait(2, rng=lambda: 1.0) == 22.0
    assert b.wait(0, retry_after=20, rng=lambda: 0.0) == 20.0  # the CSMS asked for longer
    assert b.wait(4, retry_after=20, rng=lambda: 0.0) == 48.0  # the station's own wait is longer already
    assert [retry_after_seconds(v) for v in ("12", " 7 ", None, "Wed, 21 Oct 2026 07:28:00 GMT")] == [12, 7, None, None]


async def test_a_busy_node_answers_new_sockets_503_without_a_handshake_or_password_check() -> None:
    """Over the connection limit the server writes its pre-built 503 (with Retry-After) as soon as it accepts the
    socket: the station's client reads it as a refusal with the hint, and no password is checked."""
    checked: list[str] = []

    def auth(cred: Credentials) -> AuthDecision:
        checked.append(cred.station_id)
        return AuthDecision.ACCEPT

    async with OcppServer({"2.0.1": _router()}, security_profile=1, authenticator=auth, max_connections=1,
                          busy_retry_after=4, ping_interval=None, open_timeout=0.5) as server:
        url = f"ws://127.0.0.1:{server.port}/ocpp"
        held = await StationClient(f"{url}", "CS1", Router(), password=PASSWORD, ping_interval=None).connect()
        with pytest.raises(HandshakeRefused) as refused:
            await StationClient(f"{url}", "CS2", Router(), password=PASSWORD, ping_interval=None).connect()
        assert refused.value.status == 503 and refused.value.retry_after is not None
        assert 2 <= refused.value.retry_after <= 6
        # a socket that sends nothing gets the answer too, and is closed after the open timeout
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        answer = await asyncio.wait_for(reader.read(), 30)  # until the server closes
        assert answer.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: " in answer
        writer.close()
        assert checked == ["CS1"] and server.refused_busy == 2 and not server._opening
        await held.close()
