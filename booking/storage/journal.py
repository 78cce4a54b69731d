"""The journal's SQL: append a batch's facts, give them entry ids, read and purge them.

Every committed change appends its facts (event.created, booking.booked, ...)
in its own transaction, so the journal holds exactly what was committed: a
transactional outbox. Its readers (the history route and the webhook worker)
follow `entry_id`, which must grow in commit order and never be skipped.

The insert's auto-increment `id` cannot promise that in row mode: batches of
different events commit in parallel, so id 11 may commit before id 10, and a
reader that went past 11 would never see 10. So ids are only a staging order,
and `sequence()` gives out entry ids after the commit: one sequencer at a time
(it locks journal_sequence), to the rows committed so far, in id order. An
event's rows commit in id order (its batches hold the event's lock while they
insert), so each event's history keeps its commit order; a row that commits
late simply gets a later entry id. Writers never touch journal_sequence, so
the sequencer costs the booking path nothing.
"""

import json
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, select, text, update

from .tables import journal, journal_sequence

TYPES = (
    "event.created",
    "event.updated",
    "booking.booked",
    "waitlist.joined",
    "booking.cancelled",
    "waitlist.left",
    "waitlist.reduced",
    "booking.promoted",
    "offer.created",
    "offer.claimed",
    "offer.declined",
    "offer.expired",
    "hold.created",
    "hold.claimed",
    "hold.released",
    "hold.expired",
    "queue.joined",
    "queue.left",
    "queue.reduced",
    "sale.opened",
)

_INSERT = journal.insert()
_LAST_GIVEN = select(journal_sequence.c.last_entry_id).where(journal_sequence.c.id == 1)
_LAST = _LAST_GIVEN.with_for_update()
# Unsequenced rows are the NULLs of the unique entry_id index: found without a scan.
# A locking read, so the sequencer holds the table's write metadata lock from its
# first statement on: a plain read would have to upgrade it for the UPDATE, and a
# batch's LOCK TABLES queued in between makes that a deadlock (MariaDB's 1213).
# SKIP LOCKED passes over rows whose insert is not committed yet.
_UNSEQUENCED = (
    select(journal.c.id)
    .where(journal.c.entry_id.is_(None))
    .order_by(journal.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_GIVE_IDS = (
    update(journal)
    .where(journal.c.entry_id.is_(None), journal.c.id.between(bindparam("low"), bindparam("high")))
    .values(entry_id=journal.c.id + bindparam("shift"))
)
_SET_LAST = (
    update(journal_sequence)
    .where(journal_sequence.c.id == 1)
    .values(last_entry_id=bindparam("last"))
)
ENTRY_COLUMNS = (
    journal.c.entry_id,
    journal.c.type,
    journal.c.event_id,
    journal.c.user_id,
    journal.c.at,
    journal.c.data,
)
_EVENT_HISTORY = (
    select(*ENTRY_COLUMNS)
    .where(journal.c.event_id == bindparam("event_id"), journal.c.entry_id > bindparam("after"))
    .order_by(journal.c.entry_id)
    .limit(bindparam("limit"))
)
# Locking, for the same reason as _UNSEQUENCED: the DELETE follows in the same transaction.
_PURGEABLE = (
    select(journal.c.id)
    .where(journal.c.at < bindparam("before"), journal.c.entry_id <= bindparam("up_to"))
    .order_by(journal.c.at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_DELETE = journal.delete().where(journal.c.id.in_(bindparam("ids", expanding=True)))


def fact(type_: str, event_id: int, user_id: int | None, **data) -> dict:
    """A fact to append; `data` may still be filled in until the batch writes it."""
    return {"type": type_, "event_id": event_id, "user_id": user_id, "data": data}


def append(conn: Connection, facts: list[dict]) -> None:
    """One multi-row INSERT; `at` is the database's clock (the column's default)."""
    rows = [
        {**row, "data": json.dumps(row["data"], separators=(",", ":"), sort_keys=True)}
        for row in facts
    ]
    conn.execute(_INSERT, rows)


def sequence(engine: Engine, limit: int = 5000) -> int:
    """Give entry ids to up to `limit` committed rows that have none; how many got one."""
    with writer_connection(engine) as conn, conn.begin():
        last = conn.execute(_LAST).scalar_one()
        ids = conn.execute(_UNSEQUENCED, {"limit": limit}).scalars().all()
        if not ids:
            return 0
        # entry_id = id + shift keeps id order and starts after the last one given.
        # A row in [low, high] that commits between these statements is included
        # (still in order); one still uncommitted is skipped by READ COMMITTED and
        # sequenced next time, later.
        low, high = ids[0], ids[-1]
        shift = last + 1 - low
        given = conn.execute(_GIVE_IDS, {"low": low, "high": high, "shift": shift}).rowcount
        conn.execute(_SET_LAST, {"last": high + shift})
        return given


def writer_connection(engine: Engine):
    """A connection for the journal's upkeep (sequencing, purging) beside the bookings."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        # Take the write lock first: two sequencers must not read the same last id.
        return conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    # No gap locks, and rows a writer has inserted but not committed are skipped,
    # not waited for: upkeep never blocks a booking nor deadlocks with one.
    return conn.execution_options(isolation_level="READ COMMITTED")


def last_entry_id(conn: Connection) -> int:
    return conn.execute(_LAST_GIVEN).scalar_one()


def event_history(conn: Connection, event_id: int, after: int, limit: int) -> list[dict]:
    rows = conn.execute(_EVENT_HISTORY, {"event_id": event_id, "after": after, "limit": limit})
    return [entry(row) for row in rows]


def entry(row) -> dict:
    """A journal row as readers see it."""
    entry_id, type_, event_id, user_id, at, data = row
    return {
        "entry_id": entry_id,
        "type": type_,
        "event_id": event_id,
        "user_id": user_id,
        "at": as_utc(at),
        "data": json.loads(data),
    }


def as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


def purge(conn: Connection, before: datetime, up_to: int, limit: int = 1000) -> int:
    """Delete up to `limit` sequenced rows older than `before` with entry_id <= `up_to`."""
    ids = (
        conn.execute(_PURGEABLE, {"before": before, "up_to": up_to, "limit": limit}).scalars().all()
    )
    if ids:
        conn.execute(_DELETE, {"ids": ids})
    return len(ids)


def database_now(conn: Connection) -> datetime:
    """The database's clock in UTC (naive, as the columns store it): one clock for all hosts."""
    if conn.dialect.name == "sqlite":
        raw = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        return datetime.fromisoformat(raw)
    return conn.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
