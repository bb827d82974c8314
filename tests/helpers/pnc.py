"""Plug & Charge helpers: the contract an EV holds, taken from a test PKI."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from v2gstack.iso15118.evcc import Contract
from v2gstack.pki.hierarchy import Pki
from v2gstack.pki.profiles import Kind

DER = serialization.Encoding.DER


def contract_of(pki: Pki, kind: Kind = Kind.CONTRACT) -> Contract:
    """The contract certificate chain and key of `kind` in `pki`, with its eMAID as the EV sends it."""
    leaf = pki.items[kind]
    cn = leaf.cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    chain = [leaf.cert.public_bytes(DER), *(c.public_bytes(DER) for c in pki.intermediates(kind))]
    return Contract(cn.replace("-", ""), chain, leaf.key)  # -2 eMAIDType: 14-15 characters, no separators
