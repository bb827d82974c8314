"""Round trip (encode -> decode -> same dict) for random valid documents of every message type."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2gstack import exi
from v2gstack.exi.samples import message_roots, random_document

CASES = [(ns, root, False) for ns in exi.NAMESPACES for root in message_roots(ns)]
# signed fragments the stacks actually use
CASES += [(ns, root, True) for ns, root in [
    ("xmldsig", "SignedInfo"), ("iso2", "SalesTariff"), ("iso2", "AuthorizationReq"),
    ("iso2", "MeteringReceiptReq"), ("iso2", "ContractSignatureCertChain"),
    ("iso2", "ContractSignatureEncryptedPrivateKey"), ("iso2", "DHpublickey"), ("iso2", "eMAID"),
    ("iso20", "PnC_AReqAuthorizationMode"), ("iso20", "SignedInstallationData"),
    ("iso20", "MeteringConfirmationReq"), ("iso20", "CertificateInstallationReq"),
]]


def test_every_namespace_has_message_types() -> None:
    for ns in exi.NAMESPACES:
        assert message_roots(ns), ns


@pytest.mark.parametrize(("ns", "root", "fragment"), CASES, ids=[f"{c[0]}:{c[1]}{'~f' if c[2] else ''}" for c in CASES])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_roundtrip(ns: str, root: str, fragment: bool, seed: int) -> None:
    doc = random_document(ns, root, random.Random(seed), fragment=fragment)
    data = exi.encode(ns, doc, fragment=fragment)
    assert exi.decode(ns, data, fragment=fragment) == doc
    # the encoder is deterministic: the decoded document encodes to the same bytes
    assert exi.encode(ns, exi.decode(ns, data, fragment=fragment), fragment=fragment) == data
