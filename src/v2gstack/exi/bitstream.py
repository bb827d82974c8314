"""Bit-packed EXI streams: n-bit unsigned integers, unsigned/signed varints and the string table."""

from __future__ import annotations

from .errors import ExiDecodeError

MAX_UINT_GROUPS = 128  # 896 bits: far beyond any length or value in the ISO 15118 schemas


class BitReader:
    """Reads bit-packed values from bytes; every read is bounds-checked against the input length."""

    __slots__ = ("glob", "local", "n", "p", "v")

    def __init__(self, data: bytes, start_bit: int = 0) -> None:
        self.v = int.from_bytes(data, "big")
        self.n = len(data) * 8
        self.p = start_bit
        self.glob: list[str] = []
        self.local: dict[int, list[str]] = {}

    def bits(self, k: int) -> int:
        p = self.p + k
        if p > self.n:
            raise ExiDecodeError("unexpected end of stream", self.p)
        self.p = p
        return (self.v >> (self.n - p)) & ((1 << k) - 1)

    def uint(self) -> int:
        """EXI Unsigned Integer: little-endian groups of 7 bits, high bit set while more follow.

        At most MAX_UINT_GROUPS groups: no ISO 15118 value comes near that, and an endless run of
        continuation bytes in a bad stream must not become a giant number.
        """
        p = self.p + 8
        if p <= self.n:  # fast path: one group, the common case
            b = (self.v >> (self.n - p)) & 0xFF
            if b < 0x80:
                self.p = p
                return b
        result = 0
        shift = 0
        p, v, n = self.p, self.v, self.n
        for _ in range(MAX_UINT_GROUPS):
            if p + 8 > n:
                self.p = p
                raise ExiDecodeError("unexpected end of stream", p)
            p += 8
            b = (v >> (n - p)) & 0xFF
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.p = p
                return result
            shift += 7
        self.p = p
        raise ExiDecodeError(f"unsigned integer longer than {MAX_UINT_GROUPS * 7} bits", self.p)

    def integer(self) -> int:
        if self.bits(1):
            return -self.uint() - 1
        return self.uint()

    def raw_bytes(self, length: int) -> bytes:
        if length * 8 > self.n - self.p:
            raise ExiDecodeError(f"length {length} runs past the end of the stream", self.p)
        if length == 0:
            return b""
        return self.bits(length * 8).to_bytes(length, "big")

    def chars(self, length: int) -> str:
        """`length` code points, each an Unsigned Integer (one byte each when ASCII)."""
        if length * 8 > self.n - self.p:
            raise ExiDecodeError(f"string length {length} runs past the end of the stream", self.p)
        if length == 0:
            return ""
        start = self.p
        raw = self.bits(length * 8).to_bytes(length, "big")
        if max(raw) < 0x80:
            return raw.decode("ascii")
        self.p = start
        out = []
        for _ in range(length):
            cp = self.uint()
            if cp > 0x10FFFF:
                raise ExiDecodeError(f"code point {cp} out of range", self.p)
            out.append(chr(cp))
        return "".join(out)

    def string(self, qid: int) -> str:
        """A string value with EXI's value string table (local partition per qname, then global)."""
        n = self.uint()
        if n == 0:
            table = self.local.get(qid)
            if not table:
                raise ExiDecodeError("local string table hit on an empty partition", self.p)
            idx = self.bits((len(table) - 1).bit_length())
            if idx >= len(table):
                raise ExiDecodeError("local string table index out of range", self.p)
            return table[idx]
        if n == 1:
            if not self.glob:
                raise ExiDecodeError("global string table hit on an empty table", self.p)
            idx = self.bits((len(self.glob) - 1).bit_length())
            if idx >= len(self.glob):
                raise ExiDecodeError("global string table index out of range", self.p)
            return self.glob[idx]
        value = self.chars(n - 2)
        if value:
            self.glob.append(value)
            self.local.setdefault(qid, []).append(value)
        return value


class BitWriter:
    """Accumulates bits in one Python int (with a leading sentinel bit) and emits bytes at the end."""

    __slots__ = ("acc",)

    def __init__(self) -> None:
        self.acc = 1

    def bits(self, k: int, value: int) -> None:
        self.acc = (self.acc << k) | value

    def uint(self, value: int) -> None:
        if value < 0x80:
            self.acc = (self.acc << 8) | value
            return
        acc = self.acc
        while value >= 0x80:
            acc = (acc << 8) | 0x80 | (value & 0x7F)
            value >>= 7
        self.acc = (acc << 8) | value

    def integer(self, value: int) -> None:
        if value < 0:
            self.acc = (self.acc << 1) | 1
            self.uint(-value - 1)
        else:
            self.acc <<= 1
            self.uint(value)

    def raw_bytes(self, data: bytes) -> None:
        if data:
            self.acc = (self.acc << (8 * len(data))) | int.from_bytes(data, "big")

    def chars(self, value: str) -> None:
        if value.isascii():
            self.raw_bytes(value.encode("ascii"))
        else:
            for ch in value:
                self.uint(ord(ch))

    def string(self, qid: int, value: str) -> None:
        """A string value, always as a literal (length + 2, then the characters).

        The reference codecs never emit string-table hits (EXIficient as ISO 15118 stacks configure it,
        and libcbv2g), so neither do we; the reader still resolves hits from encoders that use them.
        """
        self.uint(len(value) + 2)
        self.chars(value)

    def getvalue(self) -> bytes:
        nbits = self.acc.bit_length() - 1
        pad = -nbits % 8
        total = (nbits + pad) // 8
        return (self.acc << pad).to_bytes(total + 1, "big")[1:]
