"""Issuing ISO 15118-20 contract certificates: the eMSP sub-CA 2 signs a contract on the curve of the EV's OEM
provisioning certificate (secp521r1 or Ed448, as the SA must); subject CN = EMAID, O = eMSP and nothing else
[V2G20-2589]; the Annex B encoding (method-2 key identifiers, GeneralizedTime).

`ContractService20` is the certificate side of the -20 secondary actor, beside the -2 `contracts.ContractService`:
it checks the EV's OEM provisioning chain (OEM roots, -20 algorithms) and issues the contract. The -20 messages around
it (the request's signature, the sealed key, the CPS-signed response) are iso15118/pnc20.py's.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from .algorithms import ISO20_ALGORITHMS, KeyAlgorithm, UnsupportedKeyError, algorithm_of, new_key
from .contracts import EmaidPolicy, IssuedContract, Issuer, default_emaid
from .errors import AlgorithmError
from .issue import Issued, issue, subject_name
from .profiles import PROFILES_20, Kind
from .store import load_certs, load_key
from .verify import Purpose, verify_chain


def contract_algorithm(oem_cert: x509.Certificate) -> KeyAlgorithm:
    """The -20 set of an OEM provisioning certificate, which the contract follows (AlgorithmError for any other)."""
    try:
        algorithm = algorithm_of(oem_cert.public_key())
    except UnsupportedKeyError as exc:
        raise AlgorithmError(f"OEM provisioning certificate: {exc}", oem_cert) from None
    if not algorithm.iso20:
        raise AlgorithmError("the OEM provisioning certificate is not an ISO 15118-20 (secp521r1 or Ed448) one",
                             oem_cert)
    return algorithm


def contract_key(algorithm: KeyAlgorithm) -> ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey:
    """A new contract key that the -20 certificate installation can carry: secp521r1, or an Ed448 key whose seed
    ends in a zero byte (X448_EncryptedPrivateKey holds 56 bytes, RFC 8032 Ed448 keys have 57)."""
    if algorithm is KeyAlgorithm.ED448:
        return ed448.Ed448PrivateKey.from_private_bytes(os.urandom(56) + b"\x00")
    key = new_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def issue_contract20(mo_ca: Issued, emaid: str, algorithm: KeyAlgorithm, *, emsp: str | None = None,
                     ocsp_url: str | None = None, validity_days: int | None = None,
                     not_before: dt.datetime | None = None) -> Issued:
    """A contract certificate and its key, signed by the eMSP sub-CA 2 `mo_ca` (whose O names the eMSP by default)."""
    if not algorithm.iso20:
        raise AlgorithmError(f"{algorithm.value} is not an ISO 15118-20 key set")
    org = emsp
    if org is None:
        names = mo_ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        org = str(names[0].value) if names else "eMSP"
    return issue(PROFILES_20[Kind.CONTRACT], subject_name(emaid, org, None, None), issuer=mo_ca,
                 key=contract_key(algorithm), algorithm=algorithm, ocsp_url=ocsp_url, validity_days=validity_days,
                 not_before=not_before)


@dataclass
class ContractService20:
    """The -20 secondary actor's certificate side: the eMSP sub-CA 2 (and the CPS that signs the responses), the OEM
    roots the EV's provisioning chain must reach, and the eMAID policy."""

    mo_ca: Issued  # eMSP sub-CA 2 with its key
    mo_chain: list[x509.Certificate]  # above the sub-CA 2 (sub-CA 1), no root
    issuer: Issuer  # the CPS leaf key and its chain (leaf first, no root)
    oem_roots: list[x509.Certificate]
    oem_intermediates: list[x509.Certificate]
    emaid_for: EmaidPolicy = default_emaid
    ocsp_url: str | None = None

    @classmethod
    def from_pki_dir(cls, folder: str | Path, ocsp_url: str | None = None) -> ContractService20:
        """The eMSP, CPS and OEM CAs of a `v2gstack pki create --profile iso20` folder."""
        d = Path(folder)

        def cert(name: str) -> x509.Certificate:
            return load_certs(d / "certs" / f"{name}.pem")[0]

        return cls(Issued(cert("mo_sub_ca2"), load_key(d / "keys" / "mo_sub_ca2.key.pem")), [cert("mo_sub_ca1")],
                   Issuer(load_key(d / "keys" / "cps.key.pem"),  # type: ignore[arg-type]
                          [cert("cps"), cert("cps_sub_ca2"), cert("cps_sub_ca1")]),
                   [cert("oem_root")], [cert("oem_sub_ca2"), cert("oem_sub_ca1")], ocsp_url=ocsp_url)

    def for_vehicle(self, oem_chain: list[x509.Certificate], at: dt.datetime | None = None) -> IssuedContract:
        """A new contract, on the curve of the OEM provisioning certificate `oem_chain[0]`, for the EV that holds it;
        the chain (with its own sub-CAs) must reach an OEM root with -20 algorithms. PkiError otherwise."""
        oem = oem_chain[0]
        verify_chain(oem, [*oem_chain[1:], *self.oem_intermediates], self.oem_roots, at=at, purpose=Purpose.OEM,
                     algorithms=ISO20_ALGORITHMS)
        emaid = self.emaid_for(oem)
        contract = issue_contract20(self.mo_ca, emaid, contract_algorithm(oem), ocsp_url=self.ocsp_url)
        return IssuedContract(emaid, contract.cert, contract.key, [contract.cert, self.mo_ca.cert,  # type: ignore[arg-type]
                                                                    *self.mo_chain])
