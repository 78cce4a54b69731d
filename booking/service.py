"""The booking rules: initialize, book, cancel, and what they report.

Every change is a rule run by the group commit (changes.py) against its batch's
view (batch.py): it sees and leaves the invariants whole (booked + available =
total, nobody waits while a ticket is free, a user holds at most one ticket or
one place per event), and decides every refusal before it changes anything.
"""

from sqlalchemy import Engine

from . import store
from .batch import Batch, EventView
from .changes import GroupCommit
from .domain import (
    AlreadyBooked,
    AlreadyWaiting,
    Booked,
    Cancelled,
    EventNotFound,
    EventState,
    LeftWaitingList,
    NothingToCancel,
    UserState,
    Waitlisted,
)
from .locking import BookingLock
from .waitlist import WaitingLists


def book(tx: Batch, event_id: int, user_id: int) -> Booked | Waitlisted:
    event = _existing(tx.event(event_id), event_id)
    if tx.holds_ticket(event, user_id):
        raise AlreadyBooked(event_id, user_id)
    if tx.place(event, user_id) is not None:
        raise AlreadyWaiting(event_id, user_id, tx.position(event, user_id))
    if event.available_tickets > 0:
        # A free ticket means nobody waits.
        tx.take_ticket(event)
        tx.add_booking(event, user_id)
        return Booked(event_id, user_id)
    return Waitlisted(event_id, user_id, tx.join_waiting_list(event, user_id))


def cancel(tx: Batch, event_id: int, user_id: int) -> Cancelled | LeftWaitingList:
    event = _existing(tx.event(event_id), event_id)
    if tx.holds_ticket(event, user_id):
        tx.delete_booking(event, user_id)
        return Cancelled(event_id, user_id, _pass_on_ticket(tx, event))
    if tx.place(event, user_id) is not None:
        tx.leave_waiting_list(event, user_id)
        return LeftWaitingList(event_id, user_id)
    raise NothingToCancel(event_id, user_id)


def _pass_on_ticket(tx: Batch, event: EventView) -> int | None:
    """A freed ticket goes to the head of the line, or becomes available."""
    head = tx.head(event)
    if head is None:
        tx.release_ticket(event)
        return None
    tx.leave_waiting_list(event, head)
    tx.add_booking(event, head)
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

    def initialize(self, name: str, total_tickets: int) -> EventState:
        event_id = self.changes.run(None, None, lambda tx: tx.create_event(name, total_tickets))
        return EventState(event_id, name, total_tickets, total_tickets, 0)

    def book(self, event_id: int, user_id: int) -> Booked | Waitlisted:
        return self.changes.run(event_id, user_id, lambda tx: book(tx, event_id, user_id))

    def cancel(self, event_id: int, user_id: int) -> Cancelled | LeftWaitingList:
        return self.changes.run(event_id, user_id, lambda tx: cancel(tx, event_id, user_id))

    def status(self, event_id: int) -> EventState:
        with self.engine.connect() as conn:
            event = _existing(store.event(conn, event_id), event_id)
        return EventState(
            event.id,
            event.name,
            event.total_tickets,
            event.available_tickets,
            event.waiting_count,
        )

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

    def waiting_list(self, event_id: int) -> list[int]:
        """The line in order, from this process's copy once it is made current."""
        with self.lock.held(), self.engine.connect() as conn:
            event = _existing(store.event(conn, event_id), event_id)
            return list(self.waiting_lists.sync(conn, event).queue)
