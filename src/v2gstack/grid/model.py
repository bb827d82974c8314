"""The one internal grid-signal model: what a grid operator asks of the site (limits, a setpoint, a price, over time
intervals, for a target), checked strictly before anything is applied, whatever it came from (OpenADR, API, file).

Units: power in W (a setpoint is signed: positive imports, negative exports), limits as non-negative magnitudes,
price in currency per kWh. A signal is all or nothing: `parse_signal` and `SignalBook.apply` raise a SignalError
(with a code and the path of the field) and leave the book as it was.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..times import parse_rfc3339, rfc3339

MAX_POWER_W = 100e6
"""The largest power a signal may name (100 MW: a big site; anything above is a unit mistake)."""
MAX_PRICE = 10_000.0
"""The largest price magnitude per kWh a signal may name."""
MAX_INTERVAL = timedelta(days=7)
MAX_INTERVALS = 1000
MAX_ID = 64


class TargetKind(StrEnum):
    """What a signal applies to: the whole site, a named group of stations, or one station."""

    SITE = "site"
    GROUP = "group"
    STATION = "station"


class Opt(StrEnum):
    """Whether the site takes part in a signal (an opted-out signal is kept, reported, not scheduled)."""

    IN = "optIn"
    OUT = "optOut"


class SignalError(ValueError):
    """A signal refused as a whole: `code` says which rule, `path` which field."""

    def __init__(self, code: str, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.code = code
        self.path = path
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The error as an API answer body."""
        return {"code": self.code, "path": self.path, "detail": self.message}


class UnknownTarget(SignalError):
    """The signal names a site, group or station this CSMS does not know."""


class UnknownSignal(SignalError):
    """An opt or a cancellation names a signal the book does not hold."""


@dataclass(frozen=True, slots=True)
class Target:
    """A signal's target: kind and id (the site's id, a group's name or a station id)."""

    kind: TargetKind
    id: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"kind": self.kind.value, "id": self.id}


@dataclass(frozen=True, slots=True)
class Interval:
    """One time interval of a signal: [start, end), each field None when the signal does not set it."""

    start: datetime
    end: datetime
    import_limit_w: float | None = None
    export_limit_w: float | None = None
    setpoint_w: float | None = None
    price: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (RFC 3339 times, absent fields left out)."""
        out: dict[str, Any] = {"start": rfc3339(self.start, "seconds"), "end": rfc3339(self.end, "seconds")}
        for name, key in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return out


_FIELDS = (("import_limit_w", "importLimitW"), ("export_limit_w", "exportLimitW"), ("setpoint_w", "setpointW"),
           ("price", "price"))


@dataclass(frozen=True, slots=True)
class GridSignal:
    """A grid signal: its id, where it came from, its target, its intervals (sorted, disjoint), whether the site
    opted in, its priority (a higher one wins a setpoint where signals overlap) and its modification number."""

    id: str
    source: str
    target: Target
    intervals: tuple[Interval, ...]
    opt: Opt = Opt.IN
    priority: int = 0
    modification: int = 0

    @property
    def start(self) -> datetime:
        """When the first interval starts."""
        return self.intervals[0].start

    @property
    def end(self) -> datetime:
        """When the last interval ends."""
        return self.intervals[-1].end

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the API shows it and `parse_signal` reads it."""
        return {"id": self.id, "source": self.source, "target": self.target.to_dict(), "opt": self.opt.value,
                "priority": self.priority, "modification": self.modification,
                "intervals": [i.to_dict() for i in self.intervals]}


@dataclass(frozen=True, slots=True)
class Topology:
    """The targets this site knows: its own id, its groups (name -> station ids) and its stations."""

    site_id: str = "site"
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    stations: frozenset[str] = frozenset()

    def stations_of(self, target: Target) -> frozenset[str] | None:
        """The stations a target covers (None: every station of the site)."""
        if target.kind is TargetKind.SITE:
            return None
        if target.kind is TargetKind.GROUP:
            return self.groups[target.id]
        return frozenset({target.id})

    def check(self, target: Target, path: str = "target") -> None:
        """UnknownTarget unless this site knows the target."""
        known = {TargetKind.SITE: {self.site_id}, TargetKind.GROUP: set(self.groups),
                 TargetKind.STATION: set(self.stations)}[target.kind]
        if target.id not in known:
            raise UnknownTarget("unknown-target", f"no {target.kind.value} {target.id!r} at this site", path)


