"""ISO 15118-2 Annex F and OCPP 2.0.1 certificate profiles: what each kind of certificate contains."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

DAY = 1
YEAR = 365


class Kind(StrEnum):
    """The kinds of certificate this PKI issues."""

    V2G_ROOT = "v2g_root"
    CPO_SUB_CA1 = "cpo_sub_ca1"
    CPO_SUB_CA2 = "cpo_sub_ca2"
    SECC = "secc"
    CPS_SUB_CA1 = "cps_sub_ca1"
    CPS_SUB_CA2 = "cps_sub_ca2"
    CPS = "cps"
    MO_ROOT = "mo_root"
    MO_SUB_CA1 = "mo_sub_ca1"
    MO_SUB_CA2 = "mo_sub_ca2"
    CONTRACT = "contract"
    OEM_ROOT = "oem_root"
    OEM_SUB_CA1 = "oem_sub_ca1"
    OEM_SUB_CA2 = "oem_sub_ca2"
    OEM_PROV = "oem_prov"
    CSMS_ROOT = "csms_root"
    CSMS = "csms"
    STATION = "station"


@dataclass(frozen=True)
class Profile:
    """Fields of one certificate kind: CA flag, path length, key usage, EKU, DC attribute, default validity."""

    ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    validity_days: int
    domain_component: str | None
    extended_key_usage: tuple[ObjectIdentifier, ...] = field(default_factory=tuple)

    @property
    def is_root(self) -> bool:
        """A root is a CA without a path length limit (self-signed)."""
        return self.ca and self.path_length is None


CA_USAGE = frozenset({"key_cert_sign", "crl_sign"})


def _root(dc: str | None, days: int = 40 * YEAR + 10) -> Profile:
    """A root CA profile (no path length limit, ISO 15118-2: up to 40 years)."""
    return Profile(True, None, CA_USAGE, days, dc)


def _sub1(dc: str | None) -> Profile:
    """A Sub-CA 1 profile (pathLen 1, up to 4 years)."""
    return Profile(True, 1, CA_USAGE, 4 * YEAR + 1, dc)


def _sub2(dc: str | None) -> Profile:
    """A Sub-CA 2 profile (pathLen 0, up to 2 years)."""
    return Profile(True, 0, CA_USAGE, 2 * YEAR + 1, dc)


SERVER_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
TLS_USAGE = frozenset({"digital_signature", "key_agreement"})

PROFILES: dict[Kind, Profile] = {
    Kind.V2G_ROOT: _root("V2G"),
    Kind.CPO_SUB_CA1: _sub1("V2G"),
    Kind.CPO_SUB_CA2: _sub2("V2G"),
    Kind.SECC: Profile(False, None, frozenset({"digital_signature", "key_agreement"}), 90 * DAY, "CPO"),
    Kind.CPS_SUB_CA1: _sub1("V2G"),
    Kind.CPS_SUB_CA2: _sub2("V2G"),
    Kind.CPS: Profile(False, None, frozenset({"digital_signature"}), 2 * YEAR + 1, "CPS"),
    Kind.MO_ROOT: _root("MO"),
    Kind.MO_SUB_CA1: _sub1("MO"),
    Kind.MO_SUB_CA2: _sub2("MO"),
    Kind.CONTRACT: Profile(False, None, frozenset({"digital_signature", "content_commitment"}), 2 * YEAR + 1, "MO"),
    Kind.OEM_ROOT: _root("OEM"),
    Kind.OEM_SUB_CA1: _sub1("OEM"),
    Kind.OEM_SUB_CA2: _sub2("OEM"),
    Kind.OEM_PROV: Profile(False, None, frozenset({"digital_signature", "key_agreement"}), 4 * YEAR + 1, "OEM"),
    Kind.CSMS_ROOT: _root(None),
    Kind.CSMS: Profile(False, None, TLS_USAGE, 2 * YEAR + 1, None, SERVER_AUTH),
    Kind.STATION: Profile(False, None, TLS_USAGE, 2 * YEAR + 1, None, CLIENT_AUTH),
}

KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
