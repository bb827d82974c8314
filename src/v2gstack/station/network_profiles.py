"""OCPP 2.0.1 NetworkConnectionProfiles: the CSMS addresses a station may use, tried in NetworkConfigurationPriority
order, so a station moves to another CSMS node when its own stops answering.

The profiles live in configuration slots (SetNetworkProfileRequest.configurationSlot); the device model's
OCPPCommCtrlr.NetworkConfigurationPriority lists the slots to use, most preferred first, and
NetworkProfileConnectionAttempts says how many failed attempts on one profile make the station switch to the next
(StationClient does the switching). Sans I/O but for the optional JSON file in the station's state directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .device_model import DeviceModel

log = logging.getLogger(__name__)

COMM = "OCPPCommCtrlr"
SLOTS = 4  # configuration slots offered (valuesList of NetworkConfigurationPriority)


def _scheme_ok(url: str, security_profile: int) -> bool:
    """Profiles 0-1 use ws://, profiles 2-3 wss:// (OCPP 2.0.1 security profiles)."""
    return url.startswith("wss://") if security_profile >= 2 else url.startswith(("ws://", "wss://"))


class NetworkProfiles:
    """The station's NetworkConnectionProfiles by slot, and the CSMS URLs they give in priority order."""

    def __init__(self, model: DeviceModel, urls: list[str], security_profile: int, ocpp_version: str = "OCPP20",
                 path: Path | None = None) -> None:
        self.model = model
        self.security_profile = security_profile
        self.path = path
        self.slots: dict[int, dict[str, Any]] = {}
        count = max(SLOTS, len(urls))
        priority = model.find(COMM, "NetworkConfigurationPriority")
        assert priority is not None
        priority.values_list = ",".join(str(i) for i in range(count))
        loaded = self._load()
        if not loaded:
            for slot, url in enumerate(urls):
                self.slots[slot] = {"ocppVersion": ocpp_version, "ocppTransport": "JSON", "ocppCsmsUrl": url,
                                    "messageTimeout": 30, "securityProfile": security_profile,
                                    "ocppInterface": "Wired0"}
            if len(urls) > 1 and priority.value == "0":
                model.put(COMM, "NetworkConfigurationPriority", ",".join(str(i) for i in range(len(urls))))

    def urls(self) -> list[str]:
        """The CSMS URLs of the prioritised slots that hold a profile, most preferred first."""
        order = [int(x) for x in self.model.members(COMM, "NetworkConfigurationPriority") if x.strip().isdigit()]
        return [self.slots[s]["ocppCsmsUrl"] for s in order if s in self.slots]

    def attempts(self) -> int:
        """Failed connection attempts on one profile before the next is tried."""
        return max(1, self.model.int(COMM, "NetworkProfileConnectionAttempts"))

    def set_profile(self, p: dict[str, Any]) -> dict[str, Any]:
        """SetNetworkProfile: store the profile in its slot (used from the next connection on), or say why not."""
        slot, data = p["configurationSlot"], p["connectionData"]
        allowed = self.model.find(COMM, "NetworkConfigurationPriority")
        assert allowed is not None
        reason = None
        if str(slot) not in (allowed.values_list or "").split(","):
            reason = f"configurationSlot {slot} is not one of {allowed.values_list}"
        elif data["securityProfile"] < self.security_profile:
            reason = f"securityProfile {data['securityProfile']} is below the one in use ({self.security_profile})"
        elif not _scheme_ok(data["ocppCsmsUrl"], data["securityProfile"]):
            reason = f"ocppCsmsUrl does not fit securityProfile {data['securityProfile']}"
        if reason is not None:
            log.info("SetNetworkProfile rejected: %s", reason)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": reason}}
        self.slots[slot] = dict(data)
        self._save()
        return {"status": "Accepted"}

    def handlers(self) -> dict[str, Any]:
        """SetNetworkProfile."""
        return {"SetNetworkProfile": self.set_profile}

    def _load(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        self.slots = {int(k): v for k, v in json.loads(self.path.read_text()).items()}
        return True

    def _save(self) -> None:
        if self.path is not None:
            self.path.write_text(json.dumps({str(k): v for k, v in self.slots.items()}, indent=1))
