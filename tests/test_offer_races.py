"""Offers under concurrency, through real gunicorn on MariaDB, in both lock modes.

Time is moved, not waited for: an offer lapses when the test moves its expiry
into the past in the database (test_offers.pass_time), or sets it a moment
ahead of the database's clock to race a claim against it.
"""

import random
import signal
import time
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .invariants import check_invariants
from .receivers import WorkerProcess
from .servers import Gunicorn
from .storm import Call, run_storm
from .test_offers import pass_time

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
IN_FLIGHT = 64


@pytest.fixture
def server(mysql_database_url, tmp_path, lock_mode):
    wipe(mysql_database_url)
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=4,
        BOOKING_LOCK=lock_mode,
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
    ) as running:
        yield running


def offer_event(url: str, total: int, ttl: int = 3600) -> int:
    body = {"eventName": "Offers", "totalTickets": total, "waitlistMode": "offer"}
    response = httpx.post(
        f"{url}/api/events/initialize", json={**body, "offerTtlSeconds": ttl}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    return response.json()["eventId"]


def calls(path: str, event_id: int, users) -> list[Call]:
    return [
        Call("POST", f"/api/events/{path}", {"userId": u, "eventId": event_id}, tag=u)
        for u in users
    ]


def offered_users(database_url: str, event_id: int) -> list[int]:
    """Live offers in line order."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        found = (
            conn.execute(
                sa.text("SELECT user_id FROM offers WHERE event_id = :e ORDER BY seq"),
                {"e": event_id},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    return list(found)


def offer_outcomes(database_url: str, event_id: int) -> dict[int, Counter]:
    """Per user, how their offers ended, from the journal."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT user_id, type FROM journal_entries WHERE event_id = :e"
                " AND type IN ('offer.created', 'offer.claimed', 'offer.declined', 'offer.expired')"
            ),
            {"e": event_id},
        ).all()
    engine.dispose()
    found: dict[int, Counter] = {}
    for user, type_ in rows:
        found.setdefault(user, Counter())[type_] += 1
    return found


def line_after_bookings(url: str, event_id: int, users: list[int]) -> list[int]:
    storm = run_storm(url, calls("book", event_id, users), concurrency=IN_FLIGHT)
    assert storm.statuses() == {201: len(users)}, storm.statuses()
    response = httpx.get(f"{url}/api/events/{event_id}/waiting-list", headers=ADMIN)
    return response.json()["userIds"]


def free_all(url: str, event_id: int, users: list[int], line: list[int]) -> None:
    """Everyone booked cancels at once: their tickets are offered to the head of the line."""
    booked = sorted(set(users) - set(line))
    storm = run_storm(url, calls("cancel", event_id, booked), concurrency=IN_FLIGHT)
    assert storm.statuses() == {200: len(booked)}, storm.statuses()
    assert offered_users_of(storm) == sorted(line[: len(booked)])


def offered_users_of(storm) -> list[int]:
    return sorted(r.body["offeredUserId"] for r in storm.results)


def test_offers_go_in_line_order_and_lapsed_ones_pass_on(server, mysql_database_url, tmp_path):
    rng = random.Random(12)
    users = rng.sample(range(1, 1_000_000), 1000)
    event_id = offer_event(server.url, 100)
    line = line_after_bookings(server.url, event_id, users)
    booked = sorted(set(users) - set(line))
    assert len(line) == 900

    cancelling = run_storm(
        server.url, calls("cancel", event_id, rng.sample(booked, 50)), concurrency=IN_FLIGHT
    )
    assert cancelling.statuses() == {200: 50}
    offered = sorted(r.body["offeredUserId"] for r in cancelling.results)
    assert all(r.body["promotedUserId"] is None for r in cancelling.results)
    assert offered == sorted(line[:50])
    assert offered_users(mysql_database_url, event_id) == line[:50]

    # 20 of them lapse; all 50 claim at once, with a worker settling meanwhile.
    lapsing = rng.sample(line[:50], 20)
    pass_time(mysql_database_url, users=set(lapsing))
    with WorkerProcess(mysql_database_url, tmp_path / "worker.log"):
        claims = run_storm(server.url, calls("claim", event_id, line[:50]), concurrency=IN_FLIGHT)
        by_user = {r.call.tag: r for r in claims.results}
        for user in line[:50]:
            if user in lapsing:
                assert by_user[user].status == 409, by_user[user].body
                assert "lapsed" in by_user[user].body["detail"]
            else:
                assert by_user[user].status == 201, by_user[user].body
        # The lapsed offers went to the next 20 in line, in order.
        deadline = time.monotonic() + 20
        while offered_users(mysql_database_url, event_id) != line[50:70]:
            assert time.monotonic() < deadline, offered_users(mysql_database_url, event_id)
            time.sleep(0.05)
    outcomes = offer_outcomes(mysql_database_url, event_id)
    for user in line[:50]:
        ended = "offer.expired" if user in lapsing else "offer.claimed"
        assert outcomes[user] == Counter({"offer.created": 1, ended: 1}), (user, outcomes[user])
    truth = check_invariants(mysql_database_url, server.url, ADMIN)[event_id]
    assert (len(truth.booked), len(truth.offered), truth.available) == (80, 20, 0)
    assert truth.waiting == line[70:]


