"""pytest configuration. Shared helpers live in the `helpers` package beside this file, imported as
`from helpers.csms import running_csms` (pytest puts `tests/` on sys.path: `pythonpath` in pyproject.toml):
paths and vectors (the shared folder, reference EXI vectors), wait (`until`), ocpp (throw-away PKI, raw peers,
payloads, TLS probes), peers (`TheirStation`), station (a CSMS made with the `ocpp` package; our station), csms
(databases, our CSMS and its API), bridge, memory_link and memory_bridge (the OCPP link and the bridge in memory),
ocsp, pnc, refcodec, and josev/netns/interop/interop20/node_peer for the interop tests (their non-Python files stay
in tests/interop/), tools (scripts of tools/ loaded as modules)."""

from v2gstack.iso15118 import load_grammars


def pytest_sessionstart(session: object) -> None:
    """Write the ISO 15118 codec's functions once, before any test, as a serving process does at start: a test of a
    message timeout of a few tens of ms must not see the first use of a message's code being written."""
    load_grammars(["din", "iso2", "iso20"])
