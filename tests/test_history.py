"""GET /api/events/{eventId}/history: the admin's view of an event's journal."""

import pytest

CREATED = {
    "eventName": "History",
    "totalTickets": 1,
    "waitlistMode": "auto",
    "offerTtlSeconds": 3600,
    "maxTicketsPerBooking": 10,
    "maxOvertakes": 3,
    "holdTtlSeconds": 0,
}


@pytest.fixture
def event_id(client, admin):
    response = client.post(
        "/api/events/initialize", json={"eventName": "History", "totalTickets": 1}, headers=admin
    )
    return response.json["eventId"]


def history(client, admin, event_id, query=""):
    return client.get(f"/api/events/{event_id}/history{query}", headers=admin)


def test_every_committed_change_is_told_in_commit_order(client, admin, event_id):
    book = lambda user: client.post("/api/events/book", json={"userId": user, "eventId": event_id})  # noqa: E731
    assert book(1).status_code == 201
    assert book(2).status_code == 201  # waits
    assert book(2).status_code == 409  # refused: nothing journaled
    assert (
        client.post("/api/events/cancel", json={"userId": 9, "eventId": event_id}).status_code
        == 404
    )
    assert (
        client.post("/api/events/cancel", json={"userId": 1, "eventId": event_id}).status_code
        == 200
    )
    response = client.patch(f"/api/events/{event_id}", json={"totalTickets": 0}, headers=admin)
    assert response.status_code == 409  # below the booked: refused, nothing journaled
    assert (
        client.patch(
            f"/api/events/{event_id}", json={"salesOpen": False}, headers=admin
        ).status_code
        == 200
    )

    response = history(client, admin, event_id)
    assert response.status_code == 200
    body = response.json
    assert body["eventId"] == event_id and body["nextCursor"] is None
    told = [(e["type"], e["userId"], e["data"]) for e in body["entries"]]
    assert told == [
        ("event.created", None, CREATED),
        ("booking.booked", 1, {"tickets": 1, "overtookUserIds": []}),
        ("waitlist.joined", 2, {"position": 1, "tickets": 1}),
        (
            "booking.cancelled",
            1,
            {
                "tickets": 1,
                "remainingTickets": 0,
                "promotedUserIds": [2],
                "offeredUserIds": [],
                "promotedUserId": 2,
                "offeredUserId": None,
            },
        ),
        (
            "booking.promoted",
            2,
            {
                "tickets": 1,
                "cause": "booking.cancelled",
                "causeUserId": 1,
                "overtookUserIds": [],
            },
        ),
        ("event.updated", None, {"salesOpen": False, "promotedUserIds": [], "offeredUserIds": []}),
    ]
    ids = [e["entryId"] for e in body["entries"]]
    assert ids == sorted(set(ids))
    for entry in body["entries"]:
        assert entry["eventId"] == event_id
        assert entry["at"].endswith("Z") and "T" in entry["at"]


def test_an_idempotent_replay_is_not_told_twice(client, admin, event_id):
    headers = {"Idempotency-Key": "history-once"}
    for _ in range(2):
        response = client.post(
            "/api/events/book", json={"userId": 5, "eventId": event_id}, headers=headers
        )
        assert response.status_code == 201
    types = [e["type"] for e in history(client, admin, event_id).json["entries"]]
    assert types == ["event.created", "booking.booked"]


def test_pages_walk_every_entry_once(client, admin, event_id):
    for user in range(1, 8):
        client.post("/api/events/book", json={"userId": user, "eventId": event_id})
    whole = history(client, admin, event_id).json["entries"]
    assert len(whole) == 8
    walked, cursor = [], None
    while True:
        page = history(
            client, admin, event_id, "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        )
        assert page.status_code == 200
        assert len(page.json["entries"]) <= 3
        walked += page.json["entries"]
        if (cursor := page.json["nextCursor"]) is None:
            break
    assert walked == whole


def test_other_events_entries_stay_out(client, admin, event_id):
    other = client.post(
        "/api/events/initialize", json={"eventName": "Other", "totalTickets": 3}, headers=admin
    ).json["eventId"]
    client.post("/api/events/book", json={"userId": 1, "eventId": other})
    assert [e["eventId"] for e in history(client, admin, event_id).json["entries"]] == [event_id]


def test_refusals(client, admin, event_id):
    response = client.get(f"/api/events/{event_id}/history")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    response = history(client, admin, 9_000_000_000)
    assert response.status_code == 404
    assert response.json["type"] == "urn:booking:problem:event-not-found"
    for query in ("?limit=0", "?limit=101", "?cursor=NOT-A-CURSOR", "?limit=x"):
        response = history(client, admin, event_id, query)
        assert response.status_code == 400, query
        assert response.mimetype == "application/problem+json"
