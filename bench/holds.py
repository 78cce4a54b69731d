"""The hot event with checkout holds (issue 21): book, then claim.

The hot event's size (hot_users users on hot_tickets tickets) on an event with
holdTtlSeconds = hold_ttl_seconds, long enough to outlast the run, so nothing lapses.
Two measured stretches, with the same requests in flight:

- book: every user books one ticket. The first hot_tickets served are held for their
  checkout (201 held, with holdExpiresAt), the rest join the line (201 waitlisted);
- claim: every user whose answer was "held" claims (pays): 201 booked, nothing released,
  nobody served from the line.

Each stretch is a row; the pair is reported beside the hot event with completed
purchases per second (held + claimed pairs over both stretches' time) against the hot
event's bookings per second (its booked answers over its time), and the book stretch's
req/s against the hot event's. Checked besides the invariants (bench/checks.py counts
held tickets: booked + offered + held + available = total):

- after the book stretch: exactly hot_tickets held answers of one ticket each, none
  lapsing within a minute (the claims must find them); the holds in the offers table (kind
  'hold') are those users'; no booking rows; the waitlisted answers' positions are
  1..W and the API's waiting list is them in that order; the event shows heldTickets
  = hot_tickets and no ticket available;
- after the claim stretch: every claim 201 booked with 1 ticket, releasedTickets 0 and
  nobody promoted or offered; the booking rows are the held users; no hold or offer is
  left, heldTickets 0; the line is unchanged; the journal has one hold.created and one
  hold.claimed per held user, and no hold.expired or hold.released.
"""

from datetime import UTC, datetime

import sqlalchemy as sa

from .checks import Checked, check
from .offers import claim
from .scenarios import Context, book, measure, row
from .stats import summarize

NAME = "hot event, checkout holds (book, then claim)"


def _rows(ctx: Context, query: str, event_id: int) -> list:
    with ctx.engine.connect() as conn:
        return list(conn.execute(sa.text(query), {"e": event_id}))


def _book_answers(checked: Checked, responses) -> tuple[dict[int, datetime], dict[int, int]]:
    """({held user: holdExpiresAt}, {waitlisted user: position}) from the book answers."""
    held, waitlisted = {}, {}
    for response in responses:
        body = response.body
        if response.status != 201 or not isinstance(body, dict):
            continue
        user = body["userId"]
        checked.expect(body.get("tickets") == 1, f"user {user} answered {body.get('tickets')}")
        if body.get("status") == "held":
            held[user] = datetime.fromisoformat(body["holdExpiresAt"])
        elif body.get("status") == "waitlisted":
            waitlisted[user] = body["position"]
        else:
            checked.problems.append(f"user {user}: a booking answered {body.get('status')!r}")
    return held, waitlisted


def _check_booked(ctx, checked: Checked, event_id, held, waitlisted, ends_after) -> None:
    s, expect = ctx.scale, checked.expect
    expect(len(held) == s.hot_tickets, f"{len(held)} held, not {s.hot_tickets}")
    expect(
        len(waitlisted) == s.hot_users - s.hot_tickets,
        f"{len(waitlisted)} waitlisted, not {s.hot_users - s.hot_tickets}",
    )
    early = [user for user, at in held.items() if at <= ends_after]
    expect(not early, f"{len(early)} holds lapse before the run's end (users {early[:5]})")
    holds = _rows(ctx, "SELECT user_id, tickets, kind FROM offers WHERE event_id = :e", event_id)
    expect(
        sorted(holds) == sorted((user, 1, "hold") for user in held),
        "the offers table's rows are not the held answers' holds of 1 ticket",
    )
    booked = _rows(ctx, "SELECT user_id FROM bookings WHERE event_id = :e", event_id)
    expect(not booked, f"{len(booked)} booking rows before anyone claimed")
    expect(
        sorted(waitlisted.values()) == list(range(1, len(waitlisted) + 1)),
        f"waitlisted positions are not a permutation of 1..{len(waitlisted)}",
    )
    expect(
        ctx.api.waiting_list(event_id) == sorted(waitlisted, key=waitlisted.get),
        "the API's waiting list is not the waitlisted answers' positions in order",
    )
    status = ctx.api.status(event_id)
    seen = (status.get("heldTickets"), status.get("availableTickets"))
    expect(seen == (s.hot_tickets, 0), f"the event shows (held, available) {seen}")


