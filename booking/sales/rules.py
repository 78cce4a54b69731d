"""The booking rules: create, book, cancel, claim, change an event, settle lapsed offers.

Every change is a rule run by the group commit (group_commit.py) against its batch's
view (batch.py). The rules keep the invariants whole (booked + offered + available
= total, parties served whole, a user holds at most one booking, offer or place per
event), decide every refusal before they change anything, and journal each fact
they commit (storage/journal.py). Whatever frees tickets, or changes who could use
them, runs the allocation (allocation.py). No Flask, no SQL.

A booking is a party of `tickets` (1 unless asked); a buyer who is present books
when the allocation serves them at once, else waits in line. Freed tickets go to
the waiting parties by the allocation: booked for them in "auto" mode, offered
(held until offer_ttl_seconds later, to claim or decline) in "offer" mode.
"""

from dataclasses import replace
from datetime import datetime

from . import opening
from .allocation import allocate, listed, serve_buyer
from .batch import Batch, EventView
from .batch_offers import HOLD
from .domain import (
    AlreadyBooked,
    AlreadyHeld,
    AlreadyOffered,
    AlreadyQueued,
    AlreadyWaiting,
    Booked,
    Cancelled,
    CapacityBelowHeld,
    Claimed,
    EventChanged,
    EventNotFound,
    EventState,
    Held,
    NoOffer,
    NothingToCancel,
    Queued,
    Queueing,
    SalesClosed,
    TooManyTickets,
    Waitlisted,
    rfc3339,
)

# The journal's names for an event's settings, and the rules' own.
SETTINGS = {
    "name": "eventName",
    "total_tickets": "totalTickets",
    "sales_open": "salesOpen",
    "waitlist_mode": "waitlistMode",
    "offer_ttl_seconds": "offerTtlSeconds",
    "max_tickets_per_booking": "maxTicketsPerBooking",
    "max_overtakes": "maxOvertakes",
    "hold_ttl_seconds": "holdTtlSeconds",
    "sales_open_at": "salesOpenAt",
}


def create(tx: Batch, settings: dict) -> EventState:
    """A new event; `settings` has every key of SETTINGS but sales_open. A sales_open_at
    ahead makes it queue bookings until then; one in the past is only noted."""
    at = settings["sales_open_at"]
    queueing = at is not None and at > tx.now()
    event_id = tx.create_event({**settings, "sales_open": not queueing, "queueing": queueing})
    scheduled = {"queueing": queueing} if at is not None else {}  # else as it was sent
    given = {k: v for k, v in settings.items() if k != "sales_open_at" or v is not None}
    tx.record("event.created", event_id, **_as_facts(given), **scheduled)
    total = settings["total_tickets"]
    return EventState(
        event_id,
        settings["name"],
        total,
        total,
        0,
        not queueing,
        settings["waitlist_mode"],
        settings["offer_ttl_seconds"],
        0,
        settings["max_tickets_per_booking"],
        settings["max_overtakes"],
        0,
        settings["hold_ttl_seconds"],
        sales_open_at=at,
        queueing=queueing,
    )


def book(
    tx: Batch, event_id: int, user_id: int, tickets: int = 1
) -> Booked | Held | Queued | Waitlisted:
    event = existing(tx.event(event_id), event_id)
    if not (event.sales_open or event.queueing):
        raise SalesClosed(event_id)
    if tx.booked(event, user_id):
        raise AlreadyBooked(event_id, user_id)
    if (offer := tx.offer_of(event, user_id)) is not None:
        if offer.kind == HOLD:
            raise AlreadyHeld(event_id, user_id, offer.expires_at)
        raise AlreadyOffered(event_id, user_id, offer.expires_at)
    if (party := tx.place(event, user_id)) is not None:
        raise AlreadyWaiting(event_id, user_id, tx.line(event).line.position(party.seq))
    if (queued := tx.queued(event, user_id)) is not None:
        raise AlreadyQueued(event_id, user_id, queued, event.sales_open_at)
    if tickets > event.max_tickets_per_booking:
        raise TooManyTickets(
            event_id,
            tickets,
            f"a booking may have at most {event.max_tickets_per_booking}.",
            maxTicketsPerBooking=event.max_tickets_per_booking,
            totalTickets=event.total_tickets,
        )
    if event.queueing:
        return opening.queue(tx, event, user_id, tickets)
    return serve_buyer(tx, event, user_id, tickets)


