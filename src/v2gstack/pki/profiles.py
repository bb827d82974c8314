"""Certificate profiles: ISO 15118-2 Annex F and OCPP 2.0.1 (PROFILES), ISO 15118-20 Annex B (PROFILES_20)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    VEHICLE_SUB_CA1 = "vehicle_sub_ca1"
    VEHICLE_SUB_CA2 = "vehicle_sub_ca2"
    VEHICLE = "vehicle"
    CSMS_ROOT = "csms_root"
    CSMS = "csms"
    STATION = "station"
    MANUFACTURER_ROOT = "manufacturer_root"
    FIRMWARE_SIGNING = "firmware_signing"


@dataclass(frozen=True)
class Profile:
    """Fields of one certificate kind: CA flag, path length, key usage, EKU, DC attribute, default validity, and the
    ISO 15118-20 encoding details (SKI method 2, GeneralizedTime, a subject of CN and O only)."""

    ca: bool
    path_length: int | None
    key_usage: frozenset[str]
    validity_days: int
    domain_component: str | None
    extended_key_usage: tuple[ObjectIdentifier, ...] = field(default_factory=tuple)
    key_usage_ed448: frozenset[str] | None = None  # -20: the bits for an Ed448 key where they differ
    ski_method2: bool = False  # -20 [V2G20-1852]: 8-byte key identifiers (RFC 5280 method 2)
    generalized_time: bool = False  # -20 Annex B: validity as GeneralizedTime
    cn_and_o_only: bool = False  # -20 leaves [V2G20-2589] etc.: "shall not contain any further values"

    def usage_for(self, ed448_key: bool) -> frozenset[str]:
        """The key usage bits for a key of the given type."""
        return self.key_usage_ed448 if ed448_key and self.key_usage_ed448 is not None else self.key_usage

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
CODE_SIGNING = (ExtendedKeyUsageOID.CODE_SIGNING,)

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
    # the security whitepaper's signed firmware: the manufacturer's root (installed at the station as
    # ManufacturerRootCertificate) and the firmware signing certificate it issues (pki/firmware.py)
    Kind.MANUFACTURER_ROOT: _root(None),
    Kind.FIRMWARE_SIGNING: Profile(False, None, frozenset({"digital_signature"}), 2 * YEAR + 1, None, CODE_SIGNING),
}
FIRMWARE_KINDS = frozenset({Kind.MANUFACTURER_ROOT, Kind.FIRMWARE_SIGNING})

KEY_USAGE_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _20(profile: Profile, **changes: object) -> Profile:
    """The -20 variant of a profile: method-2 key identifiers and GeneralizedTime, plus the given changes."""
    return replace(profile, ski_method2=True, generalized_time=True, **changes)  # type: ignore[arg-type]


# ISO 15118-20 Annex B. Validity: the V2G root 25 years (Table B.3), the CPS certificates "up to CPS" (Table B.7); the
# other maxima are the -2 values above, kept as defaults. Leaves: CN and O only (SECCID, EMAID, PCID, EVCCID).
# keyAgreement: OEM provisioning always [V2G20-822]; SECC and vehicle only with secp521r1 keys (Ed448 cannot agree).
SIGN_AND_AGREE = frozenset({"digital_signature", "key_agreement"})
SIGN_ONLY = frozenset({"digital_signature"})
PROFILES_20: dict[Kind, Profile] = {
    **{k: _20(p) for k, p in PROFILES.items() if p.ca and k not in (Kind.CSMS_ROOT, *FIRMWARE_KINDS)},
    Kind.V2G_ROOT: _20(_root("V2G", 25 * YEAR + 6)),
    Kind.VEHICLE_SUB_CA1: _20(_sub1("OEM")),
    Kind.VEHICLE_SUB_CA2: _20(_sub2("OEM")),
    Kind.SECC: _20(PROFILES[Kind.SECC], domain_component=None, extended_key_usage=SERVER_AUTH,
                   key_usage=SIGN_AND_AGREE, key_usage_ed448=SIGN_ONLY, validity_days=YEAR, cn_and_o_only=True),
    Kind.CPS: _20(PROFILES[Kind.CPS], key_usage=SIGN_ONLY),
    Kind.CONTRACT: _20(PROFILES[Kind.CONTRACT], domain_component=None, cn_and_o_only=True),
    Kind.OEM_PROV: _20(PROFILES[Kind.OEM_PROV], domain_component=None, key_usage=SIGN_AND_AGREE, cn_and_o_only=True),
    Kind.VEHICLE: _20(PROFILES[Kind.OEM_PROV], domain_component=None, extended_key_usage=CLIENT_AUTH,
                      key_usage=SIGN_AND_AGREE, key_usage_ed448=SIGN_ONLY, cn_and_o_only=True),
    Kind.CSMS_ROOT: PROFILES[Kind.CSMS_ROOT],  # OCPP keeps its own profile (P-256) in a -20 PKI
    Kind.CSMS: PROFILES[Kind.CSMS],
    Kind.STATION: PROFILES[Kind.STATION],
}
