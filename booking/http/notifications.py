"""The HTTP face of the journal and webhooks (admin only): an event's history, and
webhook subscriptions with their delivery attempts."""

from flask import current_app, url_for

from ..notify import history as journal_history
from . import examples
from .answers import answered, keyed, respond
from .auth import admin_auth
from .notification_schemas import (
    DeliveriesPageSchema,
    HistoryPageSchema,
    WebhookCreatedSchema,
    WebhookRequest,
    WebhookSchema,
    WebhooksPageSchema,
)
from .parsing import Blueprint
from .routing import (
    ADMIN,
    EVENT,
    EVENT_ID,
    KEYED,
    WEBHOOK,
    WEBHOOK_ID,
    problems,
    require_json,
    service,
    snake_case_path_values,
    webhooks,
)
from .schemas import PageQuery

blp = Blueprint(
    "notifications",
    __name__,
    description="The journal of every change, and webhooks that deliver it (admin)",
)
blp.before_request(require_json)
blp.url_value_preprocessor(snake_case_path_values)


def location(hook) -> dict:
    return {"Location": url_for("notifications.get_webhook", webhookId=hook.webhook_id)}


def shaped(hook) -> dict:
    return {
        "webhook_id": hook.webhook_id,
        "url": hook.url,
        "event_types": hook.event_types,
        "event_id": hook.event_id,
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "created_at": hook.created_at,
        "delivered_up_to": hook.delivered_up_to,
        "secret": hook.secret,
    }


@blp.get(f"/api/events/{EVENT_ID}/history", parameters=[EVENT])
@admin_auth.login_required
@blp.arguments(PageQuery(), location="query")
@blp.response(200, HistoryPageSchema, example=examples.HISTORY)
@blp.doc(security=ADMIN, summary="The event's journal in commit order, a page at a time (admin)")
@problems(400, 401, 404, 429, 503)
def history(query, event_id):
    entries, next_after = journal_history.page(
        service().engine, event_id, query["cursor"], query["limit"]
    )
    return {"event_id": event_id, "entries": entries, "next_after": next_after}


@blp.post("/api/webhooks")
@admin_auth.login_required
@blp.arguments(WebhookRequest(), example=examples.SUBSCRIBE)
@blp.response(201, WebhookCreatedSchema, example=examples.SUBSCRIBED)
@blp.doc(
    security=ADMIN,
    parameters=KEYED,
    summary="Subscribe a URL to journal entries, signed per Standard Webhooks (admin)",
)
@problems(400, 401, 404, 415, 422, 429, 503)
def create_webhook(body):
    key = keyed(answered(201, WebhookCreatedSchema, headers=location, shape=shaped))
    created = webhooks().create(body["url"], body["event_types"], body["event_id"], key)
    return respond(created, key, lambda hook: (shaped(hook), location(hook)))


@blp.get("/api/webhooks")
@admin_auth.login_required
@blp.arguments(PageQuery(), location="query")
@blp.response(200, WebhooksPageSchema, example=examples.WEBHOOKS_PAGE)
@blp.doc(security=ADMIN, summary="Webhooks in id order, a page at a time (admin)")
@problems(400, 401, 429, 503)
def list_webhooks(query):
    found, next_after = webhooks().page(query["cursor"], query["limit"])
    return {"webhooks": [shaped(hook) for hook in found], "next_after": next_after}


@blp.get(f"/api/webhooks/{WEBHOOK_ID}/deliveries", parameters=[WEBHOOK])
@admin_auth.login_required
@blp.arguments(PageQuery(), location="query")
@blp.response(200, DeliveriesPageSchema, example=examples.DELIVERIES_PAGE)
@blp.doc(security=ADMIN, summary="Every delivery attempt, oldest first (admin)")
@problems(400, 401, 404, 429, 503)
def deliveries(query, webhook_id):
    found, next_after = webhooks().attempts(webhook_id, query["cursor"], query["limit"])
    return {"webhook_id": webhook_id, "deliveries": found, "next_after": next_after}


@blp.get(f"/api/webhooks/{WEBHOOK_ID}", parameters=[WEBHOOK])
@admin_auth.login_required
@blp.response(200, WebhookSchema, example=examples.WEBHOOK)
@blp.doc(security=ADMIN, summary="One webhook, without its secret (admin)")
@problems(401, 404, 429, 503)
def get_webhook(webhook_id):
    return shaped(webhooks().get(webhook_id))


@blp.route(f"/api/webhooks/{WEBHOOK_ID}", methods=["DELETE"], parameters=[WEBHOOK])
@admin_auth.login_required
@blp.response(204)
@blp.doc(security=ADMIN, summary="Stop and remove a webhook and its attempts (admin)")
@problems(401, 404, 405, 429, 503)
def delete_webhook(webhook_id):
    webhooks().delete(webhook_id)
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # no body, so no type
    return response
