"""What the booking rules return and refuse with. No Flask, no SQL."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventState:
    event_id: int
    name: str
    total_tickets: int
    available_tickets: int
    waiting_count: int
    sales_open: bool = True

    @classmethod
    def of(cls, row) -> "EventState":
        """From an events row (or a batch's view of one)."""
        return cls(
            row.id,
            row.name,
            row.total_tickets,
            row.available_tickets,
            row.waiting_count,
            bool(row.sales_open),
        )


@dataclass(frozen=True, slots=True)
class EventChanged:
    event: EventState
    promoted_user_ids: list[int]  # in line order: given the tickets a larger total freed


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[EventState]
    next_after: int | None  # the last event id of a full page: where the next one starts


@dataclass(frozen=True, slots=True)
class UserBooking:
    event_id: int
    event_name: str
    status: str  # "booked" or "waitlisted"
    position: int | None = None


@dataclass(frozen=True, slots=True)
class UserBookingsPage:
    user_id: int
    bookings: list[UserBooking]
    next_after: int | None


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


class SalesClosed(BookingError):
    def __init__(self, event_id: int):
        super().__init__(f"Sales for event {event_id} are closed; cancellations still work.")


class CapacityBelowHeld(BookingError):
    def __init__(self, event_id: int, total: int, held: int):
        self.held = held
        super().__init__(
            f"Event {event_id} has {held} tickets booked; totalTickets cannot go below that"
            f" (asked for {total})."
        )


class LockTimeout(Exception):
    """The booking lock could not be had in time; the client should retry."""
