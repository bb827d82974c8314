"""Station authentication at the websocket handshake: security profiles, Basic auth, pluggable authenticators."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum

# identifierString (OCPP 2.x part 2) without ':' (part 4 errata: it separates the Basic auth user name).
_STATION_ID = re.compile(r"[A-Za-z0-9*\-_=+|@.]{1,48}")


class SecurityProfile(IntEnum):
    """OCPP security profiles; 0 means none at all (development only, not allowed by the specification)."""

    NONE = 0
    BASIC = 1  # ws://, HTTP Basic auth
    TLS_BASIC = 2  # wss://, server certificate, HTTP Basic auth
    TLS_CLIENT_CERT = 3  # wss://, server and client certificates

    @property
    def uses_tls(self) -> bool:
        """Whether this profile runs over TLS."""
        return self >= SecurityProfile.TLS_BASIC

    @property
    def uses_password(self) -> bool:
        """Whether the station proves its identity with a Basic auth password."""
        return self in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a connecting station presented: its identity from the URL and its proof of it."""

    station_id: str
    security_profile: SecurityProfile
    password: str | None = None  # profiles 1, 2
    certificate_cn: str | None = None  # profile 3: the client certificate's subject CN
    certificate_der: bytes | None = None  # profile 3: the whole client certificate
    remote_address: str = ""
    subprotocols: tuple[str, ...] = ()


class AuthDecision(Enum):
    """An authenticator's verdict; the server turns each refusal into an HTTP status at the handshake."""

    ACCEPT = 101
    BAD_CREDENTIALS = 401
    FORBIDDEN = 403
    UNKNOWN_STATION = 404
    TOO_MANY_REQUESTS = 429  # too many failed attempts, or the password-check budget is spent: try again later


Authenticator = Callable[[Credentials], AuthDecision | Awaitable[AuthDecision]]


def valid_station_id(station_id: str) -> bool:
    """Whether `station_id` is a well-formed charging station identity (at most 48 identifierString characters)."""
    return _STATION_ID.fullmatch(station_id) is not None


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def basic_auth_header(station_id: str, password: str) -> str:
    """The `Authorization` header value a station sends (user name = station identity)."""
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode("ascii")


class StaticAuthenticator:
    """Stations known by a fixed table: id -> Basic auth password (None for certificate-only stations)."""

    def __init__(self, stations: Mapping[str, str | None]) -> None:
        self.stations = dict(stations)

    def __call__(self, cred: Credentials) -> AuthDecision:
        """Known station and, when a password is used, the right one (compared in constant time)."""
        if cred.station_id not in self.stations:
            return AuthDecision.UNKNOWN_STATION
        if cred.security_profile.uses_password:
            expected = self.stations[cred.station_id]
            if expected is None or cred.password is None:
                return AuthDecision.BAD_CREDENTIALS
            if not hmac.compare_digest(expected.encode(), cred.password.encode()):
                return AuthDecision.BAD_CREDENTIALS
        return AuthDecision.ACCEPT
