"""The booking invariants, read straight from the database.

`check_invariants(database_url)` reads every event, booking and waiting-list
row in one transaction (one snapshot), asserts the rules the service promises,
and returns what it read so a test can make its own, sharper checks:

- an event never has more tickets booked and offered than it has;
- events.available_tickets == total_tickets - booked - offered - held tickets, and
  events.offered_tickets / held_tickets == the offers' / checkout holds' tickets;
- events.waiting_count == waiting rows, events.waiting_tickets == their tickets;
- no idle fit: a waiting party that fits the free tickets has, before it, a party
  that does not fit and may not be passed over again (overtakes >= max_overtakes,
  not larger than the event), and events.held_back_tickets says so;
- nobody holds two of a booking, an offer, a hold, a place and a queued party for one
  event;
- a scheduled on-sale's pre-queue: events.queued_count == the event's queue_entries rows,
  events.queued_tickets == their tickets; a queueing event has sales closed and a
  sales_open_at; an event not queueing has no queued party;
- (event_id, user_id) is unique in bookings and in waiting_list_entries, and
  (event_id, seq) is unique in waiting_list_entries, every seq below
  events.next_waiting_seq.

It also replays the journal (after giving every committed entry its entry id):
each event's entries, in entry order, must rebuild exactly its row, its
bookings and its line, so nothing committed is missing from the journal and
nothing else is in it.

Given `api_url`, it also asks the running service for each event's status and
checks it against the database (salesOpenAt, queueing, queuedCount and
queuedTickets too), and asks for the state of the queued users (all, or a sample
of QUEUED_USERS_ASKED of a large queue): each must be `queued` with its tickets;
given `admin_headers` too, it reads the admin waiting list (`waiting_list_reads`
times, so several workers answer) and checks it against the rows in seq order.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import sqlalchemy as sa

from booking.sales.domain import rfc3339
from booking.storage import journal

from .model_replay import model_violations

QUEUED_USERS_ASKED = 200  # queued users whose state check_invariants asks for, per event


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
    max_tickets_per_booking: int = 10
    max_overtakes: int = 3
    waiting_tickets: int = 0
    held_back_tickets: int = 0
    hold_ttl_seconds: int = 0
    held_tickets: int = 0
    booked: list[int] = field(default_factory=list)  # user ids, ascending
    booked_tickets: dict[int, int] = field(default_factory=dict)  # user id -> tickets
    offered: list[int] = field(default_factory=list)  # user ids holding an offer, by seq
    offer_tickets: dict[int, int] = field(default_factory=dict)  # user id -> tickets
    hold_tickets: dict[int, int] = field(default_factory=dict)  # checkout holds: user -> tickets
    waiting: list[int] = field(default_factory=list)  # user ids in line order (seq)
    seqs: list[int] = field(default_factory=list)  # the seqs of `waiting`, same order
    parties: list[tuple[int, int, int]] = field(default_factory=list)  # (user, tickets, overtakes)
    sales_open_at: datetime | None = None  # a scheduled on-sale's time (UTC, naive)
    queueing: bool = False  # bookings queue for the opening at sales_open_at
    queued_count: int = 0  # events.queued_count
    queued_tickets: int = 0  # events.queued_tickets
    queued: dict[int, int] = field(default_factory=dict)  # queue_entries: user -> tickets

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
            "maxTicketsPerBooking": self.max_tickets_per_booking,
            "maxOvertakes": self.max_overtakes,
            "waitingTickets": self.waiting_tickets,
            "holdTtlSeconds": self.hold_ttl_seconds,
            "heldTickets": self.held_tickets,
            "salesOpenAt": None if self.sales_open_at is None else rfc3339(self.sales_open_at),
            "queueing": self.queueing,
            "queuedCount": self.queued_count,
            "queuedTickets": self.queued_tickets,
        }

    def waiting_list(self) -> dict:
        """What GET /api/events/{id}/waiting-list should answer."""
        return {
            "eventId": self.event_id,
            "userIds": self.waiting,
            "entries": [
                {"userId": user, "tickets": tickets, "overtakes": overtakes}
                for user, tickets, overtakes in self.parties
            ],
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
                    max_tickets_per_booking=row.max_tickets_per_booking,
                    max_overtakes=row.max_overtakes,
                    waiting_tickets=row.waiting_tickets,
                    held_back_tickets=row.held_back_tickets,
                    hold_ttl_seconds=row.hold_ttl_seconds,
                    held_tickets=row.held_tickets,
                    sales_open_at=_datetime(row.sales_open_at),
                    queueing=bool(row.queueing),
                    queued_count=row.queued_count,
                    queued_tickets=row.queued_tickets,
                )
                for row in conn.execute(
                    sa.text(
                        "SELECT id, name, total_tickets, available_tickets, waiting_count,"
                        " waitlist_version, next_waiting_seq, sales_open, waitlist_mode,"
                        " offer_ttl_seconds, offered_tickets, max_tickets_per_booking,"
                        " max_overtakes, waiting_tickets, held_back_tickets, hold_ttl_seconds,"
                        " held_tickets, sales_open_at, queueing, queued_count, queued_tickets"
                        " FROM events ORDER BY id"
                    )
                )
            }
            for event_id, user_id, tickets, kind in conn.execute(
                sa.text(
                    "SELECT event_id, user_id, tickets, kind FROM offers ORDER BY event_id, seq"
                )
            ):
                if event_id not in events:
                    problems.append(f"{kind} to user {user_id} for missing event {event_id}")
                    continue
                if kind == "hold":
                    events[event_id].hold_tickets[user_id] = tickets
                else:
                    events[event_id].offered.append(user_id)
                    events[event_id].offer_tickets[user_id] = tickets
            for event_id, user_id, tickets in conn.execute(
                sa.text(
                    "SELECT event_id, user_id, tickets FROM bookings ORDER BY event_id, user_id"
                )
            ):
                if event_id not in events:
                    problems.append(f"booking of user {user_id} for missing event {event_id}")
                    continue
                events[event_id].booked.append(user_id)
                events[event_id].booked_tickets[user_id] = tickets
            for event_id, user_id, seq, tickets, overtakes in conn.execute(
                sa.text(
                    "SELECT event_id, user_id, seq, tickets, overtakes FROM waiting_list_entries"
                    " ORDER BY event_id, seq"
                )
            ):
                if event_id not in events:
                    problems.append(f"user {user_id} waits for missing event {event_id}")
                    continue
                events[event_id].waiting.append(user_id)
                events[event_id].seqs.append(seq)
                events[event_id].parties.append((user_id, tickets, overtakes))
            for event_id, user_id, tickets in conn.execute(
                sa.text(
                    "SELECT event_id, user_id, tickets FROM queue_entries"
                    " ORDER BY event_id, user_id"
                )
            ):
                if event_id not in events:
                    problems.append(f"user {user_id} queued for missing event {event_id}")
                    continue
                events[event_id].queued[user_id] = tickets
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


def _datetime(value) -> datetime | None:
    """A DATETIME column read by raw SQL: SQLite gives its text."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def event_violations(event: EventTruth) -> list[str]:
    where = f"event {event.event_id} (total {event.total})"
    found = []
    booked = sum(event.booked_tickets.values())
    offered = sum(event.offer_tickets.values())
    held = sum(event.hold_tickets.values())
    waiting = len(event.waiting)
    if booked + offered + held > event.total:
        found.append(f"{where}: {booked} booked, {offered} offered, {held} held exceed the total")
    if event.available != event.total - booked - offered - held:
        found.append(
            f"{where}: available_tickets {event.available} != total - booked - offered - held"
            f" ({event.total} - {booked} - {offered} - {held})"
        )
    if event.offered_tickets != offered:
        found.append(f"{where}: offered_tickets {event.offered_tickets} != {offered} offered")
    if event.held_tickets != held:
        found.append(f"{where}: held_tickets {event.held_tickets} != {held} held")
    kinds = [set(event.booked), set(event.waiting), set(event.offered), set(event.hold_tickets),
             set(event.queued)]  # fmt: skip
    if sum(map(len, kinds)) != len(set().union(*kinds)):
        found.append(
            f"{where}: a user holds two of a booking, a place, an offer, a hold and a queued party"
        )
    found.extend(queue_violations(event, where))
    if not 0 <= event.available <= event.total:
        found.append(f"{where}: available_tickets {event.available} out of range")
    if event.waiting_count != waiting:
        found.append(f"{where}: waiting_count {event.waiting_count} != {waiting} waiting rows")
    waiting_tickets = sum(tickets for _, tickets, _ in event.parties)
    if event.waiting_tickets != waiting_tickets:
        found.append(f"{where}: waiting_tickets {event.waiting_tickets} != {waiting_tickets}")
    found.extend(idle_fit_violations(event, where))
    if both := set(event.booked) & set(event.waiting):
        found.append(f"{where}: users both booked and waiting: {sorted(both)}")
    if len(set(event.booked)) != len(event.booked):
        found.append(f"{where}: a user holds two bookings")
    if len(set(event.waiting)) != waiting:
        found.append(f"{where}: a user waits twice")
    if event.seqs and max(event.seqs) >= event.next_waiting_seq:
        found.append(
            f"{where}: seq {max(event.seqs)} not below next_waiting_seq {event.next_waiting_seq}"
        )
    return found


