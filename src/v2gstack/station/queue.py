"""The durable offline queue: transaction-related messages kept in SQLite until the CSMS has answered them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One message waiting to be sent: its queue position, action and payload."""

    seq: int
    action: str
    payload: dict[str, Any]


class OfflineQueue:
    """FIFO on disk (SQLite, synchronous=FULL): push before sending, remove only once the CSMS answered.

    A message therefore survives a dropped connection and a station restart; it is sent again until answered.
    `":memory:"` gives a volatile queue (for tests that do not care).
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " action TEXT NOT NULL, payload TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS open_tx (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes inside happen in one SQLite transaction: durable together at its end (one sync, not one per
        write), none of them if it raises."""
        if self._db.in_transaction:  # already inside one
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def push(self, action: str, payload: dict[str, Any]) -> int:
        """Append a message (durable when this returns); its queue position."""
        cur = self._db.execute("INSERT INTO queue (action, payload) VALUES (?, ?)",
                               (action, json.dumps(payload, separators=(",", ":"))))
        return int(cur.lastrowid or 0)

    def peek(self) -> QueuedMessage | None:
        """The oldest message, or None when the queue is empty."""
        row = self._db.execute("SELECT seq, action, payload FROM queue ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else QueuedMessage(row[0], row[1], json.loads(row[2]))

    def remove(self, seq: int) -> None:
        """Forget a message the CSMS has answered (or that is given up)."""
        self._db.execute("DELETE FROM queue WHERE seq = ?", (seq,))

    def items(self) -> list[QueuedMessage]:
        """Everything waiting, oldest first."""
        rows = self._db.execute("SELECT seq, action, payload FROM queue ORDER BY seq").fetchall()
        return [QueuedMessage(r[0], r[1], json.loads(r[2])) for r in rows]

    def first_seq(self) -> int:
        """The oldest waiting message's position (0 when the queue is empty), without reading its payload."""
        return int(self._db.execute("SELECT COALESCE(MIN(seq), 0) FROM queue").fetchone()[0])

    def last_seq(self) -> int:
        """The newest waiting message's position (0 when the queue is empty)."""
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM queue").fetchone()[0])

    def __len__(self) -> int:
        """Number of waiting messages."""
        return int(self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def save_transaction(self, tx_id: str, state: dict[str, Any]) -> None:
        """Remember an open transaction (its next seqNo) so that a restarted station can end it."""
        self._db.execute("INSERT OR REPLACE INTO open_tx (id, state) VALUES (?, ?)", (tx_id, json.dumps(state)))

    def forget_transaction(self, tx_id: str) -> None:
        """The transaction has ended."""
        self._db.execute("DELETE FROM open_tx WHERE id = ?", (tx_id,))

    def open_transactions(self) -> list[dict[str, Any]]:
        """Transactions that were open when the station last stopped."""
        return [json.loads(r[0]) for r in self._db.execute("SELECT state FROM open_tx ORDER BY rowid")]

    def save_state(self, key: str, value: Any) -> None:
        """Keep a small JSON value across restarts (e.g. meter registers)."""
        self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def load_state(self, key: str) -> Any:
        """A value saved by save_state, or None."""
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()
