"""Checkout holds: tickets held while the buyer pays, released by themselves when the buyer
walks away. The contract of issue 21 through the Flask test client, on SQLite and on
MariaDB in both lock modes.

Time is moved, not waited for: the service reads the database's clock through a seam
(booking/sales/clock.py) that `later()` moves forward.
"""

from datetime import timedelta

import pytest

from .invariants import check_invariants
from .test_api import assert_problem, status
from .test_parties import book, cancel, create, facts

TTL = 600


def claim(client, event_id, user, tickets=None):
    body = {"userId": user, "eventId": event_id}
    if tickets is not None:
        body["tickets"] = tickets
    return client.post("/api/events/claim", json=body)


def later(app, seconds):
    """The database's clock, as the service reads it, moves on."""
    app.extensions["booking"].clock.offset += timedelta(seconds=seconds)


@pytest.fixture
def checked(settings):
    yield
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_with_hold_ttl_0_a_booking_books_at_once_as_always(client, admin, checked):
    event_id = create(client, admin, 2)
    assert status(client, event_id)["holdTtlSeconds"] == 0
    assert book(client, event_id, 1).json["status"] == "booked"


def test_a_buyer_served_at_once_gets_a_hold_and_claims_it(client, admin, checked):
    event_id = create(client, admin, 5, holdTtlSeconds=TTL)
    held = book(client, event_id, 1, tickets=3)
    assert held.status_code == 201
    body = held.json
    expires_at = body.pop("holdExpiresAt")
    assert expires_at.endswith("Z")
    assert body == {"status": "held", "eventId": event_id, "userId": 1, "tickets": 3}
    event = status(client, event_id)
    assert (event["availableTickets"], event["heldTickets"]) == (2, 3)
    assert client.get(f"/api/events/{event_id}/users/1").json == {
        "eventId": event_id,
        "userId": 1,
        "status": "held",
        "tickets": 3,
        "holdExpiresAt": expires_at,
    }
    assert client.get("/api/users/1/bookings").json["bookings"] == [
        {
            "eventId": event_id,
            "eventName": "Parties",
            "status": "held",
            "tickets": 3,
            "holdExpiresAt": expires_at,
        }
    ]
    problem = assert_problem(book(client, event_id, 1), 409)
    assert problem["type"] == "urn:booking:problem:already-held"
    assert problem["holdExpiresAt"] == expires_at
    claimed = claim(client, event_id, 1)
    assert claimed.status_code == 201
    assert claimed.json == {
        "status": "booked",
        "eventId": event_id,
        "userId": 1,
        "tickets": 3,
        "releasedTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
    }
    event = status(client, event_id)
    assert (event["availableTickets"], event["heldTickets"]) == (2, 0)
    assert [t for t, _, _ in facts(client, admin, event_id, "hold.created", "hold.claimed")] == [
        "hold.created",
        "hold.claimed",
    ]


def test_claiming_fewer_books_those_and_the_rest_go_to_the_line(client, admin, checked):
    event_id = create(client, admin, 4, holdTtlSeconds=TTL)
    book(client, event_id, 1, tickets=4)
    assert book(client, event_id, 2, tickets=2).json["status"] == "waitlisted"
    answer = claim(client, event_id, 1, tickets=2).json
    assert (answer["tickets"], answer["releasedTickets"], answer["promotedUserIds"]) == (2, 2, [2])
    # A waiting party is served by its own mode (auto: booked), never held.
    assert client.get(f"/api/events/{event_id}/users/2").json["status"] == "booked"


def test_releasing_a_hold_gives_it_back_whole(client, admin, checked):
    event_id = create(client, admin, 3, holdTtlSeconds=TTL, waitlistMode="offer")
    book(client, event_id, 1, tickets=3)
    book(client, event_id, 2, tickets=1)
    problem = assert_problem(cancel(client, event_id, 1, tickets=1), 409)
    assert (problem["type"].rsplit(":", 1)[1], problem["userTickets"]) == ("too-many-tickets", 3)
    response = cancel(client, event_id, 1)
    assert response.json == {
        "status": "released_hold",
        "eventId": event_id,
        "userId": 1,
        "tickets": 3,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [2],
        "promotedUserId": None,
        "offeredUserId": 2,
    }
    assert client.get(f"/api/events/{event_id}/users/2").json["status"] == "offered"


