"""A scheduled on-sale: bookings queue before the opening, which serves them in a random
order. No Flask, no SQL.

While an event is queueing (sales_open_at ahead), a booking queues its party: no place,
nothing that orders it. The opening happens once, in the first batch that touches the
event after sales_open_at by the database's clock (the worker sends an empty change to
idle events), or when an admin opens early. In that one transaction the queued parties
are shuffled by the operating system's random source and each is served, in that order,
exactly as a booking would be at that moment (allocation.serve_buyer): booked, held for
checkout, or in line. Then sales are open, and whatever the batch does next comes
after every queued party. Arriving first before the opening buys nothing.
"""

import random

from .allocation import serve_buyer
from .batch import Batch, EventView
from .domain import Booked, Cancelled, Held, Queued, Served, rfc3339

# Not seeded, not predictable: os.urandom, so nobody can learn or steer the order.
_SHUFFLE = random.SystemRandom().shuffle


def queue(tx: Batch, event: EventView, user_id: int, tickets: int) -> Queued:
    tx.enqueue(event, user_id, tickets)
    tx.record(
        "queue.joined", event.id, user_id, tickets=tickets, salesOpenAt=rfc3339(event.sales_open_at)
    )
    return Queued(event.id, user_id, tickets, event.sales_open_at)


def leave_queue(tx: Batch, event: EventView, user_id: int, count: int, queued: int) -> Cancelled:
    """`count` of the party's `queued` tickets leave the queue (all: the party leaves)."""
    remaining = queued - count
    tx.enqueue(event, user_id, remaining)
    fact = "queue.reduced" if remaining else "queue.left"
    tx.record(fact, event.id, user_id, tickets=count, remainingTickets=remaining)
    return Cancelled("left_queue", event.id, user_id, count, remaining, Served())


def open_due_sales(tx: Batch) -> None:
    """Before a batch's changes: open every one of its events whose hour has come."""
    for event in tx.events():
        if event.queueing and event.sales_open_at <= tx.now():
            open_sales(tx, event)


def open_sales(tx: Batch, event: EventView) -> None:
    """The opening: sales open, and every queued party is served in a random order."""
    parties = tx.take_queue(event)
    tx.change_event(event, queueing=False, sales_open=True)
    fact = tx.record(
        "sale.opened",
        event.id,
        salesOpenAt=rfc3339(event.sales_open_at),
        queuedParties=len(parties),
        queuedTickets=sum(tickets for _, tickets in parties),
    )
    _SHUFFLE(parties)
    booked = held = 0
    for user_id, tickets in parties:
        result = serve_buyer(tx, event, user_id, tickets, from_queue=True)
        booked += isinstance(result, Booked)
        held += isinstance(result, Held)
    fact.update(booked=booked, held=held, waitlisted=len(parties) - booked - held)
