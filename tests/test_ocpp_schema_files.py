"""The vendored OCPP JSON schemas are byte for byte those the `ocpp` package ships (tools/ocpp_schemas.py), and the
engine validates with the vendored copy, not with the package's."""

from __future__ import annotations

from pathlib import Path

from helpers.tools import ocpp_schemas

from v2gstack.ocpp.schemas import SCHEMA_ROOT, default_store, ocpp_package_schema_root
from v2gstack.ocpp.versions import Version


def test_the_vendored_schemas_are_the_packages() -> None:
    assert ocpp_schemas.main(["--check"]) == 0
    assert len(list(SCHEMA_ROOT.glob("v*/schemas/*.json"))) == len(
        [p for v in ("v16", "v201", "v21") for p in (ocpp_package_schema_root() / v / "schemas").glob("*.json")])


def test_the_check_sees_a_changed_file(tmp_path: Path) -> None:
    assert ocpp_schemas.main(["--dest", str(tmp_path / "copy")]) == 0
    victim = tmp_path / "copy" / "v201" / "schemas" / "AuthorizeRequest.json"
    victim.write_bytes(victim.read_bytes().replace(b'"idToken"', b'"idTokenX"', 1))
    assert ocpp_schemas.main(["--check", "--dest", str(tmp_path / "copy")]) == 1


def test_the_engine_reads_the_vendored_copy() -> None:
    store = default_store()
    assert store.root == SCHEMA_ROOT
    assert store[Version.V21].directory.is_relative_to(SCHEMA_ROOT)
    assert "BootNotification" in store[Version.V16].actions
