"""The station's firmware update (OCPP 2.0.1 L01, signed firmware per the security whitepaper): UpdateFirmware, the
download, the signature check, a simulated install and the reboot into the new version.

UpdateFirmware is answered at once: Rejected without a signature and signing certificate (the station installs
signed firmware only), InvalidCertificate when the signing certificate does not chain to an installed
ManufacturerRootCertificate (with SecurityEventNotification InvalidFirmwareSigningCertificate, L01.FR.02/.03),
AcceptedCanceled when it replaces an update in progress (L01.FR.24), else Accepted. Then, each step told with
FirmwareStatusNotification (requestId set): DownloadScheduled (a retrieveDateTime ahead, on the station's clock),
Downloading, Downloaded or DownloadFailed (after `retries` more attempts `retryInterval` apart; HTTP(S) only, at most
`max_bytes`), SignatureVerified or InvalidSignature (with SecurityEventNotification InvalidFirmwareSignature),
InstallScheduled (an installDateTime ahead), Installing once no transaction runs, InstallVerificationFailed for an
image that is not ours, InstallRebooting; the station reconnects with BootNotification reason FirmwareUpdate and
the new firmwareVersion, then sends Installed and SecurityEventNotification FirmwareUpdated.

The simulated firmware image is any file whose first line is `V2GSTACK-FIRMWARE <version>` (`firmware_image`). The
state folder's firmware.json keeps the installed version (the station boots with it after a restart) and an
install that has not reported Installed yet (sent after the next accepted boot).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..pki.firmware import FirmwareRefused, check_signature, check_signing_certificate
from ..times import parse_rfc3339
from .certificates import Certificates
from .context import StationContext
from .evse import Evse
from .files import write_private
from .link import Link
from .transfer import TransferError, download

log = logging.getLogger(__name__)
Payload = dict[str, Any]

IMAGE_MAGIC = b"V2GSTACK-FIRMWARE "
VERSION = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}$")  # ChargingStationType.firmwareVersion: string[0..50]
DEFAULT_RETRIES = 2  # "left to the Charging Station to decide" when the request has none
DEFAULT_RETRY_INTERVAL_S = 10.0


def firmware_image(version: str, body: bytes = b"") -> bytes:
    """A simulated firmware image of `version` (what `image_version` reads back)."""
    return IMAGE_MAGIC + version.encode() + b"\n" + body


def image_version(data: bytes) -> str | None:
    """The version a simulated firmware image installs (None: not an image of ours)."""
    first, _, _ = data.partition(b"\n")
    if not first.startswith(IMAGE_MAGIC):
        return None
    version = first[len(IMAGE_MAGIC):].strip()
    return version.decode() if VERSION.match(version) else None


class Firmware:
    """UpdateFirmware and the update it starts; the installed version."""

    max_bytes = 64 * 1024 * 1024
    """The largest firmware image the station downloads."""

    def __init__(self, ctx: StationContext, link: Link, certificates: Certificates) -> None:
        self.ctx = ctx
        self.link = link
        self.certificates = certificates
        self.status = "Idle"  # the latest FirmwareStatusNotification (TriggerMessage sends it again)
        self.request_id: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._path = None if ctx.config.state_dir is None else Path(ctx.config.state_dir) / "firmware.json"
        self._state: Payload = self._load()
        if self._state.get("version"):
            ctx.config.firmware_version = self._state["version"]  # booted into what was installed
        link.triggers["FirmwareStatusNotification"] = self._trigger

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """UpdateFirmware."""
        return {"UpdateFirmware": self._update}

    def start(self) -> None:
        """An install that rebooted before reporting Installed: report it once the CSMS accepts the boot."""
        if self._state.get("pending") is not None:
            self.link.boot_reason = "FirmwareUpdate"
            self._task = self.ctx.spawn(self._report_installed(), "firmware-installed")

    # ----- UpdateFirmware -----

    def _update(self, p: Payload) -> Payload:
        """UpdateFirmware: check what can be checked now, answer, and run the update in the background."""
        fw = p["firmware"]
        if not fw.get("signature") or not fw.get("signingCertificate"):
            return {"status": "Rejected", "statusInfo": {
                "reasonCode": "MissingSignature", "additionalInfo": "this station installs signed firmware only"}}
        try:
            signer = check_signing_certificate(fw["signingCertificate"], self.certificates.roots(
                "ManufacturerRootCertificate"), self.ctx.clock.wall())
        except FirmwareRefused as e:
            log.warning("%s: UpdateFirmware %d: %s", self.ctx.station_id, p["requestId"], e)
            self._security_event("InvalidFirmwareSigningCertificate", e.reason)
            return {"status": "InvalidCertificate", "statusInfo": {"reasonCode": "InvalidCertificate",
                                                                   "additionalInfo": e.reason[:512]}}
        status = "Accepted"
        if self._task is not None and not self._task.done():
            self._task.cancel()  # L01.FR.24: the new request replaces the one in progress
            status = "AcceptedCanceled"
        self.request_id = p["requestId"]
        self._task = self.ctx.spawn(self._run(p, signer), f"firmware-{p['requestId']}")
        return {"status": status}

    async def _run(self, p: Payload, signer: Any) -> None:
        """Download, verify, install and reboot, telling each step."""
        fw, rid = p["firmware"], p["requestId"]
        await self._wait_until(fw.get("retrieveDateTime"), "DownloadScheduled", rid)
        data = await self._download(fw["location"], rid, p.get("retries"), p.get("retryInterval"))
        if data is None:
            return
        try:
            check_signature(data, fw["signature"], signer)
        except FirmwareRefused as e:
            log.warning("%s: firmware %d: %s", self.ctx.station_id, rid, e)
            await self._tell("InvalidSignature", rid)
            self._security_event("InvalidFirmwareSignature", e.reason)
            return
        await self._tell("SignatureVerified", rid)
        await self._wait_until(fw.get("installDateTime"), "InstallScheduled", rid)
        while any(e.tx is not None for e in self.ctx.evses.values()):  # never under a running transaction
            await self.ctx.clock.sleep(1.0)
        await self._tell("Installing", rid)
        version = image_version(data)
        if version is None:
            await self._tell("InstallVerificationFailed", rid)
            return
        self._state = {"version": version, "previous": self.ctx.config.firmware_version, "pending": rid}
        self._save()
        self.ctx.config.firmware_version = version
        await self._tell("InstallRebooting", rid)
        log.info("%s: firmware %s installed, rebooting", self.ctx.station_id, version)
        await self.link.restart("FirmwareUpdate")
        await self._report_installed()

    async def _wait_until(self, when: str | None, status: str, rid: int) -> None:
        """Wait for a date ahead on the station's clock, telling `status` first."""
        left = 0.0 if not when else (parse_rfc3339(when) - self.ctx.clock.wall()).total_seconds()
        if left > 0:
            await self._tell(status, rid)
            await self.ctx.clock.sleep(left)

    async def _download(self, url: str, rid: int, retries: int | None, interval: int | None) -> bytes | None:
        """The firmware's bytes, retrying; None (DownloadFailed told) when every attempt failed."""
        attempts = 1 + (DEFAULT_RETRIES if retries is None else retries)
        wait = DEFAULT_RETRY_INTERVAL_S if interval is None else float(interval)
        for attempt in range(1, attempts + 1):
            await self._tell("Downloading", rid)
            try:
                data = await asyncio.to_thread(download, url, self.max_bytes, self._tls(url))
            except TransferError as e:
                log.warning("%s: firmware %d download %d/%d failed: %s", self.ctx.station_id, rid, attempt,
                            attempts, e)
                if attempt < attempts:
                    await self.ctx.clock.sleep(wait)
                continue
            await self._tell("Downloaded", rid)
            return data
        await self._tell("DownloadFailed", rid)
        return None

    def _tls(self, url: str) -> ssl.SSLContext | None:
        """For https: the trust of the CSMS link when it has its own (else the system's)."""
        return self.ctx.config.ssl if url.startswith("https://") else None

    async def _report_installed(self) -> None:
        """After the reboot: Installed (and the security event) once the boot is accepted; the install is done."""
        await self.link.wait_accepted()
        rid = self._state.get("pending")
        await self._tell("Installed", rid)
        self._security_event("FirmwareUpdated", f"firmware {self.ctx.config.firmware_version} installed")
        self._state["pending"] = None
        self._save()

    # ----- notifications -----

    async def _tell(self, status: str, rid: int | None) -> None:
        """FirmwareStatusNotification (kept for TriggerMessage)."""
        self.status = status
        payload: Payload = {"status": status}
        if rid is not None:
            payload["requestId"] = rid
        log.info("%s: firmware %s", self.ctx.station_id, status)
        await self.link.try_call("FirmwareStatusNotification", payload)

    def _security_event(self, kind: str, info: str) -> None:
        """SecurityEventNotification (the whitepaper's firmware events)."""
        self.link.notify("SecurityEventNotification", {"type": kind, "timestamp": self.ctx.clock.timestamp(),
                                                       "techInfo": info[:255]})

    def _trigger(self, evses: list[Evse]) -> bool:
        """TriggerMessage(FirmwareStatusNotification): the latest status again (Idle when no update runs)."""
        running = self._task is not None and not self._task.done()
        status = self.status if running else "Idle"
        self.ctx.spawn(self._tell(status, self.request_id if running else None), "trigger-firmware")
        return True

    # ----- persistence -----

    def _load(self) -> Payload:
        """firmware.json of the state folder (empty without one)."""
        if self._path is None or not self._path.exists():
            return {}
        try:
            state = json.loads(self._path.read_text())
        except (OSError, ValueError) as e:
            log.error("%s: unreadable %s: %s", self.ctx.station_id, self._path.name, e)
            return {}
        return state if isinstance(state, dict) else {}

    def _save(self) -> None:
        """Keep the installed version and the pending report (atomically, owner-only)."""
        if self._path is not None:
            write_private(self._path, json.dumps(self._state).encode())
