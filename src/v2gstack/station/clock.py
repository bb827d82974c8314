"""Simulation clock: wall-clock timestamps and sleeps that can run faster than real time (for tests and demos)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from ..times import rfc3339


class Clock:
    """Simulated time: `scale` real seconds per simulated second (1.0 = real time, 0.01 = 100x faster)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("clock scale must be positive")
        self.scale = scale
        self._mono0 = time.monotonic()
        self._wall0 = dt.datetime.now(dt.UTC)

    def now(self) -> float:
        """Simulated seconds since the clock started (monotonic)."""
        return (time.monotonic() - self._mono0) / self.scale

    def wall(self) -> dt.datetime:
        """Simulated wall-clock time (UTC), consistent with now()."""
        return self._wall0 + dt.timedelta(seconds=self.now())

    def skew(self, seconds: float) -> None:
        """Set the wall clock `seconds` off (a station whose clock drifted or was set wrongly); now() is unchanged."""
        self._wall0 += dt.timedelta(seconds=seconds)

    def timestamp(self) -> str:
        """Simulated wall-clock time as an RFC 3339 string with milliseconds, as OCPP wants it."""
        return rfc3339(self.wall())

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of simulated time."""
        await asyncio.sleep(max(0.0, seconds) * self.scale)
