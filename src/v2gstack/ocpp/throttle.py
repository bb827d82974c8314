"""Password-guessing defence for the handshake (sans-I/O, clock injected): back-off per source address and per
station, and a budget of password verifications per second.

Checking a Basic auth password costs a deliberately slow hash (the CSMS's scrypt: tens of ms of CPU). A field
report: 915 wrong-password handshakes in 20 s cost 38 s of CPU and slowed real handshakes from 3 ms to 420 ms. With
this policy a source that failed `free_failures` times (a station that failed `station_free_failures` times, from
whatever sources) must wait `base_delay`, doubling with every further failure up to `max_delay`; attempts during
the wait are refused at once (429) without hashing. A source that once authenticated as a station is not held up by
failures of *other* sources against that station (so an attacker elsewhere cannot lock a working station out).
Verifications beyond `verify_rate` per second (burst `verify_burst`) are refused at once too, whoever asks.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The limits (seconds, counts)."""

    free_failures: int = 3  # failures of a source before it waits (the third one starts the wait)
    station_free_failures: int = 10  # failures against one station, from any sources, before it waits
    base_delay: float = 1.0  # the first wait, doubled per further failure
    max_delay: float = 300.0
    forget_after: float = 3600.0  # a record without failure for this long starts afresh
    max_entries: int = 10000  # records per table (least recently used dropped)
    verify_rate: float = 10.0  # password verifications per second, on average
    verify_burst: int = 20


@dataclass(slots=True)
class _Record:
    """Failures of one source or station and until when it must wait."""

    failures: int = 0
    until: float = 0.0
    last: float = 0.0


def source_key(remote_address: str) -> str:
    """The source a `host:port` address (as Credentials.remote_address has it) counts as: the IP; an IPv6 address by
    its /64 (one host's usual share), an IPv4-mapped one as the IPv4 address."""
    host = remote_address.rsplit(":", 1)[0].strip("[]") if ":" in remote_address else remote_address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class AuthThrottle:
    """The policy's state for one server: `wait()` before an attempt, `failed()`/`succeeded()` after it,
    `take_verification()` before hashing a password."""

    def __init__(self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or ThrottlePolicy()
        self.clock = clock
        self._sources: OrderedDict[str, _Record] = OrderedDict()
        self._stations: OrderedDict[str, _Record] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()  # (station, source) that succeeded
        self._tokens = float(self.policy.verify_burst)
        self._refilled = clock()

    def wait(self, station_id: str, source: str) -> float:
        """Seconds this source must wait before trying this station (0: go ahead)."""
        now = self.clock()
        waits = [self._remaining(self._sources, source, now)]
        if (station_id, source) not in self._trusted:
            waits.append(self._remaining(self._stations, station_id, now))
        return max(waits)

    def failed(self, station_id: str | None, source: str) -> None:
        """Count a failed attempt (a wrong password; an unknown station counts for the source only)."""
        now = self.clock()
        self._fail(self._sources, source, now, self.policy.free_failures)
        if station_id is not None:
            self._fail(self._stations, station_id, now, self.policy.station_free_failures)

    def succeeded(self, station_id: str, source: str) -> None:
        """A station authenticated from a source: the source starts afresh and the pair is trusted. The station's
        own count stays (it decays with forget_after), so others' guesses do not start over at each reconnect."""
        self._sources.pop(source, None)
        self._trusted[(station_id, source)] = self.clock()
        self._trusted.move_to_end((station_id, source))
        while len(self._trusted) > self.policy.max_entries:
            self._trusted.popitem(last=False)

    def take_verification(self) -> bool:
        """Whether a password may be hashed now (a token bucket of verify_rate per second, verify_burst deep)."""
        now = self.clock()
        p = self.policy
        self._tokens = min(float(p.verify_burst), self._tokens + (now - self._refilled) * p.verify_rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _remaining(self, table: OrderedDict[str, _Record], key: str, now: float) -> float:
        """Seconds left of the key's wait."""
        r = table.get(key)
        if r is None:
            return 0.0
        if now - r.last > self.policy.forget_after:
            del table[key]
            return 0.0
        return max(0.0, r.until - now)

    def _fail(self, table: OrderedDict[str, _Record], key: str, now: float, free: int) -> None:
        """Add a failure to a record and set its wait."""
        p = self.policy
        r = table.get(key)
        if r is None or now - r.last > p.forget_after:
            r = table[key] = _Record()
        table.move_to_end(key)
        r.failures += 1
        r.last = now
        over = r.failures - free  # the free-th failure starts the first wait
        if over >= 0:
            r.until = now + min(p.max_delay, p.base_delay * 2 ** min(over, 32))
        while len(table) > p.max_entries:
            table.popitem(last=False)
