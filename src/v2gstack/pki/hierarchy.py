"""Creation of all ISO 15118-2 and OCPP hierarchies in memory from one configuration."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from .issue import Issued, issue, subject_name
from .profiles import PROFILES, Kind


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


# leaf kind -> the sub-CAs above it (nearest first) and its root
CHAINS: dict[Kind, tuple[Kind, ...]] = {
    Kind.SECC: (Kind.CPO_SUB_CA2, Kind.CPO_SUB_CA1, Kind.V2G_ROOT),
    Kind.CPS: (Kind.CPS_SUB_CA2, Kind.CPS_SUB_CA1, Kind.V2G_ROOT),
    Kind.CONTRACT: (Kind.MO_SUB_CA2, Kind.MO_SUB_CA1, Kind.MO_ROOT),
    Kind.OEM_PROV: (Kind.OEM_SUB_CA2, Kind.OEM_SUB_CA1, Kind.OEM_ROOT),
    Kind.CSMS: (Kind.CSMS_ROOT,),
    Kind.STATION: (Kind.CSMS_ROOT,),
}
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
        return [k for k in self.items if PROFILES[k].is_root]


def common_name(kind: Kind, cfg: PkiConfig) -> str:
    """CN of a kind: eMAID for the contract, PCID for OEM provisioning, EVSE id for the SECC, station id for OCPP."""
    leaf_names = {
        Kind.CONTRACT: cfg.emaid,
        Kind.OEM_PROV: cfg.pcid,
        Kind.SECC: cfg.evse_id,
        Kind.STATION: cfg.station_id,
        Kind.CSMS: cfg.csms_host,
    }
    return leaf_names.get(kind) or COMMON_NAMES[kind]


def validity(kind: Kind, cfg: PkiConfig) -> int:
    """Validity in days: explicit per-kind override, then the leaf override, then the profile's maximum."""
    if kind in cfg.validity_days:
        return cfg.validity_days[kind]
    if cfg.leaf_validity_days is not None and not PROFILES[kind].ca:
        return cfg.leaf_validity_days
    return PROFILES[kind].validity_days


def create_pki(cfg: PkiConfig | None = None) -> Pki:
    """Create the V2G (CPO, CPS), MO, OEM and OCPP hierarchies."""
    cfg = cfg or PkiConfig()
    chains = dict(CHAINS)
    if cfg.ocpp_under_v2g:
        chains[Kind.CSMS] = OCPP_UNDER_V2G
        chains[Kind.STATION] = OCPP_UNDER_V2G
    items: dict[Kind, Issued] = {}

    def make(kind: Kind, issuer: Kind | None) -> None:
        if kind in items:
            return
        prof = PROFILES[kind]
        subject = subject_name(common_name(kind, cfg), cfg.organization, cfg.country, prof.domain_component)
        dns = (cfg.csms_host,) if kind is Kind.CSMS else ()
        items[kind] = issue(
            prof,
            subject,
            issuer=items[issuer] if issuer else None,
            not_before=cfg.not_before,
            validity_days=validity(kind, cfg),
            ocsp_url=cfg.ocsp_url,
            dns_names=dns,
        )

    for leaf, above in chains.items():
        path = (*reversed(above), leaf)
        for i, kind in enumerate(path):
            make(kind, path[i - 1] if i else None)
    return Pki(items, chains)
