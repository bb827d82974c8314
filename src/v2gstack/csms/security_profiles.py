"""Per-station security profiles (OCPP 2.0.1 A00/A05): each station's profile is stored with it; a station that
connects with a lower profile than its stored one is refused (A05: no way back to a lower profile), one that
connects with a higher profile has its stored profile raised to it (the upgrade has happened: from then on the
lower one is refused). With `Csms.add_listener`, profile 1, 2 and 3 stations each reach one CSMS process on their
own listener.

The upgrade procedure (A05) from the CSMS: `SecurityProfileService.upgrade` sends SetNetworkProfile with the new
connection data (the URL of the listener of the higher profile) into a configuration slot, SetVariables
OCPPCommCtrlr.NetworkConfigurationPriority to put that slot first, and Reset; the station reconnects with the new
profile, and its first connection there raises its stored profile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .errors import CommandError
from .models import Station

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]


def op_raise_security_profile(s: Session, station_id: str, profile: int) -> bool:
    """Store a higher profile the station connected with (never lowers it); True when it changed."""
    st = s.get(Station, station_id)
    if st is None or st.security_profile >= profile:
        return False
    log.info("station %s upgraded from security profile %d to %d", station_id, st.security_profile, profile)
    st.security_profile = profile
    return True


class SecurityProfileService:
    """A05: move a station to a higher security profile."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms

    async def upgrade(self, station_id: str, profile: int, url: str, *, slot: int = 1,
                      ocpp_version: str = "OCPP20", message_timeout: int = 30) -> Payload:
        """SetNetworkProfile (slot `slot`: `url` with `profile`), NetworkConfigurationPriority with that slot
        first, then Reset OnIdle. CommandError 409 when the station is offline, 422 for a profile not above its
        stored one, 502 when the station refuses a step (the answers so far are in the error)."""
        st = self.csms.store.station(station_id)
        if st is None:
            raise CommandError(404, f"unknown station {station_id!r}")
        if not 1 <= profile <= 3 or profile <= st.security_profile:
            raise CommandError(422, f"profile {profile} is not above the station's profile {st.security_profile}")
        answers: Payload = {}
        network = {"configurationSlot": slot, "connectionData": {
            "ocppVersion": ocpp_version, "ocppTransport": "JSON", "ocppCsmsUrl": url,
            "messageTimeout": message_timeout, "securityProfile": profile, "ocppInterface": "Wired0"}}
        answers["SetNetworkProfile"] = await self.csms.call(station_id, "SetNetworkProfile", network)
        if answers["SetNetworkProfile"].get("status") != "Accepted":
            raise CommandError(502, "the station refused SetNetworkProfile", answers)
        answers["SetVariables"] = await self.csms.call(station_id, "SetVariables", {"setVariableData": [{
            "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkConfigurationPriority"},
            "attributeValue": str(slot)}]})
        if answers["SetVariables"]["setVariableResult"][0]["attributeStatus"] not in ("Accepted", "RebootRequired"):
            raise CommandError(502, "the station refused NetworkConfigurationPriority", answers)
        answers["Reset"] = await self.csms.call(station_id, "Reset", {"type": "OnIdle"})
        return answers
