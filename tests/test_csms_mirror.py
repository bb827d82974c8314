"""ISO 15118 messages mirrored over DataTransfer, over real sockets: the CSMS checks the root and messageId, takes
plain and gzip-compressed EXI (the design document's example form), refuses a gzip bomb without inflating it, and
our station sends either form into the CSMS timeline."""

from __future__ import annotations

import base64
import gzip
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.bridge import bridged
from helpers.csms import PASSWORD, api_client, csms_url, running_csms
from helpers.ocpp import RawPeer, raw_peer
from helpers.wait import until

from v2gstack import exi
from v2gstack.csms.mirror import MAX_EXI_BYTES
from v2gstack.csms.service import Csms
from v2gstack.station.device_model import VENDOR_COMPONENT

SESSION = "0A0B0C0D0E0F1011"
SETUP_REQ = {"V2G_Message": {"Header": {"SessionID": SESSION},
                             "Body": {"SessionSetupReq": {"EVCCID": "0A0B0C0D0E0F"}}}}
STOP_REQ = {"V2G_Message": {"Header": {"SessionID": SESSION}, "Body": {"SessionStopReq": {"ChargingSession":
                                                                                          "Terminate"}}}}


def _data(raw: bytes) -> str:
    return "EXI::" + base64.b64encode(raw).decode()


