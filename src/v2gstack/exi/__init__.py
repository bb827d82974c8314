"""Schema-informed EXI codec for every ISO 15118 / DIN 70121 namespace, byte-exact with EXIficient.

`encode(ns, doc)` and `decode(ns, data)` use the EXI JSON view described in docs/exi.md.
"""

from __future__ import annotations

from typing import Any

from .codec import NAMESPACES, namespace
from .errors import ExiDecodeError, ExiEncodeError, ExiError

__all__ = ["NAMESPACES", "ExiDecodeError", "ExiEncodeError", "ExiError", "decode", "encode"]


def encode(ns: str, doc: dict[str, Any], *, fragment: bool = False) -> bytes:
    """Encode a document (or, with fragment=True, an EXI fragment) of namespace `ns` to EXI bytes."""
    return namespace(ns).encode(doc, fragment)


def decode(ns: str, data: bytes, *, fragment: bool = False) -> dict[str, Any]:
    """Decode EXI bytes of namespace `ns` to the JSON view; raises ExiDecodeError on any bad input."""
    return namespace(ns).decode(data, fragment)
