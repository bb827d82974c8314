"""Issuing ISO 15118-20 contract certificates: the eMSP sub-CA 2 signs a contract on the curve of the EV's OEM
provisioning certificate (secp521r1 or Ed448, as the SA must); subject CN = EMAID, O = eMSP and nothing else
[V2G20-2589]; the Annex B encoding (method-2 key identifiers, GeneralizedTime)."""

from __future__ import annotations

import datetime as dt
import os

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from .algorithms import KeyAlgorithm, UnsupportedKeyError, algorithm_of, new_key
from .errors import AlgorithmError
from .issue import Issued, issue, subject_name
from .profiles import PROFILES_20, Kind


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
