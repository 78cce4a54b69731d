"""Group commit: the thread that holds the lock runs every change queued behind it.

A request hands its change to `GroupCommit.run`. Changes queue per stripe (the
whole process in table and SQLite mode; a stripe of events in row mode). When
no other thread of the stripe is leading, the caller leads: it takes every
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
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from .batch import Batch
from .domain import BookingError, LockTimeout
from .locking import BookingLock
from .waitlist import WaitingLists

log = logging.getLogger("booking.batches")

# Set by the web layer for each request, so a batch's log line can name them.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

QUEUED, RUNNING, DONE = "queued", "running", "done"
Rule = Callable[[Batch], Any]


class Change:
    __slots__ = ("error", "event_id", "request_id", "result", "rule", "state", "user_id")

    def __init__(self, event_id: int | None, user_id: int | None, rule: Rule):
        self.event_id = event_id
        self.user_id = user_id
        self.rule = rule
        self.request_id = request_id.get()
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class RerunAlone(Exception):
    """An unexpected error in one change of a batch: undo it all, run each change alone."""


class _Queue:
    """One stripe's queue and who leads it."""

    def __init__(self):
        self.ready = threading.Condition(threading.Lock())
        self.changes: deque[Change] = deque()
        self.leading = False
        self.entered = 0  # changes ever queued here

    def wait_turn(self, change: Change, timeout: float) -> bool:
        """Queue `change`; True when the caller must lead, False once it was answered."""
        deadline = time.monotonic() + timeout
        with self.ready:
            self.changes.append(change)
            self.entered += 1
            while self.leading and change.state != DONE:
                if change.state == RUNNING:
                    self.ready.wait()  # a running batch answers it, whatever happens
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.changes.remove(change)
                    raise LockTimeout("the changes queued ahead took too long")
                self.ready.wait(remaining)
            if change.state == DONE:
                return False
            self.leading = True
            return True

    def take(self, limit: int) -> list[Change]:
        with self.ready:
            batch = [self.changes.popleft() for _ in range(min(limit, len(self.changes)))]
            for change in batch:
                change.state = RUNNING
            return batch

    def put_back(self, changes: list[Change]) -> None:
        with self.ready:
            for change in reversed(changes):
                change.state = QUEUED
                self.changes.appendleft(change)

    def answered(self, changes: list[Change]) -> None:
        with self.ready:
            for change in changes:
                change.state = DONE
            self.ready.notify_all()

    def step_down(self) -> None:
        with self.ready:
            self.leading = False
            self.ready.notify_all()


class GroupCommit:
    def __init__(
        self,
        engine: Engine,
        lock: BookingLock,
        waiting_lists: WaitingLists,
        max_size: int = 64,
        max_hold: float = 0.05,
    ):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists
        self.max_size = max(1, max_size)
        self.max_hold = max_hold
        self._queues: dict[int, _Queue] = {}
        self._queues_guard = threading.Lock()
        # This process's totals, for logs, tests and benchmarks.
        self.batches = 0
        self.changes = 0

    @property
    def submitted(self) -> int:
        """How many changes were ever queued in this process (tests wait on it)."""
        with self._queues_guard:
            return sum(queue.entered for queue in self._queues.values())

    def run(self, event_id: int | None, user_id: int | None, rule: Rule) -> Any:
        """Run `rule(batch)` in some batch's transaction; its result once committed."""
        stripe = self.lock.stripe(event_id)
        change = Change(event_id, user_id, rule)
        with self._queues_guard:
            queue = self._queues.setdefault(stripe, _Queue())
        if queue.wait_turn(change, self.lock.timeout):
            try:
                self._lead(queue, stripe, change)
            finally:
                queue.step_down()
        return change.answer()

    def _lead(self, queue: _Queue, stripe: int, mine: Change) -> None:
        """Run batches from the front of the queue until this thread's own change is done."""
        while mine.state != DONE:
            batch = queue.take(self.max_size)
            try:
                ran = self._run(stripe, batch)
            except BaseException as error:  # the worker is being stopped: answer everyone
                for change in batch:
                    if change.error is None and change.result is None:
                        change.error = LockTimeout(f"the batch was interrupted: {error!r}")
                queue.answered(batch)
                raise
            queue.put_back(batch[ran:])
            queue.answered(batch[:ran])

    def _run(self, stripe: int, batch: list[Change]) -> int:
        """Run `batch` (or its first part, within the hold time); how many ran."""
        started = time.monotonic()
        try:
            with self.lock.held(stripe):
                waited = time.monotonic() - started
                label = {"batchSize": len(batch), "eventId": batch[0].event_id}
                outcomes, tx = self.lock.attempts(lambda: self._transaction(batch, False), label)
        except RerunAlone as rerun:
            self._log(batch, started, None, "rerun", error=repr(rerun.__cause__))
            for change in batch:
                self._run_alone(stripe, change)
            return len(batch)
        except (SQLAlchemyError, LockTimeout) as error:
            self._log(batch, started, None, "failed", error=repr(error))
            for change in batch:
                change.error = error
            return len(batch)
        tx.committed()
        for change, (result, error) in zip(batch, outcomes, strict=False):
            change.result, change.error = result, error
        self._count(len(outcomes))
        self._log(batch[: len(outcomes)], started, waited, "committed")
        return len(outcomes)

    def _run_alone(self, stripe: int, change: Change) -> None:
        try:
            with self.lock.held(stripe):
                label = {"batchSize": 1, "eventId": change.event_id}
                outcomes, tx = self.lock.attempts(lambda: self._transaction([change], True), label)
        except Exception as error:
            change.error = error
            return
        tx.committed()
        change.result, change.error = outcomes[0]
        self._count(1)

    def _count(self, changes: int) -> None:
        with self._queues_guard:  # leaders of different stripes commit at once
            self.batches += 1
            self.changes += changes

    def _transaction(self, batch: list[Change], alone: bool):
        """One attempt: the batch's changes in one protected transaction."""
        started = time.monotonic()
        outcomes: list[tuple[Any, BookingError | None]] = []
        with self.engine.connect() as conn, self.lock.transaction(conn):
            tx = Batch(conn, self.waiting_lists, self.lock.lock_rows)
            tx.load([(change.event_id, change.user_id) for change in batch])
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
        return outcomes, tx

    def _log(self, batch, started, waited, outcome, **extra) -> None:
        log.info(
            "batch",
            extra={
                "outcome": outcome,
                "batchSize": len(batch),
                "lockMode": self.lock.name,
                "waitMs": None if waited is None else round(waited * 1000, 3),
                "holdMs": round((time.monotonic() - started) * 1000, 3),
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
