"""The booking rules: initialize, book, cancel, and what they report.

Every change is a rule run by the group commit (changes.py) against its batch's
view (batch.py): it sees and leaves the invariants whole (booked + available =
total, nobody waits while a ticket is free, a user holds at most one ticket or
one place per event), and decides every refusal before it changes anything.
"""

from sqlalchemy import Engine

from . import journal, store
from .batch import Batch, EventView
from .changes import GroupCommit
from .domain import (
    AlreadyBooked,
    AlreadyWaiting,
    Booked,
    Cancelled,
    CapacityBelowHeld,
    EventChanged,
    EventNotFound,
    EventsPage,
    EventState,
    LeftWaitingList,
    NothingToCancel,
    SalesClosed,
    UserBooking,
    UserBookingsPage,
    UserState,
    Waitlisted,
)
from .idempotency import Key
from .locking import BookingLock
from .waitlist import WaitingLists


def book(tx: Batch, event_id: int, user_id: int) -> Booked | Waitlisted:
    event = _existing(tx.event(event_id), event_id)
    if not event.sales_open:
        raise SalesClosed(event_id)
    if tx.holds_ticket(event, user_id):
        raise AlreadyBooked(event_id, user_id)
    if tx.place(event, user_id) is not None:
        raise AlreadyWaiting(event_id, user_id, tx.position(event, user_id))
    if event.available_tickets > 0:
        # A free ticket means nobody waits.
        tx.take_ticket(event)
        tx.add_booking(event, user_id)
        tx.record("booking.booked", event_id, user_id)
        return Booked(event_id, user_id)
    position = tx.join_waiting_list(event, user_id)
    tx.record("waitlist.joined", event_id, user_id, position=position)
    return Waitlisted(event_id, user_id, position)


def cancel(tx: Batch, event_id: int, user_id: int) -> Cancelled | LeftWaitingList:
    event = _existing(tx.event(event_id), event_id)
    if tx.holds_ticket(event, user_id):
        tx.delete_booking(event, user_id)
        cancelled = tx.record("booking.cancelled", event_id, user_id)
        promoted = _pass_on_ticket(tx, event, cause="booking.cancelled", causeUserId=user_id)
        cancelled["promotedUserId"] = promoted
        return Cancelled(event_id, user_id, promoted)
    if tx.place(event, user_id) is not None:
        tx.leave_waiting_list(event, user_id)
        tx.record("waitlist.left", event_id, user_id)
        return LeftWaitingList(event_id, user_id)
    raise NothingToCancel(event_id, user_id)


def change_event(
    tx: Batch,
    event_id: int,
    name: str | None = None,
    total_tickets: int | None = None,
    sales_open: bool | None = None,
) -> EventChanged:
    """An admin's change. More tickets go to the head of the line first, in line order;
    fewer remove unsold tickets, never below those booked."""
    event = _existing(tx.event(event_id), event_id)
    held = event.total_tickets - event.available_tickets
    if total_tickets is not None and total_tickets < held:
        raise CapacityBelowHeld(event_id, total_tickets, held)
    promoted = []
    given = {"eventName": name, "totalTickets": total_tickets, "salesOpen": sales_open}
    updated = tx.record(
        "event.updated", event_id, **{k: v for k, v in given.items() if v is not None}
    )
    updated["promotedUserIds"] = promoted  # filled in below
    if total_tickets is not None:
        added = total_tickets - event.total_tickets
        tx.change_event(event, total_tickets=total_tickets)
        if added < 0:
            tx.change_event(event, available_tickets=event.available_tickets + added)
        while added > 0:
            added -= 1
            promoted_user = _pass_on_ticket(tx, event, cause="event.updated", causeUserId=None)
            if promoted_user is None:
                tx.change_event(event, available_tickets=event.available_tickets + added)
                break
            promoted.append(promoted_user)
    if name is not None:
        tx.change_event(event, name=name)
    if sales_open is not None:
        tx.change_event(event, sales_open=sales_open)
    return EventChanged(EventState.of(event), promoted)


