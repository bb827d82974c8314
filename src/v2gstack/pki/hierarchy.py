"""Creation of all ISO 15118 (-2 or -20) and OCPP hierarchies in memory from one configuration."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x448

from .algorithms import KeyAlgorithm
from .issue import Issued, issue, subject_name
from .profiles import PROFILES, PROFILES_20, Kind, Profile
from .rsa_server import RsaServer, issue_rsa_server


class Edition(StrEnum):
    """Which ISO 15118 certificate profiles a PKI follows."""

    ISO2 = "iso2"  # ISO 15118-2 Annex F: P-256, ECDSA-SHA-256
    ISO20 = "iso20"  # ISO 15118-20 Annex B: secp521r1 / ECDSA-SHA-512 or Ed448, vehicle certificates


@dataclass
class PkiConfig:
    """What to put in the certificates; defaults are test values."""

    organization: str = "v2gstack Test PKI"
    country: str = "DE"
    emaid: str = "DE-8AA-1A2B3C4D5-X"
    pcid: str = "WV2G1234567890ABC1"
    evse_id: str = "DE*V2G*E0001*1"
    station_id: str = "CS0001"
    csms_host: str = "localhost"
    ocsp_url: str = "http://localhost:8080/ocsp"
    leaf_validity_days: int | None = None
    validity_days: dict[Kind, int] = field(default_factory=dict)
    ocpp_under_v2g: bool = False
    not_before: dt.datetime | None = None
    edition: Edition = Edition.ISO2
    algorithm: KeyAlgorithm = KeyAlgorithm.SECP521  # the -20 set (ignored for -2, which is always P-256)
    seccid: str = "DEV2GS0000000000000000000000000000000010"  # -20 SECC certificate CN (C.3 SECCID)
    evccid: str = "WV2GEVCC0000000001"  # -20 vehicle certificate CN
    operator: str = "v2gstack EVSE Operator"  # -20 SECC certificate O (the EVSE operator)
    emsp: str = "v2gstack eMSP"  # -20 contract certificate O
    oem: str = "v2gstack OEM"  # -20 OEM provisioning and vehicle certificate O
    csms_rsa: bool = False  # also an RSA CSMS server certificate (the TLS_RSA suites of A00.FR.318; `pki create` does)

    @property
    def profiles(self) -> dict[Kind, Profile]:
        """The profile table of the edition."""
        return PROFILES_20 if self.edition is Edition.ISO20 else PROFILES

    def algorithm_for(self, kind: Kind) -> KeyAlgorithm:
        """The key algorithm of a kind: OCPP certificates and everything in a -2 PKI are P-256."""
        if self.edition is Edition.ISO2 or kind in OCPP_KINDS:
            return KeyAlgorithm.P256
        return self.algorithm


# leaf kind -> the sub-CAs above it (nearest first) and its root
CHAINS: dict[Kind, tuple[Kind, ...]] = {
    Kind.SECC: (Kind.CPO_SUB_CA2, Kind.CPO_SUB_CA1, Kind.V2G_ROOT),
    Kind.CPS: (Kind.CPS_SUB_CA2, Kind.CPS_SUB_CA1, Kind.V2G_ROOT),
    Kind.CONTRACT: (Kind.MO_SUB_CA2, Kind.MO_SUB_CA1, Kind.MO_ROOT),
    Kind.OEM_PROV: (Kind.OEM_SUB_CA2, Kind.OEM_SUB_CA1, Kind.OEM_ROOT),
    Kind.CSMS: (Kind.CSMS_ROOT,),
    Kind.STATION: (Kind.CSMS_ROOT,),
}
CHAINS_20: dict[Kind, tuple[Kind, ...]] = {
    **CHAINS,
    Kind.VEHICLE: (Kind.VEHICLE_SUB_CA2, Kind.VEHICLE_SUB_CA1, Kind.OEM_ROOT),
}
OCPP_KINDS = frozenset({Kind.CSMS_ROOT, Kind.CSMS, Kind.STATION})
OCPP_UNDER_V2G = (Kind.CPO_SUB_CA2, Kind.CPO_SUB_CA1, Kind.V2G_ROOT)
COMMON_NAMES: dict[Kind, str] = {
    Kind.V2G_ROOT: "V2G Root CA",
    Kind.CPO_SUB_CA1: "CPO Sub-CA 1",
    Kind.CPO_SUB_CA2: "CPO Sub-CA 2",
    Kind.CPS_SUB_CA1: "CPS Sub-CA 1",
    Kind.CPS_SUB_CA2: "CPS Sub-CA 2",
    Kind.CPS: "CPS Leaf",
    Kind.MO_ROOT: "MO Root CA",
    Kind.MO_SUB_CA1: "MO Sub-CA 1",
    Kind.MO_SUB_CA2: "MO Sub-CA 2",
    Kind.OEM_ROOT: "OEM Root CA",
    Kind.OEM_SUB_CA1: "OEM Sub-CA 1",
    Kind.OEM_SUB_CA2: "OEM Sub-CA 2",
    Kind.CSMS_ROOT: "CSMS Root CA",
    Kind.VEHICLE_SUB_CA1: "Vehicle Sub-CA 1",
    Kind.VEHICLE_SUB_CA2: "Vehicle Sub-CA 2",
}


@dataclass
class Pki:
    """All certificates and keys of a created PKI, and each leaf's chain (sub-CAs nearest first, then root)."""

    items: dict[Kind, Issued]
    chains: dict[Kind, tuple[Kind, ...]]

    def cert(self, kind: Kind) -> x509.Certificate:
        """The certificate of one kind."""
        return self.items[kind].cert

    def intermediates(self, leaf: Kind) -> list[x509.Certificate]:
        """The sub-CA certificates of a leaf's chain, nearest first (what the leaf's owner sends)."""
        return [self.items[k].cert for k in self.chains[leaf][:-1]]

    def root(self, leaf: Kind) -> x509.Certificate:
        """The trust anchor of a leaf's chain."""
        return self.items[self.chains[leaf][-1]].cert

    @property
    def roots(self) -> list[Kind]:
        """The root kinds present."""
        return [k for k in self.items if self.profiles[k].is_root]

    edition: Edition = Edition.ISO2
    algorithm: KeyAlgorithm = KeyAlgorithm.P256
    csms_rsa: RsaServer | None = None  # the RSA twin of the CSMS server certificate, when asked for

    @property
    def profiles(self) -> dict[Kind, Profile]:
        """The profile table the PKI was made with."""
        return PROFILES_20 if self.edition is Edition.ISO20 else PROFILES


