"""The Python source of an OCPP schema's validator: fastjsonschema's code, minus the schema copy in each error.

fastjsonschema writes, into every `raise JsonSchemaValueException(...)`, a literal copy of the (sub)schema being
checked with its `$ref`s expanded (`definition=`); for the OCPP 2.1 schemas that is 75-90 % of the code (380 KB of
source for TransactionEventRequest, 91 KB without). Nothing reads it (the engine maps `rule`, `name` and `message` to
an OCPP-J error code), so it becomes `definition=None`; every check, message, path, rule and value stays as
fastjsonschema wrote it. `tools/ocpp_validators.py` writes this source ahead of time into `ocpp/generated/`, so a
station or a CSMS never compiles a schema at run time.
"""

from __future__ import annotations

import ast
from typing import Any

import fastjsonschema
from fastjsonschema.ref_resolver import RefResolver

ENTRY = "validate"  # every generated module binds its schema's validator to this name
_EXCEPTION = "JsonSchemaValueException"


def entry_function(schema: dict[str, Any]) -> str:
    """The name fastjsonschema gives the validator of the schema's root (derived from its `$id` / `id`)."""
    return str(RefResolver.from_schema(schema, store={}).get_scope_name())


def _without_definitions(code: str) -> str:
    """`code` with the `definition=` argument of every JsonSchemaValueException replaced by None (found by parsing the
    code, then cut out of the text so the rest stays byte for byte fastjsonschema's)."""
    spans: list[tuple[int, int, int]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == _EXCEPTION:
            for kw in node.keywords:
                if kw.arg == "definition":
                    value = kw.value
                    if value.lineno != value.end_lineno or value.end_col_offset is None:
                        raise ValueError(f"a definition spanning lines {value.lineno}-{value.end_lineno}")
                    spans.append((value.lineno, value.col_offset, value.end_col_offset))
    lines = code.split("\n")
    for lineno, start, end in sorted(spans, reverse=True):  # offsets are UTF-8 byte offsets within the line
        raw = lines[lineno - 1].encode()
        lines[lineno - 1] = (raw[:start] + b"None" + raw[end:]).decode()
    return "\n".join(lines)


def validator_source(schema: dict[str, Any]) -> str:
    """The validator's code: fastjsonschema's (no defaults filled in: validation must never change a payload),
    without the schema copies, ending with `validate = <the root's function>`."""
    code = _without_definitions(fastjsonschema.compile_to_code(schema, use_default=False)).rstrip() + "\n"
    root = entry_function(schema)  # `validate` already for a schema without an id (1.6)
    return code if root == ENTRY else f"{code}\n\n{ENTRY} = {root}\n"