def cancel(tx: Batch, event_id: int, user_id: int, tickets: int | None = None) -> Cancelled:
    """Give back booked tickets (some or all), decline an offer, release a checkout hold,
    or leave the line (or wait for fewer tickets)."""
    event = existing(tx.event(event_id), event_id)
    if booked := tx.booked(event, user_id):
        count = _some_of(event_id, booked, tickets, "booked")
        tx.unbook(event, user_id, count)
        return _freed(tx, event, "cancelled", "booking.cancelled", user_id, count, booked - count)
    if (offer := tx.offer_of(event, user_id)) is not None:
        what = "a hold is released" if offer.kind == HOLD else "an offer is declined"
        if tickets is not None and tickets != offer.tickets:
            raise TooManyTickets(
                event_id,
                tickets,
                f"{what} whole ({offer.tickets}); claim fewer instead.",
                userTickets=offer.tickets,
            )
        tx.end_offer(event, user_id)
        tx.free(event, offer.tickets)
        status, fact = (
            ("released_hold", "hold.released")
            if offer.kind == HOLD
            else ("declined_offer", "offer.declined")
        )
        return _freed(tx, event, status, fact, user_id, offer.tickets, 0)
    if (party := tx.place(event, user_id)) is not None:
        count = _some_of(event_id, party.tickets, tickets, "waiting for")
        remaining = party.tickets - count
        if remaining:
            tx.shrink(event, party, count)
            cause = "waitlist.reduced"
        else:
            tx.leave(event, party)
            cause = "waitlist.left"
        left = _freed(tx, event, "left_waiting_list", cause, user_id, count, remaining)
        still = tx.place(event, user_id) if remaining else None
        if still is None:
            return left
        return replace(left, position=tx.line(event).line.position(still.seq))
    if (queued := tx.queued(event, user_id)) is not None:
        count = _some_of(event_id, queued, tickets, "queued for")
        return opening.leave_queue(tx, event, user_id, count, queued)
    raise NothingToCancel(event_id, user_id)


def claim(tx: Batch, event_id: int, user_id: int, tickets: int | None = None) -> Claimed:
    """Book `tickets` of the user's offer or checkout hold (all unless asked) and free the
    rest. Sales need not be open: they are theirs already."""
    event = existing(tx.event(event_id), event_id)
    offer = tx.offer_of(event, user_id)
    # Lapsed offers and holds were settled when the batch began, by the database's clock;
    # the second test only guards the rule on its own.
    if offer is None or offer.expires_at <= tx.now():
        raise NoOffer(event_id, user_id, tx.offers(event).lapsed_at(tx.conn, event_id, user_id))
    count = _some_of(event_id, offer.tickets, tickets, "held" if offer.kind == HOLD else "offered")
    tx.end_offer(event, user_id)
    tx.add_booking(event, user_id, count)
    released = offer.tickets - count
    cause = f"{offer.kind}.claimed"
    fact = tx.record(cause, event_id, user_id, tickets=count, releasedTickets=released)
    tx.free(event, released)
    served, _ = allocate(tx, event, cause, user_id)
    fact.update(listed(served))
    return Claimed(event_id, user_id, count, released, served)


def settle(tx: Batch) -> None:
    """Before a batch's changes, what time has ended: lapsed offers and holds are freed,
    then the on-sales whose hour has come open."""
    settle_lapsed_offers(tx)
    opening.open_due_sales(tx)


