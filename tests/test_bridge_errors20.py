"""ISO 15118-20 failures at the bridged station over real sockets, each through the error map: our -20 EV scripted to
misbehave (a request out of sequence, another SessionID, impossible charge parameters, silence, a dropped
connection); the -20 ResponseCode the EV gets and what reached the CSMS (NotifyEvent with the -20 code,
stoppedReason/triggerReason, the timeline's error). TLS 1.3 refusals: test_bridge_sessions20.py; refused
authorizations and certificate installation: test_bridge_memory20.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import bridged, scripted_ev
from helpers.bridge_errors import reported

from v2gstack.iso15118.secc import SeccTimers
from v2gstack.trace.error_map import FailureKind, kind_of_code

pytestmark = pytest.mark.timeout(120)

OFFER = {"protocols": ("iso20", "iso2", "din")}


def _session_setup_instead(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    ((_, body),) = doc.items()
    return {"SessionSetupReq": {"Header": body["Header"], "EVCCID": "0A0B0C0D0E01"}}


def _other_session(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    ((_, body),) = doc.items()
    body["Header"]["SessionID"] = "0102030405060708"
    return doc


def _minimum_above_maximum(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    ((_, body),) = doc.items()
    mode = next(v for k, v in body.items() if k.endswith("ReqEnergyTransferMode"))
    mode["EVMinimumChargePower"] = {"Value": 900, "Exponent": 3}  # 900 kW, above the EV's own maximum
    return doc


@pytest.mark.parametrize(("at", "edit", "code"), [
    ("ServiceSelectionReq", _session_setup_instead, "FAILED_SequenceError"),
    ("ServiceDiscoveryReq", _other_session, "FAILED_UnknownSession"),
    ("DC_ChargeParameterDiscoveryReq", _minimum_above_maximum, "FAILED_WrongChargeParameter")])
async def test_failed_codes(tmp_path: Path, at: str, edit: Any, code: str) -> None:
    async with bridged(tmp_path, evses=1, secc=OFFER) as rig:
        answers = await scripted_ev(rig.address(1), "iso20", "dc", at=at, action=edit)
        assert answers[-1][1] == code, answers
        await reported(rig, kind_of_code(code), code)


async def test_silence_in_the_charge_loop(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, secc={**OFFER, "timers": SeccTimers(sequence=0.5)}) as rig:
        await scripted_ev(rig.address(1), "iso20", "dc", at="DC_ChargeLoopReq", action="silent", control="dynamic")
        await reported(rig, FailureKind.SEQUENCE_TIMEOUT, "SequenceTimeout")


async def test_disconnect_in_the_charge_loop(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, secc=OFFER) as rig:
        await scripted_ev(rig.address(1), "iso20", "ac", at="AC_ChargeLoopReq", action="close")
        await reported(rig, FailureKind.DISCONNECTED, "Disconnected")
