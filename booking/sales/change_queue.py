"""A process's queue of changes waiting for a batch, and who leads it (group_commit.py).

Each request's change waits here on its own Event: it is woken when its batch
answered it or when it is its turn to lead, never with everyone else.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from .batch import Batch
from .domain import LockTimeout
from .idempotency import Key, idempotent

# Set by the web layer for each request, so a batch's log line can name them.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

QUEUED, RUNNING, DONE = "queued", "running", "done"
Rule = Callable[[Batch], Any]


class Change:
    __slots__ = (
        "error", "event_id", "key", "request_id", "result", "rule", "state", "user_id", "wake",
    )  # fmt: skip

    def __init__(self, event_id: int | None, user_id: int | None, rule: Rule, key: Key | None):
        self.event_id = event_id
        self.user_id = user_id
        self.key = key
        # A keyed change is answered once; a retry with its key gets that answer again.
        self.rule = rule if key is None else idempotent(key, rule)
        self.request_id = request_id.get()
        self.state = QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        # Set when the change was answered or its thread is to lead: each waiting
        # thread is woken on its own, never all of them for every batch.
        self.wake = threading.Event()

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class ChangeQueue:
    """The process's queue of changes and who leads it."""

    def __init__(self):
        self.guard = threading.Lock()
        self.changes: deque[Change] = deque()
        self.leading = False
        self.entered = 0  # changes ever queued here

    def wait_turn(self, change: Change, timeout: float) -> bool:
        """Queue `change`; True when the caller must lead, False once it was answered."""
        deadline = time.monotonic() + timeout
        with self.guard:
            self.changes.append(change)
            self.entered += 1
            if not self.leading:
                self.leading = True
                return True
        while True:
            # A running batch answers its changes whatever happens; only a change
            # still queued gives up when its time is over.
            queued = change.state == QUEUED
            change.wake.wait(max(0.0, deadline - time.monotonic()) if queued else None)
            with self.guard:
                change.wake.clear()
                if change.state == DONE:
                    return False
                if not self.leading:
                    self.leading = True
                    return True
                if change.state == QUEUED and time.monotonic() >= deadline:
                    self.changes.remove(change)
                    raise LockTimeout("the changes queued ahead took too long")

    def take(self, limit: int) -> list[Change]:
        with self.guard:
            batch = [self.changes.popleft() for _ in range(min(limit, len(self.changes)))]
            for change in batch:
                change.state = RUNNING
            return batch

    def put_back(self, changes: list[Change]) -> None:
        with self.guard:
            for change in reversed(changes):
                change.state = QUEUED
                self.changes.appendleft(change)

    def answered(self, changes: list[Change]) -> None:
        with self.guard:
            for change in changes:
                change.state = DONE
                change.wake.set()

    def step_down(self) -> None:
        """Hand the lead to the first change still queued, if any."""
        with self.guard:
            self.leading = False
            if self.changes:
                self.changes[0].wake.set()
