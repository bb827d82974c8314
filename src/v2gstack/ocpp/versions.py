"""OCPP versions, their websocket subprotocol names and the OCPP-J message type numbers."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Version(StrEnum):
    """An OCPP version this engine speaks; the value is how the specifications write it."""

    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"

    @property
    def subprotocol(self) -> str:
        """The Sec-WebSocket-Protocol token that selects this version (OCPP-J part 4)."""
        return "ocpp" + self.value

    @classmethod
    def from_subprotocol(cls, token: str) -> Version:
        """The version a Sec-WebSocket-Protocol token names; ValueError if it names none."""
        if token.startswith("ocpp"):
            return cls(token[4:])
        raise ValueError(f"not an OCPP subprotocol: {token!r}")

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Accept '2.0.1', 'ocpp2.0.1' or a Version; ValueError otherwise."""
        if isinstance(text, Version):
            return text
        return cls.from_subprotocol(text) if text.startswith("ocpp") else cls(text)


class MessageType(IntEnum):
    """OCPP-J MessageTypeId: the first element of every frame."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5  # OCPP 2.1 only
    SEND = 6  # OCPP 2.1 only


# Message types each version defines; anything else is an unknown message type for that version.
MESSAGE_TYPES: dict[Version, frozenset[int]] = {
    Version.V16: frozenset({2, 3, 4}),
    Version.V201: frozenset({2, 3, 4}),
    Version.V21: frozenset({2, 3, 4, 5, 6}),
}

# Longest MessageId the specifications allow (1.6 and 2.x: 36 characters, a UUID fits).
MAX_MESSAGE_ID_LENGTH = 36

# Longest errorDescription the 2.x specifications allow; applied to every version.
MAX_ERROR_DESCRIPTION_LENGTH = 255