def _pass_on_ticket(tx: Batch, event: EventView, **cause) -> int | None:
    """A freed ticket goes to the head of the line, or becomes available. `cause`
    (the change that freed it) goes into the journal's booking.promoted."""
    head = tx.head(event)
    if head is None:
        tx.release_ticket(event)
        return None
    tx.leave_waiting_list(event, head)
    tx.add_booking(event, head)
    tx.record("booking.promoted", event.id, head, **cause)
    return head


def _existing(event, event_id: int):
    if event is None:
        raise EventNotFound(event_id)
    return event


class BookingService:
    """The rules' entry points: changes go through the group commit, reads straight to SQL."""

    def __init__(self, engine: Engine, lock: BookingLock, waiting_lists: WaitingLists, **batching):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists
        self.changes = GroupCommit(engine, lock, waiting_lists, **batching)

    # Each change takes an optional Idempotency-Key; with one, it returns its Answer.

    def initialize(self, name: str, total_tickets: int, key: Key | None = None) -> EventState:
        def create(tx: Batch) -> EventState:
            event_id = tx.create_event(name, total_tickets)
            tx.record("event.created", event_id, eventName=name, totalTickets=total_tickets)
            return EventState(event_id, name, total_tickets, total_tickets, 0, True)

        return self.changes.run(None, None, create, key)

    def change_event(self, event_id: int, key: Key | None = None, **values) -> EventChanged:
        return self.changes.run(
            event_id, None, lambda tx: change_event(tx, event_id, **values), key
        )

    def book(self, event_id: int, user_id: int, key: Key | None = None) -> Booked | Waitlisted:
        return self.changes.run(event_id, user_id, lambda tx: book(tx, event_id, user_id), key)

    def cancel(
        self, event_id: int, user_id: int, key: Key | None = None
    ) -> Cancelled | LeftWaitingList:
        return self.changes.run(event_id, user_id, lambda tx: cancel(tx, event_id, user_id), key)

    def status(self, event_id: int) -> EventState:
        with self.engine.connect() as conn:
            return EventState.of(_existing(store.event(conn, event_id), event_id))

    def events(self, after_id: int, limit: int) -> EventsPage:
        with self.engine.connect() as conn:
            rows = store.events_after(conn, after_id, limit + 1)  # one more: is there a next page?
        found = [EventState.of(row) for row in rows[:limit]]
        return EventsPage(found, found[-1].event_id if len(rows) > limit else None)

    def user_bookings(self, user_id: int, after_id: int, limit: int) -> UserBookingsPage:
        with self.engine.connect() as conn:
            rows = store.user_holdings(conn, user_id, after_id, limit + 1)
            more, rows = len(rows) > limit, rows[:limit]
            found = [
                UserBooking(event_id, name, "booked")
                if seq is None
                else UserBooking(
                    event_id, name, "waitlisted", store.waiting_ahead(conn, event_id, seq) + 1
                )
                for event_id, name, seq in rows
            ]
        return UserBookingsPage(user_id, found, found[-1].event_id if more else None)

    def user_state(self, event_id: int, user_id: int) -> UserState:
        # One connection, one transaction: the reads share a snapshot.
        with self.engine.connect() as conn:
            event = _existing(store.event_for_booking(conn, event_id, user_id), event_id)
            if event.user_booked:
                return UserState(event_id, user_id, "booked")
            position = store.position(conn, event_id, user_id)
        if position is None:
            return UserState(event_id, user_id, "none")
        return UserState(event_id, user_id, "waitlisted", position)

    def history(self, event_id: int, after: int, limit: int) -> tuple[list[dict], int | None]:
        """The event's journal entries after entry `after`, in commit order, a page at a time."""
        journal.sequence(self.engine)  # what is committed gets its entry id before it is read
        with self.engine.connect() as conn:
            _existing(store.event(conn, event_id), event_id)
            entries = journal.event_history(conn, event_id, after, limit + 1)
        found = entries[:limit]
        return found, found[-1]["entry_id"] if len(entries) > limit else None

    def waiting_list(self, event_id: int) -> list[int]:
        """The line in order, from this process's copy once it is made current."""
        with self.lock.held(), self.engine.connect() as conn:
            event = _existing(store.event(conn, event_id), event_id)
            return list(self.waiting_lists.sync(conn, event).queue)
