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

from .allocation import allocate, listed, serve_present
from .batch import Batch, EventView
from .batch_offers import HOLD
from .domain import (
    AlreadyBooked,
    AlreadyHeld,
    AlreadyOffered,
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
}


def create(tx: Batch, settings: dict) -> EventState:
    """A new event; `settings` has every key of SETTINGS but sales_open."""
    event_id = tx.create_event(settings)
    tx.record("event.created", event_id, **{SETTINGS[k]: v for k, v in settings.items()})
    total = settings["total_tickets"]
    return EventState(
        event_id,
        settings["name"],
        total,
        total,
        0,
        True,
        settings["waitlist_mode"],
        settings["offer_ttl_seconds"],
        0,
        settings["max_tickets_per_booking"],
        settings["max_overtakes"],
        0,
        settings["hold_ttl_seconds"],
    )


def book(tx: Batch, event_id: int, user_id: int, tickets: int = 1) -> Booked | Held | Waitlisted:
    event = existing(tx.event(event_id), event_id)
    if not event.sales_open:
        raise SalesClosed(event_id)
    if tx.booked(event, user_id):
        raise AlreadyBooked(event_id, user_id)
    if (offer := tx.offer_of(event, user_id)) is not None:
        if offer.kind == HOLD:
            raise AlreadyHeld(event_id, user_id, offer.expires_at)
        raise AlreadyOffered(event_id, user_id, offer.expires_at)
    if (party := tx.place(event, user_id)) is not None:
        raise AlreadyWaiting(event_id, user_id, tx.line(event).line.position(party.seq))
    if tickets > event.max_tickets_per_booking:
        raise TooManyTickets(
            event_id,
            tickets,
            f"a booking may have at most {event.max_tickets_per_booking}.",
            maxTicketsPerBooking=event.max_tickets_per_booking,
            totalTickets=event.total_tickets,
        )
    if not event.waiting_count and tickets <= event.available_tickets:
        # Nobody waits and the tickets are free: what the allocation would do, at once.
        return serve_present(tx, event, user_id, tickets, [])
    party = tx.join(event, user_id, tickets)
    _, present = allocate(tx, event, "booking.booked", user_id, newcomer=party)
    if present is not None:
        return present
    position = event.waiting_count  # the newcomer is the last in line
    tx.record("waitlist.joined", event_id, user_id, tickets=tickets, position=position)
    return Waitlisted(event_id, user_id, position, tickets)


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
    fact = tx.record("event.updated", event_id, **{SETTINGS[k]: v for k, v in given.items()})
    if total is not None:
        given["available_tickets"] = event.available_tickets + total - event.total_tickets
    tx.change_event(event, **given)
    served, _ = allocate(tx, event, "event.updated", None)
    fact.update(promotedUserIds=served.promoted_user_ids, offeredUserIds=served.offered_user_ids)
    return EventChanged(EventState.of(event), served)


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
