"""What the `ev` and `secc` commands take from an ISO 15118-20 PKI folder (`v2gstack pki create --profile iso20`):
the EV's contract, OEM provisioning credentials and vehicle certificate, the SECC's certificate and the roots it
checks vehicle certificates against, the TLS 1.3 contexts of both, and the contract service that answers
certificate installation at a simulated EVSE.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ..pki.algorithms import algorithm_of
from ..pki.contracts20 import ContractService20
from ..pki.store import load_certs, load_key, load_x448_key
from . import tls
from .evcc20 import Contract20, OemCredentials20


@dataclass(frozen=True)
class Ev20:
    """The EV side of a -20 PKI folder."""

    contract: Contract20
    oem: OemCredentials20
    context: ssl.SSLContext  # TLS 1.3, presenting the vehicle certificate


@dataclass(frozen=True)
class Secc20Files:
    """The SECC side of a -20 PKI folder."""

    context: ssl.SSLContext  # TLS 1.3, requiring a vehicle certificate from the OEM or V2G roots
    contracts: ContractService20


def _password(text: str | None) -> bytes | None:
    return text.encode() if text else None


def ev_from_pki(folder: Path, password: str | None = None) -> Ev20:
    """stores/ev: contract chain and key, OEM provisioning chain and keys (X448 for Ed448), vehicle chain and key,
    the V2G root; the TLS 1.3 context on the PKI's group."""
    store = folder / "stores" / "ev"
    secret = _password(password)
    chain = load_certs(store / "contract.chain.pem")
    cn = chain[0].subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    contract = Contract20(str(cn[0].value) if cn else "", chain,
                          load_key(store / "contract.key.pem", secret))  # type: ignore[arg-type]
    alt = store / "oem_prov.x448.key.pem"
    root = store / "trust" / "v2g_root.pem"
    oem = OemCredentials20(load_certs(store / "oem_prov.chain.pem"),
                           load_key(store / "oem_prov.key.pem", secret),  # type: ignore[arg-type]
                           load_x448_key(alt, secret) if alt.exists() else None, load_certs(root))
    group = tls.group_for(algorithm_of(chain[0].public_key()))
    context = tls.evcc_context20([root], certfile=store / "vehicle.chain.pem", keyfile=store / "vehicle.key.pem",
                                 password=password, group=group)
    return Ev20(contract, oem, context)


def secc_from_pki(folder: Path, password: str | None = None) -> Secc20Files:
    """stores/secc: the SECC chain and key, the OEM and V2G roots for vehicle certificates; the contract service of
    the folder (eMSP and CPS CAs)."""
    store = folder / "stores" / "secc"
    leaf = load_certs(store / "secc.chain.pem")[0]
    context = tls.secc_context20(store / "secc.chain.pem", store / "secc.key.pem", password,
                                 trust=[store / "trust" / "oem_root.pem", store / "trust" / "v2g_root.pem"],
                                 group=tls.group_for(algorithm_of(leaf.public_key())))
    return Secc20Files(context, ContractService20.from_pki_dir(folder))
