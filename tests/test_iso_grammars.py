"""The grammars a serving process loads at start (iso15118/grammars.py), before freezing its heap."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from v2gstack.exi import codec
from v2gstack.iso15118 import load_grammars


def test_the_families_grammars_are_loaded_with_the_handshake_and_signatures() -> None:
    """'iso20' stands for the -20 common, AC and DC namespaces (what a -20 SECC serves); each key is loaded once."""
    keys = load_grammars(["iso20", "din", "iso20"])
    assert keys == ["appHand", "xmldsig", "iso20", "iso20_ac", "iso20_dc", "din"]
    assert all(k in codec._cache for k in keys)


def test_an_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'iso3'"):
        load_grammars(["iso3"])


def test_a_started_process_keeps_its_grammars_out_of_full_collections() -> None:
    """What `v2gstack station` does once started (in a child process: freezing is for good): the -20 grammars
    loaded, then the heap frozen, so a full collection no longer walks them."""
    script = (
        "import gc\n"
        "from v2gstack.heap import freeze_startup_heap\n"
        "from v2gstack.iso15118 import load_grammars\n"
        "load_grammars(['iso20'])\n"
        "before = len(gc.get_objects())\n"
        "freeze_startup_heap()\n"
        "print(before, len(gc.get_objects()), gc.get_freeze_count())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    before, after, frozen = map(int, out)
    assert before > 10_000 and after < 100 and frozen > 10_000
    assert gc.get_freeze_count() == 0  # this process is left as it was
