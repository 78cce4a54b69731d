"""Events with many bookings and a long waiting list, written straight in SQL.

A million bookings through the API would take longer than the whole benchmark,
so the growth and cancel-storm events are made with INSERT ... SELECT from a
number sequence (MariaDB's SEQUENCE engine `seq_1_to_N`, or a cross join of
digits elsewhere), and the event row's counters are set to match the rows, as
if every booking and every join had gone through the service:

    total_tickets = available_tickets + booked tickets
    waiting_count = waiting rows, waiting_tickets = their tickets
    next_waiting_seq = waiting rows + 1
    waitlist_version = waiting rows (each join bumped it once)
    held_back_tickets = 0, every overtakes = 0 (sold out: nobody was ever passed over)

The line's change log (waiting_list_changes) stays empty: no process has a copy of
a new event's line, so each worker loads it whole on first use, and logs from there.

Parties (`parties` > 1): every booked and waiting user's party has 1..parties
tickets, a function of the user id that SQL and Python compute alike
(`party_tickets`: CRC32 of "<salt>-<user id>", MariaDB's CRC32 and zlib's are the
same), so a 1,000,000-row seed stays one INSERT ... SELECT and the benchmark knows
every party's size without reading it back. The event's maxTicketsPerBooking is
`parties` then (else the default 10).

A scheduled on-sale's pre-queue (`seed_queue`) is written the same way: one
queue_entries row per user with its party's tickets, and the event's queued_count
and queued_tickets to match, as if each had booked (202) while the event was
queueing.

Seeding runs with unique and foreign-key checks off for speed; the numbers are
unique by construction and the event exists.
"""

import zlib
from dataclasses import dataclass

import sqlalchemy as sa

SALT = "bench"


def party_tickets(user_id: int, parties: int, salt: str = SALT) -> int:
    """The tickets of a seeded user's party: 1 when parties is 1, else 1..parties."""
    if parties == 1:
        return 1
    return 1 + zlib.crc32(f"{salt}-{user_id}".encode()) % parties


def _tickets_sql(user: str, parties: int) -> str:
    """party_tickets in SQL, of the SQL expression `user` (the salt bound as :salt)."""
    return "1" if parties == 1 else f"1 + CRC32(CONCAT(:salt, '-', {user})) % {parties}"


@dataclass
class SeededEvent:
    event_id: int
    total: int
    booked: range  # user ids holding a party (one ticket each unless parties > 1)
    waiting: range  # user ids in line order (seq 1, 2, ...)
    parties: int = 1  # parties of 1..parties tickets
    salt: str = SALT

    def tickets_of(self, user_id: int) -> int:
        """The tickets of a seeded user's party (booked or waiting)."""
        return party_tickets(user_id, self.parties, self.salt)


def _numbers(conn: sa.Connection, count: int) -> str:
    """A derived table with one column `seq` holding 1..count."""
    if conn.dialect.name in ("mysql", "mariadb"):
        try:
            conn.exec_driver_sql("SELECT seq FROM seq_1_to_1")
            return f"(SELECT seq FROM seq_1_to_{count})"
        except sa.exc.DBAPIError:
            pass
    digits = (
        "(SELECT 0 d UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
    )
    places = max(1, len(str(count)))
    terms = " + ".join(f"d{i}.d * {10**i}" for i in range(places))
    joins = " CROSS JOIN ".join(f"{digits} d{i}" for i in range(places))
    return f"(SELECT {terms} + 1 AS seq FROM {joins} WHERE {terms} < {count})"


