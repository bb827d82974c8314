"""One-dimensional PostgreSQL arrays built in the binary wire format with a few C-level calls per array.

The batch form of TransactionEvents (csms/store_batch.py) sends a batch's rows as ~27 array parameters, ~80 values
per event. psycopg dumps a Python list element by element in Python (a sub-dumper call, a length pack and two appends
per value): the largest part of the write path's client CPU on PostgreSQL. Here each array is packed with one
`struct.pack` over interleaved (length, value) pairs, or one `bytes.join` for text; `None` elements are allowed.
The parameter is sent in binary (`%b`) with the array's type, so the server reads it exactly as psycopg's own dump.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import adapters
from psycopg.adapt import Dumper
from psycopg.pq import Format

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # binary timestamptz: microseconds since then
_US = timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"
_head = struct.Struct(">iiiii").pack  # ndim, has null, element oid, length, lower bound
_int4 = struct.Struct(">i").pack
_EMPTY = struct.Struct(">iii")  # an empty array: no dimensions


class PgArray:
    """A one-dimensional array already in PostgreSQL's binary format (one subclass per element type)."""

    __slots__ = ("data",)
    array_oid = 0

    def __init__(self, data: bytes) -> None:
        self.data = data


class Int4Array(PgArray):
    __slots__ = ()
    array_oid = 1007


class Float8Array(PgArray):
    __slots__ = ()
    array_oid = 1022


class BoolArray(PgArray):
    __slots__ = ()
    array_oid = 1000


class TextArray(PgArray):
    __slots__ = ()
    array_oid = 1009


class TimestamptzArray(PgArray):
    __slots__ = ()
    array_oid = 1185


@functools.cache
def _fixed_format(code: str, n: int) -> struct.Struct:
    """n (length, value) pairs of a fixed-width element (i: int4, d: float8, ?: bool, q: int64)."""
    return struct.Struct(">" + ("i" + code) * n)


def _fixed(oid: int, code: str, size: int, values: Sequence[Any]) -> bytes:
    """The binary array of a fixed-width element type."""
    n = len(values)
    if n == 0:
        return _EMPTY.pack(0, 0, oid)
    if None not in values:
        pairs: list[Any] = [size] * (2 * n)
        pairs[1::2] = values
        return _head(1, 0, oid, n, 1) + _fixed_format(code, n).pack(*pairs)
    parts = [_NULL if v is None else struct.pack(">i" + code, size, v) for v in values]
    return _head(1, 1, oid, n, 1) + b"".join(parts)


def int4_array(values: Sequence[int | None]) -> Int4Array:
    """An int4[] parameter."""
    return Int4Array(_fixed(23, "i", 4, values))


def float8_array(values: Sequence[float | None]) -> Float8Array:
    """A float8[] parameter."""
    return Float8Array(_fixed(701, "d", 8, values))


def bool_array(values: Sequence[bool | None]) -> BoolArray:
    """A bool[] parameter."""
    return BoolArray(_fixed(16, "?", 1, values))


def timestamptz_array(values: Sequence[datetime | None]) -> TimestamptzArray:
    """A timestamptz[] parameter of aware datetimes."""
    return TimestamptzArray(_fixed(1184, "q", 8, [None if t is None else (t - _PG_EPOCH) // _US for t in values]))


def text_array(values: Sequence[str | None]) -> TextArray:
    """A text[] parameter."""
    if not values:
        return TextArray(_EMPTY.pack(0, 0, 25))
    encoded = [None if v is None else v.encode() for v in values]
    parts: list[bytes] = [b""] * (2 * len(values))
    parts[0::2] = [_NULL if b is None else _int4(len(b)) for b in encoded]
    parts[1::2] = [b or b"" for b in encoded]
    return TextArray(_head(1, int(None in values), 25, len(values), 1) + b"".join(parts))


def _dumper(cls: type[PgArray]) -> type[Dumper]:
    class _ArrayDumper(Dumper):
        format = Format.BINARY
        oid = cls.array_oid

        def dump(self, obj: PgArray) -> bytes:
            return obj.data

    return _ArrayDumper


for _cls in (Int4Array, Float8Array, BoolArray, TextArray, TimestamptzArray):
    adapters.register_dumper(_cls, _dumper(_cls))
