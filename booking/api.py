"""The HTTP face: parse, call the booking rules, shape the response."""

from flask import abort, current_app, request

from . import answers, examples
from .answers import answered, keyed, respond
from .extensions import admin_auth
from .parsing import Blueprint
from .responses import (
    BookingResult,
    CancelResult,
    ClaimResult,
    EventChangedSchema,
    EventSchema,
    EventsPageSchema,
    ProblemSchema,
    UserBookingsPageSchema,
    UserStateSchema,
    WaitingListSchema,
)
from .schemas import BookingRequest, EventChangeRequest, InitializeRequest, PageQuery

# Path parameters are camelCase like the bodies ({eventId}); the views get snake_case.
EVENT_ID = "<int(min=1, max=9223372036854775807):eventId>"
USER_ID = "<int(min=1, max=9223372036854775807):userId>"
SNAKE = {"eventId": "event_id", "userId": "user_id", "webhookId": "webhook_id"}


def path_parameter(name: str, description: str, example: int) -> dict:
    return {"in": "path", "name": name, "description": description, "example": example}


EVENT = path_parameter("eventId", "The event's id, as initialize answered it", examples.EVENT_ID)
USER = path_parameter("userId", "The user's id in your own system", examples.USER_ID)


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


blp = Blueprint("events", __name__, description="Events, bookings and the waiting list")
blp.url_value_preprocessor(snake_case_path_values)


def service():
    return current_app.extensions["booking"]


def problems(*statuses):
    """Document the problem+json answers an operation can give."""

    def decorate(view):
        for status in statuses:
            example = examples.PROBLEMS[status]
            view = blp.alt_response(
                status, schema=ProblemSchema, content_type=PROBLEM, example=example
            )(view)
        return view

    return decorate


@blp.before_request
def require_json():
    if request.method in ("POST", "PATCH") and not request.is_json:
        abort(415, description="Send the body as JSON with Content-Type: application/json.")
    if not answers.sane_key(request.headers.get(answers.IDEMPOTENCY_KEY)):
        abort(400, description="Idempotency-Key must be 1 to 255 visible ASCII characters.")


@blp.post("/api/events/initialize")
@admin_auth.login_required
@blp.arguments(InitializeRequest, example=examples.INITIALIZE)
@blp.response(201, EventSchema, example=examples.INITIALIZED)
@blp.doc(
    security=ADMIN,
    parameters=KEYED,
    summary="Create an event with a fixed number of tickets (admin)",
)
@problems(400, 401, 409, 415, 422, 429, 503)
def initialize(body):
    key = keyed(answered(201, EventSchema, headers=answers.location))
    state = service().initialize(
        body["event_name"],
        body["total_tickets"],
        body.get("waitlist_mode", "auto"),
        body.get("offer_ttl_seconds", 3600),
        key,
    )
    return respond(state, key, lambda state: (answers.event(state), answers.location(state)))


@blp.post("/api/events/book")
@blp.arguments(BookingRequest, example=examples.BOOK)
@blp.response(201, BookingResult, example=examples.BOOKED)
@blp.doc(parameters=KEYED, summary="Book a ticket, or join the waiting list when sold out")
@problems(400, 404, 409, 415, 422, 429, 503)
def book(body):
    key = keyed(answered(201, BookingResult))
    result = service().book(body["event_id"], body["user_id"], key)
    return respond(result, key, answers.booking)


@blp.get(f"/api/events/{EVENT_ID}", parameters=[EVENT])
@blp.response(200, EventSchema, example=examples.EVENT)
@blp.doc(summary="One event")
@problems(404, 429, 503)
def get_event(event_id):
    return answers.event(service().status(event_id))


@blp.route(f"/api/events/{EVENT_ID}", methods=["PATCH"], parameters=[EVENT])
@admin_auth.login_required
@blp.arguments(EventChangeRequest, example=examples.CHANGE)
@blp.response(200, EventChangedSchema, example=examples.CHANGED)
@blp.doc(
    security=ADMIN,
    parameters=KEYED,
    summary="Change an event's name, number of tickets or whether sales are open (admin)",
)
@problems(400, 401, 404, 405, 409, 415, 422, 429, 503)
def change_event(body, event_id):
    key = keyed(answered(200, EventChangedSchema))
    changed = service().change_event(
        event_id,
        key,
        name=body.get("event_name"),
        total_tickets=body.get("total_tickets"),
        sales_open=body.get("sales_open"),
        waitlist_mode=body.get("waitlist_mode"),
        offer_ttl_seconds=body.get("offer_ttl_seconds"),
    )
    return respond(changed, key, answers.changed)


