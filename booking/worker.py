"""The background worker: sequence the journal, deliver webhooks, purge old entries.

`flask --app wsgi worker` runs passes until SIGTERM (the attempt in progress
is finished and recorded first); `--once` runs one pass. Any number of workers,
on one host or many, can run at once:

- the sequencer locks journal_sequence, so entry ids are given one pass at a time;
- a webhook is delivered by the one worker holding its lease, a row in the
  database that lapses WEBHOOK_LEASE seconds after its holder stops renewing
  it, so a killed worker's webhooks pass to another. Every change of a
  webhook's delivery state is made only while its lease is held.

Per webhook, entries go out in entry order; entry N+1 waits until N was
acknowledged with a 2xx. A failure is retried after an exponential backoff
with jitter (WEBHOOK_RETRY_BASE doubled per attempt, capped at
WEBHOOK_RETRY_CAP). A webhook failing for WEBHOOK_MAX_AGE, or answered 410 Gone,
is disabled. Delivery is at least once: a worker killed between the receiver's
2xx and the recording of it sends that entry again, with the same webhook-id.
"""

import logging
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import delivery, journal, webhook_store
from .webhooks import wanted_types

log = logging.getLogger("booking.worker")

PAGE = 50  # journal rows read per query for one webhook
SEQUENCE_LIMIT = 5000
PURGE_EVERY = 60.0  # seconds


@dataclass(frozen=True)
class Settings:
    poll_interval: float = 0.25
    retry_base: float = 5.0
    retry_cap: float = 3600.0
    max_age: float = 3 * 24 * 3600.0
    lease: float = 30.0
    allow_private: bool = False
    retention: float = 30 * 24 * 3600.0

    @classmethod
    def of(cls, config) -> "Settings":
        return cls(
            poll_interval=float(config["WORKER_POLL_INTERVAL"]),
            retry_base=float(config["WEBHOOK_RETRY_BASE"]),
            retry_cap=float(config["WEBHOOK_RETRY_CAP"]),
            max_age=float(config["WEBHOOK_MAX_AGE"]),
            lease=float(config["WEBHOOK_LEASE"]),
            allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
            retention=float(config["JOURNAL_RETENTION"]),
        )


@dataclass
class Hook:
    """A leased webhook's delivery state, as this worker last wrote it."""

    id: int
    url: str
    secret: str
    event_id: int | None
    types: list[str] | None
    delivered_up_to: int
    failed_attempts: int
    failing_since: datetime | None


