"""Access control of the CSMS REST API: bearer tokens with a role each, stored as a SHA-256 of their secret.

A token reads `v2gcsms_<id>.<secret>`. The id is public (listings, the audit log); the secret is 256 random bits of
which only the SHA-256 is kept (a high-entropy secret needs no slow hash), compared in constant time. Roles are
ordered: a viewer reads, an operator also sends commands to stations, an admin also changes the registry, the
trust anchors and revocations and reads the audit log. `ApiAuth(store)` gives the FastAPI dependencies; with
`sessions` (csms/login.py) a browser's session cookie stands for a Principal too, with the same roles.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .store import Store, StoreError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "v2gcsms_"
_TOKEN = re.compile(r"v2gcsms_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
_DUMMY_HASH = "0" * 64  # compared against when the id is unknown, so both failures take the same path
DEFAULT_DAYS = 90.0


class Role(IntEnum):
    """What a token may do; each role includes the ones below it."""

    VIEWER = 1  # read stations, idTokens, transactions, timelines, roots
    OPERATOR = 2  # + commands to stations (start/stop, reset, charging profiles, ...)
    ADMIN = 3  # + registry, idTokens, trust anchors, revocations, security-relevant commands, the audit log

    @classmethod
    def parse(cls, name: str) -> Role:
        """A role from its name (viewer, operator, admin); ValueError otherwise."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"role is one of {', '.join(r.name.lower() for r in cls)}, not {name!r}") from None

    @property
    def label(self) -> str:
        """The lower-case name, as stored and shown."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's id, name and role."""

    token_id: str
    name: str
    role: Role


class AuthError(Exception):
    """A token that does not authenticate (malformed, unknown, wrong secret, expired, revoked): HTTP 401."""


def secret_hash(secret: str) -> str:
    """The stored form of a token's secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(store: Store, name: str, role: Role, *, days: float = DEFAULT_DAYS) -> tuple[str, str]:
    """Make and record a new token valid for `days`; returns (token id, the token). The token is not stored."""
    if not name.strip() or len(name) > 100:
        raise StoreError("a token name is 1 to 100 characters")
    if not 0 < days <= 3650:
        raise StoreError("a token is valid for more than 0 and at most 3650 days")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    store.add_api_token(token_id, name.strip(), role.label, secret_hash(secret),
                        datetime.now(UTC) + timedelta(days=days))
    return token_id, f"{TOKEN_PREFIX}{token_id}.{secret}"


def authenticate(store: Store, token: str, now: datetime | None = None) -> Principal:
    """The principal a token stands for; AuthError (with a reason that never contains the secret) otherwise."""
    m = _TOKEN.fullmatch(token.strip())
    if m is None:
        raise AuthError("malformed token")
    token_id, secret = m.groups()
    record = store.api_token(token_id)
    ok = hmac.compare_digest(secret_hash(secret), record.secret_sha256 if record else _DUMMY_HASH)
    if record is None or not ok:
        raise AuthError(f"unknown token or wrong secret (id {token_id})")
    if record.revoked_at is not None:
        raise AuthError(f"token {token_id} is revoked")
    expires = record.expires_at if record.expires_at.tzinfo else record.expires_at.replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) >= expires:
        raise AuthError(f"token {token_id} expired")
    try:
        role = Role.parse(record.role)
    except ValueError:
        raise AuthError(f"token {token_id} has no valid role") from None
    return Principal(token_id, record.name, role)


def forbid_unless(principal: Principal, role: Role, what: str) -> None:
    """403 unless the principal's role includes `role`."""
    if principal.role < role:
        raise HTTPException(403, f"{what} needs the {role.label} role; token {principal.token_id} is "
                                 f"{principal.role.label}")


_bearer = HTTPBearer(auto_error=False, description="An API token: `v2gstack csms create-token --role ...`")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class SessionLookup(Protocol):
    """What ApiAuth needs of browser sessions (csms/login.py's Sessions)."""

    def principal(self, request: Request) -> Principal | None:
        """The principal of the request's session cookie, None without a cookie; HTTPException when refused."""


class ApiAuth:
    """The FastAPI dependencies of token (and, with `sessions`, session cookie) authentication over one store.

    `authenticated` gives the Principal of any valid token or session; `require(role)` also demands a role. Both put
    the principal on `request.state.principal`, where the audit log finds who acted. A bearer token wins over a
    cookie when a request carries both.
    """

    def __init__(self, store: Store, sessions: SessionLookup | None = None) -> None:
        self.store = store
        self.sessions = sessions

    async def authenticated(self, request: Request,
                            credentials: Bearer) -> Principal:
        """401 without a valid `Authorization: Bearer` token or session; the principal otherwise."""
        if credentials is None and self.sessions is not None:
            by_cookie = await asyncio.to_thread(self.sessions.principal, request)
            if by_cookie is not None:
                request.state.principal = by_cookie
                return by_cookie
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "an API token is required: Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": 'Bearer realm="v2gstack-csms"'})
        try:
            principal = await asyncio.to_thread(authenticate, self.store, credentials.credentials)
        except AuthError as e:
            client = request.client.host if request.client else "?"
            log.warning("API: refused %s %s from %s: %s", request.method, request.url.path, client, e)
            raise HTTPException(401, "invalid, expired or revoked API token",
                                headers={"WWW-Authenticate": 'Bearer realm="v2gstack-csms", error="invalid_token"'},
                                ) from None
        request.state.principal = principal
        return principal

    def require(self, role: Role) -> Callable[..., Awaitable[Principal]]:
        """A dependency: the principal of a valid token whose role includes `role` (401, 403 otherwise)."""

        async def dependency(request: Request,
                             credentials: Bearer) -> Principal:
            principal = await self.authenticated(request, credentials)
            forbid_unless(principal, role, f"{request.method} {request.url.path}")
            return principal

        return dependency