@blp.post("/api/events/claim")
@blp.arguments(BookingRequest, example=examples.BOOK)
@blp.response(201, ClaimResult, example=examples.CLAIMED)
@blp.doc(
    parameters=KEYED,
    summary="Claim the ticket offered to you (offer mode), before the offer lapses",
)
@problems(400, 404, 409, 415, 422, 429, 503)
def claim(body):
    key = keyed(answered(201, ClaimResult))
    result = service().claim(body["event_id"], body["user_id"], key)
    return respond(result, key, answers.claimed)


@blp.get(f"/api/events/status/{EVENT_ID}", parameters=[EVENT])
@blp.response(200, EventSchema, example=examples.SOLD_OUT)
@blp.doc(summary="Tickets left and waiting-list length")
@problems(404, 429, 503)
def status(event_id):
    return answers.event(service().status(event_id))


@blp.get("/api/events")
@blp.arguments(PageQuery, location="query")
@blp.response(200, EventsPageSchema, example=examples.EVENTS_PAGE)
@blp.doc(summary="Events in ascending id order, a page at a time (keyset cursor)")
@problems(400, 429, 503)
def list_events(query):
    page = service().events(query["cursor"], query["limit"])
    return {
        "events": [answers.event(state) for state in page.events],
        "next_after": page.next_after,
    }


@blp.get(f"/api/events/{EVENT_ID}/users/{USER_ID}", parameters=[EVENT, USER])
@blp.response(200, UserStateSchema, example=examples.USER_STATE)
@blp.doc(summary="Whether a user is booked, waiting (and where), or neither")
@problems(404, 429, 503)
def user_state(event_id, user_id):
    state = service().user_state(event_id, user_id)
    shaped = {"event_id": event_id, "user_id": user_id, "status": state.status}
    if state.position is not None:
        shaped["position"] = state.position
    if state.offer_expires_at is not None:
        shaped["offer_expires_at"] = state.offer_expires_at
    return shaped


@blp.get(f"/api/users/{USER_ID}/bookings", parameters=[USER])
@blp.arguments(PageQuery, location="query")
@blp.response(200, UserBookingsPageSchema, example=examples.USER_BOOKINGS)
@blp.doc(summary="A user's tickets and places in line, in ascending eventId, a page at a time")
@problems(400, 404, 429, 503)
def user_bookings(query, user_id):
    page = service().user_bookings(user_id, query["cursor"], query["limit"])
    bookings = [
        {"event_id": b.event_id, "event_name": b.event_name, "status": b.status}
        | ({"position": b.position} if b.position is not None else {})
        | ({"offer_expires_at": b.offer_expires_at} if b.offer_expires_at else {})
        for b in page.bookings
    ]
    return {"user_id": user_id, "bookings": bookings, "next_after": page.next_after}


@blp.get(f"/api/events/{EVENT_ID}/waiting-list", parameters=[EVENT])
@admin_auth.login_required
@blp.response(200, WaitingListSchema, example=examples.WAITING_LIST)
@blp.doc(security=ADMIN, summary="The waiting list in order (admin)")
@problems(401, 404, 429, 503)
def waiting_list(event_id):
    return {"event_id": event_id, "user_ids": service().waiting_list(event_id)}


@blp.post("/api/events/cancel")
@blp.arguments(BookingRequest, example=examples.BOOK)
@blp.response(200, CancelResult, example=examples.CANCELLED)
@blp.doc(
    parameters=KEYED,
    summary="Cancel a ticket (the next in line gets or is offered it), decline an offer,"
    " or leave the waiting list",
)
@problems(400, 404, 409, 415, 422, 429, 503)
def cancel(body):
    key = keyed(answered(200, CancelResult))
    result = service().cancel(body["event_id"], body["user_id"], key)
    return respond(result, key, answers.cancellation)
