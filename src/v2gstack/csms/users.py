"""Dashboard users of the CSMS: a name, a role (the API's viewer/operator/admin) and a scrypt password hash.

The table lives here (not in models.py) with the same declarative base, and `Users(store)` makes it when missing,
so a database of an earlier version gains it on first use. Passwords are hashed like station passwords
(store.hash_password: scrypt with a random salt); the password itself is never stored or logged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, mapped_column

from .auth import Role
from .models import Base
from .store import Store, StoreError, _iso, check_password, hash_password

MIN_PASSWORD = 12
MAX_PASSWORD = 200
_DUMMY = hash_password("a password nobody has")  # checked when the name is unknown: both failures cost the same


class UserRecord(Base):
    """A dashboard user: id (public, in audit records), unique name, role, scrypt hash, when created/disabled."""

    __tablename__ = "dashboard_users"
    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True, slots=True)
class User:
    """A user as the login sees it."""

    id: str
    name: str
    role: Role


class Users:
    """The user registry over one store (its table is created on first use)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        UserRecord.__table__.create(store.engine, checkfirst=True)  # type: ignore[attr-defined]

    def add(self, name: str, role: Role, password: str) -> User:
        """Create a user, or replace the role and password of an existing one (enabling it again)."""
        name = name.strip()
        if not name or len(name) > 100 or any(c.isspace() or not c.isprintable() for c in name):
            raise StoreError("a user name is 1 to 100 printable characters without spaces")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise StoreError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        hashed = hash_password(password)
        with self.store.session(write=True) as s:
            rec = s.scalars(select(UserRecord).where(UserRecord.name == name)).first()
            if rec is None:
                rec = UserRecord(id=secrets.token_hex(6), name=name, created_at=datetime.now(UTC))
                s.add(rec)
            rec.role, rec.password_hash, rec.disabled_at = role.label, hashed, None
            return User(rec.id, name, role)

    def check(self, name: str, password: str) -> User | None:
        """The user whose name and password these are (enabled), else None; the same work either way."""
        with self.store.session() as s:
            rec = s.scalars(select(UserRecord).where(UserRecord.name == name.strip())).first()
            stored = rec.password_hash if rec is not None else _DUMMY
            role, uid, disabled = (rec.role, rec.id, rec.disabled_at) if rec is not None else ("", "", None)
        ok = check_password(password[:MAX_PASSWORD], stored)
        if rec is None or not ok or disabled is not None:
            return None
        try:
            return User(uid, name.strip(), Role.parse(role))
        except ValueError:
            return None

    def get(self, user_id: str) -> User | None:
        """An enabled user by id (a live session re-reads its user, so a disabled user is logged out at once)."""
        with self.store.session() as s:
            rec = s.get(UserRecord, user_id)
            if rec is None or rec.disabled_at is not None:
                return None
            try:
                return User(rec.id, rec.name, Role.parse(rec.role))
            except ValueError:
                return None

    def disable(self, name: str) -> bool:
        """Disable a user (its sessions end at their next request); False when there is no such user."""
        with self.store.session(write=True) as s:
            rec = s.scalars(select(UserRecord).where(UserRecord.name == name.strip())).first()
            if rec is None:
                return False
            rec.disabled_at = datetime.now(UTC)
            return True

    def list(self) -> list[dict[str, Any]]:
        """Every user (never a hash): id, name, role, created, disabled."""
        with self.store.session() as s:
            return [{"id": r.id, "name": r.name, "role": r.role, "createdAt": _iso(r.created_at),
                     "disabledAt": _iso(r.disabled_at)}
                    for r in s.scalars(select(UserRecord).order_by(UserRecord.name))]