# ----- parsing (the JSON form, from the API, the CLI and signal files) -----

def _finite(value: Any, path: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignalError("not-a-number", f"must be a number, not {type(value).__name__}", path)
    v = float(value)
    if not math.isfinite(v):
        raise SignalError("not-finite", f"must be finite, not {value!r}", path)
    if not low <= v <= high:
        raise SignalError("out-of-range", f"{v:g} is outside [{low:g}, {high:g}]", path)
    return v


def _time(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise SignalError("bad-time", "a time needs a UTC offset", path)
        return value
    if not isinstance(value, str):
        raise SignalError("bad-time", "must be an RFC 3339 time", path)
    try:
        t = parse_rfc3339(value)
    except ValueError:
        raise SignalError("bad-time", f"{value!r} is no RFC 3339 time", path) from None
    if value[-1] not in "Zz" and "+" not in value[10:] and "-" not in value[10:]:
        raise SignalError("bad-time", "a time needs a UTC offset (Z or +hh:mm)", path)
    return t


def _ident(value: Any, path: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise SignalError("bad-id", f"must be 1 to {MAX_ID} printable characters", path)
    return value


def parse_interval(raw: Any, path: str) -> Interval:
    """One interval from its JSON form (start and end, or start and durationS), every value checked."""
    if not isinstance(raw, dict):
        raise SignalError("bad-interval", "must be an object", path)
    allowed = {"start", "end", "durationS", *(k for _, k in _FIELDS)}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise SignalError("unknown-field", f"unknown field(s) {', '.join(extra)}", path)
    start = _time(raw.get("start"), f"{path}.start")
    if "end" in raw and "durationS" in raw:
        raise SignalError("bad-interval", "give end or durationS, not both", path)
    if "durationS" in raw:
        seconds = _finite(raw["durationS"], f"{path}.durationS", low=-MAX_INTERVAL.total_seconds(),
                          high=MAX_INTERVAL.total_seconds())
        end = start + timedelta(seconds=seconds)
    else:
        end = _time(raw.get("end"), f"{path}.end")
    if end <= start:
        raise SignalError("inverted-interval", f"ends ({rfc3339(end)}) at or before it starts ({rfc3339(start)})",
                          path)
    if end - start > MAX_INTERVAL:
        raise SignalError("out-of-range", f"lasts more than {MAX_INTERVAL.days} days", path)
    values: dict[str, float | None] = {}
    for name, key in _FIELDS:
        if raw.get(key) is None:
            values[name] = None
        elif name == "setpoint_w":
            values[name] = _finite(raw[key], f"{path}.{key}", low=-MAX_POWER_W, high=MAX_POWER_W)
        elif name == "price":
            values[name] = _finite(raw[key], f"{path}.{key}", low=-MAX_PRICE, high=MAX_PRICE)
        else:
            values[name] = _finite(raw[key], f"{path}.{key}", low=0.0, high=MAX_POWER_W)
    if all(v is None for v in values.values()):
        raise SignalError("empty-interval", "sets none of " + ", ".join(k for _, k in _FIELDS), path)
    sp, imp, exp = values["setpoint_w"], values["import_limit_w"], values["export_limit_w"]
    if sp is not None and imp is not None and sp > imp:
        raise SignalError("inconsistent", f"setpoint {sp:g} W imports more than the import limit {imp:g} W", path)
    if sp is not None and exp is not None and -sp > exp:
        raise SignalError("inconsistent", f"setpoint {sp:g} W exports more than the export limit {exp:g} W", path)
    return Interval(start, end, **values)


def check_intervals(intervals: Iterable[Interval], path: str = "intervals") -> tuple[Interval, ...]:
    """Intervals sorted by start; SignalError when two overlap or there are none or too many."""
    items = sorted(intervals, key=lambda i: i.start)
    if not items:
        raise SignalError("no-intervals", "a signal needs at least one interval", path)
    if len(items) > MAX_INTERVALS:
        raise SignalError("out-of-range", f"more than {MAX_INTERVALS} intervals", path)
    for a, b in itertools.pairwise(items):
        if b.start < a.end:
            raise SignalError("overlapping-intervals", f"{rfc3339(a.start)}..{rfc3339(a.end)} overlaps "
                                                       f"{rfc3339(b.start)}..{rfc3339(b.end)}", path)
    return tuple(items)


def parse_target(raw: Any, path: str = "target") -> Target:
    """A target from its JSON form: {"kind": "site"|"group"|"station", "id": ...}."""
    if not isinstance(raw, dict) or set(raw) - {"kind", "id"}:
        raise SignalError("bad-target", 'must be {"kind": site|group|station, "id": ...}', path)
    try:
        kind = TargetKind(raw.get("kind"))
    except ValueError:
        raise SignalError("bad-target", f"kind is one of site, group, station, not {raw.get('kind')!r}",
                          f"{path}.kind") from None
    return Target(kind, _ident(raw.get("id"), f"{path}.id"))


def parse_signal(raw: Any, *, source: str = "operator", default_id: str | None = None) -> GridSignal:
    """A signal from its JSON form, every field checked (SignalError on the first that fails)."""
    if not isinstance(raw, dict):
        raise SignalError("bad-signal", "a signal is a JSON object")
    extra = sorted(set(raw) - {"id", "source", "target", "intervals", "opt", "priority", "modification"})
    if extra:
        raise SignalError("unknown-field", f"unknown field(s) {', '.join(extra)}")
    sid = _ident(raw.get("id", default_id), "id")
    target = parse_target(raw.get("target", {"kind": "site", "id": "site"}))
    intervals = raw.get("intervals")
    if not isinstance(intervals, list):
        raise SignalError("no-intervals", "must be a list of intervals", "intervals")
    parsed = check_intervals((parse_interval(r, f"intervals[{n}]") for n, r in enumerate(intervals)))
    try:
        opt = Opt(raw.get("opt", Opt.IN.value))
    except ValueError:
        raise SignalError("bad-opt", f"opt is optIn or optOut, not {raw.get('opt')!r}", "opt") from None
    priority = raw.get("priority", 0)
    modification = raw.get("modification", 0)
    for name, value in (("priority", priority), ("modification", modification)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
            raise SignalError("out-of-range", "must be an integer from 0 to 2^31-1", name)
    src = raw.get("source", source)
    return GridSignal(sid, _ident(src, "source"), target, parsed, opt, priority, modification)


# ----- the book of signals in force -----

@dataclass(frozen=True, slots=True)
class StepSignals:
    """What the signals ask of one scope over the scheduler's steps (None where nothing is asked)."""

    stations: frozenset[str] | None  # None: the whole site
    import_limit_w: list[float | None]
    export_limit_w: list[float | None]
    setpoint_w: list[float | None]


class SignalBook:
    """The signals in force, by id. Changes are checked whole first, then applied at once."""

    def __init__(self, topology: Topology | None = None) -> None:
        self.topology = topology or Topology()
        self.signals: dict[str, GridSignal] = {}

    def apply(self, signals: Iterable[GridSignal]) -> list[GridSignal]:
        """Add or replace signals (same id: a newer modification replaces it, an older one is refused); every
        target checked first, so either all are applied or none."""
        batch = list(signals)
        seen: set[str] = set()
        for n, s in enumerate(batch):
            self.topology.check(s.target, f"signals[{n}].target" if len(batch) > 1 else "target")
            if s.id in seen:
                raise SignalError("duplicate-id", f"signal {s.id!r} appears twice", f"signals[{n}].id")
            seen.add(s.id)
            old = self.signals.get(s.id)
            if old is not None and s.modification < old.modification:
                raise SignalError("stale-modification", f"signal {s.id!r} is at modification {old.modification}, "
                                                         f"not {s.modification}", "modification")
        for s in batch:
            self.signals[s.id] = s
        return batch

    def cancel(self, signal_id: str) -> GridSignal:
        """Remove a signal (UnknownSignal if the book has none of that id)."""
        try:
            return self.signals.pop(signal_id)
        except KeyError:
            raise UnknownSignal("unknown-signal", f"no signal {signal_id!r}", "id") from None

    def set_opt(self, signal_id: str, opt: Opt) -> GridSignal:
        """Opt in or out of a signal."""
        if signal_id not in self.signals:
            raise UnknownSignal("unknown-signal", f"no signal {signal_id!r}", "id")
        s = self.signals[signal_id] = replace(self.signals[signal_id], opt=opt)
        return s

    def expire(self, now: datetime) -> list[str]:
        """Drop the signals that ended before `now`; their ids."""
        gone = [sid for sid, s in self.signals.items() if s.end <= now]
        for sid in gone:
            del self.signals[sid]
        return gone

    def steps(self, start: datetime, step: timedelta, n: int) -> tuple[list[float | None], list[StepSignals]]:
        """Per step of the horizon: the price (the highest-priority signal's, None where none) and, per target
        scope, the tightest limits and the setpoint of the highest-priority, then latest-starting, signal.

        An interval applies to a step when it covers the step's start or at least half of the step."""
        prices: list[float | None] = [None] * n
        price_rank: list[tuple[int, datetime] | None] = [None] * n
        scopes: dict[Target, StepSignals] = {}
        sp_rank: dict[Target, list[tuple[int, datetime] | None]] = {}
        for s in sorted(self.signals.values(), key=lambda s: s.id):
            if s.opt is Opt.OUT:
                continue
            scope = scopes.get(s.target)
            if scope is None:
                scope = scopes[s.target] = StepSignals(self.topology.stations_of(s.target), [None] * n, [None] * n,
                                                       [None] * n)
                sp_rank[s.target] = [None] * n
            for iv in s.intervals:
                rank = (s.priority, iv.start)
                for t in _steps_covered(iv, start, step, n):
                    if iv.import_limit_w is not None:
                        old = scope.import_limit_w[t]
                        scope.import_limit_w[t] = iv.import_limit_w if old is None else min(old, iv.import_limit_w)
                    if iv.export_limit_w is not None:
                        old = scope.export_limit_w[t]
                        scope.export_limit_w[t] = iv.export_limit_w if old is None else min(old, iv.export_limit_w)
                    if iv.setpoint_w is not None:
                        known = sp_rank[s.target][t]
                        if known is None or rank > known:
                            scope.setpoint_w[t] = iv.setpoint_w
                            sp_rank[s.target][t] = rank
                    if iv.price is not None:
                        known = price_rank[t]
                        if known is None or rank > known:
                            prices[t] = iv.price
                            price_rank[t] = rank
        return prices, list(scopes.values())


def _steps_covered(iv: Interval, start: datetime, step: timedelta, n: int) -> list[int]:
    """The steps an interval applies to: those whose start it covers or of which it covers at least half."""
    first = max(0, math.floor((iv.start - start) / step))
    last = min(n, math.ceil((iv.end - start) / step))
    out = []
    for t in range(first, last):
        s0 = start + t * step
        covered = min(iv.end, s0 + step) - max(iv.start, s0)
        if iv.start <= s0 < iv.end or covered * 2 >= step:
            out.append(t)
    return out


# ----- signal files (scenarios) and relative times -----

_UNITS = {"s": 1, "m": 60, "h": 3600}


def resolve_times(raw: Any, now: datetime) -> Any:
    """A signal's JSON form with relative times resolved: a `start` or `end` of "now", "now+90s", "now+15m" or
    "now-1h" becomes that RFC 3339 time (scenario files and the CLI use them); other values are left as they are."""
    if isinstance(raw, list):
        return [resolve_times(r, now) for r in raw]
    if not isinstance(raw, dict):
        return raw
    out = {}
    for key, value in raw.items():
        if key in ("start", "end") and isinstance(value, str) and value.startswith("now"):
            rest = value[3:]
            seconds = 0.0
            if rest:
                unit = _UNITS.get(rest[-1])
                try:
                    if rest[0] not in "+-" or unit is None:
                        raise ValueError
                    seconds = float(rest[:-1]) * unit
                except ValueError:
                    raise SignalError("bad-time", f"{value!r}: relative times read now, now+15m, now-90s or now+1h",
                                      key) from None
            out[key] = rfc3339(now + timedelta(seconds=seconds))
        else:
            out[key] = resolve_times(value, now)
    return out


def load_signal_file(path: str | Path, now: datetime) -> list[Any]:
    """The signals of a file (JSON: a list or {"signals": [...]}; TOML: [[signal]] tables with [[signal.intervals]]),
    relative times resolved against `now`; the JSON forms, for `parse_signal` (SignalError if the file is no such)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SignalError("bad-file", f"cannot read {p.name}: {e}") from None
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise SignalError("bad-file", f"{p.name} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    if isinstance(data, dict):
        data = data.get("signals", data.get("signal"))
    if not isinstance(data, list) or not data:
        raise SignalError("bad-file", f"{p.name} holds no list of signals (a JSON list, \"signals\", or [[signal]])")
    return resolve_times(data, now)
