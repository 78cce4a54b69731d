"""Growth: does a change or a read cost more on a big event and a big table?

Two sizes, each an event seeded in SQL (bookings held, people waiting) on its
own gunicorn and database, both cleared first (seed.clear), so the small one's
bookings table really holds only its own rows while the large one's holds a
million:

  small: growth_small = (1,000 bookings, 100 waiting), in the main database;
  large: growth_large = (1,000,000 bookings, 100,000 waiting), in <name>_growth.

Measured per size at low concurrency (8 in flight), so the figures are latency
rather than queueing:

- cancel + re-book cycles: a ticket holder cancels (the head of the line is
  promoted, in the same transaction) and books again (joins the tail), so the
  line keeps its length and the table its size;
- GET status.

The same again with parties (`growth(..., parties=6)`, after the parties-of-1
case, on fresh tables): every seeded booking and place is a party of 1..6
tickets (seed.py; the sizes count parties, so a million bookings hold about
3.5 million tickets), and a cycle cancels a whole booked party of k tickets (the
allocation hands the k freed tickets to the first waiting parties that fit, and
may hold them back for a party at the overtake limit) and books the same party of
k again (it joins the tail, or is booked at once if it fits what was held back
and nobody blocks). Its ratios are reported beside the parties-of-1 ones.

Warm-up first: each gunicorn worker loads its copy of the waiting list on
first use, so cycles run until the request log shows every worker has served
the event; the warm-up is reported on its own. Then the two sizes are measured
in alternating blocks (small, large, large, small, ...): on a shared 2-core
machine the load from elsewhere drifts, and alternating spreads the drift over
both sizes instead of loading it onto one. The ratios are large / small, of the
latency percentiles and of the throughput (req/s over the cycles' wall time).

The answers are checked besides the invariants (growth_checks.py), warm-up included.
"""

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import batches, load, seed
from .checks import Checked, check
from .cpu import combine
from .growth_checks import check_cycles
from .load import Request, Response
from .scenarios import Context, book, cancel, row, status
from .stats import latency_ms, summarize

BLOCKS = 4


@dataclass
class Size:
    label: str
    ctx: Context
    bookings: int  # booked parties
    waiting: int  # waiting parties
    parties: int = 1  # each of 1..parties tickets
    event: seed.SeededEvent | None = None
    line: list[int] = field(default_factory=list)
    holders: Iterator[int] = field(default_factory=lambda: iter(()))
    seed_s: float = 0.0
    table_rows: int = 0
    warmup: dict = field(default_factory=dict)
    warmup_cycles: list[Response] = field(default_factory=list)  # checked, not measured
    cycles: list[Response] = field(default_factory=list)
    cycles_wall: float = 0.0
    cycles_cpu: list[dict] = field(default_factory=list)
    cycles_batches: list[dict] = field(default_factory=list)  # the servers' batch log lines
    statuses: list[Response] = field(default_factory=list)
    status_wall: float = 0.0
    status_cpu: list[dict] = field(default_factory=list)
    status_batches: list[dict] = field(default_factory=list)
    status_wrong: list = field(default_factory=list)  # answers unlike their block's status
    cycled: int = 0  # cancel + re-book cycles sent, warm-up included

    @property
    def title(self) -> str:
        title = f"{_short(self.waiting)} waiting / {_short(self.bookings)} booked"
        return title if self.parties == 1 else f"{title}, parties of 1-{self.parties}"


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _cycles(size: Size, users: Iterable[int]) -> list[tuple[Request, Request]]:
    """Cancel a booking (its tickets go to the first in line that fit), then book the same
    party again (join the tail). Parties of 1 send the one-ticket requests."""
    event = size.event
    if size.parties == 1:
        return [(cancel(event.event_id, u), book(event.event_id, u)) for u in users]
    return [
        (cancel(event.event_id, u), book(event.event_id, u, event.tickets_of(u))) for u in users
    ]


