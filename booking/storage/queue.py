"""The SQL of a scheduled on-sale's pre-queue: the queued parties of an event, a batch's
changes to them, the whole queue for the opening, and the events whose opening is due."""

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from .tables import events, queue

_EVENT = bindparam("event_id")
_USERS = bindparam("user_ids", expanding=True)

_OF_USERS = select(queue.c.user_id, queue.c.tickets).where(
    queue.c.event_id == _EVENT, queue.c.user_id.in_(_USERS)
)
_OF_USER = select(queue.c.tickets).where(
    queue.c.event_id == _EVENT, queue.c.user_id == bindparam("user_id")
)
# In user id order only so that the read is the same every time: the opening shuffles.
_ALL = (
    select(queue.c.user_id, queue.c.tickets)
    .where(queue.c.event_id == _EVENT)
    .order_by(queue.c.user_id)
)
_INSERT = queue.insert()
_SET_TICKETS = (
    update(queue)
    .where(queue.c.event_id == bindparam("e"), queue.c.user_id == bindparam("u"))
    .values(tickets=bindparam("t"))
)
_DELETE = queue.delete().where(queue.c.event_id == _EVENT, queue.c.user_id.in_(_USERS))
_DELETE_ALL = queue.delete().where(queue.c.event_id == _EVENT)
# Events still queueing whose hour has come, from the sales_open_at index.
_DUE = (
    select(events.c.id)
    .where(events.c.sales_open_at <= bindparam("now"), events.c.queueing)
    .order_by(events.c.sales_open_at)
    .limit(bindparam("limit"))
)


def of_users(conn: Connection, event_id: int, user_ids: list[int]) -> dict[int, int]:
    """{user_id: tickets} of those of `user_ids` queued for the event."""
    rows = conn.execute(_OF_USERS, {"event_id": event_id, "user_ids": user_ids or [0]})
    return {user_id: tickets for user_id, tickets in rows}


def of_user(conn: Connection, event_id: int, user_id: int) -> int | None:
    """The tickets the user queued for, or None."""
    return conn.execute(_OF_USER, {"event_id": event_id, "user_id": user_id}).scalar_one_or_none()


def everyone(conn: Connection, event_id: int) -> list[tuple[int, int]]:
    """(user_id, tickets) of every queued party of the event."""
    return [(user_id, tickets) for user_id, tickets in conn.execute(_ALL, {"event_id": event_id})]


def write(
    conn: Connection, event_id: int, left: list[int], changed: list[dict], joined: list[dict]
) -> None:
    """A batch's changes to one event's queue: parties that left, shrank ({e, u, t}) or
    joined ({event_id, user_id, tickets})."""
    if left:
        conn.execute(_DELETE, {"event_id": event_id, "user_ids": left})
    if changed:
        conn.execute(_SET_TICKETS, changed)
    if joined:
        conn.execute(_INSERT, joined)


def clear(conn: Connection, event_id: int) -> None:
    """The opening served every queued party: the queue is empty."""
    conn.execute(_DELETE_ALL, {"event_id": event_id})


def events_due(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Events whose sales should have opened by `now` but are still queueing."""
    return list(conn.execute(_DUE, {"now": now, "limit": limit}).scalars())
