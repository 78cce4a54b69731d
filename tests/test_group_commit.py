"""Group commit through a real gunicorn on the real MariaDB, in both lock modes.

One worker process with many threads, so that requests wait at the lock together
and commit in batches. Each batch logs one line (logger booking.batches) naming
its requests in the order they ran, which is how these tests see the batches
and their order.
"""

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, initialize, wipe
from .invariants import check_invariants
from .servers import Gunicorn
from .storm import Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
UNKNOWN_EVENT = 9_000_000_000


def one_worker(database_url: str, tmp_path, lock_mode: str, **env) -> Gunicorn:
    return Gunicorn(
        database_url,
        ADMIN_PASSWORD,
        workers=1,
        output=tmp_path / "gunicorn.out",
        GUNICORN_THREADS=32,
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="INFO",
        BOOKING_LOCK=lock_mode,
        **env,
    )


def batches(server: Gunicorn) -> list[dict]:
    """The batch lines the server logged so far, in the order they were written."""
    with open(server.env["LOG_FILE"], encoding="utf-8") as log:
        lines = [json.loads(line) for line in log if '"booking.batches"' in line]
    return lines


def post(url: str, path: str, user_id: int, event_id: int, request_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/events/{path}",
        json={"userId": user_id, "eventId": event_id},
        headers={"X-Request-ID": request_id},
        timeout=60,
    )


class Model:
    """The rules, one change at a time: what each answer must be (every party of one
    ticket, so the allocation is the line's order)."""

    @staticmethod
    def gave_back(promoted: list[int]) -> dict:
        """A cancel answer's fields beyond who and what: one ticket given back, and whom
        it served."""
        return {
            "tickets": 1,
            "remainingTickets": 0,
            "promotedUserIds": promoted,
            "offeredUserIds": [],
            "promotedUserId": promoted[0] if promoted else None,
            "offeredUserId": None,
        }

    def __init__(self, totals: dict[int, int]):
        self.totals = totals
        self.booked = {event_id: set() for event_id in totals}
        self.line = {event_id: [] for event_id in totals}

    def apply(self, path: str, event_id: int, user: int) -> tuple[int, dict]:
        if event_id not in self.totals:
            return 404, {"type": "urn:booking:problem:event-not-found"}
        booked, line = self.booked[event_id], self.line[event_id]
        if path == "book":
            if user in booked:
                return 409, {"type": "urn:booking:problem:already-booked"}
            if user in line:
                return 409, {"position": line.index(user) + 1}
            if len(booked) < self.totals[event_id]:
                booked.add(user)
                return 201, {"status": "booked", "eventId": event_id, "userId": user, "tickets": 1}
            line.append(user)
            body = {"status": "waitlisted", "eventId": event_id, "userId": user, "tickets": 1}
            return 201, {**body, "position": len(line)}
        if user in booked:
            booked.remove(user)
            promoted = line.pop(0) if line else None
            if promoted is not None:
                booked.add(promoted)
            body = {"status": "cancelled", "eventId": event_id, "userId": user}
            return 200, {**body, **self.gave_back([promoted] if promoted else [])}
        if user in line:
            line.remove(user)
            body = {"status": "left_waiting_list", "eventId": event_id, "userId": user}
            return 200, {**body, **self.gave_back([])}
        return 404, {"type": "urn:booking:problem:nothing-to-cancel"}


