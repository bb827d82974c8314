"""Security A01: rotating a station's BasicAuthPassword (security profiles 1 and 2).

The CSMS makes a new random password (or takes the operator's), sends it with SetVariables
(SecurityCtrlr.BasicAuthPassword) and stores its scrypt hash only once the station answered Accepted: until then the
old password stays valid, so a station that did not take the new one can still connect. The station uses the new
password from its next connection on. The password itself is never stored, logged or returned.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .errors import CommandError
from .models import Station
from .store import hash_password

if TYPE_CHECKING:
    from .service import Csms

Payload = dict[str, Any]
ALPHABET = string.ascii_letters + string.digits
LENGTH = 32  # OCPP: 16 to 40 characters; 32 random alphanumerics are about 190 bits


def new_password(length: int = LENGTH) -> str:
    """A random password of letters and digits."""
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def op_password_profile(s: Session, station_id: str) -> int | None:
    """The station's security profile (None: not registered)."""
    st = s.get(Station, station_id)
    return None if st is None else st.security_profile


def op_set_password_hash(s: Session, station_id: str, password_hash: str) -> None:
    """The hash of the station's new password (after the station accepted it)."""
    st = s.get(Station, station_id)
    if st is None:
        raise CommandError(404, f"unknown station {station_id!r}")
    st.password_hash = password_hash


class PasswordService:
    """BasicAuthPassword rotation for the API."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    async def rotate(self, station_id: str, password: str | None = None) -> Payload:
        """SetVariables with a new password; its hash stored only after Accepted. Returns the station's answer."""
        profile = await self.csms.worker.run(op_password_profile, station_id)
        if profile is None:
            raise CommandError(404, f"unknown station {station_id!r}")
        if profile == 3:
            raise CommandError(409, "a security profile 3 station authenticates with its certificate, not a password")
        password = password or new_password()
        if not 16 <= len(password) <= 40:
            raise CommandError(422, "an OCPP BasicAuthPassword is 16 to 40 characters")
        hashed = await asyncio.to_thread(hash_password, password)  # scrypt, off the event loop
        answer = await self.csms.call(station_id, "SetVariables", {"setVariableData": [{
            "attributeValue": password, "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"}}]})
        results = answer.get("setVariableResult") or [{}]
        status = str(results[0].get("attributeStatus"))
        if status == "Accepted":
            await self.csms.worker.run(op_set_password_hash, station_id, hashed)
        return {"stationId": station_id, "attributeStatus": status, "stored": status == "Accepted",
                "statusInfo": results[0].get("attributeStatusInfo")}
