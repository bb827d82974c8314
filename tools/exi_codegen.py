"""Regenerate src/v2gstack/exi/generated/ from the ISO 15118 XSDs (`make exi-codegen`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.exi.compiler.emit import generate_all  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schemas", type=Path, default=ROOT.parent / "shared" / "schemas" / "iso15118")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "v2gstack" / "exi" / "generated")
    args = ap.parse_args()
    for path in generate_all(args.schemas, args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
