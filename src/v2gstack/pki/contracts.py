"""Contract certificate issuing (the mobility operator's side of ISO 15118-2 certificate installation and update).

`ContractService` checks the EV's OEM provisioning certificate (or its current contract, for an update) against the
configured roots, derives the eMAID (`EmaidPolicy`), and issues a contract certificate under the MO Sub-CA 2. The
ISO 15118-2 messages around it (request signatures, the key encrypted for the EV, the CPS-signed response) are
iso15118/pnc.py's; this module knows certificates only. Failures raise the typed PkiErrors of pki/errors.py, which
carry the ISO ResponseCode to answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import CertChainError
from .issue import Issued, issue, subject_name
from .profiles import PROFILES, Kind
from .store import load_certs, load_key
from .verify import Purpose, verify_chain


@dataclass(frozen=True)
class Issuer:
    """What signs a CertificateInstallationRes: the CPS leaf key and its chain (leaf first, no root)."""

    cps_key: ec.EllipticCurvePrivateKey
    cps_chain: list[x509.Certificate]


EmaidPolicy = Callable[[x509.Certificate], str]
"""How a new contract's eMAID is chosen from the EV's OEM provisioning certificate."""


def default_emaid(oem_cert: x509.Certificate) -> str:
    """An eMAID (14 characters: country, provider, instance) derived from the OEM certificate's PCID."""
    cn = oem_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    pcid = str(cn[0].value) if cn else oem_cert.serial_number.to_bytes(20, "big").hex()
    return "DEV2G" + hashlib.sha256(pcid.encode()).hexdigest()[:9].upper()


@dataclass(frozen=True)
class IssuedContract:
    """A new contract: its eMAID, certificate and key, and the chain the EV gets (leaf, MO Sub-CAs; no root)."""

    emaid: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]


@dataclass
class ContractService:
    """The secondary actor of certificate installation: checks the EV's OEM chain (or current contract) and issues
    contracts from the MO Sub-CA 2; `issuer` (the CPS) signs the ISO responses that carry them."""

    mo_ca: Issued  # MO Sub-CA 2 with its key
    mo_chain: list[x509.Certificate]  # above the MO Sub-CA 2 (Sub-CA 1), no root
    issuer: Issuer
    oem_roots: list[x509.Certificate]
    oem_intermediates: list[x509.Certificate]
    emaid_for: EmaidPolicy = default_emaid
    ocsp_url: str | None = None

    @classmethod
    def from_pki_dir(cls, folder: str | Path, ocsp_url: str | None = None) -> ContractService:
        """The MO, CPS and OEM CAs of a `v2gstack pki create` folder (OSError/ValueError when they are missing)."""
        d = Path(folder)

        def cert(name: str) -> x509.Certificate:
            return load_certs(d / "certs" / f"{name}.pem")[0]

        def issued(name: str) -> Issued:
            return Issued(cert(name), load_key(d / "keys" / f"{name}.key.pem"))

        cps = issued("cps")
        return cls(issued("mo_sub_ca2"), [cert("mo_sub_ca1")],
                   Issuer(cps.key, [cps.cert, cert("cps_sub_ca2"), cert("cps_sub_ca1")]),
                   [cert("oem_root")], [cert("oem_sub_ca2"), cert("oem_sub_ca1")], ocsp_url=ocsp_url)

    def for_vehicle(self, oem: x509.Certificate) -> IssuedContract:
        """A new contract for the EV whose OEM provisioning certificate is `oem` (checked against the OEM roots when
        there are any); PkiError when the OEM chain does not verify."""
        if self.oem_roots:
            verify_chain(oem, self.oem_intermediates, self.oem_roots, purpose=Purpose.OEM)
        return self._issue(self.emaid_for(oem))

    def renewal(self, current: list[x509.Certificate], emaid: str) -> IssuedContract:
        """A new contract with the same eMAID for the holder of `current` (leaf first), which must chain to our MO CA
        and be named by `emaid` (ignoring '-' and case); PkiError otherwise."""
        verify_chain(current[0], current[1:], [self.mo_ca.cert], purpose=Purpose.CONTRACT)
        cn = current[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        named = str(cn[0].value).replace("-", "") if cn else emaid
        if named.upper() != emaid.replace("-", "").upper():
            raise CertChainError("eMAID does not name the current contract", current[0])
        return self._issue(named)

    def _issue(self, emaid: str) -> IssuedContract:
        """A contract certificate for `emaid` under the MO Sub-CA 2."""
        org = self.mo_ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        contract = issue(PROFILES[Kind.CONTRACT], subject_name(emaid, str(org[0].value) if org else "MO", "DE", "MO"),
                         issuer=self.mo_ca, ocsp_url=self.ocsp_url)
        return IssuedContract(emaid, contract.cert, contract.key,
                              [contract.cert, self.mo_ca.cert, *self.mo_chain])
