"""Serialise changes: an in-process lock, then the database's own lock.

The booking rules hand a function to `BookingLock.run(event_id, body)`; the
strategy decides how that function's transaction is protected:

- table (MySQL/MariaDB default): LOCK TABLES around the transaction. Every
  change on the server runs one at a time.
- row (BOOKING_LOCK=row, for Galera and other clusters): a plain transaction
  whose first touch of the event row locks it (SELECT ... FOR UPDATE, or the
  conditional UPDATE that claims a ticket). Changes to different events run in
  parallel; a conflict between cluster nodes surfaces as a deadlock error and
  the whole function is run again.
- immediate (SQLite): BEGIN IMMEDIATE.
"""

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .domain import LockTimeout

log = logging.getLogger("booking.locking")
T = TypeVar("T")

# Every table a change touches, each named once: LOCK TABLES refuses to let the
# session touch a table (or alias) it did not name.
LOCK_TABLES = "LOCK TABLES events WRITE, bookings WRITE, waiting_list_entries WRITE"
DEADLOCK = 1213  # ER_LOCK_DEADLOCK, SQLSTATE 40001; Galera's certification failure too


class Transaction:
    """A protected transaction: its connection, and work to run once it committed."""

    def __init__(self, conn: Connection, lock_rows: bool):
        self.conn = conn
        # Row mode: the first read of the event row must lock it.
        self.lock_rows = lock_rows
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        self._after_commit.append(action)

    def committed(self) -> None:
        for action in self._after_commit:
            action()


class BookingLock:
    """The in-process lock; subclasses add the database's own lock."""

    name = ""
    lock_rows = False

    def __init__(self, engine: Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout
        # Also guards the in-memory waiting lists of this process.
        self.process_lock = threading.Lock()

    def _thread_lock(self, event_id: int | None) -> threading.Lock:
        return self.process_lock

    @contextmanager
    def held(self, event_id: int | None = None) -> Iterator[None]:
        lock = self._thread_lock(event_id)
        if not lock.acquire(timeout=self.timeout):
            raise LockTimeout("another change in this process held the lock too long")
        try:
            yield
        finally:
            lock.release()

    def run(self, event_id: int | None, body: Callable[[Transaction], T]) -> T:
        """Run `body` in one protected transaction; after-commit work runs under the lock."""
        with self.held(event_id), self.engine.connect() as conn:
            tx = Transaction(conn, self.lock_rows)
            with self._database_lock(conn):
                result = body(tx)
            tx.committed()
            return result

    def _database_lock(self, conn: Connection):
        raise NotImplementedError


class TableLock(BookingLock):
    """MySQL/MariaDB: LOCK TABLES inside a transaction, as the manual prescribes for InnoDB.

    autocommit is already off (PyMySQL's default), so LOCK TABLES opens the
    transaction; COMMIT ends it and only then UNLOCK TABLES releases the tables.
    """

    name = "table"

    @contextmanager
    def _database_lock(self, conn: Connection) -> Iterator[None]:
        try:
            conn.exec_driver_sql(LOCK_TABLES)
            yield
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except DBAPIError:
                conn.invalidate()
            raise
        finally:
            # ROLLBACK does not release table locks, and the pool only rolls
            # back: without this the next borrower would inherit the tables. A
            # lost connection is never pooled and its locks died with its
            # session: UNLOCK TABLES would only open a new connection to say so.
            if not conn.invalidated:
                try:
                    conn.exec_driver_sql("UNLOCK TABLES")
                except DBAPIError:
                    conn.invalidate()


class RowLock(BookingLock):
    """Row locks on the event row, retried whole when the database reports a deadlock.

    Correctness does not rest on the lock being cluster-wide: every change
    writes its event's row (counters), so two nodes changing one event conflict
    at certification and one of them gets error 1213 and runs again.
    """

    name = "row"
    lock_rows = True
    first_backoff = 0.004  # seconds; doubled per attempt, full jitter
    max_backoff = 0.1  # the longest single wait between attempts
    stripes = 64

    def __init__(self, engine: Engine, timeout: float):
        super().__init__(engine, timeout)
        # Changes to different events need not wait for each other in this
        # process either; a stripe also guards its events' waiting-list copies.
        self._stripes = [threading.Lock() for _ in range(self.stripes)]
        self.retries = 0  # deadlock retries in this process, for logs and benchmarks

    def _thread_lock(self, event_id: int | None) -> threading.Lock:
        if event_id is None:
            return self.process_lock
        return self._stripes[event_id % self.stripes]

    def run(self, event_id: int | None, body: Callable[[Transaction], T]) -> T:
        # Conflicts on one hot row across three nodes can take many attempts;
        # keep trying for as long as a lock wait could have taken (LOCK_TIMEOUT).
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return super().run(event_id, body)
            except DBAPIError as error:
                if _error_code(error) != DEADLOCK:
                    raise
                ceiling = min(self.max_backoff, self.first_backoff * 2 ** (attempt - 1))
                delay = random.uniform(0, ceiling)
                if time.monotonic() + delay >= deadline:
                    raise  # out of time: the client gets 503 and Retry-After
                self.retries += 1
                log.warning(
                    "deadlock or cluster conflict, running the change again",
                    extra={"eventId": event_id, "attempt": attempt, "retries": self.retries},
                )
            time.sleep(delay)

    @contextmanager
    def _database_lock(self, conn: Connection) -> Iterator[None]:
        with conn.begin():
            yield


class ImmediateLock(BookingLock):
    """SQLite: BEGIN IMMEDIATE takes the database's write lock up front."""

    name = "immediate"

    @contextmanager
    def _database_lock(self, conn: Connection) -> Iterator[None]:
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield


def _error_code(error: DBAPIError) -> int | None:
    args = getattr(error.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


STRATEGIES = {"table": TableLock, "row": RowLock}


def for_engine(engine: Engine, timeout: float, mode: str = "table") -> BookingLock:
    if engine.dialect.name == "sqlite":
        return ImmediateLock(engine, timeout)
    if engine.dialect.name not in ("mysql", "mariadb"):
        raise ValueError(f"no booking lock for the {engine.dialect.name} dialect")
    if mode not in STRATEGIES:
        raise ValueError(f"BOOKING_LOCK must be 'table' or 'row', not {mode!r}")
    return STRATEGIES[mode](engine, timeout)
