"""The SQL of events and bookings, in SQLAlchemy Core: set-based reads and writes for a
batch, and the reads (the line's SQL is in lines.py, offers' in offers.py).

Core rather than the ORM, and each statement built once at import with bound
parameters: changes run under a lock, and every microsecond spent building
objects is spent holding it. A batch of changes reads everything it needs with
one statement (two in row mode) and writes its net effect with one statement per
table (per event for deletes); each uses an index, none scans a whole event.
"""

import functools
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)

from .tables import bookings, events, offers, queue, waiting

_EVENT = bindparam("event_id")
_USER = bindparam("user_id")
_EVENTS = bindparam("event_ids", expanding=True)
_USERS = bindparam("user_ids", expanding=True)

EVENT_COLUMNS = (
    events.c.id,
    events.c.name,
    events.c.total_tickets,
    events.c.available_tickets,
    events.c.waiting_count,
    events.c.waitlist_version,
    events.c.next_waiting_seq,
    events.c.sales_open,
    events.c.waitlist_mode,
    events.c.offer_ttl_seconds,
    events.c.offered_tickets,
    events.c.max_tickets_per_booking,
    events.c.max_overtakes,
    events.c.waiting_tickets,
    events.c.held_back_tickets,
    events.c.hold_ttl_seconds,
    events.c.held_tickets,
    events.c.sales_open_at,
    events.c.queueing,
    events.c.queued_count,
    events.c.queued_tickets,
)


class EventRow(NamedTuple):
    """An event's row as read; the same fields as a row of EVENT_COLUMNS."""

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


_SELECT_EVENT = select(*EVENT_COLUMNS).where(events.c.id == _EVENT)
# The event and the tickets this user has booked for it (NULL: none), in one round trip.
_SELECT_EVENT_FOR_USER = _SELECT_EVENT.add_columns(
    select(bookings.c.tickets)
    .where(bookings.c.event_id == _EVENT, bookings.c.user_id == _USER)
    .scalar_subquery()
    .label("user_tickets")
)
_INSERT_EVENT = insert(events)

# Row mode: a batch's events in ascending id order, locked. This statement takes
# their row locks, always in the same order, so two batches cannot deadlock on
# them. It is the first statement of the transaction: in REPEATABLE READ the
# snapshot of later plain reads is taken after these locks are held, so those
# reads see everything committed by whoever held the rows before.
_LOCK_BATCH_EVENTS = (
    select(*EVENT_COLUMNS).where(events.c.id.in_(_EVENTS)).order_by(events.c.id).with_for_update()
)
# The tickets the batch's users have booked for the batch's events: the unique
# (event_id, user_id) key makes it an index range. (Places in line come from the
# line's copy in memory, offers from offers.py.)
_BOOKINGS_HELD = select(bookings.c.event_id, bookings.c.user_id, bookings.c.tickets).where(
    bookings.c.event_id.in_(_EVENTS), bookings.c.user_id.in_(_USERS)
)
# Table mode and SQLite hold the whole database already: the events and the
# bookings in one round trip. A booking's row puts its event_id, user_id and tickets
# in the event columns of the same types (id, waitlist_version, total_tickets): a
# UNION's column takes one type, and a string column would turn ids into strings.
_BOOKING_SLOTS = {"id": bookings.c.event_id, "waitlist_version": bookings.c.user_id,
                  "total_tickets": bookings.c.tickets}  # fmt: skip
_BATCH_VIEW = union_all(
    select(literal("e"), *EVENT_COLUMNS).where(events.c.id.in_(_EVENTS)),
    select(
        literal("b"), *(_BOOKING_SLOTS.get(column.name, null()) for column in EVENT_COLUMNS)
    ).where(bookings.c.event_id.in_(_EVENTS), bookings.c.user_id.in_(_USERS)),
)

