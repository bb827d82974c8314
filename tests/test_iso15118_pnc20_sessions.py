"""ISO 15118-20 Plug & Charge sessions with the -20 algorithms (secp521r1/SHA-512 and Ed448): in memory (the signed
PnC_AReqAuthorizationMode, signed metering confirmations, certificate installation then charging, every refusal with
its code and SessionEnded kind) and over TLS 1.3 with mutual authentication on loopback (an EV certificate the SECC
does not trust is refused in the handshake)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers.iso20 import RecordingEVSE, requests, run_pair

from v2gstack.iso15118 import EvccConfig, EVModel, SeccServer, SimulatedEVSE, run_evcc, tls
from v2gstack.iso15118.evcc import EvccSession
from v2gstack.iso15118.evcc20 import Contract20, OemCredentials20
from v2gstack.iso15118.events import SessionEnded, TlsFailed
from v2gstack.iso15118.evse import SessionInfo
from v2gstack.iso15118.evse_sim import SimulatedEVSEConfig
from v2gstack.iso15118.secc import SeccConfig, SeccSession
from v2gstack.pki.algorithms import KeyAlgorithm
from v2gstack.pki.contracts20 import ContractService20, issue_contract20
from v2gstack.pki.hierarchy import Edition, Pki, PkiConfig, create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki
from v2gstack.trace.error_map import FailureKind

SETS = [KeyAlgorithm.SECP521, KeyAlgorithm.ED448]
PNC = ("ExternalPayment", "Contract")


@pytest.fixture(scope="module", params=SETS, ids=[s.value for s in SETS])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path]:
    """A -20 PKI of each algorithm set, written to a folder (the contract service reads it from there)."""
    made = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=request.param))
    out = tmp_path_factory.mktemp(f"pnc20s-{request.param.value}")
    write_pki(made, out)
    return made, out


def contract(pki: Pki, **kw: Any) -> Contract20:
    """The PKI's contract (or a new one with `kw`: validity_days, not_before)."""
    if kw:
        item = issue_contract20(pki.items[Kind.MO_SUB_CA2], "DEV2GC00000077", pki.algorithm, **kw)
    else:
        item = pki.items[Kind.CONTRACT]
    cn = item.cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    return Contract20(str(cn), [item.cert, *pki.intermediates(Kind.CONTRACT)], item.key)  # type: ignore[arg-type]


def oem(pki: Pki) -> OemCredentials20:
    """The EV's OEM provisioning credentials."""
    item = pki.items[Kind.OEM_PROV]
    return OemCredentials20([item.cert, *pki.intermediates(Kind.OEM_PROV)], item.key,  # type: ignore[arg-type]
                            item.alt_key, [pki.cert(Kind.V2G_ROOT)])  # type: ignore[arg-type]


class Revoking(RecordingEVSE):
    """A station whose own contract check refuses the contract with a -2 code."""

    def contract_check(self, info: SessionInfo, emaid: str, chain: list[bytes]) -> str:
        """Refuse."""
        return "FAILED_CertificateRevoked"


def pair(pki: tuple[Pki, Path], energy: str = "dc_bpt", control: str = "dynamic", evse: RecordingEVSE | None = None,
         sim: SimulatedEVSEConfig | None = None, tls_version: str | None = "TLSv1.3", **kw: Any
         ) -> tuple[EvccSession, SeccSession, RecordingEVSE]:
    """A -20 PnC pair: the SECC over (pretended) TLS 1.3 offering PnC with a local contract service."""
    service = ContractService20.from_pki_dir(pki[1])
    sim = sim or SimulatedEVSEConfig(payment_options=PNC, contract_service20=service)
    evse = evse or RecordingEVSE(sim)
    evse.config = sim
    kw.setdefault("contract20", contract(pki[0]))
    evcc = EvccSession(EvccConfig(protocols=("iso20",), energy=energy, control=control, payment="Contract", **kw),
                       EVModel())
    secc = SeccSession(evse, SeccConfig(protocols=("iso20",)), tls=tls_version is not None, tls_version=tls_version)
    return evcc, secc, evse


def ended(evse: RecordingEVSE) -> SessionEnded:
    """The one SessionEnded event."""
    ends = [e for e in evse.seen if isinstance(e, SessionEnded)]
    assert len(ends) == 1, ends
    return ends[0]


