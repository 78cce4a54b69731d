"""Waiting-list offers (waitlistMode "offer"): the contract, through the Flask test client
on SQLite and on MariaDB in both lock modes.

Time is moved, not waited for: `pass_time` moves every live offer's expiry into
the past in the database, as the database's clock passing it would.
"""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from booking.storage.tables import offers

from .invariants import check_invariants
from .test_api import assert_problem, book, cancel, status

NO_OFFER = "urn:booking:problem:no-offer"


def create(client, admin, total, mode="offer", ttl=600, name="Offers"):
    body = {"eventName": name, "totalTickets": total, "waitlistMode": mode, "offerTtlSeconds": ttl}
    response = client.post("/api/events/initialize", json=body, headers=admin)
    assert response.status_code == 201, response.json
    return response.json["eventId"]


def claim(client, event_id, user):
    return client.post("/api/events/claim", json={"userId": user, "eventId": event_id})


def state(client, event_id, user):
    return client.get(f"/api/events/{event_id}/users/{user}").json


def pass_time(database_url, users=None, event_id=None):
    """Every live offer (of `users`, if given) lapses now."""
    engine = sa.create_engine(database_url)
    columns = (offers.c.id, offers.c.user_id, offers.c.event_id, offers.c.expires_at)
    with engine.begin() as conn:
        for offer_id, user, event, expires_at in conn.execute(sa.select(*columns)).all():
            if (users is None or user in users) and event_id in (None, event):
                conn.execute(
                    offers.update().where(offers.c.id == offer_id),
                    {"expires_at": expires_at - timedelta(days=1)},
                )
    engine.dispose()


def history_types(client, admin, event_id):
    page = client.get(f"/api/events/{event_id}/history?limit=100", headers=admin).json
    return [(e["type"], e["userId"]) for e in page["entries"]]


def test_a_freed_ticket_is_offered_to_the_head_of_the_line(client, admin, settings):
    event_id = create(client, admin, total=1)
    for user in (1, 2, 3):
        book(client, event_id, user)
    response = cancel(client, event_id, 1)
    assert response.json == {
        "status": "cancelled",
        "eventId": event_id,
        "userId": 1,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [2],
        "promotedUserId": None,
        "offeredUserId": 2,
    }
    held = state(client, event_id, 2)
    assert held["status"] == "offered" and held["offerExpiresAt"].endswith("Z")
    assert status(client, event_id)["availableTickets"] == 0
    assert status(client, event_id)["offeredTickets"] == 1
    assert status(client, event_id)["waitingListCount"] == 1
    page = client.get("/api/users/2/bookings").json
    assert page["bookings"] == [
        {
            "eventId": event_id,
            "eventName": "Offers",
            "status": "offered",
            "tickets": 1,
            "offerExpiresAt": held["offerExpiresAt"],
        }
    ]
    # Neither booked nor waiting: booking again is refused, with the offer's end.
    refused = book(client, event_id, 2)
    assert_problem(refused, 409)
    assert refused.json["type"] == "urn:booking:problem:already-offered"
    assert refused.json["offerExpiresAt"] == held["offerExpiresAt"]

    claimed = claim(client, event_id, 2)
    assert claimed.status_code == 201
    assert claimed.json == {
        "status": "booked",
        "eventId": event_id,
        "userId": 2,
        "tickets": 1,
        "releasedTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
    }
    assert state(client, event_id, 2)["status"] == "booked"
    assert status(client, event_id)["offeredTickets"] == 0
    again = claim(client, event_id, 2)
    assert_problem(again, 409)
    assert again.json["type"] == NO_OFFER and "holds no offer" in again.json["detail"]
    assert history_types(client, admin, event_id)[-3:] == [
        ("booking.cancelled", 1),
        ("offer.created", 2),
        ("offer.claimed", 2),
    ]
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_declining_passes_the_offer_on(client, admin, settings):
    event_id = create(client, admin, total=1)
    for user in (1, 2, 3):
        book(client, event_id, user)
    cancel(client, event_id, 1)
    response = cancel(client, event_id, 2)
    assert response.status_code == 200
    assert response.json == {
        "status": "declined_offer",
        "eventId": event_id,
        "userId": 2,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [3],
        "promotedUserId": None,
        "offeredUserId": 3,
    }
    assert state(client, event_id, 2)["status"] == "none"
    assert state(client, event_id, 3)["status"] == "offered"
    # The last in line declines: the ticket becomes available.
    assert cancel(client, event_id, 3).json["offeredUserId"] is None
    assert status(client, event_id)["availableTickets"] == 1
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_a_lapsed_offer_passes_on_and_cannot_be_claimed(client, admin, settings):
    url = settings["SQLALCHEMY_DATABASE_URI"]
    event_id = create(client, admin, total=1)
    for user in (1, 2, 3):
        book(client, event_id, user)
    cancel(client, event_id, 1)
    pass_time(url)
    # Nothing has settled it yet: the claim is still refused, and says why.
    refused = claim(client, event_id, 2)
    assert_problem(refused, 409)
    assert refused.json["type"] == NO_OFFER and "lapsed" in refused.json["detail"]
    assert state(client, event_id, 3)["status"] == "offered"  # settled by that change
    assert "lapsed" in claim(client, event_id, 2).json["detail"]  # and later still
    assert history_types(client, admin, event_id)[-2:] == [
        ("offer.expired", 2),
        ("offer.created", 3),
    ]
    check_invariants(url)


