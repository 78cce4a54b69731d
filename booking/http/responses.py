"""Response schemas: what every route answers, as the OpenAPI spec documents it."""

from marshmallow import fields, validate

from .schemas import MODES, Cursor, Rfc3339, StrictSchema


class EventSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId")
    name = fields.String(data_key="eventName")
    total_tickets = fields.Integer(data_key="totalTickets")
    available_tickets = fields.Integer(data_key="availableTickets")
    waiting_count = fields.Integer(data_key="waitingListCount")
    sales_open = fields.Boolean(data_key="salesOpen")
    waitlist_mode = fields.String(data_key="waitlistMode", validate=validate.OneOf(MODES))
    offer_ttl_seconds = fields.Integer(data_key="offerTtlSeconds")
    offered_tickets = fields.Integer(
        data_key="offeredTickets",
        metadata={"description": "held for offers; booked + offered + available = total"},
    )
    max_tickets_per_booking = fields.Integer(
        data_key="maxTicketsPerBooking",
        metadata={"description": "the most tickets one booking (a party) may have"},
    )
    max_overtakes = fields.Integer(
        data_key="maxOvertakes",
        metadata={"description": "how often a waiting party may be passed over"},
    )
    waiting_tickets = fields.Integer(
        data_key="waitingTickets",
        metadata={"description": "the waiting parties' tickets (waitingListCount: parties)"},
    )
    hold_ttl_seconds = fields.Integer(
        data_key="holdTtlSeconds",
        metadata={"description": "seconds a buyer's tickets are held for checkout (0: none)"},
    )
    held_tickets = fields.Integer(
        data_key="heldTickets",
        metadata={"description": "held for checkout; booked + offered + held + available = total"},
    )
    sales_open_at = Rfc3339(
        data_key="salesOpenAt",
        allow_none=True,
        metadata={"description": "a scheduled on-sale: when sales open (null: no schedule)"},
    )
    queueing = fields.Boolean(
        metadata={
            "description": "bookings queue for the opening at salesOpenAt (until the opening"
            " commits), which serves them in a random order"
        }
    )
    queued_count = fields.Integer(
        data_key="queuedCount", metadata={"description": "parties queued for the opening"}
    )
    queued_tickets = fields.Integer(
        data_key="queuedTickets", metadata={"description": "the queued parties' tickets"}
    )


def _promoted() -> fields.List:
    return fields.List(
        fields.Integer(),
        data_key="promotedUserIds",
        metadata={"description": "waiting parties booked by this change, in the order served"},
    )


def _offered() -> fields.List:
    return fields.List(
        fields.Integer(),
        data_key="offeredUserIds",
        metadata={"description": "offer mode: waiting parties offered their tickets, in order"},
    )


def _hold_expires() -> Rfc3339:
    return Rfc3339(
        data_key="holdExpiresAt",
        metadata={"description": "held only: when the checkout hold lapses, unless claimed"},
    )


def _tickets(description: str) -> fields.Integer:
    return fields.Integer(required=True, metadata={"description": description})


class EventChangedSchema(EventSchema):
    promoted_user_ids = _promoted()
    offered_user_ids = _offered()


class EventsPageSchema(StrictSchema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class UserBookingSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    event_name = fields.String(data_key="eventName", required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["booked", "waitlisted", "offered", "held", "queued"]),
    )
    tickets = _tickets("booked, waited for, offered, held or queued")
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})
    overtakes = fields.Integer(
        metadata={"description": "waitlisted only: how often the party was passed over"}
    )
    offer_expires_at = Rfc3339(
        data_key="offerExpiresAt", metadata={"description": "offered only: when it lapses"}
    )
    hold_expires_at = _hold_expires()


