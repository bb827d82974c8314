"""The codec's own exceptions: every failure of encode/decode is one of these."""

from __future__ import annotations


class ExiError(ValueError):
    """Base class of all EXI codec errors."""


class ExiDecodeError(ExiError):
    """The byte string is not a valid EXI stream for the namespace's grammars."""

    def __init__(self, message: str, bit_position: int | None = None) -> None:
        self.bit_position = bit_position
        where = f" (at bit {bit_position})" if bit_position is not None else ""
        super().__init__(f"{message}{where}")


class ExiEncodeError(ExiError):
    """The document does not satisfy the schema; `path` names the element and `rule` the broken rule."""

    def __init__(self, rule: str, path: list[str] | None = None) -> None:
        self.rule = rule
        self.path: list[str] = path or []
        super().__init__(rule)

    def __str__(self) -> str:
        return f"{'/'.join(self.path) or '<root>'}: {self.rule}"
