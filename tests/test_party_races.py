"""Parties racing through real gunicorn workers on the real MariaDB.

2,000 parties of 1-6 tickets book 300 tickets at once (64 in flight, 4 worker
processes), then 100 parties give back random parts of their tickets or places at once
(every party that booked, and waiting ones to make up the hundred); in offer mode the
parties offered tickets then claim random parts of them at once. After each storm every
invariant holds (tests/invariants.py: no idle fit,
whole parties, the journal replayed against the rule and through the reference
model in commit order), and every answer says what its journal fact says.
"""

import json
import random

import pytest
import sqlalchemy as sa

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .invariants import check_invariants
from .servers import Gunicorn
from .storm import Call, run_storm
from .test_concurrency import IN_FLIGHT, WORKERS, server_settings, unexpected

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
TICKETS, PARTIES, CANCELS = 300, 2000, 100


def facts_by_user(database_url: str, event_id: int, type_: str) -> dict[int, dict]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT user_id, data FROM journal_entries WHERE event_id = :e AND type = :t"),
            {"e": event_id, "t": type_},
        ).all()
    engine.dispose()
    return {user: json.loads(data) for user, data in rows}


def served(answer: dict) -> tuple[list, list]:
    return answer["promotedUserIds"], answer["offeredUserIds"]


@pytest.mark.parametrize("lock_mode, mode", [("table", "auto"), ("row", "offer")])
def test_2000_parties_of_1_to_6_race_for_300_tickets(mysql_database_url, tmp_path, lock_mode, mode):
    wipe(mysql_database_url)
    rng = random.Random(2000)
    users = rng.sample(range(1, 1_000_000), PARTIES)
    party = {user: rng.randint(1, 6) for user in users}
    with Gunicorn(
        mysql_database_url, ADMIN_PASSWORD, workers=WORKERS, **server_settings(tmp_path, lock_mode)
    ) as server:
        import httpx

        created = httpx.post(
            f"{server.url}/api/events/initialize",
            json={"eventName": "Parties", "totalTickets": TICKETS, "maxTicketsPerBooking": 6,
                  "waitlistMode": mode},
            headers=ADMIN,
            timeout=30,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        event_id = created.json()["eventId"]

        booking = run_storm(
            server.url,
            [
                Call(
                    "POST",
                    "/api/events/book",
                    {"userId": u, "eventId": event_id, "tickets": party[u]},
                )
                for u in users
            ],
            concurrency=IN_FLIGHT,
        )
        assert booking.statuses() == {201: PARTIES}, unexpected(booking, {201})[:10]
        booked, positions = {}, []
        for result in booking.results:
            body, user = result.body, result.call.json["userId"]
            assert body["tickets"] == party[user], body
            if body["status"] == "booked":
                booked[user] = party[user]
            else:
                positions.append(body["position"])
        # Nobody leaves the line while only bookings come: its places are 1..n.
        assert sorted(positions) == list(range(1, len(positions) + 1))
        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
        assert truth.booked_tickets == booked
        assert sum(booked.values()) + truth.available == TICKETS

        waiting = [user for user in users if user not in booked]
        cancelling = [*booked, *rng.sample(waiting, CANCELS - len(booked))]
        rng.shuffle(cancelling)
        given = {user: rng.randint(1, party[user]) for user in cancelling}
        cancels = run_storm(
            server.url,
            [
                Call(
                    "POST",
                    "/api/events/cancel",
                    {"userId": u, "eventId": event_id, "tickets": given[u]},
                )
                for u in cancelling
            ],
            concurrency=IN_FLIGHT,
        )
        facts = {}
        for type_ in ("booking.cancelled", "waitlist.left", "waitlist.reduced", "offer.declined"):
            facts |= {
                (type_, u): data
                for u, data in facts_by_user(mysql_database_url, event_id, type_).items()
            }
        offered_before = facts_by_user(mysql_database_url, event_id, "offer.created")
        helped = 0
        for result in cancels.results:
            body, user = result.body, result.call.json["userId"]
            if result.status == 409:
                # Offered its tickets by an earlier cancel of the storm: an offer is
                # declined whole, and this one asked for part of it.
                assert body["type"].endswith("too-many-tickets") and user in offered_before
                assert given[user] != party[user]
                continue
            assert result.status == 200, body
            # A waiting party may have been served by a cancel that committed before its own.
            fact = {"cancelled": "booking.cancelled", "declined_offer": "offer.declined"}.get(
                body["status"],
                "waitlist.left" if body["remainingTickets"] == 0 else "waitlist.reduced",
            )
            if user in booked:
                assert body["status"] == "cancelled"
            assert (body["tickets"], body["remainingTickets"]) == (
                given[user],
                party[user] - given[user],
            ), body
            assert served(body) == served(facts[(fact, user)]), (body, facts[(fact, user)])
            helped += len(body["promotedUserIds"]) + len(body["offeredUserIds"])
        assert helped > 0, "the freed tickets served nobody: the storm proves little"
        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
        print(
            f"\n{PARTIES} parties ({lock_mode} lock, {mode}): {len(booked)} booked, "
            f"{len(positions)} waited; {CANCELS} cancels served {helped} parties; "
            f"{truth.available} free, held back {truth.held_back_tickets}"
        )
        if mode != "offer":
            return

        offered = dict(truth.offer_tickets)
        claiming = {user: rng.randint(1, tickets) for user, tickets in offered.items()}
        claims = run_storm(
            server.url,
            [
                Call("POST", "/api/events/claim", {"userId": u, "eventId": event_id, "tickets": k})
                for u, k in claiming.items()
            ],
            concurrency=IN_FLIGHT,
        )
        assert claims.statuses() == {201: len(claiming)}, unexpected(claims, {201})[:10]
        facts = facts_by_user(mysql_database_url, event_id, "offer.claimed")
        for result in claims.results:
            body, user = result.body, result.call.json["userId"]
            assert (body["tickets"], body["releasedTickets"]) == (
                claiming[user],
                offered[user] - claiming[user],
            )
            assert served(body) == served(facts[user])
        truth = check_invariants(mysql_database_url, server.url, ADMIN, 2 * WORKERS)[event_id]
        assert all(truth.booked_tickets[u] == k for u, k in claiming.items())
