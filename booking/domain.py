"""What the booking rules return and refuse with. No Flask, no SQL."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventState:
    event_id: int
    name: str
    total_tickets: int
    available_tickets: int
    waiting_count: int


@dataclass(frozen=True, slots=True)
class Booked:
    event_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Waitlisted:
    event_id: int
    user_id: int
    position: int  # 1-based place in line when the user joined


@dataclass(frozen=True, slots=True)
class Cancelled:
    event_id: int
    user_id: int
    promoted_user_id: int | None  # the waiting user who got the freed ticket


@dataclass(frozen=True, slots=True)
class LeftWaitingList:
    event_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class UserState:
    event_id: int
    user_id: int
    status: str  # "booked", "waitlisted" or "none"
    position: int | None = None


class BookingError(Exception):
    """A request the rules refuse; nothing was changed."""


class EventNotFound(BookingError):
    def __init__(self, event_id: int):
        super().__init__(f"Event {event_id} does not exist.")


class AlreadyBooked(BookingError):
    def __init__(self, event_id: int, user_id: int):
        super().__init__(f"User {user_id} already holds a ticket for event {event_id}.")


class AlreadyWaiting(BookingError):
    def __init__(self, event_id: int, user_id: int, position: int):
        self.position = position
        super().__init__(
            f"User {user_id} is already on the waiting list for event {event_id}"
            f" at position {position}."
        )


class NothingToCancel(BookingError):
    def __init__(self, event_id: int, user_id: int):
        super().__init__(f"User {user_id} holds no ticket and is not waiting for event {event_id}.")


class LockTimeout(Exception):
    """The booking lock could not be had in time; the client should retry."""
