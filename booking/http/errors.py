"""Every error leaves as RFC 9457 problem+json; nothing leaks a stack trace."""

import logging

from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from .. import metrics
from ..notify.webhooks import DestinationRefused, WebhookNotFound
from ..sales.domain import (
    AlreadyBooked,
    AlreadyHeld,
    AlreadyOffered,
    AlreadyQueued,
    AlreadyWaiting,
    BookingError,
    CapacityBelowHeld,
    EventNotFound,
    LockTimeout,
    NoOffer,
    NothingToCancel,
    Queueing,
    SalesClosed,
    TooManyTickets,
    rfc3339,
)
from ..sales.idempotency import KeyInFlight, KeyReused

log = logging.getLogger("booking.errors")

PROBLEM_TYPE = "urn:booking:problem:"
RETRY_AFTER_SECONDS = "2"

# Domain refusal -> (status, type slug, title)
_DOMAIN = {
    EventNotFound: (404, "event-not-found", "Event not found"),
    NothingToCancel: (404, "nothing-to-cancel", "Nothing to cancel"),
    AlreadyBooked: (409, "already-booked", "Already booked"),
    AlreadyWaiting: (409, "already-waiting", "Already on the waiting list"),
    SalesClosed: (409, "sales-closed", "Sales are closed"),
    CapacityBelowHeld: (409, "capacity-below-held", "Fewer tickets than are booked"),
    NoOffer: (409, "no-offer", "No offer to claim"),
    AlreadyOffered: (409, "already-offered", "An offer is waiting to be claimed"),
    AlreadyHeld: (409, "already-held", "Tickets are held for your checkout"),
    AlreadyQueued: (409, "already-queued", "Already queued for the opening"),
    Queueing: (409, "queueing", "Bookings queue for the opening"),
    TooManyTickets: (409, "too-many-tickets", "Too many tickets"),
    KeyReused: (422, "idempotency-key-reused", "Idempotency-Key reused"),
    KeyInFlight: (409, "idempotency-key-in-flight", "Idempotency-Key in use"),
    WebhookNotFound: (404, "webhook-not-found", "Webhook not found"),
    DestinationRefused: (400, "webhook-destination-refused", "Webhook destination refused"),
}


def refusal(error: BookingError):
    """The problem+json answer to a refusal of the rules."""
    status, slug, title = _DOMAIN[type(error)]
    metrics.REFUSALS.labels(slug).inc()
    extra = {}
    if isinstance(error, AlreadyWaiting):
        extra["position"] = error.position
    if isinstance(error, CapacityBelowHeld):
        extra["held"] = error.held
    if isinstance(error, AlreadyOffered):
        extra["offerExpiresAt"] = rfc3339(error.expires_at)
    if isinstance(error, AlreadyHeld):
        extra["holdExpiresAt"] = rfc3339(error.expires_at)
    if isinstance(error, AlreadyQueued):
        extra["userTickets"] = error.tickets
    if isinstance(error, AlreadyQueued | Queueing):
        extra["salesOpenAt"] = rfc3339(error.sales_open_at)
    if isinstance(error, TooManyTickets):
        extra.update(error.extra)
    response = problem(status, title, str(error), slug, **extra)
    if isinstance(error, KeyInFlight):
        response.headers["Retry-After"] = "1"
        response.retry_after_meant = True  # request_log.py keeps it on this 409
    return response


def problem(status: int, title: str, detail: str, slug: str | None = None, **extra):
    body = {
        "type": PROBLEM_TYPE + slug if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    response = current_app.json.response(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _unavailable(detail: str, cause: str):
    metrics.UNAVAILABLE.labels(cause).inc()
    response = problem(503, "Service unavailable", detail, "unavailable")
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def register(app: Flask) -> None:
    @app.errorhandler(BookingError)
    def refused(error: BookingError):
        return refusal(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        extra = {}
        data = getattr(error, "data", None)
        detail = error.description
        if isinstance(data, dict) and "messages" in data:
            # webargs/marshmallow validation: say which field and why.
            by_location = data["messages"]
            where = "query string" if "query" in by_location else "request body"
            messages = by_location.get("json", by_location.get("query", by_location))
            if isinstance(messages, dict):
                extra["errors"] = messages
                detail = f"The {where} is not valid; see errors."
            else:
                detail = " ".join(map(str, messages))
        response = problem(error.code, error.name, detail, **extra)
        for name, value in error.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        headers = data.get("headers") if isinstance(data, dict) else None
        if headers:
            response.headers.update(headers)
        return response

    @app.errorhandler(LockTimeout)
    def busy(error: LockTimeout):
        log.warning("booking lock timeout: %s", error)
        return _unavailable("The booking system is busy; retry shortly.", "lock_timeout")

    @app.errorhandler(SQLAlchemyError)
    def database_error(error: SQLAlchemyError):
        if isinstance(error, IntegrityError):
            # The constraints caught what the rules should have: a bug, not an outage.
            log.error("constraint violation escaped the rules", exc_info=error)
            return problem(409, "Conflict", "The change conflicts with existing data.", "conflict")
        # Lost connections, lock wait timeouts, deadlocks, an exhausted pool: the
        # transaction rolled back (or its commit was never acknowledged), so a
        # retry is safe: a repeated booking answers 409, never books twice.
        log.warning("database unavailable: %s", getattr(error, "orig", None) or error)
        return _unavailable("The database did not answer in time. Retry shortly.", "database")

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.error("unhandled error", exc_info=error)
        return problem(500, "Internal server error", "An unexpected error occurred.")
