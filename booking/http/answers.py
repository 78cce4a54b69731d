"""What the blueprint answers for a change: the rules' results shaped for the schemas,
the outcome on the request's log line, and the answers of keyed (idempotent) requests.

A keyed request's answer is rendered inside its batch (`answered`), stored with
its change, and sent byte for byte, now and on every replay (`send`).
"""

import re
from datetime import timedelta

from flask import current_app, request, url_for

from ..sales import domain
from ..sales.idempotency import Answer, Key, fingerprint
from . import errors
from .auth import admin_auth
from .request_log import note

IDEMPOTENCY_KEY = "Idempotency-Key"
_SANE_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII


def sane_key(key: str | None) -> bool:
    return key is None or bool(_SANE_KEY.fullmatch(key))


# The rules' results, shaped as the response schemas expect.


def event(state: domain.EventState) -> dict:
    return {
        "event_id": state.event_id,
        "name": state.name,
        "total_tickets": state.total_tickets,
        "available_tickets": state.available_tickets,
        "waiting_count": state.waiting_count,
        "sales_open": state.sales_open,
        "waitlist_mode": state.waitlist_mode,
        "offer_ttl_seconds": state.offer_ttl_seconds,
        "offered_tickets": state.offered_tickets,
        "max_tickets_per_booking": state.max_tickets_per_booking,
        "max_overtakes": state.max_overtakes,
        "waiting_tickets": state.waiting_tickets,
        "hold_ttl_seconds": state.hold_ttl_seconds,
        "held_tickets": state.held_tickets,
        "sales_open_at": state.sales_open_at,
        "queueing": state.queueing,
        "queued_count": state.queued_count,
        "queued_tickets": state.queued_tickets,
    }


# What a user's state and bookings show of what they hold, when they hold it.
HOLDING = ("tickets", "position", "overtakes", "offer_expires_at", "hold_expires_at")


def present(result, *names: str) -> dict:
    """Those of the result's optional fields that it has (not None)."""
    return {name: value for name in names if (value := getattr(result, name)) is not None}


def location(state: domain.EventState) -> dict:
    return {"Location": url_for("events.status", eventId=state.event_id)}


def booking(result: domain.Booked | domain.Held | domain.Queued | domain.Waitlisted):
    """A booking's answer; queued for a scheduled on-sale is 202 (not done yet)."""
    shaped = {"event_id": result.event_id, "user_id": result.user_id, "tickets": result.tickets}
    if isinstance(result, domain.Queued):
        return {"status": "queued", **shaped, "sales_open_at": result.sales_open_at}, 202
    if isinstance(result, domain.Waitlisted):
        return {"status": "waitlisted", **shaped, "position": result.position}
    if isinstance(result, domain.Held):
        return {"status": "held", **shaped, "hold_expires_at": result.expires_at}
    return {"status": "booked", **shaped}


def served(served: domain.Served, first: bool = False) -> dict:
    """Whom a change's allocation served; with `first`, also the first of each list."""
    promoted, offered = served.promoted_user_ids, served.offered_user_ids
    shaped = {"promoted_user_ids": promoted, "offered_user_ids": offered}
    if first:
        shaped["promoted_user_id"] = promoted[0] if promoted else None
        shaped["offered_user_id"] = offered[0] if offered else None
    return shaped


def cancellation(result: domain.Cancelled) -> dict:
    shaped = {
        "status": result.status,
        "event_id": result.event_id,
        "user_id": result.user_id,
        "tickets": result.tickets,
        "remaining_tickets": result.remaining_tickets,
        **served(result.served, first=True),
    }
    if result.position is not None:
        shaped["position"] = result.position
    return shaped


def claimed(result: domain.Claimed) -> dict:
    return {
        "status": "booked",
        "event_id": result.event_id,
        "user_id": result.user_id,
        "tickets": result.tickets,
        "released_tickets": result.released_tickets,
        **served(result.served),
    }


def changed(result: domain.EventChanged) -> dict:
    return {**event(result.event), **served(result.served)}


_SHAPES = {
    domain.EventState: event,
    domain.Booked: booking,
    domain.Held: booking,
    domain.Queued: booking,
    domain.Waitlisted: booking,
    domain.Cancelled: cancellation,
    domain.Claimed: claimed,
    domain.EventChanged: changed,
}


def log_outcome(result) -> None:
    """The change's outcome, on its request's log line."""
    if isinstance(result, domain.EventState):
        note(eventId=result.event_id, totalTickets=result.total_tickets, outcome="initialized")
    elif isinstance(result, domain.EventChanged):
        promoted = result.served.promoted_user_ids
        note(eventId=result.event.event_id, outcome="updated", promotedUserIds=promoted)
    elif isinstance(result, domain.Cancelled):
        note(
            **_who(result),
            outcome=result.status,
            tickets=result.tickets,
            promotedUserIds=result.served.promoted_user_ids,
            offeredUserIds=result.served.offered_user_ids,
        )
    elif isinstance(result, domain.Claimed):
        note(**_who(result), outcome="claimed", tickets=result.tickets)
    elif isinstance(result, domain.Waitlisted):
        note(**_who(result), outcome="waitlisted", tickets=result.tickets)
    elif isinstance(result, domain.Held):
        note(**_who(result), outcome="held", tickets=result.tickets)
    elif isinstance(result, domain.Queued):
        note(**_who(result), outcome="queued", tickets=result.tickets)
    elif isinstance(result, domain.Booked):
        note(**_who(result), outcome="booked", tickets=result.tickets)


def _who(result) -> dict:
    return {"eventId": result.event_id, "userId": result.user_id}


# Keyed requests.


def keyed(render) -> Key | None:
    """The request's Idempotency-Key, if it sent one: scoped by method and path, and on
    admin routes by the admin user."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    scope = f"{request.method} {request.path}"
    if user := admin_auth.current_user():
        scope += f" {user}"
    ttl = timedelta(seconds=current_app.config["IDEMPOTENCY_TTL"])
    return Key(key, scope, fingerprint(request.get_json()), ttl, render)


def answered(status: int, schema, headers=None, shape=None):
    """How a keyed change's result or refusal is answered: exactly what flask-smorest
    (the schema's dump as JSON) or the refusal's handler would send without a key.
    `shape` turns the result into the schema's input (default: by its type)."""

    def render(result, refusal: domain.BookingError | None) -> Answer:
        if refusal is not None:
            response = errors.refusal(refusal)
            extra = {}
        else:
            shaped = (shape or _SHAPES[type(result)])(result)
            shaped, code = shaped if isinstance(shaped, tuple) else (shaped, status)
            response = current_app.json.response(schema().dump(shaped))
            response.status_code = code
            extra = headers(result) if headers else {}
        body = response.get_data(as_text=True)
        return Answer(response.status_code, extra, body, response.content_type, refusal or result)

    return render


def respond(result, key: Key | None, shape):
    """A change's response: its keyed Answer as it stands, else the shaped result
    (flask-smorest dumps it with the route's schema)."""
    if key is not None:
        return send(result)
    log_outcome(result)
    return shape(result)


def send(answer: Answer):
    """A keyed request's answer, byte for byte; a replay says so in a header."""
    if isinstance(answer.result, domain.BookingError):
        note(outcome="refused", problem=type(answer.result).__name__)
    elif answer.result is not None:
        log_outcome(answer.result)
    response = current_app.response_class(
        answer.body, status=answer.status, headers=answer.headers, content_type=answer.content_type
    )
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
        note(idempotentReplayed=True)
    return response
