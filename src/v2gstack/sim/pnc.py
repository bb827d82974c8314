"""Plug & Charge setups with faults on purpose (expired, revoked, bad signature, wrong root, OCSP down): one place
for the demo's `--pnc-fault` and the scenario runner's contract faults, so both build the same PKI and contracts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..csms.store import Store
from ..iso15118.evcc import Contract, OemCredentials
from ..iso15118.tls import secc_context
from ..pki.hierarchy import PkiConfig, create_pki
from ..pki.issue import issue, subject_name
from ..pki.ocsp import OcspResponder, RevocationList, serve
from ..pki.profiles import PROFILES, Kind
from ..pki.store import cert_pem, write_pki

PNC_FAULTS: dict[str, str | None] = {
    "none": None, "revoked": "FAILED_CertificateRevoked", "wrong-root": "FAILED_CertChainError",
    "expired": "FAILED_CertificateExpired", "ocsp-down": "FAILED_CertChainError",
    "bad-signature": "FAILED_SignatureError"}
"""A fault -> the ISO 15118-2 ResponseCode the Plug & Charge EV must receive (None: it charges)."""
EV_FAULTS = ("bad-signature",)
"""Faults the EV itself makes (EvccConfig.pnc_fault) with a valid contract."""


@dataclass
class PncSetup:
    """A Plug & Charge EV's world: the SECC's TLS, the V2G root, the EV's credentials, the fault chosen."""

    secc_tls: Any
    v2g_root_pem: str
    oem: Any = None  # OemCredentials: install a contract first
    contract: Any = None  # a prepared contract (the fault cases)
    expected: str | None = None  # the ISO code the EV must get (faults)
    ocsp_url: str | None = None
    ocsp_server: Any = None
    ev_fault: str | None = None  # EvccConfig.pnc_fault: what the EV itself gets wrong

    @property
    def ocsp_host(self) -> str:
        """HOST:PORT of the OCSP responder, for the CSMS's OCSP allow list."""
        return (self.ocsp_url or "").split("//", 1)[-1].split("/", 1)[0]


@dataclass
class PncPki:
    """A PKI written to `folder` with its OCSP responder running on loopback; the CSMS trusts its MO root."""

    folder: Path
    pki: Any
    url: str
    server: Any
    secc_tls: Any

    @property
    def v2g_root_pem(self) -> str:
        """The V2G root the EVs trust for the SECC's TLS chain."""
        return cert_pem(self.pki.cert(Kind.V2G_ROOT)).decode()

    def oem(self) -> OemCredentials:
        """The OEM provisioning credentials: an EV that gets its contract through the station and the CSMS."""
        pki = self.pki
        return OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])

    def contract(self, fault: str = "none", emaid: str | None = None) -> Contract:
        """A contract for an EV: valid, or expired / revoked / wrong-root (revoked: revoked now). With `emaid`, a
        contract certificate of its own (so that revoking it touches no other EV); else the PKI's one."""
        pki, subs = self.pki, self.pki.intermediates(Kind.CONTRACT)
        if fault == "wrong-root":
            other = create_pki(PkiConfig(ocsp_url=self.url))
            return _contract_of(other.items[Kind.CONTRACT], other.intermediates(Kind.CONTRACT))
        if fault == "expired":
            old = issue(PROFILES[Kind.CONTRACT], subject_name(emaid or "DEV2GEXPIRED01", "MO", "DE", "MO"),
                        issuer=pki.items[Kind.MO_SUB_CA2],
                        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30), validity_days=1,
                        ocsp_url=self.url)
            return _contract_of(old, subs)
        issued = pki.items[Kind.CONTRACT] if emaid is None else issue(
            PROFILES[Kind.CONTRACT], subject_name(emaid, "MO", "DE", "MO"), issuer=pki.items[Kind.MO_SUB_CA2],
            ocsp_url=self.url)
        contract = _contract_of(issued, subs)
        if fault == "revoked":
            self.revoke(contract)
        return contract  # bad-signature: a valid contract; the EV signs its AuthorizationReq wrongly (EV_FAULTS)

    def revoke(self, contract: Contract) -> None:
        """Revoke a contract's certificate at the OCSP responder (key compromise)."""
        RevocationList(self.folder / "revoked.json").revoke(x509.load_der_x509_certificate(contract.chain[0]),
                                                            self.pki.cert(Kind.MO_SUB_CA2), "key_compromise")

    def ocsp_down(self) -> None:
        """Stop the OCSP responder (an unreachable responder)."""
        self.server.close()


def _contract_of(issued: Any, subs: list[Any]) -> Contract:
    cn = str(issued.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).replace("-", "")
    return Contract(cn, [c.public_bytes(Encoding.DER) for c in [issued.cert, *subs]], issued.key)


async def start_pki(folder: Path, store: Store) -> PncPki:
    """A PKI in `folder` with a running OCSP responder, its MO root trusted by the CSMS's `store`."""
    responder = OcspResponder([], RevocationList(folder / "revoked.json"))
    server = await serve(responder)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocsp"
    pki = create_pki(PkiConfig(ocsp_url=url))
    write_pki(pki, folder)
    responder.cas = OcspResponder.from_pki_dir(folder).cas
    store.add_trust_anchor("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)))
    tls = secc_context(folder / "chains" / "secc.chain.pem", folder / "keys" / "secc.key.pem")
    return PncPki(folder, pki, url, server, tls)


async def pnc_setup(folder: Path, store: Store, fault: str) -> PncSetup:
    """The demo's Plug & Charge EV: only its OEM certificate (no fault), or a prepared contract with `fault`."""
    p = await start_pki(folder, store)
    setup = PncSetup(p.secc_tls, p.v2g_root_pem, ocsp_url=p.url, ocsp_server=p.server, expected=PNC_FAULTS[fault],
                     ev_fault=fault if fault in EV_FAULTS else None)
    if fault == "none":
        setup.oem = p.oem()
    elif fault == "ocsp-down":
        setup.contract = p.contract()
        p.ocsp_down()
    else:
        setup.contract = p.contract(fault)
    return setup