class UserBookingsPageSchema(StrictSchema):
    user_id = fields.Integer(data_key="userId", required=True)
    bookings = fields.List(fields.Nested(UserBookingSchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class BookingResult(StrictSchema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["booked", "held", "waitlisted", "queued"]),
        metadata={
            "description": "booked; held, when the event holds tickets for checkout (claim"
            " them before holdExpiresAt); waitlisted when they do not fit; or queued (202)"
            " for a scheduled on-sale's opening at salesOpenAt"
        },
    )
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    tickets = _tickets("the party's tickets, booked, held or waited for")
    position = fields.Integer(
        metadata={"description": "1-based place in line (in parties); waitlisted only"}
    )
    hold_expires_at = _hold_expires()
    sales_open_at = Rfc3339(
        data_key="salesOpenAt",
        metadata={"description": "queued only: when the opening serves the queue"},
    )


class CancelResult(StrictSchema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(
            ["cancelled", "declined_offer", "released_hold", "left_waiting_list", "left_queue"]
        ),
    )
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    tickets = _tickets("given back")
    remaining_tickets = fields.Integer(
        data_key="remainingTickets",
        required=True,
        metadata={"description": "what the user still has there: booked, waited for or queued"},
    )
    position = fields.Integer(
        metadata={"description": "left_waiting_list with remainingTickets: the party's place"}
    )
    promoted_user_ids = _promoted()
    offered_user_ids = _offered()
    promoted_user_id = fields.Integer(
        data_key="promotedUserId",
        allow_none=True,
        metadata={"description": "the first of promotedUserIds, or null"},
    )
    offered_user_id = fields.Integer(
        data_key="offeredUserId",
        allow_none=True,
        metadata={"description": "the first of offeredUserIds, or null"},
    )


class ClaimResult(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["booked"]))
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    tickets = _tickets("booked by this claim")
    released_tickets = fields.Integer(
        data_key="releasedTickets",
        required=True,
        metadata={"description": "offered but not claimed: freed for the waiting line"},
    )
    promoted_user_ids = _promoted()
    offered_user_ids = _offered()


class UserStateSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["booked", "waitlisted", "offered", "held", "queued", "none"]),
    )
    tickets = fields.Integer(
        metadata={"description": "booked, waited for, offered, held or queued"}
    )
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})
    overtakes = fields.Integer(
        metadata={"description": "waitlisted only: how often the party was passed over"}
    )
    offer_expires_at = Rfc3339(
        data_key="offerExpiresAt", metadata={"description": "offered only: when it lapses"}
    )
    hold_expires_at = _hold_expires()


class WaitingPartySchema(StrictSchema):
    user_id = fields.Integer(data_key="userId", required=True)
    tickets = _tickets("the party's tickets")
    overtakes = fields.Integer(
        required=True, metadata={"description": "how often the party was passed over"}
    )


class WaitingListSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    user_ids = fields.List(fields.Integer(), data_key="userIds", required=True)
    entries = fields.List(
        fields.Nested(WaitingPartySchema),
        required=True,
        metadata={"description": "the same parties in line order, with their tickets"},
    )


class HealthSchema(StrictSchema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ProblemSchema(StrictSchema):
    """RFC 9457 problem details."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "validation errors by field"})
    position = fields.Integer(metadata={"description": "already-waiting: the place in line"})
    held = fields.Integer(
        metadata={"description": "capacity-below-held: tickets booked or offered"}
    )
    max_tickets_per_booking = fields.Integer(
        data_key="maxTicketsPerBooking",
        metadata={"description": "too-many-tickets on a booking: the event's limit"},
    )
    total_tickets = fields.Integer(
        data_key="totalTickets",
        metadata={"description": "too-many-tickets on a booking: the event's tickets"},
    )
    user_tickets = fields.Integer(
        data_key="userTickets",
        metadata={
            "description": "too-many-tickets on a cancel or claim, already-queued: what the"
            " user has there (an offer is declined whole)"
        },
    )
    offer_expires_at = fields.String(
        data_key="offerExpiresAt", metadata={"description": "already-offered: when it lapses"}
    )
    hold_expires_at = fields.String(
        data_key="holdExpiresAt", metadata={"description": "already-held: when it lapses"}
    )
    sales_open_at = fields.String(
        data_key="salesOpenAt",
        metadata={"description": "already-queued, queueing: when the opening is"},
    )
