"""The SQL the booking rules run, one function a statement, in SQLAlchemy Core.

Core rather than the ORM: the booking path runs a handful of statements under a
global lock, and every microsecond spent building objects is spent holding it.
Each statement uses an index; none scans or counts a whole event.
"""

from sqlalchemy import Connection, Row, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from .models import bookings, events, waiting

_EVENT_COLUMNS = (
    events.c.id,
    events.c.name,
    events.c.total_tickets,
    events.c.available_tickets,
    events.c.waiting_count,
    events.c.waitlist_version,
    events.c.next_waiting_seq,
)


def create_event(conn: Connection, name: str, total_tickets: int) -> int:
    result = conn.execute(
        insert(events).values(
            name=name,
            total_tickets=total_tickets,
            available_tickets=total_tickets,
            waiting_count=0,
            waitlist_version=0,
            next_waiting_seq=1,
        )
    )
    return result.inserted_primary_key[0]


def event(conn: Connection, event_id: int) -> Row | None:
    return conn.execute(select(*_EVENT_COLUMNS).where(events.c.id == event_id)).one_or_none()


def add_booking(conn: Connection, event_id: int, user_id: int) -> bool:
    """Insert a booking; False when the user already has one (the unique key says so)."""
    try:
        conn.execute(insert(bookings).values(event_id=event_id, user_id=user_id))
    except IntegrityError:
        return False
    return True


def has_booking(conn: Connection, event_id: int, user_id: int) -> bool:
    query = select(exists().where(bookings.c.event_id == event_id, bookings.c.user_id == user_id))
    return conn.execute(query).scalar_one()


def delete_booking(conn: Connection, event_id: int, user_id: int) -> bool:
    result = conn.execute(
        bookings.delete().where(bookings.c.event_id == event_id, bookings.c.user_id == user_id)
    )
    return result.rowcount == 1


def change_counters(
    conn: Connection, event_id: int, available: int = 0, waiting_count: int = 0
) -> None:
    """Move the event's counters; a waiting-list change also bumps its version."""
    values = {}
    if available:
        values["available_tickets"] = events.c.available_tickets + available
    if waiting_count:
        values["waiting_count"] = events.c.waiting_count + waiting_count
        values["waitlist_version"] = events.c.waitlist_version + 1
    conn.execute(update(events).where(events.c.id == event_id).values(**values))


def join_waiting_list(conn: Connection, event_id: int, user_id: int, seq: int) -> None:
    conn.execute(insert(waiting).values(event_id=event_id, user_id=user_id, seq=seq))
    conn.execute(
        update(events)
        .where(events.c.id == event_id)
        .values(
            waiting_count=events.c.waiting_count + 1,
            waitlist_version=events.c.waitlist_version + 1,
            next_waiting_seq=seq + 1,
        )
    )


def leave_waiting_list(conn: Connection, event_id: int, user_id: int) -> bool:
    result = conn.execute(
        waiting.delete().where(waiting.c.event_id == event_id, waiting.c.user_id == user_id)
    )
    return result.rowcount == 1


def waiting_rows(conn: Connection, event_id: int, after_seq: int = 0) -> list[tuple[int, int]]:
    """(seq, user_id) in line order, only those after `after_seq`."""
    query = (
        select(waiting.c.seq, waiting.c.user_id)
        .where(waiting.c.event_id == event_id, waiting.c.seq > after_seq)
        .order_by(waiting.c.seq)
    )
    return [tuple(row) for row in conn.execute(query)]


def head_seq(conn: Connection, event_id: int) -> int | None:
    query = (
        select(waiting.c.seq).where(waiting.c.event_id == event_id).order_by(waiting.c.seq).limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def waiting_seq(conn: Connection, event_id: int, user_id: int) -> int | None:
    query = select(waiting.c.seq).where(
        waiting.c.event_id == event_id, waiting.c.user_id == user_id
    )
    return conn.execute(query).scalar_one_or_none()


def waiting_ahead(conn: Connection, event_id: int, seq: int) -> int:
    """How many wait in front of `seq`: an index range scan over those only."""
    query = (
        select(func.count())
        .select_from(waiting)
        .where(waiting.c.event_id == event_id, waiting.c.seq < seq)
    )
    return conn.execute(query).scalar_one()
