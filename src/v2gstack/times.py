"""RFC 3339 time text in UTC with a `Z`, as OCPP, the trace records and the CSMS write it: the one helper for all."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(value: datetime | float | None = None, timespec: str = "milliseconds") -> str:
    """`value` (a datetime, naive ones taken as UTC, or epoch seconds; None: now) as RFC 3339 UTC ending in `Z`.

    `timespec` is `datetime.isoformat`'s: "seconds", "milliseconds", "microseconds" or "auto"."""
    if value is None:
        t = datetime.now(UTC)
    elif isinstance(value, datetime):
        t = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    else:
        t = datetime.fromtimestamp(value, UTC)
    return t.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time as an aware datetime; a value without offset is UTC (as SQLite returns them).

    ValueError for text that is no such time."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def utc_aware(t: datetime) -> datetime:
    """A datetime read from a database as an aware one: SQLite gives naive datetimes back, stored as UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