def settle_lapsed_offers(tx: Batch) -> None:
    """Before a batch's changes: every offer and checkout hold past its time frees its
    tickets; those of an event that lapsed together are freed together, then the
    allocation runs once, and each lapse's fact says whom it served. Its cause is the
    first lapse's type (offer.expired or hold.expired), its user the one lapsed, if alone."""
    for event in tx.events():
        lapsed = tx.offers(event).lapsed() if event.offered_tickets or event.held_tickets else []
        if not lapsed:
            continue
        facts = []
        for offer in lapsed:
            tx.end_offer(event, offer.user_id, lapsed=True)
            tx.free(event, offer.tickets)
            facts.append(
                tx.record(
                    f"{offer.kind}.expired",
                    event.id,
                    offer.user_id,
                    tickets=offer.tickets,
                    expiresAt=rfc3339(offer.expires_at),
                )
            )
        alone = lapsed[0].user_id if len(lapsed) == 1 else None
        served, _ = allocate(tx, event, f"{lapsed[0].kind}.expired", alone)
        for fact in facts:
            fact.update(listed(served))


def change_event(tx: Batch, event_id: int, **values) -> EventChanged:
    """An admin's change to any of SETTINGS. A new mode or offer time applies to tickets
    freed from now on, this change's included. More tickets, a higher overtake limit,
    or anything else that could serve someone runs the allocation; fewer tickets remove
    free ones, never below those booked, offered or held."""
    event = existing(tx.event(event_id), event_id)
    given = {name: value for name, value in values.items() if value is not None}
    taken = event.total_tickets - event.available_tickets
    total = given.get("total_tickets")
    if total is not None and total < taken:
        raise CapacityBelowHeld(event_id, total, taken)
    opens = _schedule(tx, event, given)
    fact = tx.record("event.updated", event_id, **_as_facts(given))
    if total is not None:
        given["available_tickets"] = event.available_tickets + total - event.total_tickets
    tx.change_event(event, **given)
    served, _ = allocate(tx, event, "event.updated", None)
    fact.update(promotedUserIds=served.promoted_user_ids, offeredUserIds=served.offered_user_ids)
    if opens:  # after what the change itself serves, as a later change would be
        opening.open_sales(tx, event)
    return EventChanged(EventState.of(event), served)


def _schedule(tx: Batch, event: EventView, given: dict) -> bool:
    """What a change to salesOpenAt or salesOpen means for a scheduled on-sale (it adds
    `queueing` to `given` when that changes); True if the event opens now. A time ahead
    queues bookings until then; a time passed, or salesOpen true, opens a queueing event
    now; salesOpen false while queueing (or true with a time ahead) is refused."""
    at, sales_open = given.get("sales_open_at"), given.get("sales_open")
    if at is not None and at > tx.now():
        if sales_open:
            raise Queueing(event.id, at, "sales cannot open now and at salesOpenAt too")
        given.update(queueing=True, sales_open=False)
        return False
    if not event.queueing:
        return False
    if sales_open is False:
        raise Queueing(event.id, event.sales_open_at, "salesOpen cannot be false meanwhile")
    if at is None and sales_open is None:
        return False  # other settings only
    given.update(sales_open=True, queueing=False)
    given.setdefault("sales_open_at", tx.now())
    return True


def _as_facts(settings: dict) -> dict:
    """Settings as the journal names them, times as RFC 3339."""
    return {
        SETTINGS.get(name, name): rfc3339(value) if isinstance(value, datetime) else value
        for name, value in settings.items()
    }


def _freed(tx: Batch, event: EventView, status, cause, user_id, count, remaining) -> Cancelled:
    """Journal the fact `cause` that gave back `count` tickets (or a place), run the
    allocation, and note in the fact whom it served."""
    fact = tx.record(cause, event.id, user_id, tickets=count, remainingTickets=remaining)
    served, _ = allocate(tx, event, cause, user_id)
    fact.update(listed(served))
    return Cancelled(status, event.id, user_id, count, remaining, served)


def _some_of(event_id: int, held: int, asked: int | None, what: str) -> int:
    """How many of the `held` tickets a request means: all, or `asked` if not more."""
    if asked is None:
        return held
    if asked > held:
        raise TooManyTickets(
            event_id, asked, f"the user has {held} {what}, not more.", userTickets=held
        )
    return asked


def existing(event, event_id: int):
    if event is None:
        raise EventNotFound(event_id)
    return event
