"""How a batch of changes is protected: an in-process lock, then the database's own lock.

The group commit (group_commit.py) runs each batch as one transaction inside
`BookingLock.transaction(conn)`, under the process-wide thread lock `held()`, and lets
`BookingLock.attempts` decide whether a failed attempt is run again:

- table (MySQL/MariaDB default): LOCK TABLES around the transaction. Every
  batch on the server runs one at a time; one process-wide thread lock.
- row (BOOKING_LOCK=row, for Galera and other clusters): a plain transaction
  whose first statement locks the batch's event rows in ascending id order
  (SELECT ... FOR UPDATE). Batches of different processes or hosts that touch
  different events run in parallel; a conflict between cluster nodes surfaces
  as a deadlock error and the whole batch is run again.
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
LOCK_TABLES = (
    "LOCK TABLES events WRITE, bookings WRITE, waiting_list_entries WRITE,"
    " idempotency_keys WRITE, journal_entries WRITE, offers WRITE,"
    " waiting_list_changes WRITE, queue_entries WRITE"
)
DEADLOCK = 1213  # ER_LOCK_DEADLOCK, SQLSTATE 40001; Galera's certification failure too


class BookingLock:
    """The in-process lock; subclasses add the database's own lock."""

    name = ""
    lock_rows = False

    def __init__(self, engine: Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout
        # Also guards the in-memory waiting lists of this process.
        self.process_lock = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        if not self.process_lock.acquire(timeout=self.timeout):
            raise LockTimeout("another change in this process held the lock too long")
        try:
            yield
        finally:
            self.process_lock.release()

    def attempts(self, attempt: Callable[[], T], label: dict) -> T:
        """Run one attempt at a batch; only row mode tries again (see RowLock)."""
        return attempt()

    def transaction(self, conn: Connection):
        """A context: the database's lock around one transaction, committed on success."""
        raise NotImplementedError


class TableLock(BookingLock):
    """MySQL/MariaDB: LOCK TABLES inside a transaction, as the manual prescribes for InnoDB.

    autocommit is already off (PyMySQL's default), so LOCK TABLES opens the
    transaction; COMMIT ends it and only then UNLOCK TABLES releases the tables.
    """

    name = "table"

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[None]:
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
    """Row locks on the batch's event rows, the batch retried whole on a deadlock.

    Correctness does not rest on the lock being cluster-wide: every change
    writes its event's row (counters), so two nodes changing one event conflict
    at certification and one of them gets error 1213 and runs its batch again.
    """

    name = "row"
    lock_rows = True
    first_backoff = 0.004  # seconds; doubled per attempt, full jitter
    max_backoff = 0.1  # the longest single wait between attempts

    def __init__(self, engine: Engine, timeout: float):
        super().__init__(engine, timeout)
        self.retries = 0  # deadlock retries in this process, for logs and benchmarks

    def attempts(self, attempt: Callable[[], T], label: dict) -> T:
        # Conflicts on one hot row across three nodes can take many attempts;
        # keep trying for as long as a lock wait could have taken (LOCK_TIMEOUT).
        deadline = time.monotonic() + self.timeout
        tried = 0
        while True:
            tried += 1
            try:
                return attempt()
            except DBAPIError as error:
                if error_code(error) != DEADLOCK:
                    raise
                ceiling = min(self.max_backoff, self.first_backoff * 2 ** (tried - 1))
                delay = random.uniform(0, ceiling)
                if time.monotonic() + delay >= deadline:
                    raise  # out of time: every client in the batch gets 503 and Retry-After
                self.retries += 1
                log.warning(
                    "deadlock or cluster conflict, running the batch again",
                    extra={**label, "attempt": tried, "retries": self.retries},
                )
            time.sleep(delay)

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[None]:
        with conn.begin():
            yield


class ImmediateLock(BookingLock):
    """SQLite: BEGIN IMMEDIATE takes the database's write lock up front."""

    name = "immediate"

    @contextmanager
    def transaction(self, conn: Connection) -> Iterator[None]:
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield


def error_code(error: DBAPIError) -> int | None:
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
