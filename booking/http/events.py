"""The events blueprint: events (create, read, change, their line) and bookings on them
(book, cancel, claim), and where a user stands. One blueprint is one tag of the spec;
its routes are declared in the order the spec lists them, which is the order a client
meets them (Postman's import of the spec runs them top to bottom).

Request schemas are given as instances: given a class, webargs builds a new schema on
every request (4% of a booking's CPU under load, docs/performance.md)."""

from . import answers, examples
from .answers import answered, keyed, respond
from .auth import admin_auth
from .responses import (
    BookingResult,
    CancelResult,
    ClaimResult,
    EventChangedSchema,
    EventSchema,
    EventsPageSchema,
    UserBookingsPageSchema,
    UserStateSchema,
    WaitingListSchema,
)
from .routing import ADMIN, EVENT, EVENT_ID, KEYED, USER, USER_ID, problems, service
from .routing import events_blp as blp
from .schemas import SETTINGS, BookingRequest, EventChangeRequest, InitializeRequest, PageQuery


@blp.post("/api/events/initialize")
@admin_auth.login_required
@blp.arguments(InitializeRequest(), example=examples.INITIALIZE)
@blp.response(201, EventSchema, example=examples.INITIALIZED)
@blp.doc(
    security=ADMIN,
    parameters=KEYED,
    summary="Create an event with a fixed number of tickets (admin)",
)
@problems(400, 401, 409, 415, 422, 429, 503)
def initialize(body):
    key = keyed(answered(201, EventSchema, headers=answers.location))
    settings = {name: body.get(name) for name in SETTINGS}
    state = service().initialize(body["event_name"], body["total_tickets"], key, **settings)
    return respond(state, key, lambda state: (answers.event(state), answers.location(state)))


@blp.post("/api/events/book")
@blp.arguments(BookingRequest(), example=examples.BOOK)
@blp.response(201, BookingResult, example=examples.BOOKED)
@blp.alt_response(
    202,
    schema=BookingResult,
    example=examples.QUEUED,
    description="Queued for a scheduled on-sale: the opening at salesOpenAt serves the"
    " queue in a random order",
)
@blp.doc(
    parameters=KEYED,
    summary="Book tickets for a party (1 unless asked; held for checkout if the event says"
    " so), join the waiting list, or queue for a scheduled on-sale",
)
@problems(400, 404, 409, 415, 422, 429, 503)
def book(body):
    key = keyed(answered(201, BookingResult))
    result = service().book(body["event_id"], body["user_id"], body.get("tickets", 1), key)
    return respond(result, key, answers.booking)


@blp.get(f"/api/events/{EVENT_ID}", parameters=[EVENT])
@blp.response(200, EventSchema, example=examples.EVENT)
@blp.doc(summary="One event")
@problems(404, 429, 503)
def get_event(event_id):
    return answers.event(service().status(event_id))


@blp.route(f"/api/events/{EVENT_ID}", methods=["PATCH"], parameters=[EVENT])
@admin_auth.login_required
@blp.arguments(EventChangeRequest(), example=examples.CHANGE)
@blp.response(200, EventChangedSchema, example=examples.CHANGED)
@blp.doc(
    security=ADMIN,
    parameters=KEYED,
    summary="Change an event's name, tickets, sales or waiting-list rules (admin)",
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
        **{name: body.get(name) for name in SETTINGS},
    )
    return respond(changed, key, answers.changed)


@blp.post("/api/events/claim")
@blp.arguments(BookingRequest(), example=examples.BOOK)
@blp.response(201, ClaimResult, example=examples.CLAIMED)
@blp.doc(
    parameters=KEYED,
    summary="Claim the tickets offered or held for you (all, or fewer), before they lapse",
)
@problems(400, 404, 409, 415, 422, 429, 503)
def claim(body):
    key = keyed(answered(201, ClaimResult))
    result = service().claim(body["event_id"], body["user_id"], body.get("tickets"), key)
    return respond(result, key, answers.claimed)


@blp.get(f"/api/events/status/{EVENT_ID}", parameters=[EVENT])
@blp.response(200, EventSchema, example=examples.SOLD_OUT)
@blp.doc(summary="Tickets left and waiting-list length")
@problems(404, 429, 503)
def status(event_id):
    return answers.event(service().status(event_id))


@blp.get("/api/events")
@blp.arguments(PageQuery(), location="query")
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
    return shaped | answers.present(state, *answers.HOLDING)


@blp.get(f"/api/users/{USER_ID}/bookings", parameters=[USER])
@blp.arguments(PageQuery(), location="query")
@blp.response(200, UserBookingsPageSchema, example=examples.USER_BOOKINGS)
@blp.doc(summary="A user's tickets and places in line, in ascending eventId, a page at a time")
@problems(400, 404, 429, 503)
def user_bookings(query, user_id):
    page = service().user_bookings(user_id, query["cursor"], query["limit"])
    bookings = [
        {"event_id": b.event_id, "event_name": b.event_name, "status": b.status}
        | answers.present(b, *answers.HOLDING)
        for b in page.bookings
    ]
    return {"user_id": user_id, "bookings": bookings, "next_after": page.next_after}


@blp.get(f"/api/events/{EVENT_ID}/waiting-list", parameters=[EVENT])
@admin_auth.login_required
@blp.response(200, WaitingListSchema, example=examples.WAITING_LIST)
@blp.doc(security=ADMIN, summary="The waiting list in order (admin)")
@problems(401, 404, 429, 503)
def waiting_list(event_id):
    parties = service().waiting_list(event_id)
    return {
        "event_id": event_id,
        "user_ids": [party.user_id for party in parties],
        "entries": [
            {"user_id": p.user_id, "tickets": p.tickets, "overtakes": p.overtakes} for p in parties
        ],
    }


@blp.post("/api/events/cancel")
@blp.arguments(BookingRequest(), example=examples.BOOK)
@blp.response(200, CancelResult, example=examples.CANCELLED)
@blp.doc(
    parameters=KEYED,
    summary="Give back tickets (all, or some; the waiting line gets them), decline an offer,"
    " release a checkout hold, or leave the waiting list (or wait for fewer)",
)
@problems(400, 404, 409, 415, 422, 429, 503)
def cancel(body):
    key = keyed(answered(200, CancelResult))
    result = service().cancel(body["event_id"], body["user_id"], body.get("tickets"), key)
    return respond(result, key, answers.cancellation)
