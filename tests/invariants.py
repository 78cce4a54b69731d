"""The booking invariants, read straight from the database.

`check_invariants(database_url)` reads every event, booking and waiting-list
row in one transaction (one snapshot), asserts the rules the service promises,
and returns what it read so a test can make its own, sharper checks:

- an event never has more booked rows than tickets;
- events.available_tickets == total_tickets - booked rows - offer rows, and
  events.offered_tickets == offer rows;
- live offers go in line order: every offer's seq is below every waiting seq;
- events.waiting_count == waiting rows;
- nobody waits while a ticket is free;
- nobody holds two of a ticket, an offer and a place for one event;
- (event_id, user_id) is unique in bookings and in waiting_list_entries, and
  (event_id, seq) is unique in waiting_list_entries, every seq below
  events.next_waiting_seq.

It also replays the journal (after giving every committed entry its entry id):
each event's entries, in entry order, must rebuild exactly its row, its
bookings and its line, so nothing committed is missing from the journal and
nothing else is in it.

Given `api_url`, it also asks the running service for each event's status and
checks it against the database; given `admin_headers` too, it reads the admin
waiting list (`waiting_list_reads` times, so several workers answer) and
checks it against the rows in seq order.
"""

import json
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from booking.storage import journal


@dataclass
class EventTruth:
    """One event as the database holds it."""

    event_id: int
    name: str
    total: int
    available: int
    waiting_count: int
    waitlist_version: int
    next_waiting_seq: int
    sales_open: bool = True
    waitlist_mode: str = "auto"
    offer_ttl_seconds: int = 3600
    offered_tickets: int = 0
    booked: list[int] = field(default_factory=list)  # user ids, ascending
    offered: list[int] = field(default_factory=list)  # user ids holding an offer, by seq
    offer_seqs: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # user ids in line order (seq)
    seqs: list[int] = field(default_factory=list)  # the seqs of `waiting`, same order

    def status(self) -> dict:
        """What GET /api/events/status/{id} should answer."""
        return {
            "eventId": self.event_id,
            "eventName": self.name,
            "totalTickets": self.total,
            "availableTickets": self.available,
            "waitingListCount": self.waiting_count,
            "salesOpen": self.sales_open,
            "waitlistMode": self.waitlist_mode,
            "offerTtlSeconds": self.offer_ttl_seconds,
            "offeredTickets": self.offered_tickets,
        }


class InvariantViolation(AssertionError):
    pass


def read_truth(database_url: str) -> tuple[dict[int, EventTruth], list[str]]:
    """Every event with its rows, plus any duplicate or orphan rows found, in one snapshot."""
    engine = sa.create_engine(database_url)
    problems: list[str] = []
    try:
        # PyMySQL runs with autocommit off, so these reads are one InnoDB
        # transaction: the first one fixes the snapshot the rest see.
        with engine.connect() as conn:
            events = {
                row.id: EventTruth(
                    event_id=row.id,
                    name=row.name,
                    total=row.total_tickets,
                    available=row.available_tickets,
                    waiting_count=row.waiting_count,
                    waitlist_version=row.waitlist_version,
                    next_waiting_seq=row.next_waiting_seq,
                    sales_open=bool(row.sales_open),
                    waitlist_mode=row.waitlist_mode,
                    offer_ttl_seconds=row.offer_ttl_seconds,
                    offered_tickets=row.offered_tickets,
                )
                for row in conn.execute(
                    sa.text(
                        "SELECT id, name, total_tickets, available_tickets, waiting_count,"
                        " waitlist_version, next_waiting_seq, sales_open, waitlist_mode,"
                        " offer_ttl_seconds, offered_tickets FROM events ORDER BY id"
                    )
                )
            }
            for event_id, user_id, seq in conn.execute(
                sa.text("SELECT event_id, user_id, seq FROM offers ORDER BY event_id, seq")
            ):
                if event_id not in events:
                    problems.append(f"offer to user {user_id} for missing event {event_id}")
                    continue
                events[event_id].offered.append(user_id)
                events[event_id].offer_seqs.append(seq)
            for event_id, user_id in conn.execute(
                sa.text("SELECT event_id, user_id FROM bookings ORDER BY event_id, user_id")
            ):
                if event_id not in events:
                    problems.append(f"booking of user {user_id} for missing event {event_id}")
                    continue
                events[event_id].booked.append(user_id)
            for event_id, user_id, seq in conn.execute(
                sa.text(
                    "SELECT event_id, user_id, seq FROM waiting_list_entries ORDER BY event_id, seq"
                )
            ):
                if event_id not in events:
                    problems.append(f"user {user_id} waits for missing event {event_id}")
                    continue
                events[event_id].waiting.append(user_id)
                events[event_id].seqs.append(seq)
            for table, columns in (
                ("bookings", "event_id, user_id"),
                ("waiting_list_entries", "event_id, user_id"),
                ("waiting_list_entries", "event_id, seq"),
            ):
                for row in conn.execute(
                    sa.text(
                        f"SELECT {columns}, COUNT(*) FROM {table}"
                        f" GROUP BY {columns} HAVING COUNT(*) > 1"
                    )
                ):
                    key, times = tuple(row[:2]), row[2]
                    problems.append(f"{table}: ({columns}) = {key} occurs {times} times")
    finally:
        engine.dispose()
    return events, problems


