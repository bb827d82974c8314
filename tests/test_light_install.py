"""`pip install .` with no extras is the light station/EV install: a fresh virtualenv gets none of the CSMS's
dependencies (FastAPI, uvicorn, SQLAlchemy, psycopg) nor the `ocpp` package, and the station and EV commands work
there, with the vendored OCPP schemas; the CSMS commands say which extra they need."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import ROOT

pytestmark = pytest.mark.slow  # one virtualenv and one pip install (about 10 s from the pip cache)

EXCLUDED = {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "psycopg-binary", "ocpp", "starlette"}


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with `pip install .` (no extras) of a copy of the sources (no build files in the tree)."""
    base = tmp_path_factory.mktemp("light")
    source = base / "source"
    shutil.copytree(ROOT / "src" / "v2gstack", source / "src" / "v2gstack",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(source)], check=True, timeout=300, capture_output=True)
    return venv


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A program of the virtualenv."""
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, timeout=120)


def test_no_csms_dependency_nor_the_ocpp_package_is_installed(light_venv: Path) -> None:
    listed = run(light_venv, "python", "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check")
    assert listed.returncode == 0, listed.stderr
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()}
    assert "v2gstack" in installed and "cryptography" in installed and "websockets" in installed
    assert not installed & EXCLUDED, installed & EXCLUDED


@pytest.mark.parametrize("command", ["station", "ev"])
def test_station_and_ev_commands_work(light_venv: Path, command: str) -> None:
    result = run(light_venv, "v2gstack", command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: v2gstack {command}" in result.stdout


def test_the_station_reads_its_settings_file(light_venv: Path) -> None:
    result = run(light_venv, "v2gstack", "station", "--config", str(ROOT / "examples" / "station.toml"),
                 "--print-config")
    assert result.returncode == 0, result.stderr
    assert "[station]" in result.stdout


def test_the_vendored_ocpp_schemas_validate_there(light_venv: Path) -> None:
    script = (
        "import importlib.util\n"
        "from v2gstack.ocpp.schemas import default_store\n"
        "from v2gstack.ocpp.versions import Version\n"
        "assert importlib.util.find_spec('ocpp') is None\n"
        "check = default_store()[Version.V201].requests['BootNotification']\n"
        "check({'reason': 'PowerUp', 'chargingStation': {'model': 'm', 'vendorName': 'v'}})\n"
        "try:\n"
        "    check({'reason': 'NoSuchReason', 'chargingStation': {'model': 'm', 'vendorName': 'v'}})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    result = run(light_venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "JsonSchemaValueException"


@pytest.mark.parametrize("command", ["csms", "demo", "trace", "sim"])
def test_the_csms_commands_name_the_extra_they_need(light_venv: Path, command: str) -> None:
    result = run(light_venv, "v2gstack", command, "--help")
    assert result.returncode == 2
    extra = "sim" if command == "sim" else "csms"  # sim: matplotlib and PyYAML beside the csms extra
    assert f"pip install 'v2gstack[{extra}]'" in result.stderr
