"""Each row of the ISO 15118 -> OCPP error map, provoked for real (our EV scripted to misbehave, a simulated EVSE
fault, timers, TLS clients the SECC refuses) and checked where it lands: the CSMS's NotifyEvent, SecurityEvent
Notification, StatusNotification Faulted and the transaction's stoppedReason/triggerReason, and the timeline.
Rows covered elsewhere: Normal and AuthorizationFailed, ExiError (test_bridge_sessions.py), CertificateError and
SignatureError (test_bridge_pnc.py, test_iso15118_pnc.py)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import bridged, scripted_ev
from helpers.bridge_errors import events, reported, sent
from helpers.wait import until

from v2gstack.hardware import SimulatedHardwareConfig
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.evcc import EvccTimers
from v2gstack.iso15118.secc import SeccTimers
from v2gstack.iso15118.tls import evcc_context
from v2gstack.trace.error_map import FailureKind

pytestmark = pytest.mark.timeout(120)


# ----- FAILED_* response codes the SECC sends -----

async def test_no_common_protocol(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, secc={"protocols": ("iso2",)}) as rig:
        result = await rig.ev(1, "din", "dc")
        assert not result.ok
        await reported(rig, FailureKind.NO_COMMON_PROTOCOL, "Failed_NoNegotiation", transaction=False)


async def test_sequence_error(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        answers = await scripted_ev(rig.address(1), "iso2", "ac", at="ServiceDiscoveryReq",
                                    action=lambda doc, sent: sent[-1])  # SessionSetupReq again
        assert answers[-1] == ("SessionSetupRes", "FAILED_SequenceError")
        await reported(rig, FailureKind.SEQUENCE_ERROR, "FAILED_SequenceError")


def _other_session(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    doc["V2G_Message"]["Header"]["SessionID"] = "0102030405060708"
    return doc


async def test_unknown_session(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        answers = await scripted_ev(rig.address(1), "din", "dc", at="ServiceDiscoveryReq", action=_other_session)
        assert answers[-1] == ("ServiceDiscoveryRes", "FAILED_UnknownSession")
        await reported(rig, FailureKind.UNKNOWN_SESSION, "FAILED_UnknownSession")


def _single_phase(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    doc["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]["RequestedEnergyTransferMode"] = "AC_single_phase_core"
    return doc


async def test_wrong_energy_transfer_mode(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:  # the EVSE offers AC three-phase and DC
        answers = await scripted_ev(rig.address(1), "iso2", "ac", at="ChargeParameterDiscoveryReq",
                                    action=_single_phase)
        assert answers[-1] == ("ChargeParameterDiscoveryRes", "FAILED_WrongEnergyTransferMode")
        await reported(rig, FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_WrongEnergyTransferMode")


async def test_isolation_fault_faults_the_evse(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, hardware=SimulatedHardwareConfig(isolation="Fault")) as rig:
        result = await rig.ev(1, "iso2", "dc")
        assert not result.ok and "CableCheckRes" in result.reason
        await reported(rig, FailureKind.ISOLATION_FAULT, "FAILED")


async def test_contactor_error_faults_the_evse(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, hardware=SimulatedHardwareConfig(contactor_fault=True)) as rig:
        result = await rig.ev(1, "iso2", "ac")
        assert not result.ok and result.response_code == "FAILED_ContactorError"
        await reported(rig, FailureKind.CONTACTOR_ERROR, "FAILED_ContactorError")


def _unknown_tuple(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    doc["V2G_Message"]["Body"]["PowerDeliveryReq"]["SAScheduleTupleID"] = 99
    return doc


async def test_schedule_not_offered(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        answers = await scripted_ev(rig.address(1), "iso2", "ac", at="PowerDeliveryReq", action=_unknown_tuple)
        assert answers[-1] == ("PowerDeliveryRes", "FAILED_TariffSelectionInvalid")
        await reported(rig, FailureKind.PROFILE_INVALID, "FAILED_TariffSelectionInvalid")
        assert sent(rig, "NotifyEVChargingSchedule") == []  # the EV's choice was refused


def _contract_payment(doc: dict[str, Any], sent: list[dict[str, Any]]) -> dict[str, Any]:
    doc["V2G_Message"]["Body"]["PaymentServiceSelectionReq"]["SelectedPaymentOption"] = "Contract"
    return doc


async def test_other_failed_code(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:  # EIM only: Contract was not offered
        answers = await scripted_ev(rig.address(1), "iso2", "ac", at="PaymentServiceSelectionReq",
                                    action=_contract_payment)
        assert answers[-1] == ("PaymentServiceSelectionRes", "FAILED_PaymentSelectionInvalid")
        await reported(rig, FailureKind.OTHER_FAILED, "FAILED_PaymentSelectionInvalid")


# ----- timeouts -----

async def test_sequence_timeout(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, secc={"timers": SeccTimers(sequence=0.5)}) as rig:
        await scripted_ev(rig.address(1), "iso2", "ac", at="ChargeParameterDiscoveryReq", action="silent")
        await reported(rig, FailureKind.SEQUENCE_TIMEOUT, "SequenceTimeout")


async def test_communication_setup_timeout(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, secc={"timers": SeccTimers(sequence=0.5)}) as rig:
        answers = await scripted_ev(rig.address(1), "iso2", "ac", at="SessionSetupReq", action="silent")
        assert answers == [("supportedAppProtocolRes", "OK_SuccessfulNegotiation")]
        await reported(rig, FailureKind.COMMUNICATION_SETUP_TIMEOUT, "CommunicationSetupTimeout", transaction=False)


async def test_performance_timeout(tmp_path: Path) -> None:
    late = SeccTimers(performance=0.0, performance_long=0.0, performance_current_demand=0.0)  # every answer is late
    async with bridged(tmp_path, evses=1, secc={"timers": late}) as rig:
        await scripted_ev(rig.address(1), "iso2", "ac", at="AuthorizationReq", action="close")
        await reported(rig, FailureKind.PERFORMANCE_TIMEOUT, "PerformanceTimeout")


async def test_ongoing_timeout(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1, free=False) as rig:  # no token, no remote start: Ongoing until the EV quits
        result = await rig.ev(1, "iso2", "ac", timers=EvccTimers(ongoing=0.5))
        assert not result.ok and "Ongoing" in result.reason
        await reported(rig, FailureKind.ONGOING_TIMEOUT, "OngoingTimeout")


async def test_disconnect(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        await scripted_ev(rig.address(1), "iso2", "dc", at="CableCheckReq", action="close")
        await reported(rig, FailureKind.DISCONNECTED, "Disconnected")


# ----- transport -----

async def test_v2gtp_error(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        reader, writer = await asyncio.open_connection(*rig.address(1))
        writer.write(bytes.fromhex("02FD800100000004") + b"\x80\x00\x00\x00")  # protocol version 2
        await asyncio.wait_for(reader.read(), 10)  # the SECC closes
        writer.close()
        await reported(rig, FailureKind.V2GTP_ERROR, "V2gtpError", transaction=False)


async def _tls_rig_client(tmp_path: Path, client: ssl.SSLContext, kind: FailureKind) -> None:
    chain = make_secc_chain()
    async with bridged(tmp_path, evses=1, secc={"tls": chain.server_context(), "tcp": True}) as rig:
        assert rig.bridges[0].server is not None
        host, port = rig.bridges[0].server.addresses()["tls"]
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _, writer = await asyncio.open_connection(host, port, ssl=client, server_hostname="")
            writer.close()
        await reported(rig, kind, kind, transaction=False)
        result = await rig.ev(1, "iso2", "ac", loops=2)  # a healthy EV right after
        assert result.ok, result.reason


async def test_tls_version(tmp_path: Path) -> None:
    client = evcc_context()
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_3  # the SECC speaks TLS 1.2 only
    await _tls_rig_client(tmp_path, client, FailureKind.TLS_VERSION)


async def test_tls_cipher_suite(tmp_path: Path) -> None:
    client = evcc_context()
    client.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")  # not a V2G suite
    await _tls_rig_client(tmp_path, client, FailureKind.TLS_CIPHER_SUITE)


async def test_tls_failure_untrusted_secc_certificate(tmp_path: Path) -> None:
    other = make_secc_chain()  # the EV trusts another V2G root
    await _tls_rig_client(tmp_path, evcc_context(cadata=other.root_pem.decode()), FailureKind.TLS_FAILURE)


# ----- station side -----

async def test_secc_shutdown_ends_the_transaction_as_reboot(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso2", "ac", loops=0, interval=0.05))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        assert rig.bridges[0].server is not None
        await rig.bridges[0].server.close()
        result = await asyncio.wait_for(ev, 30)
        assert not result.ok
        await reported(rig, FailureKind.SHUTDOWN, "Shutdown")
        assert events(rig) == []  # a shutdown is no EV problem
