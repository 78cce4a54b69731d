"""The spec's examples: one story on a fresh database, each step continuing the one before.

An admin opens a concert of two tickets that holds bookings for payment (checkout holds,
offer mode for the line); user 1 books both for a party of two and they are held; the
admin adds a ticket; user 1 pays and claims the hold; then the reads; user 1 cancels both;
then the journal of all that and a webhook. The operations are registered in this order,
so the spec lists them so, and a Postman collection converted from it (parameters from
examples) runs top to bottom with every request answering 2xx.
tests/test_openapi_postman.py runs exactly that and compares each answer with the
example here.
"""

EVENT_ID = 1
USER_ID = 1
WEBHOOK_ID = 1
IDEMPOTENCY_KEY = "3f2b8c1e-7d4a-4e9b-a6c5-0d1e2f3a4b5c"
CREATED_AT = "2026-12-01T09:00:00.000Z"
PARTY = 2  # user 1 books for two
HOLD_TTL = 900  # a quarter of an hour to pay
HOLD_EXPIRES_AT = "2026-12-01T08:15:01.000Z"


def _event(**changes) -> dict:
    return {
        "eventId": EVENT_ID,
        "eventName": "Concert",
        "totalTickets": PARTY,
        "availableTickets": PARTY,
        "waitingListCount": 0,
        "salesOpen": True,
        "waitlistMode": "offer",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 0,
        "holdTtlSeconds": HOLD_TTL,
        "heldTickets": 0,
        "salesOpenAt": None,
        "queueing": False,
        "queuedCount": 0,
        "queuedTickets": 0,
        **changes,
    }


INITIALIZE = {
    "eventName": "Concert",
    "totalTickets": PARTY,
    "waitlistMode": "offer",
    "offerTtlSeconds": 3600,
    "maxTicketsPerBooking": 10,
    "maxOvertakes": 3,
    "holdTtlSeconds": HOLD_TTL,
}
INITIALIZED = _event()

BOOK = {"eventId": EVENT_ID, "userId": USER_ID, "tickets": PARTY}
BOOKED = {
    "eventId": EVENT_ID,
    "userId": USER_ID,
    "status": "held",
    "tickets": PARTY,
    "holdExpiresAt": HOLD_EXPIRES_AT,
}

# A scheduled on-sale's booking before the opening (answered 202).
QUEUED = {
    "eventId": EVENT_ID,
    "userId": USER_ID,
    "status": "queued",
    "tickets": PARTY,
    "salesOpenAt": "2026-12-24T10:00:00.000Z",
}

EVENT = _event(availableTickets=0, heldTickets=PARTY)

CHANGE = {"totalTickets": PARTY + 1}
NOBODY_SERVED = {"promotedUserIds": [], "offeredUserIds": []}
CHANGED = _event(totalTickets=PARTY + 1, availableTickets=1, heldTickets=PARTY, **NOBODY_SERVED)

CLAIMED = {
    "eventId": EVENT_ID,
    "userId": USER_ID,
    "status": "booked",
    "tickets": PARTY,
    "releasedTickets": 0,
    **NOBODY_SERVED,
}

SOLD_OUT = _event(totalTickets=PARTY + 1, availableTickets=1)
EVENTS_PAGE = {"events": [SOLD_OUT], "nextCursor": None}
USER_STATE = {"eventId": EVENT_ID, "userId": USER_ID, "status": "booked", "tickets": PARTY}
USER_BOOKINGS = {
    "userId": USER_ID,
    "bookings": [
        {"eventId": EVENT_ID, "eventName": "Concert", "status": "booked", "tickets": PARTY}
    ],
    "nextCursor": None,
}
WAITING_LIST = {"eventId": EVENT_ID, "userIds": [], "entries": []}

