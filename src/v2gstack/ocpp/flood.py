"""Flood policy of one OCPP-J connection (sans-I/O, clock injected): how many repeated warnings get logged, and when
a peer that keeps breaking the protocol is disconnected.

A peer that sends malformed frames or CALLs in a loop would otherwise write one log line per message (a field
report: 1.2 million WARNING lines, 128 MB). Here each kind of warning is logged `log_burst` times per `log_interval`,
then counted and summed up in one line; and more than `max_violations` CALLERRORs the peer caused within
`violation_window` seconds mean the connection is closed with 1008 (policy violation).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSE_POLICY_VIOLATION = 1008  # RFC 6455 7.4.1


@dataclass(frozen=True, slots=True)
class FloodPolicy:
    """The limits; `max_violations` 0 never closes, `log_burst` 0 never suppresses."""

    log_burst: int = 10  # lines of one kind per interval before suppressing
    log_interval: float = 60.0  # seconds
    max_violations: int = 20  # CALLERRORs the peer caused, more than this within the window closes the connection
    violation_window: float = 60.0  # seconds


@dataclass(slots=True)
class _Window:
    """One kind of warning: when its interval began, how many were logged and suppressed in it."""

    start: float
    logged: int = 0
    suppressed: int = 0


class FloodGuard:
    """The policy's state for one connection: `should_log(kind)` before a warning, `violation()` per CALLERROR the
    peer caused, `pending_summaries()` when the connection ends."""

    def __init__(self, policy: FloodPolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or FloodPolicy()
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._violations: deque[float] = deque()
        self.violations = 0  # all counted so far, for reports

    def should_log(self, kind: str) -> tuple[bool, int]:
        """(log this line?, lines of this kind suppressed in the interval that just ended: say so first when > 0)."""
        burst = self.policy.log_burst
        if burst <= 0:
            return True, 0
        now = self.clock()
        w = self._windows.get(kind)
        if w is None or now - w.start >= self.policy.log_interval:
            ended = w.suppressed if w is not None else 0
            self._windows[kind] = _Window(now, 1)
            return True, ended
        if w.logged < burst:
            w.logged += 1
            return True, 0
        w.suppressed += 1
        return False, 0

    def pending_summaries(self) -> dict[str, int]:
        """Suppressed counts not reported yet, by kind (and forget them): for a last line when the connection ends."""
        out = {k: w.suppressed for k, w in self._windows.items() if w.suppressed}
        for w in self._windows.values():
            w.suppressed = 0
        return out

    def violation(self) -> bool:
        """Count one CALLERROR the peer caused; True when they are now more than max_violations within the window."""
        self.violations += 1
        limit = self.policy.max_violations
        if limit <= 0:
            return False
        now = self.clock()
        recent = self._violations
        recent.append(now)
        while recent and now - recent[0] > self.policy.violation_window:
            recent.popleft()
        while len(recent) > limit + 1:  # bounded memory: only the last limit+1 times matter
            recent.popleft()
        return len(recent) > limit
