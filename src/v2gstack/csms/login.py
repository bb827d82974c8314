"""Browser login of the CSMS API: sessions in an HttpOnly cookie, a CSRF token for state-changing calls, lockout.

`POST /api/login` checks a dashboard user (csms/users.py) and sets the `v2gstack_session` cookie (HttpOnly,
SameSite=Strict, Path=/, Secure when the API serves TLS); its answer carries the session's CSRF token, which every
POST/PUT/PATCH/DELETE made with the cookie must repeat in the `X-CSRF-Token` header (a cross-site page can neither
read the token nor set the header without a CORS preflight, which the API never grants). Sessions live in this
process's memory (a restart logs everyone out), end after `idle_s` without a request, after `max_age_s` in any case,
at logout, and as soon as their user is disabled. `GET /api/session` tells a page whether it is logged in. A session
stands for a Principal with the user's role, so every endpoint and the audit log treat it like a token of that role.

Failed logins are counted per user name and per client address: after `max_failures` within `window_s` the name
(or the address, after `max_failures_per_client`) is locked for `lockout_s`; a locked login is answered 429 with
Retry-After before any password is checked, so a locked account cannot be probed. At most `max_parallel` scrypt
checks run at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from .auth import Principal
from .users import MAX_PASSWORD, Users

log = logging.getLogger(__name__)

COOKIE = "v2gstack_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class LoginPolicy:
    """Session lifetimes and the failed-login lockout."""

    idle_s: float = 1800.0  # a session without a request for this long ends
    max_age_s: float = 12 * 3600.0  # a session ends this long after login in any case
    max_failures: int = 5  # failed logins of one name within window_s before it is locked
    max_failures_per_client: int = 20  # the same for one client address (many names tried)
    window_s: float = 900.0
    lockout_s: float = 900.0
    max_parallel: int = 2  # scrypt checks at once (each costs ~16 MiB and tens of ms)
    max_entries: int = 10000  # failure records kept per table (the oldest go first)
    max_sessions: int = 10000  # live sessions kept (beyond: the oldest logins end first)


@dataclass
class _Session:
    user_id: str
    csrf: str
    created: float
    last_seen: float


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginError(Exception):
    """A login refused; `status` 401 (wrong name or password) or 429 (locked, with `retry_after` seconds)."""

    def __init__(self, status: int, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Lockout:
    """Failed-login records per key (a user name, a client address); bounded, oldest dropped first."""

    def __init__(self, limit: int, policy: LoginPolicy) -> None:
        self.limit = limit
        self.policy = policy
        self._records: OrderedDict[str, _Failures] = OrderedDict()

    def locked_for(self, key: str, now: float) -> float:
        """Seconds the key stays locked (0: not locked)."""
        rec = self._records.get(key)
        return max(0.0, rec.locked_until - now) if rec else 0.0

    def failed(self, key: str, now: float) -> bool:
        """Count a failure; True when it locks the key."""
        rec = self._records.pop(key, None) or _Failures()
        rec.times = [t for t in rec.times if now - t < self.policy.window_s] + [now]
        locked = len(rec.times) >= self.limit
        if locked:
            rec.locked_until, rec.times = now + self.policy.lockout_s, []
        self._records[key] = rec
        while len(self._records) > self.policy.max_entries:
            self._records.popitem(last=False)
        return locked

    def succeeded(self, key: str) -> None:
        """A successful login clears the key's failures."""
        self._records.pop(key, None)


