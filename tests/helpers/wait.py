"""Waiting for a condition in async tests, the one way: poll, with a limit that is a safety net, not a timing check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], bool], limit: float = 15.0) -> None:
    """Wait until `predicate()` holds (polling); fail only if it never does (a safety net, not a timing check)."""
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)
