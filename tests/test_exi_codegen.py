"""The committed grammar modules are exactly what the compiler makes from the XSDs today."""

from __future__ import annotations

import pytest
from helpers.paths import ROOT, SCHEMAS

from v2gstack.exi.compiler.emit import NAMESPACES, generate

GENERATED_DIR = ROOT / "src" / "v2gstack" / "exi" / "generated"


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason="../shared/schemas not found (set V2GSTACK_SHARED)")
@pytest.mark.parametrize("ns", list(NAMESPACES))
def test_committed_grammar_matches_fresh_generation(ns: str) -> None:
    committed = (GENERATED_DIR / f"{ns}.py").read_text()
    assert committed == generate(ns, SCHEMAS), f"run `make exi-codegen`: generated/{ns}.py is stale or edited"