class Sessions:
    """The browser sessions of one API (see the module docstring)."""

    def __init__(self, users: Users, policy: LoginPolicy | None = None) -> None:
        self.users = users
        self.policy = policy or LoginPolicy()
        self._sessions: dict[str, _Session] = {}  # SHA-256 of the cookie value -> session
        self.by_name = Lockout(self.policy.max_failures, self.policy)
        self.by_client = Lockout(self.policy.max_failures_per_client, self.policy)
        self._checks = asyncio.Semaphore(self.policy.max_parallel)

    async def login(self, name: str, password: str, client: str) -> tuple[str, str, Principal]:
        """Check a login; returns (cookie value, CSRF token, principal) or raises LoginError."""
        now = time.monotonic()
        wait = max(self.by_name.locked_for(name, now), self.by_client.locked_for(client, now))
        if wait > 0:
            raise LoginError(429, "too many failed logins: try again later", int(wait) + 1)
        async with self._checks:
            user = await asyncio.to_thread(self.users.check, name, password[:MAX_PASSWORD])
        now = time.monotonic()
        if user is None:
            locked = self.by_name.failed(name, now) | self.by_client.failed(client, now)
            log.warning("dashboard: failed login for %r from %s%s", name[:100], client,
                        " (now locked)" if locked else "")
            raise LoginError(401, "wrong user name or password")
        self.by_name.succeeded(name)  # not the client's count: one known account must not reset guessing at others
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._expire(now)
        self._sessions[_key(cookie)] = _Session(user.id, csrf, now, now)
        while len(self._sessions) > self.policy.max_sessions:  # dicts keep insertion order: the oldest login first
            del self._sessions[next(iter(self._sessions))]
        log.info("dashboard: %s (%s) logged in from %s", user.name, user.role.label, client)
        return cookie, csrf, Principal(f"u-{user.id}", user.name, user.role)

    def lookup(self, cookie: str) -> tuple[Principal, str] | None:
        """The principal and CSRF token of a live session cookie, else None (touches the session)."""
        key = _key(cookie)
        sess = self._sessions.get(key)
        now = time.monotonic()
        if sess is None:
            return None
        if now - sess.last_seen > self.policy.idle_s or now - sess.created > self.policy.max_age_s:
            del self._sessions[key]
            return None
        user = self.users.get(sess.user_id)
        if user is None:  # disabled or removed since
            del self._sessions[key]
            return None
        sess.last_seen = now
        return Principal(f"u-{user.id}", user.name, user.role), sess.csrf

    def logout(self, cookie: str) -> bool:
        """End a session; False when it was not live."""
        return self._sessions.pop(_key(cookie), None) is not None

    def principal(self, request: Request) -> Principal | None:
        """The principal of the request's session cookie (None without one); 401 for a dead session, 403 when a
        state-changing request lacks the session's CSRF token."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        found = self.lookup(cookie)
        if found is None:
            raise HTTPException(401, "the session ended: log in again")
        principal, csrf = found
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf.encode()):
                log.warning("dashboard: CSRF token missing or wrong on %s %s by %s", request.method,
                            request.url.path, principal.name)
                raise HTTPException(403, f"a state-changing request made with the session cookie needs the "
                                         f"{CSRF_HEADER} header of the session")
        return principal

    def _expire(self, now: float) -> None:
        """Drop ended sessions (at each login, so the table stays bounded by the live ones)."""
        p = self.policy
        for key in [k for k, s in self._sessions.items()
                    if now - s.last_seen > p.idle_s or now - s.created > p.max_age_s]:
            del self._sessions[key]


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class LoginIn(BaseModel):
    """A user name and password."""

    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


def add_login_routes(app: FastAPI, sessions: Sessions) -> None:
    """POST /api/login, POST /api/logout, GET /api/session."""

    def session_json(principal: Principal, csrf: str) -> dict[str, Any]:
        return {"name": principal.name, "role": principal.role.label, "csrfToken": csrf}

    @app.post("/api/login", tags=["login"])
    async def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
        """Log a dashboard user in: sets the session cookie; answers the role and the session's CSRF token.
        401: wrong name or password; 429: locked after repeated failures (Retry-After)."""
        client = request.client.host if request.client else "?"
        try:
            cookie, csrf, principal = await sessions.login(body.name, body.password, client)
        except LoginError as e:
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
            raise HTTPException(e.status, str(e), headers=headers) from None
        request.state.principal = principal  # the audit log records the login
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https", max_age=int(sessions.policy.max_age_s))
        return session_json(principal, csrf)

    @app.post("/api/logout", status_code=204, tags=["login"])
    def logout(request: Request) -> Response:
        """End the session of the cookie (needs its CSRF token) and clear the cookie."""
        principal = sessions.principal(request)
        if principal is None:
            raise HTTPException(401, "no session")
        request.state.principal = principal
        sessions.logout(request.cookies.get(COOKIE, ""))
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    @app.get("/api/session", tags=["login"])
    def session(request: Request) -> dict[str, Any]:
        """Whether the cookie's session is live: `{"loggedIn": true, name, role, csrfToken}` or `{"loggedIn": false}`
        (200 either way: a page asks this before anyone logged in)."""
        found = sessions.lookup(request.cookies.get(COOKIE, "")) if request.cookies.get(COOKIE) else None
        if found is None:
            return {"loggedIn": False}
        return {"loggedIn": True, **session_json(*found)}
