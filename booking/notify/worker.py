"""The background worker: settle lapsed offers, sequence the journal, deliver webhooks,
purge old entries.

`flask --app wsgi worker` runs passes until SIGTERM (the attempt in progress
is finished and recorded first); `--once` runs one pass. Any number of workers,
on one host or many, can run at once:

- lapsed offers of events nobody is changing are settled, and on-sales whose hour
  has come are opened, by an empty change on the event (every batch does both
  first, under the lock, by the database's clock), so two workers settle or open
  nothing twice;
- the sequencer locks journal_sequence, so entry ids are given one pass at a time;
- a webhook is delivered by the one worker holding its lease (delivery.py), a
  row in the database that lapses WEBHOOK_LEASE seconds after its holder stops
  renewing it, so a killed worker's webhooks pass to another.

Per webhook, entries go out in entry order; entry N+1 waits until N was
acknowledged with a 2xx; a failure is retried after a backoff, and a webhook
failing for WEBHOOK_MAX_AGE, or answered 410 Gone, is disabled. Delivery is at
least once: a worker killed between the receiver's 2xx and the recording of it
sends that entry again, with the same webhook-id.
"""

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..sales.domain import LockTimeout
from ..storage import journal
from ..storage import offers as offer_store
from ..storage import queue as queue_store
from ..storage import webhooks as webhook_store
from . import sender
from .delivery import Policy, Turn

log = logging.getLogger("booking.worker")

SEQUENCE_LIMIT = 5000
SETTLE_LIMIT = 100  # events per pass
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


class Worker:
    def __init__(self, engine: Engine, settings: Settings, service=None):
        self.engine = engine
        self.service = service  # a BookingService, to settle lapsed offers
        self.settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.policy = Policy(
            settings.retry_base, settings.retry_cap, settings.max_age, settings.lease
        )
        self.stopping = threading.Event()
        self._purged_at: float | None = None  # monotonic: only when to look again

    def stop(self, *_signal) -> None:
        self.stopping.set()

    def run(self, once: bool = False) -> None:
        log.info("worker started", extra={"owner": self.owner, "once": once})
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except (SQLAlchemyError, LockTimeout) as error:
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
        settled = self.settle()
        sequenced = self.sequence()
        sent = self.deliver()
        self.purge_if_due()
        return bool(settled or sequenced or sent)

    def settle(self) -> int:
        """Pass on the lapsed offers of events no change has touched since they lapsed,
        and open the on-sales whose hour has come."""
        if self.service is None:
            return 0
        with self.engine.connect() as conn:
            now = self.service.clock.now(conn)
            due = queue_store.events_due(conn, now, SETTLE_LIMIT)
            lapsed = offer_store.events_with_lapsed(conn, now, SETTLE_LIMIT)
            events = list(dict.fromkeys(due + lapsed))  # one empty change settles both
        for event_id in events:
            if self.stopping.is_set():
                break
            self.service.settle(event_id)
        return len(events)

    def sequence(self) -> int:
        total = 0
        while (given := journal.sequence(self.engine, SEQUENCE_LIMIT)) > 0:
            total += given
            if given < SEQUENCE_LIMIT:
                break
        return total

    def deliver(self) -> int:
        """A turn for every webhook that has something due and no other worker on it."""
        with self.engine.connect() as conn:
            now = journal.database_now(conn)
            horizon = journal.last_entry_id(conn)
            due = webhook_store.due(conn, now, horizon)
        attempts = 0
        with sender.Sender(self.settings.allow_private) as sending:
            for webhook_id in due:
                if self.stopping.is_set():
                    break
                turn = Turn.take(self.engine, webhook_id, self.owner, self.policy)
                if turn is None:
                    continue  # another worker has it
                try:
                    attempts += turn.run(horizon, sending, self.stopping)
                finally:
                    turn.release()
        return attempts

    def purge_if_due(self) -> int:
        """Drop entries older than JOURNAL_RETENTION that every enabled webhook has."""
        if self._purged_at is not None and time.monotonic() - self._purged_at < PURGE_EVERY:
            return 0
        self._purged_at = time.monotonic()
        with journal.writer_connection(self.engine) as conn, conn.begin():
            now = journal.database_now(conn)
            oldest = webhook_store.oldest_enabled_cursor(conn)
            up_to = journal.last_entry_id(conn) if oldest is None else oldest
            before = now - timedelta(seconds=self.settings.retention)
            purged = journal.purge(conn, before, up_to)
        if purged:
            log.info("journal purged", extra={"entries": purged})
        return purged
