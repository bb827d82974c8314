"""Why a message to the CSMS got no usable answer: typed, so that callers (and the log) can tell a link that is down
from a refusal, from a bug of ours, from a CSMS that answered nonsense."""

from __future__ import annotations


class CallFailed(Exception):
    """A CALL to the CSMS did not bring a usable answer; `action` is the message."""

    def __init__(self, action: str, description: str) -> None:
        super().__init__(f"{action}: {description}")
        self.action = action
        self.description = description


class Offline(CallFailed):
    """The station could not ask: not connected, not accepted yet, or the link failed (closed, no answer in time)."""


class CallRefused(CallFailed):
    """The CSMS answered with a CALLERROR: `code` is its errorCode as received."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(action, f"CALLERROR {code}: {description}")
        self.code = code
        self.reason = description


class OwnPayloadInvalid(CallFailed):
    """Our own request broke the OCPP schema and was not sent: a bug of the station, never the CSMS's fault."""


class AnswerInvalid(CallFailed):
    """The CSMS answered with a payload that breaks the response schema."""
