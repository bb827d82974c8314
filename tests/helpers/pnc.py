"""Plug & Charge helpers: the contract an EV holds (-2, -20) and its OEM credentials (-20), taken from a test PKI."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from v2gstack.iso15118.evcc import Contract
from v2gstack.iso15118.evcc20 import Contract20, OemCredentials20
from v2gstack.pki.hierarchy import Pki
from v2gstack.pki.profiles import Kind

DER = serialization.Encoding.DER


def contract_of(pki: Pki, kind: Kind = Kind.CONTRACT) -> Contract:
    """The contract certificate chain and key of `kind` in `pki`, with its eMAID as the EV sends it."""
    leaf = pki.items[kind]
    cn = leaf.cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    chain = [leaf.cert.public_bytes(DER), *(c.public_bytes(DER) for c in pki.intermediates(kind))]
    return Contract(cn.replace("-", ""), chain, leaf.key)  # -2 eMAIDType: 14-15 characters, no separators


def contract20_of(pki: Pki) -> Contract20:
    """The -20 contract (secp521r1 or Ed448) of an ISO 15118-20 PKI, with its eMAID (the leaf's CN)."""
    item = pki.items[Kind.CONTRACT]
    cn = item.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return Contract20(str(cn), [item.cert, *pki.intermediates(Kind.CONTRACT)], item.key)  # type: ignore[arg-type]


def oem20_of(pki: Pki) -> OemCredentials20:
    """The EV's -20 OEM provisioning credentials (and the V2G root it checks the CPS chain against)."""
    item = pki.items[Kind.OEM_PROV]
    return OemCredentials20([item.cert, *pki.intermediates(Kind.OEM_PROV)], item.key,  # type: ignore[arg-type]
                            item.alt_key, [pki.cert(Kind.V2G_ROOT)])  # type: ignore[arg-type]
