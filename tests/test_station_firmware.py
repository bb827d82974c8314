"""Our station's signed firmware update (L01 with the security whitepaper's signed firmware) against our CSMS over
real sockets: the manufacturer root and signing certificate made with `v2gstack pki firmware`, the signature with
`v2gstack pki sign-firmware`, the root installed through the CSMS's API, the update sent by the CSMS's firmware API,
the image downloaded from the CSMS's /firmware/ endpoint over real HTTP, each FirmwareStatusNotification in the
CSMS's history, the reboot into the new version (BootNotification, the state folder keeps it); a bad signature, a
signing certificate of another manufacturer, an unsigned update, a failed and an oversized download."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from helpers.csms import api_token, auth, our_station, running_csms, served_api
from helpers.wait import until
from typer.testing import CliRunner

from v2gstack.csms.firmware import op_updates
from v2gstack.pki.cli import app as pki_app
from v2gstack.station.firmware import firmware_image, image_version

runner = CliRunner()
FULL = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", "Installed"]


def _pki(out: Path) -> tuple[str, str]:
    """A manufacturer root and firmware signing certificate made by the CLI: their PEMs."""
    res = runner.invoke(pki_app, ["firmware", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return (out / "certs/manufacturer_root.pem").read_text(), (out / "certs/firmware_signing.pem").read_text()


def _sign(folder: Path, file: Path) -> str:
    res = runner.invoke(pki_app, ["sign-firmware", str(file), "--dir", str(folder)])
    assert res.exit_code == 0, res.output
    return res.output.strip()


def _statuses(update: dict[str, Any]) -> list[str]:
    return [h["status"] for h in update["history"]]


async def _latest(admin: httpx.AsyncClient, rid: int) -> dict[str, Any]:
    return next(u for u in (await admin.get("/api/stations/CS1/firmware")).json() if u["requestId"] == rid)


async def test_signed_firmware_update_end_to_end(tmp_path: Path) -> None:
    pki, other = tmp_path / "maker", tmp_path / "other-maker"
    root_pem, signing_pem = _pki(pki)
    _, foreign_pem = _pki(other)
    folder = tmp_path / "firmware"
    folder.mkdir()
    (folder / "fw-2.0.0.bin").write_bytes(firmware_image("2.0.0", b"\x00\x01" * 2000))
    (folder / "fw-3.0.0.bin").write_bytes(firmware_image("3.0.0", b"tampered"))
    (folder / "big.bin").write_bytes(firmware_image("9.9.9", b"\xff" * 5000))
    good_sig = _sign(pki, folder / "fw-2.0.0.bin")
    assert image_version((folder / "fw-2.0.0.bin").read_bytes()) == "2.0.0"
    state = tmp_path / "state"
    now = datetime.now(UTC).isoformat()
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", firmware_dir=str(folder)) as csms, \
            served_api(csms) as base, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
        async with our_station(csms, state_dir=state, versions=("2.0.1",)) as st:
            await st.wait_accepted()
            assert st.config.firmware_version == "0.1.0" and st.link.version == "2.0.1"
            boots: list[dict[str, Any]] = []
            st.on_frame(lambda direction, text: boots.extend(
                m[3] for m in [json.loads(text)] if m[0] == 2 and m[2] == "BootNotification"))
            r = await admin.post("/api/stations/CS1/install-certificate", json={
                "certificateType": "ManufacturerRootCertificate", "certificate": root_pem})
            assert r.json()["response"]["status"] == "Accepted", r.text

            def update(name: str, signature: str | None = good_sig, cert: str | None = signing_pem,
                       **more: Any) -> dict[str, Any]:
                fw: dict[str, Any] = {"location": f"{base}/firmware/{name}", "retrieveDateTime": now}
                if signature is not None:
                    fw["signature"] = signature
                if cert is not None:
                    fw["signingCertificate"] = cert
                return {"firmware": fw, **more}

            # refused at once: unsigned, or signed by a manufacturer whose root the station does not hold
            r = await admin.post("/api/stations/CS1/firmware", json=update("fw-2.0.0.bin", signature=None))
            assert r.json()["response"]["status"] == "Rejected"
            r = await admin.post("/api/stations/CS1/firmware", json=update("fw-2.0.0.bin", cert=foreign_pem))
            assert r.json()["response"]["status"] == "InvalidCertificate"
            assert r.json()["update"]["answer"] == "InvalidCertificate"

            # a signature over other bytes: downloaded, then InvalidSignature; nothing installed
            r = await admin.post("/api/stations/CS1/firmware", json=update("fw-3.0.0.bin"))
            assert r.json()["response"]["status"] == "Accepted"
            bad = r.json()["update"]["requestId"]
            await until(lambda: _statuses_now(csms, bad) == ["Downloading", "Downloaded", "InvalidSignature"])
            await until(lambda: "InvalidFirmwareSignature" in _events(csms))
            assert (await _latest(admin, bad))["status"] == "InvalidSignature"
            assert "InvalidFirmwareSigningCertificate" in _events(csms)

            # a file the CSMS does not have: one retry, then DownloadFailed
            r = await admin.post("/api/stations/CS1/firmware", json=update("missing.bin", retries=1,
                                                                           retryInterval=1))
            failed = r.json()["update"]["requestId"]
            await until(lambda: _statuses_now(csms, failed) == ["Downloading", "Downloading", "DownloadFailed"])

            # larger than the station takes: DownloadFailed without retries
            st.firmware.max_bytes = 1000
            r = await admin.post("/api/stations/CS1/firmware", json=update("big.bin", _sign(pki, folder / "big.bin"),
                                                                           retries=0))
            big = r.json()["update"]["requestId"]
            await until(lambda: _statuses_now(csms, big) == ["Downloading", "DownloadFailed"])
            st.firmware.max_bytes = 1 << 20

            # the good one: every step, the reboot, the new version at the CSMS
            r = await admin.post("/api/stations/CS1/firmware", json=update("fw-2.0.0.bin"))
            assert r.json()["response"]["status"] == "Accepted"
            rid = r.json()["update"]["requestId"]
            await until(lambda: _statuses_now(csms, rid) == FULL)
            assert (await admin.get("/api/stations/CS1")).json()["firmware"] == "2.0.0"
            assert st.config.firmware_version == "2.0.0"
            assert [b["reason"] for b in boots] == ["FirmwareUpdate"]
            assert boots[-1]["chargingStation"]["firmwareVersion"] == "2.0.0"
            await until(lambda: "FirmwareUpdated" in _events(csms))
            assert (await _latest(admin, rid))["status"] == "Installed"
        # a restart from the same state folder boots into what was installed
        async with our_station(csms, state_dir=state) as again:
            await again.wait_accepted()
            assert again.config.firmware_version == "2.0.0"
            assert again.firmware.status == "Idle"


def _statuses_now(csms: Any, rid: int) -> list[str]:
    return next((_statuses(u) for u in csms.store.run(op_updates, "CS1") if u["requestId"] == rid), [])


def _events(csms: Any) -> list[str]:
    return [m["payload"].get("type") for m in csms.store.messages(station_id="CS1")
            if m["action"] == "SecurityEventNotification"]


async def test_signed_firmware_update_over_ocpp16(tmp_path: Path) -> None:
    """The same through OCPP 1.6's security extension: InstallCertificate, SignedUpdateFirmware (the CSMS's
    `call-` command), SignedFirmwareStatusNotification, the 1.6 BootNotification with the new version."""
    pki = tmp_path / "maker"
    root_pem, signing_pem = _pki(pki)
    folder = tmp_path / "firmware"
    folder.mkdir()
    (folder / "fw-1.6.1.bin").write_bytes(firmware_image("1.6.1", b"sixteen"))
    signature = _sign(pki, folder / "fw-1.6.1.bin")
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", firmware_dir=str(folder)) as csms, \
            served_api(csms) as base, our_station(csms, versions=("1.6",), state_dir=tmp_path / "st") as st, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
        await st.wait_accepted()
        r = await admin.post("/api/stations/CS1/call-InstallCertificate", json={
            "certificateType": "ManufacturerRootCertificate", "certificate": root_pem})
        assert r.json()["response"] == {"status": "Accepted"}, r.text
        r = await admin.post("/api/stations/CS1/call-SignedUpdateFirmware", json={
            "requestId": 7, "retries": 0, "firmware": {
                "location": f"{base}/firmware/fw-1.6.1.bin", "retrieveDateTime": datetime.now(UTC).isoformat(),
                "signingCertificate": signing_pem, "signature": signature}})
        assert r.json()["response"] == {"status": "Accepted"}, r.text

        def statuses() -> list[str]:
            return [m["payload"]["status"] for m in csms.store.messages(station_id="CS1")
                    if m["action"] == "SignedFirmwareStatusNotification"]

        await until(lambda: statuses() == FULL)
        assert (await admin.get("/api/stations/CS1")).json()["firmware"] == "1.6.1"