def test_a_claim_racing_its_own_expiry_has_one_outcome(server, mysql_database_url, tmp_path):
    event_id = offer_event(server.url, 40)
    users = list(range(1, 81))
    line = line_after_bookings(server.url, event_id, users)
    free_all(server.url, event_id, users, line)
    holders = line[:40]
    engine = sa.create_engine(mysql_database_url)
    with engine.begin() as conn:  # every offer ends 0-300 ms from now, by the database's clock
        for i, user in enumerate(holders):
            conn.execute(
                sa.text(
                    "UPDATE offers SET expires_at = UTC_TIMESTAMP(6) + INTERVAL :ms MICROSECOND"
                    " WHERE event_id = :e AND user_id = :u"
                ),
                {"ms": (i % 10) * 30_000, "e": event_id, "u": user},
            )
    engine.dispose()
    with WorkerProcess(mysql_database_url, tmp_path / "worker.log"):
        claims = run_storm(server.url, calls("claim", event_id, holders), concurrency=8)
        time.sleep(1.0)  # every offer is past its time: the worker settles the rest
    statuses = {r.call.tag: r.status for r in claims.results}
    assert set(statuses.values()) <= {201, 409}, claims.statuses()
    outcomes = offer_outcomes(mysql_database_url, event_id)
    for user in holders:
        ended = "offer.claimed" if statuses[user] == 201 else "offer.expired"
        assert outcomes[user]["offer.claimed"] + outcomes[user]["offer.expired"] == 1, outcomes[
            user
        ]
        assert outcomes[user][ended] == 1, (user, statuses[user], outcomes[user])
    check_invariants(mysql_database_url, server.url, ADMIN)
    print(f"\n[offers] claims racing expiry: {Counter(statuses.values())}")


def test_a_decline_racing_a_claim_has_one_outcome(server, mysql_database_url):
    event_id = offer_event(server.url, 30)
    line = line_after_bookings(server.url, event_id, list(range(1, 61)))
    free_all(server.url, event_id, list(range(1, 61)), line)
    holders = line[:30]
    both = [
        c
        for user in holders
        for c in (*calls("claim", event_id, [user]), *calls("cancel", event_id, [user]))
    ]
    storm = run_storm(server.url, both, concurrency=IN_FLIGHT)
    answers: dict[int, dict] = {}
    for r in storm.results:
        answers.setdefault(r.call.tag, {})[r.call.path.rsplit("/", 1)[1]] = r
    outcomes = offer_outcomes(mysql_database_url, event_id)
    for user in holders:
        claim, cancel = answers[user]["claim"], answers[user]["cancel"]
        if claim.status == 201:  # claimed first: the cancel gave the ticket back
            assert cancel.body["status"] == "cancelled", cancel.body
            assert outcomes[user]["offer.claimed"] == 1 and outcomes[user]["offer.declined"] == 0
        else:  # declined first: nothing left to claim
            assert claim.status == 409 and cancel.body["status"] == "declined_offer"
            assert outcomes[user]["offer.declined"] == 1 and outcomes[user]["offer.claimed"] == 0
    check_invariants(mysql_database_url, server.url, ADMIN)


def test_a_killed_worker_settles_lapsed_offers_once(server, mysql_database_url, tmp_path):
    events = [offer_event(server.url, 5) for _ in range(6)]
    lines = {}
    for event_id in events:
        lines[event_id] = line_after_bookings(server.url, event_id, list(range(1, 21)))
        free_all(server.url, event_id, list(range(1, 21)), lines[event_id])
    pass_time(mysql_database_url)
    first = WorkerProcess(mysql_database_url, tmp_path / "w1.log").start()
    time.sleep(0.3)
    first.stop(signal.SIGKILL)
    with WorkerProcess(mysql_database_url, tmp_path / "w2.log"):
        deadline = time.monotonic() + 30
        while any(offered_users(mysql_database_url, e) != lines[e][5:10] for e in events):
            assert time.monotonic() < deadline, [
                offered_users(mysql_database_url, e) for e in events
            ]
            time.sleep(0.05)
    for event_id in events:
        outcomes = offer_outcomes(mysql_database_url, event_id)
        for user in lines[event_id][:5]:  # the first offers: each lapsed exactly once
            assert outcomes[user] == Counter({"offer.created": 1, "offer.expired": 1}), outcomes[
                user
            ]
    check_invariants(mysql_database_url, server.url, ADMIN)