NOBODY_SERVED_FIRST = {**NOBODY_SERVED, "promotedUserId": None, "offeredUserId": None}
CANCELLED = {
    "eventId": EVENT_ID,
    "userId": USER_ID,
    "status": "cancelled",
    "tickets": PARTY,
    "remainingTickets": 0,
    **NOBODY_SERVED_FIRST,
}


def _entry(entry_id: int, type_: str, user_id, data: dict, at: str) -> dict:
    return {
        "entryId": entry_id,
        "type": type_,
        "eventId": EVENT_ID,
        "userId": user_id,
        "at": at,
        "data": data,
    }


HISTORY = {
    "eventId": EVENT_ID,
    "entries": [
        _entry(
            1,
            "event.created",
            None,
            INITIALIZE,  # event.created holds what initialize was sent
            "2026-12-01T08:00:00.000Z",
        ),
        _entry(
            2,
            "hold.created",
            USER_ID,
            {"tickets": PARTY, "expiresAt": HOLD_EXPIRES_AT, "overtookUserIds": []},
            "2026-12-01T08:00:01.000Z",
        ),
        _entry(
            3,
            "event.updated",
            None,
            {"totalTickets": PARTY + 1, **NOBODY_SERVED},
            "2026-12-01T08:05:00.000Z",
        ),
        _entry(
            4,
            "hold.claimed",
            USER_ID,
            {"tickets": PARTY, "releasedTickets": 0, **NOBODY_SERVED_FIRST},
            "2026-12-01T08:06:00.000Z",
        ),
        _entry(
            5,
            "booking.cancelled",
            USER_ID,
            {"tickets": PARTY, "remainingTickets": 0, **NOBODY_SERVED_FIRST},
            "2026-12-01T08:45:00.000Z",
        ),
    ],
    "nextCursor": None,
}

SUBSCRIBE = {"url": "https://hooks.example.com/booking", "eventTypes": ["*"], "eventId": None}
WEBHOOK = {
    "webhookId": WEBHOOK_ID,
    **SUBSCRIBE,  # as subscribed
    "enabled": True,
    "disabledReason": None,
    "createdAt": CREATED_AT,
    "deliveredUpTo": 5,
}
SUBSCRIBED = {**WEBHOOK, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
WEBHOOKS_PAGE = {"webhooks": [WEBHOOK], "nextCursor": None}
DELIVERIES_PAGE = {"webhookId": WEBHOOK_ID, "deliveries": [], "nextCursor": None}

HEALTHY = {"status": "ok"}
READY = {"status": "ready"}


def _problem(status: int, title: str, detail: str, slug: str | None = None, **extra) -> dict:
    kind = f"urn:booking:problem:{slug}" if slug else "about:blank"
    return {"type": kind, "title": title, "status": status, "detail": detail, **extra}


# A typical refusal for each status; the API section of the docs lists every type.
PROBLEMS = {
    400: _problem(
        400,
        "Bad Request",
        "The request body is not valid; see errors.",
        errors={"userId": ["Not a valid integer."]},
    ),
    401: _problem(401, "Unauthorized", "Valid admin credentials are required (HTTP Basic)."),
    404: _problem(404, "Event not found", "Event 2 does not exist.", "event-not-found"),
    405: _problem(405, "Method Not Allowed", "The method is not allowed for the requested URL."),
    409: _problem(409, "No offer to claim", "User 2 holds no offer for event 1.", "no-offer"),
    415: _problem(
        415, "Unsupported Media Type", "Send the body as JSON with Content-Type: application/json."
    ),
    422: _problem(
        422,
        "Idempotency-Key reused",
        f"Idempotency-Key {IDEMPOTENCY_KEY!r} was used for a different request on this route;"
        " use a new key for a new request.",
        "idempotency-key-reused",
    ),
    429: _problem(429, "Too Many Requests", "100 per 15 minute"),
    503: _problem(
        503,
        "Service unavailable",
        "The database did not answer in time. Retry shortly.",
        "unavailable",
    ),
}
