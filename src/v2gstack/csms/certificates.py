"""The CSMS's certificate issuing for stations (OCPP A02/A03 and the ISO 15118 SECC certificate, M03/M04 path).

Keys come from a folder written by `v2gstack pki create`: the CPO Sub-CA 2 signs V2GCertificate requests (the SECC
leaf, chained to the V2G root through CPO Sub-CA 1), the CSMS root signs ChargingStationCertificate requests (the
station's OCPP client certificate, security profile 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ..pki.csr import CsrError, SignedCertificate, common_name, load_csr, sign_csr
from ..pki.issue import Issued
from ..pki.profiles import Kind
from ..pki.store import cert_pem, load_certs, load_key


@dataclass
class CertificateIssuer:
    """Signs stations' CSRs: `v2g` (CPO Sub-CA 2 + its chain) and `station` (the CSMS root) issuers."""

    v2g: Issued | None
    v2g_chain: tuple[x509.Certificate, ...]
    station: Issued | None
    ocsp_url: str | None = None

    @classmethod
    def from_pki_dir(cls, folder: Path, ocsp_url: str | None = None) -> CertificateIssuer:
        """Load the issuing CAs from a `v2gstack pki create` folder (missing ones disable that type)."""

        def issued(kind: Kind) -> Issued | None:
            cert, key = folder / "certs" / f"{kind.value}.pem", folder / "keys" / f"{kind.value}.key.pem"
            if not cert.exists() or not key.exists():
                return None
            return Issued(load_certs(cert)[0], load_key(key))

        sub1 = folder / "certs" / f"{Kind.CPO_SUB_CA1.value}.pem"
        return cls(issued(Kind.CPO_SUB_CA2), tuple(load_certs(sub1)) if sub1.exists() else (),
                   issued(Kind.CSMS_ROOT), ocsp_url)

    def sign(self, station_id: str, csr_pem: str, certificate_type: str) -> SignedCertificate:
        """Check and sign a request; CsrError (with an OCPP reasonCode) when it must be rejected."""
        csr = load_csr(csr_pem)
        if certificate_type == "ChargingStationCertificate":
            if self.station is None:
                raise CsrError("NoCA", "this CSMS has no CA for charging station certificates")
            if common_name(csr) != station_id:
                raise CsrError("InvalidCSR", f"the CSR's CN {common_name(csr)!r} is not the station id {station_id!r}")
            return sign_csr(csr, Kind.STATION, self.station)
        if certificate_type == "V2GCertificate":
            if self.v2g is None:
                raise CsrError("NoCA", "this CSMS has no CPO Sub-CA for V2G certificates")
            return sign_csr(csr, Kind.SECC, self.v2g, self.v2g_chain, ocsp_url=self.ocsp_url)
        raise CsrError("InvalidCSR", f"unknown certificateType {certificate_type!r}")


def chain_pem(signed: SignedCertificate) -> str:
    """The PEM bundle for CertificateSigned (leaf first)."""
    return b"".join(cert_pem(c) for c in signed.chain).decode()
