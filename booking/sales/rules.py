"""The booking rules: create, book, cancel, claim, change an event, settle lapsed offers.

Every change is a rule run by the group commit (group_commit.py) against its batch's
view (batch.py). The rules keep the invariants whole (booked + offered +
available = total, nobody waits while a ticket is free, a user holds at most
one ticket, offer or place per event), decide every refusal before they change
anything, and journal each fact they commit (storage/journal.py). No Flask, no SQL.

A freed ticket (a cancellation, a declined or lapsed offer, more capacity) goes
to the head of the line by the event's mode at that moment: in "auto" it is
booked for them at once; in "offer" it is held for them until
offer_ttl_seconds later, to claim or decline.
"""

from .batch import Batch, EventView
from .domain import (
    OFFER,
    AlreadyBooked,
    AlreadyOffered,
    AlreadyWaiting,
    Booked,
    Cancelled,
    CapacityBelowHeld,
    Claimed,
    DeclinedOffer,
    EventChanged,
    EventNotFound,
    EventState,
    LeftWaitingList,
    NoOffer,
    NothingToCancel,
    SalesClosed,
    Waitlisted,
    rfc3339,
)


def create(tx: Batch, name: str, total: int, mode: str, ttl: int) -> EventState:
    event_id = tx.create_event(name, total, mode, ttl)
    facts = {"eventName": name, "totalTickets": total, "waitlistMode": mode, "offerTtlSeconds": ttl}
    tx.record("event.created", event_id, **facts)
    return EventState(event_id, name, total, total, 0, True, mode, ttl, 0)


def book(tx: Batch, event_id: int, user_id: int) -> Booked | Waitlisted:
    event = existing(tx.event(event_id), event_id)
    if not event.sales_open:
        raise SalesClosed(event_id)
    if tx.holds_ticket(event, user_id):
        raise AlreadyBooked(event_id, user_id)
    if (expires_at := tx.offer_of(event, user_id)) is not None:
        raise AlreadyOffered(event_id, user_id, expires_at)
    if tx.place(event, user_id) is not None:
        raise AlreadyWaiting(event_id, user_id, tx.position(event, user_id))
    if event.available_tickets > 0:
        # A free ticket means nobody waits.
        tx.take_ticket(event)
        tx.add_booking(event, user_id)
        tx.record("booking.booked", event_id, user_id)
        return Booked(event_id, user_id)
    position = tx.join_waiting_list(event, user_id)
    tx.record("waitlist.joined", event_id, user_id, position=position)
    return Waitlisted(event_id, user_id, position)


def cancel(tx: Batch, event_id: int, user_id: int) -> Cancelled | DeclinedOffer | LeftWaitingList:
    """Give back a ticket, decline an offer, or leave the line."""
    event = existing(tx.event(event_id), event_id)
    if tx.holds_ticket(event, user_id):
        tx.delete_booking(event, user_id)
        return Cancelled(event_id, user_id, *_freed(tx, event, "booking.cancelled", user_id))
    if tx.offer_of(event, user_id) is not None:
        tx.end_offer(event, user_id)
        return DeclinedOffer(event_id, user_id, *_freed(tx, event, "offer.declined", user_id))
    if tx.place(event, user_id) is not None:
        tx.leave_waiting_list(event, user_id)
        tx.record("waitlist.left", event_id, user_id)
        return LeftWaitingList(event_id, user_id)
    raise NothingToCancel(event_id, user_id)


def claim(tx: Batch, event_id: int, user_id: int) -> Claimed:
    """Book the ticket held for the user. Sales need not be open: it is theirs already."""
    event = existing(tx.event(event_id), event_id)
    expires_at = tx.offer_of(event, user_id)
    # Lapsed offers were settled when the batch began, by the database's clock; the
    # second test only guards the rule on its own.
    if expires_at is None or expires_at <= tx.now():
        raise NoOffer(event_id, user_id, tx.lapsed_at(event, user_id))
    tx.end_offer(event, user_id)
    tx.add_booking(event, user_id)
    tx.record("offer.claimed", event_id, user_id)
    return Claimed(event_id, user_id)


