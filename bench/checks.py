"""The invariants after a scenario, read through SQL and through the API.

Per event, in one database snapshot (aggregates, so a million rows cost one
scan, not a million Python objects), counting tickets, not rows (a booking, an
offer, a checkout hold or a place is a party of `tickets`); the same rules as
tests/invariants.py checks, but its journal replay:

- booked + offered + held tickets <= total_tickets;
- available_tickets == total_tickets - booked - offered - held tickets, within
  0..total; the offers table holds both kinds of held tickets (kind 'offer': an
  offer to a waiting party; kind 'hold': a buyer's checkout hold) and no other:
  offered_tickets == the 'offer' rows' tickets, held_tickets == the 'hold' rows';
- waiting_count == waiting rows, waiting_tickets == their tickets, every seq
  below next_waiting_seq;
- no idle fit: a waiting party that fits the free tickets has, before it, a party
  that may not be passed over again (overtakes >= max_overtakes, not larger than
  the event); held_back_tickets == the free tickets if such a party waits, else 0;
- bounded overtakes: no party not larger than the event counts more than
  max_overtakes;
- users unique: nobody holds two of a booking, an offer or hold (one row of the
  offers table), a place and a queued party (a scheduled on-sale's pre-queue) for
  one event, nor two of one kind; seqs unique in each line;
- the pre-queue: queued_count == queue_entries rows, queued_tickets == their
  tickets; an event that is queueing has sales closed, one that is not has no
  queued party.

Then the API's status of each event must equal what the database holds.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from .api import Api

_EVENTS = sa.text(
    """
    SELECT e.id, e.total_tickets, e.available_tickets, e.waiting_count, e.next_waiting_seq,
        e.offered_tickets, e.held_tickets, e.waiting_tickets, e.held_back_tickets,
        e.max_overtakes, e.sales_open, e.queueing, e.queued_count, e.queued_tickets,
        (SELECT COUNT(*) FROM bookings b WHERE b.event_id = e.id) AS booked,
        (SELECT COALESCE(SUM(b.tickets), 0) FROM bookings b
            WHERE b.event_id = e.id) AS booked_tickets,
        (SELECT COALESCE(SUM(o.tickets), 0) FROM offers o
            WHERE o.event_id = e.id AND o.kind = 'offer') AS offer_tickets,
        (SELECT COALESCE(SUM(o.tickets), 0) FROM offers o
            WHERE o.event_id = e.id AND o.kind = 'hold') AS hold_tickets,
        (SELECT COUNT(*) FROM offers o
            WHERE o.event_id = e.id AND o.kind NOT IN ('offer', 'hold')) AS other_kinds,
        (SELECT COUNT(*) FROM waiting_list_entries w WHERE w.event_id = e.id) AS waiting,
        (SELECT COALESCE(SUM(w.tickets), 0) FROM waiting_list_entries w
            WHERE w.event_id = e.id) AS waiting_rows_tickets,
        (SELECT COALESCE(MAX(w.seq), 0) FROM waiting_list_entries w
            WHERE w.event_id = e.id) AS max_seq,
        (SELECT MIN(w.seq) FROM waiting_list_entries w
            WHERE w.event_id = e.id AND w.tickets <= e.available_tickets) AS first_fit,
        (SELECT MIN(w.seq) FROM waiting_list_entries w
            WHERE w.event_id = e.id AND w.overtakes >= e.max_overtakes
            AND w.tickets <= e.total_tickets) AS first_limited,
        (SELECT COUNT(*) FROM waiting_list_entries w
            WHERE w.event_id = e.id AND w.overtakes > e.max_overtakes
            AND w.tickets <= e.total_tickets) AS over_limit,
        (SELECT COUNT(*) FROM waiting_list_entries w
            JOIN bookings b ON b.event_id = w.event_id AND b.user_id = w.user_id
            WHERE w.event_id = e.id) AS booked_and_waiting,
        (SELECT COUNT(*) FROM offers o
            WHERE o.event_id = e.id AND (
                EXISTS (SELECT 1 FROM bookings b
                    WHERE b.event_id = o.event_id AND b.user_id = o.user_id)
                OR EXISTS (SELECT 1 FROM waiting_list_entries w
                    WHERE w.event_id = o.event_id AND w.user_id = o.user_id))
        ) AS offered_and_held,
        (SELECT COUNT(*) FROM queue_entries q WHERE q.event_id = e.id) AS queued,
        (SELECT COALESCE(SUM(q.tickets), 0) FROM queue_entries q
            WHERE q.event_id = e.id) AS queued_rows_tickets,
        (SELECT COUNT(*) FROM queue_entries q
            WHERE q.event_id = e.id AND (
                EXISTS (SELECT 1 FROM bookings b
                    WHERE b.event_id = q.event_id AND b.user_id = q.user_id)
                OR EXISTS (SELECT 1 FROM waiting_list_entries w
                    WHERE w.event_id = q.event_id AND w.user_id = q.user_id)
                OR EXISTS (SELECT 1 FROM offers o
                    WHERE o.event_id = q.event_id AND o.user_id = q.user_id))
        ) AS queued_and_held
    FROM events e WHERE e.id IN :ids ORDER BY e.id
    """
).bindparams(sa.bindparam("ids", expanding=True))

_DUPLICATES = [
    ("bookings", "event_id, user_id"),
    ("offers", "event_id, user_id"),
    ("waiting_list_entries", "event_id, user_id"),
    ("waiting_list_entries", "event_id, seq"),
]


@dataclass
class EventRow:
    event_id: int
    total: int
    available: int
    waiting_count: int
    booked: int  # booking rows (parties)
    waiting: int  # waiting rows (parties)
    booked_tickets: int = 0
    waiting_tickets: int = 0
    offered_tickets: int = 0
    held_back: int = 0
    held_tickets: int = 0  # checkout holds
    queued_count: int = 0  # parties queued for a scheduled on-sale's opening
    queued_tickets: int = 0
    queueing: bool = False


@dataclass
class Checked:
    problems: list[str] = field(default_factory=list)
    events: dict[int, EventRow] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


def _event(result: Checked, row) -> None:
    """The invariants of one event's aggregates."""
    where = f"event {row.id}"
    expect = result.expect
    taken = row.booked_tickets + row.offer_tickets + row.hold_tickets
    expect(taken <= row.total_tickets, f"{where}: {taken} tickets booked, offered and held > total")
    expect(
        row.available_tickets == row.total_tickets - taken,
        f"{where}: available {row.available_tickets} != total {row.total_tickets}"
        f" - booked {row.booked_tickets} - offered {row.offer_tickets}"
        f" - held {row.hold_tickets} (tickets)",
    )
    expect(
        row.offered_tickets == row.offer_tickets,
        f"{where}: offered_tickets {row.offered_tickets} != the offers' {row.offer_tickets}",
    )
    expect(
        row.held_tickets == row.hold_tickets,
        f"{where}: held_tickets {row.held_tickets} != the holds' {row.hold_tickets}",
    )
    expect(
        row.other_kinds == 0,
        f"{where}: {row.other_kinds} rows of the offers table neither an offer nor a hold",
    )
    expect(
        0 <= row.available_tickets <= row.total_tickets,
        f"{where}: available {row.available_tickets} out of range",
    )
    expect(
        row.waiting_count == row.waiting,
        f"{where}: waiting_count {row.waiting_count} != {row.waiting} rows",
    )
    expect(
        row.waiting_tickets == row.waiting_rows_tickets,
        f"{where}: waiting_tickets {row.waiting_tickets} != the rows' {row.waiting_rows_tickets}",
    )
    # No idle fit: the first party that fits comes after the first that may not be passed.
    expect(
        row.first_fit is None
        or (row.first_limited is not None and row.first_limited < row.first_fit),
        f"{where}: the party at seq {row.first_fit} fits the {row.available_tickets} free"
        f" tickets and waits (first at the overtake limit: seq {row.first_limited})",
    )
    held_back = row.available_tickets if row.first_limited is not None else 0
    expect(
        row.held_back_tickets == held_back,
        f"{where}: held_back_tickets {row.held_back_tickets} != {held_back}",
    )
    expect(
        row.over_limit == 0,
        f"{where}: {row.over_limit} parties passed over more than {row.max_overtakes} times",
    )
    expect(
        row.booked_and_waiting == 0,
        f"{where}: {row.booked_and_waiting} users both booked and waiting",
    )
    expect(
        row.offered_and_held == 0,
        f"{where}: {row.offered_and_held} users hold an offer or a checkout hold and a booking"
        " or a place",
    )
    expect(
        row.max_seq < row.next_waiting_seq,
        f"{where}: seq {row.max_seq} not below next_waiting_seq {row.next_waiting_seq}",
    )
    expect(
        row.queued_count == row.queued,
        f"{where}: queued_count {row.queued_count} != {row.queued} queued rows",
    )
    expect(
        row.queued_tickets == row.queued_rows_tickets,
        f"{where}: queued_tickets {row.queued_tickets} != the rows' {row.queued_rows_tickets}",
    )
    expect(
        not (row.queueing and row.sales_open),
        f"{where}: queueing for the opening with sales open",
    )
    expect(
        row.queueing or row.queued == 0,
        f"{where}: {row.queued} parties queued on an event that is not queueing",
    )
    expect(
        row.queued_and_held == 0,
        f"{where}: {row.queued_and_held} queued users also hold a booking, an offer, a hold"
        " or a place",
    )


