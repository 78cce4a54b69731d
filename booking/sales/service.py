"""The service's entry points: changes go through the group commit to the rules
(rules.py), reads go straight to SQL."""

from sqlalchemy import Engine

from ..storage import offers as offer_store
from ..storage import tickets
from . import rules
from .domain import (
    Booked,
    Cancelled,
    Claimed,
    DeclinedOffer,
    EventChanged,
    EventsPage,
    EventState,
    LeftWaitingList,
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


class BookingService:
    """The rules' entry points: changes go through the group commit, reads straight to SQL."""

    def __init__(self, engine: Engine, lock: BookingLock, waiting_lists: WaitingLists, **batching):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists
        self.changes = GroupCommit(
            engine, lock, waiting_lists, before=rules.settle_lapsed_offers, **batching
        )

    # Each change takes an optional Idempotency-Key; with one, it returns its Answer.

    def initialize(
        self, name: str, total: int, mode: str = "auto", ttl: int = 3600, key: Key | None = None
    ) -> EventState:
        rule = lambda tx: rules.create(tx, name, total, mode, ttl)  # noqa: E731
        return self.changes.run(None, None, rule, key)

    def change_event(self, event_id: int, key: Key | None = None, **values) -> EventChanged:
        return self.changes.run(
            event_id, None, lambda tx: rules.change_event(tx, event_id, **values), key
        )

    def book(self, event_id: int, user_id: int, key: Key | None = None) -> Booked | Waitlisted:
        rule = lambda tx: rules.book(tx, event_id, user_id)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def cancel(
        self, event_id: int, user_id: int, key: Key | None = None
    ) -> Cancelled | DeclinedOffer | LeftWaitingList:
        rule = lambda tx: rules.cancel(tx, event_id, user_id)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def claim(self, event_id: int, user_id: int, key: Key | None = None) -> Claimed:
        rule = lambda tx: rules.claim(tx, event_id, user_id)  # noqa: E731
        return self.changes.run(event_id, user_id, rule, key)

    def settle(self, event_id: int) -> None:
        """Pass on the event's lapsed offers (every batch does that first: this is an
        empty change for events nobody else is changing; the worker sends it)."""
        self.changes.run(event_id, None, lambda tx: None)

    def status(self, event_id: int) -> EventState:
        with self.engine.connect() as conn:
            return EventState.of(existing(tickets.event(conn, event_id), event_id))

    def events(self, after_id: int, limit: int) -> EventsPage:
        with self.engine.connect() as conn:
            rows = tickets.events_after(
                conn, after_id, limit + 1
            )  # one more: is there a next page?
        rows, next_after = paged(rows, limit, lambda row: row.id)
        return EventsPage([EventState.of(row) for row in rows], next_after)

    def user_bookings(self, user_id: int, after_id: int, limit: int) -> UserBookingsPage:
        with self.engine.connect() as conn:
            rows = tickets.user_holdings(conn, user_id, after_id, limit + 1)
            rows, next_after = paged(rows, limit, lambda row: row[0])
            found = []
            for event_id, name, seq, expires_at in rows:
                if expires_at is not None:
                    found.append(UserBooking(event_id, name, "offered", None, expires_at))
                elif seq is not None:
                    position = tickets.waiting_ahead(conn, event_id, seq) + 1
                    found.append(UserBooking(event_id, name, "waitlisted", position))
                else:
                    found.append(UserBooking(event_id, name, "booked"))
        return UserBookingsPage(user_id, found, next_after)

    def user_state(self, event_id: int, user_id: int) -> UserState:
        # One connection, one transaction: the reads share a snapshot.
        with self.engine.connect() as conn:
            event = existing(tickets.event_for_booking(conn, event_id, user_id), event_id)
            if event.user_booked:
                return UserState(event_id, user_id, "booked")
            if event.offered_tickets:
                expires_at = offer_store.of_user(conn, event_id, user_id)
                if expires_at is not None:
                    return UserState(event_id, user_id, "offered", None, expires_at)
            position = tickets.position(conn, event_id, user_id)
        if position is None:
            return UserState(event_id, user_id, "none")
        return UserState(event_id, user_id, "waitlisted", position)

    def waiting_list(self, event_id: int) -> list[int]:
        """The line in order, from this process's copy once it is made current."""
        with self.lock.held(), self.engine.connect() as conn:
            event = existing(tickets.event(conn, event_id), event_id)
            return list(self.waiting_lists.sync(conn, event).queue)
