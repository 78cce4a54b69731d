"""Events as resources: listing, reading, admin changes, and a user's own bookings.

Through the Flask test client on SQLite and on MariaDB in both lock modes.
"""

import pytest

from .test_api import assert_problem, book, cancel, create_event, status, waiting_list


def patch(client, admin, event_id, body):
    return client.patch(f"/api/events/{event_id}", json=body, headers=admin)


def all_pages(client, path, key, limit):
    found, cursor, pages = [], None, 0
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(path + query)
        assert response.status_code == 200, response.json
        found += response.json[key]
        pages += 1
        cursor = response.json["nextCursor"]
        if cursor is None:
            return found, pages


# -- reading ------------------------------------------------------------------


def test_an_event_reads_as_the_event_object(client, admin):
    event_id = create_event(client, admin, total=3, name="Gig")
    response = client.get(f"/api/events/{event_id}")
    assert response.status_code == 200
    assert response.json == {
        "eventId": event_id,
        "eventName": "Gig",
        "totalTickets": 3,
        "availableTickets": 3,
        "waitingListCount": 0,
        "salesOpen": True,
        "waitlistMode": "auto",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 0,
        "holdTtlSeconds": 0,
        "heldTickets": 0,
        "salesOpenAt": None,
        "queueing": False,
        "queuedCount": 0,
        "queuedTickets": 0,
    }
    assert response.json == status(client, event_id)


def test_an_unknown_event_is_404(client):
    body = assert_problem(client.get("/api/events/123456789"), 404)
    assert body["type"] == "urn:booking:problem:event-not-found"


def test_listing_visits_every_event_once_in_id_order(client, admin):
    ids = [create_event(client, admin, total=i, name=f"E{i}") for i in range(7)]
    found, pages = all_pages(client, "/api/events", "events", limit=3)
    assert [event["eventId"] for event in found] == ids
    assert pages == 3
    assert found[4] == status(client, ids[4])
    first = client.get("/api/events").json
    assert [event["eventId"] for event in first["events"]] == ids
    assert first["nextCursor"] is None


def test_a_full_last_page_says_there_is_no_next(client, admin):
    ids = [create_event(client, admin, name=f"E{i}") for i in range(4)]
    found, pages = all_pages(client, "/api/events", "events", limit=2)
    assert [event["eventId"] for event in found] == ids and pages == 2


def test_events_created_while_paging_are_still_visited_once(client, admin):
    ids = [create_event(client, admin, name=f"E{i}") for i in range(3)]
    page = client.get("/api/events?limit=2").json
    ids.append(create_event(client, admin, name="late"))
    rest = client.get(f"/api/events?limit=2&cursor={page['nextCursor']}").json
    seen = [event["eventId"] for event in page["events"] + rest["events"]]
    assert seen == ids


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=Nonsense",
        "cursor=-1",
        "cursor=1234567890abc",
        "cursor=a.b",
    ],
)
def test_a_bad_limit_or_cursor_is_400(client, query):
    body = assert_problem(client.get(f"/api/events?{query}"), 400)
    assert "errors" in body


# -- admin changes --------------------------------------------------------------


def test_changes_need_admin(client, admin):
    event_id = create_event(client, admin)
    response = client.patch(f"/api/events/{event_id}", json={"salesOpen": False})
    assert_problem(response, 401)
    assert status(client, event_id)["salesOpen"] is True


@pytest.mark.parametrize(
    "body",
    [{}, {"capacity": 3}, {"totalTickets": -1}, {"totalTickets": 1.0}, {"salesOpen": "no"},
     {"salesOpen": 0}, {"eventName": ""}, {"eventName": "a\x00b"}, []],
)  # fmt: skip
def test_a_bad_change_is_400_and_changes_nothing(client, admin, body):
    event_id = create_event(client, admin, total=2, name="Same")
    before = status(client, event_id)
    assert_problem(patch(client, admin, event_id, body), 400)
    assert status(client, event_id) == before


def test_changing_an_unknown_event_is_404(client, admin):
    assert_problem(patch(client, admin, 987654321, {"salesOpen": False}), 404)


def test_renaming_an_event(client, admin):
    event_id = create_event(client, admin, name="Old")
    response = patch(client, admin, event_id, {"eventName": "  New name "})
    assert response.status_code == 200
    assert response.json["eventName"] == "New name"
    assert response.json["promotedUserIds"] == []
    assert status(client, event_id)["eventName"] == "New name"


