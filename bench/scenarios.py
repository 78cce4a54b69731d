"""The scenarios, each measured through HTTP against the real gunicorn, then checked.

Each returns rows for the table: a dict with the scenario's name, requests,
req/s, latency percentiles, errors (answers with an unexpected status, and
transport failures), whether the invariants held (None where nothing changes),
the CPU shares and per request, the group-commit batches the servers logged
meanwhile, and details for the JSON.
"""

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import batches, load, seed
from .api import Api
from .checks import Checked, check
from .cpu import CpuMeter, per_request
from .load import Request, Run
from .server import Gunicorn
from .settings import Scale
from .stats import summarize

BOOK = "/api/events/book"
CANCEL = "/api/events/cancel"


@dataclass
class Context:
    base_url: str
    api: Api
    engine: sa.Engine
    server: Gunicorn
    scale: Scale
    meter: CpuMeter
    say: Callable[[str], None] = print
    users: Iterable[int] = field(default_factory=lambda: itertools.count(1))
    # Every server behind base_url (the cluster's three hosts); empty: just `server`.
    hosts: list[Gunicorn] = field(default_factory=list)

    def new_users(self, count: int) -> list[int]:
        return list(itertools.islice(self.users, count))

    @property
    def log_files(self) -> list[str]:
        return [host.log_file for host in self.hosts or [self.server]]


def book(event_id: int, user_id: int, tickets: int | None = None) -> Request:
    """Book one ticket, or a party of `tickets` (then the body says so; else it is the
    one-ticket request every client sent before parties)."""
    body = {"userId": user_id, "eventId": event_id}
    if tickets is not None:
        body["tickets"] = tickets
    return load.post(BOOK, body, tag=("book", user_id))


def cancel(event_id: int, user_id: int) -> Request:
    return load.post(CANCEL, {"userId": user_id, "eventId": event_id}, tag=("cancel", user_id))


def status(event_id: int) -> Request:
    return load.get(f"/api/events/status/{event_id}", tag=("status", event_id))


def measure(
    ctx: Context, work: Sequence[Request | tuple[Request, ...]], concurrency: int
) -> tuple[Run, dict, dict]:
    """The run, its CPU shares, and the batches the servers committed during it (only
    around the load itself: the set-up's and the checks' requests are not in them)."""
    marked = batches.marks(ctx.log_files)
    before = ctx.meter.sample()
    run = load.run(ctx.base_url, work, concurrency)
    cpu = ctx.meter.shares(before, ctx.meter.sample())
    return run, cpu, batches.summarize(batches.since(marked))


def row(
    name: str,
    summary: dict,
    cpu: dict,
    checked: Checked | None,
    batched: dict | None = None,
    cpu_requests: int | None = None,
    **details,
) -> dict:
    """A table row. `cpu_requests`: the requests the CPU was spent on, when the stretch
    served more than this row's (growth's cancel and re-book rows share their cycles)."""
    return {
        "scenario": name,
        **summary,
        "invariants_ok": None if checked is None else checked.ok,
        "problems": [] if checked is None else checked.problems[:20],
        "cpu": per_request(cpu, cpu_requests or summary["requests"]),
        "batches": batched,
        **details,
    }


def _outcomes(run: Run) -> tuple[list[int], dict[int, int]]:
    """(booked user ids, {waitlisted user id: position}) from book answers."""
    booked, waitlisted = [], {}
    for response in run.responses:
        body = response.body
        if response.status != 201 or not isinstance(body, dict):
            continue
        if body.get("status") == "booked":
            booked.append(body["userId"])
        elif body.get("status") == "waitlisted":
            waitlisted[body["userId"]] = body["position"]
    return booked, waitlisted


def tickets_per_s(run: Run) -> float:
    """Tickets asked for per second in the answered bookings (201: booked or waitlisted;
    a party of k counts k), over the run's wall time."""
    tickets = sum(r.request.body.get("tickets", 1) for r in run.responses if r.status == 201)
    return round(tickets / run.wall, 1) if run.wall > 0 else 0.0


def _booked_users(ctx: Context, event_id: int) -> set[int]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user_id FROM bookings WHERE event_id = :e"), {"e": event_id}
        )
        return {user_id for (user_id,) in rows}


def _waiting_users(ctx: Context, event_id: int) -> list[int]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user_id FROM waiting_list_entries WHERE event_id = :e ORDER BY seq"),
            {"e": event_id},
        )
        return [user_id for (user_id,) in rows]


def _check_line(checked: Checked, event_id: int, booked: list[int], waitlisted: dict, ctx) -> None:
    """Answers agree with each other, with the API's waiting list and with the rows."""
    tickets = checked.events[event_id].total if event_id in checked.events else None
    checked.expect(
        len(booked) == min(tickets or 0, len(booked) + len(waitlisted)),
        f"event {event_id}: {len(booked)} booked answers for {tickets} tickets",
    )
    positions = sorted(waitlisted.values())
    checked.expect(
        positions == list(range(1, len(waitlisted) + 1)),
        f"event {event_id}: waitlisted positions are not a permutation of 1..{len(waitlisted)}",
    )
    line = ctx.api.waiting_list(event_id)
    checked.expect(
        line == sorted(waitlisted, key=waitlisted.get),
        f"event {event_id}: the API's waiting list is not the answers' positions in order",
    )
    checked.expect(
        _booked_users(ctx, event_id) == set(booked),
        f"event {event_id}: booked rows are not the users answered 'booked'",
    )


