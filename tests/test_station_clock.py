"""The station clock's fast readings (epoch(), timestamp()) against the datetime they stand for."""

from __future__ import annotations

import datetime as dt
import random

from v2gstack.station.clock import Clock
from v2gstack.times import rfc3339


def test_epoch_and_timestamp_are_those_of_wall_to_the_microsecond() -> None:
    rng = random.Random(7)
    clock = Clock(1 / 60)
    for i in range(4000):
        if i % 400 == 0:
            clock.skew(rng.uniform(-1e6, 1e6))
        at = rng.random() * rng.choice([1e-3, 1.0, 1e3, 1e6, 1e8]) + rng.choice([0.0, 0.0000005, 0.0005])
        clock.now = lambda at=at: at  # type: ignore[method-assign]
        assert clock.epoch() == clock.wall().timestamp()
        assert clock.timestamp() == rfc3339(clock.wall())


def test_a_clock_that_reads_its_wall_time_another_way_is_read_that_way() -> None:
    class HandClock(Clock):
        def wall(self) -> dt.datetime:
            return dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC)

    clock = HandClock()
    assert clock.epoch() == clock.wall().timestamp()
    assert clock.timestamp() == "2026-11-24T10:00:00.123Z"