def test_batches_answer_as_one_at_a_time_in_their_order(mysql_database_url, tmp_path, lock_mode):
    """Every answer equals what running the changes one at a time, in the order the
    batches ran them, gives: places, promotions and refusals included."""
    wipe(mysql_database_url)
    rng = random.Random(9)
    with one_worker(mysql_database_url, tmp_path, lock_mode) as server:
        totals = {initialize(server.url, "A", 20): 20, initialize(server.url, "B", 3): 3}
        events = [*totals, UNKNOWN_EVENT]
        calls = []
        for index in range(800):
            path = rng.choice(["book", "book", "book", "cancel"])
            event_id = rng.choices(events, weights=[10, 10, 1])[0]
            body = {"userId": rng.randint(1, 120), "eventId": event_id}
            calls.append(
                Call("POST", f"/api/events/{path}", body, headers={"X-Request-ID": f"gc-{index}"})
            )
        storm = run_storm(server.url, calls, concurrency=64)
        log = batches(server)

    assert {line["outcome"] for line in log} == {"committed"}
    order = [request_id for line in log for request_id in line["requestIds"]]
    # Initialize ran in batches too; every book and cancel ran exactly once.
    changes = [request_id for request_id in order if request_id.startswith("gc-")]
    assert sorted(changes) == sorted(call.headers["X-Request-ID"] for call in calls)
    sizes = [line["batchSize"] for line in log]
    assert max(sizes) > 1, "no batch held more than one change"
    assert sum(size > 1 for size in sizes) >= 10, sizes

    model = Model(totals)
    answers = {r.call.headers["X-Request-ID"]: r for r in storm.results}
    for request_id in changes:
        result = answers[request_id]
        path = result.call.path.rsplit("/", 1)[1]
        status, expected = model.apply(
            path, result.call.json["eventId"], result.call.json["userId"]
        )
        assert result.status == status, (request_id, result.body, expected)
        assert {key: result.body.get(key) for key in expected} == expected, (
            request_id,
            result.body,
        )
        if status < 300:
            assert result.body == expected, request_id

    truth = check_invariants(mysql_database_url)
    for event_id in totals:
        assert set(truth[event_id].booked) == model.booked[event_id]
        assert truth[event_id].waiting == model.line[event_id]
    print(
        f"\n[group commit, {lock_mode} lock] {len(changes)} changes in {len(log)} batches,"
        f" mean size {sum(sizes) / len(sizes):.1f}, max {max(sizes)} | {storm.summary()}"
    )