def _prepare(size: Size) -> None:
    ctx = size.ctx
    holders = ctx.new_users(size.bookings)
    size.line = ctx.new_users(size.waiting)
    started = time.perf_counter()
    size.event = seed.seed_event(
        ctx.engine,
        f"bench growth {size.label}",
        booked=range(holders[0], holders[-1] + 1),
        waiting=range(size.line[0], size.line[-1] + 1),
        parties=size.parties,
    )
    size.seed_s = time.perf_counter() - started
    size.holders = iter(holders)
    with ctx.engine.connect() as conn:
        size.table_rows = conn.exec_driver_sql("SELECT COUNT(*) FROM bookings").scalar_one()
    parties = "" if size.parties == 1 else f" (parties of 1-{size.parties})"
    ctx.say(
        f"growth {size.label}: event {size.event.event_id} on {ctx.base_url},"
        f" {size.bookings:,} bookings, {size.waiting:,} waiting{parties} (seeded in"
        f" {size.seed_s:.1f} s; bookings table {size.table_rows:,} rows)"
    )


def _warm_up(size: Size) -> None:
    """Cycles until every worker has served this event (and so loaded its copy of the
    waiting list), as the process ids in the request log show."""
    ctx, s = size.ctx, size.ctx.scale
    event_id = size.event.event_id
    workers = set(ctx.server.worker_pids())
    offset = os.path.getsize(ctx.server.log_file)
    served: set[int] = set()
    responses: list[Response] = []
    started = time.perf_counter()
    rounds = 0
    while rounds < s.growth_warmup_rounds and not workers <= served:
        rounds += 1
        batch = list(itertools.islice(size.holders, s.growth_warmup_batch))
        size.cycled += len(batch)
        run = load.run(ctx.base_url, _cycles(size, batch), s.growth_concurrency)
        responses.extend(run.responses)
        time.sleep(0.05)  # let the last log lines land
        lines, offset = batches.new_lines(ctx.server.log_file, offset)
        served |= {
            line["process"]
            for line in lines
            if line.get("eventId") == event_id
            and line.get("outcome") in ("cancelled", "waitlisted", "booked")
        }
    size.warmup_cycles = responses
    size.warmup = {
        "requests": len(responses),
        "rounds": rounds,
        "wall_s": round(time.perf_counter() - started, 3),
        "workers_loaded": len(workers & served),
        "workers": len(workers),
        "errors": sum(1 for r in responses if r.status not in (200, 201)),
        **latency_ms(r.latency for r in responses),
    }
    w = size.warmup
    ctx.say(
        f"  warm-up {size.label}: {w['requests']} requests in {w['wall_s']} s,"
        f" {w['workers_loaded']}/{w['workers']} workers loaded the line, max {w['max_ms']} ms"
    )


def _measure_block(size: Size, cycles: int, statuses: int) -> None:
    ctx, s = size.ctx, size.ctx.scale
    users = list(itertools.islice(size.holders, cycles))
    size.cycled += len(users)
    marked = batches.marks(ctx.log_files)
    before = ctx.meter.sample()
    run = load.run(ctx.base_url, _cycles(size, users), s.growth_concurrency)
    middle = ctx.meter.sample()
    size.cycles_batches.extend(batches.since(marked))
    # What every read of this block must answer: with parties a cycle may change the
    # counts (a party of 5 freed, one of 2 served), so each block has its own.
    expected = ctx.api.status(size.event.event_id)
    marked = batches.marks(ctx.log_files)
    resumed = ctx.meter.sample()  # reading the log and the status is not the reads' CPU
    reads = load.run(ctx.base_url, [status(size.event.event_id)] * statuses, s.growth_concurrency)
    size.cycles_cpu.append(ctx.meter.shares(before, middle))
    size.status_cpu.append(ctx.meter.shares(resumed, ctx.meter.sample()))
    size.status_batches.extend(batches.since(marked))
    size.cycles.extend(run.responses)
    size.cycles_wall += run.wall
    size.statuses.extend(reads.responses)
    size.status_wall += reads.wall
    size.status_wrong += [r.body for r in reads.responses if r.status == 200 and r.body != expected]


