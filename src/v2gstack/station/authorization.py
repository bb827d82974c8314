"""Local authorization (sans-I/O): the local authorization list and the authorization cache, per the device model."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .device_model import DeviceModel

IdToken = dict[str, Any]
IdTokenInfo = dict[str, Any]


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

    def remember(self, token: IdToken, info: IdTokenInfo) -> None:
        """Cache the CSMS's answer for `token` (AuthCacheCtrlr.Enabled; LifeTime or cacheExpiryDateTime)."""
        if not self.model.bool("AuthCacheCtrlr", "Enabled") or token["type"] in ("NoAuthorization", "Central"):
            return
        self.cache[token_key(token)] = (info, self.clock() + self.model.int("AuthCacheCtrlr", "LifeTime"))

    def clear_cache(self) -> str:
        """ClearCache: Accepted, or Rejected when the cache is disabled."""
        if not self.model.bool("AuthCacheCtrlr", "Enabled"):
            return "Rejected"
        self.cache.clear()
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
