"""Offer mode (waitlistMode "offer"): a cancel storm with a long line, then claims, then lapses.

On a seeded event in offer mode (the cancel storm's sizes), three measured
stretches, each checked:

- every ticket holder cancels at once: each ticket is offered to the next in
  line (nobody is booked), the same work as the auto-mode cancel storm plus an
  offer row each; its ratio to that storm is printed;
- the first half of those offered claim at once: each is booked;
- the other half's offers lapse (moved past their expiry in the database, as
  the database's clock passing them would), and they claim at once: each claim
  is refused, because the batch it joins first passes the lapsed offers on,
  in line order, to the next in line.
"""

import sqlalchemy as sa

from .checks import check
from .load import post
from .scenarios import Context, cancel, measure, row, seed_storm
from .stats import summarize

CLAIM = "/api/events/claim"


def claim(event_id: int, user_id: int):
    return post(CLAIM, {"userId": user_id, "eventId": event_id}, tag=("claim", user_id))


def offered_users(ctx: Context, event_id: int) -> list[int]:
    with ctx.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT user_id FROM offers WHERE event_id = :e ORDER BY seq"),
                {"e": event_id},
            ).scalars()
        )


def run(ctx: Context) -> dict[str, dict]:
    s = ctx.scale
    holders, line, event = seed_storm(ctx, "bench offer storm", mode="offer")
    event_id = event.event_id
    n, half = len(holders), len(holders) // 2
    ctx.say(f"offer mode: {n} holders cancel on event {event_id} ({len(line)} waiting)")
    rows = {}

    run_, cpu, batched = measure(ctx, [cancel(event_id, u) for u in holders], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    answers = [r.body for r in run_.responses if r.status == 200 and isinstance(r.body, dict)]
    offered = sorted(a.get("offeredUserId") or 0 for a in answers)
    checked.expect(len(answers) == n, f"{len(answers)} cancelled of {n}")
    checked.expect(offered == sorted(line[:n]), "the offers did not go to the first in line")
    checked.expect(all(a.get("promotedUserId") is None for a in answers), "someone was booked")
    summary = summarize(run_.responses, run_.wall, {200})
    rows["offer storm"] = row("cancel storm, offer mode", summary, cpu, checked, batched)

    ctx.say(f"offer mode: {half} claim their offers")
    run_, cpu, batched = measure(ctx, [claim(event_id, u) for u in line[:half]], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    claimed = sum(1 for r in run_.responses if r.status == 201)
    checked.expect(claimed == half, f"{claimed} claims of {half} succeeded")
    summary = summarize(run_.responses, run_.wall, {201})
    rows["offer claims"] = row("offer claims", summary, cpu, checked, batched)

    lapsing = line[half:n]
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE offers SET expires_at = expires_at - INTERVAL 1 DAY WHERE event_id = :e"
            ),
            {"e": event_id},
        )
    ctx.say(f"offer mode: {len(lapsing)} offers lapse; their holders claim anyway")
    run_, cpu, batched = measure(ctx, [claim(event_id, u) for u in lapsing], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    refused = sum(1 for r in run_.responses if r.status == 409)
    checked.expect(refused == len(lapsing), f"{refused} lapsed claims refused of {len(lapsing)}")
    passed_on = offered_users(ctx, event_id)
    checked.expect(
        passed_on == line[n : n + len(lapsing)],
        "the lapsed offers did not pass on, in order, to the next in line",
    )
    summary = summarize(run_.responses, run_.wall, {409})
    rows["offer lapses"] = row("lapsed claims (offers pass on)", summary, cpu, checked, batched)
    return rows
