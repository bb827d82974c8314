"""EXI datatype representations (EXI 1.0 section 7.1) with the schema facets checked on encode.

Each generated TYPES entry becomes a (decode, encode) pair of closures, built once per namespace.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from .bitstream import BitReader, BitWriter
from .errors import ExiDecodeError, ExiEncodeError

Decoder = Callable[[BitReader, int], object]
Encoder = Callable[[BitWriter, object, int], None]


def _check_len(n: int, length: int | None, lo: int | None, hi: int | None, unit: str) -> None:
    if length is not None and n != length:
        raise ExiEncodeError(f"length is {n} {unit}, the schema requires exactly {length}")
    if lo is not None and n < lo:
        raise ExiEncodeError(f"length is {n} {unit}, the schema requires at least {lo}")
    if hi is not None and n > hi:
        raise ExiEncodeError(f"length is {n} {unit}, the schema allows at most {hi}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def show_int(v: int) -> str:
    """An integer for a message; a huge one by its size (str() refuses over 4300 digits)."""
    return str(v) if v.bit_length() < 256 else f"<{'-' if v < 0 else ''}{v.bit_length()}-bit integer>"


def _range_error(v: object, lo: int | None, hi: int | None) -> ExiEncodeError:
    if not _is_int(v):
        shown = show_int(v) if isinstance(v, int) else repr(v)
        return ExiEncodeError(f"expected an integer, got {type(v).__name__} {shown}")
    return ExiEncodeError(f"value {show_int(v)} is outside the schema range [{lo}, {hi}]")  # type: ignore[arg-type]


def compile_type(dt: tuple) -> tuple[Decoder, Encoder]:
    kind = dt[0]
    if kind == "enum":
        values: tuple[str, ...] = dt[1]
        width = (len(values) - 1).bit_length()
        index = {v: i for i, v in enumerate(values)}

        def dec_enum(r: BitReader, qid: int) -> object:
            i = r.bits(width)
            if i >= len(values):
                raise ExiDecodeError(f"enumeration index {i} out of range ({len(values)} values)", r.p)
            return values[i]

        def enc_enum(w: BitWriter, v: object, qid: int) -> None:
            i = index.get(v) if isinstance(v, str) else None
            if i is None:
                raise ExiEncodeError(f"{v!r} is not one of the enumeration values {list(values)}")
            w.bits(width, i)

        return dec_enum, enc_enum
    if kind == "nbit":
        _, width, lo, hi = dt
        mask_hi = hi - lo

        def dec_nbit(r: BitReader, qid: int) -> object:
            v = r.bits(width)
            if v > mask_hi:
                raise ExiDecodeError(f"bounded integer {v + lo} out of range [{lo}, {hi}]", r.p)
            return v + lo

        def enc_nbit(w: BitWriter, v: object, qid: int) -> None:
            if not _is_int(v) or not lo <= v <= hi:  # type: ignore[operator]
                raise _range_error(v, lo, hi)
            w.bits(width, v - lo)  # type: ignore[operator]

        return dec_nbit, enc_nbit
    if kind in ("uint", "int"):
        _, lo, hi = dt
        unsigned = kind == "uint"

        def dec_int(r: BitReader, qid: int) -> object:
            v = r.uint() if unsigned else r.integer()
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ExiDecodeError(f"integer {show_int(v)} out of range [{lo}, {hi}]", r.p)
            return v

        def enc_int(w: BitWriter, v: object, qid: int) -> None:
            if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):  # type: ignore[operator]
                raise _range_error(v, lo, hi)
            if unsigned:
                w.uint(v)  # type: ignore[arg-type]
            else:
                w.integer(v)  # type: ignore[arg-type]

        return dec_int, enc_int
    if kind == "bool":

        def dec_bool(r: BitReader, qid: int) -> object:
            return r.bits(1) == 1

        def enc_bool(w: BitWriter, v: object, qid: int) -> None:
            if not isinstance(v, bool):
                raise ExiEncodeError(f"expected a boolean, got {type(v).__name__} {v!r}")
            w.bits(1, 1 if v else 0)

        return dec_bool, enc_bool
    if kind in ("hex", "b64"):
        _, length, lo, hi = dt
        is_hex = kind == "hex"

        def dec_bin(r: BitReader, qid: int) -> object:
            data = r.raw_bytes(r.uint())
            return data.hex().upper() if is_hex else base64.b64encode(data).decode("ascii")

        def enc_bin(w: BitWriter, v: object, qid: int) -> None:
            if not isinstance(v, str):
                raise ExiEncodeError(f"expected a {'hex' if is_hex else 'base64'} string, got {type(v).__name__}")
            try:
                data = bytes.fromhex(v) if is_hex else base64.b64decode(v, validate=True)
            except (ValueError, binascii.Error) as e:
                raise ExiEncodeError(f"not valid {'hexBinary' if is_hex else 'base64Binary'}: {e}") from None
            _check_len(len(data), length, lo, hi, "bytes")
            w.uint(len(data))
            w.raw_bytes(data)

        return dec_bin, enc_bin
    if kind == "string":
        _, length, lo, hi = dt

        def dec_str(r: BitReader, qid: int) -> object:
            return r.string(qid)

        def enc_str(w: BitWriter, v: object, qid: int) -> None:
            if not isinstance(v, str):
                raise ExiEncodeError(f"expected a string, got {type(v).__name__} {v!r}")
            if length is not None or lo is not None or hi is not None:
                _check_len(len(v), length, lo, hi, "characters")
            w.string(qid, v)

        return dec_str, enc_str
    raise ValueError(f"unknown datatype {dt!r}")


def fixed_width_table(dt: tuple) -> tuple[int, tuple, dict, type] | None:
    """For n-bit datatypes (enumeration, bounded integer, boolean): (bits, raw->value, value->raw, type).

    Lets the codec read or write an element's CH event, value and EE event as one bit field.
    """
    kind = dt[0]
    if kind == "enum":
        values = tuple(dt[1])
        return (len(values) - 1).bit_length(), values, {v: i for i, v in enumerate(values)}, str
    if kind == "nbit":
        _, width, lo, hi = dt
        values = tuple(range(lo, hi + 1))
        return width, values, {v: i for i, v in enumerate(values)}, int
    if kind == "bool":
        return 1, (False, True), {False: 0, True: 1}, bool
    return None


def allows_empty(dt: tuple) -> bool:
    """Whether a value of this datatype may be empty (a string or binary without a positive minimum length)."""
    return dt[0] in ("string", "hex", "b64") and not dt[1] and not dt[2]
