"""The OCPP validators generated ahead of time (tools/ocpp_validators.py) are current, the engine uses them, and they
judge every payload exactly as fastjsonschema's run-time compile of the same schema does (same outcome, message, path,
rule and value); only the schema copy inside each error is left out."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from helpers.ocpp import BOOT, NOW, TRANSACTION_EVENT
from helpers.tools import ocpp_validators

from v2gstack.ocpp.schemas import SCHEMA_ROOT, SchemaStore, default_store
from v2gstack.ocpp.versions import Version

GENERATED = Path(ocpp_validators.DEST)


def test_the_generated_validators_are_current() -> None:
    assert ocpp_validators.main(["--check"]) == 0
    schemas = sorted(SCHEMA_ROOT.glob("v*/schemas/*.json"))
    modules = sorted(p for p in GENERATED.glob("v*/*.py") if p.name != "__init__.py")
    assert [(p.parent.parent.name, p.stem) for p in schemas] == [(p.parent.name, p.stem) for p in modules]


def test_the_check_sees_a_hand_edit(tmp_path: Path) -> None:
    schemas, dest = tmp_path / "schemas", str(tmp_path / "generated")
    (schemas / "v201" / "schemas").mkdir(parents=True)
    shutil.copy(SCHEMA_ROOT / "v201" / "schemas" / "AuthorizeRequest.json", schemas / "v201" / "schemas")
    assert ocpp_validators.main(["--schemas", str(schemas), "--dest", dest]) == 0
    assert ocpp_validators.main(["--check", "--schemas", str(schemas), "--dest", dest]) == 0
    victim = tmp_path / "generated" / "v201" / "AuthorizeRequest.py"
    assert victim.read_text() == (GENERATED / "v201" / "AuthorizeRequest.py").read_text()
    victim.write_text(victim.read_text().replace("must be object", "must be an object", 1))
    assert ocpp_validators.main(["--check", "--schemas", str(schemas), "--dest", dest]) == 1


def test_the_engine_imports_the_generated_code_and_another_folder_compiles_its_own(tmp_path: Path) -> None:
    te = default_store()[Version.V21].requests["TransactionEvent"]
    assert te.__module__ == "v2gstack.ocpp.generated.v21.TransactionEventRequest"
    shutil.copytree(SCHEMA_ROOT, tmp_path / "schemas")
    other = SchemaStore(tmp_path / "schemas")[Version.V21].requests["TransactionEvent"]
    assert other.__module__ != te.__module__
    bad = {**TRANSACTION_EVENT, "seqNo": -1}
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as mine:
        te(bad)
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as theirs:
        other(bad)
    assert (mine.value.message, mine.value.rule) == (theirs.value.message, theirs.value.rule) == (
        "data.seqNo must be bigger than or equal to 0.0", "minimum")


def _changed(payload: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    """A deep copy of `payload` with the value at `path` replaced (or deleted when `value` is DELETE)."""
    out = copy.deepcopy(payload)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


DELETE = object()
METER = [{"timestamp": NOW, "sampledValue": [{"value": 11.5, "measurand": "Power.Active.Import"}]}]
TE = {**TRANSACTION_EVENT, "meterValue": METER, "evse": {"id": 1, "connectorId": 1}}
VALID = 4
CASES: list[tuple[str, str, dict[str, Any]]] = [  # (version folder, schema, payload): the VALID valid ones first
    ("v21", "TransactionEventRequest", TE),
    ("v201", "TransactionEventRequest", TE),
    ("v201", "BootNotificationRequest", BOOT),
    ("v16", "BootNotification", {"chargePointVendor": "V2G", "chargePointModel": "M1"}),
    ("v21", "TransactionEventRequest", _changed(TE, ["seqNo"], -1)),
    ("v21", "TransactionEventRequest", _changed(TE, ["seqNo"], 1.5)),
    ("v21", "TransactionEventRequest", _changed(TE, ["timestamp"], "yesterday")),
    ("v21", "TransactionEventRequest", _changed(TE, ["triggerReason"], "Whim")),
    ("v21", "TransactionEventRequest", _changed(TE, ["transactionInfo"], DELETE)),
    ("v21", "TransactionEventRequest", _changed(TE, ["transactionInfo", "colour"], "red")),
    ("v21", "TransactionEventRequest", _changed(TE, ["transactionInfo", "transactionId"], "x" * 37)),
    ("v21", "TransactionEventRequest", _changed(TE, ["meterValue"], [])),
    ("v21", "TransactionEventRequest", _changed(TE, ["meterValue", 0, "sampledValue", 0, "value"], "11")),
    ("v21", "TransactionEventRequest", _changed(TE, ["evse", "id"], True)),
    ("v21", "TransactionEventRequest", _changed(TE, ["customData"], {"note": 1})),
    ("v201", "TransactionEventRequest", _changed(TE, ["meterValue", 0, "sampledValue"], [{}])),
    ("v201", "BootNotificationRequest", _changed(BOOT, ["chargingStation", "model"], "M" * 21)),
    ("v16", "BootNotification", {"chargePointVendor": "V2G"}),
    ("v16", "BootNotification", {"chargePointVendor": "V2G", "chargePointModel": "M1", "x": 1}),
    ("v16", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": 7}),
]


@pytest.mark.parametrize(("index", "folder", "schema", "payload"), [(i, *case) for i, case in enumerate(CASES)])
def test_a_generated_validator_judges_as_fastjsonschemas_compile(index: int, folder: str, schema: str,
                                                                 payload: Any) -> None:
    definition = json.loads((SCHEMA_ROOT / folder / "schemas" / f"{schema}.json").read_text(encoding="utf-8-sig"))
    reference = fastjsonschema.compile(definition, use_default=False)
    store = default_store()[Version.parse({"v16": "1.6", "v201": "2.0.1", "v21": "2.1"}[folder])]
    action = schema.removesuffix("Request") if folder != "v16" else schema
    generated = store.requests[action]

    def verdict(validate: Any) -> tuple[Any, ...]:
        before = copy.deepcopy(payload)
        try:
            result = validate(payload)
        except fastjsonschema.JsonSchemaValueException as e:
            return ("refused", e.message, e.name, e.rule, json.dumps(e.value, sort_keys=True))
        assert payload == before  # validation never changes a payload
        return ("accepted", result)

    assert verdict(generated) == verdict(reference)
    assert verdict(generated)[0] == ("accepted" if index < VALID else "refused")
