"""Prometheus metrics, one scrape for the whole server.

gunicorn's workers are separate processes, so the metrics use prometheus_client's
multiprocess mode: each process writes its values to files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it before forking, empties it at
start-up, and marks dead workers in child_exit), and GET /metrics sums the files.
Without that directory (the Flask test client, `flask run`) they live in this
process. The journal and webhook figures are read from the database at scrape
time: they are the same for every host.

No Flask here: the group commit, the error handlers and the request log call in.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

REQUEST_SECONDS = Histogram(
    "booking_http_request_duration_seconds",
    "HTTP requests, by route, method and status",
    ["route", "method", "status"],
)
OUTCOMES = Counter(
    "booking_outcomes_total", "Committed outcomes of changes, one per journal fact", ["outcome"]
)
REFUSALS = Counter(
    "booking_refusals_total", "Requests the rules refused, by problem type", ["type"]
)
UNAVAILABLE = Counter("booking_unavailable_total", "503 answers, by cause", ["cause"])
LOCK_WAIT = Histogram(
    "booking_lock_wait_seconds", "From a batch's start until the database's lock was had"
)
LOCK_HOLD = Histogram("booking_lock_hold_seconds", "From the lock until the batch's COMMIT")
BATCH_SIZE = Histogram(
    "booking_batch_size", "Changes per committed batch", buckets=(1, 2, 4, 8, 16, 32, 64)
)
WAITLIST_RELOADS = Counter(
    "booking_waitlist_copy_reloads_total", "Waiting-list copies reloaded whole from the table"
)
TICKETS = Counter(
    "booking_tickets_total",
    "Tickets moved by committed changes, by outcome (a party of 4 booked counts 4)",
    ["outcome"],
)

# The journal's fact types as outcomes.
OUTCOME_OF = {
    "booking.booked": "booked",
    "waitlist.joined": "waitlisted",
    "booking.cancelled": "cancelled",
    "waitlist.left": "left_waiting_list",
    "waitlist.reduced": "waitlist_reduced",
    "booking.promoted": "promoted",
    "offer.created": "offered",
    "offer.claimed": "claimed",
    "offer.declined": "declined_offer",
    "offer.expired": "offer_expired",
    "hold.created": "held",
    "hold.claimed": "hold_claimed",
    "hold.released": "hold_released",
    "hold.expired": "hold_expired",
    "queue.joined": "queued",
    "queue.left": "left_queue",
    "queue.reduced": "queue_reduced",
    "sale.opened": "sale_opened",
    "event.created": "event_created",
    "event.updated": "event_updated",
}


def committed(facts: list[dict]) -> None:
    """Count a committed batch's journal facts, and the tickets they moved: summed per
    type first, so that an opening's hundred thousand facts cost a few increments."""
    counts: dict[str, int] = {}
    tickets: dict[str, int] = {}
    for fact in facts:
        type_ = fact["type"]
        counts[type_] = counts.get(type_, 0) + 1
        tickets[type_] = tickets.get(type_, 0) + (fact["data"].get("tickets") or 0)
    for type_, count in counts.items():
        outcome = OUTCOME_OF[type_]
        OUTCOMES.labels(outcome).inc(count)
        if tickets[type_]:
            TICKETS.labels(outcome).inc(tickets[type_])


class DatabaseCollector:
    """Webhook deliveries by result, the oldest undelivered entry's age, and the free
    tickets held back for blocking parties, at scrape time."""

    def __init__(self, read):
        # () -> (deliveries by result, oldest undelivered age in s or None, held back)
        self.read = read

    def collect(self):
        by_result, oldest, held_back = self.read()
        deliveries = GaugeMetricFamily(
            "booking_webhook_deliveries",
            "Webhook delivery attempts recorded, by result (from the database)",
            labels=["result"],
        )
        for result, count in sorted(by_result.items()):
            deliveries.add_metric([result], count)
        yield deliveries
        yield GaugeMetricFamily(
            "booking_journal_oldest_undelivered_seconds",
            "Age of the oldest journal entry an enabled webhook still waits for (0: none)",
            value=oldest or 0.0,
        )
        yield GaugeMetricFamily(
            "booking_tickets_held_back",
            "Free tickets waiting for a party that may not be passed over again (every event)",
            value=held_back,
        )


def exposition(database_read) -> tuple[bytes, str]:
    """The text of one scrape: every process's values, plus the database's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(DatabaseCollector(database_read))
    return text + generate_latest(database), CONTENT_TYPE_LATEST