@pytest.mark.parametrize(("energy", "control"), [("dc_bpt", "dynamic"), ("ac", "scheduled")])
def test_plug_and_charge_with_signed_metering(pki: tuple[Pki, Path], energy: str, control: str) -> None:
    """The EV signs PnC_AReqAuthorizationMode over the GenChallenge and every SignedMeteringData it confirms; the
    SECC verifies both and knows the eMAID and the chain."""
    sim = SimulatedEVSEConfig(payment_options=PNC, receipt_required=True)
    evcc, secc, evse = pair(pki, energy, control, sim=sim, loops=3)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.metering_confirmations == 3, result
    info = secc.info
    assert info is not None and info.payment_option == "Contract" and info.emaid == contract(pki[0]).emaid
    assert info.contract_chain is not None and len(info.contract_chain) == 3
    assert requests(names).count("AuthorizationReq") == 1 and ended(evse).kind is FailureKind.NORMAL


def test_certificate_installation_then_plug_and_charge(pki: tuple[Pki, Path]) -> None:
    """Without a contract the EV installs one (the key sealed for its OEM provisioning key), then charges with it."""
    evcc, secc, _evse = pair(pki, "dc", "scheduled", contract20=None, oem20=oem(pki[0]), loops=2)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.installed_contract20 is not None, result.reason
    req = requests(names)
    assert req[3:5] == ["CertificateInstallationReq", "AuthorizationReq"]
    assert secc.info is not None and secc.info.emaid == result.installed_contract20.emaid
    assert result.installed_contract20.chain[0].public_key().public_bytes(
        *_spki()) == result.installed_contract20.key.public_key().public_bytes(*_spki())


def _spki() -> tuple[Any, Any]:
    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def test_installation_without_a_service_is_refused(pki: tuple[Pki, Path]) -> None:
    """A station without a contract service: FAILED, a certificate error."""
    evcc, secc, evse = pair(pki, "dc", "scheduled", sim=SimulatedEVSEConfig(payment_options=PNC), contract20=None,
                            oem20=oem(pki[0]), loops=2)
    result, _ = run_pair(evcc, secc)
    end = ended(evse)
    assert not result.ok and (end.kind, end.iso_code) == (FailureKind.CERTIFICATE_ERROR, "FAILED")


@pytest.mark.parametrize(("fault", "code", "kind"), [
    ("bad-signature", "FAILED_SignatureError", FailureKind.SIGNATURE_ERROR),
    ("tampered-challenge", "WARNING_ChallengeInvalid", FailureKind.SIGNATURE_ERROR),
    ("bad-metering-signature", "FAILED_MeteringSignatureNotValid", FailureKind.SIGNATURE_ERROR),
])
def test_signature_faults(pki: tuple[Pki, Path], fault: str, code: str, kind: FailureKind) -> None:
    """A signature by another key, a wrong challenge, a metering confirmation signed by another key."""
    sim = SimulatedEVSEConfig(payment_options=PNC, receipt_required=True)
    evcc, secc, evse = pair(pki, sim=sim, pnc_fault=fault, loops=3)
    result, _ = run_pair(evcc, secc)
    end = ended(evse)
    assert not result.ok and result.response_code == code and (end.kind, end.iso_code) == (kind, code)


def test_expired_and_not_yet_valid_contracts(pki: tuple[Pki, Path]) -> None:
    """The SECC's own validity check: WARNING_CertificateExpired / NotYetValid, a certificate error."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    for kw, code in (({"not_before": past, "validity_days": 1}, "WARNING_CertificateExpired"),
                     ({"not_before": future}, "WARNING_CertificateNotYetValid")):
        evcc, secc, evse = pair(pki, contract20=contract(pki[0], **kw), loops=2)
        result, _ = run_pair(evcc, secc)
        end = ended(evse)
        assert not result.ok and (end.kind, end.iso_code) == (FailureKind.CERTIFICATE_ERROR, code), end


def test_the_stations_contract_check_refuses(pki: tuple[Pki, Path]) -> None:
    """A -2 refusal code of the station's contract check becomes the -20 one."""
    evcc, secc, evse = pair(pki, evse=Revoking(), loops=2)
    result, _ = run_pair(evcc, secc)
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.CERTIFICATE_ERROR, "WARNING_CertificateRevoked")
    assert not result.ok and result.response_code == "WARNING_CertificateRevoked"


def test_no_plug_and_charge_without_tls(pki: tuple[Pki, Path]) -> None:
    """Over TCP the SECC offers EIM only; the EV with a contract charges with EIM."""
    evcc, secc, _evse = pair(pki, tls_version=None, loops=2)
    result, _ = run_pair(evcc, secc)
    assert result.ok and secc.info is not None and secc.info.payment_option == "ExternalPayment"


# ----- over TLS 1.3 with mutual authentication -----

class Observer:
    """Collects TLS failures."""

    def __init__(self) -> None:
        self.failures: list[TlsFailed] = []

    def tls_failed(self, event: TlsFailed) -> None:
        """Keep it."""
        self.failures.append(event)


