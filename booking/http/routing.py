"""What every blueprint shares: path parameters, the Idempotency-Key and admin parts of
the spec, the problem+json answers each operation documents, and the service."""

from flask import abort, current_app, request

from . import answers, examples
from .parsing import Blueprint
from .responses import ProblemSchema

# Path parameters are camelCase like the bodies ({eventId}); the views get snake_case.
EVENT_ID = "<int(min=1, max=9223372036854775807):eventId>"
USER_ID = "<int(min=1, max=9223372036854775807):userId>"
WEBHOOK_ID = "<int(min=1, max=9223372036854775807):webhookId>"
SNAKE = {"eventId": "event_id", "userId": "user_id", "webhookId": "webhook_id"}


def path_parameter(name: str, description: str, example: int) -> dict:
    return {"in": "path", "name": name, "description": description, "example": example}


EVENT = path_parameter("eventId", "The event's id, as initialize answered it", examples.EVENT_ID)
USER = path_parameter("userId", "The user's id in your own system", examples.USER_ID)
WEBHOOK = path_parameter(
    "webhookId", "The webhook's id, as its creation answered it", examples.WEBHOOK_ID
)


def snake_case_path_values(endpoint, values):
    """Hand the views their path values under Python's names."""
    for camel, snake in SNAKE.items():
        if values and camel in values:
            values[snake] = values.pop(camel)


ADMIN = [{"basicAuth": []}]
KEYED = [
    {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "description": "Retry safely: the same key and body again get the first answer"
        " (Idempotent-Replayed: true); another body is 422. Kept for IDEMPOTENCY_TTL.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
        "example": examples.IDEMPOTENCY_KEY,
    }
]
PROBLEM = "application/problem+json"


def require_json():
    """Before every request of the API's blueprints: JSON bodies and a sane key."""
    if request.method in ("POST", "PATCH") and not request.is_json:
        abort(415, description="Send the body as JSON with Content-Type: application/json.")
    if not answers.sane_key(request.headers.get(answers.IDEMPOTENCY_KEY)):
        abort(400, description="Idempotency-Key must be 1 to 255 visible ASCII characters.")


# The events blueprint (its routes are in events.py); problems() documents through it.
events_blp = Blueprint("events", __name__, description="Events, bookings and the waiting list")
events_blp.before_request(require_json)
events_blp.url_value_preprocessor(snake_case_path_values)


def service():
    """The sales service (sales/service.py), made in create_app."""
    return current_app.extensions["booking"]


def webhooks():
    """The webhook subscriptions (notify/webhooks.py), made in create_app."""
    return current_app.extensions["webhooks"]


def problems(*statuses):
    """Document the problem+json answers an operation can give."""

    def decorate(view):
        for status in statuses:
            example = examples.PROBLEMS[status]
            view = events_blp.alt_response(
                status, schema=ProblemSchema, content_type=PROBLEM, example=example
            )(view)
        return view

    return decorate
