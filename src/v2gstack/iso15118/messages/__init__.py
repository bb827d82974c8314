"""Build and read DIN SPEC 70121 and ISO 15118-2 messages in the EXI JSON view, one module per protocol."""

from __future__ import annotations

from .din import DinMessages
from .envelope import MessageError, body_name, split, v2g_message
from .iso2 import Iso2Messages

__all__ = ["DinMessages", "Iso2Messages", "MessageError", "body_name", "for_protocol", "split", "v2g_message"]

_BY_KEY: dict[str, Iso2Messages] = {"iso2": Iso2Messages(), "din": DinMessages()}


def for_protocol(key: str) -> Iso2Messages:
    """The message builder/reader of protocol `key` ('iso2' or 'din')."""
    return _BY_KEY[key]
