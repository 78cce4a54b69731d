"""The SQL of offers and checkout holds (tickets held for a user until they lapse): an
event's live ones, their changes, and lapses."""

import json
from datetime import datetime

from sqlalchemy import Connection, bindparam, or_, select

from .tables import journal, offers

_EVENT = bindparam("event_id")
# What a batch needs of an event's offers: its own users' (the unique key) and the lapsed
# ones (the event's expiry index), never the event's every offer. One reference to the
# table: LOCK TABLES locks a table once per name a statement uses.
_FOR_BATCH = select(
    offers.c.user_id, offers.c.seq, offers.c.tickets, offers.c.expires_at, offers.c.kind
).where(
    offers.c.event_id == _EVENT,
    or_(
        offers.c.user_id.in_(bindparam("user_ids", expanding=True)),
        offers.c.expires_at <= bindparam("now"),
    ),
)
_OF_USER = select(offers.c.expires_at, offers.c.tickets, offers.c.kind).where(
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
# How the user's last offer or hold for the event ended, from the journal's (event, user)
# index.
ENDS = ("offer.claimed", "offer.declined", "offer.expired", "hold.claimed", "hold.released",
        "hold.expired")  # fmt: skip
_LAST_OFFER_END = (
    select(journal.c.type, journal.c.data)
    .where(
        journal.c.event_id == _EVENT,
        journal.c.user_id == bindparam("user_id"),
        journal.c.type.in_(ENDS),
    )
    .order_by(journal.c.id.desc())
    .limit(1)
)


def for_batch(
    conn: Connection, event_id: int, user_ids: list[int], now: datetime
) -> list[tuple[int, int, int, datetime, str]]:
    """(user_id, seq, tickets, expires_at, kind) of the live offers and holds `user_ids`
    have, and of those lapsed."""
    params = {"event_id": event_id, "user_ids": user_ids or [0], "now": now}
    return [tuple(row) for row in conn.execute(_FOR_BATCH, params)]


def of_user(conn: Connection, event_id: int, user_id: int) -> tuple[datetime, int, str] | None:
    """(expires_at, tickets, kind) of the user's live offer or hold, or None."""
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


def lapsed_at(conn: Connection, event_id: int, user_id: int) -> tuple[str, datetime] | None:
    """(kind, when) the user's last offer or hold lapsed, if the last one ended so (UTC,
    naive)."""
    row = conn.execute(_LAST_OFFER_END, {"event_id": event_id, "user_id": user_id}).first()
    if row is None or not row.type.endswith(".expired"):
        return None
    at = datetime.fromisoformat(json.loads(row.data)["expiresAt"]).replace(tzinfo=None)
    return row.type.split(".")[0], at
