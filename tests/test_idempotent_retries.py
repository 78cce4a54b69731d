"""Idempotent retries through real gunicorn on MariaDB, in both lock modes: a booking
whose answer was lost, retried with its key, gets its original answer, never a second
change and never 409 already-booked."""

import os
import signal
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, initialize, wipe
from .invariants import check_invariants
from .servers import Gunicorn, worker_pids
from .storm import TRANSPORT_ERROR, Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)


def server(database_url, tmp_path, lock_mode, **env) -> Gunicorn:
    return Gunicorn(
        database_url,
        ADMIN_PASSWORD,
        workers=2,
        output=tmp_path / "gunicorn.out",
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
        BOOKING_LOCK=lock_mode,
        **env,
    )


def keyed_book(event_id, user, key=None):
    key = key or f"book-{event_id}-{user}"
    body = {"userId": user, "eventId": event_id}
    return Call("POST", "/api/events/book", body, {"Idempotency-Key": key}, tag=user)


def test_two_identical_keyed_requests_at_once_make_one_change(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    with server(mysql_database_url, tmp_path, lock_mode) as s:
        event_id = initialize(s.url, "Twins", 50)
        calls = []
        for user in range(1, 201):
            calls += [keyed_book(event_id, user), keyed_book(event_id, user)]
        storm = run_storm(s.url, calls, concurrency=64)
        by_user = {}
        for result in storm.results:
            by_user.setdefault(result.call.tag, []).append(result)
        for user, pair in by_user.items():
            answered = [r for r in pair if r.status == 201]
            in_flight = [r for r in pair if r.status == 409]
            assert len(answered) + len(in_flight) == 2, [(r.status, r.body) for r in pair]
            assert answered, (user, [r.body for r in pair])
            assert all(r.body == answered[0].body for r in answered)
            for r in in_flight:
                assert r.body["type"] == "urn:booking:problem:idempotency-key-in-flight"
        truth = check_invariants(mysql_database_url, s.url, ADMIN)[event_id]
        assert len(truth.booked) == 50 and len(truth.waiting) == 150


def test_an_answer_lost_to_a_client_timeout_is_found_again(mysql_database_url, tmp_path, lock_mode):
    wipe(mysql_database_url)
    with server(mysql_database_url, tmp_path, lock_mode) as s:
        event_id = initialize(s.url, "Slow", 5)
        engine = sa.create_engine(mysql_database_url, poolclass=sa.pool.NullPool)
        holder = engine.connect()
        if lock_mode == "table":
            holder.exec_driver_sql("LOCK TABLES events WRITE")
        else:
            holder.exec_driver_sql("SELECT id FROM events WHERE id = %s FOR UPDATE", (event_id,))
        headers = {"Idempotency-Key": "lost-1"}
        body = {"userId": 42, "eventId": event_id}
        with pytest.raises(httpx.TimeoutException):  # the client gives up; the server goes on
            httpx.post(f"{s.url}/api/events/book", json=body, headers=headers, timeout=0.5)

        def release():
            holder.rollback()
            holder.exec_driver_sql("UNLOCK TABLES")

        threading.Timer(0.5, release).start()
        time.sleep(1.5)
        retried = httpx.post(f"{s.url}/api/events/book", json=body, headers=headers, timeout=30)
        holder.close()
        engine.dispose()
        assert retried.status_code == 201, retried.text
        assert retried.json() == {
            "status": "booked",
            "eventId": event_id,
            "userId": 42,
            "tickets": 1,
        }
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert check_invariants(mysql_database_url)[event_id].booked == [42]


def test_after_kill_9_every_keyed_booking_retried_gets_its_first_answer(
    mysql_database_url, tmp_path, lock_mode
):
    """The whole server is SIGKILLed mid-storm: some bookings committed without their
    answer reaching the client. A new server, the same keys: every retry is 201 with the
    answer the first try would have had, and each user holds one ticket or one place."""
    wipe(mysql_database_url)
    users = list(range(1, 601))
    with server(mysql_database_url, tmp_path, lock_mode) as first:
        event_id = initialize(first.url, "Killed", 200)
        master = first.process.pid

        def kill_when(result, answered):
            if answered == 250:
                for pid in worker_pids(master):
                    os.kill(pid, signal.SIGKILL)
                os.kill(master, signal.SIGKILL)

        storm = run_storm(
            first.url, [keyed_book(event_id, u) for u in users], 64, 10, on_result=kill_when
        )
    lost = [r for r in storm.results if r.kind == TRANSPORT_ERROR]
    assert lost, "the kill came after every answer"
    answered = {r.call.tag: r.body for r in storm.results if r.status == 201}
    with server(mysql_database_url, tmp_path, lock_mode) as second:
        retry = run_storm(second.url, [keyed_book(event_id, u) for u in users], 64)
    assert retry.statuses() == {201: 600}, retry.summary()
    for result in retry.results:
        if result.call.tag in answered:  # the first answer, whatever came since
            assert result.body == answered[result.call.tag]
    truth = check_invariants(mysql_database_url)[event_id]
    assert len(truth.booked) == 200 and len(truth.waiting) == 400
    booked = {r.call.tag for r in retry.results if r.body["status"] == "booked"}
    assert booked == set(truth.booked)
    positions = sorted(r.body["position"] for r in retry.results if r.body["status"] != "booked")
    assert positions == list(range(1, 401))
    print(
        f"\n[kill -9, {lock_mode} lock] {len(answered)} answered before the kill,"
        f" {len(lost)} lost; retried: {retry.summary()}"
    )
