"""The serving process's heap after start-up, moved out of the garbage collector's way.

A full (generation 2) collection walks every container object the process holds; after start-up that is mostly
what never dies (modules, schema validators, the ORM's mappings, the settings), and on this machine one such walk
stopped the CSMS's event loop and database thread for ~60 ms, a few times a minute under load: a latency spike for
every station waiting then (docs/PERFORMANCE.md). `gc.freeze()` moves the objects alive at that moment into a
permanent generation that collections skip; what is made later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exempt every object alive now from later collections (call once, after start-up)."""
    gc.collect()
    gc.freeze()
