"""What survives: a restart, changes made by another server, a worker killed mid-storm.

The waiting_list_entries table is the truth; each gunicorn worker keeps an
in-memory copy of the line. These tests run real gunicorn processes on the real
MariaDB and check that the copies never outlive, outvote or lose the truth.
"""

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .invariants import check_invariants, read_truth
from .servers import Gunicorn, wait_for_workers, worker_pids
from .storm import Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)


def server(database_url: str, tmp_path: Path, name: str, workers: int, lock_mode: str) -> Gunicorn:
    # Keep the per-request log lines out of the test output and the repository.
    log_file = tmp_path / f"{name}.log"
    return Gunicorn(
        database_url,
        ADMIN_PASSWORD,
        workers=workers,
        LOG_FILE=log_file,
        LOG_LEVEL="WARNING",
        BOOKING_LOCK=lock_mode,
    )


def client(gunicorn: Gunicorn, tally: Counter | None = None) -> httpx.Client:
    """A client for `gunicorn`; with `tally`, it counts every answer by status."""
    hooks = {}
    if tally is not None:
        hooks["response"] = [lambda response: tally.update([response.status_code])]
    return httpx.Client(base_url=gunicorn.url, timeout=30, event_hooks=hooks)


def tallied(tally: Counter) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()))
    errors = sum(v for k, v in tally.items() if k >= 500)
    return f"requests={sum(tally.values())} statuses={{{statuses}}} errors={errors}"


