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


class EventChangedSchema(EventSchema):
    promoted_user_ids = fields.List(
        fields.Integer(),
        data_key="promotedUserIds",
        metadata={"description": "users given a ticket by this change, in line order"},
    )
    offered_user_ids = fields.List(
        fields.Integer(),
        data_key="offeredUserIds",
        metadata={"description": "offer mode: users offered a ticket by this change, in order"},
    )


class EventsPageSchema(StrictSchema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class UserBookingSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    event_name = fields.String(data_key="eventName", required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["booked", "waitlisted", "offered"])
    )
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})
    offer_expires_at = Rfc3339(
        data_key="offerExpiresAt", metadata={"description": "offered only: when it lapses"}
    )


class UserBookingsPageSchema(StrictSchema):
    user_id = fields.Integer(data_key="userId", required=True)
    bookings = fields.List(fields.Nested(UserBookingSchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class BookingResult(StrictSchema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["booked", "waitlisted"]),
        metadata={"description": "booked, or waitlisted when the event is sold out"},
    )
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})


class CancelResult(StrictSchema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["cancelled", "declined_offer", "left_waiting_list"]),
    )
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    promoted_user_id = fields.Integer(
        data_key="promotedUserId",
        allow_none=True,
        metadata={
            "description": "cancelled or declined_offer: the waiting user who got the ticket,"
            " or null"
        },
    )
    offered_user_id = fields.Integer(
        data_key="offeredUserId",
        allow_none=True,
        metadata={
            "description": "cancelled or declined_offer: the waiting user offered the ticket"
            " (offer mode), or null"
        },
    )


class ClaimResult(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["booked"]))
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)


class UserStateSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(["booked", "waitlisted", "offered", "none"])
    )
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})
    offer_expires_at = Rfc3339(
        data_key="offerExpiresAt", metadata={"description": "offered only: when it lapses"}
    )


class WaitingListSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    user_ids = fields.List(fields.Integer(), data_key="userIds", required=True)


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
    offer_expires_at = fields.String(
        data_key="offerExpiresAt", metadata={"description": "already-offered: when it lapses"}
    )