def test_a_hold_lapses_by_the_clock_and_its_tickets_reach_the_line(client, admin, app, checked):
    event_id = create(client, admin, 2, holdTtlSeconds=TTL)
    expires_at = book(client, event_id, 1, tickets=2).json["holdExpiresAt"]
    book(client, event_id, 2, tickets=2)
    later(app, TTL - 1)
    assert status(client, event_id)["heldTickets"] == 2  # not yet
    later(app, 2)
    # Reads do not settle; the next change to the event does, first, under the lock.
    assert status(client, event_id)["heldTickets"] == 2
    problem = assert_problem(claim(client, event_id, 1), 409)
    assert problem["type"] == "urn:booking:problem:no-offer"
    assert expires_at in problem["detail"] and "hold" in problem["detail"]
    event = status(client, event_id)
    assert (event["heldTickets"], event["availableTickets"]) == (0, 0)
    assert client.get(f"/api/events/{event_id}/users/2").json["status"] == "booked"
    expired = facts(client, admin, event_id, "hold.expired")
    assert [(user, data["tickets"], data["promotedUserIds"]) for _, user, data in expired] == [
        (1, 2, [2])
    ]


def test_holds_and_offers_that_lapse_together_are_freed_together_then_allocated_once(
    client, admin, app, checked
):
    event_id = create(
        client, admin, 4, holdTtlSeconds=60, waitlistMode="offer", offerTtlSeconds=60,
        maxOvertakes=0,
    )  # fmt: skip
    book(client, event_id, 1, tickets=2)  # held
    book(client, event_id, 2, tickets=2)  # held
    book(client, event_id, 3, tickets=2)  # waits
    book(client, event_id, 4, tickets=4)  # waits behind
    assert cancel(client, event_id, 1).json["offeredUserIds"] == [3]  # released: offered to 3
    later(app, 61)  # user 2's hold and user 3's offer are both past their time
    client.patch(f"/api/events/{event_id}", json={"eventName": "Later"}, headers=admin)
    lapsed = facts(client, admin, event_id, "hold.expired", "offer.expired")
    assert [(t, u, d["offeredUserIds"]) for t, u, d in lapsed] == [
        ("hold.expired", 2, [4]),  # soonest lapsed first
        ("offer.expired", 3, [4]),
    ]
    # Neither lapse alone frees the 4 tickets user 4 waits for: freed together, they do.
    offered = facts(client, admin, event_id, "offer.created")[-1]
    assert offered[1] == 4 and offered[2]["cause"] == "hold.expired"
    assert offered[2]["causeUserId"] is None
    event = status(client, event_id)
    assert (event["heldTickets"], event["offeredTickets"], event["availableTickets"]) == (0, 4, 0)


def test_capacity_cannot_go_below_booked_offered_and_held(client, admin, checked):
    event_id = create(client, admin, 5, holdTtlSeconds=TTL)
    book(client, event_id, 1, tickets=3)
    response = client.patch(f"/api/events/{event_id}", json={"totalTickets": 2}, headers=admin)
    problem = assert_problem(response, 409)
    assert problem["held"] == 3
    response = client.patch(f"/api/events/{event_id}", json={"holdTtlSeconds": 0}, headers=admin)
    assert response.json["holdTtlSeconds"] == 0
    assert book(client, event_id, 2).json["status"] == "booked"  # the old hold stays


def test_a_keyed_claim_retried_is_the_same_booking(client, admin, checked):
    event_id = create(client, admin, 2, holdTtlSeconds=TTL)
    book(client, event_id, 1, tickets=2)
    key = {"Idempotency-Key": "claim-1"}
    first = client.post("/api/events/claim", json={"userId": 1, "eventId": event_id}, headers=key)
    again = client.post("/api/events/claim", json={"userId": 1, "eventId": event_id}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.data == again.data and again.headers["Idempotent-Replayed"] == "true"
    assert status(client, event_id)["availableTickets"] == 0
