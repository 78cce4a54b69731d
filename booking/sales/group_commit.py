"""Group commit: the thread that holds the lock runs every change queued behind it.

A request hands its change to `GroupCommit.run`, which queues it in its
process. When no other thread is leading, the caller leads: it takes every
change queued so far (at most BATCH_MAX_SIZE), and under the process lock and
the database's lock runs them in ONE transaction, one after another in arrival
order, each seeing what those before it did. One COMMIT, then the waiting-list
copies catch up, then every request in the batch gets its own answer. Nobody
waits to fill a batch: a lone change commits at once, and while a batch runs
the next one forms behind it.

- A refusal (the rules' 404 and 409) changes nothing and leaves the others be.
- An unexpected error in one change undoes the batch, and its changes are run
  again one by one, each in its own transaction, so only the faulty one fails.
- A batch that fails whole (lock wait timeout, lost connection, deadlock
  retries exhausted) answers every request in it with that error (a 503);
  nothing of it was committed.
- A batch stops taking changes after BATCH_MAX_HOLD_MS; the rest go back to
  the front of the queue for the next batch.
"""

import logging
import time
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from .. import metrics
from .batch import Batch
from .change_queue import DONE, Change, ChangeQueue, Rule
from .clock import Clock
from .domain import BookingError, LockTimeout
from .idempotency import InFlight, Key
from .locking import BookingLock
from .waiting_lists import WaitingLists

log = logging.getLogger("booking.batches")


class RerunAlone(Exception):
    """An unexpected error in one change of a batch: undo it all, run each change alone."""


