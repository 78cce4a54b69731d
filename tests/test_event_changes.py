"""Admin changes to a live event through real gunicorn on MariaDB, in both lock modes:
more tickets while people book and cancel, and sales closed under a booking storm."""

import random
import threading

import httpx
import pytest

from .conftest import ADMIN_PASSWORD, basic_auth, initialize, wipe
from .invariants import check_invariants
from .servers import Gunicorn
from .storm import Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)


def server(database_url, tmp_path, lock_mode) -> Gunicorn:
    return Gunicorn(
        database_url,
        ADMIN_PASSWORD,
        workers=2,
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
        BOOKING_LOCK=lock_mode,
    )


def book(event_id, user):
    return Call("POST", "/api/events/book", {"userId": user, "eventId": event_id}, tag=user)


def cancel(event_id, user):
    return Call("POST", "/api/events/cancel", {"userId": user, "eventId": event_id}, tag=user)


def line_of(url, event_id) -> list[int]:
    response = httpx.get(f"{url}/api/events/{event_id}/waiting-list", headers=ADMIN, timeout=30)
    return response.json()["userIds"]


def test_more_tickets_amid_bookings_and_cancellations_go_to_the_head_in_order(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    rng = random.Random(10)
    with server(mysql_database_url, tmp_path, lock_mode) as s:
        event_id = initialize(s.url, "Growing", 100)
        first = run_storm(s.url, [book(event_id, u) for u in range(1, 301)], concurrency=64)
        assert first.statuses() == {201: 300}
        line = line_of(s.url, event_id)
        booked = [r.call.tag for r in first.results if r.body["status"] == "booked"]
        leaving = rng.sample(booked, 20)
        calls = [book(event_id, u) for u in range(1001, 1051)] + [
            cancel(event_id, u) for u in leaving
        ]
        rng.shuffle(calls)
        raise_to = Call("PATCH", f"/api/events/{event_id}", {"totalTickets": 150}, ADMIN)
        calls.insert(35, raise_to)
        storm = run_storm(s.url, calls, concurrency=32)

        assert storm.statuses() == {201: 50, 200: 21}, storm.summary()
        patched = next(r for r in storm.results if r.call is raise_to).body
        promoted = patched["promotedUserIds"]
        assert len(promoted) == 50 and patched["totalTickets"] == 150
        # The change promoted a run of the line in its order; with the cancellations'
        # promotions, exactly the first 70 of the line got tickets.
        start = line.index(promoted[0])
        assert promoted == line[start : start + 50]
        by_cancel = [
            r.body["promotedUserId"] for r in storm.results if r.call.path.endswith("cancel")
        ]
        assert sorted(promoted + by_cancel) == sorted(line[:70])
        truth = check_invariants(mysql_database_url, s.url, ADMIN)[event_id]
        assert truth.total == 150 and truth.available == 0
        assert set(truth.booked) == (set(booked) - set(leaving)) | set(line[:70])
        assert truth.waiting[:130] == line[70:] and len(truth.waiting) == 180


def test_closed_sales_let_nobody_in_and_cancellations_still_promote(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    with server(mysql_database_url, tmp_path, lock_mode) as s:
        event_id = initialize(s.url, "Closing", 50)
        opening = run_storm(s.url, [book(event_id, u) for u in range(1, 401)], concurrency=64)
        assert opening.statuses() == {201: 400}
        close = Call("PATCH", f"/api/events/{event_id}", {"salesOpen": False}, ADMIN)
        # Close in the middle of a storm: what was answered 201 is in the database,
        # everything else changed nothing.
        calls = [book(event_id, u) for u in range(1001, 1301)]
        calls.insert(100, close)
        storm = run_storm(s.url, calls, concurrency=64)
        assert storm.statuses()[200] == 1
        admitted = {r.call.tag for r in storm.results if r.status == 201}
        refused = [r for r in storm.results if r.status == 409]
        assert all(r.body["type"].endswith("sales-closed") for r in refused)
        assert len(admitted) + len(refused) == 300
        truth = check_invariants(mysql_database_url, s.url, ADMIN)[event_id]
        assert set(truth.waiting) >= admitted
        assert len(truth.waiting) == 350 + len(admitted)
        line = line_of(s.url, event_id)

        after = run_storm(s.url, [book(event_id, u) for u in range(2001, 2301)], concurrency=64)
        assert after.outcomes() == {"sales-closed": 300}
        holders = sorted(truth.booked)[:10]
        leaving = run_storm(s.url, [cancel(event_id, u) for u in holders], concurrency=10)
        promoted = sorted(r.body["promotedUserId"] for r in leaving.results)
        assert promoted == sorted(line[:10])
        truth = check_invariants(mysql_database_url, s.url, ADMIN)[event_id]
        assert truth.sales_open is False
        assert truth.waiting == line[10:]
        assert not set(truth.waiting) & set(range(2001, 2301))


def test_paging_visits_every_event_once_while_events_are_created(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    with server(mysql_database_url, tmp_path, lock_mode) as s:
        before = [initialize(s.url, f"before {i}", 1) for i in range(60)]
        created = []

        def create_more():
            created.extend(initialize(s.url, f"during {i}", 1) for i in range(60))

        creator = threading.Thread(target=create_more)
        creator.start()
        seen, cursor = [], None
        with httpx.Client(base_url=s.url, timeout=30) as http:
            while True:
                query = {"limit": 7, **({"cursor": cursor} if cursor else {})}
                page = http.get("/api/events", params=query).json()
                seen += [event["eventId"] for event in page["events"]]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
        creator.join(60)
    assert len(seen) == len(set(seen)), "an event was listed twice"
    assert seen == sorted(seen)
    assert set(before) <= set(seen)
    assert set(seen) <= set(before) | set(created)