async def _transfer(peer: RawPeer, mid: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = await peer.exchange([2, mid, "DataTransfer", payload])
    assert answer[:2] == [3, mid], answer
    return answer[2]


def _api(csms: Csms, trace_dir: Path | None = None) -> httpx.AsyncClient:
    return api_client(csms, "viewer", trace_dir=trace_dir)


async def test_mirror_root_and_message_id_are_checked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Field finding 17: bytes the -2 decoder reads are not enough: the root must be a V2G_Message and its body the
    message messageId names; each refusal has a reasonCode and additionalInfo, and the SessionID is logged."""
    caplog.set_level(logging.INFO, logger="v2gstack.csms")
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        bare = exi.encode("iso2", {"SessionSetupReq": {"EVCCID": "0A0B0C0D0E0F"}})  # valid -2 EXI, no envelope
        answer = await _transfer(peer, "root", {"vendorId": "ISO15118-2", "messageId": "SessionSetupReq",
                                                "data": _data(bare)})
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"
        assert "V2G_Message" in answer["statusInfo"]["additionalInfo"]

        stop = _data(exi.encode("iso2", STOP_REQ))
        answer = await _transfer(peer, "mismatch", {"vendorId": "ISO15118-2", "messageId": "SessionSetupReq",
                                                    "data": stop})
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"
        assert "SessionSetupReq does not match the message SessionStopReq" in answer["statusInfo"]["additionalInfo"]
        assert any("rejected" in r.message and SESSION in r.message for r in caplog.records)

        answer = await _transfer(peer, "din", {"vendorId": "DIN70121", "messageId": "SessionStopReq", "data": stop})
        assert answer["status"] == "Rejected"  # -2 bytes are no DIN message
        answer = await _transfer(peer, "noid", {"vendorId": "ISO15118-2", "data": stop})
        assert answer == {"status": "Rejected", "statusInfo": {
            "reasonCode": "MissingParam",
            "additionalInfo": "messageId must name the mirrored message (e.g. SessionSetupReq)"}}

        caplog.clear()
        answer = await _transfer(peer, "ok", {"vendorId": "ISO15118-2", "messageId": "SessionStopReq", "data": stop})
        assert answer == {"status": "Accepted"}
        assert any("SessionStopReq" in r.message and SESSION in r.message for r in caplog.records)
        logged = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "DataTransfer"]
        assert [(m["payload"]["decoded"]["messageId"], m["sessionId"]) for m in logged] == [("SessionStopReq",
                                                                                              SESSION)]


async def test_design_example_gzip_exi_is_accepted_and_a_bomb_refused(tmp_path: Path) -> None:
    """Field finding 18: `EXI::H4sI...` (base64 of gzip-compressed EXI, as the design document shows it) is decoded
    into the timeline; a stream that inflates beyond the bound is refused with TooLargeElement."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer, _api(csms) as api:
        example = {"vendorId": "ISO15118-2", "messageId": "SessionSetupReq",
                   "data": _data(gzip.compress(exi.encode("iso2", SETUP_REQ)))}
        assert example["data"].startswith("EXI::H4sI")
        assert await _transfer(peer, "gz", example) == {"status": "Accepted"}
        timeline = (await api.get(f"/api/timeline/{SESSION}")).json()
        [entry] = [e for e in timeline if e["name"] == "DataTransfer"]
        assert entry["details"].startswith("ISO mirror iso2:SessionSetupReq") and "SessionID=" + SESSION in entry[
            "details"]
        assert entry["data"]["payload"]["decoded"]["json"] == SETUP_REQ
        assert entry["data"]["payload"]["decoded"]["compression"] == "gzip"

        bomb = gzip.compress(bytes(64 * MAX_EXI_BYTES))  # 4 MiB of zeros in a few KiB
        assert len(bomb) < 16 * 1024
        answer = await _transfer(peer, "bomb", {"vendorId": "ISO15118-2", "messageId": "SessionSetupReq",
                                                "data": _data(bomb)})
        assert answer == {"status": "Rejected", "statusInfo": {
            "reasonCode": "TooLargeElement", "additionalInfo": f"gzip data inflates beyond {MAX_EXI_BYTES} bytes"}}
        truncated = gzip.compress(exi.encode("iso2", SETUP_REQ))[:-6]
        answer = await _transfer(peer, "cut", {"vendorId": "ISO15118-2", "messageId": "SessionSetupReq",
                                               "data": _data(truncated)})
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"
        assert (await peer.exchange([2, "hb", "Heartbeat", {}]))[0] == 3


@pytest.mark.timeout(120)
async def test_station_mirrors_plain_and_gzip_exi_into_the_timeline(tmp_path: Path) -> None:
    """Field finding 18, station side: with V2GStackISO15118BridgeCtrlr.MirrorISO15118Compression None and then Gzip,
    both forms reach the CSMS, are accepted and decoded into the session's merged timeline."""
    async with bridged(tmp_path, evses=1) as rig, _api(rig.csms, rig.trace_dir) as api:
        rig.station.model.put(VENDOR_COMPONENT, "MirrorISO15118Messages", "true")
        for compression, magic in (("None", b"\x80"), ("Gzip", b"\x1f\x8b")):  # EXI header byte; gzip magic
            rig.station.model.put(VENDOR_COMPONENT, "MirrorISO15118Compression", compression)
            result = await rig.ev(1, "iso2", "ac", loops=3)
            assert result.ok, result.reason

            def mirrored(session_id: str = result.session_id) -> list[str]:
                return [m["payload"]["decoded"]["messageId"] for m in rig.csms.store.messages(session_id=session_id)
                        if m["action"] == "DataTransfer"]

            await until(lambda: "SessionStopRes" in mirrored())  # mirrors are sent beside the queue
            # the timeline joins them by the transaction's SessionID, which comes with a queued TransactionEvent
            await rig.station.wait_queue_empty()
            timeline = (await api.get(f"/api/timeline/{result.session_id}")).json()
            entries = [e for e in timeline if e["source"] == "csms" and e["name"] == "DataTransfer"]
            names = [e["details"].split()[2] for e in entries]
            assert "iso2:SessionSetupRes" in names and "iso2:PowerDeliveryReq" in names, names
            payloads = [e["data"]["payload"] for e in entries]
            assert {p["decoded"].get("compression") for p in payloads} == {"gzip" if compression == "Gzip" else None}
            assert all(base64.b64decode(p["data"][5:]).startswith(magic) for p in payloads)
