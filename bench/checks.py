"""The invariants after a scenario, read through SQL and through the API.

Per event, in one database snapshot (aggregates, so a million rows cost one
index scan, not a million Python objects):

- booked + offer rows <= total_tickets;
- available_tickets == total_tickets - booked - offer rows, within 0..total, and
  offered_tickets == offer rows;
- waiting_count == waiting rows, every seq below next_waiting_seq;
- nobody waits while a ticket is free;
- users unique: nobody holds two tickets, waits twice, or is booked and waiting;
  seqs unique in each line.

Then the API's status of each event must equal what the database holds.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from .api import Api

_EVENTS = sa.text(
    """
    SELECT e.id, e.total_tickets, e.available_tickets, e.waiting_count, e.next_waiting_seq,
        e.offered_tickets,
        (SELECT COUNT(*) FROM bookings b WHERE b.event_id = e.id) AS booked,
        (SELECT COUNT(*) FROM offers o WHERE o.event_id = e.id) AS offered,
        (SELECT COUNT(*) FROM waiting_list_entries w WHERE w.event_id = e.id) AS waiting,
        (SELECT COALESCE(MAX(w.seq), 0) FROM waiting_list_entries w
            WHERE w.event_id = e.id) AS max_seq,
        (SELECT COUNT(*) FROM waiting_list_entries w
            JOIN bookings b ON b.event_id = w.event_id AND b.user_id = w.user_id
            WHERE w.event_id = e.id) AS booked_and_waiting
    FROM events e WHERE e.id IN :ids ORDER BY e.id
    """
).bindparams(sa.bindparam("ids", expanding=True))

_DUPLICATES = [
    ("bookings", "event_id, user_id"),
    ("waiting_list_entries", "event_id, user_id"),
    ("waiting_list_entries", "event_id, seq"),
]


@dataclass
class EventRow:
    event_id: int
    total: int
    available: int
    waiting_count: int
    booked: int
    waiting: int


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


def check(engine: sa.Engine, api: Api, event_ids: list[int]) -> Checked:
    """The invariants of `event_ids` through SQL, then the API's status of each."""
    result = Checked()
    with engine.connect() as conn:  # autocommit off: one transaction, one snapshot
        for row in conn.execute(_EVENTS, {"ids": event_ids}):
            where = f"event {row.id}"
            result.events[row.id] = EventRow(
                row.id,
                row.total_tickets,
                row.available_tickets,
                row.waiting_count,
                row.booked,
                row.waiting,
            )
            expect = result.expect
            held = row.booked + row.offered
            expect(held <= row.total_tickets, f"{where}: {held} booked and offered > total")
            expect(
                row.available_tickets == row.total_tickets - held,
                f"{where}: available {row.available_tickets} != total {row.total_tickets}"
                f" - booked {row.booked} - offered {row.offered}",
            )
            expect(
                row.offered_tickets == row.offered,
                f"{where}: offered_tickets {row.offered_tickets} != {row.offered} offers",
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
                not (row.available_tickets > 0 and row.waiting > 0),
                f"{where}: {row.waiting} wait while {row.available_tickets} tickets are free",
            )
            expect(
                row.booked_and_waiting == 0,
                f"{where}: {row.booked_and_waiting} users both booked and waiting",
            )
            expect(
                row.max_seq < row.next_waiting_seq,
                f"{where}: seq {row.max_seq} not below next_waiting_seq {row.next_waiting_seq}",
            )
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
        seen = (status["totalTickets"], status["availableTickets"], status["waitingListCount"])
        held = (row.total, row.available, row.waiting_count)
        result.expect(
            seen == held,
            f"event {event_id}: API (total, available, waiting) {seen} != database {held}",
        )
    return result
