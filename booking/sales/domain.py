"""What the booking rules return and refuse with. No Flask, no SQL."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

AUTO, OFFER = "auto", "offer"  # what a freed ticket does: booked for the head, or offered


def rfc3339(at: datetime) -> str:
    """2026-11-30T09:30:56.123Z. A naive time is UTC: the database's columns store it so."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def paged(rows: list, limit: int, cursor_of) -> tuple[list, object]:
    """A page from the `limit + 1` rows read after a cursor: its rows, and the next
    page's cursor (`cursor_of` its last row), or None when there is no next page."""
    found = rows[:limit]
    return found, cursor_of(found[-1]) if len(rows) > limit else None


@dataclass(frozen=True, slots=True)
class EventState:
    event_id: int
    name: str
    total_tickets: int
    available_tickets: int
    waiting_count: int  # parties
    sales_open: bool = True
    waitlist_mode: str = AUTO
    offer_ttl_seconds: int = 3600
    offered_tickets: int = 0
    max_tickets_per_booking: int = 10
    max_overtakes: int = 3
    waiting_tickets: int = 0
    hold_ttl_seconds: int = 0
    held_tickets: int = 0
    sales_open_at: datetime | None = None
    queueing: bool = False  # bookings queue for the opening at sales_open_at
    queued_count: int = 0  # parties
    queued_tickets: int = 0

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
            row.waitlist_mode,
            row.offer_ttl_seconds,
            row.offered_tickets,
            row.max_tickets_per_booking,
            row.max_overtakes,
            row.waiting_tickets,
            row.hold_ttl_seconds,
            row.held_tickets,
            row.sales_open_at,
            bool(row.queueing),
            row.queued_count,
            row.queued_tickets,
        )


@dataclass(frozen=True, slots=True)
class Served:
    """Whom an allocation served, in the order it served them (booked, or offered)."""

    promoted_user_ids: list[int] = field(default_factory=list)
    offered_user_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventChanged:
    event: EventState
    served: Served


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[EventState]
    next_after: int | None  # the last event id of a full page: where the next one starts


@dataclass(frozen=True, slots=True)
class UserBooking:
    event_id: int
    event_name: str
    status: str  # "booked", "waitlisted", "offered", "held" or "queued"
    tickets: int
    position: int | None = None
    overtakes: int | None = None
    offer_expires_at: datetime | None = None
    hold_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserBookingsPage:
    user_id: int
    bookings: list[UserBooking]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class Booked:
    event_id: int
    user_id: int
    tickets: int = 1


@dataclass(frozen=True, slots=True)
class Held:
    """Tickets held for a buyer while they pay (holdTtlSeconds), until claimed or lapsed."""

    event_id: int
    user_id: int
    tickets: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Queued:
    """A party queued for a scheduled on-sale: the opening will serve it, in a random
    order among the queued (opening.py)."""

    event_id: int
    user_id: int
    tickets: int
    sales_open_at: datetime


@dataclass(frozen=True, slots=True)
class Waitlisted:
    event_id: int
    user_id: int
    position: int  # 1-based place in line (in parties) when the party joined
    tickets: int = 1


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Tickets given back: `status` says what they were (cancelled: booked;
    declined_offer: offered; released_hold: held for checkout; left_waiting_list: a
    place in line; left_queue: a party queued for an on-sale)."""

    status: str
    event_id: int
    user_id: int
    tickets: int  # given back
    remaining_tickets: int  # the user still has there (a booking, or a place)
    served: Served
    position: int | None = None  # a party that waits on with fewer tickets


@dataclass(frozen=True, slots=True)
class Claimed:
    event_id: int
    user_id: int
    tickets: int
    released_tickets: int  # offered but not claimed: freed for the line
    served: Served


@dataclass(frozen=True, slots=True)
class UserState:
    event_id: int
    user_id: int
    status: str  # "booked", "waitlisted", "offered", "held", "queued" or "none"
    tickets: int | None = None
    position: int | None = None
    overtakes: int | None = None
    offer_expires_at: datetime | None = None
    hold_expires_at: datetime | None = None


class BookingError(Exception):
    """A request the rules refuse; nothing was changed."""


class EventNotFound(BookingError):
    def __init__(self, event_id: int):
        super().__init__(f"Event {event_id} does not exist.")


class AlreadyBooked(BookingError):
    def __init__(self, event_id: int, user_id: int):
        super().__init__(
            f"User {user_id} already holds tickets for event {event_id}; cancel them (or some)"
            " to book anew."
        )


class AlreadyWaiting(BookingError):
    def __init__(self, event_id: int, user_id: int, position: int):
        self.position = position
        super().__init__(
            f"User {user_id} is already on the waiting list for event {event_id}"
            f" at position {position}."
        )


class TooManyTickets(BookingError):
    """More tickets than a booking may have, or than the user has to give back or claim."""

    def __init__(self, event_id: int, asked: int, detail: str, **extra):
        self.extra = extra  # the limits that were crossed, for the problem's members
        noun = "ticket" if asked == 1 else "tickets"
        super().__init__(f"{asked} {noun} for event {event_id}: {detail}")


class AlreadyQueued(BookingError):
    def __init__(self, event_id: int, user_id: int, tickets: int, sales_open_at: datetime):
        self.tickets, self.sales_open_at = tickets, sales_open_at
        super().__init__(
            f"User {user_id} is already queued for event {event_id} with {tickets}"
            f" ticket{'' if tickets == 1 else 's'}; the opening at {rfc3339(sales_open_at)}"
            " serves the queue in a random order."
        )


class Queueing(BookingError):
    """Sales cannot be closed while the event queues for its opening, nor opened now while
    a change schedules it."""

    def __init__(self, event_id: int, sales_open_at: datetime, why: str):
        self.sales_open_at = sales_open_at
        super().__init__(
            f"Event {event_id} queues bookings for its opening at {rfc3339(sales_open_at)}:"
            f" {why}. Move salesOpenAt, or open now with salesOpen: true alone."
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
            f"Event {event_id} has {held} tickets booked, offered or held; totalTickets cannot"
            " go below that"
            f" (asked for {total})."
        )


class AlreadyOffered(BookingError):
    def __init__(self, event_id: int, user_id: int, expires_at: datetime):
        self.expires_at = expires_at
        super().__init__(
            f"User {user_id} holds an offer for event {event_id}; claim it with"
            " POST /api/events/claim before it lapses."
        )


class AlreadyHeld(BookingError):
    def __init__(self, event_id: int, user_id: int, expires_at: datetime):
        self.expires_at = expires_at
        super().__init__(
            f"User {user_id} has tickets held for checkout for event {event_id}; claim them"
            " with POST /api/events/claim (or release them) before the hold lapses."
        )


class NoOffer(BookingError):
    """Nothing is held or offered for the user to claim (any more)."""

    def __init__(self, event_id: int, user_id: int, lapsed: tuple[str, datetime] | None):
        self.lapsed_at = None if lapsed is None else lapsed[1]
        if lapsed is None:
            why = "holds no offer"
        elif lapsed[0] == "hold":
            why = f"had tickets held for checkout until {rfc3339(lapsed[1])}: the hold lapsed"
        else:
            why = f"held an offer that lapsed at {rfc3339(lapsed[1])}"
        super().__init__(f"User {user_id} {why} for event {event_id}.")


class LockTimeout(Exception):
    """The booking lock could not be had in time; the client should retry."""
