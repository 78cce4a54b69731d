"""Events with many bookings and a long waiting list, written straight in SQL.

A million bookings through the API would take longer than the whole benchmark,
so the growth and cancel-storm events are made with INSERT ... SELECT from a
number sequence (MariaDB's SEQUENCE engine `seq_1_to_N`, or a cross join of
digits elsewhere), and the event row's counters are set to match the rows, as
if every booking and every join had gone through the service:

    total_tickets = available_tickets + booked rows
    waiting_count = waiting rows, next_waiting_seq = waiting rows + 1
    waitlist_version = waiting rows (each join bumped it once)

Seeding runs with unique and foreign-key checks off for speed; the numbers are
unique by construction and the event exists.
"""

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass
class SeededEvent:
    event_id: int
    total: int
    booked: range  # user ids holding a ticket
    waiting: range  # user ids in line order (seq 1, 2, ...)


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
) -> SeededEvent:
    """An event whose tickets are held by `booked` (plus `free_tickets` unsold), with
    `waiting` in line after them. A line needs a sold-out event: free_tickets must be 0."""
    if waiting and free_tickets:
        raise ValueError("nobody waits while a ticket is free")
    total = len(booked) + free_tickets
    with engine.begin() as conn:
        conn.exec_driver_sql("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        try:
            event_id = conn.execute(
                sa.text(
                    "INSERT INTO events (name, total_tickets, available_tickets, waiting_count,"
                    " waitlist_version, next_waiting_seq, waitlist_mode)"
                    " VALUES (:name, :total, :available, :waiting, :waiting, :next_seq, :mode)"
                ),
                {
                    "name": name,
                    "total": total,
                    "available": free_tickets,
                    "waiting": len(waiting),
                    "next_seq": len(waiting) + 1,
                    "mode": mode,
                },
            ).lastrowid
            if booked:
                conn.execute(
                    sa.text(
                        "INSERT INTO bookings (event_id, user_id)"
                        f" SELECT :event_id, :first + seq - 1 FROM {_numbers(conn, len(booked))} n"
                    ),
                    {"event_id": event_id, "first": booked.start},
                )
            if waiting:
                conn.execute(
                    sa.text(
                        "INSERT INTO waiting_list_entries (event_id, user_id, seq)"
                        f" SELECT :event_id, :first + seq - 1, seq"
                        f" FROM {_numbers(conn, len(waiting))} n"
                    ),
                    {"event_id": event_id, "first": waiting.start},
                )
        finally:
            conn.exec_driver_sql("SET SESSION unique_checks = 1, foreign_key_checks = 1")
    return SeededEvent(event_id, total, booked, waiting)


def clear(engine: sa.Engine) -> None:
    """Delete every row (DELETE, not TRUNCATE: new events must never reuse an id a
    worker still has a cached waiting list for)."""
    with engine.begin() as conn:
        for table in ("waiting_list_entries", "bookings", "events"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