@contextmanager
def database_lock_held(database_url: str, event_id: int, lock_mode: str):
    """Another session holds what a batch needs: the tables, or the event's row."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    conn = engine.connect()
    try:
        if lock_mode == "table":
            conn.exec_driver_sql("LOCK TABLES events WRITE")
        else:
            conn.exec_driver_sql("SELECT id FROM events WHERE id = %s FOR UPDATE", (event_id,))
        yield
    finally:
        conn.rollback()
        conn.exec_driver_sql("UNLOCK TABLES")
        conn.close()
        engine.dispose()


def queue_behind_a_held_lock(server, database_url, event_id, lock_mode, plug, burst, hold):
    """Send `plug` alone; while its batch waits for the held lock, send `burst` at once, so
    it queues and runs as one batch. Let go of the lock after `hold` seconds. The answers,
    by request id."""
    answers = {}

    def send(call):
        path, user_id, request_id = call
        answers[request_id] = post(server.url, path, user_id, event_id, request_id)

    with ThreadPoolExecutor(len(burst) + 1) as pool:
        with database_lock_held(database_url, event_id, lock_mode):
            started = time.monotonic()
            pool.submit(send, plug)
            time.sleep(min(1.0, hold / 4))  # the plug's batch is now waiting for the lock
            futures = [pool.submit(send, call) for call in burst]
            time.sleep(max(0.0, hold - (time.monotonic() - started)))
        for future in futures:
            future.result()
    return answers


def test_an_unexpected_error_in_a_batch_fails_only_its_own_change(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    with one_worker(mysql_database_url, tmp_path, lock_mode) as server:
        event_id = initialize(server.url, "Corrupted", 2)
        for user in (1, 2, 3, 4):  # 1 and 2 booked; 3 heads the line, then 4
            assert post(server.url, "book", user, event_id, f"setup-{user}").status_code == 201
        # Break the rules behind the service's back: user 3 waits AND holds a ticket, so
        # the cancellation that promotes user 3 hits the unique key on bookings.
        engine = sa.create_engine(mysql_database_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO bookings (event_id, user_id) VALUES (%s, 3)", (event_id,)
            )
            conn.exec_driver_sql("UPDATE events SET total_tickets = 3 WHERE id = %s", (event_id,))
        burst = [
            ("book", 11, "b-11"),
            ("book", 1, "b-1-again"),  # a refusal: already booked
            ("cancel", 1, "c-1"),  # the faulty change: promotes user 3
            ("book", 12, "b-12"),
            ("cancel", 4, "c-4"),  # leaves the line
            ("book", 13, "b-13"),
        ]
        answers = queue_behind_a_held_lock(
            server, mysql_database_url, event_id, lock_mode, ("book", 10, "plug"), burst, 2.0
        )
        log = batches(server)

    faulty = answers["c-1"]
    assert faulty.status_code == 409, faulty.text
    assert faulty.json()["type"] == "urn:booking:problem:conflict"
    assert answers["b-1-again"].status_code == 409
    assert answers["b-1-again"].json()["type"] == "urn:booking:problem:already-booked"
    assert answers["c-4"].json() == {
        "status": "left_waiting_list",
        "eventId": event_id,
        "userId": 4,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    for request_id in ("plug", "b-11", "b-12", "b-13"):
        assert answers[request_id].status_code == 201, answers[request_id].text
        assert answers[request_id].json()["status"] == "waitlisted"

    reruns = [line for line in log if line["outcome"] == "rerun"]
    assert reruns, "the faulty change did not make its batch rerun"
    assert any("c-1" in line["requestIds"] and line["batchSize"] > 1 for line in reruns), reruns
    with engine.connect() as conn:
        booked = {
            user
            for (user,) in conn.exec_driver_sql(
                "SELECT user_id FROM bookings WHERE event_id = %s", (event_id,)
            )
        }
        waiting = [
            user
            for (user,) in conn.exec_driver_sql(
                "SELECT user_id FROM waiting_list_entries WHERE event_id = %s ORDER BY seq",
                (event_id,),
            )
        ]
    engine.dispose()
    # The others committed; the faulty cancellation changed nothing.
    assert booked == {1, 2, 3}
    assert waiting[:1] == [3]
    assert set(waiting) == {3, 10, 11, 12, 13}


def test_a_batch_that_fails_whole_answers_every_request_503(
    mysql_database_url, tmp_path, lock_mode
):
    """A lock wait timeout fails the whole batch: every request in it gets 503 with
    Retry-After, nothing of it is committed, and a retry succeeds."""
    wipe(mysql_database_url)
    with one_worker(mysql_database_url, tmp_path, lock_mode, LOCK_TIMEOUT=2) as server:
        event_id = initialize(server.url, "Held", 100)
        burst = [("book", user, f"held-{user}") for user in range(1, 13)]
        answers = queue_behind_a_held_lock(
            server, mysql_database_url, event_id, lock_mode, ("book", 99, "plug"), burst, 6.0
        )
        log = batches(server)

        for request_id, answer in answers.items():
            assert answer.status_code == 503, (request_id, answer.text)
            assert answer.headers["Retry-After"]
            assert answer.headers["Content-Type"] == "application/problem+json"
        failed = [line for line in log if line["outcome"] == "failed"]
        assert any(line["batchSize"] > 1 for line in failed), failed
        assert sum(line["batchSize"] for line in failed) == len(answers)
        truth = check_invariants(mysql_database_url)[event_id]
        assert truth.booked == [] and truth.available == 100

        retried = [
            post(server.url, "book", user, event_id, f"retry-{user}") for user in range(1, 13)
        ]
        assert [answer.status_code for answer in retried] == [201] * 12
        assert check_invariants(mysql_database_url)[event_id].booked == list(range(1, 13))


def test_a_lone_request_does_not_wait_for_a_batch_to_fill(mysql_database_url, tmp_path, lock_mode):
    """Nobody waits to fill a batch: requests one after another each commit alone."""
    wipe(mysql_database_url)
    with one_worker(mysql_database_url, tmp_path, lock_mode) as server:
        event_id = initialize(server.url, "Quiet", 5)
        for user in range(1, 8):
            assert post(server.url, "book", user, event_id, f"lone-{user}").status_code == 201
        log = [line for line in batches(server) if line["requestIds"][0].startswith("lone-")]
    assert [line["batchSize"] for line in log] == [1] * 7
    assert [line["requestIds"] for line in log] == [[f"lone-{u}"] for u in range(1, 8)]


def test_concurrent_threads_leave_no_waiter_behind(mysql_database_url, tmp_path, lock_mode):
    """Many short bursts from many threads: every request is answered, none twice."""
    wipe(mysql_database_url)
    with one_worker(mysql_database_url, tmp_path, lock_mode) as server:
        event_id = initialize(server.url, "Bursts", 50)
        answered = []
        guard = threading.Lock()

        def client(first: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                for user in range(first, first + 25):
                    body = {"userId": user, "eventId": event_id}
                    status = http.post("/api/events/book", json=body).status_code
                    with guard:
                        answered.append((user, status))

        threads = [threading.Thread(target=client, args=(1 + 25 * i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert sorted(user for user, _ in answered) == list(range(1, 401))
    assert {status for _, status in answered} == {201}
    truth = check_invariants(mysql_database_url)[event_id]
    assert len(truth.booked) == 50 and len(truth.waiting) == 350