def check(engine: sa.Engine, api: Api, event_ids: list[int]) -> Checked:
    """The invariants of `event_ids` through SQL, then the API's status of each."""
    result = Checked()
    with engine.connect() as conn:  # autocommit off: one transaction, one snapshot
        for row in conn.execute(_EVENTS, {"ids": event_ids}):
            result.events[row.id] = EventRow(
                row.id,
                row.total_tickets,
                row.available_tickets,
                row.waiting_count,
                row.booked,
                row.waiting,
                int(row.booked_tickets),
                int(row.waiting_tickets),
                row.offered_tickets,
                row.held_back_tickets,
                row.held_tickets,
                row.queued_count,
                row.queued_tickets,
                bool(row.queueing),
            )
            _event(result, row)
        missing = set(event_ids) - set(result.events)
        result.expect(not missing, f"events missing from the database: {sorted(missing)[:10]}")
        ids = sa.bindparam("ids", expanding=True)
        for table, columns in _DUPLICATES:
            query = sa.text(
                f"SELECT {columns}, COUNT(*) FROM {table} WHERE event_id IN :ids"
                f" GROUP BY {columns} HAVING COUNT(*) > 1 LIMIT 5"
            ).bindparams(ids)
            for row in conn.execute(query, {"ids": event_ids}):
                result.problems.append(f"{table}: ({columns}) = {tuple(row[:2])} x{row[2]}")
    for event_id, row in result.events.items():
        status = api.status(event_id)
        keys = ("totalTickets", "availableTickets", "waitingListCount", "waitingTickets")
        keys += ("offeredTickets", "heldTickets", "queuedCount", "queuedTickets", "queueing")
        seen = tuple(status.get(key) for key in keys)
        held = (row.total, row.available, row.waiting_count, row.waiting_tickets)
        held += (row.offered_tickets, row.held_tickets)
        held += (row.queued_count, row.queued_tickets, row.queueing)
        result.expect(
            seen == held,
            f"event {event_id}: API (total, available, waiting, waiting tickets, offered, held,"
            f" queued, queued tickets, queueing) {seen} != database {held}",
        )
    return result
