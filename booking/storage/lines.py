"""The SQL of waiting lines: the parties in line order, a batch's changes to them, and
the log of those changes that other processes' copies replay (sales/waiting_lists.py)."""

from sqlalchemy import Connection, bindparam, func, insert, select, update

from .tables import line_changes, waiting

_EVENT = bindparam("event_id")

_LINE = (
    select(waiting.c.seq, waiting.c.user_id, waiting.c.tickets, waiting.c.overtakes)
    .where(waiting.c.event_id == _EVENT)
    .order_by(waiting.c.seq)
)
_PLACE_OF = select(waiting.c.seq, waiting.c.tickets, waiting.c.overtakes).where(
    waiting.c.event_id == _EVENT, waiting.c.user_id == bindparam("user_id")
)
_AHEAD = (
    select(func.count())
    .select_from(waiting)
    .where(waiting.c.event_id == _EVENT, waiting.c.seq < bindparam("seq"))
)
_INSERT_PLACES = insert(waiting)
_DELETE_PLACES = waiting.delete().where(
    waiting.c.event_id == _EVENT, waiting.c.seq.in_(bindparam("seqs", expanding=True))
)
# One more overtake for every party before `seq` that is not larger than the event.
_OVERTAKEN = (
    update(waiting)
    .where(
        waiting.c.event_id == bindparam("e"),
        waiting.c.seq < bindparam("before_seq"),
        waiting.c.tickets <= bindparam("total"),
    )
    .values(overtakes=waiting.c.overtakes + 1)
)
_SET_PLACE = (
    update(waiting)
    .where(waiting.c.event_id == bindparam("e"), waiting.c.seq == bindparam("s"))
    .values(tickets=bindparam("t"), overtakes=bindparam("o"))
)
_CHANGES_AFTER = (
    select(line_changes.c.version, line_changes.c.ops)
    .where(line_changes.c.event_id == _EVENT, line_changes.c.version > bindparam("version"))
    .order_by(line_changes.c.version)
)
_INSERT_CHANGE = insert(line_changes)
_PRUNE_CHANGES = line_changes.delete().where(
    line_changes.c.event_id == _EVENT, line_changes.c.version <= bindparam("up_to")
)


def parties(conn: Connection, event_id: int) -> list[tuple[int, int, int, int]]:
    """(seq, user_id, tickets, overtakes) of every waiting party, in line order."""
    return [tuple(row) for row in conn.execute(_LINE, {"event_id": event_id})]


def changes_after(conn: Connection, event_id: int, version: int) -> list[tuple[int, str]]:
    """(version, ops as JSON) of the event's logged line changes after `version`."""
    rows = conn.execute(_CHANGES_AFTER, {"event_id": event_id, "version": version})
    return [tuple(row) for row in rows]


def place(conn: Connection, event_id: int, user_id: int) -> tuple[int, int, int] | None:
    """(1-based place in line, tickets, overtakes) of the user's party, or None; the place
    counts only those ahead (an index range)."""
    row = conn.execute(_PLACE_OF, {"event_id": event_id, "user_id": user_id}).one_or_none()
    if row is None:
        return None
    seq, tickets, overtakes = row
    return ahead(conn, event_id, seq) + 1, tickets, overtakes


def ahead(conn: Connection, event_id: int, seq: int) -> int:
    """How many parties wait before `seq` (an index range count)."""
    return conn.execute(_AHEAD, {"event_id": event_id, "seq": seq}).scalar_one()


def write(
    conn: Connection,
    event_id: int,
    left: list[int],
    overtaken_before: list[tuple[int, int]],
    changed: list[dict],
    joined: list[dict],
) -> None:
    """One batch's effect on one event's committed places, in an order that keeps them
    exact: the places that left go; every party before each served one's seq gets its
    overtake (those larger than the event, `total`, do not); places the batch changed
    otherwise get their final tickets and overtakes ({e, s, t, o}); new places come last,
    already counting what passed them in this batch."""
    if left:
        conn.execute(_DELETE_PLACES, {"event_id": event_id, "seqs": left})
    for before_seq, total in overtaken_before:
        conn.execute(_OVERTAKEN, {"e": event_id, "before_seq": before_seq, "total": total})
    if changed:
        conn.execute(_SET_PLACE, changed)
    if joined:
        conn.execute(_INSERT_PLACES, joined)


def log_change(conn: Connection, event_id: int, version: int, ops: str, keep: int) -> None:
    """Log what a batch did to the line (as `version`); keep the last `keep` of them."""
    conn.execute(_INSERT_CHANGE, {"event_id": event_id, "version": version, "ops": ops})
    if version % keep == 0:  # now and then, not every batch
        conn.execute(_PRUNE_CHANGES, {"event_id": event_id, "up_to": version - keep})
