"""The layer contract of ARCHITECTURE.md is live: lint-imports keeps the package as it is, and breaks as soon as a
lower layer imports a higher one (checked on a copy of the package with one upward import added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(package_root: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts, over the `v2gstack` package found under `package_root`."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of src/v2gstack under tmp_path/src (the editable install is not what lint-imports sees then)."""
    shutil.copytree(ROOT / "src" / "v2gstack", tmp_path / "src" / "v2gstack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src"


def test_the_package_keeps_its_layers(package_copy: Path, tmp_path: Path) -> None:
    result = lint(package_copy, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "upward"), [
    ("exi/_upward.py", "from v2gstack.iso15118 import sdp"),  # the codec reaching into a protocol
    ("ocpp/_upward.py", "from v2gstack.station import settings"),  # the engine reaching into the station
    ("trace/records_upward.py", "import v2gstack.csms.store"),  # the record schema must stay below the CSMS
    ("station/_upward.py", "from v2gstack.csms import store"),  # station and CSMS are independent
    ("iso15118/_upward.py", "from v2gstack.ocpp import engine"),  # ISO and OCPP meet only in the station
    ("grid/_upward.py", "from v2gstack.csms import store"),  # the CSMS calls the grid, not the reverse
])
def test_an_upward_import_breaks_the_contract(package_copy: Path, tmp_path: Path, module: str, upward: str) -> None:
    target = package_copy / "v2gstack" / module
    if not target.parent.exists():  # a layer the contract already names (optional) before its package exists
        target.parent.mkdir()
        (target.parent / "__init__.py").write_text('"""A package of the contract."""\n')
    target.write_text(f'"""An import against the layers."""\n\n{upward}  # noqa: F401\n')
    if module.startswith("trace/records_"):  # make it part of the low record schema: records imports it
        records = package_copy / "v2gstack" / "trace" / "records.py"
        records.write_text(records.read_text() + "\nfrom . import records_upward  # noqa: E402, F401\n")
    result = lint(package_copy, tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout
