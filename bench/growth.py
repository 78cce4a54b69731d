"""Growth: does a change or a read cost more on a big event and a big table?

Two sizes, each an event seeded in SQL (bookings held, people waiting) on its
own gunicorn and database, so the small one's bookings table really holds
only its own rows while the large one's holds a million:

  small: growth_small = (1,000 bookings, 100 waiting), in the main database;
  large: growth_large = (1,000,000 bookings, 100,000 waiting), in <name>_growth.

Measured per size at low concurrency (8 in flight), so the figures are latency
rather than queueing:

- cancel + re-book cycles: a ticket holder cancels (the head of the line is
  promoted, in the same transaction) and books again (joins the tail), so the
  line keeps its length and the table its size;
- GET status.

Warm-up first: each gunicorn worker loads its copy of the waiting list on
first use, so cycles run until the request log shows every worker has served
the event; the warm-up is reported on its own. Then the two sizes are measured
in alternating blocks (small, large, large, small, ...): on a shared 2-core
machine the load from elsewhere drifts, and alternating spreads the drift over
both sizes instead of loading it onto one. The ratios are large / small.
"""

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import batches, load, seed
from .checks import Checked, check
from .cpu import combine
from .load import Request, Response
from .scenarios import Context, book, cancel, row, status
from .stats import latency_ms, summarize

BLOCKS = 4


@dataclass
class Size:
    label: str
    ctx: Context
    bookings: int
    waiting: int
    event: seed.SeededEvent | None = None
    line: list[int] = field(default_factory=list)
    holders: Iterator[int] = field(default_factory=lambda: iter(()))
    seed_s: float = 0.0
    table_rows: int = 0
    warmup: dict = field(default_factory=dict)
    cycles: list[Response] = field(default_factory=list)
    cycles_wall: float = 0.0
    cycles_cpu: list[dict] = field(default_factory=list)
    cycles_batches: list[dict] = field(default_factory=list)  # the servers' batch log lines
    statuses: list[Response] = field(default_factory=list)
    status_wall: float = 0.0
    status_cpu: list[dict] = field(default_factory=list)
    status_batches: list[dict] = field(default_factory=list)
    cycled: int = 0  # cancel + re-book cycles sent, warm-up included

    @property
    def title(self) -> str:
        return f"{_short(self.waiting)} waiting / {_short(self.bookings)} booked"


def _short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _cycles(event_id: int, users: Iterable[int]) -> list[tuple[Request, Request]]:
    """Cancel a ticket (the head of the line is promoted), then book again (join the tail)."""
    return [(cancel(event_id, u), book(event_id, u)) for u in users]


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
    )
    size.seed_s = time.perf_counter() - started
    size.holders = iter(holders)
    with ctx.engine.connect() as conn:
        size.table_rows = conn.exec_driver_sql("SELECT COUNT(*) FROM bookings").scalar_one()
    ctx.say(
        f"growth {size.label}: event {size.event.event_id} on {ctx.base_url},"
        f" {size.bookings:,} bookings, {size.waiting:,} waiting (seeded in {size.seed_s:.1f} s;"
        f" bookings table {size.table_rows:,} rows)"
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
        run = load.run(ctx.base_url, _cycles(event_id, batch), s.growth_concurrency)
        responses.extend(run.responses)
        time.sleep(0.05)  # let the last log lines land
        lines, offset = batches.new_lines(ctx.server.log_file, offset)
        served |= {
            line["process"]
            for line in lines
            if line.get("eventId") == event_id
            and line.get("outcome") in ("cancelled", "waitlisted")
        }
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
    run = load.run(ctx.base_url, _cycles(size.event.event_id, users), s.growth_concurrency)
    middle = ctx.meter.sample()
    size.cycles_batches.extend(batches.since(marked))
    marked = batches.marks(ctx.log_files)
    resumed = ctx.meter.sample()  # reading the log is not the reads' CPU
    reads = load.run(ctx.base_url, [status(size.event.event_id)] * statuses, s.growth_concurrency)
    size.cycles_cpu.append(ctx.meter.shares(before, middle))
    size.status_cpu.append(ctx.meter.shares(resumed, ctx.meter.sample()))
    size.status_batches.extend(batches.since(marked))
    size.cycles.extend(run.responses)
    size.cycles_wall += run.wall
    size.statuses.extend(reads.responses)
    size.status_wall += reads.wall


def _finish(size: Size) -> dict:
    ctx = size.ctx
    event_id = size.event.event_id
    checked = check(ctx.engine, ctx.api, [event_id])
    cancels = [r for r in size.cycles if r.request.tag[0] == "cancel"]
    books = [r for r in size.cycles if r.request.tag[0] == "book"]
    promoted = [
        r.body.get("promotedUserId")
        for r in cancels
        if r.status == 200 and isinstance(r.body, dict) and r.body.get("status") == "cancelled"
    ]
    checked.expect(len(promoted) == len(cancels), f"{len(promoted)} of {len(cancels)} cancelled")
    checked.expect(None not in promoted, "a cancellation promoted nobody")
    checked.expect(len(set(promoted)) == len(promoted), "a user was promoted twice")
    rejoined = sum(
        1
        for r in books
        if r.status == 201 and isinstance(r.body, dict) and r.body.get("status") == "waitlisted"
    )
    checked.expect(rejoined == len(books), f"{rejoined} of {len(books)} re-bookings waitlisted")
    if size.cycled <= size.waiting:
        # The line never came round to the re-booked users: only its first ones were promoted.
        checked.expect(
            set(promoted) <= set(size.line[: size.cycled]),
            f"promoted users are not among the first {size.cycled} in line",
        )
    with ctx.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT user_id FROM waiting_list_entries WHERE event_id = %s ORDER BY seq",
            (event_id,),
        )
        line = [user_id for (user_id,) in rows]
    checked.expect(
        ctx.api.waiting_list(event_id) == line,
        "the API's waiting list differs from the rows in seq order",
    )
    status_checked = Checked()
    expected = ctx.api.status(event_id)
    wrong = sum(1 for r in size.statuses if r.status == 200 and r.body != expected)
    status_checked.expect(wrong == 0, f"{wrong} status answers differ from {expected}")
    sizes = {
        "bookings": size.bookings,
        "waiting": size.waiting,
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


def growth(small_ctx: Context, large_ctx: Context) -> dict:
    s = small_ctx.scale
    seed.clear(small_ctx.engine)  # the small table holds only the small event's rows
    sizes = [
        Size("small", small_ctx, *s.growth_small),
        Size("large", large_ctx, *s.growth_large),
    ]
    for size in sizes:
        _prepare(size)
        _warm_up(size)
    small_ctx.say(
        f"growth: {s.growth_cycles} cycles and {s.growth_status} status reads per size,"
        f" in {BLOCKS} alternating blocks, {s.growth_concurrency} in flight"
    )
    for block in range(BLOCKS):
        for size in sizes if block % 2 == 0 else reversed(sizes):
            _measure_block(size, s.growth_cycles // BLOCKS, s.growth_status // BLOCKS)
    small, large = (_finish(size) for size in sizes)
    ratios = {}
    for kind in ("cancel", "rebook", "status"):
        for pct in ("p50_ms", "p99_ms"):
            base = small[kind][pct]
            ratios[f"{kind}_{pct[:3]}"] = round(large[kind][pct] / base, 2) if base else None
    return {"small": small, "large": large, "ratios": ratios, "blocks": BLOCKS}