class GroupCommit:
    def __init__(
        self,
        engine: Engine,
        lock: BookingLock,
        waiting_lists: WaitingLists,
        max_size: int = 64,
        max_hold: float = 0.05,
        before: Rule | None = None,
        clock: Clock | None = None,
    ):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists
        self.max_size = max(1, max_size)
        self.max_hold = max_hold
        self.before = before  # run on each batch before its changes (settling lapsed offers)
        self.clock = clock or Clock()
        self._queue = ChangeQueue()
        self._conn: Connection | None = None  # only ever used by the leading thread
        self._in_flight = InFlight()
        self.batches = 0  # committed in this process (tests count them)

    @property
    def submitted(self) -> int:
        """How many changes were ever queued in this process (tests wait on it)."""
        return self._queue.entered

    def run(
        self, event_id: int | None, user_id: int | None, rule: Rule, key: Key | None = None
    ) -> Any:
        """Run `rule(batch)` in some batch's transaction; its result once committed. With
        an Idempotency-Key, the result is the request's Answer (idempotency.py)."""
        change = Change(event_id, user_id, rule, key)
        with self._in_flight.claim(key):
            if self._queue.wait_turn(change, self.lock.timeout):
                try:
                    self._lead(change)
                finally:
                    if not self._queue.changes:
                        self._close_connection()  # idle: back to the pool
                    self._queue.step_down()
            return change.answer()

    def _connection(self) -> Connection:
        """The leaders' connection. While changes keep coming it passes from one
        leader to the next, which spares each batch the pool's ping and reset."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _lead(self, mine: Change) -> None:
        """Run batches from the front of the queue until this thread's own change is done."""
        queue = self._queue
        while mine.state != DONE:
            batch = queue.take(self.max_size)
            try:
                ran = self._run(batch)
            except BaseException as error:  # the worker is being stopped: answer everyone
                for change in batch:
                    if change.error is None and change.result is None:
                        change.error = LockTimeout(f"the batch was interrupted: {error!r}")
                queue.answered(batch)
                raise
            queue.put_back(batch[ran:])
            queue.answered(batch[:ran])

    def _run(self, batch: list[Change]) -> int:
        """Run `batch` (or its first part, within the hold time); how many ran."""
        started = time.monotonic()
        try:
            with self.lock.held():
                label = {"batchSize": len(batch), "eventId": batch[0].event_id}
                outcomes, tx = self.lock.attempts(lambda: self._transaction(batch, False), label)
        except RerunAlone as rerun:
            self._log(batch, started, "rerun", error=repr(rerun.__cause__))
            for change in batch:
                self._run_alone(change)
            return len(batch)
        except (SQLAlchemyError, LockTimeout) as error:
            self._log(batch, started, "failed", error=repr(error))
            for change in batch:
                change.error = error
            return len(batch)
        metrics.committed(tx.facts)
        for change, (result, error) in zip(batch, outcomes, strict=False):
            change.result, change.error = result, error
        self.batches += 1  # only the leading thread writes it: one at a time
        self._log(batch[: len(outcomes)], started, "committed", locked=tx.locked_at)
        return len(outcomes)

    def _run_alone(self, change: Change) -> None:
        try:
            with self.lock.held():
                label = {"batchSize": 1, "eventId": change.event_id}
                outcomes, tx = self.lock.attempts(lambda: self._transaction([change], True), label)
        except Exception as error:
            change.error = error
            return
        metrics.committed(tx.facts)
        change.result, change.error = outcomes[0]
        self.batches += 1  # only the leading thread writes it: one at a time

    def _transaction(self, batch: list[Change], alone: bool):
        """One attempt: the batch's changes in one protected transaction."""
        conn = self._connection()
        tx = Batch(conn, self.waiting_lists, self.lock.lock_rows, self.clock)
        try:
            with self.lock.transaction(conn):
                tx.locked_at = time.monotonic()
                outcomes = self._apply(tx, batch, alone)
        except BaseException:
            # Rolled back (or lost): the line copies it changed are not the table's.
            for event_id in tx.touched_lines():
                self.waiting_lists.drop(event_id)
            self._close_connection()  # start afresh from the pool
            raise
        tx.committed()  # under the process lock still: nobody reads a copy half-stamped
        return outcomes, tx

    def _apply(self, tx: Batch, batch: list[Change], alone: bool) -> list:
        """Run the changes in order against the batch's view, then write their effect."""
        started = time.monotonic()
        outcomes: list[tuple[Any, BookingError | None]] = []
        tx.load([(change.event_id, change.user_id) for change in batch])
        tx.answers.load([change.key for change in batch if change.key is not None])
        if self.before is not None:
            try:
                self.before(tx)
            except Exception as error:
                _rerun_unless_database(error, alone)
        for change in batch:
            if outcomes and time.monotonic() - started > self.max_hold:
                break  # the rest wait for the next batch
            try:
                outcomes.append((change.rule(tx), None))
            except BookingError as refusal:
                outcomes.append((None, refusal))
            except Exception as error:
                _rerun_unless_database(error, alone)
        try:
            tx.write()
        except Exception as error:
            _rerun_unless_database(error, alone)
        return outcomes

    def _log(self, batch, started, outcome, locked: float | None = None, **extra) -> None:
        """One line per batch: waitMs until the database's lock was had (LOCK TABLES; in
        row mode the row locks come later, inside holdMs), holdMs from then to COMMIT."""
        now = time.monotonic()
        if outcome == "committed":
            metrics.BATCH_SIZE.observe(len(batch))
            metrics.LOCK_WAIT.observe((locked or now) - started)
            if locked is not None:
                metrics.LOCK_HOLD.observe(now - locked)
        log.info(
            "batch",
            extra={
                "outcome": outcome,
                "batchSize": len(batch),
                "lockMode": self.lock.name,
                "waitMs": round(((locked or now) - started) * 1000, 3),
                "holdMs": None if locked is None else round((now - locked) * 1000, 3),
                "requestIds": [change.request_id for change in batch],
                **extra,
            },
        )


def _rerun_unless_database(error: Exception, alone: bool):
    """Re-raise `error`: as it is when the database failed (the whole batch fails) or
    the change already runs alone, else as RerunAlone to find the one change at fault."""
    if alone or (isinstance(error, DBAPIError) and not isinstance(error, IntegrityError)):
        raise error
    raise RerunAlone() from error
