"""One database thread for the CSMS: operations from many stations are batched into one transaction per round.

The event loop never blocks on the database. Each `await worker.run(op, ...)` returns only after the transaction
that holds the operation has committed, so a CALLRESULT is sent for a message only once it is durable. An operation
that fails (an unknown station, a bad value) fails alone: the batch is then re-run with a SAVEPOINT around each
operation, its caller gets the exception, and the others in the batch still commit.

A run of the same operation that has a batch form (csms/store_batch.py: TransactionEvents) is written with one
multi-row statement per table instead of one set of statements per operation. Reads go to their own threads and
connections (`await worker.read(op, ...)`), so they never queue behind the writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from .store import Store
from .store_batch import BATCH_FORMS
from .wal import WalCheckpointer, checkpointable

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()
Waiter = Future[Any] | asyncio.Future[Any]  # a thread's (submit) or an event loop's (run) future


class StoreWorker:
    """Runs `op(session, *args)` functions on a dedicated thread, up to `max_batch` per database transaction.

    `batch_forms=False` writes every operation with its own statements (the path before batch forms existed; kept
    for the benchmark's comparison). On SQLite a WalCheckpointer copies the log back beside the writer
    (csms/wal.py); `wal_checkpointer=False` leaves it all to the commits (as before; for the comparison too).
    """

    def __init__(self, store: Store, max_batch: int = 500, *, batch_forms: bool = True, readers: int = 2,
                 wal_checkpointer: bool = True) -> None:
        self.store = store
        self.wal = (WalCheckpointer(store.engine) if wal_checkpointer and checkpointable(store.engine)
                    else None)
        self.max_batch = max_batch
        self.batch_forms = BATCH_FORMS if batch_forms else {}
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="csms-read")
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="csms-store", daemon=True)
        self._thread.start()
        self.batches = 0
        self.operations = 0
        # (operations, seconds) of each committed batch, called on the database thread (csms/metrics.py)
        self.commit_listeners: list[Callable[[int, float], None]] = []
        self.batch_form_operations = 0  # committed operations that went in through a batch form
        self._in_batch_forms = 0

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
        """Queue an operation and wait (without blocking the loop) until it is committed.

        The waiter is an asyncio future of the running loop: the database thread completes all of a batch's waiters
        of one loop with a single `call_soon_threadsafe` (one wake-up of the loop per batch, not one per operation).
        """
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((op, args, fut))
        return await fut

    async def read(self, op: Callable[..., T], *args: Any) -> T:
        """Run a read-only operation in its own transaction on a reader thread: it never waits behind the writes
        (SQLite in WAL mode and PostgreSQL let readers and the writer run at once), and sees what is committed."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self.store.run, op, *args)

    async def alone(self, op: Callable[..., T], *args: Any) -> T:
        """Run a short write in its own transaction on a reader thread, not in a batch: for rows that other CSMS
        nodes lock too (the singleton leases), which a batch would keep locked, and so the other nodes waiting, for
        the whole batch."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self.store.run_write, op, *args)

    def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._readers.shutdown(wait=True)
        if self.wal is not None:
            self.wal.close()

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

    def _commit(self, batch: list[tuple[Callable[..., Any], tuple[Any, ...], Waiter]]) -> None:
        """Run a batch in one transaction, then complete the futures.

        First optimistically without savepoints (the common case: every operation succeeds); if one fails, the
        transaction is rolled back and the batch runs again with a savepoint around each operation, so only the
        failing ones fail.
        """
        started = time.perf_counter()
        try:
            self._in_batch_forms = 0
            with self.store._sessions() as s, s.begin():
                _write_lock_first(s)
                results = self._run_all(s, batch)
        except Exception:
            pass
        else:
            self.batches += 1
            self.operations += len(batch)
            self.batch_form_operations += self._in_batch_forms
            self._committed(len(batch), time.perf_counter() - started)
            _deliver([(fut, True, value) for (_, _, fut), value in zip(batch, results, strict=True)])
            return
        outcomes: list[tuple[Waiter, bool, Any]] = []
        try:
            with self.store._sessions() as s, s.begin():
                _write_lock_first(s)
                for op, args, fut in batch:
                    outcomes.append((fut, *self._one(s, op, args)))
        except Exception as e:  # the commit itself failed: nothing of this batch is durable
            log.error("database commit failed for %d operations: %s", len(batch), e)
            _deliver([(fut, False, e) for _, _, fut in batch])
            return
        self.batches += 1
        self.operations += len(batch)
        self._committed(len(batch), time.perf_counter() - started)
        _deliver(outcomes)

    def _run_all(self, s: Session, batch: list[tuple[Callable[..., Any], tuple[Any, ...], Waiter]]) -> list[Any]:
        """Every operation of a batch, in order; a run of one operation with a batch form goes in one call."""
        results: list[Any] = []
        i = 0
        while i < len(batch):
            op = batch[i][0]
            many = self.batch_forms.get(op)
            if many is None:
                results.append(op(s, *batch[i][1]))
                i += 1
                continue
            j = i + 1
            while j < len(batch) and batch[j][0] is op:
                j += 1
            results.extend(many(s, [args for _, args, _ in batch[i:j]]))
            self._in_batch_forms += j - i
            i = j
        return results

    def _committed(self, operations: int, seconds: float) -> None:
        if self.wal is not None:
            self.wal.committed()
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


def _write_lock_first(s: Session) -> None:
    """A batch reads, then writes: on SQLite its transaction begins IMMEDIATE (waiting for the write lock), since a
    deferred one that read before another connection (the API, the grid control) committed cannot become a writer
    and fails at once with "database is locked". No effect on PostgreSQL."""
    s.connection(execution_options={"sqlite_immediate": True})


def _deliver(outcomes: list[tuple[Waiter, bool, Any]]) -> None:
    """Complete the waiters of a batch: thread futures at once, asyncio futures in one call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Waiter, bool, Any]]] = {}
    for outcome in outcomes:
        fut = outcome[0]
        if isinstance(fut, Future):
            _settle(*outcome)
        else:
            by_loop.setdefault(fut.get_loop(), []).append(outcome)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more; the work is committed anyway
            loop.call_soon_threadsafe(_settle_all, group)


def _settle_all(outcomes: list[tuple[Waiter, bool, Any]]) -> None:
    for outcome in outcomes:
        _settle(*outcome)


def _settle(fut: Waiter, ok: bool, value: Any) -> None:
    """Complete a future unless its waiter gave up (a cancelled await cancels it): the work is committed anyway."""
    if fut.done():
        return
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except (InvalidStateError, asyncio.InvalidStateError):
        pass
