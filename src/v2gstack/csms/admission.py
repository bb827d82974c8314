"""Boot-storm admission (sans-I/O, clock injected): how many BootNotifications a node accepts per second, and the
`interval` a deferred station is told to wait before its next one (OCPP 2.0.1 B02: Pending, `interval` = the minimum
wait before the next BootNotificationRequest; the station sends nothing else meanwhile and keeps its socket).

After an outage every station of a node reconnects within seconds and boots: each Accepted boot costs database
writes (the boot record, the owner record, the version) and is followed by StatusNotifications and the stations'
queued transactions. Accepting them all at once queues thousands of operations behind each other until answers time
out and stations reconnect again. Here accepted boots follow a token bucket (`boot_rate` per second, `boot_burst`
deep); a boot beyond it takes a token on credit and is answered Pending with the seconds until that token is due.
The station coming back at that time is admitted on its reserved token, so deferred stations are not overtaken by
later arrivals and the returns are spread evenly at `boot_rate`. A deferral costs no database access at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The limits; `boot_rate` 0 admits every boot at once."""

    boot_rate: float = 0.0  # BootNotifications accepted per second, on average (0: no limit)
    boot_burst: int = 50  # accepted at once before the rate applies
    max_backlog: int = 0  # database operations queued beyond which boots are deferred even with tokens (0: no check)
    max_interval: int = 600  # the longest wait told (s); a later slot is told again when the station returns
    early: float = 1.0  # s: a station may come back this much before its slot (clocks, rounding) and still be in


class BootAdmission:
    """The policy's state for one node: `decide(station_id, backlog)` per BootNotification."""

    def __init__(self, policy: AdmissionPolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or AdmissionPolicy()
        self.clock = clock
        self._tokens = float(self.policy.boot_burst)
        self._refilled = clock()
        self._slots: dict[str, float] = {}  # station -> when its reserved token is due (monotonic)
        self._forget_above = 4 * max(1, int(self.policy.boot_rate * self.policy.max_interval))
        self.admitted = 0
        self.deferred = 0

    @property
    def waiting(self) -> int:
        """Stations told to come back whose slot has not been used yet."""
        return len(self._slots)

    def decide(self, station_id: str, backlog: int = 0) -> int | None:
        """None: accept this boot now; otherwise the seconds (>= 1) to answer Pending with."""
        p = self.policy
        if p.boot_rate <= 0:
            self.admitted += 1
            return None
        now = self.clock()
        self._refill(now)
        slot = self._slots.get(station_id)
        if slot is not None:
            if now >= slot - p.early:
                del self._slots[station_id]  # its token was taken when it was deferred
                self.admitted += 1
                return None
            self.deferred += 1
            return self._interval(slot - now)  # early: the rest of its wait, no second token
        overloaded = p.max_backlog > 0 and backlog > p.max_backlog
        if self._tokens >= 1.0 and not overloaded:
            self._tokens -= 1.0
            self.admitted += 1
            return None
        self._tokens -= 1.0  # on credit: due when the bucket has refilled past zero
        wait = max(-self._tokens / p.boot_rate, 1.0 / p.boot_rate)
        if overloaded:
            wait = max(wait, 1.0)
        self._slots[station_id] = now + wait
        self.deferred += 1
        if len(self._slots) > self._forget_above:
            self._forget(now)
        return self._interval(wait)

    def _refill(self, now: float) -> None:
        """Tokens accrue at `boot_rate` up to `boot_burst`."""
        p = self.policy
        self._tokens = min(float(p.boot_burst), self._tokens + (now - self._refilled) * p.boot_rate)
        self._refilled = now

    def _interval(self, wait: float) -> int:
        """Whole seconds, at least 1 (0 would let the station choose), at most max_interval."""
        return max(1, min(self.policy.max_interval, math.ceil(wait)))

    def _forget(self, now: float) -> None:
        """Drop slots long past (stations that never came back)."""
        horizon = now - self.policy.max_interval
        self._slots = {sid: t for sid, t in self._slots.items() if t > horizon}
        # all still current: look again only when twice as many wait (a sweep per boot would cost O(n) each)
        p = self.policy
        self._forget_above = max(4 * max(1, int(p.boot_rate * p.max_interval)), 2 * len(self._slots))


FD_RESERVE = 256  # descriptors a node keeps for its database connections, NATS, the API, log files


def default_max_connections() -> int:
    """Station sockets a node can hold: its file-descriptor limit (RLIMIT_NOFILE, soft) less a reserve, so that a
    storm is answered 503 at the handshake instead of accept() failing for the database and the API too."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft - FD_RESERVE) if soft != resource.RLIM_INFINITY else 1_000_000


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (a node holds one descriptor per station); the new
    soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard
