"""The SQL the booking rules run, one small function per step, in SQLAlchemy Core.

Core rather than the ORM, and each statement built once at import with bound
parameters: changes run under a global lock, and every microsecond spent
building objects is spent holding it. Each statement uses an index; none scans
or counts a whole event.
"""

from sqlalchemy import Connection, Row, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .models import bookings, events, waiting

_EVENT = bindparam("event_id")
_USER = bindparam("user_id")

_SELECT_EVENT = select(
    events.c.id,
    events.c.name,
    events.c.total_tickets,
    events.c.available_tickets,
    events.c.waiting_count,
    events.c.waitlist_version,
    events.c.next_waiting_seq,
).where(events.c.id == _EVENT)
_SELECT_EVENT_FOR_UPDATE = _SELECT_EVENT.with_for_update()
# The event and whether this user already holds a ticket, in one round trip.
_SELECT_EVENT_FOR_BOOKING = _SELECT_EVENT.add_columns(
    exists().where(bookings.c.event_id == _EVENT, bookings.c.user_id == _USER).label("user_booked")
)
# Row mode locks the row with a statement of its own: in REPEATABLE READ a
# transaction's snapshot is taken at its first plain read, so reads made after
# this one see every change committed by whoever held the row before us. (A
# subquery inside the locking SELECT would read a snapshot from before the wait.)
_LOCK_EVENT = select(events.c.id).where(events.c.id == _EVENT).with_for_update()
_INSERT_EVENT = insert(events)
# The WHERE clause makes the claim safe on its own: a ticket is taken only if
# one is left, whatever lock the caller holds.
_TAKE_TICKET = (
    update(events)
    .where(events.c.id == _EVENT, events.c.available_tickets > 0)
    .values(available_tickets=events.c.available_tickets - 1)
)
_RELEASE_TICKET = (
    update(events)
    .where(events.c.id == _EVENT)
    .values(available_tickets=events.c.available_tickets + 1)
)
_INSERT_BOOKING = insert(bookings)
_HAS_BOOKING = select(exists().where(bookings.c.event_id == _EVENT, bookings.c.user_id == _USER))
_DELETE_BOOKING = bookings.delete().where(
    bookings.c.event_id == _EVENT, bookings.c.user_id == _USER
)
_INSERT_WAITING = insert(waiting)
_JOINED_LINE = (
    update(events)
    .where(events.c.id == _EVENT)
    .values(
        waiting_count=events.c.waiting_count + 1,
        waitlist_version=events.c.waitlist_version + 1,
        next_waiting_seq=bindparam("next_seq"),
    )
)
_LEFT_LINE = (
    update(events)
    .where(events.c.id == _EVENT)
    .values(
        waiting_count=events.c.waiting_count - 1,
        waitlist_version=events.c.waitlist_version + 1,
    )
)
_DELETE_WAITING = waiting.delete().where(waiting.c.event_id == _EVENT, waiting.c.user_id == _USER)
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


def create_event(conn: Connection, name: str, total_tickets: int) -> int:
    result = conn.execute(
        _INSERT_EVENT,
        {
            "name": name,
            "total_tickets": total_tickets,
            "available_tickets": total_tickets,
            "waiting_count": 0,
            "waitlist_version": 0,
            "next_waiting_seq": 1,
        },
    )
    return result.inserted_primary_key[0]


def event(conn: Connection, event_id: int, for_update: bool = False) -> Row | None:
    query = _SELECT_EVENT_FOR_UPDATE if for_update else _SELECT_EVENT
    return conn.execute(query, {"event_id": event_id}).one_or_none()


def event_for_booking(
    conn: Connection, event_id: int, user_id: int, for_update: bool = False
) -> Row | None:
    """The event row plus `user_booked`; with `for_update` the event row is locked first."""
    if for_update:
        conn.execute(_LOCK_EVENT, {"event_id": event_id})
    query = _SELECT_EVENT_FOR_BOOKING
    return conn.execute(query, {"event_id": event_id, "user_id": user_id}).one_or_none()


def take_ticket(conn: Connection, event_id: int) -> bool:
    """Claim one ticket; False when none is left (or no such event)."""
    return conn.execute(_TAKE_TICKET, {"event_id": event_id}).rowcount == 1


def release_ticket(conn: Connection, event_id: int) -> None:
    conn.execute(_RELEASE_TICKET, {"event_id": event_id})


def add_booking(conn: Connection, event_id: int, user_id: int) -> bool:
    """Insert a booking; False when the user already has one (the unique key says so)."""
    try:
        conn.execute(_INSERT_BOOKING, {"event_id": event_id, "user_id": user_id})
    except IntegrityError:
        return False
    return True


def delete_booking(conn: Connection, event_id: int, user_id: int) -> bool:
    result = conn.execute(_DELETE_BOOKING, {"event_id": event_id, "user_id": user_id})
    return result.rowcount == 1


def join_waiting_list(conn: Connection, event_id: int, user_id: int, seq: int) -> bool:
    """Append the user at `seq`; False when already in line (the unique key says so)."""
    try:
        conn.execute(_INSERT_WAITING, {"event_id": event_id, "user_id": user_id, "seq": seq})
    except IntegrityError:
        return False
    conn.execute(_JOINED_LINE, {"event_id": event_id, "next_seq": seq + 1})
    return True


def leave_waiting_list(conn: Connection, event_id: int, user_id: int) -> bool:
    """Take the user out of the line, counters included; False if they were not in it."""
    result = conn.execute(_DELETE_WAITING, {"event_id": event_id, "user_id": user_id})
    if result.rowcount != 1:
        return False
    conn.execute(_LEFT_LINE, {"event_id": event_id})
    return True


def waiting_rows(conn: Connection, event_id: int, after_seq: int = 0) -> list[tuple[int, int]]:
    """(seq, user_id) in line order, only those after `after_seq`."""
    rows = conn.execute(_WAITING_AFTER, {"event_id": event_id, "after_seq": after_seq})
    return [tuple(row) for row in rows]


def head_seq(conn: Connection, event_id: int) -> int | None:
    return conn.execute(_HEAD_SEQ, {"event_id": event_id}).scalar_one_or_none()


def position(conn: Connection, event_id: int, user_id: int) -> int | None:
    """The user's 1-based place in line, or None: counts only those ahead (an index range)."""
    seq = conn.execute(
        _WAITING_SEQ, {"event_id": event_id, "user_id": user_id}
    ).scalar_one_or_none()
    if seq is None:
        return None
    return conn.execute(_WAITING_AHEAD, {"event_id": event_id, "seq": seq}).scalar_one() + 1
