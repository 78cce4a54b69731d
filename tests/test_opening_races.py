"""The opening of a scheduled on-sale under concurrency (issue 22, "Tests"), through real
gunicorn with 4 workers on MariaDB, in both lock modes.

- Fairness: 2,000 users queue one by one, in a known order, for two events of 200
  tickets (parties of 1). After each opening the booked set and the line are a random
  permutation: the booked users' mean arrival index is within 4 standard errors of the
  middle, the Spearman correlation between arrival order (and user id order) and line
  order is near 0, and the two events, queued alike, are served in different orders.
- Exactly once: 10,000 queued; salesOpenAt a couple of seconds ahead; at that moment a
  `flask worker` and 64 new bookings trigger the opening together. One sale.opened, one
  fromQueue fact per queued user, every new booking journalled after every queued party
  and waiting behind every queued party that waits; no 5xx (LOCK_TIMEOUT raised, so
  requests wait at the lock through the opening and are answered after it).
- Restart and kill: 2,000 queued; the worker and every gunicorn worker are SIGKILLed
  around the opening, then the whole server. Right after, the opening has either
  committed whole or not at all; after a restart it happens once and nothing is lost.

The figures (fairness statistics, the opening's lock hold from the server's batch log)
are printed; nothing here asserts a time.
"""

import json
import math
import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from booking.storage import journal as journal_store

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .invariants import check_invariants
from .receivers import WorkerProcess, worker_processes
from .servers import Gunicorn, worker_pids
from .storm import Call, run_storm
from .test_hold_races import database_clock, query, wait_until
from .test_queue import check_queue, rfc3339

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
IN_FLIGHT = 64
WORKERS = 4
LOCK_TIMEOUT = 120  # requests wait at the lock through the opening, never 503
SERVED = ("booking.booked", "hold.created", "waitlist.joined")


def server_env(tmp_path: Path, lock_mode: str, name: str = "booking") -> dict:
    return {
        "BOOKING_LOCK": lock_mode,
        "LOCK_TIMEOUT": LOCK_TIMEOUT,
        "LOG_FILE": str(tmp_path / f"{name}.log"),
        "LOG_LEVEL": "INFO",  # the batch lines: the opening's holdMs
    }


@pytest.fixture
def server(mysql_database_url, tmp_path, lock_mode):
    wipe(mysql_database_url)
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=WORKERS,
        output=tmp_path / "gunicorn.out",
        **server_env(tmp_path, lock_mode),
    ) as running:
        yield running


@pytest.fixture
def worker(mysql_database_url, tmp_path, lock_mode):
    """A `flask worker` process (not started) in the server's lock mode."""
    with worker_processes(
        mysql_database_url,
        tmp_path,
        ".out",
        BOOKING_LOCK=lock_mode,
        LOCK_TIMEOUT=LOCK_TIMEOUT,
        LOG_LEVEL="INFO",
    ) as make:
        yield make


# The service, over HTTP.