def settle_lapsed_offers(tx: Batch) -> None:
    """Before a batch's changes: every offer past its time passes its ticket on."""
    for event in tx.events():
        for user_id in tx.lapsed_offers(event):
            expires_at = tx.end_offer(event, user_id, lapsed=True)
            _freed(tx, event, "offer.expired", user_id, expiresAt=rfc3339(expires_at))


def change_event(
    tx: Batch,
    event_id: int,
    name: str | None = None,
    total_tickets: int | None = None,
    sales_open: bool | None = None,
    waitlist_mode: str | None = None,
    offer_ttl_seconds: int | None = None,
) -> EventChanged:
    """An admin's change. A new mode or offer time applies to tickets freed from now on,
    this change's included. More tickets go to the head of the line first, in line
    order; fewer remove unsold tickets, never below those booked or offered."""
    event = existing(tx.event(event_id), event_id)
    held = event.total_tickets - event.available_tickets
    if total_tickets is not None and total_tickets < held:
        raise CapacityBelowHeld(event_id, total_tickets, held)
    given = {
        "eventName": name,
        "totalTickets": total_tickets,
        "salesOpen": sales_open,
        "waitlistMode": waitlist_mode,
        "offerTtlSeconds": offer_ttl_seconds,
    }
    promoted, offered = [], []
    tx.record(
        "event.updated",
        event_id,
        **{k: v for k, v in given.items() if v is not None},
        promotedUserIds=promoted,  # filled in below, written at the batch's end
        offeredUserIds=offered,
    )
    values = {
        "name": name,
        "sales_open": sales_open,
        "waitlist_mode": waitlist_mode,
        "offer_ttl_seconds": offer_ttl_seconds,
    }
    tx.change_event(event, **{k: v for k, v in values.items() if v is not None})
    if total_tickets is not None:
        added = total_tickets - event.total_tickets
        tx.change_event(event, total_tickets=total_tickets)
        if added < 0:
            tx.change_event(event, available_tickets=event.available_tickets + added)
        while added > 0:
            added -= 1
            to_booked, to_offered = pass_on_ticket(tx, event, "event.updated", None)
            if to_booked is None and to_offered is None:  # the line is empty
                tx.change_event(event, available_tickets=event.available_tickets + added)
                break
            (promoted if to_booked is not None else offered).append(to_booked or to_offered)
    return EventChanged(EventState.of(event), promoted, offered)


def _freed(tx: Batch, event: EventView, cause: str, user_id: int, **data):
    """Journal the fact `cause` that freed a ticket, pass the ticket on, and note in the
    fact where it went: (promoted user, offered user)."""
    fact = tx.record(cause, event.id, user_id, **data)
    promoted, offered = pass_on_ticket(tx, event, cause, user_id)
    fact.update(promotedUserId=promoted, offeredUserId=offered)
    return promoted, offered


def pass_on_ticket(
    tx: Batch, event: EventView, cause: str, cause_user_id: int | None
) -> tuple[int | None, int | None]:
    """A freed ticket goes to the head of the line (booked, or offered), else it becomes
    available: (promoted user, offered user), at most one of them. `cause` is the
    journal type of the change that freed it."""
    head = tx.head(event)
    if head is None:
        tx.release_ticket(event)
        return None, None
    seq = tx.leave_waiting_list(event, head)
    why = {"cause": cause, "causeUserId": cause_user_id}
    if event.waitlist_mode == OFFER:
        expires_at = tx.add_offer(event, head, seq)
        tx.record("offer.created", event.id, head, expiresAt=rfc3339(expires_at), **why)
        return None, head
    tx.add_booking(event, head)
    tx.record("booking.promoted", event.id, head, **why)
    return head, None


def existing(event, event_id: int):
    if event is None:
        raise EventNotFound(event_id)
    return event