def common_name(kind: Kind, cfg: PkiConfig) -> str:
    """CN of a kind: eMAID for the contract, PCID for OEM provisioning, EVSE id (-2) or SECCID (-20) for the SECC,
    EVCCID for the vehicle certificate, station id for OCPP."""
    leaf_names = {
        Kind.CONTRACT: cfg.emaid,
        Kind.OEM_PROV: cfg.pcid,
        Kind.SECC: cfg.seccid if cfg.edition is Edition.ISO20 else cfg.evse_id,
        Kind.VEHICLE: cfg.evccid,
        Kind.STATION: cfg.station_id,
        Kind.CSMS: cfg.csms_host,
    }
    return leaf_names.get(kind) or COMMON_NAMES[kind]


def subject(kind: Kind, cfg: PkiConfig) -> x509.Name:
    """Subject DN of a kind; -20 leaves carry CN and O only, O naming the operator, eMSP or OEM."""
    prof = cfg.profiles[kind]
    if prof.cn_and_o_only:
        org = {Kind.SECC: cfg.operator, Kind.CONTRACT: cfg.emsp}.get(kind, cfg.oem)
        return subject_name(common_name(kind, cfg), org, None, None)
    return subject_name(common_name(kind, cfg), cfg.organization, cfg.country, prof.domain_component)


def validity(kind: Kind, cfg: PkiConfig) -> int:
    """Validity in days: explicit per-kind override, then the leaf override, then the profile's maximum."""
    prof = cfg.profiles[kind]
    if kind in cfg.validity_days:
        return cfg.validity_days[kind]
    if cfg.leaf_validity_days is not None and not prof.ca:
        return cfg.leaf_validity_days
    return prof.validity_days


def create_pki(cfg: PkiConfig | None = None) -> Pki:
    """Create the V2G (CPO, CPS), MO, OEM (and for -20 vehicle) and OCPP hierarchies."""
    cfg = cfg or PkiConfig()
    iso20 = cfg.edition is Edition.ISO20
    chains = dict(CHAINS_20 if iso20 else CHAINS)
    if cfg.ocpp_under_v2g:
        chains[Kind.CSMS] = OCPP_UNDER_V2G
        chains[Kind.STATION] = OCPP_UNDER_V2G
    items: dict[Kind, Issued] = {}

    def make(kind: Kind, issuer: Kind | None) -> None:
        if kind in items:
            return
        algorithm = cfg.algorithm_for(kind)
        dns = (cfg.csms_host,) if kind is Kind.CSMS else ()
        alt = x448.X448PrivateKey.generate() if kind is Kind.OEM_PROV and algorithm is KeyAlgorithm.ED448 else None
        items[kind] = issue(
            cfg.profiles[kind],
            subject(kind, cfg),
            issuer=items[issuer] if issuer else None,
            algorithm=algorithm,
            not_before=cfg.not_before,
            validity_days=validity(kind, cfg),
            ocsp_url=cfg.ocsp_url,
            dns_names=dns,
            alt_key=alt,
        )

    for leaf, above in chains.items():
        path = (*reversed(above), leaf)
        for i, kind in enumerate(path):
            make(kind, path[i - 1] if i else None)
    rsa = issue_rsa_server(items[chains[Kind.CSMS][0]], items[Kind.CSMS].cert) if cfg.csms_rsa else None
    return Pki(items, chains, cfg.edition, cfg.algorithm if iso20 else KeyAlgorithm.P256, rsa)
