"""Webhook subscriptions: create, read, delete, and their delivery attempts. No Flask.

A new webhook starts at the journal's current end: it is sent what commits
after its creation, never the past.
"""

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from ..sales.batch_answers import BatchAnswers
from ..sales.domain import BookingError, EventNotFound, paged
from ..sales.idempotency import Answer, Key, idempotent
from ..storage import journal, tickets
from ..storage import webhooks as webhook_store
from . import destinations

ALL_TYPES = "*"


class WebhookNotFound(BookingError):
    def __init__(self, webhook_id: int):
        super().__init__(f"Webhook {webhook_id} does not exist.")


class DestinationRefused(BookingError):
    """The URL is not http(s) to a public address (see destinations.py)."""


@dataclass(frozen=True, slots=True)
class WebhookView:
    webhook_id: int
    url: str
    event_types: list[str]
    event_id: int | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    delivered_up_to: int
    secret: str | None = None  # only in the answer to its creation

    @classmethod
    def of(cls, row: Row, secret: str | None = None) -> "WebhookView":
        return cls(
            row.id,
            row.url,
            json.loads(row.event_types),
            row.event_id,
            bool(row.enabled),
            row.disabled_reason,
            journal.as_utc(row.created_at),
            row.delivered_up_to,
            secret,
        )


def wanted_types(event_types: str) -> list[str] | None:
    """The stored JSON list as a filter: None means every type."""
    types = json.loads(event_types)
    return None if ALL_TYPES in types else types


def new_secret() -> str:
    """Standard Webhooks' form: "whsec_" and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class _Transaction:
    """What idempotent() needs of a transaction: its connection and its keys' answers."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.answers = BatchAnswers(conn)


class Webhooks:
    def __init__(self, engine: Engine, allow_private: bool):
        self.engine = engine
        self.allow_private = allow_private

    def create(
        self, url: str, event_types: list[str], event_id: int | None, key: Key | None = None
    ) -> "WebhookView | Answer":
        """A new webhook; with an Idempotency-Key, its Answer, stored with it in one
        transaction, so a retried create gets the first webhook back, never a second."""
        types = [ALL_TYPES] if ALL_TYPES in event_types else sorted(set(event_types))

        def rule(tx: _Transaction) -> WebhookView:
            return self._insert(tx.conn, url, types, event_id)

        # What is committed gets its entry id first, so the webhook starts exactly here.
        journal.sequence(self.engine)
        try:
            return self._run(rule, key)
        except IntegrityError:
            if key is None:
                raise
            # Another process stored this key's answer first: now it is there to replay.
            return self._run(rule, key)

    def _run(self, rule, key: Key | None):
        with self.engine.begin() as conn:
            tx = _Transaction(conn)
            if key is None:
                return rule(tx)
            tx.answers.load([key])
            answer = idempotent(key, rule)(tx)
            tx.answers.write()
            return answer

    def _insert(self, conn, url: str, types: list[str], event_id: int | None) -> WebhookView:
        try:
            destinations.check(url, self.allow_private)
        except destinations.RefusedDestination as refused:
            raise DestinationRefused(str(refused)) from None
        if event_id is not None and tickets.event(conn, event_id) is None:
            raise EventNotFound(event_id)
        secret = new_secret()
        webhook_id = webhook_store.create(
            conn,
            url=url,
            event_types=json.dumps(types),
            event_id=event_id,
            secret=secret,
            enabled=True,
            created_at=journal.database_now(conn),
            delivered_up_to=journal.last_entry_id(conn),
            failed_attempts=0,
        )
        return WebhookView.of(webhook_store.get(conn, webhook_id), secret)

    def get(self, webhook_id: int) -> WebhookView:
        with self.engine.connect() as conn:
            row = webhook_store.get(conn, webhook_id)
        if row is None:
            raise WebhookNotFound(webhook_id)
        return WebhookView.of(row)

    def page(self, after: int, limit: int) -> tuple[list[WebhookView], int | None]:
        with self.engine.connect() as conn:
            rows = webhook_store.page(conn, after, limit + 1)
        rows, next_after = paged(rows, limit, lambda row: row.id)
        return [WebhookView.of(row) for row in rows], next_after

    def delete(self, webhook_id: int) -> None:
        """Gone with its attempts; a worker sending for it stops after the attempt at hand."""
        with self.engine.begin() as conn:
            if not webhook_store.delete(conn, webhook_id):
                raise WebhookNotFound(webhook_id)

    def attempts(self, webhook_id: int, after: int, limit: int) -> tuple[list[dict], int | None]:
        with self.engine.connect() as conn:
            if webhook_store.get(conn, webhook_id) is None:
                raise WebhookNotFound(webhook_id)
            rows = webhook_store.attempts(conn, webhook_id, after, limit + 1)
        rows, next_after = paged(rows, limit, lambda row: row.id)
        found = [
            {
                "entry_id": row.entry_id,
                "attempt": row.attempt,
                "at": journal.as_utc(row.at),
                "status_code": row.status_code,
                "error": row.error,
                "duration_ms": row.duration_ms,
            }
            for row in rows
        ]
        return found, next_after

    def figures(self) -> tuple[dict[str, int], float | None, int]:
        """For /metrics: delivery attempts by result, the age in seconds of the oldest
        entry an enabled webhook still waits for (None: nothing waits), and the free
        tickets held back for blocking parties."""
        with self.engine.connect() as conn:
            results = webhook_store.delivery_results(conn)
            oldest = webhook_store.oldest_undelivered_at(conn)
            now = journal.database_now(conn)
            held_back = tickets.held_back_tickets(conn)
        return results, None if oldest is None else (now - oldest).total_seconds(), held_back
