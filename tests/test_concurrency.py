"""Many clients at once against real gunicorn workers on the real MariaDB.

Each test starts `gunicorn -c gunicorn.conf.py wsgi:app` with 4 worker
processes, fires requests with up to 64 in flight, then checks every answer and
the database itself (tests/invariants.py). Each prints one summary line.
"""

import random
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, initialize, wipe
from .invariants import check_invariants
from .receivers import Receiver, WorkerProcess, verified
from .servers import Gunicorn
from .storm import Call, run_storm

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
IN_FLIGHT = 64
WORKERS = 4


def server_settings(tmp_path, lock_mode: str) -> dict:
    # Keep the per-request log lines out of the test output and the repository.
    return {
        "LOG_FILE": str(tmp_path / "booking.log"),
        "LOG_LEVEL": "WARNING",
        "BOOKING_LOCK": lock_mode,
    }


def status(url: str, event_id: int) -> dict:
    response = httpx.get(f"{url}/api/events/status/{event_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def waiting_lists(url: str, event_id: int, reads: int = 2 * WORKERS) -> list[list[int]]:
    """The admin waiting list, read several times so that several workers answer."""
    found = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(reads):
            response = client.get(f"/api/events/{event_id}/waiting-list", headers=ADMIN)
            assert response.status_code == 200, response.text
            assert response.json()["eventId"] == event_id
            found.append(response.json()["userIds"])
    return found


def unexpected(storm, allowed) -> list:
    """The answers outside `allowed`: (request body, status, answer or error)."""
    found = [r for r in storm.results if r.kind not in allowed]
    return [(r.call.json, r.kind, r.body or r.error) for r in found]


def journal_counts(database_url: str, event_id: int) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT type, COUNT(*) FROM journal_entries WHERE event_id = :e GROUP BY type"),
            {"e": event_id},
        )
        counts = dict(rows.all())
    engine.dispose()
    return counts


