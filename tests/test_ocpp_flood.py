"""A peer that floods: repeated warnings are logged a bounded number of times with a count of the rest, and a peer
that keeps causing CALLERRORs is disconnected with 1008 (policy violation). The policy alone with a stepped clock,
then our CSMS and a raw websocket peer over a real socket; lines and messages are counted, no durations."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import raw_peer
from websockets.exceptions import ConnectionClosed

from v2gstack.ocpp.flood import FloodGuard, FloodPolicy


def test_guard_logs_a_burst_per_interval_then_sums_up() -> None:
    now = [0.0]
    guard = FloodGuard(FloodPolicy(log_burst=3, log_interval=10.0), clock=lambda: now[0])
    assert [guard.should_log("refused") for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    assert guard.should_log("ignored") == (True, 0)  # kinds are counted apart
    now[0] = 10.0
    assert guard.should_log("refused") == (True, 2)  # a new interval: the first line reports the 2 not logged
    assert [guard.should_log("refused")[0] for _ in range(4)] == [True, True, False, False]
    assert guard.pending_summaries() == {"refused": 2} and guard.pending_summaries() == {}
    assert FloodGuard(FloodPolicy(log_burst=0)).should_log("x") == (True, 0)


def test_guard_counts_violations_in_a_sliding_window() -> None:
    now = [0.0]
    guard = FloodGuard(FloodPolicy(max_violations=3, violation_window=10.0), clock=lambda: now[0])
    assert [guard.violation() for _ in range(3)] == [False] * 3
    now[0] = 10.5  # the first three are out of the window
    assert [guard.violation() for _ in range(3)] == [False] * 3
    assert guard.violation() is True
    assert not any(FloodGuard(FloodPolicy(max_violations=0)).violation() for _ in range(1000))


def malformed(i: int) -> str:
    """A text that is not a frame (answered FormatViolation, id -1)."""
    return f"not json {i}"


async def test_flood_of_malformed_frames_logs_a_bounded_number_of_lines(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """300 malformed frames, every one answered, with closing turned off: at most 10 WARNING lines about them and
    one line with the count of the other 290 when the connection ends."""
    caplog.set_level(logging.DEBUG)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", max_protocol_errors=0) as csms:
        async with raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
            for i in range(300):
                answer = await peer.exchange(malformed(i))
                assert answer[:3] == [4, "-1", "FormatViolation"]
        await until_offline(csms, "CS1")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("v2gstack") and r.levelno >= logging.WARNING]
    refusals = [line for line in lines if "refused a message" in line]
    assert len(refusals) == 10, len(refusals)
    assert [line for line in lines if "290 more refused messages" in line], lines[-3:]
    assert len(lines) <= 12


async def until_offline(csms: object, station_id: str) -> None:
    """Yield until the CSMS has seen the station's connection end (bounded by tries)."""
    import asyncio

    for _ in range(500):
        if not csms.online(station_id):  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still online")


async def test_persistent_violations_close_with_1008(tmp_path: Path) -> None:
    """A peer that sends malformed frames in a loop without reading: 20 CALLERRORs (the default limit), then the
    CSMS closes with 1008; the CSMS keeps serving, and the station may connect again."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms:
        async with raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
            sent = 0
            try:
                for i in range(200):
                    await peer.ws.send(malformed(i))
                    sent += 1
            except ConnectionClosed:
                pass
            answers = 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await peer.recv()
                    answers += 1
            assert answers == 20 and sent > 20
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
            assert (await peer.exchange([2, "h1", "Heartbeat", {}]))[0] == 3
