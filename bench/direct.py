"""The transaction ceiling: the booking transaction with no HTTP in front of it.

Two ways, each with 1 connection (one process) and with N connections (N
processes, not threads: on 2 cores with the GIL, and with BookingLock's
per-process thread lock, threads would measure Python, not the database):

- service: booking's own code, exactly what a gunicorn worker runs minus HTTP,
  JSON and logging: an engine built with booking.storage.database.engine_options and
  configure, BookingService(engine, locking.for_engine(engine, 5), WaitingLists())
  and .book(event, user), on the hot-event workload (the same users and tickets,
  so most bookings join the waiting list, as over HTTP);
- raw: the booked path as plain PyMySQL statements: LOCK TABLES events WRITE,
  bookings WRITE, waiting_list_entries WRITE; SELECT the event row; INSERT the
  booking; UPDATE the counter; COMMIT; UNLOCK TABLES. No SQLAlchemy at all;
- commit: INSERT one booking row and COMMIT, nothing else: the floor any
  durable write pays (a redo-log flush with innodb_flush_log_at_trx_commit=1),
  and, with N connections and no table lock, what group commit makes of it.

Processes start with `spawn` (no inherited connections), import and connect
first, then all begin together; wall time runs from the common start to the
last one done. booking's INFO logs go nowhere here (no handler is configured),
while the server writes each one as JSON to a file and stderr.
"""

import multiprocessing
import time
import traceback

import sqlalchemy as sa

from booking.sales.locking import LOCK_TABLES

from . import seed
from .api import Api
from .checks import check
from .cpu import CpuMeter, per_request
from .stats import latency_ms

LOCK_TIMEOUT = 5


def _service_booker(url: str, event_id: int):
    from booking.sales import locking
    from booking.sales.service import BookingService
    from booking.sales.waiting_lists import WaitingLists
    from booking.storage import database

    engine = sa.create_engine(url, **database.engine_options(url, LOCK_TIMEOUT))
    database.configure(engine, LOCK_TIMEOUT)
    service = BookingService(engine, locking.for_engine(engine, LOCK_TIMEOUT), WaitingLists())
    database.ping(engine)  # connect before the clock starts

    def book(user_id: int) -> str:
        result = service.book(event_id, user_id)
        return type(result).__name__.lower()

    return book


def _pymysql(url: str):
    import pymysql

    parts = sa.make_url(url)
    conn = pymysql.connect(
        host=parts.host,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.database,
        charset="utf8mb4",
        autocommit=False,
    )
    cursor = conn.cursor()
    cursor.execute(
        "SET SESSION lock_wait_timeout = %s, innodb_lock_wait_timeout = %s",
        (LOCK_TIMEOUT, LOCK_TIMEOUT),
    )
    return conn, cursor


def _raw_booker(url: str, event_id: int):
    conn, cursor = _pymysql(url)

    def book(user_id: int) -> str:
        try:
            cursor.execute(LOCK_TABLES)
            cursor.execute(
                "SELECT id, name, total_tickets, available_tickets, waiting_count,"
                " waitlist_version, next_waiting_seq FROM events WHERE id = %s",
                (event_id,),
            )
            event = cursor.fetchone()
            if event[3] <= 0:
                raise RuntimeError("sold out: the raw run books only while tickets are left")
            cursor.execute(
                "INSERT INTO bookings (event_id, user_id) VALUES (%s, %s)", (event_id, user_id)
            )
            cursor.execute(
                "UPDATE events SET available_tickets = available_tickets - 1 WHERE id = %s",
                (event_id,),
            )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            cursor.execute("UNLOCK TABLES")
        return "booked"

    return book


def _commit_booker(url: str, event_id: int):
    """The floor under any durable write: INSERT one row and COMMIT, no table lock, so
    concurrent connections can share a log flush (InnoDB group commit)."""
    conn, cursor = _pymysql(url)

    def book(user_id: int) -> str:
        cursor.execute(
            "INSERT INTO bookings (event_id, user_id) VALUES (%s, %s)", (event_id, user_id)
        )
        conn.commit()
        return "booked"

    return book


_BOOKERS = {"service": _service_booker, "raw": _raw_booker, "commit": _commit_booker}
LABELS = {
    "service": "BookingService.book",
    "raw": "raw PyMySQL booking",
    "commit": "INSERT+COMMIT only",
}


