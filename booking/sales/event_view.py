"""An event's row as a batch sees it (batch.py), and what the batch writes back of it."""

from dataclasses import dataclass
from datetime import datetime

from .batch_offers import Offers
from .batch_queue import Queue
from .line_changes import LineChanges


@dataclass(slots=True, eq=False)
class EventView:
    """An event's row as this batch sees it; `loaded` is the row as read (committed)."""

    id: int
    name: str
    total_tickets: int
    available_tickets: int
    waiting_count: int
    waitlist_version: int
    next_waiting_seq: int
    sales_open: bool
    waitlist_mode: str
    offer_ttl_seconds: int
    offered_tickets: int
    max_tickets_per_booking: int
    max_overtakes: int
    waiting_tickets: int
    held_back_tickets: int
    hold_ttl_seconds: int
    held_tickets: int
    sales_open_at: datetime | None
    queueing: bool
    queued_count: int
    queued_tickets: int
    loaded: object = None
    changed: bool = False
    line: LineChanges | None = None  # the line, fetched on first need
    offers: Offers | None = None  # live offers, read on first need
    queue: Queue | None = None  # the pre-queue's entries, read on first need


def written(event: EventView) -> dict:
    """The columns a batch may change, keyed as storage/tickets.py writes them."""
    return {
        "id": event.id,
        "available": event.available_tickets,
        "waiting": event.waiting_count,
        "version": event.waitlist_version,
        "next_seq": event.next_waiting_seq,
        "name": event.name,
        "total": event.total_tickets,
        "sales_open": event.sales_open,
        "mode": event.waitlist_mode,
        "ttl": event.offer_ttl_seconds,
        "offered": event.offered_tickets,
        "max_tickets": event.max_tickets_per_booking,
        "max_overtakes": event.max_overtakes,
        "waiting_tickets": event.waiting_tickets,
        "held_back": event.held_back_tickets,
        "hold_ttl": event.hold_ttl_seconds,
        "held": event.held_tickets,
        "sales_open_at": event.sales_open_at,
        "queueing": event.queueing,
        "queued": event.queued_count,
        "queued_tickets": event.queued_tickets,
    }
