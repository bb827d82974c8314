"""Where things are: the repository, the shared folder (schemas, reference vectors) and the test data."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("V2GSTACK_SHARED", ROOT.parent / "shared"))
SCHEMAS = SHARED / "schemas" / "iso15118"
VECTORS = SHARED / "vectors" / "exi-reference.jsonl"
GENERATED_VECTORS = ROOT / "tests" / "data" / "exi-generated.jsonl"
INTEROP_ASSETS = ROOT / "tests" / "interop"  # files run by other interpreters (Node.js peers, reference scripts)