def event_violations(event: EventTruth) -> list[str]:
    where = f"event {event.event_id} (total {event.total})"
    found = []
    booked, waiting, offered = len(event.booked), len(event.waiting), len(event.offered)
    if booked + offered > event.total:
        found.append(f"{where}: {booked} booked and {offered} offered exceed the total")
    if event.available != event.total - booked - offered:
        found.append(
            f"{where}: available_tickets {event.available} != total - booked - offered"
            f" ({event.total} - {booked} - {offered})"
        )
    if event.offered_tickets != offered:
        found.append(f"{where}: offered_tickets {event.offered_tickets} != {offered} offers")
    if event.offer_seqs and event.seqs and max(event.offer_seqs) > min(event.seqs):
        found.append(f"{where}: an offer went past someone earlier in line")
    if held_twice := (set(event.booked) | set(event.waiting)) & set(event.offered):
        found.append(f"{where}: users holding an offer and a ticket or place: {held_twice}")
    if not 0 <= event.available <= event.total:
        found.append(f"{where}: available_tickets {event.available} out of range")
    if event.waiting_count != waiting:
        found.append(f"{where}: waiting_count {event.waiting_count} != {waiting} waiting rows")
    if event.available > 0 and waiting:
        found.append(f"{where}: {waiting} wait while {event.available} tickets are free")
    if both := set(event.booked) & set(event.waiting):
        found.append(f"{where}: users both booked and waiting: {sorted(both)}")
    if len(set(event.booked)) != booked:
        found.append(f"{where}: a user holds two bookings")
    if len(set(event.waiting)) != waiting:
        found.append(f"{where}: a user waits twice")
    if event.seqs and max(event.seqs) >= event.next_waiting_seq:
        found.append(
            f"{where}: seq {max(event.seqs)} not below next_waiting_seq {event.next_waiting_seq}"
        )
    return found


def api_violations(
    events: dict[int, EventTruth],
    api_url: str,
    admin_headers: dict | None = None,
    waiting_list_reads: int = 1,
) -> list[str]:
    found = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for event in events.values():
            response = client.get(f"/api/events/status/{event.event_id}")
            if response.status_code != 200 or response.json() != event.status():
                found.append(
                    f"event {event.event_id}: API status {response.status_code}"
                    f" {response.text.strip()} != database {event.status()}"
                )
            if admin_headers is None:
                continue
            for _ in range(waiting_list_reads):
                response = client.get(
                    f"/api/events/{event.event_id}/waiting-list", headers=admin_headers
                )
                expected = {"eventId": event.event_id, "userIds": event.waiting}
                if response.status_code != 200 or response.json() != expected:
                    found.append(
                        f"event {event.event_id}: API waiting list {response.status_code}"
                        f" {response.text.strip()} != database {event.waiting}"
                    )
                    break
    return found


def check_invariants(
    database_url: str,
    api_url: str | None = None,
    admin_headers: dict | None = None,
    waiting_list_reads: int = 1,
    check_journal: bool = True,
) -> dict[int, EventTruth]:
    """Assert the invariants (and, given `api_url`, that the API agrees); return the truth.

    Call it while nothing else changes the database: the API reads come after
    the snapshot.
    """
    events, found = read_truth(database_url)
    for event in events.values():
        found.extend(event_violations(event))
    if check_journal:
        found.extend(journal_violations(database_url, events))
    if api_url is not None:
        found.extend(api_violations(events, api_url, admin_headers, waiting_list_reads))
    if found:
        raise InvariantViolation(
            f"{len(found)} invariant violation(s):\n" + "\n".join("  " + f for f in found)
        )
    return events


