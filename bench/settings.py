"""How big a run is: the full benchmark, and a quick one for development."""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Scale:
    concurrency: int = 64  # requests in flight for the throughput scenarios
    healthz_requests: int = 10_000
    hot_users: int = 5_000  # hot event: this many distinct users book one event
    hot_tickets: int = 1_000
    # Parties (issue 20): the hot event again, each user booking a party of 1..party_max
    # tickets drawn from a Random(party_seed); the growth cases again with parties of
    # 1..party_max booked and waiting (seed.py) and cycles that cancel a whole party.
    party_max: int = 6
    party_seed: int = 20
    # Checkout holds (issue 21): the hot event again on an event that holds each booking
    # this long for its checkout, long enough to outlast the run (book, then claim).
    hold_ttl_seconds: int = 600
    # The opening of a scheduled on-sale (issue 22, opening.py): parties of 1..party_max
    # queued, then opened at once; the sale's tickets are as many as its parties. During
    # the largest opening, from opening_other_after_s after the PATCH on, one booking of
    # another event every opening_other_every_s (at most opening_other_most), a status
    # read of each event, then opening_same_event bookings of the same event; the sites
    # raise LOCK_TIMEOUT to opening_lock_timeout so that nothing waiting is answered 503.
    opening_sizes: tuple[int, ...] = (10_000, 100_000)
    opening_other_after_s: float = 0.5  # seconds after the PATCH was sent
    opening_other_every_s: float = 0.2
    opening_other_most: int = 200
    opening_reads_after_s: float = 1.0  # a status read of each event
    opening_same_after_s: float = 2.5
    opening_same_event: int = 8
    opening_lock_timeout: int = 60
    # wrk (issue 23, wrk.py): /healthz, the hot event (bench/wrk_book.lua, a distinct user
    # each request, on an event of wrk_tickets so that every booking is booked), /healthz
    # again; each `wrk -t{wrk_threads} -c{concurrency} -d{wrk_seconds}s` after a warm-up.
    wrk_threads: int = 2
    wrk_seconds: int = 10
    wrk_warmup_seconds: int = 2
    wrk_tickets: int = 1_000_000
    many_events: int = 100  # many events: the same bookings spread over this many events
    many_tickets: int = 10  # tickets per event
    storm_tickets: int = 500  # cancel storm: every ticket holder cancels
    storm_waiting: int = 3_000
    status_requests: int = 10_000
    # Growth: (bookings in the bookings table, people waiting) small, then large.
    growth_small: tuple[int, int] = (1_000, 100)
    growth_large: tuple[int, int] = (1_000_000, 100_000)
    growth_cycles: int = 200  # cancel (promotes the head) + re-book (joins the tail)
    growth_status: int = 2_000
    growth_concurrency: int = 8
    growth_warmup_batch: int = 16  # warm-up chains per round, until every worker loaded the list
    growth_warmup_rounds: int = 12
    direct_processes: int = 8
    # Direct BookingService.book: the hot event's shape (a fifth booked, the rest waitlisted).
    direct_users: int = 2_500
    direct_tickets: int = 500
    raw_bookings: int = 2_000  # per raw-SQL and per INSERT+COMMIT run
    # The dashboard scenario (dashboard.py), the same in a quick run: its picture needs
    # seconds of each phase to show rates from 0.5 s scrapes.
    dashboard_users: int = 4_000  # book the event, one in five answers followed by a status read
    dashboard_tickets: int = 2_000  # sold out half-way through
    dashboard_cancels: int = 400  # holders cancel, each promoting the head of the line
    dashboard_leaves: int = 150  # people from the back half of the line leave it
    dashboard_refusals: int = 100  # of each kind: book again, join again, cancel nothing
    # In flight during the sale: fewer connections than gunicorn accepts (2 workers x
    # worker_connections 32), or the scraper's waits until a keep-alive one closes.
    dashboard_sale_concurrency: int = 48
    dashboard_concurrency: int = 8  # in flight during the cancels


FULL = Scale()

QUICK = replace(
    FULL,
    healthz_requests=2_000,
    hot_users=1_000,
    hot_tickets=200,
    many_events=20,
    storm_tickets=100,
    storm_waiting=600,
    status_requests=2_000,
    growth_large=(100_000, 10_000),
    growth_cycles=60,
    growth_status=400,
    growth_warmup_rounds=8,
    direct_users=1_000,
    direct_tickets=200,
    raw_bookings=600,
    opening_sizes=(1_000, 10_000),
    opening_other_after_s=0.1,
    opening_other_every_s=0.05,
    opening_reads_after_s=0.15,
    opening_same_after_s=0.25,
    wrk_seconds=4,
    wrk_warmup_seconds=1,
)
