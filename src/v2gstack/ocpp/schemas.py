"""The official OCPP JSON schemas (1.6, 2.0.1, 2.1) and their validators, loaded lazily per action and cached.

The schema files are the Open Charge Alliance's, vendored byte for byte in `schema_files/` from the `ocpp` package
(which ships them unmodified; `tools/ocpp_schemas.py` copies them and `--check` compares), so validation needs no
third-party OCPP package at run time. Their validators are generated ahead of time (`tools/ocpp_validators.py`, one
module per schema in `generated/`) and imported the first time an action is met: nothing is compiled at run time (a
2.1 schema's compile took ~0.2 s and ~18 MB for an instant). Any directory with the same layout (`v16/schemas`,
`v201/schemas`, `v21/schemas`) can be used instead; its schemas are then compiled on first use, to the same code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema

from .errors import ErrorCode, PayloadInvalid
from .validator_code import ENTRY, validator_source
from .versions import Version

Validator = Callable[[Any], Any]
Loader = Callable[[str], Validator]  # schema file name -> its validator

SCHEMA_ROOT = Path(__file__).resolve().parent / "schema_files"  # the vendored official schemas
GENERATED = f"{__package__}.generated"  # their validators, generated ahead of time (tools/ocpp_validators.py)
_DIRS: dict[Version, str] = {Version.V16: "v16", Version.V201: "v201", Version.V21: "v21"}

# JSON-schema keyword that failed -> OCPP-J error code. Definitions (OCPP-J 1.6 table 7, 2.0.1/2.1 part 4):
# Type = "violates data type constraints", Occurrence = "violates occurrence constraints" (required fields,
# array cardinality), Property = "contains an invalid value" (enum, length, range, pattern, format).
_RULE_CODES: dict[str, ErrorCode] = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "additionalItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "uniqueItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minProperties": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxProperties": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "const": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}
# A property the schema does not define ("additionalProperties": false) breaks the message's structure:
# 2.x calls that ProtocolError ("not conform the PDU structure"), 1.6 puts it under FormationViolation
# ("syntactically incorrect or not conform the PDU structure").
_UNKNOWN_PROPERTY_CODE: dict[Version, ErrorCode] = {
    Version.V16: ErrorCode.FORMAT_VIOLATION,
    Version.V201: ErrorCode.PROTOCOL_ERROR,
    Version.V21: ErrorCode.PROTOCOL_ERROR,
}


def ocpp_package_schema_root() -> Path:
    """Where the installed `ocpp` package keeps its schema directories (found without importing it): the source
    of the vendored copy, for the tool and the tests that compare with it."""
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the OCPP JSON schemas come from the `ocpp` package, which is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def schema_error(exc: fastjsonschema.JsonSchemaValueException, version: Version, what: str) -> PayloadInvalid:
    """Turn a fastjsonschema failure into the PayloadInvalid carrying the OCPP-J code for it."""
    rule = exc.rule or ""
    if rule == "additionalProperties":
        code = _UNKNOWN_PROPERTY_CODE[version]
    else:
        code = _RULE_CODES.get(rule, ErrorCode.FORMAT_VIOLATION)
    path = (exc.name or "data").replace("data", "payload", 1)
    message = (exc.message or "").replace("data", "payload", 1)
    return PayloadInvalid(code, f"{what}: {message}", {"path": path, "rule": rule})


class _LazyValidators(dict[str, Validator]):
    """action -> validator; loads the schema's validator the first time its action is looked up."""

    def __init__(self, load: Loader, names: dict[str, str]) -> None:
        super().__init__()
        self._load = load
        self._names = names  # action -> file name

    def __missing__(self, action: str) -> Validator:
        name = self._names.get(action)
        if name is None:
            raise KeyError(action)
        validator = self[action] = self._load(name)
        return validator


def _generated_loader(version: Version) -> Loader:
    """Validators from the modules generated ahead of time for the vendored schemas (`generated/v21/X.py`)."""

    def load(name: str) -> Validator:
        module = importlib.import_module(f"{GENERATED}.{_DIRS[version]}.{name[:-5]}")
        return getattr(module, ENTRY)  # type: ignore[no-any-return]

    return load


def _compiling_loader(directory: Path) -> Loader:
    """Validators compiled on first use from the schemas of another directory (the same code as generated)."""

    def load(name: str) -> Validator:
        with open(directory / name, encoding="utf-8-sig") as f:  # some published schemas carry a BOM
            schema = json.load(f)
        namespace: dict[str, Any] = {}
        exec(compile(validator_source(schema), str(directory / name), "exec"), namespace)
        return namespace[ENTRY]  # type: ignore[no-any-return]

    return load


class VersionSchemas:
    """All request and response schemas of one OCPP version."""

    def __init__(self, version: Version, directory: Path, *, generated: bool = False) -> None:
        self.version = version
        self.directory = directory
        files = sorted(p.name for p in directory.glob("*.json"))
        requests: dict[str, str] = {}
        responses: dict[str, str] = {}
        for name in files:
            stem = name[:-5]
            if stem.endswith("Response"):
                responses[stem[:-8]] = name
            elif version is not Version.V16 and stem.endswith("Request"):
                requests[stem[:-7]] = name
            else:  # 1.6 names requests after the action; 2.1 does the same for SEND-only messages
                requests.setdefault(stem, name)
        self.actions: frozenset[str] = frozenset(requests)
        load = _generated_loader(version) if generated else _compiling_loader(directory)
        self.requests = _LazyValidators(load, requests)
        self.responses = _LazyValidators(load, responses)

    def warm(self, actions: list[str] | None = None) -> None:
        """Load the validators of `actions` (default: all) now rather than on first use."""
        for action in actions if actions is not None else sorted(self.actions):
            self.requests[action]
            if action in self.responses._names:
                self.responses[action]


class SchemaStore:
    """The schemas of every version under one root directory; versions are indexed on first use."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else SCHEMA_ROOT
        self._versions: dict[Version, VersionSchemas] = {}

    def __getitem__(self, version: Version) -> VersionSchemas:
        """The schemas of `version`."""
        schemas = self._versions.get(version)
        if schemas is None:
            directory = self.root / _DIRS[version] / "schemas"
            if not directory.is_dir():
                raise FileNotFoundError(f"no OCPP {version.value} schemas under {self.root}")
            schemas = self._versions[version] = VersionSchemas(version, directory,
                                                               generated=self.root == SCHEMA_ROOT)
        return schemas


_default: SchemaStore | None = None


def default_store() -> SchemaStore:
    """The process-wide store over the vendored schemas (loaded validators are shared)."""
    global _default
    if _default is None:
        _default = SchemaStore()
    return _default