def test_1000_users_race_for_100_tickets(mysql_database_url, tmp_path, lock_mode):
    """...and a webhook for booking.promoted, delivered by a running worker, hears of
    exactly the 50 users the cancellations promoted."""
    wipe(mysql_database_url)
    started = time.perf_counter()
    rng = random.Random(100)
    users = rng.sample(range(1, 1_000_000), 1000)
    settings = server_settings(tmp_path, lock_mode)
    with (
        Gunicorn(
            mysql_database_url,
            ADMIN_PASSWORD,
            workers=WORKERS,
            WEBHOOK_ALLOW_PRIVATE="true",
            **settings,
        ) as server,
        Receiver() as receiver,
        WorkerProcess(mysql_database_url, tmp_path / "worker.log", **settings),
    ):
        hook = httpx.post(
            f"{server.url}/api/webhooks",
            json={"url": receiver.url, "eventTypes": ["booking.promoted"]},
            headers=ADMIN,
        )
        assert hook.status_code == 201, hook.text
        event_id = initialize(server.url, "Hundred seats", 100)

        booking = run_storm(
            server.url,
            [Call("POST", "/api/events/book", {"userId": u, "eventId": event_id}) for u in users],
            concurrency=IN_FLIGHT,
        )

        assert booking.statuses() == {201: 1000}, unexpected(booking, {201})[:10]
        booked, position_of = set(), {}
        for result in booking.results:
            user = result.call.json["userId"]
            body = result.body
            assert (body["eventId"], body["userId"]) == (event_id, user), body
            if body["status"] == "booked":
                assert body == {
                    "status": "booked",
                    "eventId": event_id,
                    "userId": user,
                    "tickets": 1,
                }
                booked.add(user)
            else:
                assert body["status"] == "waitlisted", body
                assert set(body) == {"status", "eventId", "userId", "tickets", "position"}, body
                assert body["tickets"] == 1, body
                position_of[user] = body["position"]
        assert len(booked) == 100
        assert len(position_of) == 900
        assert sorted(position_of.values()) == list(range(1, 901))
        assert status(server.url, event_id) == {
            "eventId": event_id,
            "eventName": "Hundred seats",
            "totalTickets": 100,
            "availableTickets": 0,
            "waitingListCount": 900,
            "salesOpen": True,
            "waitlistMode": "auto",
            "offerTtlSeconds": 3600,
            "offeredTickets": 0,
            "maxTicketsPerBooking": 10,
            "maxOvertakes": 3,
            "waitingTickets": 900,
            "holdTtlSeconds": 0,
            "heldTickets": 0,
            "salesOpenAt": None,
            "queueing": False,
            "queuedCount": 0,
            "queuedTickets": 0,
        }
        line = waiting_lists(server.url, event_id)[0]
        assert len(line) == 900
        assert len(set(line)) == 900
        assert set(line) == set(position_of)
        assert all(line[p - 1] == user for user, p in position_of.items())
        assert all(other == line for other in waiting_lists(server.url, event_id))
        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
        assert set(truth.booked) == booked
        assert truth.waiting == line

        cancelling_users = rng.sample(sorted(booked), 50)
        cancelling = run_storm(
            server.url,
            [
                Call("POST", "/api/events/cancel", {"userId": u, "eventId": event_id})
                for u in cancelling_users
            ],
            concurrency=IN_FLIGHT,
        )

        assert cancelling.statuses() == {200: 50}, unexpected(cancelling, {200})[:10]
        promoted = []
        for result in cancelling.results:
            body = result.body
            assert body["status"] == "cancelled", body
            assert (body["eventId"], body["userId"]) == (event_id, result.call.json["userId"])
            assert isinstance(body["promotedUserId"], int), body
            assert body == {
                "status": "cancelled",
                "eventId": event_id,
                "userId": result.call.json["userId"],
                "tickets": 1,
                "remainingTickets": 0,
                "promotedUserIds": [body["promotedUserId"]],
                "offeredUserIds": [],
                "promotedUserId": body["promotedUserId"],
                "offeredUserId": None,
            }
            promoted.append(body["promotedUserId"])
        assert len(set(promoted)) == 50, Counter(promoted).most_common(3)
        assert set(promoted) == set(line[:50])
        after = status(server.url, event_id)
        assert (after["availableTickets"], after["waitingListCount"]) == (0, 850)
        assert all(now == line[50:] for now in waiting_lists(server.url, event_id))
        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
        assert set(truth.booked) == (booked - set(cancelling_users)) | set(promoted)
        assert truth.waiting == line[50:]

        # One journal entry per committed fact, counted against what the storm did.
        assert journal_counts(mysql_database_url, event_id) == {
            "event.created": 1,
            "booking.booked": 100,
            "waitlist.joined": 900,
            "booking.cancelled": 50,
            "booking.promoted": 50,
        }
        arrived = receiver.wait_for(50)
        time.sleep(0.5)  # a 51st would be a duplicate
        payloads = [verified(r, hook.json()["secret"]) for r in receiver.received]
        assert [p["type"] for p in payloads] == ["booking.promoted"] * 50
        assert sorted(p["data"]["userId"] for p in payloads) == sorted(promoted)
        ids = [int(r.webhook_id) for r in arrived]
        assert ids == sorted(ids) and len(set(ids)) == 50
        history = httpx.get(
            f"{server.url}/api/events/{event_id}/history", params={"limit": 100}, headers=ADMIN
        )
        assert history.json()["entries"][0]["type"] == "event.created"

    print(
        f"\n[concurrency, {lock_mode} lock] 1000 users, 100 tickets, {WORKERS} workers:"
        f" book {booking.summary()} | cancel {cancelling.summary()}"
        f" | test wall={time.perf_counter() - started:.2f}s"
    )


def test_the_same_user_booking_twice_at_once_gets_one_place(
    mysql_database_url, tmp_path, lock_mode
):
    """Each user sends the same booking twice at the same moment, on two workers.

    The second must see the first's committed booking and answer 409; had it read
    a snapshot from before its lock wait, it would book again or join the line
    while holding a ticket.
    """
    wipe(mysql_database_url)
    users = list(range(5001, 5301))  # 300 users, 100 tickets: both paths race
    with Gunicorn(
        mysql_database_url, ADMIN_PASSWORD, workers=WORKERS, **server_settings(tmp_path, lock_mode)
    ) as server:
        event_id = initialize(server.url, "Twice at once", 100)
        body = lambda user: {"userId": user, "eventId": event_id}  # noqa: E731
        calls = [Call("POST", "/api/events/book", body(u), tag=u) for u in users for _ in (1, 2)]
        storm = run_storm(server.url, calls, concurrency=IN_FLIGHT)
        check_invariants(mysql_database_url, server.url, ADMIN)
    by_user: dict[int, list[int]] = {}
    for result in storm.results:
        by_user.setdefault(result.call.tag, []).append(result.status)
    assert all(sorted(statuses) == [201, 409] for statuses in by_user.values()), [
        (user, statuses) for user, statuses in by_user.items() if sorted(statuses) != [201, 409]
    ][:10]
    print(
        f"\n[concurrency, {lock_mode} lock] 300 users each booking twice at once: {storm.summary()}"
    )


