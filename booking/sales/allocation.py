"""The allocation: who of the waiting parties the free tickets serve. No Flask, no SQL.

It runs after every change that could serve someone (tickets freed, a party joins,
leaves or shrinks, the event's capacity or rule changes). With F free tickets it
walks the waiting parties in line order:

1. a party of at most F tickets is served whole (booked in "auto" mode, offered in
   "offer" mode), F goes down by its tickets, and every party before it that still
   waits counts one more overtake;
2. a party that does not fit and has been passed over max_overtakes times blocks:
   the walk stops and the free tickets wait for it (nobody behind it is served, a
   new booker included);
3. any other party is passed over, and the walk goes on until F is 0 or the line ends.

A party larger than the whole event can never be served: it is passed over without
counting an overtake and never blocks. So with every party of one ticket this is
plain first come, first served, and no party is ever passed over more than
max_overtakes times.

The walk does not visit the line party by party: the line's copy answers "the first
party that fits F" with one look per party size up to F, and "the first party that
may not be passed" with one look (waiting_lists.py). Serving a party costs those
looks plus one step per party it passes over, and each party can be passed over
only max_overtakes times.
"""

from .batch import Batch, EventView
from .domain import OFFER, Booked, Held, Served, Waitlisted, rfc3339
from .waiting_lists import Party


def serve_buyer(
    tx: Batch, event: EventView, user_id: int, tickets: int, from_queue: bool = False
) -> Booked | Held | Waitlisted:
    """A buyer who is present (a booking, or a party the opening of a scheduled on-sale
    serves: `from_queue`) books or holds what the allocation serves them at once, else
    waits at the back of the line."""
    if not event.waiting_count and tickets <= event.available_tickets:
        # Nobody waits and the tickets are free: what the allocation would do, at once.
        return serve_present(tx, event, user_id, tickets, [], from_queue)
    party = tx.join(event, user_id, tickets)
    _, present = allocate(tx, event, "booking.booked", user_id, party, from_queue)
    if present is not None:
        return present
    position = event.waiting_count  # the newcomer is the last in line
    fact = _queued(from_queue)
    tx.record("waitlist.joined", event.id, user_id, tickets=tickets, position=position, **fact)
    return Waitlisted(event.id, user_id, position, tickets)


def allocate(
    tx: Batch,
    event: EventView,
    cause: str,
    cause_user_id: int | None,
    newcomer: Party | None = None,
    from_queue: bool = False,
) -> tuple[Served, Booked | Held | None]:
    """Serve what the free tickets can, by the rule above, journalling each party served
    (`cause`: the journal type of the change that ran it). A `newcomer` who just joined
    the line is a buyer who is present: if served, they book or their tickets are held
    for checkout (serve_present), they are not listed, and that is what comes back."""
    served = Served()
    present = None
    if not event.waiting_count:
        tx.change_event(event, held_back_tickets=0)
        return served, None
    line = tx.line(event).line
    free = event.available_tickets
    while free > 0:
        party = line.first_fitting(free)
        if party is None:
            break
        limited = line.first_limited(event.max_overtakes, event.total_tickets)
        if limited is not None and limited.seq < party.seq:
            break  # it may not be passed again, and it does not fit
        passed = tx.overtake(event, party.seq)
        tx.leave(event, party)
        if party is newcomer:
            present = serve_present(tx, event, party.user_id, party.tickets, passed, from_queue)
        else:
            _serve(tx, event, party, passed, cause, cause_user_id, served)
        free = event.available_tickets
    blocked = free > 0 and line.first_limited(event.max_overtakes, event.total_tickets)
    tx.change_event(event, held_back_tickets=free if blocked else 0)
    return served, present


def serve_present(
    tx: Batch,
    event: EventView,
    user_id: int,
    tickets: int,
    passed: list[int],
    from_queue: bool = False,
) -> Booked | Held:
    """A buyer who is present and whom the free tickets serve books them, in either mode
    (offers are for those who wait); or, when the event holds bookings for payment
    (hold_ttl_seconds), the tickets are held for them to claim."""
    if event.hold_ttl_seconds:
        expires_at = tx.hold(event, user_id, tickets)
        tx.record(
            "hold.created",
            event.id,
            user_id,
            tickets=tickets,
            expiresAt=rfc3339(expires_at),
            overtookUserIds=passed,
            **_queued(from_queue),
        )
        return Held(event.id, user_id, tickets, expires_at)
    tx.book(event, user_id, tickets)
    tx.record(
        "booking.booked",
        event.id,
        user_id,
        tickets=tickets,
        overtookUserIds=passed,
        **_queued(from_queue),
    )
    return Booked(event.id, user_id, tickets)


def _queued(from_queue: bool) -> dict:
    """A fact of a party the opening served says so; other facts stay as they were."""
    return {"fromQueue": True} if from_queue else {}


def _serve(tx, event, party, passed, cause, cause_user_id, served: Served) -> None:
    why = {"cause": cause, "causeUserId": cause_user_id, "overtookUserIds": passed}
    if event.waitlist_mode == OFFER:
        expires_at = tx.offer(event, party)
        tx.record(
            "offer.created",
            event.id,
            party.user_id,
            tickets=party.tickets,
            expiresAt=rfc3339(expires_at),
            **why,
        )
        served.offered_user_ids.append(party.user_id)
    else:
        tx.book(event, party.user_id, party.tickets)
        tx.record("booking.promoted", event.id, party.user_id, tickets=party.tickets, **why)
        served.promoted_user_ids.append(party.user_id)


def listed(served: Served) -> dict:
    """Whom an allocation served, as the fact of the change that ran it says it: both
    lists, and the first of each (what one-ticket clients read)."""
    promoted, offered = served.promoted_user_ids, served.offered_user_ids
    return {
        "promotedUserIds": promoted,
        "offeredUserIds": offered,
        "promotedUserId": promoted[0] if promoted else None,
        "offeredUserId": offered[0] if offered else None,
    }