def replay_journal(database_url: str) -> tuple[dict[int, dict], list[str]]:
    """Each event as its journal tells it: {event_id: {name, total, salesOpen, booked, line}}."""
    engine = sa.create_engine(database_url)
    found: list[str] = []
    replayed: dict[int, dict] = {}
    try:
        while journal.sequence(engine):
            pass
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    sa.text(
                        "SELECT entry_id, type, event_id, user_id, data FROM journal_entries"
                        " ORDER BY event_id, entry_id"
                    )
                )
            )
    finally:
        engine.dispose()
    for entry_id, type_, event_id, user_id, data in rows:
        data = json.loads(data)
        where = f"journal entry {entry_id} ({type_}, event {event_id}, user {user_id})"
        if entry_id is None:
            found.append(f"{where}: never given an entry id")
            continue
        if type_ == "event.created":
            replayed[event_id] = {
                "name": data["eventName"],
                "total": data["totalTickets"],
                "salesOpen": True,
                "mode": data.get("waitlistMode", "auto"),
                "ttl": data.get("offerTtlSeconds", 3600),
                "booked": set(),
                "line": [],
                "offered": set(),
            }
            continue
        event = replayed.get(event_id)
        if event is None:
            found.append(f"{where}: before the event's event.created")
            continue
        booked, line, offered = event["booked"], event["line"], event["offered"]
        if type_ == "event.updated":
            for key, field_ in (
                ("eventName", "name"),
                ("totalTickets", "total"),
                ("waitlistMode", "mode"),
                ("offerTtlSeconds", "ttl"),
            ):
                if key in data:
                    event[field_] = data[key]
            event["salesOpen"] = data.get("salesOpen", event["salesOpen"])
        elif type_ == "booking.booked":
            if user_id in booked or user_id in line or user_id in offered:
                found.append(f"{where}: the user already held a ticket, an offer or a place")
            booked.add(user_id)
        elif type_ == "waitlist.joined":
            line.append(user_id)
            if data.get("position") != len(line):
                found.append(f"{where}: position {data.get('position')} != {len(line)}")
        elif type_ == "booking.cancelled":
            if user_id not in booked:
                found.append(f"{where}: the user held no ticket")
            booked.discard(user_id)
        elif type_ == "waitlist.left":
            if user_id not in line:
                found.append(f"{where}: the user was not in line")
            else:
                line.remove(user_id)
        elif type_ in ("booking.promoted", "offer.created"):
            if not line or line[0] != user_id:
                found.append(f"{where}: not the head of the line {line[:3]}")
            if user_id in line:
                line.remove(user_id)
            (booked if type_ == "booking.promoted" else offered).add(user_id)
        elif type_ in ("offer.claimed", "offer.declined", "offer.expired"):
            # An offer ends once: claimed, declined or lapsed.
            if user_id not in offered:
                found.append(f"{where}: the user held no offer")
            offered.discard(user_id)
            if type_ == "offer.claimed":
                booked.add(user_id)
        else:
            found.append(f"{where}: unknown type")
    return replayed, found


def journal_violations(database_url: str, events: dict[int, EventTruth]) -> list[str]:
    replayed, found = replay_journal(database_url)
    for event_id in replayed.keys() - events.keys():
        found.append(f"event {event_id}: in the journal, not in the database")
    for event in events.values():
        told = replayed.get(event.event_id)
        if told is None:
            found.append(f"event {event.event_id}: no event.created in the journal")
            continue
        truth = {
            "name": event.name,
            "total": event.total,
            "salesOpen": event.sales_open,
            "mode": event.waitlist_mode,
            "ttl": event.offer_ttl_seconds,
            "booked": set(event.booked),
            "line": event.waiting,
            "offered": set(event.offered),
        }
        for key, value in truth.items():
            if told[key] != value:
                found.append(
                    f"event {event.event_id}: the journal says {key}={_short(told[key])},"
                    f" the tables {_short(value)}"
                )
    return found


def _short(value) -> str:
    text = repr(sorted(value) if isinstance(value, set) else value)
    return text if len(text) < 200 else text[:200] + "..."
