"""Idempotent retries (the IETF httpapi Idempotency-Key header): no Flask, no SQL.

A keyed change is wrapped by `idempotent(key, rule)` and runs in a group-commit
batch like any other. Inside the batch's transaction it first looks for the
key's stored answer: the same request again gets that answer, replayed; the
same key with another body is refused. Otherwise the rule runs, the web layer's
`render` turns its result or refusal into the answer the client gets, and that
answer is stored in the SAME transaction as the change, so a retry after a
lost answer gets the original answer, never a second change.
"""

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .domain import BookingError


@dataclass(frozen=True, slots=True)
class Answer:
    """What a keyed request was answered: status, headers and the body's exact text."""

    status: int
    headers: dict
    body: str
    content_type: str
    result: Any = None  # the rules' result or refusal (None when replayed)
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    scope: str  # method and path, and the admin user on admin routes
    fingerprint: str  # of the request body
    ttl: timedelta
    # (result, refusal) -> Answer, in the web layer's words; run inside the batch.
    render: Callable[[Any, BookingError | None], Answer] = field(compare=False)

    @property
    def identity(self) -> tuple[str, str]:
        return self.key, self.scope


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    answer: Answer
    expires_at: datetime


class KeyReused(BookingError):
    def __init__(self, key: str):
        super().__init__(
            f"Idempotency-Key {key!r} was used for a different request on this route;"
            " use a new key for a new request."
        )


class KeyInFlight(BookingError):
    def __init__(self, key: str):
        super().__init__(
            f"A request with Idempotency-Key {key!r} is still being processed; retry shortly"
            " to get its answer."
        )


def fingerprint(body: Any) -> str:
    """The same JSON, however spaced or ordered, has the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(key: Key, rule: Callable[[Any], Any]) -> Callable[[Any], Answer]:
    """The rule, answered once per key: later the stored answer, replayed."""

    def run(tx) -> Answer:
        stored = tx.answers.stored(key)
        if stored is not None:
            if stored.fingerprint != key.fingerprint:
                raise KeyReused(key.key)
            answer = stored.answer
            return Answer(
                answer.status, answer.headers, answer.body, answer.content_type, None, True
            )
        try:
            result, refusal = rule(tx), None
        except BookingError as error:  # decided before any change: its answer is kept too
            result, refusal = None, error
        answer = key.render(result, refusal)
        tx.answers.store(key, answer)
        return answer

    return run


class InFlight:
    """Keys whose requests this process is running now: a duplicate is told to retry."""

    def __init__(self):
        self._keys: set[tuple[str, str]] = set()
        self._guard = threading.Lock()

    @contextmanager
    def claim(self, key: Key | None) -> Iterator[None]:
        if key is None:
            yield
            return
        with self._guard:
            if key.identity in self._keys:
                raise KeyInFlight(key.key)
            self._keys.add(key.identity)
        try:
            yield
        finally:
            with self._guard:
                self._keys.discard(key.identity)
