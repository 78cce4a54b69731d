"""The booking rules: initialize, book, cancel, and what they report.

Every change runs inside `BookingLock.write()`, so it sees and leaves the
invariants whole: booked + available = total, nobody waits while a ticket is
free, and a user holds at most one ticket or one place per event.
"""

import logging

from sqlalchemy import Engine

from . import store
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
from .waitlist import WaitingList, WaitingLists

log = logging.getLogger("booking.events")


class BookingService:
    def __init__(self, engine: Engine, lock: BookingLock, waiting_lists: WaitingLists):
        self.engine = engine
        self.lock = lock
        self.waiting_lists = waiting_lists

    def initialize(self, name: str, total_tickets: int) -> EventState:
        event_id = self.lock.run(None, lambda tx: store.create_event(tx.conn, name, total_tickets))
        log.info(
            "event initialized",
            extra={"eventId": event_id, "totalTickets": total_tickets, "outcome": "initialized"},
        )
        return EventState(event_id, name, total_tickets, total_tickets, 0)

    def book(self, event_id: int, user_id: int) -> Booked | Waitlisted:
        def body(tx) -> Booked | Waitlisted:
            event = _existing(
                store.event_for_booking(tx.conn, event_id, user_id, for_update=tx.lock_rows),
                event_id,
            )
            if event.user_booked:
                raise AlreadyBooked(event_id, user_id)
            if event.available_tickets > 0:
                # A free ticket means nobody waits. The claim re-checks it in
                # its WHERE clause and must take exactly one row.
                if not store.take_ticket(tx.conn, event_id):
                    raise RuntimeError(f"event {event_id} changed under the booking lock")
                if not store.add_booking(tx.conn, event_id, user_id):
                    # The unique key is the last guard; refusing rolls back the claim.
                    raise AlreadyBooked(event_id, user_id)
                return Booked(event_id, user_id)
            return self._join_line(tx, event, user_id)

        result = self.lock.run(event_id, body)
        outcome = "booked" if isinstance(result, Booked) else "waitlisted"
        log.info(outcome, extra={"eventId": event_id, "userId": user_id, "outcome": outcome})
        return result

    def _join_line(self, tx, event, user_id: int) -> Waitlisted:
        # The unique key on (event, user) says whether the user already waits;
        # the in-memory copy is not needed to join, only kept in step.
        seq = event.next_waiting_seq
        if not store.join_waiting_list(tx.conn, event.id, user_id, seq):
            position = store.position(tx.conn, event.id, user_id)
            raise AlreadyWaiting(event.id, user_id, position)
        self._after_commit(tx, event, lambda line: line.append(user_id, seq))
        return Waitlisted(event.id, user_id, event.waiting_count + 1)

    def cancel(self, event_id: int, user_id: int) -> Cancelled | LeftWaitingList:
        def body(tx) -> Cancelled | LeftWaitingList:
            event = self._event(tx, event_id)
            if store.delete_booking(tx.conn, event_id, user_id):
                return Cancelled(event_id, user_id, self._promote_head(tx, event))
            if store.leave_waiting_list(tx.conn, event_id, user_id):
                self._after_commit(tx, event, lambda line: line.remove(user_id))
                return LeftWaitingList(event_id, user_id)
            raise NothingToCancel(event_id, user_id)

        result = self.lock.run(event_id, body)
        if isinstance(result, Cancelled):
            log.info(
                "cancelled",
                extra={
                    "eventId": event_id,
                    "userId": user_id,
                    "outcome": "cancelled",
                    "promotedUserId": result.promoted_user_id,
                },
            )
        else:
            log.info(
                "left waiting list",
                extra={"eventId": event_id, "userId": user_id, "outcome": "left_waiting_list"},
            )
        return result

    def _promote_head(self, tx, event) -> int | None:
        """Hand the freed ticket to the head of the line, in the same transaction."""
        if event.waiting_count == 0:
            store.release_ticket(tx.conn, event.id)
            return None
        head = self.waiting_lists.sync(tx.conn, event).head()
        store.leave_waiting_list(tx.conn, event.id, head)
        if not store.add_booking(tx.conn, event.id, head):
            # Someone waiting while holding a ticket: the invariants are broken.
            raise RuntimeError(f"user {head} waits for event {event.id} and holds a ticket")
        self._after_commit(tx, event, WaitingList.pop_head)
        return head

    def _after_commit(self, tx, event, change) -> None:
        version = event.waitlist_version
        tx.after_commit(lambda: self.waiting_lists.changed(event.id, version, change))

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
        with self.lock.held(event_id), self.engine.connect() as conn:
            event = _existing(store.event(conn, event_id), event_id)
            return list(self.waiting_lists.sync(conn, event).queue)

    @staticmethod
    def _event(tx, event_id: int):
        """The event row inside a change; in row mode this read locks it."""
        return _existing(store.event(tx.conn, event_id, for_update=tx.lock_rows), event_id)


def _existing(event, event_id: int):
    if event is None:
        raise EventNotFound(event_id)
    return event
