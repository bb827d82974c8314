"""Password guessing against our CSMS over real handshakes: scrypt runs are counted (a spy around the real
`check_password`), never timed. Sources are distinct loopback addresses (127.0.0.x); the throttle's clock is frozen,
so waits never run out during a test and every count is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import raw_peer
from websockets.exceptions import InvalidStatus

from v2gstack.csms import store as ops
from v2gstack.csms.service import Csms
from v2gstack.ocpp.throttle import AuthThrottle, ThrottlePolicy, source_key

WRONG = "wrong-password-0000001"


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the CSMS hashed to check it (the real check still runs)."""
    calls: list[str] = []
    real: Callable[[str, str | None], bool] = ops.check_password

    def counting(password: str, stored: str | None) -> bool:
        calls.append(password)
        return real(password, stored)

    monkeypatch.setattr(ops, "check_password", counting)
    return calls


async def handshake(csms: Csms, station_id: str, password: str, source: str) -> int:
    """HTTP status of one handshake from `source` (101 when the websocket opened)."""
    try:
        async with raw_peer(csms_url(csms), station_id, password=password, local_addr=(source, 0)):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


@asynccontextmanager
async def csms_with_frozen_throttle(tmp_path: Path, stations: dict[str, str | None],
                                    policy: ThrottlePolicy) -> AsyncIterator[Csms]:
    """Our CSMS (profile 1) whose handshake throttle's clock does not move."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations=stations) as csms:
        assert csms.authenticator is not None
        csms.authenticator.throttle = AuthThrottle(policy, clock=lambda: 1000.0)
        yield csms


async def test_guessing_from_one_source_is_refused_without_hashing(tmp_path: Path, scrypt_calls: list[str]) -> None:
    """30 wrong passwords from one source against a station not seen since the CSMS started: 3 are checked (401),
    then 429 at once, for whatever station that source names; the real station, elsewhere, still connects."""
    async with csms_with_frozen_throttle(tmp_path, {"CS1": PASSWORD, "CS2": PASSWORD}, ThrottlePolicy()) as csms:
        statuses = [await handshake(csms, "CS1", f"{WRONG}{i}", "127.0.0.2") for i in range(30)]
        assert statuses == [401] * 3 + [429] * 27
        assert len(scrypt_calls) == 3
        assert await handshake(csms, "CS2", PASSWORD, "127.0.0.2") == 429  # the source waits, whatever it asks
        assert await handshake(csms, "CS1", PASSWORD, "127.0.0.3") == 101  # the station itself, from elsewhere
        assert len(scrypt_calls) == 4
        assert await handshake(csms, "CS1", PASSWORD, "127.0.0.3") == 101  # remembered digest: no scrypt
        assert len(scrypt_calls) == 4
        # unknown station ids count against the source too (and are answered like wrong passwords, without a hash)
        assert [await handshake(csms, f"NOPE{i}", PASSWORD, "127.0.0.4") for i in range(5)] == [401] * 3 + [429] * 2
        assert len(scrypt_calls) == 4


async def test_guessing_from_many_sources_locks_the_station_not_its_known_source(tmp_path: Path,
                                                                                  scrypt_calls: list[str]) -> None:
    """One wrong password each from 20 sources: the station's own count locks it after 10 (429); the source it
    connected from before still gets in, a new source with the right password waits too. The station's verified
    password is remembered as a keyed digest, so none of these guesses costs a scrypt run."""
    async with csms_with_frozen_throttle(tmp_path, {"CS1": PASSWORD}, ThrottlePolicy()) as csms:
        assert await handshake(csms, "CS1", PASSWORD, "127.0.0.3") == 101
        statuses = [await handshake(csms, "CS1", WRONG, f"127.0.1.{i}") for i in range(1, 21)]
        assert statuses == [401] * 10 + [429] * 10
        assert await handshake(csms, "CS1", PASSWORD, "127.0.0.3") == 101
        assert await handshake(csms, "CS1", PASSWORD, "127.0.0.9") == 429
        assert len(scrypt_calls) == 1


async def test_scrypt_budget_refuses_beyond_it(tmp_path: Path, scrypt_calls: list[str]) -> None:
    """Ten stations, one wrong password each from ten sources: no back-off applies, but only the budget's burst (4)
    is hashed; the rest are refused with 429 at once."""
    stations = {f"CS{i}": PASSWORD for i in range(10)}
    async with csms_with_frozen_throttle(tmp_path, stations, ThrottlePolicy(verify_burst=4)) as csms:
        statuses = [await handshake(csms, f"CS{i}", WRONG, f"127.0.2.{i + 1}") for i in range(10)]
        assert statuses == [401] * 4 + [429] * 6
        assert len(scrypt_calls) == 4


def test_throttle_waits_double_and_expire() -> None:
    now = [0.0]
    t = AuthThrottle(ThrottlePolicy(free_failures=2, station_free_failures=2, base_delay=1.0, max_delay=4.0,
                                    forget_after=100.0, verify_rate=2.0, verify_burst=2), clock=lambda: now[0])
    waits = []
    for _ in range(6):
        t.failed("CS1", "10.0.0.1")
        waits.append(t.wait("CS1", "10.0.0.2"))  # another source: the station's own count
    assert waits == [0.0, 1.0, 2.0, 4.0, 4.0, 4.0]
    now[0] = 200.0  # long after the last failure: forgotten
    assert t.wait("CS1", "10.0.0.1") == 0.0
    assert [t.take_verification() for _ in range(3)] == [True, True, False]
    now[0] = 200.5  # one token back at 2 per second
    assert [t.take_verification() for _ in range(2)] == [True, False]
    assert source_key("::1:51234") == "::/64" and source_key("127.0.0.2:80") == "127.0.0.2"
    assert source_key("::ffff:10.0.0.1:80") == "10.0.0.1"