def _finish(size: Size) -> dict:
    ctx = size.ctx
    event_id = size.event.event_id
    checked = check(ctx.engine, ctx.api, [event_id])
    done = check_cycles(
        checked, ctx.engine, ctx.api, size.event, size.line, size.cycled,
        size.warmup_cycles + size.cycles,
    )  # fmt: skip
    cancels = [r for r in size.cycles if r.request.tag[0] == "cancel"]
    books = [r for r in size.cycles if r.request.tag[0] == "book"]
    status_checked = Checked()
    wrong = size.status_wrong
    status_checked.expect(
        not wrong, f"{len(wrong)} status answers differ from their block's, e.g. {wrong[:1]}"
    )
    sizes = {
        "bookings": size.bookings,
        "waiting": size.waiting,
        "parties": size.parties,
        "booked_tickets": size.event.total,
        "waiting_tickets": sum(map(size.event.tickets_of, size.event.waiting)),
        "bookings_table_rows": size.table_rows,
    }
    # The cancel and re-book rows are one stretch of cycles: they share its CPU (per request
    # of both kinds) and its batches, which hold both kinds of change.
    cycles_cpu = combine(size.cycles_cpu)
    cycles_batches = batches.summarize(size.cycles_batches)
    return {
        "label": size.label,
        "server": ctx.base_url,
        "event_id": event_id,
        "seed_s": round(size.seed_s, 2),
        "sizes": sizes,
        "warmup": size.warmup,
        "cycles": done,  # with parties: tickets freed, promoted, re-booked at once, free
        "cancel": row(
            f"growth: cancel+promote, {size.title}",
            summarize(cancels, size.cycles_wall, {200}),
            cycles_cpu,
            checked,
            cycles_batches,
            len(size.cycles),
            sizes=sizes,
        ),
        "rebook": row(
            f"growth: re-book (join line), {size.title}",
            summarize(books, size.cycles_wall, {201}),
            cycles_cpu,
            checked,
            cycles_batches,
            len(size.cycles),
            sizes=sizes,
        ),
        "status": row(
            f"growth: status, {size.title}",
            summarize(size.statuses, size.status_wall, {200}),
            combine(size.status_cpu),
            status_checked,
            batches.summarize(size.status_batches),
            sizes=sizes,
        ),
    }


def growth(small_ctx: Context, large_ctx: Context, parties: int = 1) -> dict:
    """Both sizes measured, each with parties of 1..`parties` tickets, on tables holding
    only their own event's rows (earlier events' bookings and places are cleared)."""
    s = small_ctx.scale
    for ctx in (small_ctx, large_ctx):
        seed.clear(ctx.engine)
    sizes = [
        Size("small", small_ctx, *s.growth_small, parties=parties),
        Size("large", large_ctx, *s.growth_large, parties=parties),
    ]
    for size in sizes:
        _prepare(size)
        _warm_up(size)
    label = "" if parties == 1 else f", parties of 1-{parties}"
    small_ctx.say(
        f"growth{label}: {s.growth_cycles} cycles and {s.growth_status} status reads per"
        f" size, in {BLOCKS} alternating blocks, {s.growth_concurrency} in flight"
    )
    for block in range(BLOCKS):
        for size in sizes if block % 2 == 0 else reversed(sizes):
            _measure_block(size, s.growth_cycles // BLOCKS, s.growth_status // BLOCKS)
    small, large = (_finish(size) for size in sizes)
    ratios = {}
    for kind in ("cancel", "rebook", "status"):
        for pct in ("p50_ms", "p99_ms", "rps"):
            base = small[kind][pct]
            key = f"{kind}_{pct.removesuffix('_ms')}"
            ratios[key] = round(large[kind][pct] / base, 2) if base else None
    return {"small": small, "large": large, "ratios": ratios, "blocks": BLOCKS, "parties": parties}