def healthz(ctx: Context) -> dict:
    """The HTTP stack alone: the same gunicorn answering GET /healthz."""
    ctx.say(
        f"healthz: {ctx.scale.healthz_requests} GET /healthz, {ctx.scale.concurrency} in flight"
    )
    work = [load.get("/healthz")] * ctx.scale.healthz_requests
    run, cpu, batched = measure(ctx, work, ctx.scale.concurrency)
    summary = summarize(run.responses, run.wall, {200})
    return row("healthz (HTTP ceiling)", summary, cpu, None, batched)


def hot_event(ctx: Context, name: str = "hot event") -> dict:
    s = ctx.scale
    event_id = ctx.api.initialize("bench hot event", s.hot_tickets)
    users = ctx.new_users(s.hot_users)
    ctx.say(
        f"{name}: {len(users)} users book event {event_id} ({s.hot_tickets} tickets),"
        f" {s.concurrency} in flight"
    )
    run, cpu, batched = measure(ctx, [book(event_id, u) for u in users], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event_id])
    booked, waitlisted = _outcomes(run)
    checked.expect(len(booked) == s.hot_tickets, f"{len(booked)} booked, not {s.hot_tickets}")
    checked.expect(
        len(waitlisted) == s.hot_users - s.hot_tickets,
        f"{len(waitlisted)} waitlisted, not {s.hot_users - s.hot_tickets}",
    )
    _check_line(checked, event_id, booked, waitlisted, ctx)
    outcome = {"booked": len(booked), "waitlisted": len(waitlisted)}
    summary = summarize(run.responses, run.wall, {201})
    return row(
        name, summary, cpu, checked, batched,
        event_id=event_id, outcome=outcome, started_at=round(run.started_at, 3),
        tickets_per_s=tickets_per_s(run),
    )  # fmt: skip


def many_events(ctx: Context, name: str = "many events") -> dict:
    s = ctx.scale
    event_ids = [
        ctx.api.initialize(f"bench event {i}", s.many_tickets) for i in range(s.many_events)
    ]
    users = ctx.new_users(s.hot_users)
    ctx.say(
        f"many events: {len(users)} bookings over {len(event_ids)} events"
        f" ({s.many_tickets} tickets each), {s.concurrency} in flight"
    )
    work = [book(event_ids[i % len(event_ids)], u) for i, u in enumerate(users)]
    run, cpu, batched = measure(ctx, work, s.concurrency)
    checked = check(ctx.engine, ctx.api, event_ids)
    per_event: dict[int, Run] = {e: Run([], 0, 0) for e in event_ids}
    for response in run.responses:
        per_event[response.request.body["eventId"]].responses.append(response)
    for event_id, part in per_event.items():
        booked, waitlisted = _outcomes(part)
        _check_line(checked, event_id, booked, waitlisted, ctx)
    booked_total = sum(row.booked for row in checked.events.values())
    outcome = {"events": len(event_ids), "booked": booked_total}
    summary = summarize(run.responses, run.wall, {201})
    return row(name, summary, cpu, checked, batched, outcome=outcome)


def seed_storm(ctx: Context, name: str, mode: str = "auto"):
    """An event at the cancel storm's sizes, seeded in SQL: its holders, its line, itself."""
    holders = ctx.new_users(ctx.scale.storm_tickets)
    line = ctx.new_users(ctx.scale.storm_waiting)
    event = seed.seed_event(
        ctx.engine,
        name,
        booked=range(holders[0], holders[-1] + 1),
        waiting=range(line[0], line[-1] + 1),
        mode=mode,
    )
    return holders, line, event


def cancel_storm(ctx: Context) -> dict:
    s = ctx.scale
    holders, line, event = seed_storm(ctx, "bench cancel storm")
    ctx.say(
        f"cancel storm: {len(holders)} holders cancel on event {event.event_id}"
        f" ({len(line)} waiting), {s.concurrency} in flight"
    )
    run, cpu, batched = measure(ctx, [cancel(event.event_id, u) for u in holders], s.concurrency)
    checked = check(ctx.engine, ctx.api, [event.event_id])
    promoted = [
        r.body.get("promotedUserId")
        for r in run.responses
        if r.status == 200 and isinstance(r.body, dict) and r.body.get("status") == "cancelled"
    ]
    checked.expect(len(promoted) == len(holders), f"{len(promoted)} cancelled of {len(holders)}")
    checked.expect(None not in promoted, "a cancellation promoted nobody")
    checked.expect(len(set(promoted)) == len(promoted), "a user was promoted twice")
    checked.expect(
        set(promoted) == set(line[: len(holders)]),
        f"the promoted users are not the first {len(holders)} in line",
    )
    checked.expect(
        ctx.api.waiting_list(event.event_id) == line[len(holders) :],
        "the waiting list is not the rest of the line in order",
    )
    checked.expect(
        _booked_users(ctx, event.event_id) == set(line[: len(holders)]),
        "the ticket holders are not the promoted users",
    )
    summary = summarize(run.responses, run.wall, {200})
    return row("cancel storm", summary, cpu, checked, batched, promoted=len(promoted))


def status_reads(ctx: Context, event_id: int) -> dict:
    s = ctx.scale
    expected = ctx.api.status(event_id)
    ctx.say(f"status reads: {s.status_requests} GET status, {s.concurrency} in flight")
    run, cpu, batched = measure(ctx, [status(event_id)] * s.status_requests, s.concurrency)
    checked = Checked()
    wrong = sum(1 for r in run.responses if r.status == 200 and r.body != expected)
    checked.expect(wrong == 0, f"{wrong} status answers differ from {expected}")
    summary = summarize(run.responses, run.wall, {200})
    return row("status reads", summary, cpu, checked, batched)
