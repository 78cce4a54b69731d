"""Request and response schemas: the one source for validation and the OpenAPI spec."""

import re

from marshmallow import Schema, ValidationError, fields, validate

MAX_ID = 2**63 - 1  # the database's BIGINT
MAX_TICKETS = 1_000_000


class StrictSchema(Schema):
    class Meta:
        ordered = True


# Text with at least one visible character and no control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_NAME = re.compile(NAME_PATTERN)


class EventName(fields.String):
    """1-255 characters, at least one visible, no control characters; stored trimmed."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 255:
            raise ValidationError("Must be at most 255 characters.")
        if not _NAME.match(text):
            raise ValidationError("Must contain a visible character and no control characters.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (JSON "\\ud800"): no database encoding can store it.
            raise ValidationError("Must be valid Unicode text.") from None
        return text.strip()


def _id(name: str, description: str) -> fields.Integer:
    # strict: rejects floats and numeric strings; marshmallow rejects booleans.
    return fields.Integer(
        data_key=name,
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": description, "example": 1},
    )


class InitializeRequest(StrictSchema):
    event_name = EventName(
        data_key="eventName",
        required=True,
        metadata={
            "description": "Shown to users; leading and trailing spaces are trimmed",
            "example": "Concert",
            "minLength": 1,
            "maxLength": 255,
            "pattern": NAME_PATTERN,
        },
    )
    total_tickets = fields.Integer(
        data_key="totalTickets",
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=MAX_TICKETS),
        metadata={"example": 100},
    )


class BookingRequest(StrictSchema):
    user_id = _id("userId", "The user booking or cancelling")
    event_id = _id("eventId", "The event")


class EventSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId")
    name = fields.String(data_key="eventName")
    total_tickets = fields.Integer(data_key="totalTickets")
    available_tickets = fields.Integer(data_key="availableTickets")
    waiting_count = fields.Integer(data_key="waitingListCount")


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
        required=True, validate=validate.OneOf(["cancelled", "left_waiting_list"])
    )
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    promoted_user_id = fields.Integer(
        data_key="promotedUserId",
        allow_none=True,
        metadata={"description": "cancelled only: the waiting user who got the ticket, or null"},
    )


class UserStateSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", required=True)
    status = fields.String(required=True, validate=validate.OneOf(["booked", "waitlisted", "none"]))
    position = fields.Integer(metadata={"description": "1-based place in line; waitlisted only"})


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