def queue_violations(event: EventTruth, where: str) -> list[str]:
    """A scheduled on-sale's pre-queue: counted right, only while queueing, and queueing
    means sales closed until a salesOpenAt."""
    found = []
    if event.queued_count != len(event.queued):
        found.append(f"{where}: queued_count {event.queued_count} != {len(event.queued)} rows")
    if event.queued_tickets != sum(event.queued.values()):
        found.append(
            f"{where}: queued_tickets {event.queued_tickets} != {sum(event.queued.values())}"
        )
    if min(event.queued.values(), default=1) < 1:
        found.append(f"{where}: a queued party of no tickets: {event.queued}")
    if event.queueing and (event.sales_open or event.sales_open_at is None):
        found.append(
            f"{where}: queueing with salesOpen {event.sales_open}, salesOpenAt"
            f" {event.sales_open_at}"
        )
    if not event.queueing and event.queued:
        found.append(f"{where}: not queueing, yet {len(event.queued)} parties queued")
    return found


def idle_fit_violations(event: EventTruth, where: str) -> list[str]:
    """No idle fit: every waiting party that fits the free tickets has a blocking party
    before it; and held_back_tickets is the free tickets exactly when one blocks."""
    blocker = None  # the first party that may not be passed over and does not fit
    for user, tickets, overtakes in event.parties:
        limited = overtakes >= event.max_overtakes and tickets <= event.total
        if tickets <= event.available and blocker is None:
            return [f"{where}: user {user} waits for {tickets} while {event.available} are free"]
        if limited and blocker is None:
            blocker = user
    expected = event.available if blocker is not None else 0
    if event.held_back_tickets != expected:
        return [f"{where}: held_back_tickets {event.held_back_tickets} != {expected}"]
    return []


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
            found += queued_user_violations(client, event)
            if admin_headers is None:
                continue
            for _ in range(waiting_list_reads):
                response = client.get(
                    f"/api/events/{event.event_id}/waiting-list", headers=admin_headers
                )
                expected = event.waiting_list()
                if response.status_code != 200 or response.json() != expected:
                    found.append(
                        f"event {event.event_id}: API waiting list {response.status_code}"
                        f" {response.text.strip()} != database {event.waiting}"
                    )
                    break
    return found


