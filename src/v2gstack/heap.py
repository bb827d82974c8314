"""A serving process's heap after start-up, moved out of the garbage collector's way.

A full (generation 2) collection walks every container object the process holds; after start-up that is mostly
what never dies (modules, the EXI grammars, schema validators, the ORM's mappings, the settings). On this machine
one such walk stopped the CSMS's event loop and database thread for ~60 ms, a few times a minute under load, and a
station process hosting 100 bridged EVSEs for 90-150 ms every few seconds: a late OCPP frame or charge loop for
every session waiting then (docs/PERFORMANCE.md). `gc.freeze()` moves the objects alive at that moment into a
permanent generation that collections skip; what is made later is collected as before. Both serving commands
(`v2gstack csms serve`, `v2gstack station`) call it once started.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exempt every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()