_INSERT_BOOKINGS = insert(bookings)
_DELETE_BOOKINGS = bookings.delete().where(
    bookings.c.event_id == _EVENT, bookings.c.user_id.in_(_USERS)
)
_SET_BOOKED_TICKETS = (
    update(bookings)
    .where(bookings.c.event_id == bindparam("e"), bookings.c.user_id == bindparam("u"))
    .values(tickets=bindparam("t"))
)
# What the changes of a batch may leave different on its events: the counters,
# and what an admin may change.
_WRITTEN = {
    "available_tickets": "available",
    "waiting_count": "waiting",
    "waitlist_version": "version",
    "next_waiting_seq": "next_seq",
    "name": "name",
    "total_tickets": "total",
    "sales_open": "sales_open",
    "waitlist_mode": "mode",
    "offer_ttl_seconds": "ttl",
    "offered_tickets": "offered",
    "max_tickets_per_booking": "max_tickets",
    "max_overtakes": "max_overtakes",
    "waiting_tickets": "waiting_tickets",
    "held_back_tickets": "held_back",
    "hold_ttl_seconds": "hold_ttl",
    "held_tickets": "held",
    "sales_open_at": "sales_open_at",
    "queueing": "queueing",
    "queued_count": "queued",
    "queued_tickets": "queued_tickets",
}


@functools.cache
def _update_events(count: int):
    """One UPDATE for `count` events: each counter a CASE on the id (built once per count)."""
    ids = [bindparam(f"id_{i}") for i in range(count)]
    return (
        update(events)
        .where(events.c.id.in_(ids))
        .values(
            {
                column: case(
                    *((events.c.id == ids[i], bindparam(f"{key}_{i}")) for i in range(count)),
                    else_=events.c[column],
                )
                for column, key in _WRITTEN.items()
            }
        )
    )


# Events in id order after a keyset cursor (never OFFSET: a page costs its size).
_EVENTS_AFTER = (
    select(*EVENT_COLUMNS)
    .where(events.c.id > bindparam("after_id"))
    .order_by(events.c.id)
    .limit(bindparam("limit"))
)
QUEUED = "queued"  # the kind of a user's holding that is a party in a pre-queue
# A user's tickets, places, offers, holds and queued parties in event order, from the
# (user_id, event_id) indexes: (event_id, name, tickets, seq and overtakes of a place,
# expiry and kind of an offer or hold, or QUEUED).
_AFTER = bindparam("after_id")
# Typed, so the union's column reads back as a datetime on every backend.
_NO_EXPIRY = literal(None, type_=offers.c.expires_at.type).label("expires")
_NO_KIND = literal(None, type_=offers.c.kind.type).label("kind")
_USER_HOLDINGS = (
    union_all(
        select(
            bookings.c.event_id,
            events.c.name,
            bookings.c.tickets,
            null().label("seq"),
            null().label("overtakes"),
            _NO_EXPIRY,
            _NO_KIND,
        )
        .join(events, events.c.id == bookings.c.event_id)
        .where(bookings.c.user_id == _USER, bookings.c.event_id > _AFTER),
        select(
            waiting.c.event_id,
            events.c.name,
            waiting.c.tickets,
            waiting.c.seq,
            waiting.c.overtakes,
            null(),
            null(),
        )
        .join(events, events.c.id == waiting.c.event_id)
        .where(waiting.c.user_id == _USER, waiting.c.event_id > _AFTER),
        select(
            offers.c.event_id,
            events.c.name,
            offers.c.tickets,
            null(),
            null(),
            offers.c.expires_at,
            offers.c.kind,
        )
        .join(events, events.c.id == offers.c.event_id)
        .where(offers.c.user_id == _USER, offers.c.event_id > _AFTER),
        select(
            queue.c.event_id,
            events.c.name,
            queue.c.tickets,
            null(),
            null(),
            null(),
            literal(QUEUED, type_=offers.c.kind.type),
        )
        .join(events, events.c.id == queue.c.event_id)
        .where(queue.c.user_id == _USER, queue.c.event_id > _AFTER),
    )
    .order_by("event_id")
    .limit(bindparam("limit"))
)
_HELD_BACK = select(func.coalesce(func.sum(events.c.held_back_tickets), 0)).where(
    events.c.held_back_tickets > 0
)


