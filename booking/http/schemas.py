"""Request schemas and shared fields: the one source for validation and the OpenAPI spec
(the answers' schemas are in responses.py)."""

import re
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..sales.domain import rfc3339

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


class JsonBoolean(fields.Boolean):
    """true or false only: marshmallow would also take 1, "yes" and "on"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _event_name(required: bool) -> EventName:
    return EventName(
        data_key="eventName",
        required=required,
        metadata={
            "description": "Shown to users; leading and trailing spaces are trimmed",
            "example": "Concert",
            "minLength": 1,
            "maxLength": 255,
            "pattern": NAME_PATTERN,
        },
    )


def _total_tickets(required: bool) -> fields.Integer:
    return fields.Integer(
        data_key="totalTickets",
        required=required,
        strict=True,
        validate=validate.Range(min=0, max=MAX_TICKETS),
        metadata={"example": 100},
    )


class Rfc3339(fields.DateTime):
    """A UTC instant as RFC 3339 with milliseconds and a Z; read, any RFC 3339 time with
    its offset (Z or +hh:mm), kept as UTC without a zone, as the columns store it."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else rfc3339(value)

    def _deserialize(self, value, attr, data, **kwargs):
        at = super()._deserialize(value, attr, data, **kwargs)
        if at.tzinfo is None:
            raise ValidationError("Needs a UTC offset, as RFC 3339 says: Z or +hh:mm.")
        try:
            return at.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # within a day of year 1 or 9999: as near as a column goes
            return datetime.max if at.year > 1 else datetime.min


def _sales_open_at(**kwargs) -> Rfc3339:
    return Rfc3339(
        data_key="salesOpenAt",
        metadata={
            "description": "a scheduled on-sale: until this time (RFC 3339) bookings queue,"
            " and at it they are served in a random order; in the past: open now",
            "example": "2026-12-24T10:00:00Z",
        },
        **kwargs,
    )


MODES = ["auto", "offer"]
MAX_OFFER_TTL = 7 * 24 * 3600


def _waitlist_mode() -> fields.String:
    return fields.String(
        data_key="waitlistMode",
        validate=validate.OneOf(MODES),
        metadata={
            "description": "what a freed ticket does: auto books it for the head of the line;"
            " offer holds it for them for offerTtlSeconds, to claim or decline",
            "example": "auto",
        },
    )


def _offer_ttl() -> fields.Integer:
    return fields.Integer(
        data_key="offerTtlSeconds",
        strict=True,
        validate=validate.Range(min=1, max=MAX_OFFER_TTL),
        metadata={"description": "seconds an offer is held (offer mode)", "example": 3600},
    )


MAX_PARTY = 1000  # tickets one booking may ask for, at most, whatever the event allows


def _max_tickets_per_booking() -> fields.Integer:
    return fields.Integer(
        data_key="maxTicketsPerBooking",
        strict=True,
        validate=validate.Range(min=1, max=MAX_PARTY),
        metadata={
            "description": "the most tickets one booking (a party) may have; default 10",
            "example": 10,
        },
    )


def _max_overtakes() -> fields.Integer:
    return fields.Integer(
        data_key="maxOvertakes",
        strict=True,
        validate=validate.Range(min=0, max=1000),
        metadata={
            "description": "how often a waiting party may be passed over by a smaller one"
            " behind it that fits the free tickets; 0: strict line order; default 3",
            "example": 3,
        },
    )


def tickets_field(description: str) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_PARTY),
        metadata={"description": description, "example": 2},
    )


# The settings an admin may give at creation (beyond name and tickets) or change later.
SETTINGS = (
    "waitlist_mode",
    "offer_ttl_seconds",
    "max_tickets_per_booking",
    "max_overtakes",
    "hold_ttl_seconds",
    "sales_open_at",
)
MAX_HOLD_TTL = 24 * 3600


def _hold_ttl() -> fields.Integer:
    return fields.Integer(
        data_key="holdTtlSeconds",
        strict=True,
        validate=validate.Range(min=0, max=MAX_HOLD_TTL),
        metadata={
            "description": "checkout holds: seconds a buyer's tickets are held for them to"
            " claim (pay) before they lapse; 0 (the default) books at once",
            "example": 0,
        },
    )


class InitializeRequest(StrictSchema):
    event_name = _event_name(required=True)
    total_tickets = _total_tickets(required=True)
    waitlist_mode = _waitlist_mode()
    offer_ttl_seconds = _offer_ttl()
    max_tickets_per_booking = _max_tickets_per_booking()
    max_overtakes = _max_overtakes()
    hold_ttl_seconds = _hold_ttl()
    sales_open_at = _sales_open_at(allow_none=True)


class EventChangeRequest(StrictSchema):
    """Any non-empty subset of the fields an admin may change."""

    event_name = _event_name(required=False)
    total_tickets = _total_tickets(required=False)
    sales_open = JsonBoolean(
        data_key="salesOpen",
        metadata={
            "description": "false: no new bookings or places in line; true on a queueing"
            " event: the opening, now",
            "example": False,
        },
    )
    waitlist_mode = _waitlist_mode()
    offer_ttl_seconds = _offer_ttl()
    max_tickets_per_booking = _max_tickets_per_booking()
    max_overtakes = _max_overtakes()
    hold_ttl_seconds = _hold_ttl()
    sales_open_at = _sales_open_at()

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError(
                "Send at least one of eventName, totalTickets, salesOpen, waitlistMode,"
                " offerTtlSeconds, maxTicketsPerBooking, maxOvertakes, holdTtlSeconds,"
                " salesOpenAt."
            )


class Cursor(fields.String):
    """An opaque page cursor. Inside: the id the previous page ended at, in base 36, so
    every string of the documented pattern is a cursor and any other is refused."""

    PATTERN = r"^[0-9a-z]{1,12}$"  # 36**12 > the largest id a cursor needs to carry

    def __init__(self, **kwargs):
        metadata = {"pattern": self.PATTERN, "example": "2s", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        digits = ""
        while True:
            value, digit = divmod(value, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
            if value == 0:
                return digits

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.fullmatch(self.PATTERN, text):
            raise ValidationError("Not a cursor this service gave out.")
        return int(text, 36)


class PageQuery(StrictSchema):
    limit = fields.Integer(
        load_default=20,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "page size, 1-100", "example": 20},
    )
    cursor = Cursor(
        load_default=0,
        metadata={
            "description": "nextCursor of the previous page; omit (or send 0) for the first",
            "example": "0",
        },
    )


class BookingRequest(StrictSchema):
    user_id = _id("userId", "The user booking or cancelling")
    event_id = _id("eventId", "The event")
    tickets = tickets_field(
        "book: the party's tickets (default 1); cancel: how many to give back, claim: how"
        " many of the offer to book (default all)"
    )
