"""What the growth cycles' answers must show, beside the invariants (checks.py).

Every cycle, warm-up included, is a cancel of a seeded booking and a booking of the
same party again. Parties of 1 (first come, first served):

- every cancel is answered "cancelled" and promotes someone, nobody twice;
- every re-booking joins the line (nothing is ever free);
- while the line has not come round to the re-booked users, those promoted are
  among the first `cycled` of the seeded line.

Parties of 1..n:

- every cancel gives back the whole party (tickets = its seeded size, 0 remaining);
  every re-booking is booked or waits, with the tickets asked;
- the promoted (promotedUserIds) are each promoted once, each had waited (the
  seeded line or a re-booked party), and their booking rows hold their whole party;
- no ticket lost: the tickets freed = those promoted + those re-booked at once +
  those now free (held back for a party at the overtake limit, or none);
- some cancel served someone.

Either way the API's waiting list is the rows in seq order, party for party.
"""

import sqlalchemy as sa

from .checks import Checked
from .load import Response
from .seed import SeededEvent


def _answers(responses: list[Response], kind: str, status: int) -> list[dict]:
    return [
        r.body
        for r in responses
        if r.request.tag[0] == kind and r.status == status and isinstance(r.body, dict)
    ]


def _ones(checked: Checked, cancelled: list[dict], booked: list[dict], line, cycled) -> None:
    promoted = [body.get("promotedUserId") for body in cancelled]
    checked.expect(None not in promoted, "a cancellation promoted nobody")
    checked.expect(len(set(promoted)) == len(promoted), "a user was promoted twice")
    rejoined = sum(1 for body in booked if body.get("status") == "waitlisted")
    checked.expect(rejoined == len(booked), f"{rejoined} of {len(booked)} re-bookings waitlisted")
    if cycled <= len(line):
        # The line never came round to the re-booked users: only its first ones were promoted.
        checked.expect(
            set(promoted) <= set(line[:cycled]),
            f"promoted users are not among the first {cycled} in line",
        )


def _parties(checked, engine, event: SeededEvent, cancelled, booked, line) -> dict:
    expect = checked.expect
    size = event.tickets_of
    wrong = [
        b["userId"]
        for b in cancelled
        if b.get("tickets") != size(b["userId"]) or b.get("remainingTickets") != 0
    ]
    expect(not wrong, f"cancels that did not give back the whole party: users {wrong[:5]}")
    wrong = [
        b["userId"]
        for b in booked
        if b.get("tickets") != size(b["userId"]) or b.get("status") not in ("booked", "waitlisted")
    ]
    expect(not wrong, f"re-bookings not booked or waitlisted as asked: users {wrong[:5]}")
    promoted = [user for body in cancelled for user in body.get("promotedUserIds") or ()]
    expect(promoted, "no cancellation served anyone")
    expect(len(set(promoted)) == len(promoted), "a party was promoted twice")
    waited = set(line) | {b["userId"] for b in booked if b.get("status") == "waitlisted"}
    strangers = set(promoted) - waited
    expect(not strangers, f"promoted users who never waited: {sorted(strangers)[:5]}")
    at_once = [b["userId"] for b in booked if b.get("status") == "booked"]
    freed = sum(b.get("tickets", 0) for b in cancelled)
    served = sum(size(user) for user in promoted)
    rebooked = sum(size(user) for user in at_once)
    free = checked.events[event.event_id].available if event.event_id in checked.events else 0
    expect(
        freed == served + rebooked + free,
        f"{freed} tickets freed != {served} promoted + {rebooked} re-booked at once + {free} free",
    )
    users = sorted(set(promoted) | set(at_once))
    if users:
        query = sa.text(
            "SELECT user_id, tickets FROM bookings WHERE event_id = :e AND user_id IN :users"
        ).bindparams(sa.bindparam("users", expanding=True))
        with engine.connect() as conn:
            rows = conn.execute(query, {"e": event.event_id, "users": users})
            held = {user: tickets for user, tickets in rows}
        split = [u for u in users if held.get(u) != size(u)]
        expect(not split, f"served parties not booked whole: users {split[:5]}")
    return {
        "cancels": len(cancelled),
        "freed_tickets": freed,
        "promoted": len(promoted),
        "promoted_tickets": served,
        "rebooked_at_once": len(at_once),
        "rebooked_at_once_tickets": rebooked,
        "free_at_end": free,
    }


def check_cycles(
    checked: Checked,
    engine: sa.Engine,
    api,
    event: SeededEvent,
    line: list[int],
    cycled: int,
    responses: list[Response],
) -> dict:
    """The cycles' answers (`responses`, warm-up included; `cycled` of them) on a seeded
    event whose line was `line`, then the API's line against the rows; with parties,
    what the cycles did (tickets freed, promoted, re-booked at once, free at the end)."""
    cancels = sum(1 for r in responses if r.request.tag[0] == "cancel")
    cancelled = [b for b in _answers(responses, "cancel", 200) if b.get("status") == "cancelled"]
    booked = _answers(responses, "book", 201)
    checked.expect(len(cancelled) == cancels, f"{len(cancelled)} of {cancels} cancelled")
    books = sum(1 for r in responses if r.request.tag[0] == "book")
    checked.expect(len(booked) == books, f"{len(booked)} of {books} re-bookings answered 201")
    done = {}
    if event.parties == 1:
        _ones(checked, cancelled, booked, line, cycled)
    else:
        done = _parties(checked, engine, event, cancelled, booked, line)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT user_id, tickets, overtakes FROM waiting_list_entries WHERE event_id = %s"
            " ORDER BY seq",
            (event.event_id,),
        )
        parties = [tuple(row) for row in rows]
    checked.expect(
        api.waiting_entries(event.event_id) == parties,
        "the API's waiting list differs from the rows in seq order (user, tickets, overtakes)",
    )
    return done