def create_event(conn: Connection, values: dict) -> int:
    """A new event from its settings (name, total_tickets, waitlist_mode, ...)."""
    row = {
        "available_tickets": values["total_tickets"],
        "waiting_count": 0,
        "waitlist_version": 0,
        "next_waiting_seq": 1,
        "offered_tickets": 0,
        "waiting_tickets": 0,
        "held_back_tickets": 0,
        "held_tickets": 0,
        "queued_count": 0,
        "queued_tickets": 0,
        **values,
    }
    return conn.execute(_INSERT_EVENT, row).inserted_primary_key[0]


def event(conn: Connection, event_id: int) -> Row | None:
    return conn.execute(_SELECT_EVENT, {"event_id": event_id}).one_or_none()


def event_for_user(conn: Connection, event_id: int, user_id: int) -> Row | None:
    """The event row plus `user_tickets`, the tickets the user booked (None: none)."""
    return conn.execute(
        _SELECT_EVENT_FOR_USER, {"event_id": event_id, "user_id": user_id}
    ).one_or_none()


def batch_view(
    conn: Connection, event_ids: list[int], user_ids: list[int], lock_rows: bool
) -> tuple[list[EventRow], list[tuple[int, int, int]]]:
    """A batch's events, and (event_id, user_id, tickets) for each booking its users hold
    for them. With `lock_rows`, the events' rows are locked first, in a statement of
    their own."""
    params = {"event_ids": event_ids, "user_ids": user_ids}
    if lock_rows:
        found = [EventRow(*row) for row in conn.execute(_LOCK_BATCH_EVENTS, params)]
        return found, [tuple(row) for row in conn.execute(_BOOKINGS_HELD, params)]
    found, held = [], []
    for kind, *columns in conn.execute(_BATCH_VIEW, params):
        row = EventRow(*columns)
        if kind == "e":
            found.append(row)
        else:
            held.append((row.id, row.waitlist_version, row.total_tickets))
    return found, held


def write_bookings(
    conn: Connection, deleted: dict[int, list[int]], changed: list[dict], new: list[dict]
) -> None:
    """A batch's bookings: deleted (per event, their users), changed tickets
    ({e, u, t}), and new rows."""
    for event_id, user_ids in deleted.items():
        conn.execute(_DELETE_BOOKINGS, {"event_id": event_id, "user_ids": user_ids})
    if changed:
        conn.execute(_SET_BOOKED_TICKETS, changed)
    if new:
        conn.execute(_INSERT_BOOKINGS, new)


def write_events(conn: Connection, changed: list[dict]) -> None:
    """The batch's events' counters and settings, in one statement."""
    if changed:
        params = {
            f"{key}_{i}": value for i, event in enumerate(changed) for key, value in event.items()
        }
        conn.execute(_update_events(len(changed)), params)


def events_after(conn: Connection, after_id: int, limit: int) -> list[Row]:
    return list(conn.execute(_EVENTS_AFTER, {"after_id": after_id, "limit": limit}))


def user_holdings(conn: Connection, user_id: int, after_id: int, limit: int) -> list[tuple]:
    """(event_id, event name, tickets, seq and overtakes of a place, expiry and kind of an
    offer or hold) in event order, after `after_id`; a booking has none of the last four."""
    params = {"user_id": user_id, "after_id": after_id, "limit": limit}
    return [tuple(row) for row in conn.execute(_USER_HOLDINGS, params)]


def held_back_tickets(conn: Connection) -> int:
    """Free tickets that wait for a blocking party, over every event (for /metrics)."""
    return int(conn.execute(_HELD_BACK).scalar_one())