def queued_user_violations(client: httpx.Client, event: EventTruth) -> list[str]:
    """The queued users' states say queued, with their tickets (a large queue: a sample
    spread over it)."""
    users = sorted(event.queued)
    if len(users) > QUEUED_USERS_ASKED:
        users = users[:: -(-len(users) // QUEUED_USERS_ASKED)]
    for user in users:
        response = client.get(f"/api/events/{event.event_id}/users/{user}")
        expected = {"eventId": event.event_id, "userId": user, "status": "queued",
                    "tickets": event.queued[user]}  # fmt: skip
        if response.status_code != 200 or response.json() != expected:
            return [
                f"event {event.event_id}: queued user {user}: API {response.status_code}"
                f" {response.text.strip()} != database {expected}"
            ]
    return []


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
    """Each event as its journal tells it, each fact checked against the rule as it is
    replayed in commit order (see Replayed), and the whole journal written again by the
    reference model fed the same changes (model_replay.py); {event_id: the replayed
    state}."""
    engine = sa.create_engine(database_url)
    found: list[str] = []
    replayed: dict[int, Replayed] = {}
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
    facts: dict[int, list[tuple]] = {}
    for entry_id, type_, event_id, user_id, data in rows:
        where = f"journal entry {entry_id} ({type_}, event {event_id}, user {user_id})"
        if entry_id is None:
            found.append(f"{where}: never given an entry id")
            continue
        data = json.loads(data)
        facts.setdefault(event_id, []).append((type_, user_id, data))
        if type_ == "event.created":
            replayed[event_id] = Replayed(data)
        elif event_id not in replayed:
            found.append(f"{where}: before the event's event.created")
        else:
            found.extend(
                f"{where}: {problem}" for problem in replayed[event_id].apply(type_, user_id, data)
            )
    found += model_violations(facts)
    return {event_id: event.state() for event_id, event in replayed.items()}, found


class Replayed:
    """An event rebuilt from its journal, fact by fact, checking the allocation's rule on
    every party served: it fitted the free tickets; every waiting party before it did
    not fit and could still be passed over (or was larger than the event), and exactly
    those count an overtake; a buyer who booked while others waited passed them all.
    Between changes nobody who fits waits without a blocking party before them.

    A scheduled on-sale: parties queue only while the event queues, each user once, for
    the event's salesOpenAt; nothing is booked, held or joins the line while it queues.
    sale.opened takes the whole queue (its counts say so) and is followed by one fact per
    queued party, `fromQueue`, with the tickets it queued, as many booked, held and
    waitlisted as it says, before anything else the change does."""

    def __init__(self, data: dict):
        queueing = bool(data.get("queueing", False))
        self.settings = {
            "name": data["eventName"],
            "total": data["totalTickets"],
            "salesOpen": not queueing,
            "salesOpenAt": data.get("salesOpenAt"),
            "queueing": queueing,
            "mode": data.get("waitlistMode", "auto"),
            "ttl": data.get("offerTtlSeconds", 3600),
            "maxTickets": data.get("maxTicketsPerBooking", 10),
            "maxOvertakes": data.get("maxOvertakes", 3),
            "holdTtl": data.get("holdTtlSeconds", 0),
        }
        self.booked: dict[int, int] = {}
        self.offered: dict[int, int] = {}
        self.held: dict[int, int] = {}  # checkout holds
        self.line: list[list[int]] = []  # [user, tickets, overtakes] in line order
        self.queue: dict[int, int] = {}  # queued parties: user -> tickets
        self.opening: dict[int, int] = {}  # the parties the opening took, not yet served
        self.tally: dict[str, int] = {}  # what sale.opened said of them, counted down
        self.previous: str | None = None  # the type of the fact before
        self.patch_opens = False  # an event.updated that opens the sale: sale.opened follows

    @property
    def free(self) -> int:
        taken = sum(self.booked.values()) + sum(self.offered.values()) + sum(self.held.values())
        return self.settings["total"] - taken

    def state(self) -> dict:
        return {
            **self.settings,
            "booked": self.booked,
            "line": self.line,
            "offered": self.offered,
            "held": self.held,
            "queue": self.queue,
        }

    def apply(self, type_: str, user: int | None, data: dict) -> list[str]:
        found = self.queued_facts(type_, user, data)
        served = type_ in ("booking.promoted", "offer.created")
        # Every change but its served parties ends in no idle fit; lapses settled together
        # are freed together before their one allocation.
        lapses = ("offer.expired", "hold.expired")
        if not served and not (type_ in lapses and self.previous in lapses):
            found += self.idle_fit()
        self.previous = type_
        held = (
            user in self.booked
            or user in self.offered
            or user in self.held
            or self.place(user) is not None
            or user in self.queue
        )
        tickets = data.get("tickets", 1)
        if type_ == "event.updated":
            for key, name in (
                ("eventName", "name"), ("totalTickets", "total"), ("salesOpen", "salesOpen"),
                ("waitlistMode", "mode"), ("offerTtlSeconds", "ttl"),
                ("maxTicketsPerBooking", "maxTickets"), ("maxOvertakes", "maxOvertakes"),
                ("holdTtlSeconds", "holdTtl"), ("salesOpenAt", "salesOpenAt"),
                ("queueing", "queueing"),
            ):  # fmt: skip
                if key in data:
                    self.settings[name] = data[key]
            if data.get("queueing") and data.get("salesOpen") is not False:
                found.append("an event that queues must close sales")
            if data.get("queueing") is False:
                if data.get("salesOpen") is not True:
                    found.append("an event that stops queueing opens sales")
                self.patch_opens = True
        elif type_ in ("booking.booked", "hold.created"):
            if held:
                found.append("the user already held a booking, an offer, a hold or a place")
            if tickets > self.free:
                found.append(f"{type_}: {tickets} with {self.free} free")
            if (type_ == "hold.created") != bool(self.settings["holdTtl"]):
                found.append(f"{type_} while holdTtlSeconds is {self.settings['holdTtl']}")
            found += self.passing(len(self.line), data.get("overtookUserIds"))
            (self.booked if type_ == "booking.booked" else self.held)[user] = tickets
        elif type_ == "waitlist.joined":
            if held:
                found.append("the user already held a booking, an offer or a place")
            self.line.append([user, tickets, 0])
            if data.get("position") != len(self.line):
                found.append(f"position {data.get('position')} != {len(self.line)}")
        elif type_ == "booking.cancelled":
            if self.booked.get(user, 0) < tickets:
                found.append(f"gave back {tickets} of {self.booked.get(user, 0)} booked")
            self.booked[user] = self.booked.get(user, 0) - tickets
            if self.booked[user] != data.get("remainingTickets", 0):
                found.append(
                    f"remainingTickets {data.get('remainingTickets')} != {self.booked[user]}"
                )
            if not self.booked[user]:
                del self.booked[user]
        elif type_ in ("waitlist.left", "waitlist.reduced"):
            index = self.place(user)
            if index is None:
                found.append("the user was not in line")
            else:
                self.line[index][1] -= tickets
                if (self.line[index][1] == 0) != (type_ == "waitlist.left"):
                    found.append(f"{self.line[index][1]} tickets left in line")
                if not self.line[index][1]:
                    del self.line[index]
        elif served:
            index = self.place(user)
            if index is None:
                found.append("served but not in line")
            else:
                party = self.line[index]
                if party[1] != tickets:
                    found.append(f"served {tickets} of a party of {party[1]} (not whole)")
                if tickets > self.free:
                    found.append(f"served {tickets} with {self.free} free")
                found += self.passing(index, data.get("overtookUserIds", []))
                del self.line[self.place(user)]
            (self.booked if type_ == "booking.promoted" else self.offered)[user] = tickets
        elif type_.split(".")[0] in ("offer", "hold"):
            # An offer or hold ends once: claimed, declined (released) or lapsed.
            ended = self.offered if type_.startswith("offer.") else self.held
            offered = ended.pop(user, None)
            if offered is None:
                found.append(f"the user held no {type_.split('.')[0]}")
            elif type_.endswith(".claimed"):
                self.booked[user] = self.booked.get(user, 0) + tickets
                if tickets + data.get("releasedTickets", 0) != offered:
                    found.append(f"claimed {tickets} + released != {offered} offered")
            elif tickets != offered:
                found.append(f"{tickets} ended of an offer of {offered}")
        elif type_ in ("queue.joined", "queue.left", "queue.reduced", "sale.opened"):
            found += self.queue_fact(type_, user, data, held)
        elif type_ != "event.created":
            found.append("unknown type")
        return found

    def queued_facts(self, type_: str, user: int | None, data: dict) -> list[str]:
        """Between sale.opened and its last queued party nothing else happens but the
        parties their arrivals serve; each party served from the queue is one it took, with
        its tickets, and the tally of outcomes is sale.opened's."""
        found = []
        if data.get("fromQueue"):
            outcome = {"booking.booked": "booked", "hold.created": "held",
                       "waitlist.joined": "waitlisted"}.get(type_)  # fmt: skip
            if outcome is None:
                found.append("fromQueue on a fact that serves no buyer")
            elif self.opening.get(user) != data.get("tickets"):
                found.append(f"served from the queue, which held {self.opening.get(user)}")
            self.opening.pop(user, None)
            self.tally[outcome] = self.tally.get(outcome, 0) - 1
            if not self.opening and any(self.tally.values()):
                found.append(f"sale.opened's counts are off by {self.tally}")
        elif self.opening and type_ not in ("booking.promoted", "offer.created"):
            found.append(f"before the opening served {sorted(self.opening)}")
        elif self.patch_opens and type_ not in ("booking.promoted", "offer.created", "sale.opened"):
            found.append("an event.updated that opens the sale, and no sale.opened after it")
        elif self.settings["queueing"] and type_ in (
            "booking.booked",
            "hold.created",
            "waitlist.joined",
        ):
            found.append("a buyer served while the event queues")
        return found

    def queue_fact(self, type_: str, user: int | None, data: dict, held: bool) -> list[str]:
        found = []
        tickets = data.get("tickets", 0)
        if type_ == "queue.joined":
            if not self.settings["queueing"]:
                found.append("queued while the event does not queue")
            if held:
                found.append("the user already held something there, or was queued")
            if data.get("salesOpenAt") != self.settings["salesOpenAt"]:
                found.append(f"queued for {data.get('salesOpenAt')}, not the event's salesOpenAt")
            if not 1 <= tickets <= self.settings["maxTickets"]:
                most = self.settings["maxTickets"]
                found.append(f"queued {tickets} (maxTicketsPerBooking {most})")
            self.queue[user] = tickets
        elif type_ in ("queue.left", "queue.reduced"):
            queued = self.queue.get(user)
            if queued is None:
                return ["the user was not queued"]
            remaining = queued - tickets
            if remaining != data.get("remainingTickets") or (remaining == 0) != (
                type_ == "queue.left"
            ):
                found.append(f"{tickets} of {queued} left the queue, remaining {data}")
            if remaining > 0:
                self.queue[user] = remaining
            else:
                del self.queue[user]
        else:  # sale.opened: the queue is taken whole; the event is open from now on
            if not (self.settings["queueing"] or self.patch_opens):
                found.append("opened an event that did not queue")
            if data.get("salesOpenAt") != self.settings["salesOpenAt"]:
                found.append(f"opened for {data.get('salesOpenAt')}, not the event's salesOpenAt")
            if (data.get("queuedParties"), data.get("queuedTickets")) != (
                len(self.queue),
                sum(self.queue.values()),
            ):
                found.append(f"sale.opened {data} with {self.queue} queued")
            if self.opening:
                found.append(f"opened again before serving {sorted(self.opening)}")
            counts = {key: data.get(key, 0) for key in ("booked", "held", "waitlisted")}
            if sum(counts.values()) != len(self.queue):
                found.append(f"sale.opened counts {counts} for {len(self.queue)} parties")
            self.opening, self.queue, self.tally = self.queue, {}, counts
            self.settings.update(queueing=False, salesOpen=True)
            self.patch_opens = False
        return found

    def place(self, user) -> int | None:
        for index, party in enumerate(self.line):
            if party[0] == user:
                return index
        return None

    def passing(self, index: int, passed: list[int]) -> list[str]:
        """A party served from `index` (len(line): a buyer present) passes every party
        before it that is not larger than the event; each must not fit and must not be
        at the overtake limit; each counts one more overtake."""
        total, limit, free = self.settings["total"], self.settings["maxOvertakes"], self.free
        expected = [party for party in self.line[:index] if party[1] <= total]
        found = []
        if [party[0] for party in expected] != passed:
            found.append(f"overtookUserIds {passed} != {[p[0] for p in expected]}")
        for party in expected:
            if party[1] <= free:
                found.append(f"passed user {party[0]}, whose {party[1]} tickets fitted {free}")
            if party[2] >= limit:
                found.append(f"passed user {party[0]} at {party[2]} overtakes (limit {limit})")
            party[2] += 1
        return found

    def idle_fit(self) -> list[str]:
        free, total, limit = self.free, self.settings["total"], self.settings["maxOvertakes"]
        for user, tickets, overtakes in self.line:
            if tickets <= free:
                return [f"user {user} waited for {tickets} while {free} were free"]
            if overtakes >= limit and tickets <= total:
                return []
        return []


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
            "maxTickets": event.max_tickets_per_booking,
            "maxOvertakes": event.max_overtakes,
            "holdTtl": event.hold_ttl_seconds,
            "salesOpenAt": None if event.sales_open_at is None else rfc3339(event.sales_open_at),
            "queueing": event.queueing,
            "queue": event.queued,
            "booked": event.booked_tickets,
            "line": [list(party) for party in event.parties],
            "offered": event.offer_tickets,
            "held": event.hold_tickets,
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