def initialize(http: httpx.Client, name: str, total: int) -> int:
    response = http.post(
        "/api/events/initialize", json={"eventName": name, "totalTickets": total}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    return response.json()["eventId"]


def book(http: httpx.Client, event_id: int, user: int) -> dict:
    response = http.post("/api/events/book", json={"userId": user, "eventId": event_id})
    assert response.status_code == 201, response.text
    return response.json()


def cancel(http: httpx.Client, event_id: int, user: int) -> dict:
    response = http.post("/api/events/cancel", json={"userId": user, "eventId": event_id})
    assert response.status_code == 200, response.text
    return response.json()


def status(http: httpx.Client, event_id: int) -> dict:
    response = http.get(f"/api/events/status/{event_id}")
    assert response.status_code == 200, response.text
    return response.json()


def waiting_list(http: httpx.Client, event_id: int) -> list[int]:
    response = http.get(f"/api/events/{event_id}/waiting-list", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()["userIds"]


def db_waiting_list(database_url: str, event_id: int) -> list[int]:
    return read_truth(database_url)[0][event_id].waiting


def test_the_waiting_list_survives_a_restart(mysql_database_url, tmp_path, lock_mode):
    wipe(mysql_database_url)
    started = time.perf_counter()
    users = random.Random(2).sample(range(1, 1_000_000), 32)
    tally = Counter()
    gunicorn = server(mysql_database_url, tmp_path, "restart", workers=2, lock_mode=lock_mode)
    with gunicorn, client(gunicorn, tally) as http:
        event_id = initialize(http, "Restart", 2)
        for index, user in enumerate(users):
            answer = book(http, event_id, user)
            if index < 2:
                assert answer["status"] == "booked", answer
            else:
                assert (answer["status"], answer["position"]) == ("waitlisted", index - 1), answer
        line = waiting_list(http, event_id)
        assert line == users[2:]
        assert all(waiting_list(http, event_id) == line for _ in range(4))  # both workers
        before = status(http, event_id)
        assert (before["availableTickets"], before["waitingListCount"]) == (0, 30)
        first_master = gunicorn.process.pid

        gunicorn.stop(signal.SIGTERM)
        assert gunicorn.process.returncode == 0, gunicorn.process.returncode
        gunicorn.start()
        assert gunicorn.process.pid != first_master

        # Cold workers: each loads the line from the table.
        assert all(waiting_list(http, event_id) == line for _ in range(4))
        assert status(http, event_id) == before
        for index, user in enumerate(users):
            response = http.get(f"/api/events/{event_id}/users/{user}")
            want = {"status": "booked"} if index < 2 else {"status": "waitlisted"}
            want["tickets"] = 1
            if index >= 2:
                want["position"] = index - 1
                want["overtakes"] = 0
            assert response.json() == {"eventId": event_id, "userId": user, **want}

        answer = cancel(http, event_id, users[0])
        assert answer["status"] == "cancelled"
        assert answer["promotedUserId"] == line[0]
        assert all(waiting_list(http, event_id) == line[1:] for _ in range(4))
        after = status(http, event_id)
        assert (after["availableTickets"], after["waitingListCount"]) == (0, 29)
        truth = check_invariants(mysql_database_url, gunicorn.url, ADMIN, 4)[event_id]
        assert sorted(truth.booked) == sorted([users[1], line[0]])
        assert truth.waiting == line[1:]

    print(
        f"\n[durability, {lock_mode} lock] restart: 2 booked + 30 waiting,"
        " SIGTERM (exit 0), new master:"
        " line of 30 identical and in order, status identical, cancel promoted the head;"
        f" {tallied(tally)} (test client; invariant check reads not counted)"
        f" wall={time.perf_counter() - started:.2f}s"
    )


def test_a_worker_catches_up_with_changes_made_behind_its_back(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    started = time.perf_counter()
    u = random.Random(3).sample(range(1, 1_000_000), 20)
    a_server = server(mysql_database_url, tmp_path, "a", workers=1, lock_mode=lock_mode)
    b_server = server(mysql_database_url, tmp_path, "b", workers=1, lock_mode=lock_mode)
    tally = Counter()
    with a_server, b_server, client(a_server, tally) as a, client(b_server, tally) as b:
        event_id = initialize(a, "Two servers", 2)
        for user in u[:12]:
            book(a, event_id, user)
        assert waiting_list(a, event_id) == u[2:12]  # A's one worker now holds the line

        # Round 1, all through B: a promotion, a leave from the middle, two joins.
        assert cancel(b, event_id, u[0])["promotedUserId"] == u[2]
        assert cancel(b, event_id, u[6])["status"] == "left_waiting_list"
        assert book(b, event_id, u[12])["position"] == 9
        assert book(b, event_id, u[13])["position"] == 10
        expected = [u[3], u[4], u[5], u[7], u[8], u[9], u[10], u[11], u[12], u[13]]
        assert db_waiting_list(mysql_database_url, event_id) == expected
        assert waiting_list(b, event_id) == expected
        assert waiting_list(a, event_id) == expected

        # Round 2 through B, then A changes the line without reading it first.
        assert cancel(b, event_id, u[1])["promotedUserId"] == u[3]
        assert cancel(b, event_id, u[8])["status"] == "left_waiting_list"
        assert book(b, event_id, u[14])["position"] == 9
        # A's copy still starts with u[3], who holds a ticket now: the right head is u[4].
        answer = cancel(a, event_id, u[2])
        assert answer["status"] == "cancelled"
        assert answer["promotedUserId"] == u[4]
        expected = [u[5], u[7], u[9], u[10], u[11], u[12], u[13], u[14]]
        refused = a.post("/api/events/book", json={"userId": u[13], "eventId": event_id})
        assert refused.status_code == 409
        assert refused.json()["position"] == expected.index(u[13]) + 1

        # Round 3: the head leaves (not promoted) through B and someone joins;
        # then the one who left rejoins through A, at the back.
        assert cancel(b, event_id, u[5])["status"] == "left_waiting_list"
        assert book(b, event_id, u[15])["position"] == 8
        assert book(a, event_id, u[5])["position"] == 9
        expected = [u[7], u[9], u[10], u[11], u[12], u[13], u[14], u[15], u[5]]

        assert db_waiting_list(mysql_database_url, event_id) == expected
        assert waiting_list(a, event_id) == expected
        assert waiting_list(b, event_id) == expected
        truth = check_invariants(mysql_database_url, a_server.url, ADMIN)[event_id]
        check_invariants(mysql_database_url, b_server.url, ADMIN)
        assert sorted(truth.booked) == sorted([u[3], u[4]])
        assert status(a, event_id) == status(b, event_id) == truth.status()

    print(
        f"\n[durability, {lock_mode} lock] behind its back:"
        " server A (1 worker, warm copy) and B (1 worker);"
        " 3 rounds of promotions, middle and head leaves, joins via B; A's list,"
        " B's list and the table agreed every time, A's cancel promoted the true head"
        f" {u[4]} (stale head was {u[3]}); {tallied(tally)} (test clients; invariant"
        f" check reads not counted) wall={time.perf_counter() - started:.2f}s"
    )


def test_killing_a_worker_mid_storm_loses_no_acknowledged_booking(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    started = time.perf_counter()
    rng = random.Random(4)
    users = rng.sample(range(1, 1_000_000), 300)
    kill_after = 100  # answers
    gunicorn = server(mysql_database_url, tmp_path, "crash", workers=4, lock_mode=lock_mode)
    with gunicorn, client(gunicorn) as http:
        event_id = initialize(http, "Crash", 50)
        master = gunicorn.process.pid
        # gunicorn answers as soon as one worker is up; wait for all four.
        wait_for_workers(master, 4, gone=set())
        killed = []

        def kill_a_worker(_result, answered):
            if answered == kill_after:
                victim = rng.choice(sorted(worker_pids(master)))
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        storm = run_storm(
            gunicorn.url,
            [Call("POST", "/api/events/book", {"userId": u, "eventId": event_id}) for u in users],
            concurrency=32,
            on_result=kill_a_worker,
        )

        assert len(killed) == 1
        wait_for_workers(master, 4, gone=set(killed))  # the master replaced it
        failed = storm.errors()
        # Answers are 201, or no answer (the killed worker's request), or 5xx.
        assert storm.statuses().keys() <= {201} | {r.kind for r in failed}, storm.statuses()

        truth = check_invariants(mysql_database_url, gunicorn.url, ADMIN, 8)[event_id]
        booked, waiting = set(truth.booked), truth.waiting
        assert booked | set(waiting) <= set(users)
        assert len(booked) == 50  # 300 tried, far more than 50 got through
        for result in storm.with_status(201):
            user = result.call.json["userId"]
            if result.body["status"] == "booked":
                assert user in booked, user
            else:
                # Nobody cancels in this storm, so nobody is promoted and nobody
                # leaves: the place handed out is the place held, even counting
                # bookings whose answer the kill swallowed.
                assert result.body["status"] == "waitlisted", result.body
                assert user not in booked, user
                assert waiting[result.body["position"] - 1] == user, result.body
        acknowledged = len(storm.with_status(201))
        assert len(booked) + len(waiting) >= acknowledged
        unanswered_but_kept = sum(
            1 for r in failed if r.call.json["userId"] in booked | set(waiting)
        )
        assert len(booked) + len(waiting) == acknowledged + unanswered_but_kept

    print(
        f"\n[durability, {lock_mode} lock] crash: 300 users, 50 tickets, 4 workers, 32 in flight,"
        f" SIGKILL worker {killed[0]} after {kill_after} answers: {storm.summary()}"
        f" | failed={len(failed)} ({', '.join(sorted({str(r.kind) for r in failed})) or '-'})"
        f" of which committed anyway={unanswered_but_kept}"
        f" | db: {len(booked)} booked, {len(waiting)} waiting"
        f" | test wall={time.perf_counter() - started:.2f}s"
    )
    for result in failed:
        user = result.call.json["userId"]
        print(f"    failed: user {user}: {result.kind} {result.error or result.body}")