class Worker:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stopping = threading.Event()
        self._purged_at: float | None = None  # monotonic: only when to look again

    def stop(self, *_signal) -> None:
        self.stopping.set()

    def run(self, once: bool = False) -> None:
        log.info("worker started", extra={"owner": self.owner, "once": once})
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except SQLAlchemyError as error:
                log.warning("worker pass failed; trying again", extra={"error": repr(error)})
                busy = False
                if once:
                    raise
            if once:
                break
            if not busy:
                self.stopping.wait(self.settings.poll_interval)
        log.info("worker stopped", extra={"owner": self.owner})

    def run_once(self) -> bool:
        """One pass; True if it found work (the next pass should come at once)."""
        sequenced = self.sequence()
        sent = self.deliver()
        self.purge_if_due()
        return bool(sequenced or sent)

    def sequence(self) -> int:
        total = 0
        while (given := journal.sequence(self.engine, SEQUENCE_LIMIT)) > 0:
            total += given
            if given < SEQUENCE_LIMIT:
                break
        return total

    def deliver(self) -> int:
        with self.engine.connect() as conn:
            now = journal.database_now(conn)
            horizon = journal.last_entry_id(conn)
            due = webhook_store.due(conn, now, horizon)
        attempts = 0
        for webhook_id in due:
            if self.stopping.is_set():
                break
            hook = self._lease(webhook_id)
            if hook is None:
                continue  # another worker has it
            try:
                attempts += self._deliver_for(hook, horizon)
            finally:
                self._release(hook)
        return attempts

    def _deliver_for(self, hook: Hook, horizon: int) -> int:
        """Send the webhook's entries in order until one fails or none are left."""
        attempts = 0
        while not self.stopping.is_set():
            with self.engine.connect() as conn:
                rows = webhook_store.wanted_entries(
                    conn, hook.delivered_up_to, hook.event_id, hook.types, PAGE
                )
            for row in rows:
                if self.stopping.is_set() or not self._renew(hook):
                    return attempts
                payload = delivery.body(row)
                outcome = delivery.send(
                    hook.url, hook.secret, row.entry_id, payload, self.settings.allow_private
                )
                attempts += 1
                if not self._record(hook, row.entry_id, outcome) or not outcome.delivered:
                    return attempts  # failed (retried later), disabled, or the lease was lost
            if len(rows) < PAGE:
                # Nothing else up to the horizon is wanted: move the cursor past it,
                # so an idle filtered webhook does not hold back the journal's purge.
                if hook.delivered_up_to < horizon:
                    with self.engine.begin() as conn:
                        webhook_store.update_held(
                            conn, hook.id, self.owner, delivered_up_to=horizon
                        )
                    hook.delivered_up_to = horizon
                return attempts
        return attempts

    def _record(self, hook: Hook, entry_id: int, outcome: delivery.Outcome) -> bool:
        """Store the attempt and the webhook's new state; False if it is no longer ours
        to deliver (disabled, deleted, or the lease was lost)."""
        attempt = hook.failed_attempts + 1
        with self.engine.begin() as conn:
            now = journal.database_now(conn)
            since = hook.failing_since or now
            if outcome.delivered:
                state = dict(
                    delivered_up_to=entry_id,
                    failed_attempts=0,
                    failing_since=None,
                    next_attempt_at=None,
                )
            elif outcome.gone:
                state = _disabled(attempt, since, "the receiver answered 410 Gone")
            elif (now - since).total_seconds() >= self.settings.max_age:
                state = _disabled(attempt, since, "failing for longer than WEBHOOK_MAX_AGE")
            else:
                delay = timedelta(seconds=self._backoff(attempt))
                state = dict(
                    failed_attempts=attempt, failing_since=since, next_attempt_at=now + delay
                )
            if not webhook_store.update_held(conn, hook.id, self.owner, **state):
                return False
            webhook_store.record_attempt(
                conn,
                webhook_id=hook.id,
                entry_id=entry_id,
                attempt=attempt,
                at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                response_body=outcome.body,
            )
        if outcome.delivered:
            hook.delivered_up_to, hook.failed_attempts, hook.failing_since = entry_id, 0, None
        else:
            hook.failed_attempts, hook.failing_since = attempt, since
            log.info(
                "webhook attempt failed",
                extra={
                    "webhookId": hook.id,
                    "entryId": entry_id,
                    "attempt": attempt,
                    "statusCode": outcome.status_code,
                    "error": outcome.error,
                    "disabled": state.get("enabled") is False,
                },
            )
        return state.get("enabled", True)

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter: half fixed, half random, so retries of
        many webhooks spread out but none comes back at once."""
        ceiling = min(self.settings.retry_cap, self.settings.retry_base * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _lease(self, webhook_id: int) -> Hook | None:
        with self.engine.begin() as conn:
            now = journal.database_now(conn)
            until = now + timedelta(seconds=self.settings.lease)
            if not webhook_store.take_lease(conn, webhook_id, self.owner, now, until):
                return None
            row = webhook_store.get(conn, webhook_id, with_secret=True)
        self._lease_until = until
        return Hook(
            row.id,
            row.url,
            row.secret,
            row.event_id,
            wanted_types(row.event_types),
            row.delivered_up_to,
            row.failed_attempts,
            row.failing_since,
        )

    def _renew(self, hook: Hook) -> bool:
        """Before an attempt: make sure the lease outlives it (one timeout and more)."""
        with self.engine.begin() as conn:
            now = journal.database_now(conn)
            if (self._lease_until - now).total_seconds() > 2 * delivery.TIMEOUT_SECONDS:
                return True
            until = now + timedelta(seconds=self.settings.lease)
            if not webhook_store.take_lease(conn, hook.id, self.owner, now, until):
                return False
        self._lease_until = until
        return True

    def _release(self, hook: Hook) -> None:
        try:
            with self.engine.begin() as conn:
                webhook_store.update_held(
                    conn, hook.id, self.owner, lease_owner=None, lease_until=None
                )
        except SQLAlchemyError as error:  # it lapses by itself
            log.warning("could not release a webhook lease", extra={"error": repr(error)})

    def purge_if_due(self) -> int:
        """Drop entries older than JOURNAL_RETENTION that every enabled webhook has."""
        if self._purged_at is not None and time.monotonic() - self._purged_at < PURGE_EVERY:
            return 0
        self._purged_at = time.monotonic()
        with self.engine.begin() as conn:
            now = journal.database_now(conn)
            oldest = webhook_store.oldest_enabled_cursor(conn)
            up_to = journal.last_entry_id(conn) if oldest is None else oldest
            before = now - timedelta(seconds=self.settings.retention)
            purged = journal.purge(conn, before, up_to)
        if purged:
            log.info("journal purged", extra={"entries": purged})
        return purged


def _disabled(attempt: int, since: datetime, reason: str) -> dict:
    return dict(
        enabled=False,
        disabled_reason=reason,
        failed_attempts=attempt,
        failing_since=since,
        next_attempt_at=None,
        lease_owner=None,
        lease_until=None,
    )
