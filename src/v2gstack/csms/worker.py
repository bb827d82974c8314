"""One database thread for the CSMS: operations from many stations are batched into one transaction per round.

The event loop never blocks on the database. Each `await worker.run(op, ...)` returns only after the transaction
that holds the operation has committed, so a CALLRESULT is sent for a message only once it is durable. An operation
that fails (an unknown station, a bad value) fails alone: the batch is then re-run with a SAVEPOINT around each
operation, its caller gets the exception, and the others in the batch still commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


class StoreWorker:
    """Runs `op(session, *args)` functions on a dedicated thread, up to `max_batch` per database transaction."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="csms-store", daemon=True)
        self._thread.start()
        self.batches = 0
        self.operations = 0
        # (operations, seconds) of each committed batch, called on the database thread (csms/metrics.py)
        self.commit_listeners: list[Callable[[int, float], None]] = []

    @property
    def queued(self) -> int:
        """Operations waiting for the database thread (approximate)."""
        return self._queue.qsize()

    def submit(self, op: Callable[..., T], *args: Any) -> Future[T]:
        """Queue an operation; the Future completes after its transaction commits."""
        fut: Future[T] = Future()
        self._queue.put((op, args, fut))
        return fut

    async def run(self, op: Callable[..., T], *args: Any) -> T:
        """Queue an operation and wait (without blocking the loop) until it is committed."""
        return await asyncio.wrap_future(self.submit(op, *args))

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]]) -> None:
        """Run a batch in one transaction, then complete the futures.

        First optimistically without savepoints (the common case: every operation succeeds); if one fails, the
        transaction is rolled back and the batch runs again with a savepoint around each operation, so only the
        failing ones fail.
        """
        started = time.perf_counter()
        try:
            with self.store._sessions() as s, s.begin():
                results = [op(s, *args) for op, args, _ in batch]
        except Exception:
            pass
        else:
            self.batches += 1
            self.operations += len(batch)
            self._committed(len(batch), time.perf_counter() - started)
            for (_, _, fut), value in zip(batch, results, strict=True):
                _settle(fut, True, value)
            return
        outcomes: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self.store._sessions() as s, s.begin():
                for op, args, fut in batch:
                    outcomes.append((fut, *self._one(s, op, args)))
        except Exception as e:  # the commit itself failed: nothing of this batch is durable
            log.error("database commit failed for %d operations: %s", len(batch), e)
            for _, _, fut in batch:
                _settle(fut, False, e)
            return
        self.batches += 1
        self.operations += len(batch)
        self._committed(len(batch), time.perf_counter() - started)
        for fut, ok, value in outcomes:
            _settle(fut, ok, value)

    def _committed(self, operations: int, seconds: float) -> None:
        for listener in self.commit_listeners:
            try:
                listener(operations, seconds)
            except Exception:
                log.exception("commit listener failed")

    @staticmethod
    def _one(s: Session, op: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        try:
            with s.begin_nested():
                return True, op(s, *args)
        except Exception as e:
            return False, e


def _settle(fut: Future[Any], ok: bool, value: Any) -> None:
    """Complete a future unless its waiter gave up (a cancelled await cancels it): the work is committed anyway."""
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except InvalidStateError:
        pass
