"""Schemas of the journal's history and the webhooks routes."""

from marshmallow import fields, validate

from ..storage.journal import TYPES
from .schemas import MAX_ID, Cursor, Rfc3339, StrictSchema


class HistoryEntrySchema(StrictSchema):
    entry_id = fields.Integer(
        data_key="entryId",
        required=True,
        metadata={"description": "grows in commit order; a webhook's webhook-id"},
    )
    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    event_id = fields.Integer(data_key="eventId", required=True)
    user_id = fields.Integer(data_key="userId", allow_none=True, required=True)
    at = Rfc3339(
        required=True,
        metadata={"description": "written just before its COMMIT; the database's clock"},
    )
    data = fields.Dict(
        required=True,
        metadata={"description": "what the entry's type tells, e.g. position, promotedUserId"},
    )


class HistoryPageSchema(StrictSchema):
    event_id = fields.Integer(data_key="eventId", required=True)
    entries = fields.List(fields.Nested(HistoryEntrySchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class WebhookRequest(StrictSchema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2048),
        metadata={
            "description": "http(s); loopback, private, link-local and multicast"
            " destinations are refused unless WEBHOOK_ALLOW_PRIVATE is set",
            "example": "https://hooks.example.com/booking",
            "pattern": "^https?://",
        },
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf([*TYPES, "*"])),
        data_key="eventTypes",
        load_default=lambda: ["*"],
        validate=validate.Length(min=1, max=len(TYPES)),
        metadata={"description": 'the types to send, or ["*"] for all', "example": ["*"]},
    )
    event_id = fields.Integer(
        data_key="eventId",
        strict=True,
        allow_none=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "only this event's entries; omit for every event"},
    )


class WebhookSchema(StrictSchema):
    webhook_id = fields.Integer(data_key="webhookId", required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), data_key="eventTypes", required=True)
    event_id = fields.Integer(data_key="eventId", allow_none=True, required=True)
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(data_key="disabledReason", allow_none=True, required=True)
    created_at = Rfc3339(data_key="createdAt", required=True)
    delivered_up_to = fields.Integer(
        data_key="deliveredUpTo",
        required=True,
        metadata={"description": "every wanted entry up to this entryId was acknowledged"},
    )


class WebhookCreatedSchema(WebhookSchema):
    secret = fields.String(
        required=True,
        metadata={"description": "whsec_ + base64: verify signatures with it; shown only once"},
    )


class WebhooksPageSchema(StrictSchema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)


class DeliverySchema(StrictSchema):
    entry_id = fields.Integer(data_key="entryId", required=True)
    attempt = fields.Integer(required=True, metadata={"description": "1 for the first try"})
    at = Rfc3339(required=True)
    status_code = fields.Integer(data_key="statusCode", allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True)
    duration_ms = fields.Integer(data_key="durationMs", required=True)


class DeliveriesPageSchema(StrictSchema):
    webhook_id = fields.Integer(data_key="webhookId", required=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)
    next_after = Cursor(data_key="nextCursor", allow_none=True, required=True)