def _worker(kind, url, event_id, users, ready, start, results, finish) -> None:
    try:
        book = _BOOKERS[kind](url, event_id)
    except BaseException:
        ready.release()
        results.put({"fatal": traceback.format_exc()})
        return
    ready.release()
    start.wait()
    latencies, outcomes, errors = [], {}, []
    cpu_begun = time.process_time()
    begun = time.perf_counter()
    for user_id in users:
        t0 = time.perf_counter()
        try:
            outcome = book(user_id)
        except Exception as error:  # recorded, like a 5xx over HTTP
            outcome = "error"
            if len(errors) < 5:
                errors.append(f"{type(error).__name__}: {error}"[:300])
        latencies.append(time.perf_counter() - t0)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    results.put(
        {
            "latencies": latencies,
            "outcomes": outcomes,
            "errors": errors,
            "begun": begun,
            "done": time.perf_counter(),
            "cpu_s": time.process_time() - cpu_begun,
        }
    )
    finish.wait(60)  # stay alive until the parent has read everyone's CPU time


def run(
    kind: str,
    processes: int,
    database_url: str,
    engine: sa.Engine,
    api: Api,
    meter: CpuMeter,
    users: list[int],
    tickets: int,
) -> dict:
    """`len(users)` bookings of one new event with `tickets` tickets, from `processes`."""
    event = seed.seed_event(
        engine, f"bench direct {kind} x{processes}", range(0), range(0), tickets
    )
    context = multiprocessing.get_context("spawn")
    ready, start, finish = context.Semaphore(0), context.Event(), context.Event()
    results = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(kind, database_url, event.event_id, users[i::processes]),
            kwargs={"ready": ready, "start": start, "results": results, "finish": finish},
            daemon=True,
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    before = meter.sample()
    start.set()
    parts = [results.get(timeout=300) for _ in workers]
    # Every process is still alive (waiting for `finish`), so the sample charges them their
    # CPU since the common start, and neither their start-up nor their exit.
    cpu = meter.shares(before, meter.sample())
    finish.set()
    for worker in workers:
        worker.join()
    fatal = [p["fatal"] for p in parts if "fatal" in p]
    if fatal:
        raise RuntimeError("a direct-transaction process failed:\n" + fatal[0])
    wall = max(p["done"] for p in parts) - min(p["begun"] for p in parts)
    latencies = [x for p in parts for x in p["latencies"]]
    outcomes: dict[str, int] = {}
    for part in parts:
        for key, count in part["outcomes"].items():
            outcomes[key] = outcomes.get(key, 0) + count
    if kind == "commit":
        # Rows without their counters: not a booking, so no invariants to check.
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM bookings WHERE event_id = %s", (event.event_id,))
            conn.exec_driver_sql("DELETE FROM events WHERE id = %s", (event.event_id,))
        return _row(kind, processes, latencies, wall, outcomes, parts, cpu, None)
    checked = check(engine, api, [event.event_id])
    expected_booked = min(tickets, len(users))
    checked.expect(
        outcomes.get("booked", 0) == expected_booked,
        f"{outcomes.get('booked', 0)} booked, not {expected_booked}",
    )
    checked.expect(
        outcomes.get("waitlisted", 0) == len(users) - expected_booked,
        f"{outcomes.get('waitlisted', 0)} waitlisted, not {len(users) - expected_booked}",
    )
    return _row(kind, processes, latencies, wall, outcomes, parts, cpu, checked)


def _row(kind, processes, latencies, wall, outcomes, parts, cpu, checked) -> dict:
    connections = "1 connection" if processes == 1 else f"{processes} processes"
    return {
        "scenario": f"direct: {LABELS[kind]}, {connections}",
        "kind": kind,
        "processes": processes,
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "rps": round(len(latencies) / wall, 1),
        **latency_ms(latencies),
        "errors": outcomes.get("error", 0),
        "error_samples": [e for p in parts for e in p["errors"]][:5],
        "outcome": outcomes,
        "invariants_ok": None if checked is None else checked.ok,
        "problems": [] if checked is None else checked.problems[:20],
        "cpu": per_request(cpu, len(latencies)),  # per transaction
    }
