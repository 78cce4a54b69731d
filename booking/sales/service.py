"""The service's entry points: changes go through the group commit to the rules
(rules.py), reads go straight to SQL."""

from dataclasses import dataclass

from sqlalchemy import Engine

from ..storage import lines, tickets
from ..storage import offers as offer_store
from ..storage import queue as queue_store
from . import rules
from .clock import Clock
from .domain import (
    Booked,
    Cancelled,
    Claimed,
    EventChanged,
    EventsPage,
    EventState,
    Held,
    Queued,
    UserBooking,
    UserBookingsPage,
    UserState,
    Waitlisted,
    paged,
)
from .group_commit import GroupCommit
from .idempotency import Key
from .locking import BookingLock
from .rules import existing
from .waiting_lists import WaitingLists

# What an event is created with unless the admin says otherwise.
DEFAULTS = {
    "waitlist_mode": "auto",
    "offer_ttl_seconds": 3600,
    "max_tickets_per_booking": 10,
    "max_overtakes": 3,
    "hold_ttl_seconds": 0,
    "sales_open_at": None,
}


@dataclass(frozen=True, slots=True)
class WaitingParty:
    user_id: int
    tickets: int
    overtakes: int


class BookingService:
    """The rules' entry points: changes go through the group commit, reads straight to SQL."""

    def __init__(self, engine: Engine, lock: BookingLock, waiting_lists: WaitingLists, **batching):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists
        self.clock = Clock()  # the database's; tests move it (clock.py)
        self.changes = GroupCommit(
            engine,
            lock,
            waiting_lists,
            before=rules.settle,
            clock=self.clock,
            **batching,
        )

    # Each change takes an optional Idempotency-Key; with one, it returns its Answer.

    def initialize(self, name: str, total: int, key: Key | None = None, **settings) -> EventState:
        """A new event; `settings` may set any of DEFAULTS' keys."""
        given = {k: v for k, v in settings.items() if v is not None}
        values = {"name": name, "total_tickets": total, **DEFAULTS, **given}
        return self.changes.run(None, None, lambda tx: rules.create(tx, values), key)

    def change_event(self, event_id: int, key: Key | None = None, **values) -> EventChanged:
        return self.changes.run(
            event_id, None, lambda tx: rules.change_event(tx, event_id, **values), key
        )

    def book(
        self, event_id: int, user_id: int, tickets: int = 1, key: Key | None = None
    ) -> Booked | Held | Queued | Waitlisted:
        rule = lambda tx: rules.book(tx, event_id, user_id, tickets)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def cancel(
        self, event_id: int, user_id: int, tickets: int | None = None, key: Key | None = None
    ) -> Cancelled:
        rule = lambda tx: rules.cancel(tx, event_id, user_id, tickets)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def claim(
        self, event_id: int, user_id: int, tickets: int | None = None, key: Key | None = None
    ) -> Claimed:
        rule = lambda tx: rules.claim(tx, event_id, user_id, tickets)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def settle(self, event_id: int) -> None:
        """Free the event's lapsed offers and holds, open its sales if their hour has come
        (every batch does that first: this is an empty change for events nobody else is
        changing; the worker sends it)."""
        self.changes.run(event_id, None, lambda tx: None)

    def status(self, event_id: int) -> EventState:
        with self.engine.connect() as conn:
            return EventState.of(existing(tickets.event(conn, event_id), event_id))

    def events(self, after_id: int, limit: int) -> EventsPage:
        with self.engine.connect() as conn:
            # One more than a page: is there a next page?
            rows = tickets.events_after(conn, after_id, limit + 1)
        rows, next_after = paged(rows, limit, lambda row: row.id)
        return EventsPage([EventState.of(row) for row in rows], next_after)

    def user_bookings(self, user_id: int, after_id: int, limit: int) -> UserBookingsPage:
        with self.engine.connect() as conn:
            rows = tickets.user_holdings(conn, user_id, after_id, limit + 1)
            rows, next_after = paged(rows, limit, lambda row: row[0])
            found = []
            for event_id, name, count, seq, overtakes, expires_at, kind in rows:
                held = (event_id, name)
                if kind == tickets.QUEUED:
                    found.append(UserBooking(*held, "queued", count))
                elif kind == "hold":
                    found.append(UserBooking(*held, "held", count, hold_expires_at=expires_at))
                elif expires_at is not None:
                    found.append(UserBooking(*held, "offered", count, offer_expires_at=expires_at))
                elif seq is not None:
                    position = lines.ahead(conn, event_id, seq) + 1
                    found.append(UserBooking(*held, "waitlisted", count, position, overtakes))
                else:
                    found.append(UserBooking(*held, "booked", count))
        return UserBookingsPage(user_id, found, next_after)

    def user_state(self, event_id: int, user_id: int) -> UserState:
        # One connection, one transaction: the reads share a snapshot.
        with self.engine.connect() as conn:
            event = existing(tickets.event_for_user(conn, event_id, user_id), event_id)
            if event.user_tickets is not None:
                return UserState(event_id, user_id, "booked", event.user_tickets)
            if event.offered_tickets or event.held_tickets:
                offer = offer_store.of_user(conn, event_id, user_id)
                if offer is not None:
                    expires_at, count, kind = offer
                    if kind == "hold":
                        return UserState(
                            event_id, user_id, "held", count, hold_expires_at=expires_at
                        )
                    return UserState(
                        event_id, user_id, "offered", count, offer_expires_at=expires_at
                    )
            place = lines.place(conn, event_id, user_id) if event.waiting_count else None
            if place is None and event.queued_count:
                queued = queue_store.of_user(conn, event_id, user_id)
                if queued is not None:
                    return UserState(event_id, user_id, "queued", queued)
        if place is None:
            return UserState(event_id, user_id, "none")
        position, count, overtakes = place
        return UserState(event_id, user_id, "waitlisted", count, position, overtakes)

    def waiting_list(self, event_id: int) -> list[WaitingParty]:
        """The line in order, from this process's copy once it is made current."""
        with self.lock.held(), self.engine.connect() as conn:
            event = existing(tickets.event(conn, event_id), event_id)
            line = self.waiting_lists.sync(conn, event)
            return [WaitingParty(p.user_id, p.tickets, p.overtakes) for p in line.parties.values()]
