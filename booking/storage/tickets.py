"""The SQL, in SQLAlchemy Core: set-based reads and writes for a batch, and the reads.

Core rather than the ORM, and each statement built once at import with bound
parameters: changes run under a lock, and every microsecond spent building
objects is spent holding it. A batch of changes reads everything it needs with
two statements and writes its net effect with one statement per table (per
event for deletes); each uses an index, none scans or counts a whole event.
"""

import functools
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)

from .tables import bookings, events, offers, waiting

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
)
_SELECT_EVENT = select(*EVENT_COLUMNS).where(events.c.id == _EVENT)
# The event and whether this user already holds a ticket, in one round trip.
_SELECT_EVENT_FOR_BOOKING = _SELECT_EVENT.add_columns(
    exists().where(bookings.c.event_id == _EVENT, bookings.c.user_id == _USER).label("user_booked")
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
# Who of the batch's users holds a ticket or a place for the batch's events: the
# unique (event_id, user_id) keys make both halves index ranges.
_BOOKINGS_HELD = select(
    literal("b").label("kind"), bookings.c.event_id, bookings.c.user_id, null().label("seq")
).where(bookings.c.event_id.in_(_EVENTS), bookings.c.user_id.in_(_USERS))
_PLACES_HELD = select(literal("w"), waiting.c.event_id, waiting.c.user_id, waiting.c.seq).where(
    waiting.c.event_id.in_(_EVENTS), waiting.c.user_id.in_(_USERS)
)
_HOLDINGS = union_all(_BOOKINGS_HELD, _PLACES_HELD)
# Table mode and SQLite hold the whole database already: the events and the
# holdings in one round trip, the event columns padded for the holdings' rows.
_PADDING = [null()] * (len(EVENT_COLUMNS) - 1)
_BATCH_VIEW = union_all(
    select(literal("e"), events.c.id, null(), null(), *EVENT_COLUMNS[1:]).where(
        events.c.id.in_(_EVENTS)
    ),
    _BOOKINGS_HELD.add_columns(*_PADDING),
    _PLACES_HELD.add_columns(*_PADDING),
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


_INSERT_BOOKINGS = insert(bookings)
_INSERT_WAITING = insert(waiting)
_DELETE_BOOKINGS = bookings.delete().where(
    bookings.c.event_id == _EVENT, bookings.c.user_id.in_(_USERS)
)
_DELETE_WAITING = waiting.delete().where(
    waiting.c.event_id == _EVENT, waiting.c.user_id.in_(_USERS)
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
# A user's tickets, places and offers in event order, from the (user_id, event_id) indexes.
_AFTER = bindparam("after_id")
# Typed, so the union's column reads back as a datetime on every backend.
_NO_EXPIRY = literal(None, type_=offers.c.expires_at.type).label("expires")
_USER_HOLDINGS = (
    union_all(
        select(bookings.c.event_id, events.c.name, null().label("seq"), _NO_EXPIRY)
        .join(events, events.c.id == bookings.c.event_id)
        .where(bookings.c.user_id == _USER, bookings.c.event_id > _AFTER),
        select(waiting.c.event_id, events.c.name, waiting.c.seq, null())
        .join(events, events.c.id == waiting.c.event_id)
        .where(waiting.c.user_id == _USER, waiting.c.event_id > _AFTER),
        select(offers.c.event_id, events.c.name, null(), offers.c.expires_at)
        .join(events, events.c.id == offers.c.event_id)
        .where(offers.c.user_id == _USER, offers.c.event_id > _AFTER),
    )
    .order_by("event_id")
    .limit(bindparam("limit"))
)

_WAITING_AFTER = (
    select(waiting.c.seq, waiting.c.user_id)
    .where(waiting.c.event_id == _EVENT, waiting.c.seq > bindparam("after_seq"))
    .order_by(waiting.c.seq)
)
_HEAD_SEQ = (
    select(waiting.c.seq).where(waiting.c.event_id == _EVENT).order_by(waiting.c.seq).limit(1)
)
_WAITING_SEQ = select(waiting.c.seq).where(waiting.c.event_id == _EVENT, waiting.c.user_id == _USER)
_WAITING_AHEAD = (
    select(func.count())
    .select_from(waiting)
    .where(waiting.c.event_id == _EVENT, waiting.c.seq < bindparam("seq"))
)


def create_event(conn: Connection, name: str, total_tickets: int, mode: str, ttl: int) -> int:
    result = conn.execute(
        _INSERT_EVENT,
        {
            "name": name,
            "total_tickets": total_tickets,
            "available_tickets": total_tickets,
            "waiting_count": 0,
            "waitlist_version": 0,
            "next_waiting_seq": 1,
            "waitlist_mode": mode,
            "offer_ttl_seconds": ttl,
            "offered_tickets": 0,
        },
    )
    return result.inserted_primary_key[0]


def event(conn: Connection, event_id: int) -> Row | None:
    return conn.execute(_SELECT_EVENT, {"event_id": event_id}).one_or_none()


def event_for_booking(conn: Connection, event_id: int, user_id: int) -> Row | None:
    """The event row plus `user_booked`."""
    return conn.execute(
        _SELECT_EVENT_FOR_BOOKING, {"event_id": event_id, "user_id": user_id}
    ).one_or_none()


def batch_view(
    conn: Connection, event_ids: list[int], user_ids: list[int], lock_rows: bool
) -> tuple[list[EventRow], list[tuple[str, int, int, int | None]]]:
    """A batch's events, and (kind, event_id, user_id, seq) for each ticket ("b") or
    place in line ("w") its users hold for them. With `lock_rows`, the events' rows
    are locked first, in a statement of their own."""
    params = {"event_ids": event_ids, "user_ids": user_ids}
    if lock_rows:
        found = [EventRow(*row) for row in conn.execute(_LOCK_BATCH_EVENTS, params)]
        return found, [tuple(row) for row in conn.execute(_HOLDINGS, params)]
    found, holdings = [], []
    for kind, event_id, user_id, seq, *columns in conn.execute(_BATCH_VIEW, params):
        if kind == "e":
            found.append(EventRow(event_id, *columns))
        else:
            holdings.append((kind, event_id, user_id, seq))
    return found, holdings


def write_batch(
    conn: Connection,
    deleted_bookings: dict[int, list[int]],
    deleted_places: dict[int, list[int]],
    new_bookings: list[dict],
    new_places: list[dict],
    changed_events: list[dict],
) -> None:
    """A batch's net effect: deletes first, so a user who left and came back is re-added."""
    for event_id, user_ids in deleted_places.items():
        conn.execute(_DELETE_WAITING, {"event_id": event_id, "user_ids": user_ids})
    for event_id, user_ids in deleted_bookings.items():
        conn.execute(_DELETE_BOOKINGS, {"event_id": event_id, "user_ids": user_ids})
    if new_bookings:
        conn.execute(_INSERT_BOOKINGS, new_bookings)
    if new_places:
        conn.execute(_INSERT_WAITING, new_places)
    if changed_events:
        params = {
            f"{key}_{i}": value
            for i, event in enumerate(changed_events)
            for key, value in event.items()
        }
        conn.execute(_update_events(len(changed_events)), params)


def events_after(conn: Connection, after_id: int, limit: int) -> list[Row]:
    return list(conn.execute(_EVENTS_AFTER, {"after_id": after_id, "limit": limit}))


def user_holdings(conn: Connection, user_id: int, after_id: int, limit: int) -> list[tuple]:
    """(event_id, event name, seq of a place, expiry of an offer) in event order, after
    `after_id`; a ticket has neither."""
    params = {"user_id": user_id, "after_id": after_id, "limit": limit}
    return [tuple(row) for row in conn.execute(_USER_HOLDINGS, params)]


def waiting_rows(conn: Connection, event_id: int, after_seq: int = 0) -> list[tuple[int, int]]:
    """(seq, user_id) in line order, only those after `after_seq`."""
    rows = conn.execute(_WAITING_AFTER, {"event_id": event_id, "after_seq": after_seq})
    return [tuple(row) for row in rows]


def head_seq(conn: Connection, event_id: int) -> int | None:
    return conn.execute(_HEAD_SEQ, {"event_id": event_id}).scalar_one_or_none()


def waiting_ahead(conn: Connection, event_id: int, seq: int) -> int:
    """How many committed places in line come before `seq` (an index range count)."""
    return conn.execute(_WAITING_AHEAD, {"event_id": event_id, "seq": seq}).scalar_one()


def position(conn: Connection, event_id: int, user_id: int) -> int | None:
    """The user's 1-based place in line, or None: counts only those ahead (an index range)."""
    seq = conn.execute(
        _WAITING_SEQ, {"event_id": event_id, "user_id": user_id}
    ).scalar_one_or_none()
    if seq is None:
        return None
    return waiting_ahead(conn, event_id, seq) + 1
