"""The hot event with parties: the hot event's users and tickets, each user booking a
party of 1..party_max tickets (a Random(party_seed) draws the sizes, so every run asks
the same), on an event with maxTicketsPerBooking = party_max.

Nobody cancels, so free tickets only shrink: a party is booked if it fits the free
tickets when its batch runs and no party before it blocks (waits at the overtake
limit and does not fit), else it joins the line; a booked party passes every party
waiting before it (each counts one overtake). Checked besides the invariants:

- every answer is 201 with the tickets asked; booked answers are the booking rows,
  party for party and ticket for ticket (whole parties); the event is sold out to
  within one party (fewer free tickets than the largest party);
- the waitlisted answers' positions are 1..W, and the API's waiting list is those
  parties in that order with the tickets they asked;
- each waiting party's overtakes are the times the journal's booked facts name it
  in overtookUserIds.
"""

import json
import random

import sqlalchemy as sa

from .checks import Checked, check
from .scenarios import Context, book, measure, row, tickets_per_s
from .stats import summarize

_SERVED = ("booking.booked", "booking.promoted", "offer.created", "hold.created")


def _overtaken(ctx: Context, event_id: int) -> dict[int, int]:
    """{user: times passed over} from the event's journal."""
    counts: dict[int, int] = {}
    query = sa.text(
        "SELECT data FROM journal_entries WHERE event_id = :e AND type IN :types"
    ).bindparams(sa.bindparam("types", expanding=True))
    with ctx.engine.connect() as conn:
        for (data,) in conn.execute(query, {"e": event_id, "types": list(_SERVED)}):
            for user in json.loads(data).get("overtookUserIds") or ():
                counts[user] = counts.get(user, 0) + 1
    return counts


def _booking_rows(ctx: Context, event_id: int) -> dict[int, int]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user_id, tickets FROM bookings WHERE event_id = :e"), {"e": event_id}
        )
        return {user: tickets for user, tickets in rows}


def _answers(checked: Checked, responses, asked: dict[int, int]):
    """({booked user: tickets}, {waitlisted user: position}) from the book answers."""
    booked, waitlisted = {}, {}
    for response in responses:
        body = response.body
        if response.status != 201 or not isinstance(body, dict):
            continue
        user = body["userId"]
        checked.expect(
            body.get("tickets") == asked[user],
            f"user {user} asked for {asked[user]}, answered {body.get('tickets')}",
        )
        if body.get("status") == "booked":
            booked[user] = body["tickets"]
        elif body.get("status") == "waitlisted":
            waitlisted[user] = body["position"]
    return booked, waitlisted


def hot_parties(ctx: Context, name: str | None = None) -> dict:
    s = ctx.scale
    name = name or f"hot event, parties of 1-{s.party_max}"
    event_id = ctx.api.initialize(
        "bench hot parties", s.hot_tickets, maxTicketsPerBooking=s.party_max
    )
    users = ctx.new_users(s.hot_users)
    draw = random.Random(s.party_seed)
    asked = {user: draw.randint(1, s.party_max) for user in users}
    ctx.say(
        f"{name}: {len(users)} users book {sum(asked.values())} tickets in parties on event"
        f" {event_id} ({s.hot_tickets} tickets), {s.concurrency} in flight"
    )
    work = [book(event_id, user, asked[user]) for user in users]
    run, cpu, batched = measure(ctx, work, s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    booked, waitlisted = _answers(checked, run.responses, asked)
    expect = checked.expect
    expect(len(booked) + len(waitlisted) == len(users), "not every party was answered 201")
    expect(_booking_rows(ctx, event_id) == booked, "booked rows are not the booked answers")
    event = checked.events.get(event_id)
    if event is not None:
        expect(
            event.available < s.party_max,
            f"{event.available} tickets left free: not sold out to within a party",
        )
    expect(
        sorted(waitlisted.values()) == list(range(1, len(waitlisted) + 1)),
        f"waitlisted positions are not a permutation of 1..{len(waitlisted)}",
    )
    entries = ctx.api.waiting_entries(event_id)
    expect(
        [(user, tickets) for user, tickets, _ in entries]
        == [(user, asked[user]) for user in sorted(waitlisted, key=waitlisted.get)],
        "the API's waiting list is not the waitlisted parties in the answers' order",
    )
    overtaken = _overtaken(ctx, event_id)
    wrong = [user for user, _, overtakes in entries if overtakes != overtaken.get(user, 0)]
    expect(not wrong, f"overtakes differ from the journal's for users {wrong[:5]}")
    booked_tickets = sum(booked.values())
    outcome = {
        "booked": len(booked),
        "booked_tickets": booked_tickets,
        "waitlisted": len(waitlisted),
        "waiting_tickets": sum(asked[user] for user in waitlisted),
        "asked_tickets": sum(asked.values()),
        "held_back": event.held_back if event else None,
        "passed_over": sum(overtaken.values()),
    }
    summary = summarize(run.responses, run.wall, {201})
    return row(
        name, summary, cpu, checked, batched,
        event_id=event_id, outcome=outcome, tickets_per_s=tickets_per_s(run),
    )  # fmt: skip
