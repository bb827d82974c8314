"""Vendor the official OCPP JSON schemas (1.6, 2.0.1, 2.1) into the package, from the installed `ocpp` package.

The `ocpp` package ships the Open Charge Alliance's schema files unmodified; v2gstack validates every message with
them at run time but does not depend on that package (it is a test-only peer). This tool copies the files byte for
byte into src/v2gstack/ocpp/schema_files/<version>/schemas/, removes files the package no longer has, and writes
SOURCE.json (package version, SHA-256 of every file) beside the package's license. `--check` changes nothing and
exits 1 when the vendored copy differs from the installed package.

    python tools/ocpp_schemas.py            # refresh the vendored copy
    python tools/ocpp_schemas.py --check    # is it what the installed package ships?
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "src" / "v2gstack" / "ocpp" / "schema_files"
VERSIONS = ("v16", "v201", "v21")


def package_root() -> Path:
    """Where the installed `ocpp` package lives (found without importing it)."""
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `ocpp` package is not installed (pip install '.[test]')")
    return Path(next(iter(spec.submodule_search_locations)))


def wanted(source: Path) -> dict[str, bytes]:
    """Relative path -> content of every schema file the package ships, plus its license and SOURCE.json."""
    files: dict[str, bytes] = {}
    for version in VERSIONS:
        for path in sorted((source / version / "schemas").glob("*.json")):
            files[f"{version}/schemas/{path.name}"] = path.read_bytes()
    dist = importlib.metadata.distribution("ocpp")
    license_file = next((f for f in dist.files or [] if f.name.startswith("LICENSE")), None)
    if license_file is not None:
        files["LICENSE.ocpp-package"] = Path(str(dist.locate_file(license_file))).read_bytes()
    source_info = {
        "from": "the `ocpp` package (PyPI), which ships the Open Charge Alliance's JSON schemas unmodified",
        "package_version": dist.version,
        "tool": "tools/ocpp_schemas.py",
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name.endswith(".json")},
    }
    files["SOURCE.json"] = (json.dumps(source_info, indent=1, sort_keys=True) + "\n").encode()
    return files


def present(dest: Path) -> dict[str, bytes]:
    """Relative path -> content of what is vendored now."""
    if not dest.is_dir():
        return {}
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    """Refresh (or with --check, compare) the vendored schemas."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on any difference")
    parser.add_argument("--dest", type=Path, default=DEST, help="the vendored folder")
    args = parser.parse_args(argv)
    want, have = wanted(package_root()), present(args.dest)
    changed = sorted(name for name in want.keys() | have.keys() if want.get(name) != have.get(name))
    if args.check:
        for name in changed:
            print(f"differs: {name}")
        print(f"{len(want)} files, {len(changed)} differ")
        return 1 if changed else 0
    if args.dest.exists():
        shutil.rmtree(args.dest)
    for name, data in want.items():
        target = args.dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"wrote {len(want)} files to {args.dest} ({len(changed)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