def scheduled(url: str, total: int, sales_open_at: str = "2099-01-01T00:00:00Z") -> int:
    body = {"eventName": "On sale", "totalTickets": total, "salesOpenAt": sales_open_at}
    response = httpx.post(f"{url}/api/events/initialize", json=body, headers=ADMIN, timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["queueing"] is True
    return response.json()["eventId"]


def patch(url: str, event_id: int, **changes) -> dict:
    response = httpx.patch(
        f"{url}/api/events/{event_id}", json=changes, headers=ADMIN, timeout=LOCK_TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()


def status(url: str, event_id: int) -> dict:
    response = httpx.get(f"{url}/api/events/status/{event_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def waiting_list(url: str, event_id: int) -> list[int]:
    response = httpx.get(f"{url}/api/events/{event_id}/waiting-list", headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["userIds"]


def book_calls(event_id: int, users, name: str | None = None) -> list[Call]:
    """A booking per user; named (X-Request-ID `name`-user), so its batch can be found."""
    return [
        Call(
            "POST",
            "/api/events/book",
            {"userId": u, "eventId": event_id},
            headers={"X-Request-ID": f"{name}-{u}"} if name else None,
            tag=u,
        )
        for u in users
    ]


def opened_by_the_server(url: str) -> int:
    """How many openings the server's processes committed (its metrics)."""
    response = httpx.get(f"{url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    for line in response.text.splitlines():
        if line.startswith('booking_outcomes_total{outcome="sale_opened"}'):
            return int(float(line.split()[-1]))
    return 0


def queue_all(url: str, event_id: int, users) -> None:
    """Everyone queues at once: every answer 202 queued."""
    storm = run_storm(url, book_calls(event_id, users), concurrency=IN_FLIGHT, timeout=60)
    assert storm.statuses() == {202: len(storm.results)}, storm.summary()
    assert storm.outcomes() == {"queued": len(storm.results)}, storm.summary()


# The database, read straight.


def journal(database_url: str, event_id: int) -> list[tuple[int, str, int | None, dict]]:
    """The event's journal rows in insert order: (id, type, user, data). One event's
    changes are serialized by its lock, so that is their commit order."""
    rows = query(
        database_url,
        "SELECT id, type, user_id, data FROM journal_entries WHERE event_id = :e ORDER BY id",
        e=event_id,
    )
    return [(id_, type_, user, json.loads(data)) for id_, type_, user, data in rows]


def opening_of(entries) -> tuple[dict, list[tuple[int, str, int, dict]]]:
    """The one sale.opened fact and, right after it, the facts of the parties it served
    (each with fromQueue true; no other fact has it)."""
    at = [i for i, entry in enumerate(entries) if entry[1] == "sale.opened"]
    assert len(at) == 1, f"{len(at)} sale.opened facts"
    data = entries[at[0]][3]
    served = entries[at[0] + 1 : at[0] + 1 + data["queuedParties"]]
    assert [e for e in entries if e[3].get("fromQueue")] == served
    assert all(e[1] in SERVED for e in served)
    kinds = Counter(e[1] for e in served)
    counts = (kinds["booking.booked"], kinds["hold.created"], kinds["waitlist.joined"])
    assert (data["booked"], data["held"], data["waitlisted"]) == counts, data
    return data, served


def where_users_are(database_url: str, event_id: int) -> Counter:
    """How many times each user appears in the event's bookings, offers, line and queue."""
    rows = query(
        database_url,
        "SELECT user_id FROM bookings WHERE event_id = :e UNION ALL"
        " SELECT user_id FROM offers WHERE event_id = :e UNION ALL"
        " SELECT user_id FROM waiting_list_entries WHERE event_id = :e UNION ALL"
        " SELECT user_id FROM queue_entries WHERE event_id = :e",
        e=event_id,
    )
    return Counter(user for (user,) in rows)


def seed_queue(database_url: str, event_id: int, users: list[int]) -> None:
    """Queue `users` (parties of 1) straight in the database, in one transaction: what a
    202 booking writes (a queue_entries row, the event's queued_count and queued_tickets,
    a queue.joined fact), without 10,000 requests (at ~100 a second on a small machine,
    more than this test's time)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            (at,) = conn.execute(
                sa.text("SELECT sales_open_at FROM events WHERE id = :e AND queueing"),
                {"e": event_id},
            ).one()
            conn.execute(
                sa.text(
                    "INSERT INTO queue_entries (event_id, user_id, tickets) VALUES (:e, :u, 1)"
                ),
                [{"e": event_id, "u": user} for user in users],
            )
            conn.execute(
                sa.text(
                    "UPDATE events SET queued_count = queued_count + :n,"
                    " queued_tickets = queued_tickets + :n WHERE id = :e"
                ),
                {"e": event_id, "n": len(users)},
            )
            joined = {"tickets": 1, "salesOpenAt": rfc3339(at)}
            journal_store.append(
                conn, [journal_store.fact("queue.joined", event_id, u, **joined) for u in users]
            )
    finally:
        engine.dispose()


def log_ends(*paths: Path) -> dict[Path, int]:
    """How far each log file has been written: where to read the lines logged from now."""
    return {path: path.stat().st_size if path.exists() else 0 for path in paths}


def batches_since(path: Path, offset: int) -> list[dict]:
    """The batches committed and logged to `path` from `offset` on, in log order."""
    found = []
    with open(path, encoding="utf-8") as log:
        log.seek(offset)
        for text in log:
            if '"booking.batches"' in text:
                try:
                    line = json.loads(text)
                except ValueError:  # a line another process's write cut into
                    continue
                if line.get("outcome") == "committed":
                    found.append(line)
    return found


def opening_batch(
    server: Gunicorn, opener: WorkerProcess, since: dict[Path, int], first_after: str
) -> tuple[str, dict]:
    """Who opened, and the log line of the batch that did. The server's metrics say whether
    one of its processes did; if so, its batch ran the request whose fact comes first after
    the opening's (`first_after`, an X-Request-ID); else the worker's first batch since
    the hour was the opening."""
    if opened_by_the_server(server.url):
        log = Path(server.env["LOG_FILE"])
        lines = [b for b in batches_since(log, since[log]) if first_after in b["requestIds"]]
        return "a gunicorn worker's batch of bookings", (lines or [{}])[0]
    log = Path(opener.env["LOG_FILE"])
    return "the worker", (batches_since(log, since[log]) or [{}])[0]


def kill_all(server: Gunicorn) -> None:
    """SIGKILL the gunicorn master and its workers: frozen first, so that it starts no
    new worker between the two."""
    master = server.process
    if master is None or master.poll() is not None:
        return
    os.kill(master.pid, signal.SIGSTOP)
    for pid in worker_pids(master.pid):
        os.kill(pid, signal.SIGKILL)
    master.kill()
    master.wait()


# Statistics.


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    found = [0.0] * len(values)
    for rank, index in enumerate(order):
        found[index] = float(rank)
    return found


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho (no ties here): Pearson's correlation of the ranks."""
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy)


def mean_index_se(population: int, drawn: int) -> float:
    """The standard error of the mean of `drawn` values drawn without replacement from
    0..population-1."""
    variance = (population**2 - 1) / 12
    return math.sqrt(variance / drawn * (population - drawn) / (population - 1))


# 1. Fairness.

USERS, TICKETS = 2000, 200


def test_the_opening_serves_the_queue_in_a_random_order_not_arrival_nor_user_id(
    server, mysql_database_url, lock_mode
):
    started = time.perf_counter()
    rng = random.Random(22)
    arrivals = rng.sample(range(1, 1_000_000), USERS)  # arrival order; ids not in that order
    arrival = {user: index for index, user in enumerate(arrivals)}
    events = [scheduled(server.url, TICKETS), scheduled(server.url, TICKETS)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for user in arrivals:  # one by one: the arrival order is known
            for event_id in events:
                response = client.post(
                    "/api/events/book", json={"userId": user, "eventId": event_id}
                )
                assert response.status_code == 202, response.text
    for event_id in events:
        assert patch(server.url, event_id, salesOpen=True)["queueing"] is False

    orders, figures = [], []
    se = mean_index_se(USERS, TICKETS)
    bound = 4 / math.sqrt(USERS - TICKETS - 1)
    for event_id in events:
        data, served = opening_of(journal(mysql_database_url, event_id))
        order = [user for _, _, user, _ in served]
        assert sorted(order) == sorted(arrivals), "a queued user was not served exactly once"
        assert (data["queuedParties"], data["booked"], data["waitlisted"]) == (2000, 200, 1800)
        # Parties of 1, nobody waiting before: the first 200 served book, the rest wait.
        assert [kind for _, kind, _, _ in served] == ["booking.booked"] * 200 + [
            "waitlist.joined"
        ] * 1800
        line = waiting_list(server.url, event_id)
        assert line == order[TICKETS:]
        booked = order[:TICKETS]
        mean = sum(arrival[user] for user in booked) / TICKETS
        z = (mean - (USERS - 1) / 2) / se
        rho_arrival = spearman([arrival[u] for u in line], list(range(len(line))))
        rho_id = spearman([float(u) for u in line], list(range(len(line))))
        assert abs(z) < 4, f"the booked users' mean arrival index {mean:.1f} is {z:.2f} SE off"
        assert abs(rho_arrival) < bound, f"arrival and line order correlate: {rho_arrival:.4f}"
        assert abs(rho_id) < bound, f"user ids and line order correlate: {rho_id:.4f}"
        orders.append(order)
        figures.append(
            f"event {event_id}: booked mean arrival index {mean:.1f} (middle"
            f" {(USERS - 1) / 2}, SE {se:.1f}, z {z:+.2f}); Spearman(arrival, line)"
            f" {rho_arrival:+.4f}, Spearman(user id, line) {rho_id:+.4f} (bound {bound:.4f})"
        )
    assert orders[0] != orders[1], "two events queued alike were served in one order"
    position = {user: i for i, user in enumerate(orders[1])}
    rho_events = spearman([float(i) for i in range(USERS)], [position[u] for u in orders[0]])
    assert abs(rho_events) < 4 / math.sqrt(USERS - 1)
    check_queue(mysql_database_url)
    check_invariants(mysql_database_url, server.url, ADMIN)
    print(
        f"\n[opening fairness, {lock_mode} lock] {USERS} queued one by one for {TICKETS}"
        f" tickets, 2 events: " + "; ".join(figures) + f"; Spearman between the two events'"
        f" orders {rho_events:+.4f}; test wall={time.perf_counter() - started:.2f}s"
    )


# 2. Exactly once.

QUEUED, SEEDED, TOTAL, NEWCOMERS = 10_000, 9_000, 1_000, 64


def test_the_worker_and_64_bookings_trigger_the_opening_together_and_it_happens_once(
    server, mysql_database_url, worker, lock_mode, tmp_path
):
    started = time.perf_counter()
    rng = random.Random(2222)
    users = rng.sample(range(1, 10_000_000), QUEUED + NEWCOMERS)
    queued, newcomers = users[:QUEUED], users[QUEUED:]
    event_id = scheduled(server.url, TOTAL)
    # 9,000 queued in SQL as a 202 would queue them, then 1,000 over HTTP on top.
    seed_queue(mysql_database_url, event_id, queued[:SEEDED])
    queueing = time.perf_counter()
    queue_all(server.url, event_id, queued[SEEDED:])
    queue_wall = time.perf_counter() - queueing
    assert status(server.url, event_id)["queuedCount"] == QUEUED

    opener = worker("worker").start()  # polling before the hour: it opens within one poll
    skew = database_clock(mysql_database_url)
    hour = time.time() + skew + 3.0  # by the database's clock
    sales_open_at = rfc3339(datetime.fromtimestamp(hour, UTC))
    assert patch(server.url, event_id, salesOpenAt=sales_open_at)["queueing"] is True
    logs = (Path(server.env["LOG_FILE"]), Path(opener.env["LOG_FILE"]))
    time.sleep(max(0.0, hour - 0.2 - skew - time.time()))
    before_the_hour = log_ends(*logs)
    time.sleep(max(0.0, hour + 0.01 - skew - time.time()))  # just after it, by its clock
    storm = run_storm(
        server.url,
        book_calls(event_id, newcomers, "opening"),
        concurrency=IN_FLIGHT,
        timeout=LOCK_TIMEOUT,
    )
    answered = time.time() + skew - hour
    wait_until(lambda: status(server.url, event_id)["queueing"], lambda q: q is False)

    # Every new booking was decided after the hour: none queued, none 5xx; all wait.
    assert not storm.errors(), storm.summary()
    assert storm.outcomes() == {"waitlisted": NEWCOMERS}, storm.summary()
    entries = journal(mysql_database_url, event_id)
    data, served = opening_of(entries)
    assert (data["queuedParties"], data["queuedTickets"]) == (QUEUED, QUEUED)
    assert (data["booked"], data["waitlisted"], data["salesOpenAt"]) == (
        TOTAL,
        QUEUED - TOTAL,
        sales_open_at,
    )
    assert Counter(user for _, _, user, _ in served) == Counter(queued)  # each exactly once
    last_served = served[-1][0]
    joined = [e for e in entries if e[2] in set(newcomers)]
    assert sorted(e[2] for e in joined) == sorted(newcomers)
    assert all(e[0] > last_served and "fromQueue" not in e[3] for e in joined)
    line = waiting_list(server.url, event_id)
    shuffled = [user for _, kind, user, _ in served if kind == "waitlist.joined"]
    assert line[: QUEUED - TOTAL] == shuffled
    assert sorted(line[QUEUED - TOTAL :]) == sorted(newcomers)
    assert [e[3]["position"] for e in joined] == list(range(QUEUED - TOTAL + 1, len(line) + 1))
    assert where_users_are(mysql_database_url, event_id) == Counter(users)
    check_queue(mysql_database_url)
    check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)

    opener.stop()
    by, batch = opening_batch(server, opener, before_the_hour, f"opening-{joined[0][2]}")
    [(took,)] = query(
        mysql_database_url,
        "SELECT TIMESTAMPDIFF(MICROSECOND, e.sales_open_at, j.at) FROM events e JOIN"
        " journal_entries j ON j.event_id = e.id AND j.type = 'sale.opened' WHERE e.id = :e",
        e=event_id,
    )
    print(
        f"\n[opening, {lock_mode} lock] {QUEUED} queued ({SEEDED} in SQL, {QUEUED - SEEDED}"
        f" over HTTP at {IN_FLIGHT} in flight: {queue_wall:.1f}s) for {TOTAL} tickets; at the"
        f" hour the worker and {NEWCOMERS} bookings: opened by {by} ({batch.get('batchSize')}"
        f" changes, waitMs {batch.get('waitMs')}, holdMs {batch.get('holdMs')}); sale.opened"
        f" written {took / 1000:.0f} ms after the hour (database clock); the last new booking"
        f" answered {answered:.2f}s after the hour;"
        f" {storm.summary()}; test wall={time.perf_counter() - started:.2f}s"
    )


# 3. Restart and kill.

KILLED_QUEUE, KILLED_TOTAL = 2000, 500


LOCK_PROBE = sa.text("SELECT id FROM events WHERE id = :e LOCK IN SHARE MODE NOWAIT")


def event_locked(conn, event_id: int) -> bool:
    """Whether a transaction holds the event's lock now (LOCK TABLES in table mode, its
    row in row mode): a read that may not wait for it fails."""
    try:
        conn.execute(LOCK_PROBE, {"e": event_id}).all()
    except sa.exc.OperationalError as error:
        assert error.orig.args[0] == 1205, error  # lock wait timeout: NOWAIT
        return True
    return False


def caught_opening(
    database_url: str, event_id: int, lasting: float = 0.02, timeout: float = 10.0
) -> bool:
    """Wait until the event's lock has been held for `lasting` seconds: after the hour,
    with nothing else going on, only the opening holds it that long. False if nothing did
    within `timeout` (the opening was quicker than the probes)."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    since = None
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                if not event_locked(conn, event_id):
                    since = None
                elif since is None:
                    since = time.monotonic()
                elif time.monotonic() - since >= lasting:
                    return True
                time.sleep(0.002)
    finally:
        engine.dispose()
    return False


def until_unlocked(database_url: str, event_id: int) -> None:
    """Wait until nobody holds the event's lock (a killed opener's transaction has been
    rolled back)."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            wait_until(lambda: event_locked(conn, event_id), lambda locked: not locked)
    finally:
        engine.dispose()


def opened_or_not(database_url: str, event_id: int) -> str:
    """The event in one snapshot: opened whole (one sale.opened, no queue, every queued
    party served), or not at all (queue intact, nothing served); never half."""
    [(facts, queued, queueing, sales_open, booked, waiting)] = query(
        database_url,
        "SELECT (SELECT COUNT(*) FROM journal_entries WHERE event_id = :e AND type ="
        " 'sale.opened'), (SELECT COUNT(*) FROM queue_entries WHERE event_id = :e),"
        " queueing, sales_open, (SELECT COUNT(*) FROM bookings WHERE event_id = :e),"
        " (SELECT COUNT(*) FROM waiting_list_entries WHERE event_id = :e)"
        " FROM events WHERE id = :e",
        e=event_id,
    )
    if facts:
        assert (facts, queued, queueing, sales_open) == (1, 0, 0, 1)
        assert booked == KILLED_TOTAL and waiting >= KILLED_QUEUE - KILLED_TOTAL
        return "opened"
    assert (queued, queueing, sales_open, booked, waiting) == (KILLED_QUEUE, 1, 0, 0, 0)
    return "not opened"


def test_killed_around_the_opening_then_restarted_it_opens_once_and_loses_nobody(
    mysql_database_url, tmp_path, worker, lock_mode
):
    started = time.perf_counter()
    wipe(mysql_database_url)
    rng = random.Random(2223)
    users = rng.sample(range(1, 10_000_000), KILLED_QUEUE + 2 * NEWCOMERS)
    queued = users[:KILLED_QUEUE]
    during, after = users[KILLED_QUEUE : KILLED_QUEUE + NEWCOMERS], users[-NEWCOMERS:]
    story = []
    first = Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=WORKERS,
        output=tmp_path / "first.out",
        **server_env(tmp_path, lock_mode, "first"),
    ).start()
    try:
        event_id = scheduled(first.url, KILLED_TOTAL)
        queue_all(first.url, event_id, queued)
        assert status(first.url, event_id)["queuedCount"] == KILLED_QUEUE
        opener = worker("first-worker").start()
        skew = database_clock(mysql_database_url)
        hour = time.time() + skew + 2.0
        patch(first.url, event_id, salesOpenAt=rfc3339(datetime.fromtimestamp(hour, UTC)))

        # At the hour the worker opens: killed in the middle of it (if the polls catch it).
        time.sleep(max(0.0, hour - skew - time.time()))
        caught = caught_opening(mysql_database_url, event_id)
        opener.stop(signal.SIGKILL)
        until_unlocked(mysql_database_url, event_id)
        state = opened_or_not(mysql_database_url, event_id)
        story.append(f"worker SIGKILLed {'mid-opening' if caught else 'uncaught'}: {state}")

        # New bookings open it on gunicorn: every gunicorn worker killed in the middle of it.
        storm_result = []
        storming = threading.Thread(
            target=lambda: storm_result.append(
                run_storm(first.url, book_calls(event_id, during), concurrency=IN_FLIGHT)
            )
        )
        storming.start()
        caught = state == "not opened" and caught_opening(mysql_database_url, event_id, timeout=5)
        for pid in worker_pids(first.process.pid):
            os.kill(pid, signal.SIGKILL)
        until_unlocked(mysql_database_url, event_id)
        state = opened_or_not(mysql_database_url, event_id)
        story.append(
            f"gunicorn workers SIGKILLed {'mid-opening' if caught else 'after it'}: {state}"
        )
        storming.join(120)
        assert not storming.is_alive()
    finally:
        kill_all(first)  # the whole server, SIGKILL
    storm = storm_result[0]
    answered = [r for r in storm.results if r.status is not None]
    assert all(r.status == 201 for r in answered), storm.summary()
    story.append(f"{len(answered)}/{NEWCOMERS} of those bookings answered, all 201")
    story.append(f"server SIGKILLed: {opened_or_not(mysql_database_url, event_id)}")
    check_queue(mysql_database_url)

    # Restarted: the new worker (or the next change) opens it, once.
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=WORKERS,
        output=tmp_path / "second.out",
        **server_env(tmp_path, lock_mode, "second"),
    ) as second:
        with worker("second-worker"):
            wait_until(lambda: status(second.url, event_id)["queueing"], lambda q: q is False)
            more = run_storm(second.url, book_calls(event_id, after), concurrency=IN_FLIGHT)
            assert more.outcomes() == {"waitlisted": NEWCOMERS}, more.summary()
        entries = journal(mysql_database_url, event_id)
        data, served = opening_of(entries)
        assert data["queuedParties"] == KILLED_QUEUE
        assert Counter(user for _, _, user, _ in served) == Counter(queued)
        assert (data["booked"], data["waitlisted"]) == (KILLED_TOTAL, KILLED_QUEUE - KILLED_TOTAL)
        # Nobody lost, nobody twice: every queued user booked or waiting exactly once; a
        # booking answered before the kills is there once; one unanswered at most once.
        where = where_users_are(mysql_database_url, event_id)
        assert all(where[user] == 1 for user in queued + after)
        assert all(where[r.call.tag] == 1 for r in answered)
        assert all(where[user] <= 1 for user in during)
        assert set(where) <= set(users)
        # Bookings sent at or after the hour came after every queued party.
        last_served = served[-1][0]
        assert all(e[0] > last_served for e in entries if e[2] in set(during + after))
        line = waiting_list(second.url, event_id)
        waiting = [user for _, kind, user, _ in served if kind == "waitlist.joined"]
        assert line[: len(waiting)] == waiting
        check_queue(mysql_database_url)
        check_invariants(mysql_database_url, second.url, ADMIN, 2 * WORKERS)
    print(
        f"\n[opening, {lock_mode} lock] {KILLED_QUEUE} queued for {KILLED_TOTAL} tickets: "
        + "; ".join(story)
        + f"; restarted: opened once ({data['booked']} booked, {data['waitlisted']} waiting),"
        f" nobody lost; test wall={time.perf_counter() - started:.2f}s"
    )
