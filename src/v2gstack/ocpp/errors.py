"""OCPP-J CallError codes with each version's wire spelling, and the exceptions the engine raises."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from .versions import MAX_ERROR_DESCRIPTION_LENGTH, Version


class ErrorCode(StrEnum):
    """RPC framework error codes, named as OCPP 2.0.1/2.1 spell them; `wire()` gives a version's spelling."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"

    def wire(self, version: Version) -> str:
        """The errorCode string to put on the wire for `version`."""
        if version is Version.V16:
            return _WIRE_16.get(self, self.value)
        return self.value

    @classmethod
    def parse(cls, text: str) -> ErrorCode | None:
        """The code a received errorCode names, accepting every version's spelling; None if unknown."""
        code = _ALIASES.get(text)
        if code is not None:
            return code
        try:
            return cls(text)
        except ValueError:
            return None


# OCPP-J 1.6, table 7, keeps two misspellings (errata sheet, "known issues that will not be fixed": 5.1, 5.2) and
# lacks the two 2.x-only codes; "GenericError" is its catch-all for them.
_WIRE_16: dict[ErrorCode, str] = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "GenericError",
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "GenericError",
}
_ALIASES: dict[str, ErrorCode] = {
    "FormationViolation": ErrorCode.FORMAT_VIOLATION,
    "OccurenceConstraintViolation": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
}


def cap_description(text: str) -> str:
    """Cut an errorDescription to the length the specification allows."""
    return text if len(text) <= MAX_ERROR_DESCRIPTION_LENGTH else text[: MAX_ERROR_DESCRIPTION_LENGTH - 3] + "..."


class OcppError(Exception):
    """An OCPP-J error with a code: raise it in a handler to answer the CALL with exactly this CALLERROR."""

    def __init__(self, code: ErrorCode, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code.value}: {description}" if description else code.value)
        self.code = code
        self.description = description
        self.details: dict[str, Any] = details if details is not None else {}


class CallErrorReceived(OcppError):
    """The peer answered our CALL with a CALLERROR; `wire_code` is the errorCode exactly as received."""

    def __init__(self, code: ErrorCode, description: str, details: dict[str, Any], wire_code: str) -> None:
        super().__init__(code, description, details)
        self.wire_code = wire_code


class PayloadInvalid(OcppError):
    """A payload failed its JSON schema; raised before an invalid outgoing message could be sent."""


class CallTimeoutError(TimeoutError):
    """The peer did not answer our CALL within the call timeout."""


class ConnectionClosedError(ConnectionError):
    """The websocket closed while a CALL was outstanding or before it could be sent."""