def seed_event(
    engine: sa.Engine,
    name: str,
    booked: range,
    waiting: range,
    free_tickets: int = 0,
    mode: str = "auto",
    parties: int = 1,
    salt: str = SALT,
) -> SeededEvent:
    """An event whose tickets are held by `booked` (plus `free_tickets` unsold), with
    `waiting` in line after them, each a party of party_tickets(user, parties). A line
    needs a sold-out event: free_tickets must be 0."""
    if waiting and free_tickets:
        raise ValueError("nobody waits while a ticket is free")
    booked_tickets, waiting_tickets = (
        len(users) if parties == 1 else sum(party_tickets(u, parties, salt) for u in users)
        for users in (booked, waiting)
    )
    total = booked_tickets + free_tickets
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        try:
            event_id = conn.execute(
                sa.text(
                    "INSERT INTO events (name, total_tickets, available_tickets, waiting_count,"
                    " waiting_tickets, waitlist_version, next_waiting_seq, waitlist_mode,"
                    " max_tickets_per_booking, held_back_tickets)"
                    " VALUES (:name, :total, :available, :waiting, :waiting_tickets, :waiting,"
                    " :next_seq, :mode, :max_tickets, 0)"
                ),
                {
                    "name": name,
                    "total": total,
                    "available": free_tickets,
                    "waiting": len(waiting),
                    "waiting_tickets": waiting_tickets,
                    "next_seq": len(waiting) + 1,
                    "mode": mode,
                    "max_tickets": parties if parties > 1 else 10,
                },
            ).lastrowid
            user = ":first + seq - 1"
            if booked:
                conn.execute(
                    sa.text(
                        "INSERT INTO bookings (event_id, user_id, tickets)"
                        f" SELECT :event_id, {user}, {_tickets_sql(user, parties)}"
                        f" FROM {_numbers(conn, len(booked))} n"
                    ),
                    {"event_id": event_id, "first": booked.start, "salt": salt},
                )
            if waiting:
                conn.execute(
                    sa.text(
                        "INSERT INTO waiting_list_entries (event_id, user_id, seq, tickets,"
                        f" overtakes) SELECT :event_id, {user}, seq,"
                        f" {_tickets_sql(user, parties)}, 0"
                        f" FROM {_numbers(conn, len(waiting))} n"
                    ),
                    {"event_id": event_id, "first": waiting.start, "salt": salt},
                )
        finally:
            conn.exec_driver_sql("SET SESSION unique_checks = 1, foreign_key_checks = 1")
    return SeededEvent(event_id, total, booked, waiting, parties, salt)


def clear(engine: sa.Engine) -> None:
    """Delete every booking, place and event. The two big tables are truncated (a
    million rows in a second, not a minute of DELETE); events are deleted, not
    truncated, so a new event never reuses an id a worker still has a cached waiting
    list for (their offers and line changes go with them: ON DELETE CASCADE)."""
    with engine.begin() as conn:
        for table in ("waiting_list_entries", "bookings"):
            conn.exec_driver_sql(f"TRUNCATE TABLE {table}")
        conn.exec_driver_sql("DELETE FROM events")


def seed_queue(
    engine: sa.Engine, event_id: int, users: range, parties: int = 1, salt: str = SALT
) -> int:
    """Queue `users` for a scheduled on-sale's opening, each a party of
    party_tickets(user, parties): the rows a booking writes while the event is queueing
    (queue_entries, and the event's queued_count and queued_tickets), in one INSERT ...
    SELECT, without the journal's queue.joined facts. The event must be queueing (made
    over HTTP with salesOpenAt ahead) and nobody queued yet. Returns the queued tickets."""
    tickets = sum(party_tickets(u, parties, salt) for u in users)
    user = ":first + seq - 1"
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        try:
            conn.execute(
                sa.text(
                    "INSERT INTO queue_entries (event_id, user_id, tickets)"
                    f" SELECT :event_id, {user}, {_tickets_sql(user, parties)}"
                    f" FROM {_numbers(conn, len(users))} n"
                ),
                {"event_id": event_id, "first": users.start, "salt": salt},
            )
            updated = conn.execute(
                sa.text(
                    "UPDATE events SET queued_count = :count, queued_tickets = :tickets"
                    " WHERE id = :event_id AND queueing AND queued_count = 0"
                ),
                {"event_id": event_id, "count": len(users), "tickets": tickets},
            ).rowcount
        finally:
            conn.exec_driver_sql("SET SESSION unique_checks = 1, foreign_key_checks = 1")
        if updated != 1:
            raise ValueError(f"event {event_id} is not queueing with an empty queue")
    return tickets
