"""Authorization: the local authorization list and the authorization cache per the device model (sans-I/O:
`LocalAuthorization`), and the service that asks the CSMS or decides offline (`Authorization`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..ocpp.v2x import CHARGING_ONLY
from .context import StationContext
from .device_model import DeviceModel
from .link import Link

IdToken = dict[str, Any]
IdTokenInfo = dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """An authorization decision: the idTokenInfo and, over OCPP 2.1, the energy transfer modes it allows (None:
    nothing said: 2.0.1, free vend, the local list)."""

    info: IdTokenInfo
    allowed_energy_transfer: list[str] | None = None


def allowed_by_answer(version: str, answer: dict[str, Any]) -> list[str] | None:
    """The energy transfer modes an AuthorizeResponse allows (Q01): its `allowedEnergyTransfer`, charging only when
    a 2.1 answer has none; None for 2.0.1 and 1.6 (no such field: nothing is said)."""
    if version != "2.1":
        return None
    return list(answer.get("allowedEnergyTransfer") or CHARGING_ONLY)


def token_key(token: IdToken) -> tuple[str, str]:
    """How an idToken is looked up: its value and type."""
    return (token["idToken"], token["type"])


@dataclass
class LocalAuthorization:
    """The local list (from SendLocalList) and the cache (from Authorize/TransactionEvent answers)."""

    model: DeviceModel
    clock: Callable[[], float] = time.time
    list_version: int = 0
    local_list: dict[tuple[str, str], IdTokenInfo] = field(default_factory=dict)
    cache: dict[tuple[str, str], tuple[IdTokenInfo, float]] = field(default_factory=dict)
    cache_modes: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # OCPP 2.1: allowedEnergyTransfer

    def lookup(self, token: IdToken) -> IdTokenInfo | None:
        """What the station knows of `token` without asking the CSMS: local list first, then the cache."""
        key = token_key(token)
        if self.model.bool("LocalAuthListCtrlr", "Enabled") and key in self.local_list:
            return self.local_list[key]
        if self.model.bool("AuthCacheCtrlr", "Enabled") and key in self.cache:
            info, expires = self.cache[key]
            if self.clock() < expires:
                return info
            del self.cache[key]
        return None

    def decide_online_locally(self, token: IdToken) -> IdTokenInfo | None:
        """LocalPreAuthorize: an Accepted local entry starts charging without asking the CSMS (else None: ask)."""
        if token["type"] == "NoAuthorization" or not self.model.bool("AuthCtrlr", "Enabled"):
            return {"status": "Accepted"}
        if self.model.bool("AuthCtrlr", "LocalPreAuthorize"):
            info = self.lookup(token)
            if info is not None and info.get("status") == "Accepted":
                return info
        return None

    def decide_offline(self, token: IdToken) -> IdTokenInfo:
        """The decision while the CSMS is unreachable (LocalAuthorizeOffline, OfflineTxForUnknownIdEnabled)."""
        if token["type"] == "NoAuthorization" or not self.model.bool("AuthCtrlr", "Enabled"):
            return {"status": "Accepted"}
        if self.model.bool("AuthCtrlr", "LocalAuthorizeOffline"):
            info = self.lookup(token)
            if info is not None:
                return info
        if self.model.bool("AuthCtrlr", "OfflineTxForUnknownIdEnabled"):
            return {"status": "Accepted"}
        return {"status": "Unknown"}

    def remember(self, token: IdToken, info: IdTokenInfo, modes: list[str] | None = None) -> None:
        """Cache the CSMS's answer for `token` (AuthCacheCtrlr.Enabled; LifeTime or cacheExpiryDateTime), with the
        energy transfer modes an OCPP 2.1 AuthorizeResponse allowed (kept until another Authorize tells)."""
        if not self.model.bool("AuthCacheCtrlr", "Enabled") or token["type"] in ("NoAuthorization", "Central"):
            return
        self.cache[token_key(token)] = (info, self.clock() + self.model.int("AuthCacheCtrlr", "LifeTime"))
        if modes is not None:
            self.cache_modes[token_key(token)] = modes

    def cached_modes(self, token: IdToken) -> list[str] | None:
        """The energy transfer modes remembered with the cache entry that decides `token` (None: the local list
        decides, or nothing was told)."""
        key = token_key(token)
        if self.model.bool("LocalAuthListCtrlr", "Enabled") and key in self.local_list:
            return None
        return self.cache_modes.get(key) if key in self.cache else None

    def clear_cache(self) -> str:
        """ClearCache: Accepted, or Rejected when the cache is disabled."""
        if not self.model.bool("AuthCacheCtrlr", "Enabled"):
            return "Rejected"
        self.cache.clear()
        self.cache_modes.clear()
        return "Accepted"

    def send_local_list(self, payload: dict[str, Any]) -> str:
        """SendLocalList (Full or Differential): the status to answer."""
        if not self.model.bool("LocalAuthListCtrlr", "Enabled"):
            return "Failed"
        version = payload["versionNumber"]
        entries = payload.get("localAuthorizationList", [])
        if payload["updateType"] == "Differential":
            if version <= self.list_version:
                return "VersionMismatch"
        else:
            self.local_list.clear()
        for e in entries:
            key = token_key(e["idToken"])
            if "idTokenInfo" in e:
                self.local_list[key] = e["idTokenInfo"]
            else:
                self.local_list.pop(key, None)
        self.list_version = version
        self.model.put("LocalAuthListCtrlr", "Entries", str(len(self.local_list)))
        return "Accepted"


class Authorization:
    """The station's authorization service: local decisions, the CSMS's Authorize, and the offline rules; and the
    CSMS-initiated messages of the local list and the cache."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        self.local = LocalAuthorization(ctx.model, clock=ctx.clock.now)

    async def authorize_token(self, token: IdToken) -> IdTokenInfo:
        """Authorize an idToken: local pre-authorization, the CSMS (caching its answer), or the offline rules."""
        return (await self.decide(token)).info

    async def decide(self, token: IdToken) -> Decision:
        """authorize_token with the energy transfer modes the decision allows (OCPP 2.1 Q01: the AuthorizeResponse's,
        or those cached with the token's answer)."""
        info = self.local.decide_online_locally(token)
        if info is not None:
            return Decision(info, self.local.cached_modes(token))
        if self.link.online and not self.ctx.model.bool("AuthCtrlr", "DisableRemoteAuthorization"):
            answer = await self.link.try_call("Authorize", {"idToken": token})
            if answer is not None:
                modes = self.allowed_by(answer)
                self.local.remember(token, answer["idTokenInfo"], modes)
                return Decision(answer["idTokenInfo"], modes)
        return Decision(self.local.decide_offline(token), self.local.cached_modes(token))

    def allowed_by(self, answer: dict[str, Any]) -> list[str] | None:
        """The energy transfer modes an AuthorizeResponse allows on this connection (None: 2.0.1, nothing said)."""
        return allowed_by_answer(self.link.version, answer)

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """SendLocalList, GetLocalListVersion, ClearCache."""
        return {"SendLocalList": lambda p: {"status": self.local.send_local_list(p)},
                "GetLocalListVersion": lambda p: {"versionNumber": self.local.list_version},
                "ClearCache": lambda p: {"status": self.local.clear_cache()}}