def test_claiming_needs_no_open_sales(client, admin, settings):
    event_id = create(client, admin, total=1)
    book(client, event_id, 1)
    book(client, event_id, 2)
    cancel(client, event_id, 1)
    closed = client.patch(f"/api/events/{event_id}", json={"salesOpen": False}, headers=admin)
    assert closed.json["salesOpen"] is False
    assert claim(client, event_id, 2).status_code == 201
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_more_tickets_in_offer_mode_are_offered_in_line_order(client, admin, settings):
    event_id = create(client, admin, total=1)
    for user in (1, 2, 3, 4, 5):
        book(client, event_id, user)
    response = client.patch(f"/api/events/{event_id}", json={"totalTickets": 4}, headers=admin)
    assert response.status_code == 200
    assert response.json["offeredUserIds"] == [2, 3, 4]
    assert response.json["promotedUserIds"] == []
    assert response.json["offeredTickets"] == 3
    assert response.json["availableTickets"] == 0
    # Fewer tickets than booked and offered is refused.
    below = client.patch(f"/api/events/{event_id}", json={"totalTickets": 3}, headers=admin)
    assert_problem(below, 409)
    assert below.json["held"] == 4
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_switching_modes_keeps_outstanding_offers(client, admin, settings):
    event_id = create(client, admin, total=2)
    for user in (1, 2, 3, 4):
        book(client, event_id, user)
    cancel(client, event_id, 1)  # 3 is offered
    switched = client.patch(f"/api/events/{event_id}", json={"waitlistMode": "auto"}, headers=admin)
    assert switched.json["waitlistMode"] == "auto"
    assert switched.json["offeredTickets"] == 1
    assert cancel(client, event_id, 2).json["promotedUserId"] == 4  # freed from now on: auto
    assert claim(client, event_id, 3).status_code == 201  # the offer made before still holds
    assert (
        client.patch(
            f"/api/events/{event_id}",
            json={"waitlistMode": "offer", "offerTtlSeconds": 60},
            headers=admin,
        ).json["offerTtlSeconds"]
        == 60
    )
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_auto_mode_is_the_default(client, admin):
    response = client.post(
        "/api/events/initialize", json={"eventName": "Plain", "totalTickets": 1}, headers=admin
    )
    assert (response.json["waitlistMode"], response.json["offerTtlSeconds"]) == ("auto", 3600)
    event_id = response.json["eventId"]
    book(client, event_id, 1)
    book(client, event_id, 2)
    assert cancel(client, event_id, 1).json["promotedUserId"] == 2
    assert_problem(claim(client, event_id, 2), 409)


@pytest.mark.parametrize(
    "body",
    [
        {"waitlistMode": "later"},
        {"waitlistMode": None},
        {"offerTtlSeconds": 0},
        {"offerTtlSeconds": 604801},
        {"offerTtlSeconds": 1.5},
        {"offerTtlSeconds": "60"},
    ],
)
def test_bad_offer_settings_are_400(client, admin, body):
    created = client.post(
        "/api/events/initialize", json={"eventName": "X", "totalTickets": 1, **body}, headers=admin
    )
    assert_problem(created, 400)
    event_id = create(client, admin, total=1)
    assert_problem(client.patch(f"/api/events/{event_id}", json=body, headers=admin), 400)
    assert status(client, event_id)["waitlistMode"] == "offer"


def test_claim_refusals(client, admin):
    assert_problem(claim(client, 9_000_000_000, 1), 404)
    event_id = create(client, admin, total=1)
    assert_problem(client.post("/api/events/claim", json={"userId": 1}), 400)
    book(client, event_id, 1)
    response = claim(client, event_id, 1)  # booked, not offered
    assert_problem(response, 409)
    assert response.json["type"] == NO_OFFER
