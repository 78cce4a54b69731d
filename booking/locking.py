"""Serialise changes: a process-wide thread lock, then a database lock.

The booking rules only see `BookingLock.write()`, so another strategy (row
locks for clustered databases) can be added here without touching them.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .domain import LockTimeout

# Every table a change touches, each named once: LOCK TABLES refuses to let the
# session touch a table (or alias) it did not name.
LOCK_TABLES = "LOCK TABLES events WRITE, bookings WRITE, waiting_list_entries WRITE"


class Transaction:
    """A locked transaction: its connection, and work to run once it committed."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, action: Callable[[], None]) -> None:
        self._after_commit.append(action)

    def committed(self) -> None:
        for action in self._after_commit:
            action()


class BookingLock:
    """The process lock; subclasses add the database's own lock."""

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

    @contextmanager
    def write(self, event_id: int | None = None) -> Iterator[Transaction]:
        with self.held(), self.engine.connect() as conn:
            tx = Transaction(conn)
            with self._database_lock(conn):
                yield tx
            tx.committed()

    def _database_lock(self, conn: Connection):
        raise NotImplementedError


class TableLock(BookingLock):
    """MySQL/MariaDB: LOCK TABLES inside a transaction, as the manual prescribes for InnoDB.

    autocommit is already off (PyMySQL's default), so LOCK TABLES opens the
    transaction; COMMIT ends it and only then UNLOCK TABLES releases the tables.
    """

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
            # back: without this the next borrower would inherit the tables.
            try:
                conn.exec_driver_sql("UNLOCK TABLES")
            except DBAPIError:
                conn.invalidate()


class ImmediateLock(BookingLock):
    """SQLite: BEGIN IMMEDIATE takes the database's write lock up front."""

    @contextmanager
    def _database_lock(self, conn: Connection) -> Iterator[None]:
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            yield


def for_engine(engine: Engine, timeout: float) -> BookingLock:
    if engine.dialect.name == "sqlite":
        return ImmediateLock(engine, timeout)
    if engine.dialect.name in ("mysql", "mariadb"):
        return TableLock(engine, timeout)
    raise ValueError(f"no booking lock for the {engine.dialect.name} dialect")
