"""Byte-exactness: every reference vector decodes to its JSON and its JSON encodes to its bytes."""

from __future__ import annotations

import json

import pytest
from helpers.paths import GENERATED_VECTORS
from helpers.vectors import load_reference_vectors

from v2gstack import exi

REFERENCE = load_reference_vectors()


def _id(v: dict) -> str:
    root = next(iter(v["json"]))
    if root == "V2G_Message":
        root = next(iter(v["json"][root]["Body"]))
    return f"{v['ns']}:{root}"


@pytest.mark.skipif(not REFERENCE, reason="../shared/vectors not found (set V2GSTACK_SHARED)")
@pytest.mark.parametrize("vector", REFERENCE, ids=[_id(v) for v in REFERENCE])
def test_reference_vector(vector: dict) -> None:
    data = bytes.fromhex(vector["exi"])
    assert exi.decode(vector["ns"], data, fragment=vector["fragment"]) == vector["json"]
    assert exi.encode(vector["ns"], vector["json"], fragment=vector["fragment"]).hex() == vector["exi"]


def _generated() -> list[dict]:
    if not GENERATED_VECTORS.exists():
        return []
    return [json.loads(line) for line in GENERATED_VECTORS.read_text().splitlines() if line.strip()]


GENERATED = _generated()
# the reference codec has no JSON binding for -20 WPT and ACDP, so it cannot make vectors for them
REFERENCE_NAMESPACES = [ns for ns in exi.NAMESPACES if ns not in ("iso20_wpt", "iso20_acdp")]


def test_generated_vectors_cover_every_namespace_and_message() -> None:
    assert GENERATED, "tests/data/exi-generated.jsonl is missing: run tools/gen_ref_vectors.py"
    assert {v["ns"] for v in GENERATED} == set(REFERENCE_NAMESPACES)
    # every -2 message type; DIN minus the six whose JSON the reference codec cannot bind (certificate
    # messages, PaymentDetailsReq, ChargeParameterDiscoveryRes: tools/gen_ref_vectors.py prints why)
    for ns, least in (("iso2", 34), ("din", 28)):
        bodies = {next(iter(v["json"]["V2G_Message"]["Body"])) for v in GENERATED
                  if v["ns"] == ns and not v["fragment"]}
        assert len(bodies) >= least, (ns, sorted(bodies))


@pytest.mark.parametrize("ns", REFERENCE_NAMESPACES)
def test_generated_vectors(ns: str) -> None:
    """Vectors made by the reference stack's codec (EXIficient) from documents of every message type."""
    vectors = [v for v in GENERATED if v["ns"] == ns]
    assert vectors
    failures = []
    for v in vectors:
        data = bytes.fromhex(v["exi"])
        got = exi.encode(ns, v["json"], fragment=v["fragment"]).hex()
        back = exi.decode(ns, data, fragment=v["fragment"])
        if got != v["exi"] or back != v["json"]:
            failures.append(next(iter(v["json"])))
    assert not failures, f"{len(failures)}/{len(vectors)} differ: {sorted(set(failures))[:20]}"
