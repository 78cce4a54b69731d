"""The SQL of waiting-list offers: an event's live offers, their changes, and lapses."""

import json
from datetime import datetime

from sqlalchemy import Connection, bindparam, or_, select

from .tables import journal, offers

_EVENT = bindparam("event_id")
# What a batch needs of an event's offers: its own users' (the unique key) and the lapsed
# ones (the event's expiry index), never the event's every offer. One reference to the
# table: LOCK TABLES locks a table once per name a statement uses.
_FOR_BATCH = select(offers.c.user_id, offers.c.seq, offers.c.tickets, offers.c.expires_at).where(
    offers.c.event_id == _EVENT,
    or_(
        offers.c.user_id.in_(bindparam("user_ids", expanding=True)),
        offers.c.expires_at <= bindparam("now"),
    ),
)
_OF_USER = select(offers.c.expires_at, offers.c.tickets).where(
    offers.c.event_id == _EVENT, offers.c.user_id == bindparam("user_id")
)
_INSERT = offers.insert()
_DELETE = offers.delete().where(
    offers.c.event_id == _EVENT, offers.c.user_id.in_(bindparam("user_ids", expanding=True))
)
# Events with an offer past its time, from the expires_at index.
_LAPSED_EVENTS = (
    select(offers.c.event_id)
    .where(offers.c.expires_at <= bindparam("now"))
    .group_by(offers.c.event_id)
    .limit(bindparam("limit"))
)
# How the user's last offer for the event ended, from the journal's (event, user) index.
_LAST_OFFER_END = (
    select(journal.c.type, journal.c.data)
    .where(
        journal.c.event_id == _EVENT,
        journal.c.user_id == bindparam("user_id"),
        journal.c.type.in_(["offer.claimed", "offer.declined", "offer.expired"]),
    )
    .order_by(journal.c.id.desc())
    .limit(1)
)


def for_batch(
    conn: Connection, event_id: int, user_ids: list[int], now: datetime
) -> list[tuple[int, int, int, datetime]]:
    """(user_id, seq, tickets, expires_at) of the live offers `user_ids` hold, and of
    those lapsed."""
    params = {"event_id": event_id, "user_ids": user_ids or [0], "now": now}
    return [tuple(row) for row in conn.execute(_FOR_BATCH, params)]


def of_user(conn: Connection, event_id: int, user_id: int) -> tuple[datetime, int] | None:
    """(expires_at, tickets) of the user's live offer, or None."""
    row = conn.execute(_OF_USER, {"event_id": event_id, "user_id": user_id}).one_or_none()
    return None if row is None else tuple(row)


def write(conn: Connection, ended: dict[int, list[int]], new: list[dict]) -> None:
    """Ended offers (per event, their users) out first, then the new ones in."""
    for event_id, user_ids in ended.items():
        conn.execute(_DELETE, {"event_id": event_id, "user_ids": user_ids})
    if new:
        conn.execute(_INSERT, new)


def events_with_lapsed(conn: Connection, now: datetime, limit: int) -> list[int]:
    return list(conn.execute(_LAPSED_EVENTS, {"now": now, "limit": limit}).scalars())


def lapsed_at(conn: Connection, event_id: int, user_id: int) -> datetime | None:
    """When the user's last offer lapsed, if their last offer ended that way (UTC, naive)."""
    row = conn.execute(_LAST_OFFER_END, {"event_id": event_id, "user_id": user_id}).first()
    if row is None or row.type != "offer.expired":
        return None
    return datetime.fromisoformat(json.loads(row.data)["expiresAt"]).replace(tzinfo=None)