def test_mixed_storm_of_books_and_cancels_keeps_every_invariant(
    mysql_database_url, tmp_path, lock_mode
):
    wipe(mysql_database_url)
    started = time.perf_counter()
    rng = random.Random(20240601)
    totals = (0, 1, 7, 20, 50)
    pool = list(range(1, 81))  # 80 users, so repeats and strangers are common
    requests = 4000
    with Gunicorn(
        mysql_database_url, ADMIN_PASSWORD, workers=WORKERS, **server_settings(tmp_path, lock_mode)
    ) as server:
        event_ids = [initialize(server.url, f"Mixed {total}", total) for total in totals]
        calls = []
        for _ in range(requests):
            body = {"userId": rng.choice(pool), "eventId": rng.choice(event_ids)}
            action = "book" if rng.random() < 0.55 else "cancel"
            calls.append(Call("POST", f"/api/events/{action}", body, tag=action))

        storm = run_storm(server.url, calls, concurrency=IN_FLIGHT)

        assert not storm.errors(), [(r.kind, r.body or r.error) for r in storm.errors()][:10]
        assert set(storm.statuses()) <= {200, 201, 404, 409}, unexpected(
            storm, {200, 201, 404, 409}
        )[:10]
        expected = {
            ("book", 201): {"booked", "waitlisted"},
            ("book", 409): {"already-booked", "already-waiting"},
            ("cancel", 200): {"cancelled", "left_waiting_list"},
            ("cancel", 404): {"nothing-to-cancel"},
        }
        outcomes = storm.outcomes()
        for result in storm.results:
            key = (result.call.tag, result.status)
            assert key in expected, (key, result.body)
            said = result.body.get("status")
            said = said if isinstance(said, str) else result.body["type"].rsplit(":", 1)[-1]
            assert said in expected[key], (key, result.body)
        # The storm reached every path, not just the easy ones.
        for outcome in (
            "booked",
            "waitlisted",
            "cancelled",
            "left_waiting_list",
            "already-booked",
            "already-waiting",
            "nothing-to-cancel",
        ):
            assert outcomes[outcome] > 0, outcome
        promotions = sum(
            1 for r in storm.results if r.status == 200 and r.body.get("promotedUserId")
        )
        assert promotions > 0

        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)
        assert set(truth) == set(event_ids)
        # Whatever order the server serialised them in, every acknowledged change
        # must be in the database, and nothing else: per (event, user), bookings
        # minus cancellations (promotions count as bookings) is 0 or 1 and says
        # whether the user holds a ticket now; likewise for the waiting list.
        holds, waits = Counter(), Counter()
        for result in storm.results:
            key = (result.call.json["eventId"], result.call.json["userId"])
            said = result.body.get("status") if result.status in (200, 201) else None
            if said == "booked":
                holds[key] += 1
            elif said == "waitlisted":
                waits[key] += 1
            elif said == "cancelled":
                holds[key] -= 1
                if (promoted := result.body["promotedUserId"]) is not None:
                    holds[key[0], promoted] += 1
                    waits[key[0], promoted] -= 1
            elif said == "left_waiting_list":
                waits[key] -= 1
        for event_id in event_ids:
            for user in pool:
                key = (event_id, user)
                assert holds[key] == (user in truth[event_id].booked), (key, holds[key])
                assert waits[key] == (user in truth[event_id].waiting), (key, waits[key])
        for event_id, total in zip(event_ids, totals, strict=True):
            event = truth[event_id]
            assert event.total == total
            # 80 users churn through each event: the bigger ones must still have sold out.
            assert len(event.booked) == total or not event.waiting

        # Every user's own view agrees with the database, on whichever worker answers.
        views = run_storm(
            server.url,
            [
                Call("GET", f"/api/events/{e}/users/{u}", tag=(e, u))
                for e in event_ids
                for u in pool
            ],
            concurrency=IN_FLIGHT,
        )
        assert views.statuses() == {200: len(event_ids) * len(pool)}
        for result in views.results:
            event_id, user = result.call.tag
            event = truth[event_id]
            if user in event.booked:
                want = {"status": "booked", "tickets": 1}
            elif user in event.waiting:
                position = event.waiting.index(user) + 1
                # Every party is one ticket: a party that does not fit stops the line.
                want = {"status": "waitlisted", "tickets": 1, "position": position, "overtakes": 0}
            else:
                want = {"status": "none"}
            assert result.body == {"eventId": event_id, "userId": user, **want}

    per_event = ", ".join(
        f"{truth[e].total}t:{len(truth[e].booked)}b/{len(truth[e].waiting)}w" for e in event_ids
    )
    print(
        f"\n[concurrency, {lock_mode} lock] mixed storm over {len(totals)} events,"
        f" {len(pool)} users,"
        f" {WORKERS} workers: {storm.summary()} promotions={promotions}"
        f" final(total:booked/waiting)=[{per_event}]"
        f" | user-state reads {len(views.results)} in {views.wall:.2f}s"
        f" | test wall={time.perf_counter() - started:.2f}s"
    )
