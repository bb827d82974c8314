"""SQLite WAL checkpoints beside the writer, so that a commit does not wait for one.

In WAL mode SQLite copies the log back into the database file (a checkpoint: page writes and an fsync of the file)
inside the commit that takes the log past `wal_autocheckpoint` pages (1,000 by default, ~4 MB). At 2,000
TransactionEvents/s that is a few times a second, and on a shared disk one such checkpoint took 15-110 ms: every
event waiting on that commit, and every event queued behind it, saw it in its latency (docs/PERFORMANCE.md).

The WalCheckpointer runs PASSIVE checkpoints on its own thread and connection after commits (at most every
`interval` seconds): a passive checkpoint takes no lock a writer waits for, so the writer goes on appending to the
log meanwhile (sqlite3 releases the GIL while SQLite works). The writer's own automatic checkpoint stays on: it then
finds the log (nearly) copied already, so its share is a few pages, and it is still what lets SQLite restart the log
from its beginning. Durability is unchanged: commits are fsynced to the log (synchronous=FULL), the checkpoint fsyncs
the database file before the log is reused.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def checkpointable(engine: Engine) -> bool:
    """Whether the engine is SQLite on a file (WAL mode; an in-memory database has no log)."""
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


class WalCheckpointer:
    """A thread that runs `PRAGMA wal_checkpoint(PASSIVE)` after commits, at most every `interval` seconds."""

    def __init__(self, engine: Engine, interval: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self.checkpoints = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="csms-wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """A write transaction committed: the log has grown (called by the writer; costs only a flag)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (the last checkpoint it began completes first)."""
        self._closing.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        connection: Any = None
        try:
            connection = self.engine.raw_connection()
            while True:
                self._wake.wait()
                if self._closing.is_set():
                    return
                self._wake.clear()
                try:
                    cursor = connection.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.fetchall()
                    cursor.close()
                    self.checkpoints += 1
                except Exception as e:  # a failed checkpoint loses nothing: the writer's own one still runs
                    log.warning("WAL checkpoint failed: %s", e)
                if self._closing.wait(self.interval):
                    return
        finally:
            if connection is not None:
                connection.close()
