"""The project's tools (tools/*.py are scripts, not a package) loaded as modules for the tests that exercise them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from helpers.paths import ROOT


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as the module `name` (once; its worker processes find it in sys.modules under that name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


exi_fuzz = load_tool("exi_fuzz")  # the EXI decoder fuzzer: reference vectors and bit-level stream surgery
secc20_fuzz = load_tool("secc20_fuzz")  # the ISO 15118-20 SECC fuzzer: recorded sessions, semantic mutations
ocpp_schemas = load_tool("ocpp_schemas")  # vendors the official OCPP JSON schemas from the `ocpp` package
slac_fuzz = load_tool("slac_fuzz")  # the SLAC frame parser and state machine fuzzer
ocpp_validators = load_tool("ocpp_validators")  # generates the OCPP validators ahead of time from those schemas