def _store(d: Path, role: str, name: str) -> Path:
    return d / "stores" / role / name


async def test_plug_and_charge_over_tls13_mutual(pki: tuple[Pki, Path], tmp_path: Path) -> None:
    """Our EVCC (vehicle certificate) and our SECC (requires it) over TLS 1.3 on loopback: DC_BPT PnC charges;
    an EV certificate from a PKI the SECC does not trust is refused in the handshake (TlsFailed)."""
    made, d = pki
    service = ContractService20.from_pki_dir(d)
    sim = SimulatedEVSEConfig(payment_options=PNC, contract_service20=service, discharge_loops=1)
    group = tls.group_for(made.algorithm)
    server_ctx = tls.secc_context20(_store(d, "secc", "secc.chain.pem"), _store(d, "secc", "secc.key.pem"),
                                    trust=[_store(d, "secc", "trust/oem_root.pem"),
                                           _store(d, "secc", "trust/v2g_root.pem")], group=group)
    observer = Observer()
    async with SeccServer(lambda: SimulatedEVSE(sim), SeccConfig(protocols=("iso20",)), host="::1", sdp=False,
                          tcp=False, tls=server_ctx, observer=observer) as server:
        port = server.addresses()["tls"]
        client = tls.evcc_context20([_store(d, "ev", "trust/v2g_root.pem")],
                                    certfile=_store(d, "ev", "vehicle.chain.pem"),
                                    keyfile=_store(d, "ev", "vehicle.key.pem"), group=group)
        config = EvccConfig(protocols=("iso20",), energy="dc_bpt", control="dynamic", payment="Contract",
                            contract20=contract(made), loops=3)
        result = await run_evcc(config, EVModel(), secc=port, tls=True, tls_context=client)
        assert result.ok, result.reason
        session = server.finished[-1]
        assert session.tls_version == "TLSv1.3" and session.info is not None
        assert session.info.payment_option == "Contract"
        other = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=made.algorithm, evccid="WV2GFOREIGN000001"))
        write_pki(other, tmp_path)
        stranger = tls.evcc_context20([_store(d, "ev", "trust/v2g_root.pem")],
                                      certfile=_store(tmp_path, "ev", "vehicle.chain.pem"),
                                      keyfile=_store(tmp_path, "ev", "vehicle.key.pem"), group=group)
        refused = await run_evcc(config, EVModel(), secc=port, tls=True, tls_context=stranger)
        assert not refused.ok
        for _ in range(200):
            if observer.failures:
                break
            await asyncio.sleep(0.01)
        assert observer.failures and observer.failures[-1].kind is FailureKind.TLS_FAILURE


async def test_every_service_and_mode_with_eim_and_pnc_over_tls13(pki: tuple[Pki, Path]) -> None:
    """AC, DC, AC_BPT, DC_BPT x scheduled, dynamic x EIM, Plug & Charge, each over TLS 1.3 with the vehicle
    certificate, against one SECC."""
    made, d = pki
    sim = SimulatedEVSEConfig(payment_options=PNC, contract_service20=ContractService20.from_pki_dir(d),
                              discharge_loops=1, discharge_seconds=1, receipt_required=True)
    group = tls.group_for(made.algorithm)
    server_ctx = tls.secc_context20(_store(d, "secc", "secc.chain.pem"), _store(d, "secc", "secc.key.pem"),
                                    trust=[_store(d, "secc", "trust/oem_root.pem")], group=group)
    client = tls.evcc_context20([_store(d, "ev", "trust/v2g_root.pem")],
                                certfile=_store(d, "ev", "vehicle.chain.pem"),
                                keyfile=_store(d, "ev", "vehicle.key.pem"), group=group)
    async with SeccServer(lambda: SimulatedEVSE(sim), SeccConfig(protocols=("iso20", "iso2")), host="::1",
                          sdp=False, tcp=False, tls=server_ctx) as server:
        port = server.addresses()["tls"]
        runs = [(e, c, a) for e in ("ac", "dc", "ac_bpt", "dc_bpt") for c in ("scheduled", "dynamic")
                for a in ("ExternalPayment", "Contract")]
        for energy, control, payment in runs:
            config = EvccConfig(protocols=("iso20",), energy=energy, control=control, payment=payment,
                                contract20=contract(made), loops=2)
            result = await run_evcc(config, EVModel(), secc=port, tls=True, tls_context=client)
            assert result.ok and result.metering_confirmations == 2, (energy, control, payment, result.reason)
            session = server.finished[-1]
            assert session.info is not None and session.info.payment_option == payment
        assert len(server.finished) == len(runs) and all(s.tls_version == "TLSv1.3" for s in server.finished)