def test_more_tickets_go_to_the_head_of_the_line_first(client, admin):
    event_id = create_event(client, admin, total=2)
    for user in range(1, 8):  # 1, 2 booked; 3..7 waiting
        book(client, event_id, user)
    response = patch(client, admin, event_id, {"totalTickets": 5})
    assert response.status_code == 200
    assert response.json == {
        "eventId": event_id,
        "eventName": "Concert",
        "totalTickets": 5,
        "availableTickets": 0,
        "waitingListCount": 2,
        "salesOpen": True,
        "waitlistMode": "auto",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 2,
        "holdTtlSeconds": 0,
        "heldTickets": 0,
        "salesOpenAt": None,
        "queueing": False,
        "queuedCount": 0,
        "queuedTickets": 0,
        "promotedUserIds": [3, 4, 5],
        "offeredUserIds": [],
    }
    assert waiting_list(client, admin, event_id) == [6, 7]
    assert client.get(f"/api/events/{event_id}/users/5").json["status"] == "booked"
    # More than the line: the rest become available.
    response = patch(client, admin, event_id, {"totalTickets": 10})
    assert response.json["promotedUserIds"] == [6, 7]
    assert (response.json["availableTickets"], response.json["waitingListCount"]) == (3, 0)


def test_fewer_tickets_remove_unsold_ones(client, admin):
    event_id = create_event(client, admin, total=5)
    book(client, event_id, 1)
    book(client, event_id, 2)
    response = patch(client, admin, event_id, {"totalTickets": 2})
    assert response.status_code == 200
    assert (response.json["totalTickets"], response.json["availableTickets"]) == (2, 0)
    assert book(client, event_id, 3).json["status"] == "waitlisted"


def test_fewer_tickets_than_are_booked_is_refused_and_changes_nothing(client, admin):
    event_id = create_event(client, admin, total=4)
    for user in (1, 2, 3):
        book(client, event_id, user)
    before = status(client, event_id)
    response = patch(client, admin, event_id, {"totalTickets": 2, "eventName": "Changed"})
    body = assert_problem(response, 409)
    assert body["type"] == "urn:booking:problem:capacity-below-held"
    assert body["held"] == 3
    assert "3" in body["detail"]
    assert status(client, event_id) == before


def test_closed_sales_refuse_new_bookings_but_cancellations_still_pass_tickets_on(client, admin):
    event_id = create_event(client, admin, total=1)
    book(client, event_id, 1)
    book(client, event_id, 2)  # waiting
    response = patch(client, admin, event_id, {"salesOpen": False})
    assert response.json["salesOpen"] is False
    for user in (2, 3):  # joining the line is a new booking too; so is a repeat
        body = assert_problem(book(client, event_id, user), 409)
        assert body["type"] == "urn:booking:problem:sales-closed"
    assert waiting_list(client, admin, event_id) == [2]
    assert cancel(client, event_id, 1).json["promotedUserId"] == 2
    assert status(client, event_id)["salesOpen"] is False
    patch(client, admin, event_id, {"salesOpen": True})
    assert book(client, event_id, 3).json["status"] == "waitlisted"


# -- a user's bookings ----------------------------------------------------------


def test_a_user_sees_their_tickets_and_places_in_event_order(client, admin):
    first = create_event(client, admin, total=1, name="First")
    second = create_event(client, admin, total=0, name="Second")
    third = create_event(client, admin, total=5, name="Third")
    create_event(client, admin, total=5, name="Not theirs")
    book(client, third, 7)
    book(client, first, 8)
    book(client, first, 7)  # first in line
    book(client, second, 9)
    book(client, second, 7)
    response = client.get("/api/users/7/bookings")
    assert response.status_code == 200
    assert response.json == {
        "userId": 7,
        "bookings": [
            {
                "eventId": first,
                "eventName": "First",
                "status": "waitlisted",
                "tickets": 1,
                "position": 1,
                "overtakes": 0,
            },
            {
                "eventId": second,
                "eventName": "Second",
                "status": "waitlisted",
                "tickets": 1,
                "position": 2,
                "overtakes": 0,
            },
            {"eventId": third, "eventName": "Third", "status": "booked", "tickets": 1},
        ],
        "nextCursor": None,
    }
    found, pages = all_pages(client, "/api/users/7/bookings", "bookings", limit=1)
    assert found == response.json["bookings"] and pages == 3
    assert client.get("/api/users/12345/bookings").json == {
        "userId": 12345,
        "bookings": [],
        "nextCursor": None,
    }


def test_a_user_bookings_page_with_a_bad_query_is_400(client):
    assert_problem(client.get("/api/users/7/bookings?limit=1000"), 400)
    assert_problem(client.get("/api/users/7/bookings?cursor=%%%"), 400)