def _check_claimed(ctx, checked: Checked, event_id, responses, held, waitlisted) -> None:
    expect = checked.expect
    wrong = [
        r.body
        for r in responses
        if r.status != 201
        or not isinstance(r.body, dict)
        or {k: v for k, v in r.body.items() if k not in ("userId", "eventId")}
        != {
            "status": "booked",
            "tickets": 1,
            "releasedTickets": 0,
            "promotedUserIds": [],
            "offeredUserIds": [],
        }
    ]
    expect(not wrong, f"{len(wrong)} claims not 201 booked 1, nothing released: {wrong[:3]}")
    booked = _rows(ctx, "SELECT user_id, tickets FROM bookings WHERE event_id = :e", event_id)
    expect(
        sorted(booked) == sorted((user, 1) for user in held),
        "the booking rows are not the held users' tickets",
    )
    left = _rows(ctx, "SELECT user_id, kind FROM offers WHERE event_id = :e", event_id)
    expect(not left, f"{len(left)} holds or offers left after every claim: {left[:5]}")
    expect(
        ctx.api.waiting_list(event_id) == sorted(waitlisted, key=waitlisted.get),
        "the line changed: a claim of every held ticket frees none",
    )
    facts = dict(
        _rows(
            ctx,
            "SELECT type, COUNT(*) FROM journal_entries WHERE event_id = :e"
            " AND type LIKE 'hold.%' GROUP BY type",
            event_id,
        )
    )
    expected = {"hold.created": len(held), "hold.claimed": len(held)}
    expect(facts == expected, f"the journal's hold facts {facts} != {expected}")
    status = ctx.api.status(event_id)
    seen = (status.get("heldTickets"), status.get("availableTickets"))
    expect(seen == (0, 0), f"the event shows (held, available) {seen} after the claims")


def run(ctx: Context) -> dict[str, dict]:
    s = ctx.scale
    event_id = ctx.api.initialize(
        "bench hot holds", s.hot_tickets, holdTtlSeconds=s.hold_ttl_seconds
    )
    users = ctx.new_users(s.hot_users)
    ctx.say(
        f"{NAME}: {len(users)} users book event {event_id} ({s.hot_tickets} tickets, held"
        f" {s.hold_ttl_seconds} s), {s.concurrency} in flight"
    )
    booking, cpu, batched = measure(ctx, [book(event_id, u) for u in users], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    held, waitlisted = _book_answers(checked, booking.responses)
    # Every hold must outlast the claims: at least a minute beyond the book stretch.
    soon = datetime.now(UTC).timestamp() + 60
    _check_booked(ctx, checked, event_id, held, waitlisted, datetime.fromtimestamp(soon, UTC))
    summary = summarize(booking.responses, booking.wall, {201})
    outcome = {"held": len(held), "waitlisted": len(waitlisted)}
    rows = {}
    rows["hot holds"] = row(
        f"{NAME}: book", summary, cpu, checked, batched,
        event_id=event_id, outcome=outcome, started_at=round(booking.started_at, 3),
    )  # fmt: skip

    ctx.say(f"{NAME}: {len(held)} held users claim, {s.concurrency} in flight")
    claims, cpu, batched = measure(ctx, [claim(event_id, u) for u in held], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    _check_claimed(ctx, checked, event_id, claims.responses, held, waitlisted)
    claimed = sum(1 for r in claims.responses if r.status == 201)
    wall = booking.wall + claims.wall
    purchases = {
        "held": len(held),
        "claimed": claimed,
        "wall_s": round(wall, 3),
        "per_s": round(claimed / wall, 1) if wall > 0 else 0.0,
    }
    summary = summarize(claims.responses, claims.wall, {201})
    rows["hot holds claim"] = row(
        f"{NAME}: claim", summary, cpu, checked, batched, event_id=event_id, purchases=purchases
    )
    return rows
