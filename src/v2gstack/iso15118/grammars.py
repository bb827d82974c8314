"""The EXI grammars of the protocols a process serves, loaded at start rather than by the first session.

The codec loads a namespace's grammars the first time it is used (tens of thousands of objects for -20) and writes
each grammar's decoder and encoder the first time that grammar is used (a few ms each). A serving process does both
once started, so that no message of its first session waits for it (a charge loop's answer is due within tens of
ms), and so that they are among what `v2gstack.heap.freeze_startup_heap` exempts from full garbage collections.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..exi.codec import namespace

NAMESPACES: dict[str, tuple[str, ...]] = {
    "din": ("din",), "iso2": ("iso2",), "iso20": ("iso20", "iso20_ac", "iso20_dc"),
    "iso20_ac": ("iso20", "iso20_ac"), "iso20_dc": ("iso20", "iso20_dc"),
}
"""The EXI namespaces a protocol family's sessions use (besides the handshake's and XML signatures')."""


def load_grammars(families: Iterable[str]) -> list[str]:
    """Load the grammars of the handshake, XML signatures and these protocol families ('din', 'iso2', 'iso20');
    returns the namespaces loaded. ValueError for an unknown family."""
    keys = ["appHand", "xmldsig"]
    for family in families:
        if family not in NAMESPACES:
            raise ValueError(f"unknown protocol {family!r} (known: {', '.join(NAMESPACES)})")
        keys += [k for k in NAMESPACES[family] if k not in keys]
    for key in keys:
        namespace(key).specialize_all()
    return keys
