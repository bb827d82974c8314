"""Simulation clock: wall-clock timestamps and sleeps that can run faster than real time (for tests and demos)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from ..times import rfc3339


class Clock:
    """Simulated time: `scale` real seconds per simulated second (1.0 = real time, 0.01 = 100x faster)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("clock scale must be positive")
        self.scale = scale
        self._mono0 = time.monotonic()
        self._wall0 = dt.datetime.now(dt.UTC)
        self._wall0_us = _epoch_us(self._wall0)
        self._stamp_ms = -1  # the millisecond of `_stamp`, timestamp()'s last answer
        self._stamp = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A clock that reads its wall time another way (a test's hand-set clock) reads epoch() from it too."""
        super().__init_subclass__(**kwargs)
        if "wall" in cls.__dict__ and "epoch" not in cls.__dict__:
            cls.epoch = lambda self: self.wall().timestamp()  # type: ignore[method-assign]
        if "wall" in cls.__dict__ and "timestamp" not in cls.__dict__:
            cls.timestamp = lambda self: rfc3339(self.wall())  # type: ignore[method-assign]

    def now(self) -> float:
        """Simulated seconds since the clock started (monotonic)."""
        return (time.monotonic() - self._mono0) / self.scale

    def wall(self) -> dt.datetime:
        """Simulated wall-clock time (UTC), consistent with now()."""
        return self._wall0 + dt.timedelta(seconds=self.now())

    def epoch(self) -> float:
        """Simulated wall-clock time in epoch seconds: `wall().timestamp()` to the bit (the same microseconds), without
        making a datetime (the charge loop and the composite's memo ask several times per loop)."""
        return (self._wall0_us + _microseconds(self.now())) / 1_000_000

    def skew(self, seconds: float) -> None:
        """Set the wall clock `seconds` off (a station whose clock drifted or was set wrongly); now() is unchanged."""
        self._wall0 += dt.timedelta(seconds=seconds)
        self._wall0_us = _epoch_us(self._wall0)

    def timestamp(self) -> str:
        """Simulated wall-clock time as an RFC 3339 string with milliseconds, as OCPP wants it (formatted once per
        millisecond: every OCPP frame's DiagnosticsLog line and every message's timestamp asks)."""
        us = self._wall0_us + _microseconds(self.now())
        if us // 1000 != self._stamp_ms:
            self._stamp_ms = us // 1000
            self._stamp = rfc3339(_EPOCH + dt.timedelta(microseconds=us))
        return self._stamp

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of simulated time."""
        await asyncio.sleep(max(0.0, seconds) * self.scale)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_us(at: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    d = at - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _microseconds(seconds: float) -> int:
    """`seconds` (>= 0) in whole microseconds rounded as `datetime.timedelta(seconds=...)` rounds them (half to even
    over the whole count), so that epoch() is wall().timestamp() exactly."""
    whole = int(seconds)
    scaled = (seconds - whole) * 1e6
    part = int(scaled)
    us = whole * 1_000_000 + part
    left = scaled - part
    if left > 0.5 or (left == 0.5 and us & 1):
        us += 1
    return us
